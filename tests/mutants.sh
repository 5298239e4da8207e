#!/bin/sh
# Mutation check: plants each bug of a list (tests/mutants.txt) one at a time
# in a scratch copy of the tree and runs the unit suites against it. A
# mutant some suite fails on is KILLED; one every suite passes SURVIVED
# (a bug the tests cannot see: write the test that kills it).
#
# Usage: tests/mutants.sh [--worktree] [--list FILE] [NAME...]
#   --worktree  copy the working tree's tracked files (edits included)
#               instead of HEAD (git archive HEAD, the default)
#   --list FILE the mutant list (default tests/mutants.txt)
#   NAME...     only these mutants (default: all)
# Environment: MUTANTS_JOBS (make -j, default 1), MUTANTS_TMP (where the
# scratch tree goes, default $TMPDIR or /tmp), MUTANTS_KEEP=1 (keep it),
# MUTANTS_SUITE_TIMEOUT (seconds per suite run, default 900),
# LWC_MODELS / LWC_SHARED (default: the source tree's models/ and ../shared,
# as make check has them). OPENBLAS_NUM_THREADS defaults to 1.
#
# The scratch tree is configured and built once; the suites run once
# unmutated (each must pass, and their times order the runs: fastest first).
# Then per mutant: replace the search string (it must occur exactly once in
# the file), rebuild incrementally, run the mutant's first suite if the list
# names one, then the others, stopping at the first that fails; restore the
# file. A search string that matches no line (or several) is STALE, a
# mutant that does not compile is NOBUILD: both make the script fail, so the
# list stays current. Exits 0 only when every mutant was killed.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
list=$srcdir/tests/mutants.txt
from=head
while [ $# -gt 0 ]; do
    case $1 in
    --worktree) from=worktree; shift ;;
    --list) list=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "mutants: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ -r "$list" ] || { echo "mutants: cannot read $list" >&2; exit 2; }
jobs=${MUTANTS_JOBS:-1}
suite_timeout=${MUTANTS_SUITE_TIMEOUT:-900}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export LWC_MODELS=${LWC_MODELS:-$srcdir/models}
export LWC_SHARED=${LWC_SHARED:-$srcdir/../shared}

