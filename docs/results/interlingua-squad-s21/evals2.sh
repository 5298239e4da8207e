#!/bin/bash
# the next 10 dev rows (11-20), the same three runs, after evals.sh
cd /work/wt-squad
export LWC_MODELS=$PWD/models OPENBLAS_NUM_THREADS=1
LW=/tmp/squad/build2/minilm_to_smollm2-gemma3/lw
D=/tmp/squad/data/dev-11-20.jsonl
while pgrep -f "/tmp/squad/evals.sh" > /dev/null; do sleep 5; done
for m in token-budget sender-token-budget; do
  /usr/bin/time -v nice -n 10 $LW eval --task squad --split $D --method $m --quiet \
    --json /tmp/squad/$m-11-20.json > /tmp/squad/$m-11-20.log 2>&1
done
/usr/bin/time -v nice -n 10 $LW eval --task squad --split $D --method interlingua --checkpoint /tmp/squad/run1/best \
  --candidates 1 --dtype q8 --json /tmp/squad/il-run1-11-20.json > /tmp/squad/il-run1-11-20.log 2>&1
