#!/bin/bash
# the untrained interlingua's held-out loss (16 rows of train's first 200), soft field vs whole prompt
cd /work/wt-squad
export LWC_MODELS=$PWD/models OPENBLAS_NUM_THREADS=1
LW=/tmp/squad/build/minilm_to_smollm2-gemma3/lw
for mode in field prompt; do
  extra=""; [ $mode = field ] && extra="--soft-field context"
  rm -rf /tmp/squad/init-$mode
  /usr/bin/time -v nice -n 10 $LW train --task squad --split /tmp/squad/data/train-rest.jsonl --out /tmp/squad/init-$mode \
    --limit 8 --steps 1 --batch 1 --warmup 0 --lr 1e-9 --dtype q8 $extra \
    --dev /tmp/squad/data/heldout.jsonl --dev-slice 16 --eval-every 1 > /tmp/squad/init-$mode.log 2>&1
done
