# Sourced by the experiment scripts: which pair (PAIR, default the README's),
# its lw (built if missing), the data folder and where results go (runs/ for
# the default pair, runs/<pair>/ for another).
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${LWC_SHARED:-$here/../shared}
pair=${PAIR:-smollm2-135m_to_gemma3-270m}
root=runs
[ "$pair" = smollm2-135m_to_gemma3-270m ] || root=runs/$pair
lw=build/$pair/lw
# (a caller that sets dry_run only prints what it would run: nothing is built)
[ -x "$lw" ] || [ -n "${dry_run:-}" ] || out/bin/lwc build "pairs/$pair.json"
# Banking77's files are sorted by label, so its --limit/--limit-train draw a
# stratified subset (docs/results.md); the other tasks' files are mixed and
# keep their first N.
subset_flags() { case $1 in banking77) echo "--subset stratified" ;; esac; }
# A run that trained to its last step and saved final/ is not trained again
# (its evaluation may have been what stopped): trained_already DIR STEPS.
trained_already() {
    [ -d "$1/final" ] && [ -n "$(ls "$1/final")" ] && tail -n 1 "$1/train_log.jsonl" 2>/dev/null | grep -q "\"step\": $2,"
}
# Several workers share the jobs: claim JOB takes one by creating JOB.lock
# (false when another worker holds it), release gives it back. A worker that
# stops, by an error or a signal, gives back the job it holds; one killed
# with SIGKILL, or by a reboot, leaves its lock: remove it by hand
# (scripts/missing-runs.sh marks such jobs "(claimed)").
held_lock=
release() { [ -z "$held_lock" ] || rmdir "$held_lock" 2>/dev/null || :; held_lock=; }
claim() { mkdir "$1.lock" 2>/dev/null || return 1; held_lock=$1.lock; }
trap release EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
