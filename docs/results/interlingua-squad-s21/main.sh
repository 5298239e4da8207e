#!/bin/bash
# the training run of this stop: soft field "context", q8 readers, early stopping on 8 held-out train rows
cd /work/wt-squad
export LWC_MODELS=$PWD/models OPENBLAS_NUM_THREADS=1
LW=/tmp/squad/build/minilm_to_smollm2-gemma3/lw
while pgrep -f "/tmp/squad/init.sh" > /dev/null; do sleep 5; done
rm -rf /tmp/squad/run1
/usr/bin/time -v nice -n 10 $LW train --task squad --split /tmp/squad/data/train-rest.jsonl --out /tmp/squad/run1 \
  --steps 12 --batch 4 --warmup 2 --lr 2e-3 --seed 1 --dtype q8 --soft-field context \
  --dev /tmp/squad/data/heldout.jsonl --dev-slice 8 --eval-every 4 > /tmp/squad/run1.log 2>&1
