#!/bin/sh
# lw send and lw receive as two processes (docs/wire.md), on the tiny pair
# tests/methods.sh trains (stories260K -> SmolLM2-135M, a 2-step bridge):
#   - `lw send | lw receive` (a pipe, files, a TCP socket) at fp32 prints exactly the label scores of the
#     in-process bridge (lw eval --scores), line for line, bit for bit;
#   - bf16, fp16 and int8 messages stay within a stated tolerance of them;
#   - damaged, cut, foreign (another bridge, task, sender weights) and
#     non-messages are refused with the reason, exit 1;
#   - where Python and numpy exist, tools/lw_wire.py reads what the C writer
#     wrote exactly as lw receive --inspect does, and the other way round.
set -eu
srcdir=$1 lwc=$2
suite=wire
. "$srcdir/tests/script_common.sh"
fails_saying() {   # fails_saying PATTERN COMMAND...: exits 1 and prints PATTERN
    pattern=$1; shift
    set +e; "$@" >"$w/out" 2>&1; rc=$?; set -e
    [ $rc -eq 1 ] && grep -q "$pattern" "$w/out" || { echo "exit $rc:"; cat "$w/out"; return 1; }
}
usage_error() {   # usage_error PATTERN COMMAND...: exits 2 and prints PATTERN
    pattern=$1; shift
    set +e; "$@" >"$w/out" 2>&1; rc=$?; set -e
    [ $rc -eq 2 ] && grep -q "$pattern" "$w/out" || { echo "exit $rc:"; cat "$w/out"; return 1; }
}
# the largest |difference| between the scores of two lw receive outputs
max_diff() {
    nums() { sed 's/.*"scores":{//; s/"[^"]*"://g; s/[{}]//g' "$1"; }
    nums "$1" > "$w/n1"; nums "$2" > "$w/n2"
    [ "$(wc -l < "$w/n1")" -eq "$(wc -l < "$w/n2")" ] || { echo 1e9; return; }
    paste -d, "$w/n1" "$w/n2" | awk -F, '{h = NF / 2; for (i = 1; i <= h; i++) {
        d = $i - $(i + h); if (d < 0) d = -d; if (d > m) m = d}} END {printf "%.6g", m + 0}'
}
within() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }

"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$w/build"
lw=$w/build/stories260k_to_smollm2-135m/lw
wire_fixture "$lw"

"$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$ck" --quiet --scores "$w/eval.scores" >/dev/null
check "eval --scores wrote 6 lines" test "$(grep -c '"scores":{"negative":' "$w/eval.scores")" = 6
"$lw" send --task sst2 --checkpoint "$ck" --input - --quiet < "$w/rows.jsonl" | "$lw" receive --checkpoint "$ck" \
    > "$w/pipe.scores"
check "send | receive = in-process bridge, bit for bit (fp32)" cmp "$w/eval.scores" "$w/pipe.scores"
"$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --out "$w/msgs.fp32" --quiet
"$lw" receive --checkpoint "$ck" --in "$w/msgs.fp32" --out "$w/file.scores"
check "through files too" cmp "$w/eval.scores" "$w/file.scores"
text=$(head -n 1 "$w/rows.jsonl" | sed 's/^{"text": "\(.*\)", "label".*/\1/')
"$lw" send --task sst2 --checkpoint "$ck" --text "$text" | "$lw" receive --checkpoint "$ck" > "$w/text.scores"
check "--text gives the first row's line" sh -c "head -n 1 '$w/eval.scores' | cmp - '$w/text.scores'"
# the socket transport: lw send --out tcp:HOST:PORT into lw receive --listen HOST:PORT (port 0: a free one)
"$lw" receive --checkpoint "$ck" --listen 127.0.0.1:0 > "$w/sock.scores" 2> "$w/sock.err" &
rpid=$!
i=0
until grep -q 'listening on port' "$w/sock.err" 2>/dev/null || [ $i -gt 300 ]; do i=$((i + 1)); sleep 0.1; done
sport=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$w/sock.err")
set +e
"$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --out "tcp:127.0.0.1:$sport" --quiet
wait $rpid
set -e
check "through a TCP socket too (send --out tcp: | receive --listen)" cmp "$w/eval.scores" "$w/sock.scores"
# both sides cut their products into the blocks lw eval cuts them into (lw_threads_apply): any thread
# count gives the same bytes, and the same as eval's (docs/wire.md, "Equal to the in-process bridge")
"$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --quiet --threads 2 | "$lw" receive \
    --checkpoint "$ck" --threads 2 > "$w/threads2.scores"
