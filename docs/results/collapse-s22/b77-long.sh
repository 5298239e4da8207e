#!/bin/sh
# Stop 22 (issue 21): Banking77 trained longer, remedy (--spread 1) against none, then the whole dev split.
# As b77-spread30.sh (data, cache, binary), with STEPS steps (150 here: what the shared 2-core machine
# allowed before the stop's end), the held-out slice every 25 steps; then the best checkpoint on the
# whole dev split (1000), scored by the first receiver token (banking77-distinct: one row an example).
# Usage: [STEPS=N] [EVAL_EVERY=K] b77-long.sh NAME SEED [lw train options...]. As run at stop 22:
#   b77-long.sh long-none-s1 1;  b77-long.sh long-spread1-s1 1 --spread 1
#   STEPS=300 b77-long.sh long300-spread1-s1 1 --spread 1   (stopped by hand after step 100's evaluation)
#   STEPS=300 b77-long.sh long300-spread10-s1 1 --spread 10
#   STEPS=1000 EVAL_EVERY=100 b77-long.sh long1000-none-s1 1;  ... long1000-spread10-s1 1 --spread 10
set -eu
name=$1 seed=$2
shift 2
export OPENBLAS_NUM_THREADS=1 LWC_MODELS=${LWC_MODELS:-$PWD/models}
lw=runs/b77/bin/smollm2-135m_to_gemma3-270m/lw
C=build/smollm2-135m_to_gemma3-270m/.lwc-cache D=runs/b77/data R=runs/b77/s22
DEV=../shared/data/banking77/dev.jsonl
mkdir -p $R
/usr/bin/time -f "$name: %e s wall, %U s user" $lw train --cache-dir $C --task banking77-distinct \
    --train $D/train-rr.jsonl --limit-train 770 --dev $D/heldout77.jsonl --dev-slice 77 --eval-every ${EVAL_EVERY:-25} \
    --patience 0 --steps ${STEPS:-150} --batch 8 --lr 1e-3 --warmup 20 --soft-tokens 8 --seed $seed --dtype q8 \
    --threads 1 --out $R/$name --force --quiet "$@"
/usr/bin/time -f "$name eval: %e s wall, %U s user" $lw eval --task banking77-distinct --split $DEV \
    --checkpoint $R/$name/best --soft-tokens 8 --score first --score-batch 8 --dtype q8 --threads 1 \
    --cache-dir $C --json $R/$name.dev1000.json
