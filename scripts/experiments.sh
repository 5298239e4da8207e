#!/bin/sh
# The bridge experiments of docs/results.md: for each task, M and seed, train
# a bridge on the default pair and evaluate it on dev; plus the linear probe
# per task. Results land in runs/exp/<task>/... as lw eval JSON; `lw report
# --results runs/exp --logs runs/exp --out docs/results/report` tabulates them.
# usage: scripts/experiments.sh "sst2 trec" "8 16 32" "1 2 3"  [steps] [train] [dev]
# Several copies may run at once (one per core, OPENBLAS_NUM_THREADS=1): each
# claims a job by creating <job>.lock and skips jobs that are done or claimed
# (claim and release in scripts/pair-env.sh: a worker that stops gives its job
# back). PAIR=<name> runs another pair (scripts/pair-env.sh).
set -eu
tasks=${1:-"sst2 agnews trec banking77"} ms=${2:-"8 16 32"} seeds=${3:-"1 2 3"}
steps=${4:-150} train=${5:-800} dev=${6:-200}
. "$(dirname "$0")/pair-env.sh"
for t in $tasks; do
    d=$shared/data/$t
    o=$root/exp/$t
    mkdir -p $o
    if [ ! -f $o/linear_probe.json ] && claim $o/linear_probe; then
        $lw eval $(subset_flags $t) --task $t --split $d/dev.jsonl --limit $dev --method linear-probe \
            --limit-train $train --quiet --json $o/linear_probe.json
        release
    fi
    for m in $ms; do
        for s in $seeds; do
            r=$o/M$m-seed$s
            [ -f $r/eval.json ] && continue
            claim $r || continue
            trained_already $r $steps || $lw train $(subset_flags $t) --task $t --data $d --limit-train $train --steps $steps --batch 8 --lr 3e-4 --warmup 15 \
                --soft-tokens $m --seed $s --out $r --force --quiet
            $lw eval $(subset_flags $t) --task $t --split $d/dev.jsonl --limit $dev --checkpoint $r/final --quiet --json $r/eval.json
            release
        done
    done
done
