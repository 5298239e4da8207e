#!/bin/sh
# The first GPU session's checks, in one call of the device tool
# (docs/gpu.md, "Running the GPU checks"):
#
#   scripts/device-checks.sh --prepare     # here, once: fills .device/ (ignored by git)
#   run(command="scripts/device-checks.sh", carry=[".device"], timeout_s=540)
#
# On the device it builds the tree (with the .debs of .device/debs unpacked
# into a prefix if the image lacks libjansson, Check or OpenBLAS), runs the
# CUDA executors' host-twin suites and the GPU suites, then `lw bench --device cuda` (fp32, bf16) and the PyTorch
# reference, both on random weights of the pair's shapes (LWC_RANDOM_WEIGHTS:
# the model files do not travel), and bench/compare.py. Each step has its
# own timeout and the whole run a deadline (DEADLINE seconds, default 480);
# a step with no time left is skipped. $OUT gets at most 7 files: summary.txt,
# checks.log, compare.txt and the four bench JSONs. It reconfigures and
# rebuilds the tree it runs in: anywhere but a device machine, run it in a
# scratch copy with --out DIR.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
dev=$src/.device
PAIR=pairs/smollm2-135m_to_gemma3-270m.json
DEBS="libjansson4 libjansson-dev check libsubunit0 libsubunit-dev libgfortran5 libopenblas0-pthread
libopenblas-pthread-dev"

