#!/bin/bash
# the untrained interlingua's latent cosine between consecutive dev rows, without and with the input norm
cd /work/wt-squad
export LWC_MODELS=$PWD/models OPENBLAS_NUM_THREADS=1
LW=/tmp/squad/build3/minilm_to_smollm2-gemma3/lw
while pgrep -f "/tmp/squad/evals2.sh" > /dev/null; do sleep 5; done
for n in 0 16; do
  rm -rf /tmp/squad/norm$n
  nice -n 10 $LW train --task squad --split /tmp/squad/data/train-rest.jsonl --out /tmp/squad/norm$n --limit 16 \
    --steps 1 --batch 1 --warmup 0 --lr 1e-9 --dtype q8 --soft-field context --norm-rows $n --quiet > /tmp/squad/norm$n.log 2>&1
  /usr/bin/time -v nice -n 10 $LW eval --task squad --split /work/shared/data/squad/dev.jsonl --method interlingua \
    --checkpoint /tmp/squad/norm$n/final --candidates 1 --max-answer 8 --limit 4 --dtype q8 --quiet \
    --json /tmp/squad/norm$n-eval.json >> /tmp/squad/norm$n.log 2>&1
done
