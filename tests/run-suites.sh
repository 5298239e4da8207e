#!/bin/sh
# Runs each Check suite given on the command line and sums their results into
# one closing line "N passed, N failed". Exits non-zero if any suite failed.
# Each suite's wall time goes to a line "time: NAME Ns", so the slow ones
# can be found (grep '^time:' | sort -k3 -n).
#
# LWC_TEST_JOBS suites run side by side (default: the number of CPUs, nproc),
# since most suites are one thread and CI has two cores. Each suite's output
# is held in a file of its own and printed whole, in the order the suites were
# given, so the log reads as it did when they ran one after another. Suites
# are safe side by side: their scratch is $LWC_OUT/tmp/NAME.PID (tl_tmpdir)
# or mkstemp/mkdtemp names. With more than one job, OpenBLAS gets one thread
# (OPENBLAS_NUM_THREADS=1, as the end-to-end scripts already run) unless one
# is set: two suites each spinning two BLAS threads on two cores slow both.
jobs=${LWC_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in ''|*[!0-9]*|0) echo "run-suites: LWC_TEST_JOBS must be a positive number, not '$jobs'"; exit 2;; esac
[ "$jobs" -le 1 ] || export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

dir=$(mktemp -d) || exit 2
workers=
trap 'for p in $workers; do kill "$p" 2>/dev/null; done; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM

# One worker: walks the list and runs each suite no other worker has claimed
# yet (mkdir is the atomic claim). A suite's log, wall time and exit status
# go to $dir/N.*; the status file appears last, by rename, and says it is done.
worker() {
    i=0
    for t in "$@"; do
        i=$((i + 1))
        mkdir "$dir/claim.$i" 2>/dev/null || continue
        start=$(date +%s)
        "$t" > "$dir/$i.log" 2>&1
        rc=$?
        echo $(( $(date +%s) - start )) > "$dir/$i.time"
        echo $rc > "$dir/$i.rc.part" && mv "$dir/$i.rc.part" "$dir/$i.rc"
    done
}
k=0
while [ $k -lt "$jobs" ]; do
    worker "$@" &
    workers="$workers $!"
    k=$((k + 1))
done

passed=0 failed=0 bad_suites= i=0
for t in "$@"; do
    i=$((i + 1))
    name=$(basename "$t")
    while [ ! -f "$dir/$i.rc" ]; do sleep 0.2; done
    rc=$(cat "$dir/$i.rc")
    log=$dir/$i.log
    cat "$log"
    echo "time: $name $(cat "$dir/$i.time")s"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        passed=$((passed + n - f - e)); failed=$((failed + f + e))
    elif [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
    fi
    if [ "$rc" -ne 0 ]; then bad_suites="$bad_suites $name"; fi
done
wait
workers=
[ -z "$bad_suites" ] || echo "failed suites:$bad_suites"
echo "$passed passed, $failed failed"
[ -z "$bad_suites" ] && [ $failed -eq 0 ]
