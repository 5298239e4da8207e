#!/bin/sh
# The longer bridge runs of docs/results.md: the grid's settings but more
# steps, for the tasks where 150 steps are not enough.
# Results land in $root/longer/<task>/M<m>-seed<s>-steps<n>/eval.json.
# usage: scripts/longer.sh TASK M STEPS "SEEDS" [train] [dev]
# Several copies may run at once: a job is claimed by creating <job>.lock.
set -eu
t=$1 m=$2 steps=$3 seeds=$4 train=${5:-800} dev=${6:-200}
. "$(dirname "$0")/pair-env.sh"
d=$shared/data/$t
mkdir -p $root/longer/$t
for s in $seeds; do
    r=$root/longer/$t/M$m-seed$s-steps$steps
    [ -f $r/eval.json ] && continue
    claim $r || continue
    trained_already $r $steps || $lw train $(subset_flags $t) --task $t --data $d --limit-train $train --steps $steps --batch 8 --lr 3e-4 \
        --warmup 15 --soft-tokens $m --seed $s --out $r --force --quiet
    $lw eval $(subset_flags $t) --task $t --split $d/dev.jsonl --limit $dev --checkpoint $r/final --quiet \
        --json $r/eval.json
    release
done
