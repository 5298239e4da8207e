#!/bin/bash
cd /work/main
export OPENBLAS_NUM_THREADS=1
L=build/smollm2-135m_to_gemma3-270m/lw; D=/work/shared/data
for t in sst2 trec; do
for m in receiver-zeroshot sender-zeroshot token-budget receiver-kshot text-relay cot-relay; do
  s=$(date +%s.%N)
  nice $L eval --task $t --split $D/$t/dev.jsonl --method $m --limit 100 --quiet --json docs/results/baselines/$t.$m.json > docs/results/baselines/$t.$m.txt 2>&1
  echo "$t $m rc=$? $(echo "$(date +%s.%N) - $s" | bc) s" >> docs/results/baselines/log
done
done
for t in sst2; do
for m in receiver-zeroshot sender-zeroshot; do
  s=$(date +%s.%N)
  nice $L eval --task $t --split $D/$t/dev.jsonl --method $m --generate --limit 100 --quiet --json docs/results/baselines/$t.$m.gen.json > docs/results/baselines/$t.$m.gen.txt 2>&1
  echo "$t $m --generate rc=$? $(echo "$(date +%s.%N) - $s" | bc) s" >> docs/results/baselines/log
done
done
echo done >> docs/results/baselines/log
