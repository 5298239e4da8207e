#!/bin/sh
# What the tables of docs/results.md still miss: every run the experiment
# scripts would make whose eval JSON is not there yet, marked "(claimed)"
# when its lock folder exists (running, or left by a killed run: remove it by
# hand). Reads runs/ only (on a new clone, scripts/restore-runs.sh first
# puts back what docs/results/ holds); runs nothing.
# usage: scripts/missing-runs.sh  [PAIR=<name> for another pair; default the README's]
set -eu
tasks="sst2 trec agnews banking77"
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
pair=${PAIR:-smollm2-135m_to_gemma3-270m}
root=runs
[ "$pair" = smollm2-135m_to_gemma3-270m ] || root=runs/$pair
. scripts/lr-sweep.sh
missing=0
want() {   # want TABLE FILE: say so when FILE is missing
    [ -f "$2" ] && return 0
    missing=$((missing + 1))
    lock=${2%/eval.json}.lock
    case $2 in */linear_probe.json) lock=$(dirname "$2")/linear_probe.lock ;; */baselines/*) lock=${2%.json}.lock ;; esac
    if [ -d "$lock" ]; then echo "$1: $2 (claimed)"; else echo "$1: $2"; fi
}
for t in $tasks; do
    want grid $root/exp/$t/linear_probe.json
    for m in 8 16 32; do for s in 1 2 3; do want grid $root/exp/$t/M$m-seed$s/eval.json; done; done
    for m in receiver-zeroshot sender-zeroshot token-budget text-relay cot-relay receiver-kshot \
             receiver-zeroshot.gen sender-zeroshot.gen; do
        want baselines $root/baselines/$t.$m.json
    done
    for m in prompt-tuning lora bridge; do
        for lr in $(sweep_for $t $m); do want "$m sweep" "$(trained_run $t $m $lr 1)/eval.json"; done
        lr=$(best_lr $t $m)
        if [ -z "$lr" ]; then echo "$m seeds: $t waits for its sweep"; missing=$((missing + 2))
        else for s in 2 3; do want "$m seeds" "$(trained_run $t $m $lr $s)/eval.json"; done; fi
    done
    if [ $root = runs ]; then
        for v in lora deep-prefix both; do for s in 1 2 3; do want ablation $root/ablation/$t/$v-seed$s/eval.json; done; done
    fi
done
echo "$pair: $missing runs missing"
