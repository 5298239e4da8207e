#!/bin/bash
# after the training run: the token budget at M = 16 for both readers, then the interlingua, on the first N dev rows
cd /work/wt-squad
export LWC_MODELS=$PWD/models OPENBLAS_NUM_THREADS=1
LW=/tmp/squad/build2/minilm_to_smollm2-gemma3/lw
N=${N:-10}
D=/work/shared/data/squad/dev.jsonl
while pgrep -f "/tmp/squad/main.sh" > /dev/null; do sleep 5; done
for m in token-budget sender-token-budget; do
  /usr/bin/time -v nice -n 10 $LW eval --task squad --split $D --method $m --limit $N --quiet \
    --json /tmp/squad/$m-$N.json > /tmp/squad/$m-$N.log 2>&1
done
CK=/tmp/squad/run1/best; [ -d $CK ] || CK=/tmp/squad/run1/final
/usr/bin/time -v nice -n 10 $LW eval --task squad --split $D --method interlingua --checkpoint $CK --candidates 1 \
  --limit $N --dtype q8 --json /tmp/squad/il-run1-$N.json > /tmp/squad/il-run1-$N.log 2>&1
