#!/bin/sh
# Copies the eval JSON of finished runs (runs/, gitignored) into docs/results/
# where docs/results.md cites them, then rewrites the report tables and plots.
# The default pair (runs/ -> docs/results/):
#   bridge/    runs/exp/<task>/<run>/eval.json and the linear probes
#   ablation/  runs/ablation/<task>/<variant>-seed<s>/eval.json
#   baselines/ runs/baselines/<task>.<method>.json
#   trained/   runs/trained/<task>/<method>-lr<lr>-seed<s>/eval.json (every lr of the sweep)
#   longer/    runs/longer/<task>/<run>/eval.json (longer training than the grid's)
#   validate/  runs/validate/<task>/<run>/eval.json (a grid run again with newer code)
#   report/    lw report over the bridge, probe, adapters, baselines and the trained
#              baselines' chosen rate
# The reverse pair (runs/gemma3-270m_to_smollm2-135m/ -> docs/results/):
#   reverse/          its bridge runs, probes and baselines
#   reverse-trained/  its trained baselines, every lr of the sweep
#   reverse-longer/   its longer bridge runs
#   report-reverse/   lw report over those, with the chosen rate of each sweep
# usage: scripts/collect-results.sh
set -eu
cd "$(dirname "$0")/.."
lw=build/smollm2-135m_to_gemma3-270m/lw
d=docs/results
copy_runs() {   # copy_runs FROM TO: FROM/<task>/<run>/eval.json -> TO/<task>.<run>.json
    mkdir -p "$2"
    for f in "$1"/*/*/eval.json; do
        [ -f "$f" ] || continue
        run=$(basename "$(dirname "$f")") task=$(basename "$(dirname "$(dirname "$f")")")
        cp "$f" "$2/$task.$run.json"
    done
}
copy_probes() { # copy_probes FROM TO: FROM/<task>/linear_probe.json -> TO/<task>.linear_probe.json
    for f in "$1"/*/linear_probe.json; do
        [ -f "$f" ] && cp "$f" "$2/$(basename "$(dirname "$f")").linear_probe.json"
    done
}
copy_baselines() { # copy_baselines FROM TO: FROM/*.json -> TO/
    for f in "$1"/*.json; do [ -f "$f" ] && cp "$f" "$2/"; done
}
# chosen_rates ROOT TRAINED TO: of each trained baseline's sweep (ROOT/trained, copied to TRAINED)
# the rate chosen on dev (scripts/lr-sweep.sh's best_lr), every seed of it, copied to TO once
# seed 2 is there. The whole sweep is tabulated in docs/results.md: a report over every rate
# would average the rates as if they were seeds.
chosen_rates() {
    # shellcheck disable=SC2034 # read by lr-sweep.sh
    root=$1
    . scripts/lr-sweep.sh
    for t in sst2 trec agnews banking77; do
        for m in prompt-tuning lora; do
            lr=$(best_lr $t $m)
            [ -n "$lr" ] && [ -f "$2/$t.$m-lr$lr-seed2.json" ] && cp "$2/$t.$m-lr$lr-seed"*.json "$3/"
        done
    done
    return 0
}
# logs_flag DIR: --logs DIR when every run under DIR has its training log. A
# clone whose runs came back from docs/ (scripts/restore-runs.sh: evaluations
# only) keeps the loss plots already in docs/ rather than redrawing them from
# part of the logs.
logs_flag() {
    for f in "$1"/*/*/eval.json; do
        [ -f "$f" ] || continue
        if [ ! -f "$(dirname "$f")/train_log.jsonl" ]; then
            echo "collect-results: $(dirname "$f") has no train_log.jsonl: the loss plots already in docs/ are kept" >&2
            return 0
        fi
    done
    echo "--logs $1"
}
tmp=/tmp/lwc-report.$$
trap 'rm -rf $tmp' EXIT
copy_runs runs/exp $d/bridge
copy_probes runs/exp $d/bridge
copy_runs runs/ablation $d/ablation
mkdir -p $d/baselines && copy_baselines runs/baselines $d/baselines
copy_runs runs/trained $d/trained
copy_runs runs/longer $d/longer
copy_runs runs/validate $d/validate
mkdir -p $tmp/default
cp $d/bridge/*.json $d/ablation/*.json $d/baselines/*.json $tmp/default/ 2>/dev/null || true
chosen_rates runs $d/trained $tmp/default
# shellcheck disable=SC2046 # logs_flag gives two words or none
$lw report --results $tmp/default $(logs_flag runs/exp) --out $d/report

rev=runs/gemma3-270m_to_smollm2-135m
copy_runs $rev/exp $d/reverse
copy_probes $rev/exp $d/reverse
copy_baselines $rev/baselines $d/reverse
[ -d $rev/trained ] && copy_runs $rev/trained $d/reverse-trained
[ -d $rev/longer ] && copy_runs $rev/longer $d/reverse-longer
mkdir -p $tmp/reverse
cp $d/reverse/*.json $tmp/reverse/ 2>/dev/null || true
[ -d $rev/trained ] && chosen_rates $rev $d/reverse-trained $tmp/reverse
# shellcheck disable=SC2046
ls $tmp/reverse/*.json >/dev/null 2>&1 && $lw report --results $tmp/reverse $(logs_flag $rev/exp) --out $d/report-reverse
exit 0
