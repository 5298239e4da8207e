#!/bin/sh
# The include boundaries of the tree (make check-layout): for each folder F
# and each folder G of the layout, a file in F that includes a header of G
# must compile when G is one of the folders F may include (Makefile.in's
# INC_F), and must fail with "No such file" when it is not: an upward
# include is a compile error, not a convention.
#   tests/layout.sh "CC CFLAGS" SRCDIR F=G1:G2:... ...
set -u
cc=$1 srcdir=$2
shift 2
[ $# -gt 0 ] || { echo "layout: no folders given" >&2; exit 1; }
folders=
for spec in "$@"; do folders="$folders ${spec%%=*}"; done
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
bad=0 ok=0 refused=0
for spec in "$@"; do
    f=${spec%%=*} allowed=:${spec#*=}:
    flags=
    for d in $(echo "${spec#*=}" | tr ':' ' '); do flags="$flags -I$srcdir/$d"; done
    for g in $folders; do
        # the first header of g (by name) stands for all of them
        h=$(cd "$srcdir/$g" && ls *.h 2>/dev/null | head -n 1)
        [ -n "$h" ] || continue
        printf '#include "%s"\nint layout_probe;\n' "$h" > "$work/probe.c"
        if $cc $flags -fsyntax-only -c "$work/probe.c" > "$work/err" 2>&1; then got=compiles; else got=refused; fi
        case $allowed in *:$g:*) want=compiles ;; *) want=refused ;; esac
        if [ $want = refused ] && [ $got = refused ] && ! grep -q "$h: No such file" "$work/err"; then
            got="fails for another reason"
        fi
        if [ "$got" != $want ]; then
            echo "layout: $f including $g/$h: $got, expected it $want" >&2
            sed 's/^/    /' "$work/err" | head -n 5 >&2
            bad=$((bad + 1))
        elif [ $want = compiles ]; then ok=$((ok + 1))
        else refused=$((refused + 1)); fi
    done
done
echo "layout: $ok allowed includes compile, $refused upward or sideways includes refused, $bad wrong"
[ $bad -eq 0 ]
