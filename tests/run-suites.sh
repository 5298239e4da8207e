#!/bin/sh
# Runs each Check suite given on the command line and sums their results into
# one closing line "N passed, N failed". Exits non-zero if any suite failed.
# Each suite's wall time goes to a line "time: NAME Ns", so the slow ones
# can be found (grep '^time:' | sort -k3 -n).
passed=0 failed=0 bad_suites=
for t in "$@"; do
    name=$(basename "$t")
    log=$(mktemp)
    start=$(date +%s)
    "$t" > "$log" 2>&1
    rc=$?
    cat "$log"
    echo "time: $name $(( $(date +%s) - start ))s"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        passed=$((passed + n - f - e)); failed=$((failed + f + e))
    elif [ $rc -ne 0 ]; then
        failed=$((failed + 1))
    fi
    if [ $rc -ne 0 ]; then bad_suites="$bad_suites $name"; fi
    rm -f "$log"
done
[ -z "$bad_suites" ] || echo "failed suites:$bad_suites"
echo "$passed passed, $failed failed"
[ -z "$bad_suites" ] && [ $failed -eq 0 ]
