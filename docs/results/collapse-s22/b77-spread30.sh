#!/bin/sh
# Stop 22 (issue 21): the message collapse on Banking77, remedy against none, the first 30 steps.
# The data and sender-state cache of docs/results/objectives/bridge-b77-q8.sh (its data block, then
# its probe command, which also caches the dev split); runs/b77/bin/.../lw is the default pair built
# from this branch (out/bin/lwc build pairs/smollm2-135m_to_gemma3-270m.json -o runs/b77/bin).
# Usage: b77-spread30.sh NAME SEED [lw train options...]   e.g. b77-spread30.sh spread1-s1 1 --spread 1
# One thread a run, at most two runs at once, normal priority.
set -eu
name=$1 seed=$2
shift 2
export OPENBLAS_NUM_THREADS=1 LWC_MODELS=${LWC_MODELS:-$PWD/models}
lw=runs/b77/bin/smollm2-135m_to_gemma3-270m/lw
C=build/smollm2-135m_to_gemma3-270m/.lwc-cache D=runs/b77/data R=runs/b77/s22
mkdir -p $R
/usr/bin/time -f "$name: %e s wall, %U s user" $lw train --cache-dir $C --task banking77-distinct \
    --train $D/train-rr.jsonl --limit-train 770 --dev $D/heldout77.jsonl --dev-slice 77 --eval-every 2 \
    --patience 0 --steps ${STEPS:-30} --batch 8 --lr 1e-3 --warmup 20 --soft-tokens 8 --seed $seed --dtype q8 \
    --threads 1 --out $R/$name --force --quiet "$@"
