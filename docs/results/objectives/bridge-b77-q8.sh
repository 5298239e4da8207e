#!/bin/sh
# The commands behind docs/results.md, "Banking77 on the whole dev split: one q8 run with the
# message spread logged" (issue 21), as they ran (2026-12-07, 19:30-20:55 UTC, on the 2-core
# machine shared with the other sessions, load averages 15-18, every process `nice -n 10`,
# one thread). Run from the repository root after `./configure && make`.
# runs/b77/bin/.../lw is the default pair built from this branch (the early-stopping log's
# first-token accuracy and message spread); the sender states are cached once in
# build/.../.lwc-cache (q8 sender, keyed by the data file).
set -eu
export OPENBLAS_NUM_THREADS=1
out/bin/lwc build pairs/smollm2-135m_to_gemma3-270m.json               # build/<pair>/lw
out/bin/lwc build pairs/smollm2-135m_to_gemma3-270m.json -o runs/b77/bin
lw=runs/b77/bin/smollm2-135m_to_gemma3-270m/lw
C=build/smollm2-135m_to_gemma3-270m/.lwc-cache D=runs/b77/data R=runs/b77
DEV=../shared/data/banking77/dev.jsonl

# The data. Banking77's train.jsonl is sorted by label: the first 30 lines of each label
# are the training pool, the next 2 are held out (154), one a label of those (77) is the
# early-stopping slice. The pool is written label by label in turn (round robin), so its
# first 770 lines hold 10 of every intent (--limit-train 770). The dev split is seen once,
# whole (1000), at the end.
mkdir -p $D
awk -v dir=$D '{ if (match($0, /"label": "[^"]*"/)) l = substr($0, RSTART, RLENGTH); n[l]++;
    if (n[l] <= 30) print > (dir "/train.jsonl"); else if (n[l] <= 32) print > (dir "/heldout.jsonl") }' \
    ../shared/data/banking77/train.jsonl
awk '{ if (match($0, /"label": "[^"]*"/)) l = substr($0, RSTART, RLENGTH); if (++n[l] == 1) print }' \
    $D/heldout.jsonl > $D/heldout77.jsonl
python3 -c '
import json, collections
by = collections.OrderedDict()
for l in open("runs/b77/data/train.jsonl"): by.setdefault(json.loads(l)["label"], []).append(l)
with open("runs/b77/data/train-rr.jsonl", "w") as f:
    for k in range(30):
        for ls in by.values(): f.write(ls[k])'

# The linear probe on the same 770 training examples, scored on the whole dev split
# (it also builds the dev split's sender-state cache).
/usr/bin/time -f "probe: %e s wall, %U s user" nice -n 10 $lw eval --task banking77 --split $DEV \
    --method linear-probe --train $D/train-rr.jsonl --limit-train 770 --dtype q8 --threads 1 --cache-dir $C \
    --json $R/probe-dev1000.json

# The run: banking77-distinct (every intent's first receiver token its own, so the dev split
# can be scored by the first token: one receiver row an example), the full-verbalizer
# cross-entropy, lr 1e-3, M = 8, batch 8, q8 weights, the held-out loss every 50 steps
# (with its first-token accuracy and the message spread), patience 4, step cap 500.
/usr/bin/time -f "train: %e s wall, %U s user" nice -n 10 $lw train --cache-dir $C --task banking77-distinct \
    --train $D/train-rr.jsonl --limit-train 770 --dev $D/heldout77.jsonl --dev-slice 77 --eval-every 50 \
    --patience 4 --steps 500 --batch 8 --lr 1e-3 --warmup 20 --soft-tokens 8 --seed 1 --dtype q8 --threads 1 \
    --checkpoint-every 100 --out $R/long-lr1e-3 --force
# (stopped by hand after step 7: 65 s a step at load 19-27.)

# The message spread on the real pair from the first steps: the same run with the held-out
# slice every 2 steps (its first-token accuracy and msg_spread in dev_log.jsonl), patience 0;
# stopped by hand when the session ended.
/usr/bin/time -f "train: %e s wall, %U s user" nice -n 10 $lw train --cache-dir $C --task banking77-distinct \
    --train $D/train-rr.jsonl --limit-train 770 --dev $D/heldout77.jsonl --dev-slice 77 --eval-every 2 \
    --patience 0 --steps 500 --batch 8 --lr 1e-3 --warmup 20 --soft-tokens 8 --seed 1 --dtype q8 --threads 1 \
    --out $R/spread-e2 --force
