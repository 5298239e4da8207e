#!/bin/sh
# The untrained baselines of docs/results.md on the default pair, every method
# on every task: label scoring by each verbalizer's log-likelihood, plus the
# --generate (answer and parse) convention for the two zero-shot methods.
# Results land in runs/baselines/<task>.<method>[.gen].json.
# usage: scripts/baselines.sh ["tasks"] [dev examples]
# Several copies may run at once: a job is claimed by creating <job>.lock.
# PAIR=<name> runs another pair (scripts/pair-env.sh).
set -eu
tasks=${1:-"sst2 trec agnews banking77"} dev=${2:-100}
. "$(dirname "$0")/pair-env.sh"
o=$root/baselines
mkdir -p $o
for t in $tasks; do
    for m in receiver-zeroshot sender-zeroshot token-budget text-relay cot-relay receiver-kshot \
             receiver-zeroshot.gen sender-zeroshot.gen; do
        r=$o/$t.$m
        [ -f $r.json ] && continue
        claim $r || continue
        case $m in
        *.gen) flags="--method ${m%.gen} --generate" ;;
        *) flags="--method $m" ;;
        esac
        start=$(date +%s)
        $lw eval $(subset_flags $t) --task $t --split $shared/data/$t/dev.jsonl --limit $dev $flags --quiet --json $r.json >$r.txt 2>&1
        echo "$t $m $(($(date +%s) - start)) s" >>$o/times.txt
        release
    done
done
