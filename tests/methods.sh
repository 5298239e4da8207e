#!/bin/sh
# Every method of lw train / eval / report / bench, end to end through the
# binary, on a tiny slice (the stories260K -> SmolLM2-135M pair, a few
# examples, a few steps): each command must succeed and write what it
# promises. Accuracy is not judged here (tests/check_train.c does that on a
# task a tiny pair can learn); this catches a method that no longer runs.
set -eu
srcdir=$1 lwc=$2
suite=methods
. "$srcdir/tests/script_common.sh"
has() { grep -q "$2" "$1"; }   # has FILE PATTERN

"$lwc" build --quiet "$srcdir/pairs/stories260k_to_smollm2-135m.json" -o "$w/build"
lw=$w/build/stories260k_to_smollm2-135m/lw
tiny="--task sst2 --data $data --limit-train 8 --steps 2 --batch 2 --lr 1e-3 --warmup 1 --quiet"
ev="--task sst2 --split $data/dev.jsonl --limit 4 --quiet"
mkdir -p "$w/res"

check "train bridge" "$lw" train $tiny --soft-tokens 4 --out "$w/bridge"
check "eval bridge" "$lw" eval $ev --checkpoint "$w/bridge/final" --json "$w/res/bridge.json"
check "bridge JSON" has "$w/res/bridge.json" '"method": "bridge"'
"$lw" eval $ev --checkpoint "$w/bridge/final" >"$w/quiet.txt" 2>&1 || true
"$lw" eval ${ev% --quiet} --checkpoint "$w/bridge/final" >"$w/loud.txt" 2>&1 || true
check "eval --quiet prints accuracy" has "$w/quiet.txt" '^  accuracy'
check "eval --quiet leaves per-class scores to --json" sh -c "! grep -q precision '$w/quiet.txt'"
check "eval prints per-class scores" has "$w/loud.txt" precision
check "train bridge + lora + deep prefix" "$lw" train $tiny --soft-tokens 4 --lora --deep-prefix \
    --prefix-length 2 --out "$w/both"
check "eval bridge + adapters" "$lw" eval $ev --checkpoint "$w/both/final" --json "$w/res/both.json"
check "adapters named in JSON" has "$w/res/both.json" '"method": "bridge+lora+deep-prefix"'
for m in prompt-tuning lora; do
    check "train $m" "$lw" train --method $m $tiny --out "$w/$m"
    check "eval $m" "$lw" eval --method $m $ev --checkpoint "$w/$m/final" --json "$w/res/$m.json"
