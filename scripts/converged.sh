#!/bin/sh
# The converged protocol of issue 21, one command a pair: every method of
# docs/results.md on the WHOLE dev split of each task, the trained ones with 3
# seeds, the bridge trained until its loss on a held-out slice of the
# TRAINING data stops improving (early stopping, best/ kept), then
# `lw report` over everything that has finished.
#
#   scripts/converged.sh --dry-run [PAIR]    # the jobs, their state and estimated CPU cost; writes nothing
#   for i in 1 2; do OPENBLAS_NUM_THREADS=1 scripts/converged.sh PAIR & done; wait   # one worker a core
#
# PAIR defaults to the README's (scripts/pair-env.sh). Resumable: a job whose
# eval JSON exists is skipped; a bridge run that saved step-N but not final/
# continues from its last step-N (--resume, bit for bit with early stopping,
# docs/objectives.md); workers claim jobs with lock folders like
# scripts/experiments.sh. Results: $root/converged/<task>/<job>/eval.json
# (runs/converged/ for the default pair), the report in $root/converged/report/.
#
# Per task T (the data folder: data/T, banking77-distinct reads data/banking77):
#   split    train.jsonl -> fit.jsonl (9 lines in 10) + heldout.jsonl (every 10th
#            line), so the stopping criterion never sees dev
#   probe    lw eval --method linear-probe, fitted on fit.jsonl
#   baseline every untrained method (BASELINES)
#   bridge   M in MS x SEEDS: lw train --eval-every EVERY --dev-slice SLICE
#            --patience PATIENCE --steps CAP; banking77-distinct trains --ce
#            first and is scored --score first (docs/objectives.md)
#   trained  prompt-tuning and LoRA on the receiver reading the text x SEEDS,
#            TEXT_STEPS steps (early stopping is the bridge's alone for now), at
#            the rate scripts/lr-sweep.sh chose for T if its sweep ran, else
#            the middle of its grid
# Settings (environment): TASKS, MS ("8 16"), SEEDS ("1 2 3"), CAP (2000),
# EVERY (50), SLICE (200), PATIENCE (4), TEXT_STEPS (1000), DTYPE (fp32),
# BASELINES. The estimate's per-example CPU seconds, fp32 (bf16 measured 0.17 a
# Banking77 training example and 0.07-0.08 a sender-cache example on the 2-core
# machine, docs/results.md "Remedy (a)"; fp32 about 2.4x that, docs/perf.md):
# SEC_TRAIN (0.4, a bridge or text training example), SEC_SENDER (0.2, a
# sender-cache example), SEC_SCORE (0.5, a whole-verbalizer scoring),
# SEC_FIRST (0.15, a first-token scoring), SEC_GEN (3, a generating baseline).
set -eu
cd "$(dirname "$0")/.."
dry_run=
if [ "${1:-}" = --dry-run ]; then dry_run=1; shift; fi
[ $# -le 1 ] || { echo "usage: scripts/converged.sh [--dry-run] [PAIR]" >&2; exit 2; }
[ -z "${1:-}" ] || PAIR=$1
. scripts/pair-env.sh
. scripts/lr-sweep.sh
tasks=${TASKS:-"sst2 agnews trec banking77 banking77-distinct"}
ms=${MS:-"8 16"} seeds=${SEEDS:-"1 2 3"}
cap=${CAP:-2000} every=${EVERY:-50} slice=${SLICE:-200} patience=${PATIENCE:-4}
text_steps=${TEXT_STEPS:-1000} dtype=${DTYPE:-fp32}
baselines=${BASELINES:-"sender-zeroshot receiver-zeroshot receiver-kshot token-budget text-relay cot-relay"}
out=$root/converged
data_of() { case $1 in banking77-distinct) echo banking77 ;; *) echo $1 ;; esac; }
ce_flags() { case $1 in banking77-distinct) echo "--ce first" ;; esac; }
score_flags() { case $1 in banking77-distinct) echo "--score first" ;; esac; }
lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
# rate_for METHOD TASK: the sweep's choice (lr-sweep.sh reads $root/trained), else its grid's middle
rate_for() {
    lr=$(best_lr $2 $1 2>/dev/null || :)
    if [ -z "$lr" ]; then set -- $(lrs_for $1); lr=$2; fi
    echo $lr
}

n_jobs=0 n_done=0 cpu_s=0
# job DIR SECONDS COMMAND...: run it unless DIR/eval.json exists or another
# worker holds DIR; with --dry-run, print its state, estimate and command.
job() {
    r=$1 est=$2; shift 2
    n_jobs=$((n_jobs + 1))
    if [ -f $r/eval.json ]; then n_done=$((n_done + 1)); state=done
    elif [ -d $r.lock ]; then state=claimed; cpu_s=$((cpu_s + est))
    else state=todo; cpu_s=$((cpu_s + est)); fi
    if [ -n "$dry_run" ]; then
        printf '%-7s %6d CPU-min  %s\n' $state $((est / 60)) "$r"
        return 0
    fi
    [ $state = todo ] || return 0
    claim $r || return 0
    mkdir -p $r
    "$@"
    release
}
est() { awk "BEGIN { printf \"%d\", $* }" </dev/null; }   # est EXPRESSION: its value in whole seconds

