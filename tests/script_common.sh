# The preamble the end-to-end scripts share (methods.sh, wire.sh, serve.sh): sourced
# after `set -eu` with suite=NAME srcdir=DIR set. Gives $shared, $data (the
# SST-2 folder), a work folder $w removed at exit (kept with KEEP=1), a
# cache in it, one BLAS thread, and check NAME COMMAND... which runs a
# command, counts it in $pass / $fail and shows its log on failure.
shared=${LWC_SHARED:-$srcdir/../shared}
data=$shared/data/sst2
[ -f "$data/train.jsonl" ] || { echo "$suite: no $data/train.jsonl"; exit 1; }
w=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$w"' EXIT
export LWC_CACHE_DIR=$w/cache OPENBLAS_NUM_THREADS=1
pass=0 fail=0
check() {   # check NAME COMMAND...: run, count, show the log on failure
    name=$1; shift
    if "$@" >"$w/log" 2>&1; then pass=$((pass + 1)); else
        fail=$((fail + 1)); echo "$suite: FAIL $name"; tail -n 20 "$w/log"; fi
}
# wire_fixture LW: what wire.sh and serve.sh start from, made with the
# pair's lw: a bridge trained 2 steps ($ck, its checkpoint), another of 1
# step ($w/other/final: a checkpoint the first's messages are foreign to),
# and 6 dev rows in $w/rows.jsonl.
wire_fixture() {
    tiny="--task sst2 --data $data --limit-train 8 --batch 2 --lr 1e-3 --warmup 1 --quiet --soft-tokens 4"
    "$1" train $tiny --steps 2 --out "$w/bridge"
    "$1" train $tiny --steps 1 --out "$w/other"
    ck=$w/bridge/final
    head -n 6 "$data/dev.jsonl" > "$w/rows.jsonl"
}
