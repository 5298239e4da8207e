#!/bin/sh
# What each message dtype costs (docs/wire.md): the in-process bridge (lw eval
# --scores) next to `lw send --dtype D | lw receive` for fp32, bf16, fp16 and
# int8 on the same examples. Prints, per dtype, the bytes of one message, the
# accuracy, how many predictions differ from the in-process bridge's and the
# largest |score difference|; fp32 must be identical.
# usage: [TASK=sst2] scripts/wire-dtypes.sh LW CHECKPOINT_DIR DATA_JSONL N [WORKDIR]
set -eu
lw=$1 ck=$2 data=$3 n=$4 w=${5:-$(mktemp -d)} task=${TASK:-sst2}
mkdir -p "$w"
head -n "$n" "$data" > "$w/rows.jsonl"
"$lw" eval --task "$task" --split "$w/rows.jsonl" --checkpoint "$ck" --quiet --scores "$w/eval.scores" \
    --json "$w/eval.json" >/dev/null
gold() { sed -n 's/.*"label": *"\([^"]*\)".*/\1/p' "$1"; }   # each line's "label"
gold "$w/rows.jsonl" > "$w/gold"
gold "$w/eval.scores" > "$w/pred.eval"
# the "scores" object's numbers, one line of them per example
nums() { sed 's/.*"scores":{//; s/"[^"]*"://g; s/[{}]//g' "$1"; }
nums "$w/eval.scores" > "$w/nums.eval"
acc() { paste -d' ' "$w/gold" "$1" | awk '{n++; if ($1 == $2) r++} END {printf "%.4f", r / n}'; }
printf '%-6s %8s %9s %12s %16s\n' dtype bytes accuracy "preds moved" "max |d score|"
printf '%-6s %8s %9s %12s %16s\n' eval - "$(acc "$w/pred.eval")" - -
for d in fp32 bf16 fp16 int8; do
    "$lw" send --task "$task" --checkpoint "$ck" --input "$w/rows.jsonl" --dtype "$d" --out "$w/msgs.$d" --quiet
    "$lw" receive --checkpoint "$ck" --in "$w/msgs.$d" > "$w/$d.scores"
    gold "$w/$d.scores" > "$w/pred.$d"
    nums "$w/$d.scores" > "$w/nums.$d"
    moved=$(paste -d' ' "$w/pred.eval" "$w/pred.$d" | awk '$1 != $2' | wc -l)
    maxd=$(paste -d, "$w/nums.eval" "$w/nums.$d" | awk -F, '{h = NF / 2; for (i = 1; i <= h; i++) {
        d = $i - $(i + h); if (d < 0) d = -d; if (d > m) m = d}} END {printf "%.3g", m + 0}')
    bytes=$(($(wc -c < "$w/msgs.$d") / n))
    printf '%-6s %8s %9s %12s %16s\n' "$d" "$bytes" "$(acc "$w/pred.$d")" "$moved" "$maxd"
done
if cmp -s "$w/eval.scores" "$w/fp32.scores"; then echo "fp32: identical to the in-process bridge"; else
    echo "fp32: DIFFERS from the in-process bridge"; exit 1; fi
