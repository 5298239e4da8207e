#!/bin/sh
# The commands behind docs/results.md, "Remedy (a): distinct first tokens", as they ran
# (2026-12-07, 16:20-17:35 UTC, on the 2-core machine shared with the other sessions;
# run from the repository root with the default pair built by
# `out/bin/lwc build pairs/smollm2-135m_to_gemma3-270m.json`). `runs/bin/.../lw` is the same
# pair built from this branch after `lw eval --score first` was added (`-o runs/bin`);
# build/.../lw trained (training is unchanged by that commit).
set -eu
export OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX
lw=build/smollm2-135m_to_gemma3-270m/lw
lwe=runs/bin/smollm2-135m_to_gemma3-270m/lw
D=runs/b77d/data C=build/smollm2-135m_to_gemma3-270m/.lwc-cache R=runs/b77d

# The data: Banking77's train.jsonl is sorted by label; the first 20 lines of each label
# train, the next 2 are held out (154), and 1 a label of those (77) is the early-stopping
# slice. The dev split stays whole and unseen until the final evaluation.
mkdir -p $D
awk -v dir=$D '{ if (match($0, /"label": "[^"]*"/)) l = substr($0, RSTART, RLENGTH); n[l]++;
    if (n[l] <= 20) print > (dir "/train.jsonl"); else if (n[l] <= 22) print > (dir "/heldout.jsonl") }' \
    ../shared/data/banking77/train.jsonl
awk '{ if (match($0, /"label": "[^"]*"/)) l = substr($0, RSTART, RLENGTH); if (++n[l] == 1) print }' \
    $D/heldout.jsonl > $D/heldout77.jsonl

tr() {  # tr DIR LR STEPS EVERY PATIENCE
  /usr/bin/time -f "train $1: %e s wall, %U s user, %S s sys" nice -n 10 $lw train --task banking77-distinct \
    --train $D/train.jsonl --dev $D/heldout77.jsonl --dev-slice 77 --eval-every $4 --patience $5 \
    --steps $3 --batch 8 --lr $2 --warmup 8 --soft-tokens 8 --seed 1 --ce first \
    --dtype bf16 --threads 1 --out $1 --force --quiet
}
ev() {  # ev CHECKPOINT JSON
  /usr/bin/time -f "eval $1: %e s wall, %U s user, %S s sys" nice -n 10 $lwe eval --task banking77-distinct \
    --split ../shared/data/banking77/dev.jsonl --checkpoint $1 --soft-tokens 8 --score first --dtype bf16 \
    --threads 1 --cache-dir $C --seed 1 --scores ${2%.json}.scores.jsonl --json $2
}
# The learning-rate look: 64 steps at each rate, the held-out loss every 16 steps.
for lr in 1e-3 3e-4 3e-3; do tr $R/look-lr$lr $lr 64 16 3; done
# The run: the look's best rate (3e-3, lowest held-out loss at step 64), a 300-step cap,
# the held-out loss every 25 steps, patience 4; its best/ on the whole dev split.
tr $R/main-lr3e-3 3e-3 300 25 4
ev $R/main-lr3e-3/best $R/main-lr3e-3/dev1000.json
