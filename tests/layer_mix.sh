#!/bin/sh
# lw train --sender-layers end to end on the tiny pair (stories260K ->
# SmolLM2-135M, 8 examples, a few steps; docs/objectives.md):
#   - the checkpoint holds layer_mix.safetensors and the bridge names its layers;
#   - lw eval builds the same stacked states and loads the mix: its scores
#     equal, bit for bit, those of lw send | lw receive (the sender side
#     mixes the layers of one text itself);
#   - a run resumed from step-1 ends with the straight run's final checkpoint,
#     byte for byte (the mix's logits and moments resume too);
#   - the mix file changes from step to step (it is trained);
#   - refusals: the bridge without its mix file, a mix file beside a
#     one-layer bridge, resuming with other layers, bad --sender-layers.
set -eu
srcdir=$1 lwc=$2
suite=layer_mix
. "$srcdir/tests/script_common.sh"
fails_saying() {   # fails_saying PATTERN COMMAND...: exits non-zero and prints PATTERN
    pattern=$1; shift
    set +e; "$@" >"$w/out" 2>&1; rc=$?; set -e
    [ $rc -ne 0 ] && grep -q -- "$pattern" "$w/out" || { echo "exit $rc:"; cat "$w/out"; return 1; }
}

"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$w/build"
lw=$w/build/stories260k_to_smollm2-135m/lw
tiny="--task sst2 --data $data --limit-train 8 --batch 2 --lr 3e-2 --warmup 1 --quiet --soft-tokens 4"
"$lw" train $tiny --steps 3 --checkpoint-every 1 --sender-layers 1,3,5 --out "$w/mix"
ck=$w/mix/final
check "the checkpoint holds the mix" test -f "$ck/layer_mix.safetensors"
check "the bridge names its layers" grep -q 'sender_layers.\{0,4\}1,3,5' "$ck/bridge.safetensors"
check "run.json names the layers" grep -q '"sender_layers": "1,3,5"' "$w/mix/run.json"
# the logits and their moments move from step to step (the mix is trained)
check "the mix is trained" sh -c "! cmp -s '$w/mix/step-1/layer_mix.safetensors' '$ck/layer_mix.safetensors'"

head -n 6 "$data/dev.jsonl" > "$w/rows.jsonl"
"$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$ck" --quiet --scores "$w/eval.scores" >/dev/null
check "eval --scores wrote 6 lines" test "$(grep -c '"scores":{"negative":' "$w/eval.scores")" = 6
"$lw" send --task sst2 --checkpoint "$ck" --input "$w/rows.jsonl" --out "$w/msgs" --quiet
"$lw" receive --checkpoint "$ck" --in "$w/msgs" --out "$w/recv.scores"
check "send | receive = lw eval with the mix, bit for bit" cmp "$w/eval.scores" "$w/recv.scores"

# a one-layer run of the same seed scores differently (the mix is used)
"$lw" train $tiny --steps 3 --out "$w/one"
"$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$w/one/final" --quiet --scores "$w/one.scores" >/dev/null
check "the mix changes the scores" sh -c "! cmp -s '$w/eval.scores' '$w/one.scores'"

# resume from step-1: the same final checkpoint, byte for byte
cp -r "$w/mix" "$w/resumed"
rm -rf "$w/resumed/final" "$w/resumed/step-2"
"$lw" train $tiny --steps 3 --checkpoint-every 1 --sender-layers 1,3,5 --out "$w/resumed" --resume "$w/resumed/step-1"
for f in bridge.safetensors train_state.safetensors layer_mix.safetensors; do
    check "resumed run's final $f = the straight run's" cmp "$ck/$f" "$w/resumed/final/$f"
done
check "resuming with other layers is refused" fails_saying "trained on sender layers 1,3,5" \
    "$lw" train $tiny --steps 3 --sender-layers 1,3 --out "$w/resumed" --resume "$w/resumed/step-1"
check "resuming without --sender-layers is refused" fails_saying "pass --sender-layers" \
    "$lw" train $tiny --steps 3 --out "$w/resumed" --resume "$w/resumed/step-1"

# refusals
mkdir -p "$w/nomix"
cp "$ck/bridge.safetensors" "$w/nomix/"
check "eval refuses the bridge without its mix" fails_saying "layer_mix.safetensors, which holds the mix, is missing" \
    "$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$w/nomix" --quiet
check "send refuses it too" fails_saying "is missing" \
    "$lw" send --task sst2 --checkpoint "$w/nomix" --input "$w/rows.jsonl" --out "$w/never" --quiet
check "a bridge file alone finds the mix beside it" \
    "$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$ck/bridge.safetensors" --quiet
cp "$ck/layer_mix.safetensors" "$w/one/final/"
check "a mix file beside a one-layer bridge is refused" fails_saying "trained on one sender layer" \
    "$lw" eval --task sst2 --split "$w/rows.jsonl" --checkpoint "$w/one/final" --quiet
check "--sender-layers out of range" fails_saying "each must be a layer 0..5" \
    "$lw" train $tiny --steps 1 --sender-layers 1,6 --out "$w/bad"
check "--sender-layers twice the same" fails_saying "layer 3 twice" \
    "$lw" train $tiny --steps 1 --sender-layers 3,3 --out "$w/bad2"

echo "layer_mix: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