check "--threads 2 on both sides: the same bytes" cmp "$w/eval.scores" "$w/threads2.scores"
check "send checks --threads" usage_error "threads" "$lw" send --task sst2 --checkpoint "$ck" --text x --threads 0
check "receive checks LWC_THREADS" usage_error "LWC_THREADS" env LWC_THREADS=x "$lw" receive --checkpoint "$ck"
check "send to a port nobody listens on" fails_saying "cannot connect to 127.0.0.1:1" "$lw" send --task sst2 \
    --checkpoint "$ck" --text x --out tcp:127.0.0.1:1
check "fp32 message size" test "$(wc -c < "$w/msgs.fp32")" = $((6 * (208 + 4 * 576 * 4 + 8)))

# Tolerances on the label scores (summed log-probs), measured on this pair
# with margin (docs/wire.md): bf16 0.002, fp16 0.0003, int8 0.009.
for dt in bf16:0.02 fp16:0.005 int8:0.05; do
    d=${dt%%:*} tol=${dt#*:}
    "$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --dtype "$d" --out "$w/msgs.$d" --quiet
    "$lw" receive --checkpoint "$ck" --in "$w/msgs.$d" > "$w/$d.scores"
    diff=$(max_diff "$w/eval.scores" "$w/$d.scores")
    check "$d within $tol of fp32 (max |d| $diff)" within "$diff" "$tol"
    check "$d is not fp32" sh -c "! cmp -s '$w/eval.scores' '$w/$d.scores'"
done
check "sizes: bf16 = fp16 = half of fp32's payload" test "$(wc -c < "$w/msgs.bf16")" = $((6 * (208 + 2 * 4 * 576 + 8)))
check "int8: a byte a value plus a scale a token" test "$(wc -c < "$w/msgs.int8")" = $((6 * (208 + 4 * 4 + 4 * 576 + 8)))

# refusals: the reason, exit 1
r="$lw receive --checkpoint $ck"
head -c 9000 "$w/msgs.fp32" > "$w/cut"
check "cut short" fails_saying "cut short" $r --in "$w/cut"
cp "$w/msgs.fp32" "$w/flipped"
printf '\001' | dd of="$w/flipped" bs=1 seek=1000 conv=notrunc 2>/dev/null
check "damaged payload" fails_saying "checksum" $r --in "$w/flipped"
check "another bridge" fails_saying "another bridge" "$lw" receive --checkpoint "$w/other/final" --in "$w/msgs.fp32"
check "another task" fails_saying "message for task sst2; this side reads task agnews" $r --task agnews \
    --in "$w/msgs.fp32"
check "not a message" fails_saying "not a soft-token message" $r --in "$w/rows.jsonl"
check "no message" fails_saying "no message" $r --in /dev/null
LWC_RANDOM_WEIGHTS=7 "$lw" send --task sst2 --checkpoint "$ck" --text "$text" --out "$w/random" 2>/dev/null
check "another sender's weights" fails_saying "another sender weights file" $r --in "$w/random"
check "a good message after a bad one is not read" sh -c "if cat '$w/flipped' '$w/msgs.fp32' | \
    $r > '$w/partial' 2>/dev/null; then exit 1; fi; test ! -s '$w/partial'"
check "a refused stream leaves no --out file" sh -c "cat '$w/msgs.fp32' '$w/flipped' > '$w/mixed'; \
    ! $r --in '$w/mixed' --out '$w/never.scores' 2>/dev/null && ! ls '$w'/never.scores* 2>/dev/null"
printf '{"text": "fine"}\n{"label": "positive"}\n' > "$w/badrow.jsonl"
check "send names a bad row" fails_saying "badrow.jsonl:2: no \"text\" string" "$lw" send --task sst2 \
    --checkpoint "$ck" --input "$w/badrow.jsonl" --out "$w/never"
check "a failed send leaves no file" sh -c "! ls '$w'/never* 2>/dev/null"
check "send checks --dtype" usage_error "fp32, bf16, fp16 or int8" "$lw" send --task sst2 --checkpoint "$ck" \
    --text x --dtype fp8
check "receive wants a checkpoint" usage_error "checkpoint DIR is required" "$lw" receive
check "send checks the task" fails_saying "nosuchtask" "$lw" send --task nosuchtask --checkpoint "$ck" --text x

# bridge-fallback: below the threshold the receiver reads the text (zero-shot)
ev="--task sst2 --split $w/rows.jsonl --checkpoint $ck --quiet"
"$lw" eval $ev > "$w/bridge.txt"
"$lw" eval --task sst2 --split "$w/rows.jsonl" --method receiver-zeroshot --quiet > "$w/zs.txt"
"$lw" eval $ev --method bridge-fallback --threshold 0 --json "$w/fb0.json" > "$w/fb0.txt"
"$lw" eval $ev --method bridge-fallback --threshold 1e9 --curve --json "$w/fball.json" > "$w/fball.txt"
acc() { grep '^  accuracy' "$1" | awk '{print $2}'; }
check "fallback, threshold 0: nothing falls back, the bridge's accuracy" sh -c "grep -q '\"fallback_n\": 0,' \
    '$w/fb0.json' && test '$(acc "$w/fb0.txt")' = '$(acc "$w/bridge.txt")'"
check "fallback, threshold 1e9: all fall back, receiver-zeroshot's accuracy" sh -c "grep -q \
    '\"fallback_fraction\": 1.0' '$w/fball.json' && test '$(acc "$w/fball.txt")' = '$(acc "$w/zs.txt")'"
check "fallback curve: 7 points for 6 examples" test "$(grep -c '"below_margin"' "$w/fball.json")" = 7
check "fallback wants its threshold" usage_error "goes with --threshold" "$lw" eval $ev --method bridge-fallback

# the Python reader (only where Python and numpy exist)
if python3 -c 'import numpy' 2>/dev/null; then
    py=$srcdir/tools/lw_wire.py
    same_json() {   # same_json A B: the same JSON values line by line
        python3 -c 'import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
sys.exit(0 if a == b and a else 1)' "$1" "$2"
    }
    for d in fp32 bf16 fp16 int8; do
        "$lw" receive --inspect --in "$w/msgs.$d" > "$w/c.$d.json"
        python3 "$py" "$w/msgs.$d" > "$w/py.$d.json"
        check "tools/lw_wire.py reads the C writer's $d exactly" same_json "$w/c.$d.json" "$w/py.$d.json"
        python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import lw_wire
m = lw_wire.decode(open(sys.argv[2], "rb").read()[:lw_wire.HEADER_BYTES + 8 + lw_wire.payload_bytes(sys.argv[3], 4, 576)])
open(sys.argv[4], "wb").write(lw_wire.encode(m["soft"], sys.argv[3], m["seq"], m["pair"], m["task"], m["sender_layer"],
    {k: int(m[k], 16) for k in lw_wire.HASHES}))' "$srcdir/tools" "$w/msgs.$d" "$d" "$w/py.$d.msg"
        check "the Python writer's $d, byte for byte the C writer's" sh -c "head -c $(wc -c < "$w/py.$d.msg") \
            '$w/msgs.$d' | cmp - '$w/py.$d.msg'"
    done
    check "tools/lw_wire.py refuses a damaged message" sh -c "! python3 '$py' '$w/flipped' 2>'$w/pyerr' && \
        grep -q checksum '$w/pyerr'"
else
    echo "wire: Python reader checks skipped (no python3 with numpy)"
fi

echo "wire: $pass passed, $fail failed"
[ $fail -eq 0 ]
