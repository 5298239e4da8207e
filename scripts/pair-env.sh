# Sourced by the experiment scripts: which pair (PAIR, default the README's),
# its lw (built if missing), the data folder and where results go (runs/ for
# the default pair, runs/<pair>/ for another).
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${LWC_SHARED:-$here/../shared}
pair=${PAIR:-smollm2-135m_to_gemma3-270m}
root=runs
[ "$pair" = smollm2-135m_to_gemma3-270m ] || root=runs/$pair
lw=build/$pair/lw
[ -x "$lw" ] || out/bin/lwc build "pairs/$pair.json"
