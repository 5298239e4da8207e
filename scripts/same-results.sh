#!/bin/sh
# Whether two builds of lwc compute the same things, bit for bit: each builds
# the tiny pair (stories260K -> SmolLM2-135M), trains a few steps (the bridge;
# the bridge with LoRA and a deep prefix; the text LoRA baseline), evaluates
# (--scores at --score-batch 1 and 4), and sends and receives 12 SST-2 dev
# rows; then every checkpoint, score file and message file of one is cmp'd
# with the other's, the JSON results compared but for timings and paths, the
# training logs but for their timings. For a refactoring that must not move
# a bit (docs/architecture.md). One thread (--threads 1), as tests/wire.sh.
#   scripts/same-results.sh OLD_TREE NEW_TREE [WORK]   (each tree built: out/bin/lwc)
set -eu
old=$1 new=$2 work=${3:-$(mktemp -d)}
mkdir -p "$work"
src=$(cd "$(dirname "$0")/.." && pwd)
shared=${LWC_SHARED:-$src/../shared}
data=$shared/data/sst2
pair=$src/pairs/stories260k_to_smollm2-135m.json
run() {   # run TREE OUT
    out=$2
    rm -rf "$out" && mkdir -p "$out"
    export LWC_CACHE_DIR=$out/cache OPENBLAS_NUM_THREADS=1
    "$1/out/bin/lwc" build --quiet "$pair" -o "$out/build"
    lw=$out/build/stories260k_to_smollm2-135m/lw
    tiny="--task sst2 --data $data --limit-train 8 --steps 3 --batch 2 --lr 1e-3 --warmup 1 --quiet --threads 1"
    ev="--task sst2 --split $data/dev.jsonl --limit 12 --quiet --threads 1"
    $lw train $tiny --soft-tokens 4 --out "$out/bridge"
    $lw eval $ev --checkpoint "$out/bridge/final" --scores "$out/bridge.scores" --json "$out/bridge.json"
    $lw eval $ev --checkpoint "$out/bridge/final" --score-batch 4 --scores "$out/bridge.b4.scores" \
        --json "$out/bridge.b4.json"
    $lw train $tiny --soft-tokens 4 --lora --deep-prefix --prefix-length 2 --out "$out/both"
    $lw eval $ev --checkpoint "$out/both/final" --scores "$out/both.scores" --json "$out/both.json"
    $lw eval $ev --checkpoint "$out/both/final" --score-batch 4 --scores "$out/both.b4.scores"
    head -12 "$data/dev.jsonl" >"$out/rows.jsonl"
    for c in bridge both; do
        $lw send --task sst2 --checkpoint "$out/$c/final" --input "$out/rows.jsonl" --out "$out/msgs.$c" --quiet \
            --threads 1
        $lw receive --checkpoint "$out/$c/final" --in "$out/msgs.$c" --out "$out/recv.$c.scores" --threads 1
    done
    $lw train --method lora --task sst2 --data "$data" --limit-train 8 --steps 2 --batch 2 --lr 1e-3 --warmup 1 \
        --quiet --threads 1 --out "$out/textlora"
    $lw eval --method lora $ev --checkpoint "$out/textlora/final" --json "$out/textlora.json" >/dev/null
}
run "$old" "$work/old" >"$work/old.log" 2>&1 || { echo "same-results: the old tree's runs failed ($work/old.log)"; exit 1; }
run "$new" "$work/new" >"$work/new.log" 2>&1 || { echo "same-results: the new tree's runs failed ($work/new.log)"; exit 1; }
differ=0 same=0
for f in $(cd "$work/old" && find . -type f ! -path './build/*' ! -path './cache/*' ! -name '.lock' | sort); do
    case $f in
    *.json | *.jsonl)   # results and logs: equal but for timings and the paths they name
        python3 - "$work/old/$f" "$work/new/$f" <<'PY' && ok=1 || ok=0
import json, sys
def norm(v):
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()
                if not any(w in k for w in ("second", "time", "elapsed", "per_s", "checkpoint"))}
    return [norm(x) for x in v] if isinstance(v, list) else v
def load(p):
    text = open(p).read()
    try:
        return norm(json.loads(text))
    except ValueError:
        return [norm(json.loads(l)) for l in text.splitlines() if l.strip()]
sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)
PY
        ;;
    *) cmp -s "$work/old/$f" "$work/new/$f" && ok=1 || ok=0 ;;
    esac
    if [ $ok = 1 ]; then same=$((same + 1)); else differ=$((differ + 1)); echo "differs: $f"; fi
done
echo "same-results: $same files the same, $differ differ ($work)"
[ $differ -eq 0 ]
