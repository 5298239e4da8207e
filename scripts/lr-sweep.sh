# Sourced by scripts/trained-baselines.sh and scripts/collect-results.sh: the
# learning-rate sweep of the trained baselines and the rate it chooses, read
# from $root/trained/<task>/<method>-lr<lr>-seed1/eval.json.
lrs_for() {
    case $1 in prompt-tuning) echo "3e-3 3e-2 1e-1" ;; lora) echo "3e-4 1e-3 3e-3" ;; bridge) echo "1e-4 3e-4 1e-3" ;; esac
}
# trained_run TASK METHOD LR SEED: where that run lives; the bridge at its
# default 3e-4 is scripts/experiments.sh's M = 16 run.
trained_run() {
    if [ $2 = bridge ] && [ $3 = 3e-4 ]; then echo $root/exp/$1/M16-seed$4; else echo $root/trained/$1/$2-lr$3-seed$4; fi
}
# The rate grid's neighbours, for a sweep whose best is on its edge.
rate_above() {
    case $1 in 3e-5) echo 1e-4 ;; 1e-4) echo 3e-4 ;; 3e-4) echo 1e-3 ;; 1e-3) echo 3e-3 ;;
    3e-3) echo 1e-2 ;; 1e-2) echo 3e-2 ;; 3e-2) echo 1e-1 ;; 1e-1) echo 3e-1 ;; 3e-1) echo 1e0 ;; 1e0) echo 3e0 ;; esac
}
rate_below() {
    case $1 in 3e0) echo 1e0 ;; 1e0) echo 3e-1 ;; 3e-1) echo 1e-1 ;; 1e-1) echo 3e-2 ;; 3e-2) echo 1e-2 ;; 1e-2) echo 3e-3 ;;
    3e-3) echo 1e-3 ;; 1e-3) echo 3e-4 ;; 3e-4) echo 1e-4 ;; 1e-4) echo 3e-5 ;; esac
}
# acc_of TASK METHOD LR: seed 1's dev accuracy, or nothing while it is missing.
acc_of() {
    f=$(trained_run $1 $2 $3 1)/eval.json
    if [ -f $f ]; then sed -n 's/^ *"accuracy": \([0-9.e+-]*\),*$/\1/p' $f; fi
}
# best_among TASK METHOD "LRS": the rate with the best seed-1 dev accuracy (the
# first on a tie), or nothing while one of them is missing.
best_among() {
    best="" acc=-1
    for lr in $3; do
        a=$(acc_of $1 $2 $lr)
        [ -n "$a" ] || return 0
        if awk -v a="$a" -v b="$acc" 'BEGIN { exit !(a > b) }'; then best=$lr acc=$a; fi
    done
    echo $best
}
# sweep_for TASK METHOD: lrs_for, widened by one rate each time the best so far
# is on an edge of the sweep (a best on the edge says the sweep missed its peak).
sweep_for() {
    lrs=$(lrs_for $2)
    while :; do
        best=$(best_among $1 $2 "$lrs") low=${lrs%% *} top=${lrs##* }
        if [ "$best" = "$top" ] && [ -n "$(rate_above $top)" ]; then lrs="$lrs $(rate_above $top)"
        elif [ "$best" = "$low" ] && [ -n "$(rate_below $low)" ]; then lrs="$(rate_below $low) $lrs"
        else break; fi
    done
    echo $lrs
}
# best_lr TASK METHOD: the chosen rate, or nothing while the sweep runs.
best_lr() { best_among $1 $2 "$(sweep_for $1 $2)"; }
