#!/bin/sh
# Copies the eval JSON of finished runs (runs/, gitignored) into docs/results/
# where docs/results.md cites them, then rewrites the report tables and plots:
#   bridge/    runs/exp/<task>/<run>/eval.json and the linear probes
#   ablation/  runs/ablation/<task>/<variant>-seed<s>/eval.json
#   baselines/ runs/baselines/<task>.<method>.json
#   trained/   runs/trained/<task>/<method>-lr<lr>-seed<s>/eval.json (every lr of the sweep)
#   reverse/   the same for the reverse pair, runs/gemma3-270m_to_smollm2-135m/
#   longer/    runs/longer/<task>/<run>/eval.json (longer training than the grid's)
#   validate/  runs/validate/<task>/<run>/eval.json (a grid run again with newer code)
# usage: scripts/collect-results.sh
set -eu
cd "$(dirname "$0")/.."
lw=build/smollm2-135m_to_gemma3-270m/lw
d=docs/results
mkdir -p $d/bridge $d/ablation $d/baselines $d/trained $d/reverse $d/longer $d/validate
copy_runs() {   # copy_runs FROM TO: FROM/<task>/<run>/eval.json -> TO/<task>.<run>.json
    for f in "$1"/*/*/eval.json; do
        [ -f "$f" ] || continue
        run=$(basename "$(dirname "$f")") task=$(basename "$(dirname "$(dirname "$f")")")
        cp "$f" "$2/$task.$run.json"
    done
}
copy_runs runs/exp $d/bridge
for f in runs/exp/*/linear_probe.json; do [ -f "$f" ] && cp "$f" $d/bridge/"$(basename "$(dirname "$f")")".linear_probe.json; done
copy_runs runs/ablation $d/ablation
for f in runs/baselines/*.json; do [ -f "$f" ] && cp "$f" $d/baselines/; done
copy_runs runs/trained $d/trained
copy_runs runs/longer $d/longer
copy_runs runs/validate $d/validate
rev=runs/gemma3-270m_to_smollm2-135m
copy_runs $rev/exp $d/reverse
for f in $rev/exp/*/linear_probe.json; do [ -f "$f" ] && cp "$f" $d/reverse/"$(basename "$(dirname "$f")")".linear_probe.json; done
for f in $rev/baselines/*.json; do [ -f "$f" ] && cp "$f" $d/reverse/; done
# One report per pair: the default pair's bridge, probe, adapters and baselines, and of the trained
# baselines the learning rate chosen on dev (scripts/lr-sweep.sh's best_lr, whose seeds
# scripts/trained-baselines.sh ran;
# the whole sweep is tabulated by hand in docs/results.md: the report would average its rates as seeds).
mkdir -p /tmp/lwc-report.$$
trap 'rm -rf /tmp/lwc-report.$$' EXIT
cp $d/bridge/*.json $d/ablation/*.json $d/baselines/*.json /tmp/lwc-report.$$/ 2>/dev/null || true
root=runs
. scripts/lr-sweep.sh
for t in sst2 trec agnews banking77; do
    for m in prompt-tuning lora; do
        lr=$(best_lr $t $m)
        [ -n "$lr" ] && [ -f $d/trained/$t.$m-lr$lr-seed2.json ] && cp $d/trained/$t.$m-lr$lr-seed*.json /tmp/lwc-report.$$/
    done
done
$lw report --results /tmp/lwc-report.$$ --logs runs/exp --out $d/report
ls $d/reverse/*.json >/dev/null 2>&1 && $lw report --results $d/reverse --out $d/report-reverse
exit 0