done
fails_saying() {   # fails_saying PATTERN COMMAND...: exits non-zero and prints PATTERN
    pattern=$1; shift
    ! "$@" >"$w/out" 2>&1 && grep -q "$pattern" "$w/out"
}
# lw eval --score first against the full scoring: with two-word verbalizers
# whose first words differ, each label's first-token score is exactly the
# full score of the same verbalizers cut to their first word (and not the
# two-word full score); a task whose labels share a first token is refused.
mkdir -p "$w/tasks"
task_json() {   # task_json NAME NEGATIVE POSITIVE: an SST-2 task with these verbalizers
    printf '{"name": "%s", "primer": "Classify the sentiment of this review.", "answer_prompt": "Sentiment:", "labels": [{"label": "negative", "verbalizer": "%s"}, {"label": "positive", "verbalizer": "%s"}]}\n' \
        "$1" "$2" "$3" >"$w/tasks/$1.json"
}
task_json two " negative review" " positive review"
task_json cut " negative" " positive"
task_json same " very negative" " very positive"
ev1="--split $data/dev.jsonl --limit 4 --quiet --tasks-dir $w/tasks --checkpoint $w/bridge/final"
check "eval --score first" "$lw" eval --task two $ev1 --score first --scores "$w/first.jsonl" --json "$w/first.json"
check "eval of the cut verbalizers" "$lw" eval --task cut $ev1 --scores "$w/cut.jsonl"
check "eval of the two-word verbalizers" "$lw" eval --task two $ev1 --scores "$w/full.jsonl"
check "first-token scores = the cut verbalizers' full scores" cmp "$w/first.jsonl" "$w/cut.jsonl"
check "first-token scores != the two-word full scores" sh -c "! cmp -s '$w/first.jsonl' '$w/full.jsonl'"
check "--score first named in JSON" sh -c "grep -q '\"method\": \"bridge-first\"' '$w/first.json' && grep -q '\"score\": \"first\"' '$w/first.json'"
check "--score first refuses shared first tokens" fails_saying "share theirs" "$lw" eval --task same $ev1 --score first
check "--score takes full or first" fails_saying "full or first" "$lw" eval --task two $ev1 --score last
# scripts/converged.sh --dry-run: every job of the converged protocol listed
# with its state and estimated cost, nothing written, nothing built
conv_dry() {
    PAIR=stories260k_to_smollm2-135m LWC_SHARED=$shared TASKS="sst2 banking77-distinct" MS=8 SEEDS="1 2" \
        "$srcdir/scripts/converged.sh" --dry-run >"$w/conv.txt" &&
        [ "$(grep -c '^todo .* CPU-min  runs/stories260k_to_smollm2-135m/converged/' "$w/conv.txt")" = 26 ] &&
        grep -q '^converged (stories260k_to_smollm2-135m): 26 jobs, 0 done' "$w/conv.txt" &&
        grep -q 'banking77-distinct/bridge-M8-seed2$' "$w/conv.txt" &&
        [ ! -e "$srcdir/runs/stories260k_to_smollm2-135m/converged" ]
}
check "converged.sh --dry-run lists its jobs and writes nothing" conv_dry
losses() { sed 's/.*"loss": *\([^,]*\),.*/\1/' "$1/train_log.jsonl"; }
same_losses() {   # same_losses DIR_A DIR_B: the same steps, each loss within relative 1e-4
    losses "$1" >"$w/la"; losses "$2" >"$w/lb"
    [ "$(wc -l <"$w/la")" -gt 0 ] && [ "$(wc -l <"$w/la")" = "$(wc -l <"$w/lb")" ] &&
        paste "$w/la" "$w/lb" | awk '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1;
            if (d > 1e-4 * a) { print "loss " $1 " vs " $2; bad = 1 } } END { exit bad }'
}
if [ -n "${LWC_MPIRUN:-}" ]; then   # the Makefile sets it when configure found MPI
    check "train bridge, 2 data-parallel ranks (mpirun)" "$srcdir/scripts/launch.sh" 2 "$lw" train $tiny \
        --soft-tokens 4 --out "$w/dp2"
    check "only rank 0 wrote" test -f "$w/dp2/final/bridge.safetensors" -a "$(grep -c . "$w/dp2/train_log.jsonl")" = 2
    check "2 ranks train as 1 (losses)" same_losses "$w/bridge" "$w/dp2"
    check "a text method is refused above world 1" fails_saying "world size 1 only" \
        "$srcdir/scripts/launch.sh" 2 "$lw" train --method lora $tiny --out "$w/dp2-lora"
else   # a build without MPI refuses a world of 2, saying why
    check "2 ranks without MPI are refused" fails_saying "built without it" env OMPI_COMM_WORLD_SIZE=2 \
        OMPI_COMM_WORLD_RANK=0 "$lw" train $tiny --soft-tokens 4 --out "$w/dp2"
fi
if [ ! -e /dev/nvidia0 ]; then   # without a GPU, --device cuda says so and exits 1
    check "train --device cuda without a GPU" fails_saying "CUDA driver" "$lw" train $tiny --device cuda \
        --out "$w/gpu"
    check "eval --device cuda without a GPU" fails_saying "CUDA driver" "$lw" eval $ev \
        --checkpoint "$w/bridge/final" --device cuda
    # bf16 training on the GPU is no longer refused: it gets as far as the driver
    check "train --device cuda --dtype bf16 without a GPU" fails_saying "CUDA driver" "$lw" train $tiny \
        --device cuda --dtype bf16 --out "$w/gpu-bf16"
fi
check "train --device cuda --dtype q8 is refused" fails_saying "is for --device cpu" "$lw" train $tiny \
    --device cuda --dtype q8 --out "$w/gpu-q8"
check "eval linear-probe" "$lw" eval --method linear-probe $ev --limit-train 8 --json "$w/res/probe.json"
check "train --subset stratified" "$lw" train $tiny --subset stratified --soft-tokens 4 --out "$w/strat"
check "subset in run.json" has "$w/strat/run.json" '"train_subset": "stratified 8 (seed 1)"'
check "eval --subset stratified" "$lw" eval --method linear-probe $ev --subset stratified --subset-seed 2 \
    --limit-train 8 --json "$w/strat.json"
check "subsets in eval JSON" has "$w/strat.json" '"subset": "stratified 4 (seed 2)"'
check "--subset checks its value" fails_saying "first or stratified" "$lw" eval $ev --subset random
for m in sender-zeroshot receiver-zeroshot receiver-kshot token-budget text-relay cot-relay; do
    check "eval $m" "$lw" eval --method $m $ev --relay-tokens 4 --json "$w/res/$m.json"
done
check "eval receiver-zeroshot --generate" "$lw" eval --method receiver-zeroshot --generate $ev \
    --json "$w/res/gen.json"
