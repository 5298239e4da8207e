#!/bin/bash
# Runs N copies of a command on this machine as the ranks of one
# data-parallel run (docs/distributed.md): rank r gets LW_RANK=r,
# LW_WORLD_SIZE=N and LW_MASTER (kept if already set, else 127.0.0.1 and a
# port drawn from this script's PID). If a rank fails, the others are
# stopped and the script exits with that rank's status.
# usage: scripts/launch.sh N COMMAND [ARGS...]
#   e.g. scripts/launch.sh 2 build/pair/lw train --task sst2 --data DIR --out runs/dp2
set -u
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/launch.sh N COMMAND [ARGS...]  (N: the number of ranks, 1 or more)" >&2
    exit 2
fi
n=$1
shift
export LW_WORLD_SIZE=$n
export LW_MASTER=${LW_MASTER:-127.0.0.1:$((29500 + $$ % 20000))}
pids=()
for ((r = 0; r < n; r++)); do
    LW_RANK=$r "$@" &
    pids+=($!)
done
status=0
for ((left = n; left > 0; left--)); do
    wait -n "${pids[@]}" 2>/dev/null
    rc=$?
    if [ $rc -ne 0 ] && [ $status -eq 0 ]; then
        status=$rc
        echo "launch.sh: a rank exited with status $rc; stopping the others" >&2
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    fi
done
exit $status
