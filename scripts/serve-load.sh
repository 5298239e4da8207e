#!/bin/sh
# A bounded load test of `lw serve` (docs/wire.md, "HTTP"; docs/perf.md), on
# loopback only: CLIENTS concurrent clients post /v1/classify for SECONDS,
# each answer compared with the in-process `lw eval --scores` line of the
# same row; meanwhile the bad inputs (malformed JSON, a missing field, a
# truncated message, a wrong checksum, another bridge's message, an
# oversized body, a wrong method and path) are sent, each must be refused
# with its 4xx and a JSON error while the server keeps answering; the
# server's RSS is sampled from /proc every half second.
#
#   scripts/serve-load.sh PORT PID ROWS SCORES [CLIENTS SECONDS] [FOREIGN_MSG]
#     PORT     the server's port on 127.0.0.1 (lw serve --role both ... --listen 127.0.0.1:0)
#     PID      its process id (for /proc/PID/status)
#     ROWS     JSONL rows {"text": ...} the SCORES lines were made from
#     SCORES   lw eval --scores of the same checkpoint on ROWS (line i = row i)
#     CLIENTS  concurrent clients (default 8); SECONDS: how long (default 60)
#     FOREIGN_MSG  a message of another bridge, refused with 409 (optional)
# Prints the counts, latency percentiles of the good requests and the RSS
# samples; exits 1 on any wrong answer, error or missing refusal, or an RSS
# that grew by more than 16 MiB + 10% from its first sample after warm-up.
# Needs curl.
set -eu
port=$1 pid=$2 rows=$3 scores=$4 clients=${5:-8} seconds=${6:-60} foreign=${7:-}
url=http://127.0.0.1:$port
command -v curl >/dev/null || { echo "serve-load: needs curl" >&2; exit 1; }
[ -r "/proc/$pid/status" ] || { echo "serve-load: no process $pid" >&2; exit 1; }
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
n=$(wc -l < "$rows")
[ "$n" -gt 0 ] && [ "$(wc -l < "$scores")" -eq "$n" ] || { echo "serve-load: $rows and $scores differ in lines" >&2; exit 1; }
# row i as a request body with seq i (the eval line's seq)
i=0
while IFS= read -r line; do
    printf '%s' "$line" | sed "s/^{\"text\": \(\".*\"\), \"label\".*\$/{\"text\": \1, \"seq\": $i}/" > "$w/body.$i"
    sed -n "$((i + 1))p" "$scores" | tr -d '\n' > "$w/want.$i"
    i=$((i + 1))