tmp=$(mktemp -d "${MUTANTS_TMP:-${TMPDIR:-/tmp}}/lwc-mutants.XXXXXX") || exit 2
tree=$tmp/src
cleanup() { [ "${MUTANTS_KEEP:-0}" = 1 ] && echo "mutants: scratch tree kept in $tree" || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tree"

now() { date +%s; }
start=$(now)

echo "mutants: copying $([ $from = head ] && echo "HEAD ($(git -C "$srcdir" rev-parse --short HEAD))" || echo "the working tree") to $tree"
if [ $from = head ]; then
    git -C "$srcdir" archive HEAD | tar -x -C "$tree" || exit 2
else
    (cd "$srcdir" && git ls-files -z | tar --null --no-recursion -T - -cf -) | tar -x -C "$tree" || exit 2
fi
export LWC_SRCDIR=$tree LWC_OUT=$tree/out
# the pairs name models/ and ../shared relative to the tree when the
# environment does not (a suite checks that they work without it)
[ -e "$tree/models" ] || ln -s "$(cd "$LWC_MODELS" 2>/dev/null && pwd || echo "$LWC_MODELS")" "$tree/models"
ln -s "$(cd "$LWC_SHARED" 2>/dev/null && pwd || echo "$LWC_SHARED")" "$tmp/shared"

echo "mutants: configure and build (make -j$jobs)"
(cd "$tree" && ./configure && make -j"$jobs") > "$tmp/build.log" 2>&1 || {
    tail -n 30 "$tmp/build.log"; echo "mutants: the unmutated tree does not build" >&2; exit 2; }

# run_suite NAME: builds (incrementally) and runs out/tests/NAME; 0 if it passed.
run_suite() {
    (cd "$tree" && make -s -j"$jobs" out/bin/lwc out/tests/"$1") < /dev/null > "$tmp/suite.log" 2>&1 || return 3
    (cd "$tree" && timeout "$suite_timeout" out/tests/"$1") < /dev/null > "$tmp/suite.log" 2>&1
}

# The unmutated suites: every one must pass; fastest first from here on.
echo "mutants: the unmutated suites"
: > "$tmp/times"
for bin in "$tree"/out/tests/check_*; do
    name=$(basename "$bin")
    t0=$(now)
    if ! run_suite "$name"; then
        tail -n 20 "$tmp/suite.log"
        echo "mutants: $name fails without a mutant; fix that first" >&2
        exit 2
    fi
    echo "$(($(now) - t0)) $name" >> "$tmp/times"
done
suites=$(sort -n "$tmp/times" | awk '{print $2}')
echo "mutants: $(echo "$suites" | wc -l) suites pass in $(awk '{s += $1} END {print s}' "$tmp/times") s"

# apply FILE: replaces $MUT_SEARCH by $MUT_REPLACE in FILE (literally, via
# ENVIRON so backslashes stay as written); prints the number of matches and
# writes only when there is exactly one.
apply() {
    n=$(awk 'BEGIN { s = ENVIRON["MUT_SEARCH"]; n = 0 }
             { line = $0; while ((i = index(line, s)) > 0) { n++; line = substr(line, i + length(s)) } }
             END { print n }' "$1")
    [ "$n" = 1 ] || { echo "$n"; return; }
    awk 'BEGIN { s = ENVIRON["MUT_SEARCH"]; r = ENVIRON["MUT_REPLACE"] }
         { i = index($0, s); if (i > 0) $0 = substr($0, 1, i - 1) r substr($0, i + length(s)); print }' \
        "$1" > "$tmp/mutated" && cat "$tmp/mutated" > "$1"
    echo 1
}

killed=0 survived=0 bad=0
results=$tmp/results
: > "$results"
tab=$(printf '\t')
while IFS="$tab" read -r name file first search replace desc; do
    case $name in ''|'#'*) continue ;; esac
    if [ $# -gt 0 ]; then
        want=no
        for n in "$@"; do [ "$n" = "$name" ] && want=yes; done
        [ $want = yes ] || continue
    fi
    t0=$(now)
    target=$tree/$file
    if [ ! -f "$target" ] || [ -z "$search" ]; then
        printf '%-26s STALE     (%s: no such file, or an empty search string)\n' "$name" "$file" | tee -a "$results"
        bad=$((bad + 1)); continue
    fi
    cp -p "$target" "$tmp/original"
    n=$(MUT_SEARCH=$search MUT_REPLACE=$replace apply "$target")
    if [ "$n" != 1 ]; then
        printf '%-26s STALE     (%s: the search string matches %s times, expected once)\n' "$name" "$file" "$n" \
            | tee -a "$results"
        bad=$((bad + 1)); continue
    fi
    order=$suites
    case $first in ''|-) ;; check_*) order=$(printf '%s\n%s\n' "$first" "$suites" | awk '!seen[$0]++') ;;
    *) order=$(printf 'check_%s\n%s\n' "$first" "$suites" | awk '!seen[$0]++') ;; esac
    verdict=SURVIVED by=
    for s in $order; do
        run_suite "$s"
        rc=$?
        if [ $rc = 3 ]; then verdict=NOBUILD; break; fi
        if [ $rc != 0 ]; then
            verdict=KILLED by=$s
            [ $rc = 124 ] && by="$s, timed out"
            break
        fi
    done
    # restore: a fresh mtime, so make rebuilds the object from the original
    cat "$tmp/original" > "$target"
    case $verdict in
    KILLED) killed=$((killed + 1)) ;;
    SURVIVED) survived=$((survived + 1)) ;;
    NOBUILD) bad=$((bad + 1)); tail -n 5 "$tmp/suite.log" ;;
    esac
    printf '%-26s %-9s %-28s %4d s  %s\n' "$name" "$verdict" "${by:--}" $(($(now) - t0)) "$desc" | tee -a "$results"
    # the first failure the killing suite reported, to tell a real kill from a broken run
    [ $verdict = KILLED ] && grep -m 1 -E ':[FE]:' "$tmp/suite.log" | sed 's|^.*/tests/|    why: tests/|' | cut -c 1-200
done < "$list"

echo "mutants: $(($(now) - start)) s in all (OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS, make -j$jobs)"
[ $bad -gt 0 ] && echo "$bad stale or not building: update $list"
echo "$killed killed, $survived survived"
[ $survived = 0 ] && [ $bad = 0 ]