prepare() {
    mkdir -p "$dev/debs" "$dev/shared/data/sst2" || exit 1
    exclude=$(cd "$src" && git rev-parse --git-path info/exclude) || exit 1
    case $exclude in /*) ;; *) exclude=$src/$exclude ;; esac
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"
    shared=${LWC_SHARED:-$src/../shared}
    head -n 200 "$shared/data/sst2/dev.jsonl" >"$dev/shared/data/sst2/dev.jsonl" || {
        echo "device-checks: no $shared/data/sst2/dev.jsonl (set LWC_SHARED)" >&2; exit 1; }
    # shellcheck disable=SC2086
    (cd "$dev/debs" && apt-get download $DEBS) || { echo "device-checks: apt-get download failed" >&2; exit 1; }
    du -sh "$dev"
    echo "device-checks: prepared $dev; now run(command=\"scripts/device-checks.sh\", carry=[\".device\"], timeout_s=540)"
}

# --configure (the build step): the image's own libraries if configure finds
# them all, else the .debs unpacked into a prefix, reached through CC.
configure_here() {
    cd "$src" || exit 1
    if ./configure >/tmp/lwc-configure.txt 2>&1 && grep -q "^Check (unit tests) *yes" /tmp/lwc-configure.txt &&
        grep -q "^BLAS (CPU matrix products) *yes" /tmp/lwc-configure.txt; then
        cat /tmp/lwc-configure.txt; echo "configure: the image's own libraries"; return 0
    fi
    cat /tmp/lwc-configure.txt
    echo "configure: the image lacks libjansson, Check or OpenBLAS: unpacking .device/debs into /tmp/lwc-deps"
    p=/tmp/lwc-deps
    rm -rf "$p" && mkdir -p "$p" || return 1
    for f in "$dev"/debs/*.deb; do dpkg -x "$f" "$p" || return 1; done
    lib=$p/usr/lib/x86_64-linux-gnu ob=$p/usr/lib/x86_64-linux-gnu/openblas-pthread
    # one program, not a command line: lwc build runs the recorded CC as argv[0];
    # DT_RPATH (not RUNPATH) also finds libopenblas's libgfortran there
    printf '#!/bin/sh\nexec cc -I%s -I%s -L%s -L%s -Wl,--disable-new-dtags -Wl,-rpath,%s -Wl,-rpath,%s "$@"\n' "$p/usr/include" \
        "$p/usr/include/x86_64-linux-gnu/openblas-pthread" "$lib" "$ob" "$lib" "$ob" >"$p/cc" &&
        chmod +x "$p/cc" && ./configure CC="$p/cc"
}

[ "${1:-}" = --prepare ] && { prepare; exit 0; }
[ "${1:-}" = --configure ] && { configure_here; exit $?; }
if [ "${1:-}" = --out ] && [ -n "${2:-}" ]; then OUT=$2; fi
[ -n "${OUT:-}" ] || { echo "usage: $0 --prepare | $0 --out DIR (the device tool sets \$OUT)" >&2; exit 2; }
[ -d "$dev/debs" ] || { echo "device-checks: no $dev/debs: run --prepare here and carry .device" >&2; exit 2; }
mkdir -p "$OUT" || exit 1
cd "$src" || exit 1

start=$(date +%s)
deadline=${DEADLINE:-480}
jobs=${JOBS:-16}
log=$OUT/checks.log summary=$OUT/summary.txt
: >"$log"
: >"$summary.tmp"
export LWC_SRCDIR="$src" LWC_OUT="$src/out" LWC_MODELS="$src/models" LWC_SHARED="$dev/shared" \
    LWC_CACHE_DIR=/tmp/lwc-cache
export PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
split=$dev/shared/data/sst2/dev.jsonl
failed=0

note() { echo "$*" >>"$summary.tmp"; echo "device-checks: $*"; }
finish() {
    { echo "device checks, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(( $(date +%s) - start )) s of a ${deadline} s budget"
      cat "$summary.tmp"; } >"$summary"
    rm -f "$summary.tmp"
    echo "==== summary"; cat "$summary"
}
trap finish EXIT

# step NAME SECONDS COMMAND...: runs it with its timeout cut to the time left.
step() {
    name=$1 want=$2; shift 2
    left=$(( deadline - ($(date +%s) - start) - 15 ))
    if [ "$left" -lt 10 ]; then note "SKIP  $name (no time left)"; failed=1; return 1; fi
    [ "$want" -gt "$left" ] && want=$left
    echo "==== $name (timeout ${want}s): $*" >>"$log"
    from=$(( $(wc -l <"$log") + 1 ))
    t0=$(date +%s)
    timeout -k 5 "$want" "$@" >>"$log" 2>&1
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then note "PASS  $name (${dt} s)"; return 0; fi
    failed=1
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then note "TIME  $name (killed after ${want} s)"; return 1; fi
    why=$(tail -n +"$from" "$log" | tail -n 40 | grep -m1 -i -E "no CUDA device|CUDA driver|no CUDA|torch sees no CUDA|cannot run" |
          cut -c1-160)
    note "FAIL  $name (exit $rc, ${dt} s)${why:+: $why}"
    return 1
}

device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)
note "device: ${device:-none (nvidia-smi found no GPU)}; $(nproc) CPUs; $(uname -r)"

# ---- build ------------------------------------------------------------------
step configure 90 sh "$src/scripts/device-checks.sh" --configure &&
step "make -j$jobs" 300 make -j"$jobs" &&
step "make gpu tests" 90 make -j"$jobs" out/tests/gpu/check_kernels_gpu out/tests/gpu/check_model_gpu \
    out/tests/gpu/check_receiver_pass_gpu out/tests/gpu/check_train_gpu out/tests/gpu/check_bench_gpu \
    out/tests/gpu/check_backend_ops_gpu out/tests/gpu/check_decode_graph_gpu out/tests/gpu/check_bridge_gpu \
    out/tests/check_plan_cuda_host out/tests/check_bridge_cuda_host
built=$?
[ -x out/bin/lwc ] && grep -E "NVRTC|build  " "$log" | tail -n 2 | while read -r l; do note "  $l"; done

# ---- the GPU suites (random weights of the real shapes: models/ does not travel).
# The CUDA executor of the plan (runtime/model/plan_cuda.c), tested here only
# over the host twin (check_plan_cuda_host, first: a few seconds on the CPU),
# runs on the device in check_model_gpu (inference: lw_gpu_forward) and
# check_receiver_pass_gpu (training: loss, backward, scores, adapters; a
# micro-batch as one packed pass; the backward through bf16 weights and its
# cuBLAS product lw_cublas_matmul_dx_bf16), each against the CPU executor;
# its plan kernels (add, copy, bias_add_forward for Qwen2's q/k/v bias,
# attention_varlen_* for packed segments; the graph-ready step's
# attention_decode_forward and kv_cache_store) in check_kernels_gpu; a decode
# step captured once as a CUDA graph and replayed (gpu_decode.c) against the
# same step without a graph and today's decode in check_decode_graph_gpu.
if [ $built -eq 0 ]; then
    step "check_plan_cuda_host (the executor over the host twin)" 60 out/tests/check_plan_cuda_host
    step "check_bridge_cuda_host (the bridge's executor, AdamW, over the host twin)" 30 out/tests/check_bridge_cuda_host
    step check_kernels_gpu 90 out/tests/gpu/check_kernels_gpu
    step "check_model_gpu (the executor: inference)" 150 out/tests/gpu/check_model_gpu
    step "check_receiver_pass_gpu (the executor: training)" 120 out/tests/gpu/check_receiver_pass_gpu
    step "check_decode_graph_gpu (a decode step as a CUDA graph)" 90 out/tests/gpu/check_decode_graph_gpu
    step check_backend_ops_gpu 60 out/tests/gpu/check_backend_ops_gpu
    # the bridge's plan resident on the device (runtime/model/bridge_cuda.c: forward, backward,
    # every gradient against the CPU executor) and AdamW with the global-norm clip on the device
    step "check_bridge_gpu (the bridge's executor, AdamW)" 60 out/tests/gpu/check_bridge_gpu
    step check_train_gpu 90 out/tests/gpu/check_train_gpu
    step check_bench_gpu 90 out/tests/gpu/check_bench_gpu
else
    note "SKIP  the GPU suites (the build failed: see checks.log)"
fi

# ---- benches: lw and torch on the same random-weight shapes and prompt lengths
lw=/tmp/lwc-pair/smollm2-135m_to_gemma3-270m/lw
bench="--task sst2 --split $split --limit 32 --runs 10 --warmup 2 --batch 1,4 --quiet"
if [ $built -eq 0 ] && step "lwc build $PAIR" 120 out/bin/lwc build --quiet "$PAIR" -o /tmp/lwc-pair; then
    # shellcheck disable=SC2086
    step "lw bench cuda fp32" 75 env LWC_RANDOM_WEIGHTS=1 "$lw" bench $bench --device cuda --json "$OUT/lw_fp32.json"
    # shellcheck disable=SC2086
    step "torch bench cuda fp32" 90 python3 bench/torch_bench.py --random-weights 1 $bench --device cuda \
        --dtype fp32 --json "$OUT/torch_fp32.json"
    # shellcheck disable=SC2086
    step "lw bench cuda bf16" 60 env LWC_RANDOM_WEIGHTS=1 "$lw" bench $bench --device cuda --dtype bf16 \
        --json "$OUT/lw_bf16.json"
    # shellcheck disable=SC2086
    step "torch bench cuda bf16" 75 python3 bench/torch_bench.py --random-weights 1 $bench --device cuda \
        --dtype bf16 --json "$OUT/torch_bf16.json"
    # data parallel at world size 1 through NCCL: the same losses as the local comm
    # (batch 4: each step's 4 examples as one packed GPU pass)
    tr="--task sst2 --train $split --limit-train 32 --steps 6 --batch 4 --warmup 1 --device cuda --quiet"
    # shellcheck disable=SC2086
    step "lw train cuda, comm local" 90 env LWC_RANDOM_WEIGHTS=1 "$lw" train $tr --comm local --out /tmp/dc-local --force &&
    # shellcheck disable=SC2086
    step "lw train cuda, comm nccl, world 1" 60 env LWC_RANDOM_WEIGHTS=1 "$lw" train $tr \
        --comm nccl --out /tmp/dc-nccl --force &&
    step "nccl world 1 = local (losses)" 10 sh -c 'for d in local nccl; do
        sed "s/.*\"loss\": *\([^,]*\),.*/\1/" /tmp/dc-$d/train_log.jsonl >/tmp/dc-$d.loss; done
        cat /tmp/dc-nccl.loss; [ -s /tmp/dc-local.loss ] && cmp /tmp/dc-local.loss /tmp/dc-nccl.loss'
    # the same run through bf16 weights on the GPU: its first step's loss within 5e-2 of fp32's
    # shellcheck disable=SC2086
    step "lw train cuda --dtype bf16" 60 env LWC_RANDOM_WEIGHTS=1 "$lw" train $tr --dtype bf16 --comm local \
        --out /tmp/dc-bf16 --force &&
    step "bf16 first loss = fp32's (5e-2)" 10 sh -c 'for d in local bf16; do
        sed "s/.*\"loss\": *\([^,]*\),.*/\1/" /tmp/dc-$d/train_log.jsonl >/tmp/dc-$d.loss; done
        cat /tmp/dc-bf16.loss
        paste /tmp/dc-local.loss /tmp/dc-bf16.loss | head -n 1 |
        awk "{d = \$1 - \$2; if (d < 0) d = -d; a = \$1 < 0 ? -\$1 : \$1; exit !(d <= 0.05 * a && a > 0)}"'
else
    note "SKIP  the benches (no lw binary)"
fi
: >"$OUT/compare.txt"
for d in fp32 bf16; do
    if [ -f "$OUT/lw_$d.json" ] && [ -f "$OUT/torch_$d.json" ]; then
        echo "== $d" >>"$OUT/compare.txt"
        step "compare $d" 20 sh -c "python3 bench/compare.py '$OUT/lw_$d.json' '$OUT/torch_$d.json' >>'$OUT/compare.txt'"
    else
        note "SKIP  compare $d (needs both JSONs)"
    fi
done
[ -s "$OUT/compare.txt" ] || rm -f "$OUT/compare.txt"
# last, with whatever time is left: the kernel suite under compute-sanitizer's
# memory checker (Firecracker machines run it; gVisor ones refuse the device)
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ $built -eq 0 ] && [ -x "$cs" ]; then
    step "compute-sanitizer check_kernels_gpu" 120 "$cs" --tool memcheck --error-exitcode 3 \
        out/tests/gpu/check_kernels_gpu
fi
[ $failed -eq 0 ] && note "all steps passed" || note "some steps did not pass: see checks.log"
exit $failed
