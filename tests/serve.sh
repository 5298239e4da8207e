#!/bin/sh
# lw serve (docs/wire.md, "HTTP") on loopback, on the tiny pair of
# tests/wire.sh (stories260K -> SmolLM2-135M, a 2-step bridge):
#   - /v1/classify, and /v1/send then /v1/receive, answer exactly the
#     in-process bridge's lw eval --scores lines (fp32); /v1/send's bytes are
#     lw send's; /v1/receive reads lw send's messages;
#   - each bad input is refused with its 4xx and a JSON error naming it;
#   - roles: a sender does not receive;
#   - SIGTERM: a request in flight is answered, then exit 0;
#   - a short bounded load (scripts/serve-load.sh): concurrent clients, every
#     answer right, the refusals, RSS flat;
#   - lw eval --score-batch (the packed pass --packed uses) agrees with one by one to float rounding,
#     on SST-2 and on Banking77 (an example's labels over several passes).
# Without libmicrohttpd (LWC_HAVE_MHD=no), lw serve must say so and exit 1.
set -eu
srcdir=$1 lwc=$2
suite=serve
. "$srcdir/tests/script_common.sh"
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$w"; }
trap cleanup EXIT

"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$w/build"
lw=$w/build/stories260k_to_smollm2-135m/lw

if [ "${LWC_HAVE_MHD:-yes}" = no ]; then
    set +e; "$lw" serve --task sst2 --checkpoint "$w" > "$w/out" 2>&1; rc=$?; set -e
    check "without libmicrohttpd: a clear error, exit 1" sh -c "[ $rc -eq 1 ] && \
        grep -q 'this build has no HTTP server (libmicrohttpd not found at configure)' '$w/out'"
    echo "serve: HTTP checks skipped (configure found no libmicrohttpd)"
    echo "serve: $pass passed, $fail failed"
    [ $fail -eq 0 ]
    exit
fi
command -v curl >/dev/null || { echo "serve: needs curl (apt-get install curl)"; exit 1; }

wire_fixture "$lw"
"$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$ck" --quiet --scores "$w/eval.scores" >/dev/null
"$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --out "$w/msgs" --quiet
"$lw" send --task sst2 --checkpoint "$w/other/final" --text "a film" --out "$w/foreign" --quiet

# start NAME ARGS...: lw serve on a free port; sets $port and $pid
start() {
    name=$1; shift
    "$lw" serve --task sst2 --listen 127.0.0.1:0 "$@" > "$w/$name.out" 2> "$w/$name.err" &
    pid=$!
    pids="$pids $pid"
    i=0
    until grep -q 'listening on' "$w/$name.out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then echo "serve: $name did not start"; cat "$w/$name.err"; exit 1; fi
        sleep 0.1
    done
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$w/$name.out")
}
# post PATH FILE OUT: the HTTP code
post() { curl -s -o "$3" -w '%{http_code}' -X POST --data-binary @"$2" "http://127.0.0.1:$port$1" || echo 000; }
# answers CODE PATTERN FILE: the code was CODE and FILE a JSON error matching PATTERN
answers() { [ "$1" = "$2" ] && grep -q "^{\"error\":.*$3" "$4" || { echo "HTTP $1: $(cat "$4")"; return 1; }; }

start both --checkpoint "$ck" --max-body 100000
both_pid=$pid both_port=$port
check "health" sh -c "curl -sf http://127.0.0.1:$port/health | grep -q '\"status\":\"ok\",\"role\":\"both\",\"pair\":\"stories260k_to_smollm2-135m\",\"task\":\"sst2\",\"bridge\":\"[0-9a-f]\{16\}\"'"
i=0
: > "$w/classify.scores"; : > "$w/sendrecv.scores"; : > "$w/http.msgs"
while IFS= read -r line; do
    printf '%s' "$line" | sed "s/^{\"text\": \(\".*\"\), \"label\".*\$/{\"text\": \1, \"seq\": $i}/" > "$w/body.$i"
    c1=$(post /v1/classify "$w/body.$i" "$w/a"); cat "$w/a" >> "$w/classify.scores"; echo >> "$w/classify.scores"
    c2=$(post /v1/send "$w/body.$i" "$w/m"); cat "$w/m" >> "$w/http.msgs"
    c3=$(post /v1/receive "$w/m" "$w/a"); cat "$w/a" >> "$w/sendrecv.scores"; echo >> "$w/sendrecv.scores"
    [ "$c1$c2$c3" = 200200200 ] || echo "row $i: HTTP $c1 $c2 $c3" >> "$w/codes"
    i=$((i + 1))