check "generate named in JSON" has "$w/res/gen.json" '"method": "receiver-zeroshot-generate"'
for f in "$w"/res/*.json; do check "accuracy in $(basename "$f")" has "$f" '"accuracy"'; done

# tasks whose answer the model writes (generate) or picks (choice): 2-3 rows
# each, kept out of res/ (lw report reads classification results)
sd=$shared/data
mkdir -p "$w/ans"
check "eval squad receiver-text" "$lw" eval --task squad --split "$sd/squad/dev.jsonl" --method receiver-text \
    --limit 2 --quiet --json "$w/ans/squad.json"
check "squad JSON has EM and F1" has "$w/ans/squad.json" '"f1_ci95"'
check "squad JSON has the answers" has "$w/ans/squad.json" '"answer"'
check "eval piqa sender-text" "$lw" eval --task piqa --split "$sd/piqa/dev.jsonl" --method sender-text \
    --limit 3 --quiet --json "$w/ans/piqa.json"
check "eval boolq receiver-text" "$lw" eval --task boolq --split "$sd/boolq/dev.jsonl" --method receiver-text \
    --limit 2 --quiet --json "$w/ans/boolq.json"
for t in piqa boolq; do
    check "$t JSON has accuracy" has "$w/ans/$t.json" '"accuracy_ci95"'
    check "$t JSON has chance and majority" has "$w/ans/$t.json" '"majority"'
done
check "eval csqa receiver-zeroshot" "$lw" eval --task csqa --split "$sd/csqa/dev.jsonl" \
    --method receiver-zeroshot --limit 2 --quiet
check "eval squad receiver-text --dtype q8" "$lw" eval --task squad --split "$sd/squad/dev.jsonl" \
    --method receiver-text --dtype q8 --limit 1 --quiet --json "$w/ans/squad-q8.json"
check "the answer JSON names its dtype" has "$w/ans/squad-q8.json" '"dtype": "q8"'
check "the answer JSON names fp32 by default" has "$w/ans/squad.json" '"dtype": "fp32"'
check "an answer --dtype that is none is refused by name" fails_saying "takes fp32, bf16, q8 or native, not fp16" \
    "$lw" eval --task squad --split "$sd/squad/dev.jsonl" --dtype fp16 --limit 1 --quiet
# every command that computes what another compares sizes the pool as lw eval does (lw_threads_apply)
check "the bridge on answers reads LWC_THREADS as lw eval does" fails_saying "LWC_THREADS='x'" \
    env LWC_THREADS=x "$lw" train --task squad --data "$sd/squad" --steps 1 --quiet --out "$w/squad-threads"
check "the bridge on answers takes --threads" fails_saying "threads expects an integer in 1\.\." \
    "$lw" eval --task squad --split "$sd/squad/dev.jsonl" --method bridge --checkpoint "$w/none" --threads 0
check "a method that does not apply is refused" fails_saying "does not apply to squad (a generate task)" \
    "$lw" eval --task squad --split "$sd/squad/dev.jsonl" --method linear-probe
check "an option that does not apply is refused" fails_saying "option '--k' does not apply to piqa" \
    "$lw" eval --task piqa --split "$sd/piqa/dev.jsonl" --k 2
check "a prompt past the sender's context says so" fails_saying "must fit in 512 positions" \
    "$lw" eval --task squad --split "$sd/squad/dev.jsonl" --method sender-text --limit 1 --quiet
check "lw train refuses a choice task" fails_saying "only lw eval takes it" \
    "$lw" train --task piqa --data "$sd/piqa" --steps 1 --quiet --out "$w/piqa-train"
check "lw train on a generate task is the bridge on answers" fails_saying "option '--k' does not apply to the bridge" \
    "$lw" train --task squad --data "$sd/squad" --steps 1 --quiet --out "$w/squad-train" --k 2

check "report" "$lw" report --results "$w/res" --logs "$w" --out "$w/report"
for m in bridge bridge+lora+deep-prefix prompt-tuning lora linear-probe sender-zeroshot receiver-zeroshot \
         receiver-kshot token-budget text-relay cot-relay; do
    check "report row $m" grep -q "^| $m" "$w/report/results.md"
done
check "report CSV" has "$w/report/results.csv" '^method,task'
check "report plots" test -s "$w/report/accuracy_vs_M_sst2.svg" -a -s "$w/report/loss_sst2.svg"

check "bench" "$lw" bench --task sst2 --split "$data/dev.jsonl" --checkpoint "$w/bridge/final" --runs 2 \
    --warmup 1 --batch 1 --relay-tokens 4 --soft-tokens 4 --limit 4 --quiet --json "$w/bench.json"
for m in bridge text-relay receiver-zeroshot sender-zeroshot; do
    check "bench $m in JSON" has "$w/bench.json" "\"$m\""
done
echo "methods: $pass passed, $fail failed"
[ $fail -eq 0 ]