done < "$rows"

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
end=$(( $(date +%s) + seconds ))
client() {   # client K: posts rows K, K+1, ... until the end; one line per request
    k=$1 j=$1
    while [ "$(date +%s)" -lt "$end" ]; do
        r=$((j % n))
        code=$(curl -s -o "$w/got.$k" -w '%{http_code} %{time_total}' -X POST -H 'Content-Type: application/json' \
            --data-binary @"$w/body.$r" "$url/v1/classify" || echo "000 0")
        if [ "${code%% *}" = 200 ] && cmp -s "$w/got.$k" "$w/want.$r"; then echo "ok ${code#* }"
        else echo "bad row $r: HTTP ${code%% *}: $(head -c 300 "$w/got.$k")"; fi
        j=$((j + 1))
    done > "$w/client.$k"
}
# refused REQUEST-NAME CODE PATTERN CURL-ARGS...: the code and a JSON error naming it
refused() {
    name=$1 want=$2 pattern=$3; shift 3
    code=$(curl -s -o "$w/ref" -w '%{http_code}' "$@" || echo 000)
    if [ "$code" = "$want" ] && grep -q "^{\"error\":.*$pattern" "$w/ref"; then echo "refused $name: $code"
    else echo "bad refusal $name: HTTP $code (want $want, /$pattern/): $(head -c 300 "$w/ref")"; fi
}
bad_inputs() {
    curl -s -o "$w/msg" -X POST --data-binary @"$w/body.0" "$url/v1/send"
    head -c 100 "$w/msg" > "$w/cut"
    cp "$w/msg" "$w/flip"
    printf '\001' | dd of="$w/flip" bs=1 seek=300 conv=notrunc 2>/dev/null
    head -c 20000000 /dev/zero > "$w/huge"
    while [ "$(date +%s)" -lt "$end" ]; do
        refused "malformed JSON" 400 "malformed JSON" -X POST --data-binary '{"text": "unterminated' "$url/v1/classify"
        refused "missing field" 400 'missing field' -X POST --data-binary '{"txt": "x"}' "$url/v1/classify"
        refused "truncated message" 422 "cut short" -X POST --data-binary @"$w/cut" "$url/v1/receive"
        refused "wrong checksum" 422 "checksum" -X POST --data-binary @"$w/flip" "$url/v1/receive"
        [ -z "$foreign" ] || refused "another bridge" 409 "another bridge" -X POST --data-binary @"$foreign" \
            "$url/v1/receive"
        refused "oversized body" 413 "max-body" -X POST --data-binary @"$w/huge" "$url/v1/receive"
        refused "wrong method" 405 "takes POST" -X GET "$url/v1/classify"
        refused "wrong path" 404 "no endpoint" -X POST --data-binary '{}' "$url/v1/nothing"
        sleep 1
    done > "$w/refusals"
}
sampler() {
    while [ "$(date +%s)" -lt "$end" ]; do rss; sleep 0.5; done > "$w/rss"
}

for k in $(seq 0 $((clients - 1))); do client "$k" & done
bad_inputs &
sampler &
wait

cat "$w"/client.* > "$w/all"
good=$(grep -c '^ok ' "$w/all" || true)
bad=$(grep -vc '^ok ' "$w/all" || true)
ref_ok=$(grep -c '^refused ' "$w/refusals" || true)
ref_bad=$(grep -vc '^refused ' "$w/refusals" || true)
alive=$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || echo 000)
grep '^ok ' "$w/all" | awk '{print $2}' | sort -n > "$w/lat"
pct() { [ -s "$w/lat" ] && awk -v p="$1" '{a[NR] = $1} END {i = int(p * NR + 0.999999); if (i < 1) i = 1;
    printf "%.1f", a[i] * 1000}' "$w/lat" || echo -; }
# RSS: the first sample after the first quarter (warm-up: threads, buffers) against the largest after it
skip=$(( $(wc -l < "$w/rss") / 4 ))
base=$(sed -n "$((skip + 1))p" "$w/rss") top=$(tail -n +"$((skip + 1))" "$w/rss" | sort -n | tail -n 1)
first=$(head -n 1 "$w/rss") last=$(tail -n 1 "$w/rss")
echo "serve-load: $clients clients, ${seconds}s: $good answers equal to lw eval --scores, $bad wrong or failed;" \
     "$(awk -v g="$good" -v s="$seconds" 'BEGIN {printf "%.2f", g / s}') answers/s; latency p50 $(pct 0.5) ms, p99 $(pct 0.99) ms"
echo "serve-load: refusals: $ref_ok as expected, $ref_bad not; /health after: $alive"
echo "serve-load: RSS KiB: first $first, after warm-up $base, largest after it $top, last $last" \
     "($(wc -l < "$w/rss") samples)"
grep -v '^ok ' "$w/all" | head -n 5
grep -v '^refused ' "$w/refusals" | head -n 5
flat=$(awk -v b="$base" -v t="$top" 'BEGIN {print (t <= b * 1.10 + 16384) ? 1 : 0}')
[ "$flat" = 1 ] || echo "serve-load: RSS grew from $base to $top KiB"
[ "$good" -gt 0 ] && [ "$bad" -eq 0 ] && [ "$ref_ok" -gt 0 ] && [ "$ref_bad" -eq 0 ] && [ "$alive" = 200 ] && [ "$flat" = 1 ]