train_bridge() {   # train_bridge TASK DIR M SEED
    t=$1 r=$2 m=$3 s=$4 d=$out/$1/data
    if [ ! -d $r/final ]; then
        last=$(ls -d $r/step-* 2>/dev/null | sed 's/.*step-//' | sort -n | tail -n 1)
        from="--force"
        [ -z "$last" ] || from="--resume $r/step-$last"
        $lw train --task $t --train $d/fit.jsonl --dev $d/heldout.jsonl --dev-slice $slice --eval-every $every \
            --patience $patience --steps $cap --batch 8 --lr 3e-4 --warmup 15 --soft-tokens $m --seed $s \
            $(ce_flags $t) --dtype $dtype --checkpoint-every 100 --out $r $from --quiet
    fi
    ck=$r/best; [ -d $ck ] || ck=$r/final
    $lw eval --task $t --split $shared/data/$(data_of $t)/dev.jsonl --checkpoint $ck $(score_flags $t) \
        --seed $s --dtype $dtype --quiet --json $r/eval.json
}
train_text() {     # train_text TASK DIR METHOD LR SEED
    t=$1 r=$2 me=$3 lr=$4 s=$5
    [ -d $r/final ] || $lw train --method $me --task $t --train $out/$t/data/fit.jsonl --steps $text_steps --batch 8 \
        --lr $lr --warmup 15 --seed $s --dtype $dtype --out $r --force --quiet
    $lw eval --method $me --task $t --split $shared/data/$(data_of $t)/dev.jsonl --checkpoint $r/final \
        --dtype $dtype --quiet --json $r/eval.json
}
eval_only() {      # eval_only TASK DIR ARGS...: one lw eval on the whole dev split
    t=$1 r=$2; shift 2
    $lw eval --task $t --split $shared/data/$(data_of $t)/dev.jsonl "$@" --dtype $dtype --quiet --json $r/eval.json
}

for t in $tasks; do
    src=$shared/data/$(data_of $t)
    n_train=$(lines $src/train.jsonl) n_dev=$(lines $src/dev.jsonl)
    n_fit=$((n_train - n_train / 10))
    if [ -z "$dry_run" ] && [ ! -f $out/$t/data/heldout.jsonl ]; then
        mkdir -p $out/$t/data
        awk -v f=$out/$t/data/fit.jsonl.tmp -v h=$out/$t/data/heldout.jsonl.tmp \
            '{ if (NR % 10 == 0) print > h; else print > f }' $src/train.jsonl
        mv $out/$t/data/fit.jsonl.tmp $out/$t/data/fit.jsonl
        mv $out/$t/data/heldout.jsonl.tmp $out/$t/data/heldout.jsonl
    fi
    case $t in banking77-distinct) sec_score=${SEC_FIRST:-0.15} ;; *) sec_score=${SEC_SCORE:-0.5} ;; esac
    # the sender cache of the training file is built once and shared by every bridge run
    job $out/$t/linear_probe $(est "${SEC_SENDER:-0.2} * ($n_fit + $n_dev)") \
        eval_only $t $out/$t/linear_probe --method linear-probe --train $out/$t/data/fit.jsonl
    for b in $baselines; do
        case $b in text-relay|cot-relay) e=$(est "${SEC_GEN:-3} * $n_dev") ;; *) e=$(est "${SEC_SCORE:-0.5} * $n_dev") ;; esac
        job $out/$t/$b $e eval_only $t $out/$t/$b --method $b
    done
    for m in $ms; do
        for s in $seeds; do
            e=$(est "${SEC_TRAIN:-0.4} * $cap * 8 + $cap / $every * $slice * $sec_score + $n_dev * $sec_score")
            job $out/$t/bridge-M$m-seed$s $e train_bridge $t $out/$t/bridge-M$m-seed$s $m $s
        done
    done
    for me in prompt-tuning lora; do
        lr=$(rate_for $me $(data_of $t))
        for s in $seeds; do
            e=$(est "${SEC_TRAIN:-0.4} * $text_steps * 8 + ${SEC_SCORE:-0.5} * $n_dev")
            job $out/$t/$me-lr$lr-seed$s $e train_text $t $out/$t/$me-lr$lr-seed$s $me $lr $s
        done
    done
done

if [ -n "$dry_run" ]; then
    echo "converged ($pair): $n_jobs jobs, $n_done done; the rest at most $((cpu_s / 3600)) CPU-hours" \
        "(bridge runs at their step cap $cap; early stopping ends most sooner), $dtype weights"
    exit 0
fi
# The report over every finished job (a job still running elsewhere is left out).
rm -rf $out/json && mkdir -p $out/json
for f in $out/*/*/eval.json; do
    [ -f "$f" ] || continue
    cp "$f" "$out/json/$(basename "$(dirname "$(dirname "$f")")").$(basename "$(dirname "$f")").json"
done
$lw report --results $out/json --out $out/report
