#!/usr/bin/env python3
"""How much of `lw train`'s step runs on one thread: a 2-thread profile's samples sorted into the work the
pool splits and the work it does not (issue 19, item 3).

    perf record -F 400 --call-graph dwarf,12288 -o perf.data build/<pair>/lw train ... --threads 2
    python3 bench/train_serial_share.py perf.data [TOP]

A sample counts for the step when its call chain names a step function and no load-time one (the model
load's quantisation and packing, the sender cache). It is "split" when it ran on a worker or inside
lw_parallel_for on the main thread, "serial" otherwise (and attention's backward_kv_head counts as serial:
on a model with one kv head it is one task), "spin" when it is the pool waiting. The serial share S and
the split share P give the 2-thread speedup a perfect split of P would reach, (S + P) / (S + P / 2): a
property of the code, not of the machine's load, which is why it is useful on a loaded machine. Prints
the serial part by op, largest first."""
import collections
import re
import subprocess
import sys

STEP = re.compile(r"lw_forward|lw_trainer_examples|lw_receiver_pass|lw_train_run|lw_bridge|adamw|clip_grad|backward|"
                  r"worker|lw_parallel_for|run_tasks")
LOAD = re.compile(r"narrow|lw_qn_pack_backward|lw_qn_pack_forward|quantize_q8_0|model_load|_dl_|sender_cache|gguf|"
                  r"lw_load")
SPIN = re.compile(r"spin_until|futex|sched_yield|_mm_pause|now_ns|clock_gettime")
OPS = re.compile(r"^(matmul_\w+|lw_weight_\w+|attention_\w+|rmsnorm_\w+|rope_\w+|glu_\w+|cross_entropy_\w+|"
                 r"lw_adamw\w*|lw_grad_norm|lw_clip\w*|cblas_sgemm|lw_state_alloc|split_rows|lw_bridge_\w+|"
                 r"lw_qn_act_quantize\w*|op_forward|op_backward|lw_receiver_pass_\w+)$")


def main():
    data = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,ip,sym"], capture_output=True, text=True,
                         check=True).stdout
    main_tid = None
    cls = collections.Counter()
    serial = collections.Counter()
    for sample in out.split("\n\n"):
        lines = [l for l in sample.strip().split("\n") if l.strip()]
        if len(lines) < 2:
            continue
        tid = lines[0].split()[0]
        if main_tid is None:
            main_tid = tid
        frames = [l.split(None, 1)[1].replace(" (inlined)", "") if len(l.split(None, 1)) > 1 else "?"
                  for l in lines[1:]]
        chain = " ".join(frames)
        if LOAD.search(chain) or not STEP.search(chain):
            continue
        if SPIN.search(" ".join(frames[:4])):
            cls["spin"] += 1
        elif (tid != main_tid or "lw_parallel_for" in frames or "run_tasks" in frames) \
                and "backward_kv_head" not in frames:
            cls["split"] += 1
        else:
            cls["serial"] += 1
            serial[next((f for f in frames if OPS.match(f)), frames[0])] += 1
    s, p = cls["serial"], cls["split"]
    if s + p == 0:
        sys.exit("no step samples (a build without frame information, or a profile of the load only)")
    print("samples: serial %d split %d spin %d; serial share %.1f%%; ideal 2-thread speedup (S+P)/(S+P/2) = %.2fx"
          % (s, p, cls["spin"], 100.0 * s / (s + p), (s + p) / (s + p / 2)))
    for k, v in serial.most_common(top):
        print("  %5.1f%% of the step  %s" % (100.0 * v / (s + p), k))


if __name__ == "__main__":
    main()
