#!/bin/sh
# The benches that scripts/device-checks.sh leaves out, in one call of the
# device tool (docs/gpu.md, "Benchmarks on the GPU"):
#
#   run(command="scripts/device-benches.sh", carry=[".device"], timeout_s=300)
#
# On random weights of the pairs' shapes (the model files do not travel):
# torch's decode/prefill HBM bandwidth for both models in bf16 and fp32
# (bench/hbm.py through torch_bench.py --hbm), the flagship pair's projected
# latency (bench/project_flagship.py), and `lw bench --device cuda` at batch
# 16. Each writes its JSON to $OUT; the log is $OUT/benches.log.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${OUT:-}" ] || { echo "usage: OUT=DIR $0 (the device tool sets \$OUT)" >&2; exit 2; }
cd "$src" || exit 1
export PYTHONUNBUFFERED=1 LWC_SHARED="$src/.device/shared" LWC_CACHE_DIR=/tmp/lwc-cache
log=$OUT/benches.log
split=$src/.device/shared/data/sst2/dev.jsonl
rc=0
run() { echo "==== $*" | tee -a "$log"; timeout -k 5 "$@" >>"$log" 2>&1 || { echo "FAIL ($?): $*" | tee -a "$log"; rc=1; }; }

run 120 python3 bench/project_flagship.py --dtype bf16 --runs 10 --warmup 3 --json "$OUT/flagship_bf16.json"
run 90 python3 bench/torch_bench.py --hbm --random-weights 1 --device cuda --dtype bf16 --runs 5 --warmup 2 \
    --json "$OUT/hbm_bf16.json"
run 90 python3 bench/torch_bench.py --hbm --random-weights 1 --device cuda --dtype fp32 --runs 5 --warmup 2 \
    --json "$OUT/hbm_fp32.json"
if run 60 sh scripts/device-checks.sh --configure && run 120 make -j16 &&
    run 60 out/bin/lwc build --quiet pairs/smollm2-135m_to_gemma3-270m.json -o /tmp/lwc-pair; then
    run 120 env LWC_RANDOM_WEIGHTS=1 /tmp/lwc-pair/smollm2-135m_to_gemma3-270m/lw bench --task sst2 --split "$split" \
        --limit 32 --runs 5 --warmup 1 --batch 16 --device cuda --json "$OUT/lw_fp32_b16.json"
fi
grep -E "^(hbm|  |project_flagship|FAIL)" "$log"
exit $rc
