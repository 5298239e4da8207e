#!/usr/bin/env python3
"""One table of `lw bench --json` against bench/torch_bench.py's JSON:
median latency (batch 1) and throughput per method and batch, with the ratio
torch / lw (above 1: lw is faster), and the prompt rows each side ran (the
same work means the same rows, up to tokenizer differences).

  python3 bench/compare.py lw.json torch.json
  python3 bench/compare.py --run BUILD/lw --device cuda      # runs both first (see docs/gpu.md)
"""
import argparse
import json
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def key(r):
    return r["method"], r["batch"]


def table(lw, th):
    a = {key(r): r for r in lw["results"]}
    b = {key(r): r for r in th["results"]}
    print(f"lw:    {lw.get('machine', '?')} (device {lw.get('device', 'cpu')})")
    print(f"torch: {th.get('machine', '?')} (device {th.get('device', '?')}, {th.get('dtype', '?')})")
    if th.get("random_weights_seed") is not None:
        print(f"random weights (seed {th['random_weights_seed']}) and a byte tokenizer on the torch side; lw must "
              "have run with LWC_RANDOM_WEIGHTS: timing only, the rows below must match")
    print(f"{'method':18} {'batch':>5} {'lw ms/run':>11} {'torch ms/run':>13} {'torch/lw':>9} "
          f"{'lw ex/s':>9} {'torch ex/s':>11} {'lw rows':>8} {'torch rows':>10}")
    for k in sorted(set(a) & set(b), key=lambda k: (k[0], k[1])):
        x, y = a[k], b[k]
        lm, tm = 1e3 * x["run_s"]["median"], 1e3 * y["run_s"]["median"]
        print(f"{k[0]:18} {k[1]:5d} {lm:11.2f} {tm:13.2f} {tm / lm if lm else float('nan'):9.2f} "
              f"{x['examples_per_s']['median']:9.2f} {y['examples_per_s']['median']:11.2f} "
              f"{x['traffic']['prompt_tokens']:8.1f} {y['traffic']['prompt_tokens']:10.1f}")
    for k in sorted(set(a) ^ set(b)):
        print(f"{k[0]:18} {k[1]:5d}  only in {'lw' if k in a else 'torch'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="lw.json torch.json")
    p.add_argument("--run", metavar="LW", help="the pair's lw binary: run both benches first")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--task", default="sst2")
    p.add_argument("--split", default=os.path.join(os.environ.get("LWC_SHARED", os.path.join(SRC, "..", "shared")),
                                                   "data/sst2/dev.jsonl"))
    p.add_argument("--runs", default="20")
    p.add_argument("--limit", default="64")
    p.add_argument("--out", default=".", help="where the two JSON files go with --run")
    a = p.parse_args(argv)
    if a.run:
        lw_json, th_json = os.path.join(a.out, "lw_bench.json"), os.path.join(a.out, "torch_bench.json")
        subprocess.run([a.run, "bench", "--task", a.task, "--split", a.split, "--limit", a.limit, "--runs", a.runs,
                        "--device", a.device, "--json", lw_json, "--quiet"], check=True)
        subprocess.run([sys.executable, os.path.join(SRC, "bench/torch_bench.py"), "--device", a.device, "--task",
                        a.task, "--split", a.split, "--limit", a.limit, "--runs", a.runs, "--json", th_json,
                        "--quiet"], check=True)
        a.files = [lw_json, th_json]
    if len(a.files) != 2:
        p.error("give lw.json and torch.json, or --run")
    table(json.load(open(a.files[0])), json.load(open(a.files[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
