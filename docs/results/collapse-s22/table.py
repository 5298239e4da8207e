#!/usr/bin/env python3
"""The stop-22 tables: each run's dev_log.jsonl as step | held-out loss | first-token right | msg_spread
(| msg_cos for the interlingua). Usage: table.py RUN_DIR_OR_DEV_LOG... (a run folder holding
dev_log.jsonl, or such a file: docs/results/collapse-s22/*.dev_log.jsonl)."""
import json
import os
import sys

for run in sys.argv[1:]:
    path = run if os.path.isfile(run) else os.path.join(run, "dev_log.jsonl")
    rows = [json.loads(line) for line in open(path)]
    print(f"{run}")
    for d in rows:
        right = "" if d.get("dev_first_acc") is None else f"{round(77 * d['dev_first_acc']):3d}"
        cos = "" if d.get("msg_cos") is None else f"  cos {d['msg_cos']:.4f}"
        sp = "null" if d.get("msg_spread") is None else f"{d['msg_spread']:.3f}"
        print(f"  step {d['step']:4d}  loss {d['dev_loss']:8.4f}  right {right:>3}  spread {sp}{cos}")
