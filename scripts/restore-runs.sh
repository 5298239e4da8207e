#!/bin/sh
# The inverse of scripts/collect-results.sh, for a new clone: puts the eval
# JSON kept in docs/results/ back where the experiment scripts look for
# finished runs (runs/, gitignored), so that they and scripts/missing-runs.sh
# skip what is done instead of running it again. A file already in runs/ is
# kept. Only evaluations come back (docs/ keeps no checkpoints or training
# logs), so scripts/collect-results.sh on such a clone keeps the loss plots
# already in docs/.
# usage: scripts/restore-runs.sh
set -eu
cd "$(dirname "$0")/.."
d=docs/results
rev=runs/gemma3-270m_to_smollm2-135m
restored=0
put() { # put FROM TO: FROM copied to TO unless TO is there (a temporary name, then renamed)
    [ -e "$2" ] && return 0
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
    restored=$((restored + 1))
}
# put_runs FROM TO [BASELINES]: FROM/<task>.<run>.json -> TO/<task>/<run>/eval.json,
# FROM/<task>.linear_probe.json -> TO/<task>/linear_probe.json; with BASELINES, a
# file whose run is not a grid run (M<m>-seed<s>) is a baseline: -> BASELINES/.
put_runs() {
    for f in "$1"/*.json; do
        [ -f "$f" ] || continue
        name=$(basename "$f" .json) task=${name%%.*} run=${name#*.}
        case $run in
        linear_probe) put "$f" "$2/$task/linear_probe.json" ;;
        M*-seed*) put "$f" "$2/$task/$run/eval.json" ;;
        *) if [ $# -ge 3 ]; then put "$f" "$3/$name.json"; else put "$f" "$2/$task/$run/eval.json"; fi ;;
        esac
    done
}
put_runs $d/bridge runs/exp
put_runs $d/ablation runs/ablation
put_runs $d/baselines runs/baselines runs/baselines
put_runs $d/trained runs/trained
put_runs $d/longer runs/longer
put_runs $d/validate runs/validate
put_runs $d/reverse $rev/exp $rev/baselines
put_runs $d/reverse-trained $rev/trained
put_runs $d/reverse-longer $rev/longer
echo "restore-runs: $restored evaluation(s) put back under runs/"
