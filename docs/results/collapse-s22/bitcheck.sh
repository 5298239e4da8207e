#!/bin/sh
# --spread off is the code before it, bit for bit: 4 steps of the Banking77 protocol with main's binary
# (runs/b77/bin0: /work/main/out/bin/lwc build ... at main's 5adf73e) and with this branch's
# (runs/b77/bin), no --spread; the two final checkpoints and training logs (times removed) compared.
set -eu
export OPENBLAS_NUM_THREADS=1 LWC_MODELS=${LWC_MODELS:-$PWD/models}
C=build/smollm2-135m_to_gemma3-270m/.lwc-cache D=runs/b77/data R=runs/b77/s22
for v in bin0 bin; do
    runs/b77/$v/smollm2-135m_to_gemma3-270m/lw train --cache-dir $C --task banking77-distinct \
        --train $D/train-rr.jsonl --limit-train 770 --steps 4 --batch 8 --lr 1e-3 --warmup 20 --soft-tokens 8 \
        --seed 1 --dtype q8 --threads 1 --out $R/bitcheck-$v --force --quiet
    sed 's/"examples_per_s": [0-9.e+-]*, "elapsed_s": [0-9.e+-]*//' $R/bitcheck-$v/train_log.jsonl > $R/bitcheck-$v.log
done
cmp $R/bitcheck-bin0/final/bridge.safetensors $R/bitcheck-bin/final/bridge.safetensors
cmp $R/bitcheck-bin0/final/train_state.safetensors $R/bitcheck-bin/final/train_state.safetensors
cmp $R/bitcheck-bin0.log $R/bitcheck-bin.log
echo "bit for bit: the bridge, its optimizer state and the training log"
