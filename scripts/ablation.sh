#!/bin/sh
# The receiver-adapter ablation of docs/results.md on the default pair: bridge,
# bridge + LoRA, bridge + deep prefix, bridge + both, same data and settings
# as scripts/experiments.sh (M = 16). usage: scripts/ablation.sh "sst2" "1"
# Runs seed by seed over the tasks; several copies may run at once (see
# scripts/experiments.sh: a job is claimed by creating <job>.lock).
set -eu
tasks=${1:-"sst2 agnews trec banking77"} seeds=${2:-"1 2 3"}
steps=${3:-150} train=${4:-800} dev=${5:-200}
. "$(dirname "$0")/pair-env.sh"
for s in $seeds; do
    for t in $tasks; do
        d=$shared/data/$t
        for v in lora deep-prefix both; do
            case $v in
            lora) flags="--lora" ;; deep-prefix) flags="--deep-prefix" ;; both) flags="--lora --deep-prefix" ;;
            esac
            r=$root/ablation/$t/$v-seed$s
            [ -f $r/eval.json ] && continue
            mkdir -p $root/ablation/$t
            claim $r || continue
            trained_already $r $steps || $lw train $(subset_flags $t) --task $t --data $d --limit-train $train --steps $steps --batch 8 --lr 3e-4 --warmup 15 \
                --seed $s $flags --out $r --force --quiet
            $lw eval $(subset_flags $t) --task $t --split $d/dev.jsonl --limit $dev --checkpoint $r/final --quiet --json $r/eval.json
            release
        done
    done
done
