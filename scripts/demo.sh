#!/bin/sh
# The main job on a pair: build its binary, show what it holds, run it.
# usage: scripts/demo.sh LWC MANIFEST
set -eu
lwc=$1 manifest=$2
$lwc build "$manifest"
name=$(sed -n 's/^ *"name" *: *"\([A-Za-z0-9._-]*\)".*/\1/p' "$manifest" | head -n 1)
lw=build/$name/lw
$lw info
if $lw --help | grep -q '^  train '; then
    if $lw train --help >/dev/null 2>&1 && $lw train --task sst2 --steps 0 >/dev/null 2>&1; then :; fi
fi
if $lw --help | grep -q '^  generate '; then
    $lw generate --model receiver --prompt "The capital of France is" --max-new 16
fi
