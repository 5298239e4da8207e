#!/bin/sh
# make install / uninstall into a DESTDIR: the installed lwc builds a pair
# from its own files, a program of one's own builds against the installed
# library through pkg-config, and uninstall leaves nothing behind.
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
# Only the public headers (Makefile.in, PUBLIC_HEADERS) are installed, and
# they are enough for a program of one's own: a tiny lw of the same pair,
# compiled and linked through pkg-config alone against the installed
# liblwrt (the .pc names /opt/lwc; --define-variable points it at DESTDIR).
inc=$dest/opt/lwc/include/lwc
[ -f "$inc/pair.h" ] && [ ! -e "$inc/model.h" ] && [ ! -e "$inc/forward.h" ] ||
    { echo "install: include/lwc holds $(ls "$inc" | tr '\n' ' '); expected the public headers only"; exit 1; }
cat > "$dest/user.c" <<'EOF_C'
/* A user of the installed liblwrt: the manifest given, run as a pair. */
#include <stdio.h>
#include "pair.h"

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    lw_pair pair = {.build_stamp = "user", .lwc_version = "user", .nvrtc_version = "none"};
    if (lw_manifest_load(argv[1], &pair.manifest) != LW_OK) {
        fprintf(stderr, "user: %s\n", lw_last_error());
        return 1;
    }
    /* lwc build bakes the plans and their memory plans; a program of one's
     * own lowers and lays them out itself */
    static lw_plan plans[2];
    lw_plan_lower(&pair.manifest.sender, &plans[0]);
    lw_plan_lower(&pair.manifest.receiver, &plans[1]);
    pair.plans = plans;
    static lw_plan_memory memory[2];
    for (int i = 0; i < 2; i++) {
        lw_plan_shape shape;
        if (lw_pair_memory_shape(&pair.manifest, i, &shape) != LW_OK ||
            lw_plan_memory_layout(&plans[i], &shape, &memory[i]) != LW_OK) {
            fprintf(stderr, "user: %s\n", lw_last_error());
            return 1;
        }
    }
    pair.memory = memory;
    /* and the perceiver bridge's plan and memory plan */
    static lw_bridge_plan bridge_plan;
    static lw_bridge_memory bridge_memory;
    if (pair.manifest.bridge.kind == LW_BRIDGE_PERCEIVER) {
        if (lw_bridge_plan_lower(&pair.manifest.bridge, pair.manifest.sender.hidden, pair.manifest.receiver.hidden,
                                 &bridge_plan) != LW_OK ||
            lw_bridge_memory_layout(&bridge_plan, LW_PAIR_BAKED_SEQ, true, &bridge_memory) != LW_OK) {
            fprintf(stderr, "user: %s\n", lw_last_error());
            return 1;
        }
        pair.bridge_plan = &bridge_plan;
        pair.bridge_memory = &bridge_memory;
    }
    return lw_main(&pair, argc - 1, argv + 1);
}
EOF_C
pc="pkg-config --define-variable=prefix=$dest/opt/lwc"
flags=$(PKG_CONFIG_PATH=$dest/opt/lwc/lib/pkgconfig $pc --cflags --libs lwc) ||
    { echo "install: pkg-config does not know lwc"; exit 1; }
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -o "$dest/user" "$dest/user.c" $flags ||
    { echo "install: a program does not build with pkg-config --cflags --libs lwc: $flags"; exit 1; }
"$dest/user" "$srcdir/pairs/stories260k_to_smollm2-135m.json" info | grep -q "pair: stories260k_to_smollm2-135m" ||
    { echo "install: the program built through pkg-config does not run"; exit 1; }
make --no-print-directory -s uninstall DESTDIR="$dest" prefix=/opt/lwc >/dev/null
left=$(find "$dest/opt" -type f 2>/dev/null | head -n 5)
[ -z "$left" ] || { echo "uninstall left files behind: $left"; exit 1; }
echo "install: 1 passed, 0 failed"
