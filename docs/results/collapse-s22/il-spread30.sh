#!/bin/sh
# Stop 22 (issue 24): the interlingua's latent collapse on SQuAD, remedy against none, the first steps.
# The run of docs/interlingua.md "Stop 21" (q8 readers, the question as text, lr 2e-3, batch 4, warmup 2),
# its held-out slice (the first 200 rows of SQuAD train; 8 of them) evaluated every 2 steps: the dev loss,
# and the latents' spread and mean consecutive cosine on those 8 rows (dev_log.jsonl "msg_spread",
# "msg_cos"). runs/il/bin/.../lw: out/bin/lwc build --quiet pairs/minilm_to_smollm2-gemma3.json -o runs/il/bin
# Usage: il-spread30.sh NAME SEED [lw train options...]   e.g. il-spread30.sh spread1-s1 1 --spread 1
# As run at stop 22 (STEPS=12): none-s1 1; spread1-s1 1 --spread 1; spread10-s1 1 --spread 10;
# spread100-s1 1 --spread 100; and the untrained interlingua's step 0 (one step at lr 1e-9):
#   STEPS=1 il-spread30.sh untrained 1 --batch 1 --warmup 0 --lr 1e-9 --eval-every 1
# (later options win: lw train takes the last of a repeated one).
set -eu
name=$1 seed=$2
shift 2
export OPENBLAS_NUM_THREADS=1 LWC_MODELS=${LWC_MODELS:-$PWD/models}
LW=runs/il/bin/minilm_to_smollm2-gemma3/lw
D=runs/il/data R=runs/il/s22
mkdir -p $D $R
[ -s $D/heldout.jsonl ] || head -200 ../shared/data/squad/train.jsonl > $D/heldout.jsonl
[ -s $D/train-rest.jsonl ] || tail -n +201 ../shared/data/squad/train.jsonl > $D/train-rest.jsonl
rm -rf $R/$name
/usr/bin/time -f "$name: %e s wall, %U s user" $LW train --task squad --split $D/train-rest.jsonl --out $R/$name \
    --steps ${STEPS:-30} --batch 4 --warmup 2 --lr 2e-3 --seed $seed --dtype q8 --soft-field context \
    --dev $D/heldout.jsonl --dev-slice 8 --eval-every 2 --quiet "$@"
