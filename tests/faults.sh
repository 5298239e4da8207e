#!/bin/sh
# Fault injection through the lw binary (the stories260K -> SmolLM2-135M
# pair, 8 examples, a few steps): each fault must leave everything that was
# good as it was.
#   1. a rerun into a folder holding a run: refused, nothing changed; --force
#      moves the old run aside whole
#   2. two trainers on one --out: the second is refused, naming the first
#   3. SIGKILL mid-run: the next run takes the stale lock over, resumes, and
#      the log has each step once
#   4. a NaN at step k (a poisoned sender-state cache): exit 1 naming the
#      step, the last checkpoint byte for byte as it was
#   5. a full disk (a small tmpfs; skipped where mount is not allowed): exit
#      1 with the reason, every checkpoint that is there loads, no half files
#   6. early stopping resumed from a middle checkpoint: the dev log is cut
#      there and ends as the straight run's; half-given options refused;
#      best/ carries run.json and evaluates from anywhere
set -eu
srcdir=$1 lwc=$2
shared=${LWC_SHARED:-$srcdir/../shared}
data=$shared/data/sst2
[ -f "$data/train.jsonl" ] || { echo "faults: no $data/train.jsonl"; exit 1; }
w=$(mktemp -d)
mnt=
cleanup() {
    [ -z "$mnt" ] || umount "$mnt" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$w"
}
trap cleanup EXIT
export LWC_CACHE_DIR=$w/cache OPENBLAS_NUM_THREADS=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "faults: FAIL $1"; [ ! -f "$w/log" ] || tail -n 5 "$w/log"; }
check() {   # check NAME COMMAND...
    name=$1; shift
    if "$@" >"$w/log" 2>&1; then ok; else bad "$name"; fi
}
says() { grep -q -- "$1" "$w/log"; }                    # the last command's output holds $1
refused() { ! "$@" >"$w/log" 2>&1; }                  # the command fails
sums() { (cd "$1" && find . -type f ! -name .lock | LC_ALL=C sort | xargs sha256sum); }
steps_once() {   # the log's steps are 1..N, each once, in order
    awk -F'[:,]' -v n="$2" '{ if ($2 + 0 != NR) bad = 1 } END { exit !(NR == n && !bad) }' "$1/train_log.jsonl"
}

"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$w/build"
lw=$w/build/stories260k_to_smollm2-135m/lw
tiny="--task sst2 --data $data --limit-train 8 --batch 2 --lr 1e-3 --warmup 1 --quiet --soft-tokens 4"

# 1. rerun and --force
check "first run" "$lw" train $tiny --steps 2 --checkpoint-every 1 --out "$w/a"
sums "$w/a" >"$w/a.sums"
if refused "$lw" train $tiny --steps 3 --seed 9 --out "$w/a" && says "already holds a run" && says "--resume" &&
   says "--force"; then ok; else bad "a rerun into a run's folder is refused, naming --resume and --force"; fi
sums "$w/a" >"$w/a.sums2"
check "the refused rerun changed nothing" cmp "$w/a.sums" "$w/a.sums2"
check "--force" "$lw" train $tiny --steps 1 --seed 9 --out "$w/a" --force
aside=$(ls -d "$w"/a.replaced-* 2>/dev/null | head -n 1)
if [ -n "$aside" ] && sums "$aside" | cmp -s - "$w/a.sums"; then ok; else bad "--force moved the old run aside whole"; fi
if [ ! -e "$w/a/step-1" ] && [ "$(grep -c . "$w/a/train_log.jsonl")" = 1 ] && grep -q '"seed": 9' "$w/a/run.json"
then ok; else bad "after --force the folder holds the new run only"; fi