done < "$w/rows.jsonl"
check "every request 200" test ! -s "$w/codes"
check "/v1/classify = lw eval --scores, bit for bit (fp32)" cmp "$w/eval.scores" "$w/classify.scores"
check "/v1/send then /v1/receive = lw eval --scores" cmp "$w/eval.scores" "$w/sendrecv.scores"
check "/v1/send's bytes = lw send's" cmp "$w/msgs" "$w/http.msgs"
head -c "$(( $(wc -c < "$w/msgs") / 6 ))" "$w/msgs" > "$w/msg0"
check "/v1/receive reads lw send's message" sh -c "[ \$(curl -s -o '$w/r0' -w '%{http_code}' --data-binary @'$w/msg0' \
    http://127.0.0.1:$port/v1/receive) = 200 ] && head -n 1 '$w/eval.scores' | tr -d '\n' | cmp - '$w/r0'"
printf '{"text": "a gripping, funny film", "dtype": "int8"}' > "$w/int8.json"
check "/v1/send --dtype int8: a byte a value plus a scale a token" sh -c "[ \$(curl -s -o '$w/m8' -w '%{http_code}' \
    --data-binary @'$w/int8.json' http://127.0.0.1:$port/v1/send) = 200 ] && \
    [ \$(wc -c < '$w/m8') = $((208 + 4 * 4 + 4 * 576 + 8)) ]"
check "/v1/receive-text: the receiver's own line for the text" sh -c "[ \$(curl -s -o '$w/rt' -w '%{http_code}' \
    --data-binary @'$w/body.0' http://127.0.0.1:$port/v1/receive-text) = 200 ] && \
    grep -q '^{\"seq\":0,\"label\":\"[a-z]*\",\"margin\":[0-9.e-]*,\"scores\":{\"negative\":[-0-9.e]*,\"positive\":[-0-9.e]*}}\$' '$w/rt' && \
    ! head -n 1 '$w/eval.scores' | tr -d '\n' | cmp -s - '$w/rt'"

# refusals: 4xx and a JSON error naming the problem
printf '{"text": "unterminated' > "$w/bad.json"; printf '{"txt": "x"}' > "$w/nofield.json"
printf '["text"]' > "$w/array.json"; printf '{"text": "x", "dtype": "fp8"}' > "$w/dtype.json"
head -c 100 "$w/msg0" > "$w/cut"
cp "$w/msg0" "$w/flip"; printf '\001' | dd of="$w/flip" bs=1 seek=300 conv=notrunc 2>/dev/null
head -c 200000 /dev/zero > "$w/big"
check "malformed JSON: 400" answers "$(post /v1/classify "$w/bad.json" "$w/e")" 400 "malformed JSON" "$w/e"
check "missing field: 400" answers "$(post /v1/send "$w/nofield.json" "$w/e")" 400 'missing field \\"text\\"' "$w/e"
check "not an object: 400" answers "$(post /v1/classify "$w/array.json" "$w/e")" 400 "JSON object" "$w/e"
check "bad dtype: 400" answers "$(post /v1/send "$w/dtype.json" "$w/e")" 400 "int8" "$w/e"
check "truncated message: 422" answers "$(post /v1/receive "$w/cut" "$w/e")" 422 "cut short" "$w/e"
check "wrong checksum: 422" answers "$(post /v1/receive "$w/flip" "$w/e")" 422 "checksum" "$w/e"
check "not a message: 422" answers "$(post /v1/receive "$w/rows.jsonl" "$w/e")" 422 "not a soft-token message" "$w/e"
check "empty body: 422" answers "$(post /v1/receive /dev/null "$w/e")" 422 "empty body" "$w/e"
check "another bridge's message: 409" answers "$(post /v1/receive "$w/foreign" "$w/e")" 409 "another bridge" "$w/e"
check "oversized body: 413" answers "$(post /v1/receive "$w/big" "$w/e")" 413 "max-body" "$w/e"
check "wrong method: 405" answers "$(curl -s -o "$w/e" -w '%{http_code}' "http://127.0.0.1:$port/v1/send")" 405 \
    "takes POST" "$w/e"
check "wrong path: 404" answers "$(post /v2/send "$w/body.0" "$w/e")" 404 "no endpoint" "$w/e"
check "still serving after the refusals" sh -c "[ \$(curl -s -o '$w/a' -w '%{http_code}' --data-binary @'$w/body.0' \
    http://127.0.0.1:$port/v1/classify) = 200 ] && head -n 1 '$w/eval.scores' | tr -d '\n' | cmp - '$w/a'"

# roles; SIGTERM with a request in flight (held in the batch window)
start sender --role sender --checkpoint "$ck" --batch-window-ms 1500
check "a sender does not receive: 404" answers "$(post /v1/receive "$w/msg0" "$w/e")" 404 "not served by a sender" "$w/e"
check "a sender does not classify: 404" answers "$(post /v1/classify "$w/body.0" "$w/e")" 404 "not served" "$w/e"
curl -s -o "$w/inflight" -w '%{http_code}' --data-binary @"$w/body.0" "http://127.0.0.1:$port/v1/send" > "$w/inflight.code" &
cpid=$!
sleep 0.5
kill -TERM $pid
set +e; wait $cpid; wait $pid; rc=$?; set -e
check "SIGTERM: the request in flight is answered" sh -c "[ \$(cat '$w/inflight.code') = 200 ] && cmp '$w/inflight' '$w/msg0'"
check "SIGTERM: exit 0" test $rc -eq 0
check "SIGTERM: says it stopped" grep -q "stopped: " "$w/sender.err"

