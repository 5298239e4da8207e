#!/bin/sh
# CPU seconds a training step on a loaded machine (issue 19, item 3): for each round, threads 1 then 2,
# each lw binary given, the demo protocol's `lw train --dtype q8` at --steps 2 and --steps STEPS; a step's
# CPU is (user+sys of the long run - of the short run) / (STEPS - 2), which leaves the model load out.
# Also prints the load average at the start of each run and the steady examples/s of the run's log
# (median step after the first two; wall-clock, so only a result on an idle machine).
#   LWC_CACHE_DIR=runs/cache sh bench/train_cpu_step.sh ROUNDS STEPS OUTDIR LW...
# One line a run: round R bin LW threads N steps S cpu_s USER SYS WALL load L steady_eps E
[ $# -ge 4 ] || { echo "usage: $0 ROUNDS STEPS OUTDIR LW..." >&2; exit 2; }
R=$1; S=$2; O=$3; shift 3
mkdir -p "$O" || exit 1
for r in $(seq "$R"); do for t in 1 2; do for b in "$@"; do for s in 2 "$S"; do
    l0=$(cut -d' ' -f1 /proc/loadavg)
    d="$O/run-$(basename "$b")-t$t-s$s"
    /usr/bin/time -f "%U %S %e" -o "$O/time" "$b" train --task sst2 --data /work/shared/data/sst2 --limit-train 64 \
        --batch 8 --lr 3e-4 --warmup 1 --soft-tokens 16 --quiet --force --dtype q8 --steps "$s" --threads "$t" \
        --out "$d" > /dev/null 2>&1 || { echo "round $r bin $b threads $t steps $s failed"; continue; }
    eps=$(python3 -c "
import json, statistics
r = [json.loads(l) for l in open('$d/train_log.jsonl')]
el = [r[i]['elapsed_s'] - (r[i - 1]['elapsed_s'] if i else 0) for i in range(len(r))]
print('%.3f' % (8 / statistics.median(el[2:] or el)))")
    echo "round $r bin $b threads $t steps $s cpu_s $(cat "$O/time") load $l0 steady_eps $eps"
done; done; done; done