# 2. two writers
"$lw" train $tiny --steps 12 --out "$w/b" >"$w/b.out" 2>&1 &
first=$!
i=0
while [ ! -s "$w/b/.lock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if refused "$lw" train $tiny --steps 3 --out "$w/b" --resume "$w/b" && says "being written by another run (pid $first "
then ok; else bad "a second writer is refused, naming the first"; fi
if wait $first && steps_once "$w/b" 12; then ok; else bad "the first writer finished with its 12 steps logged"; fi

# 3. SIGKILL mid-run, then resume
"$lw" train $tiny --steps 200 --checkpoint-every 1 --out "$w/c" >"$w/c.out" 2>&1 &
victim=$!
i=0
while [ ! -d "$w/c/step-3" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $victim
wait $victim 2>/dev/null || true
last=$(ls -d "$w"/c/step-* | sed 's/.*step-//' | sort -n | tail -n 1)
check "resume after SIGKILL" "$lw" train $tiny --steps $((last + 2)) --checkpoint-every 1 --resume "$w/c/step-$last" \
    --out "$w/c"
if says "ended without releasing it (pid $victim " && steps_once "$w/c" $((last + 2)); then ok; else
    bad "the stale lock was taken over and the log has each step once ($(cat "$w/c/train_log.jsonl" | wc -l) lines)"
fi
if ls -a "$w/c" | grep -q '\.tmp'; then bad "a killed writer's leftovers were cleared"; else ok; fi

# 4. NaN at step 3
check "NaN set-up" "$lw" train $tiny --steps 2 --checkpoint-every 1 --out "$w/d"
sums "$w/d/final" >"$w/d.sums"
for f in "$w"/cache/*.states; do   # every float after the header and index (8 examples) becomes NaN
    size=$(wc -c <"$f")
    head -c 152 "$f" >"$f.new"
    head -c $((size - 152)) /dev/zero | tr '\000' '\377' >>"$f.new"
    mv "$f.new" "$f"
done
if refused "$lw" train $tiny --steps 4 --checkpoint-every 1 --resume "$w/d/final" --out "$w/d" &&
   says "step 3: the loss is NaN" && says "the last checkpoint, $w/d/final, is as it was"
then ok; else bad "a NaN step stops the run, naming the step and the checkpoint"; fi
if sums "$w/d/final" | cmp -s - "$w/d.sums" && [ ! -e "$w/d/step-3" ]; then ok; else
    bad "the last good checkpoint is untouched"; fi
rm -rf "$w/cache"

# 5. a full disk
mkdir -p "$w/full"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=3m tmpfs "$w/full" 2>/dev/null; then
    mnt=$w/full
    # each checkpoint of this bridge is ~1.3 MB: the second one cannot fit
    if refused "$lw" train $tiny --steps 6 --checkpoint-every 1 --out "$w/full/run" && says "No space left"
    then ok; else bad "a full disk stops the run with the reason"; fi
    if [ -d "$w/full/run/step-1" ] && ! ls -a "$w/full/run" | grep -q '\.tmp'; then ok; else
        bad "the checkpoint written before the disk filled is there, and no half one"; fi
    for ck in "$w"/full/run/step-* "$w"/full/run/final; do
        [ -d "$ck" ] || continue
        n=${ck##*/step-}; [ "$n" != "$ck" ] || n=6
        check "$(basename "$ck") loads after the full disk" "$lw" train $tiny --steps "$n" --resume "$ck" \
            --out "$w/verify-$(basename "$ck")"
    done
    umount "$w/full" && mnt=
else
    echo "faults: full disk skipped (mounting a tmpfs needs root and a mount-capable sandbox)"
fi

# 6. early stopping (docs/objectives.md): the straight run logs one dev
# evaluation a step and keeps best/; resumed from step-3 of a copy it must
# cut the log there and end with the same log as the straight run
es="--eval-every 1 --dev-slice 2 --checkpoint-every 1"
check "early stopping run" "$lw" train $tiny --steps 5 $es --out "$w/e"
if [ "$(grep -c . "$w/e/dev_log.jsonl")" = 5 ] && [ -d "$w/e/best" ] && grep -q '"eval_every": 1' "$w/e/run.json"
then ok; else bad "five dev evaluations logged, best/ kept, the options in run.json"; fi
# every checkpoint folder describes itself: best/ holds the run's run.json (with --dtype), so a best/
# of M = 3 copied away evaluates without --soft-tokens; without it, the pair's M (4) does not fit
if [ -f "$w/e/best/run.json" ] && cmp -s "$w/e/best/run.json" "$w/e/run.json" &&
   cmp -s "$w/e/final/run.json" "$w/e/run.json" && grep -q '"dtype": "fp32"' "$w/e/run.json"
then ok; else bad "best/ and final/ hold the run's run.json, which names the dtype"; fi
check "early stopping run, M = 3" "$lw" train $tiny --soft-tokens 3 --steps 1 --eval-every 1 --dev-slice 2 \
    --out "$w/m3"
cp -r "$w/m3/best" "$w/moved-best"
check "a best/ copied away evaluates with its own M" "$lw" eval --task sst2 --split "$data/dev.jsonl" --limit 2 \
    --checkpoint "$w/moved-best" --quiet
rm "$w/moved-best/run.json"
if refused "$lw" eval --task sst2 --split "$data/dev.jsonl" --limit 2 --checkpoint "$w/moved-best" --quiet
then ok; else bad "without its run.json the copied best/ is refused (the test's control)"; fi
cp -r "$w/e" "$w/e2" && rm -f "$w/e2/.lock"
check "early stopping resumed" "$lw" train $tiny --steps 5 $es --resume "$w/e2/step-3" --out "$w/e2"
if cmp -s "$w/e/dev_log.jsonl" "$w/e2/dev_log.jsonl"; then ok; else bad "the resumed dev log is the straight one"; fi
if refused "$lw" train $tiny --steps 2 --eval-every 1 --out "$w/e3" && says "together"; then ok; else
    bad "--eval-every without --dev-slice refused"; fi
if refused "$lw" train $tiny --steps 2 --ce last --out "$w/e3" && says "full or first"; then ok; else
    bad "--ce last refused"; fi

echo "faults: $pass passed, $fail failed"
[ $fail -eq 0 ]