# a short bounded load on the first server: concurrent clients, refusals, RSS
port=$both_port
check "bounded load (4 clients, ${LWC_SERVE_LOAD_SECONDS:-10} s)" "$srcdir/scripts/serve-load.sh" "$port" "$both_pid" \
    "$w/rows.jsonl" "$w/eval.scores" 4 "${LWC_SERVE_LOAD_SECONDS:-10}" "$w/foreign"
grep '^serve-load:' "$w/log" || true
kill -INT $both_pid
set +e; wait $both_pid; rc=$?; set -e
check "SIGINT: exit 0" test $rc -eq 0

# --packed: a batch's /v1/classify through one packed receiver pass (docs/wire.md, "One model
# worker, batches"): the 6 rows posted at once come back in fewer batches than requests, each with
# lw eval's label and scores within 1e-5 x (1 + |score|) (float rounding, not bit for bit; the
# batch's order, which the clients' arrival sets, moves them by as much), as lw eval --score-batch 6's
"$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$ck" --quiet --score-batch 6 \
    --scores "$w/eval6.scores" >/dev/null
start packed --checkpoint "$ck" --packed --batch-window-ms 1000
cpids=
for i in 0 1 2 3 4 5; do post /v1/classify "$w/body.$i" "$w/pk.$i" > "$w/pk.$i.code" & cpids="$cpids $!"; done
for c in $cpids; do wait $c; done   # (a plain wait would wait for the server too)
: > "$w/packed.scores"
for i in 0 1 2 3 4 5; do cat "$w/pk.$i" >> "$w/packed.scores"; echo >> "$w/packed.scores"; done
# near SCORES_A SCORES_B: same labels, every score within 1e-5 x (1 + |score|)
near() {
    [ "$(cut -d, -f2 "$1")" = "$(cut -d, -f2 "$2")" ] || { echo "labels differ"; return 1; }
    grep -o '"scores":{[^}]*}' "$1" | grep -oE '[-0-9.]+(e[-+]?[0-9]+)?' > "$w/near.a"
    grep -o '"scores":{[^}]*}' "$2" | grep -oE '[-0-9.]+(e[-+]?[0-9]+)?' > "$w/near.b"
    [ -s "$w/near.a" ] && [ "$(wc -l < "$w/near.a")" -eq "$(wc -l < "$w/near.b")" ] || return 1
    paste -d' ' "$w/near.a" "$w/near.b" | awk '{d = $1 - $2; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2
        if (d > 1e-5 * (1 + a)) { print "score " $1 " against " $2; bad = 1 } } END { exit bad }'
}
check "--packed: every answer 200" sh -c "[ \"\$(cat '$w'/pk.?.code | tr -d '\n')\" = 200200200200200200 ]"
check "--packed: lw eval's labels, scores to float rounding" near "$w/packed.scores" "$w/eval.scores"
check "--packed: lw eval --score-batch 6 agrees to float rounding" near "$w/eval6.scores" "$w/eval.scores"
# Banking77: 77 labels of several tokens, whose segments (each repeating the prompt) do not fit a
# pass: lw eval --score-batch 3 scores each example's prompt once, then its labels' tails after it
# over as many passes as they take; the same labels and scores as one by one, to float rounding
head -n 3 "$shared/data/banking77/dev.jsonl" > "$w/b77.jsonl"
for b in 1 3; do
    "$lw" eval --task banking77 --split "$w/b77.jsonl" --checkpoint "$ck" --quiet --score-batch $b \
        --scores "$w/b77.$b.scores" >/dev/null
done
check "banking77: lw eval --score-batch 3 agrees to float rounding" near "$w/b77.3.scores" "$w/b77.1.scores"
check "--packed: the requests were batched" sh -c "curl -sf http://127.0.0.1:$port/health | \
    grep -q '\"requests\":[0-9]*,\"batches\":[1-5],'"
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
check "--packed: SIGTERM exit 0" test $rc -eq 0

usage_error() {   # usage_error PATTERN COMMAND...: exits 2 and prints PATTERN
    pattern=$1; shift
    set +e; "$@" >"$w/out" 2>&1; rc=$?; set -e
    [ $rc -eq 2 ] && grep -q "$pattern" "$w/out" || { echo "exit $rc:"; cat "$w/out"; return 1; }
}
check "usage: --role" usage_error "sender, receiver or both" "$lw" serve --role chef --task sst2 --checkpoint "$ck"
check "usage: --listen" usage_error "the port is 0..65535" "$lw" serve --listen 127.0.0.1:99999 --task sst2 \
    --checkpoint "$ck"
echo "serve: $pass passed, $fail failed"
[ $fail -eq 0 ]
