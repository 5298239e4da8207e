#!/bin/sh
# make install / uninstall into a DESTDIR: the installed lwc builds a pair
# from its own files, and uninstall leaves nothing behind.
set -eu
srcdir=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make --no-print-directory -s install DESTDIR="$dest" prefix=/opt/lwc >/dev/null
lwc=$dest/opt/lwc/bin/lwc
[ -x "$lwc" ] || { echo "install: no lwc in $dest/opt/lwc/bin"; exit 1; }
"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$dest/build"
"$dest/build/stories260k_to_smollm2-135m/lw" info | grep -q "pair: stories260k_to_smollm2-135m" ||
    { echo "install: the installed lwc built a binary that does not run"; exit 1; }
make --no-print-directory -s uninstall DESTDIR="$dest" prefix=/opt/lwc >/dev/null
left=$(find "$dest/opt" -type f 2>/dev/null | head -n 5)
[ -z "$left" ] || { echo "uninstall left files behind: $left"; exit 1; }
echo "install: 1 passed, 0 failed"
