#!/bin/sh
# Runs N ranks of a command on this machine as one data-parallel run
# (docs/distributed.md): Open MPI's mpirun with what a single machine, a
# container or a root shell needs, so tests and users start ranks one way.
#   --oversubscribe     more ranks than cores is allowed (tests: 2 ranks on 1 core)
#   --bind-to none      ranks are not pinned to a core each (BLAS threads move freely)
#   --mca btl self,vader, btl_vader_single_copy_mechanism none
#                       shared memory between the ranks, without the cross-memory
#                       attach (ptrace) that containers often forbid
#   --allow-run-as-root (and OMPI_ALLOW_RUN_AS_ROOT*) when run as root, as in CI
# If a rank fails, mpirun stops the others and exits non-zero.
# The mpirun used: $LWC_MPIRUN if set (the Makefile sets it), else mpirun.
# Several machines: call mpirun yourself (docs/distributed.md).
# usage: scripts/launch.sh N COMMAND [ARGS...]
#   e.g. scripts/launch.sh 2 build/pair/lw train --task sst2 --data DIR --out runs/dp2
set -eu
case ${1:-} in
''|0*|*[!0-9]*)
    echo "usage: scripts/launch.sh N COMMAND [ARGS...]  (N: the number of ranks, 1 or more)" >&2
    exit 2 ;;
esac
[ $# -ge 2 ] || { echo "usage: scripts/launch.sh N COMMAND [ARGS...]" >&2; exit 2; }
n=$1
shift
mpirun=${LWC_MPIRUN:-mpirun}
command -v "$mpirun" >/dev/null 2>&1 || {
    echo "launch.sh: no mpirun found: apt-get install openmpi-bin libopenmpi-dev, then ./configure && make" >&2
    exit 127; }
root=
if [ "$(id -u)" -eq 0 ]; then
    root=--allow-run-as-root
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec "$mpirun" $root -np "$n" --oversubscribe --bind-to none --mca btl self,vader \
    --mca btl_vader_single_copy_mechanism none "$@"
