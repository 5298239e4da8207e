#!/bin/sh
# The main job on a pair: build its binary, train a bridge on SST-2 with a
# small step count (the full runs are in docs/results.md), evaluate it on 200
# dev examples next to the linear probe on the same sender layer, and print
# the result. usage: scripts/demo.sh LWC MANIFEST  (about 6-12 minutes on 2 cores)
set -eu
lwc=$1 manifest=$2
here=$(cd "$(dirname "$0")/.." && pwd)
data=${LWC_SHARED:-$here/../shared}/data/sst2
$lwc build "$manifest"
name=$(sed -n 's/^ *"name" *: *"\([A-Za-z0-9._-]*\)".*/\1/p' "$manifest" | head -n 1)
lw=build/$name/lw
out=runs/demo-$name-sst2
$lw info
$lw train --task sst2 --data "$data" --limit-train 800 --steps 150 --batch 8 --lr 3e-4 --warmup 15 --out "$out" --force
$lw eval --task sst2 --split "$data/dev.jsonl" --limit 200 --method linear-probe --limit-train 800 \
    --json "$out/linear_probe.json"
$lw eval --task sst2 --split "$data/dev.jsonl" --limit 200 --checkpoint "$out/final" --json "$out/bridge.json"
echo
echo "SST-2 dev, first 200 examples: the bridge next to the linear probe on the same sender layer"
$lw report --results "$out" --out "$out/report"
