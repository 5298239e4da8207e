#!/usr/bin/env python3
"""Issue 19's CPU benchmarks in one run (docs/perf.md, "The issue-19 round: how to run it").

  python3 bench/cpu_round.py [--quick] [--budget 600] [--rounds 3] [--allow-load] [--out DIR]
  make bench-round [BENCH_ROUND_ARGS="--quick"]

Side by side, at the same thread counts (--threads, default 1,2), every row once per round, rounds
interleaved (the row order reversed every other round), medians over the rounds:

  train    `lw train` on the demo protocol (the first 64 SST-2 training examples, batch 8, lr 3e-4,
           the sender's states cached before: the time is the receiver's forward and backward and
           the bridge) at each --dtype, against the PyTorch reference of the same step
           (shared/reference/torch-bridge-step/bridge_step.py `time`, with and without --head-cache).
           examples/s = batch / median step time over the steps after the first two.
  eval     `lw eval` (bridge) label-scoring examples/s on SST-2 and Banking77 dev, --score-batch 1
           (the default) and 8; the scoring loop's own s/example (models loaded, sender states cached).
  forward  prefill 64 tokens and decode 32 greedy steps: out/bench/bench_forward at each dtype
           (with the thread pool of N), bench/bench_torch.py (PyTorch fp32, N threads) and
           bench/bench_llama_cpp.py (llama.cpp, n_threads = N) on the same GGUF files.

Writes DIR/results.json (every row of every round, the machine), DIR/results.csv (one line a row
and round), DIR/summary.csv (medians) and DIR/results.md (the tables). A reference that is missing
(torch, transformers, gguf, llama-cpp-python, the torch-bridge-step folder) is skipped with one line
saying so; a dtype the binary refuses is reported as refused. Every row records the 1-minute load
average before and after it and the CPU time other processes took while it ran ("others", in
cores: (machine busy time - this row's CPU time) / wall time); a row where others took more than
--max-others cores is flagged LOADED. The run refuses to start while the 1-minute load average is
above --max-load (1.5) after waiting up to --wait-quiet seconds for it to fall, unless --allow-load.
Only the standard library here; the references need what tests/golden/requirements.txt lists.
"""
import argparse
import csv
import ctypes
import datetime
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIR = "smollm2-135m_to_gemma3-270m"
MODELS = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3": "gemma-3-270m-q4_k_m.gguf"}
MODEL_NAMES = {"smollm2": "SmolLM2-135M", "gemma3": "Gemma-3-270M"}


# ---------------------------------------------------------------- the machine

def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def busy_seconds():
    """CPU seconds the whole machine has been busy (all cores; /proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "?"


def cpu_flags():
    want = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in want if w in have]
    except OSError:
        pass
    return []


def openblas_of(binary):
    """openblas_get_corename / _config of the BLAS `binary` links (ldd), in this process's environment
    (OPENBLAS_CORETYPE and the like are inherited by the rows)."""
    lib = None
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            m = re.search(r"(lib(open)?blas[^ ]*\.so[^ ]*) => (\S+)", line)
            if m:
                lib = m.group(3)
                break
    except (OSError, subprocess.SubprocessError):
        pass
    if not lib:
        return {"library": None, "corename": "not OpenBLAS (or not linked)"}
    res = {"library": os.path.realpath(lib)}
    try:
        so = ctypes.CDLL(lib)
        for name in ("corename", "config"):
            fn = getattr(so, "openblas_get_" + name)
            fn.restype = ctypes.c_char_p
            res[name] = fn().decode(errors="replace")
    except (OSError, AttributeError) as e:
        res["corename"] = f"unknown ({e})"
    return res


def git_state():
    try:
        head = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def py_versions(python):
    code = ("import importlib, importlib.metadata as md, json\nv = {}\n"
            "for m, dist in (('torch', 'torch'), ('transformers', 'transformers'), ('gguf', 'gguf'),\n"
            "                ('accelerate', 'accelerate'), ('llama_cpp', 'llama_cpp_python')):\n"
            "    try:\n        importlib.import_module(m)\n        v[m] = md.version(dist)\n"
            "    except Exception:\n        v[m] = None\n"
            "print(json.dumps(v))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}


# ---------------------------------------------------------------- one row

def run_row(cmd, env, timeout, cwd=None):
    """Runs one command (its own process group), returns (rc, stdout, stderr, wall, cpu, others, l0, l1)."""
    l0 = load1()
    b0, c0, t0 = busy_seconds(), children_cpu(), time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = 124
        err += f"\n(killed after {timeout} s)"
    wall = time.perf_counter() - t0
    cpu = children_cpu() - c0
    others = max(0.0, (busy_seconds() - b0 - cpu) / wall) if wall > 0 else 0.0
    return rc, out, err, wall, cpu, others, l0, load1()


def last_line(text):
    lines = [l.strip() for l in text.replace("\r", "\n").splitlines() if l.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------- the cases

class Case:
    """One row of the tables: `make(round_dir)` gives (cmd, env, cwd), `parse(rc, out, err, dir)` gives
    the metrics (dict) or raises ValueError with the reason."""

    def __init__(self, cid, section, tool, params, make, parse, skip=None):
        self.id, self.section, self.tool, self.params = cid, section, tool, params
        self.make, self.parse, self.skip = make, parse, skip
        self.runs = []          # one dict per round
        self.refused = None     # the binary refused this row (first round): not run again


def steady_examples_per_s(log_path, batch, skip_steps):
    with open(log_path) as f:
        recs = [json.loads(l) for l in f if l.strip()]
    el = [r["elapsed_s"] for r in recs]
    steps = [b - a for a, b in zip(el, el[1:])][max(0, skip_steps - 1):]   # durations of steps skip+1..
    if not steps:
        raise ValueError(f"{log_path}: {len(recs)} steps, too few to time")
    return {"examples_per_s": batch / statistics.median(steps),
            "cumulative_examples_per_s": recs[-1]["examples_per_s"],
            "last_loss": recs[-1]["loss"], "steps_timed": len(steps)}


def build_cases(a, env0, skips):
    cases = []
    sh = a.shared
    lw_env = dict(env0, LWC_CACHE_DIR=os.path.join(a.cache, "lwc-sender-cache"))

    # -- train
    if "train" in a.sections:
        targs = ["--task", "sst2", "--data", os.path.join(sh, "data", "sst2"), "--limit-train", str(a.train_examples),
                 "--steps", str(a.train_steps), "--batch", "8", "--lr", "3e-4", "--warmup", "1",
                 "--soft-tokens", str(a.soft_tokens), "--quiet", "--force"]
        for t in a.threads:
            for d in a.dtypes:
                def make(rd, d=d, t=t):
                    return [a.lw, "train"] + targs + ["--dtype", d, "--threads", str(t),
                                                      "--out", os.path.join(rd, f"train-{d}-t{t}")], lw_env, None

                def parse(rc, out, err, rd, d=d, t=t):
                    return steady_examples_per_s(os.path.join(rd, f"train-{d}-t{t}", "train_log.jsonl"), 8, 2)
                cases.append(Case(f"train/lw/{d}/t{t}", "train", "lw", {"dtype": d, "threads": t}, make, parse))
            for hc in (True, False):
                def make(rd, t=t, hc=hc):
                    cmd = [a.python, a.bridge_step, "time", "--threads", str(t), "--soft-tokens", str(a.soft_tokens),
                           "--steps", str(a.torch_steps), "--warmup-steps", "2"] + (["--head-cache"] if hc else [])
                    return cmd, torch_env(a, env0, t), None

                def parse(rc, out, err, rd):
                    o = json.loads(last_line(out))
                    return {"examples_per_s": o["examples_per_s"], "steps_timed": o["steps_timed"]}
                name = "torch-headcache" if hc else "torch"
                cases.append(Case(f"train/{name}/t{t}", "train", name, {"dtype": "fp32", "threads": t}, make, parse,
                                  skip=skips.get("torch-train")))

    # -- eval
    if "eval" in a.sections:
        for t in a.threads:
            for task, limit in (("sst2", a.eval_sst2), ("banking77", a.eval_banking77)):
                for sb in (1, 8):
                    for d in a.eval_dtypes:
                        def make(rd, task=task, limit=limit, sb=sb, d=d, t=t):
                            return eval_cmd(a, task, limit, sb, d, t), lw_env, None

                        def parse(rc, out, err, rd):
                            m = re.findall(r"eval: (\d+)/(\d+)\s+([0-9.]+) s/example", err)
                            if not m:
                                raise ValueError("no progress line 'eval: n/n x s/example' on stderr")
                            n, total, spe = m[-1]
                            acc = re.search(r"accuracy\s+([0-9.]+)", out)
                            return {"examples_per_s": 1.0 / float(spe), "examples": int(n),
                                    "accuracy": float(acc.group(1)) if acc else None}
                        cases.append(Case(f"eval/lw/{task}/sb{sb}/{d}/t{t}", "eval", "lw",
                                          {"task": task, "score_batch": sb, "dtype": d, "threads": t}, make, parse,
                                          skip=skips.get("checkpoint")))

    # -- forward
    if "forward" in a.sections:
        P, D, R = str(a.prompt), str(a.decode), str(a.forward_runs)
        for t in a.threads:
            for mk in a.models:
                gguf = os.path.join(a.models_dir, MODELS[mk])
                for d in a.dtypes:
                    def make(rd, gguf=gguf, d=d, t=t):
                        return [a.bench_forward, gguf, "gguf", P, D, R, d, str(t)], env0, None

                    def parse(rc, out, err, rd):
                        m = re.search(r"prefill \d+ tokens: ([0-9.]+) tok/s.*decode \d+ tokens: ([0-9.]+) tok/s", out)
                        if not m:
                            raise ValueError("no 'prefill ... decode ...' line")
                        return {"prefill_tok_s": float(m.group(1)), "decode_tok_s": float(m.group(2))}
                    cases.append(Case(f"forward/lw/{mk}/{d}/t{t}", "forward", "lw",
                                      {"model": mk, "dtype": d, "threads": t}, make, parse))

                def make(rd, mk=mk, t=t):
                    e = torch_env(a, env0, t)
                    e.update(OPENBLAS_NUM_THREADS=str(t), ATTN=a.torch_attn, LWC_MODELS=a.models_dir,
                             LWC_TORCH_HF_DIR=os.path.join(a.cache, "torch-bridge-step", "hf"))
                    return [a.python, os.path.join(SRC, "bench", "bench_torch.py"), mk, P, D, R], e, None

                def parse(rc, out, err, rd):
                    m = re.search(r"prefill \d+ tokens: ([0-9.]+) tok/s, decode \d+ tokens: ([0-9.]+) tok/s", out)
                    if not m:
                        raise ValueError("no 'prefill ... decode ...' line")
                    return {"prefill_tok_s": float(m.group(1)), "decode_tok_s": float(m.group(2))}
                cases.append(Case(f"forward/torch/{mk}/t{t}", "forward", "torch", {"model": mk, "dtype": "fp32",
                                  "threads": t}, make, parse, skip=skips.get("torch")))

                def make(rd, gguf=gguf, t=t):
                    return [a.python, os.path.join(SRC, "bench", "bench_llama_cpp.py"), gguf, "--threads", str(t),
                            "--prompt", P, "--decode", D, "--runs", R], dict(env0, OMP_NUM_THREADS=str(t)), None

                def parse(rc, out, err, rd):
                    o = json.loads(last_line(out))
                    if "skipped" in o:
                        raise ValueError(o["skipped"])
                    return {"prefill_tok_s": o["prefill_tok_s"], "decode_tok_s": o["decode_tok_s"]}
                cases.append(Case(f"forward/llama.cpp/{mk}/t{t}", "forward", "llama.cpp",
                                  {"model": mk, "dtype": "gguf", "threads": t}, make, parse,
                                  skip=skips.get("llama.cpp")))
    return cases


def eval_cmd(a, task, limit, sb, d, t):
    return [a.lw, "eval", "--task", task, "--split", os.path.join(a.shared, "data", task, "dev.jsonl"),
            "--limit", str(limit), "--checkpoint", a.checkpoint, "--score-batch", str(sb), "--dtype", d,
            "--threads", str(t)]


def torch_env(a, env0, t):
    return dict(env0, OMP_NUM_THREADS=str(t), MKL_NUM_THREADS=str(t), LWC_MODELS_DIR=a.models_dir,
                LWC_TASK_FILE=os.path.join(SRC, "tasks", "sst2.json"), LWC_SST2_DIR=os.path.join(a.shared, "data", "sst2"),
                LWC_REF_WORK=os.path.join(a.cache, "torch-bridge-step"))


# ---------------------------------------------------------------- before the rounds

def find_skips(a, versions):
    skips = {}
    missing = [m for m in ("torch", "transformers", "gguf") if not versions.get(m)]
    if missing:
        skips["torch"] = skips["torch-train"] = "PyTorch reference skipped: %s not importable by %s" % (
            ", ".join(missing), a.python)
    elif not os.path.isfile(a.bridge_step):
        skips["torch-train"] = f"PyTorch training reference skipped: {a.bridge_step} not found (--bridge-step)"
    elif not versions.get("accelerate"):
        skips["torch-train"] = "PyTorch training reference skipped: accelerate not importable"
    if not versions.get("llama_cpp"):
        skips["llama.cpp"] = ("llama.cpp reference skipped: llama-cpp-python not importable by %s (build it: "
                              "bench/bench_llama_cpp.py's header)" % a.python)
    if "torch" not in a.refs:
        skips["torch"] = skips["torch-train"] = "PyTorch reference skipped: not in --refs"
    if "llama.cpp" not in a.refs:
        skips["llama.cpp"] = "llama.cpp reference skipped: not in --refs"
    if "eval" in a.sections and not os.path.isdir(a.checkpoint) and not os.path.isfile(a.checkpoint):
        skips["checkpoint"] = f"eval rows skipped: no bridge checkpoint at {a.checkpoint} (make demo, or --checkpoint)"
    return skips


def prepare(a, cases, env0, log):
    """Untimed: the caches every row expects warm (lw's sender states per dtype and eval slice, the
    PyTorch reference's fp32 copies and sender states)."""
    lw_env = dict(env0, LWC_CACHE_DIR=os.path.join(a.cache, "lwc-sender-cache"))
    tmp = os.path.join(a.out, "prep")
    os.makedirs(tmp, exist_ok=True)
    t = max(a.threads)
    jobs = []
    if any(c.section == "train" and c.tool == "lw" for c in cases):
        for d in a.dtypes:
            jobs.append((f"lw sender cache, train, {d}", [a.lw, "train", "--task", "sst2", "--data",
                         os.path.join(a.shared, "data", "sst2"), "--limit-train", str(a.train_examples), "--steps", "1",
                         "--batch", "8", "--soft-tokens", str(a.soft_tokens), "--quiet", "--force", "--dtype", d,
                         "--threads", str(t), "--out", os.path.join(tmp, "train-" + d)], lw_env))
    for c in cases:   # the sender cache accepts a file of at least the examples asked for: warm the whole slice
        if c.section == "eval" and not c.skip and c.params["score_batch"] == 8 and c.params["threads"] == t:
            task = c.params["task"]
            jobs.append((f"lw sender cache, eval {task} {c.params['dtype']}",
                         eval_cmd(a, task, a.eval_sst2 if task == "sst2" else a.eval_banking77, 8, c.params["dtype"], t),
                         lw_env))
    # the PyTorch rows load the fp32 copies this writes (bench_torch.py too: LWC_TORCH_HF_DIR)
    if os.path.isfile(a.bridge_step) and any(c.tool.startswith("torch") and not c.skip for c in cases):
        work = os.path.join(a.cache, "torch-bridge-step")
        if not (os.path.exists(os.path.join(work, "cache", "train800.L20.pt"))
                and os.path.exists(os.path.join(work, "hf", "receiver", "config.json"))):
            jobs.append(("PyTorch reference prep (fp32 copies, sender states; once per cache folder)",
                         [a.python, a.bridge_step, "prep", "--threads", str(t)], torch_env(a, env0, t)))
    for what, cmd, env in jobs:
        t0 = time.perf_counter()
        rc, out, err, *_ = run_row(cmd, env, a.row_timeout * 4)
        log(f"prep: {what}: {'ok' if rc == 0 else 'rc %d: %s' % (rc, last_line(err))} ({time.perf_counter() - t0:.0f} s)")


# ---------------------------------------------------------------- summary and tables

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(cases, max_others):
    rows = []
    for c in cases:
        ok = [r for r in c.runs if r.get("metrics")]
        s = {"id": c.id, "section": c.section, "tool": c.tool, **c.params, "rounds": len(ok),
             "status": c.skip or c.refused or ("ok" if ok else (c.runs[-1]["error"] if c.runs else "not run")),
             "loaded_rounds": sum(1 for r in ok if r["others_cores"] > max_others),
             "load1_max": max([r["load1_before"] for r in c.runs] + [r["load1_after"] for r in c.runs], default=None),
             "others_cores_max": max([r["others_cores"] for r in c.runs], default=None)}
        for k in ("examples_per_s", "prefill_tok_s", "decode_tok_s", "accuracy", "last_loss"):
            vals = [r["metrics"].get(k) for r in ok if r["metrics"].get(k) is not None]
            if vals:
                s[k] = statistics.median(vals)
                s[k + "_min"], s[k + "_max"] = min(vals), max(vals)
        rows.append(s)
    return rows


def fmt(v, nd=2):
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if v < 100 else f"{v:.0f}" if v >= 1000 else f"{v:.1f}"


def cell(s, k, nd=2):
    if k not in s:
        return "-"
    txt = fmt(s[k], nd)
    if s["rounds"] > 1:
        txt += f" [{fmt(s[k + '_min'], nd)}-{fmt(s[k + '_max'], nd)}]"
    if s["loaded_rounds"]:
        txt += " LOADED"
    return txt


def short(s, width=0):
    """A row with no figure: why, in a word (the full line is in the list under the tables)."""
    st = s.get("status", "-") if s else "-"
    if st.startswith(("PyTorch", "llama.cpp", "eval rows")) and "skipped" in st:
        return "skipped"
    if st.startswith("refused"):
        return "refused"
    if st.startswith("rc 124"):
        return "timed out"
    if st in ("-", "not run"):
        return st
    return st[:width] if width else "failed"


def ratio(x, y):
    return f"{x / y:.2f}x" if x and y else "-"


def markdown(meta, summ, a):
    by = {s["id"]: s for s in summ}
    L = []
    L.append(f"# Issue-19 CPU round, {meta['started']}")
    L.append("")
    L.append(f"Machine: {meta['cpu_model']}, {meta['nproc']} CPUs, flags {' '.join(meta['cpu_flags'])}; OpenBLAS "
             f"core `{meta['openblas'].get('corename')}` ({meta['openblas'].get('config', '')}); lwc {meta['git']}; "
             f"{', '.join('%s %s' % (k, v) for k, v in meta['python_versions'].items() if v)}.")
    L.append(f"Load average (1 min) {meta['load1_start']:.2f} at the start, {meta.get('load1_end', 0):.2f} at the end; "
             f"{meta['rounds_done']} complete round(s) of every row, interleaved (medians, [min-max] over rounds); "
             f"{meta['wall_s']:.0f} s in all. A row marked LOADED had other processes using more than "
             f"{a.max_others} cores during at least one of its rounds.")
    if meta.get("allow_load"):
        L.append("")
        L.append("**Run with --allow-load: the machine was not quiet; these are not figures to quote.**")
    for line in meta["skipped"]:
        L.append("")
        L.append(f"- {line}")
    T = a.threads
    if "train" in a.sections:
        L.append("")
        L.append(f"## Bridge training, examples/s (demo protocol: {a.train_examples} SST-2 examples, batch 8, "
                 f"M = {a.soft_tokens}, sender cached; median step after the first two)")
        L.append("")
        L.append("| run | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in T) + " | " +
                 " | ".join(f"vs fp32 ({t}t)" for t in T) + " | " + " | ".join(f"vs torch+cache ({t}t)" for t in T) + " |")
        L.append("|---" * (1 + 3 * len(T)) + "|")
        names = [(f"lw --dtype {d}", f"train/lw/{d}/t") for d in a.dtypes] + \
                [("PyTorch, head cached", "train/torch-headcache/t"), ("PyTorch, all rows", "train/torch/t")]
        for label, pre in names:
            cells, r1, r2 = [], [], []
            for t in T:
                s = by.get(pre + str(t))
                if not s:
                    cells.append("-"), r1.append("-"), r2.append("-")
                    continue
                cells.append(cell(s, "examples_per_s") if "examples_per_s" in s else short(s))
                base = by.get(f"train/lw/fp32/t{t}", {}).get("examples_per_s")
                tc = by.get(f"train/torch-headcache/t{t}", {}).get("examples_per_s")
                r1.append(ratio(s.get("examples_per_s"), base))
                r2.append(ratio(s.get("examples_per_s"), tc))
            L.append(f"| {label} | " + " | ".join(cells + r1 + r2) + " |")
    if "eval" in a.sections:
        L.append("")
        L.append(f"## Label scoring, `lw eval` (bridge), examples/s (SST-2 dev first {a.eval_sst2}, Banking77 dev "
                 f"first {a.eval_banking77}; the scoring loop, models loaded)")
        L.append("")
        L.append("| task | --score-batch | dtype | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in T) +
                 " | " + " | ".join(f"vs batch 1 fp32 ({t}t)" for t in T) + " |")
        L.append("|---" * (3 + 2 * len(T)) + "|")
        for task in ("sst2", "banking77"):
            for sb in (1, 8):
                for d in a.eval_dtypes:
                    cells, rs = [], []
                    for t in T:
                        s = by.get(f"eval/lw/{task}/sb{sb}/{d}/t{t}")
                        if not s:
                            cells.append("-"), rs.append("-")
                            continue
                        cells.append(cell(s, "examples_per_s") if "examples_per_s" in s else short(s))
                        base = by.get(f"eval/lw/{task}/sb1/fp32/t{t}", {}).get("examples_per_s")
                        rs.append(ratio(s.get("examples_per_s"), base))
                    L.append(f"| {task} | {sb} | {d} | " + " | ".join(cells + rs) + " |")
    if "forward" in a.sections:
        for k, title in (("prefill_tok_s", f"Prefill {a.prompt} tokens, tok/s"),
                         ("decode_tok_s", f"Decode {a.decode} greedy steps, tok/s")):
            L.append("")
            L.append(f"## {title} (same GGUF files; bench_forward medians of {a.forward_runs} in each process)")
            L.append("")
            cols = [f"lw {d}" for d in a.dtypes] + ["PyTorch fp32", "llama.cpp", "best lw / PyTorch",
                                                     "best lw / llama.cpp"]
            L.append("| model | threads | " + " | ".join(cols) + " |")
            L.append("|---" * (2 + len(cols)) + "|")
            for mk in a.models:
                for t in T:
                    cells, best = [], None
                    for d in a.dtypes:
                        s = by.get(f"forward/lw/{mk}/{d}/t{t}", {})
                        cells.append(cell(s, k, 1) if k in s else short(s))
                        if s.get(k) and (best is None or s[k] > best[0]):
                            best = (s[k], d)
                    ts = by.get(f"forward/torch/{mk}/t{t}", {})
                    ls = by.get(f"forward/llama.cpp/{mk}/t{t}", {})
                    cells.append(cell(ts, k, 1) if k in ts else short(ts))
                    cells.append(cell(ls, k, 1) if k in ls else short(ls))
                    b = best[0] if best else None
                    bd = f" ({best[1]})" if best else ""
                    cells.append(ratio(b, ts.get(k)) + (bd if ts.get(k) else ""))
                    cells.append(ratio(b, ls.get(k)) + (bd if ls.get(k) else ""))
                    L.append(f"| {MODEL_NAMES[mk]} | {t} | " + " | ".join(cells) + " |")
    bad = [s for s in summ if s["status"] != "ok" and not short(s) == "skipped"]
    if bad:
        L.append("")
        L.append("Rows without a figure:")
        L.append("")
        for s in bad:
            L.append(f"- `{s['id']}`: {s['status']}")
    L.append("")
    L.append("Rows: `results.csv` (each round: wall and CPU seconds, load average before and after, others' "
             "cores); commands: `results.json`.")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: one round, tiny sizes, SmolLM2 only, fp32+bf16")
    p.add_argument("--budget", type=float, default=600, help="seconds: start another round only if it fits (600)")
    p.add_argument("--rounds", type=int, default=3, help="most rounds (3)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--dtypes", default="fp32,bf16,q8,native")
    p.add_argument("--eval-dtypes", default="fp32")
    p.add_argument("--sections", default="train,eval,forward")
    p.add_argument("--models", default="smollm2,gemma3")
    p.add_argument("--refs", default="torch,llama.cpp", help="references to run beside lw ('none': lw only)")
    p.add_argument("--allow-load", action="store_true", help="run even when the machine is busy (rows flagged)")
    p.add_argument("--max-load", type=float, default=1.5, help="1-minute load average above which it refuses (1.5)")
    p.add_argument("--wait-quiet", type=float, default=120, help="seconds to wait for the load to fall first (120)")
    p.add_argument("--max-others", type=float, default=0.3, help="others' cores above which a row is LOADED (0.3)")
    p.add_argument("--out", help="results folder (default out/bench-round/<UTC time>)")
    p.add_argument("--lw", default=os.path.join(SRC, "build", PAIR, "lw"))
    p.add_argument("--bench-forward", default=os.path.join(SRC, "out", "bench", "bench_forward"))
    p.add_argument("--shared", default=os.environ.get("LWC_SHARED", os.path.join(SRC, "..", "shared")))
    p.add_argument("--models-dir", default=os.environ.get("LWC_MODELS", os.path.join(SRC, "models")))
    p.add_argument("--checkpoint", default=os.path.join(SRC, "runs", f"demo-{PAIR}-sst2", "final"),
                   help="bridge checkpoint for the eval rows (default: make demo's)")
    p.add_argument("--bridge-step", help="torch-bridge-step/bridge_step.py (default: under --shared/reference)")
    p.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "lwc-bench-round-cache"),
                   help="kept between runs: sender caches, the PyTorch reference's fp32 copies")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--soft-tokens", type=int, default=16)
    p.add_argument("--torch-attn", default="sdpa", help="bench_torch.py's ATTN (sdpa or eager)")
    p.add_argument("--row-timeout", type=float, default=300)
    p.add_argument("--eval-sst2", dest="eval_sst2_n", type=int, help="eval rows: SST-2 dev examples (32)")
    p.add_argument("--eval-banking77", dest="eval_banking77_n", type=int,
                   help="eval rows: Banking77 dev examples (8)")
    a = p.parse_args()

    a.threads = [int(x) for x in a.threads.split(",") if x]
    a.dtypes = [x for x in a.dtypes.split(",") if x]
    a.eval_dtypes = [x for x in a.eval_dtypes.split(",") if x]
    a.sections = [x for x in a.sections.split(",") if x]
    a.models = [x for x in a.models.split(",") if x]
    a.refs = [x for x in a.refs.split(",") if x]
    bad = [m for m in a.models if m not in MODELS] + [s for s in a.sections if s not in ("train", "eval", "forward")]
    if bad or not a.threads or min(a.threads) < 1:
        p.error(f"unknown model/section {bad} or bad --threads")
    a.train_examples, a.train_steps, a.torch_steps = 64, 8, 5
    a.eval_sst2, a.eval_banking77 = 32, 8
    a.prompt, a.decode, a.forward_runs = 64, 32, 3
    if a.quick:
        a.rounds, a.models = 1, ["smollm2"]
        a.dtypes = [d for d in a.dtypes if d in ("fp32", "bf16")] or a.dtypes[:1]
        a.train_examples, a.train_steps, a.torch_steps = 24, 3, 1
        a.eval_sst2, a.eval_banking77 = 4, 2
        a.prompt, a.decode, a.forward_runs = 16, 4, 1
    a.eval_sst2 = a.eval_sst2_n if a.eval_sst2_n else a.eval_sst2
    a.eval_banking77 = a.eval_banking77_n if a.eval_banking77_n else a.eval_banking77
    a.shared = os.path.abspath(a.shared)
    a.models_dir = os.path.abspath(a.models_dir)
    a.bridge_step = a.bridge_step or os.path.join(a.shared, "reference", "torch-bridge-step", "bridge_step.py")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    a.out = os.path.abspath(a.out or os.path.join(SRC, "out", "bench-round", stamp))
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.cache, exist_ok=True)
    logf = open(os.path.join(a.out, "log.txt"), "a")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')} load {load1():.2f}] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    for path, what in ((a.lw, "the pair's lw (lwc build pairs/%s.json, or --lw)" % PAIR),
                       (a.bench_forward, "out/bench/bench_forward (make bench, or --bench-forward)")):
        if not os.access(path, os.X_OK):
            log(f"cannot run {path}: build {what}")
            return 2
    for mk in a.models:
        if not os.path.isfile(os.path.join(a.models_dir, MODELS[mk])):
            log(f"no {MODELS[mk]} in {a.models_dir} (scripts/bootstrap.sh fetches it, or --models-dir)")
            return 2

    # the load gate
    waited = 0.0
    while load1() > a.max_load and waited < a.wait_quiet and not a.allow_load:
        if waited == 0:
            log(f"1-minute load average {load1():.2f} > {a.max_load}: waiting up to {a.wait_quiet:.0f} s for it to fall")
        time.sleep(5)
        waited += 5
    if load1() > a.max_load and not a.allow_load:
        log(f"REFUSED: 1-minute load average {load1():.2f} > {a.max_load} (the machine is busy; stop the other jobs, "
            f"or pass --allow-load and every row is recorded with the load it saw)")
        return 3

    env0 = dict(os.environ)
    versions = py_versions(a.python)
    meta = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "argv": sys.argv, "cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "nproc": os.cpu_count(),
            "openblas": openblas_of(a.lw), "git": git_state(), "lw": a.lw, "python_versions": versions,
            "load1_start": load1(), "allow_load": a.allow_load, "quick": a.quick,
            "settings": {k: getattr(a, k) for k in ("threads", "dtypes", "eval_dtypes", "sections", "models",
                                                     "train_examples", "train_steps", "torch_steps", "eval_sst2",
                                                     "eval_banking77", "prompt", "decode", "forward_runs",
                                                     "soft_tokens", "budget", "rounds", "checkpoint", "cache")}}
    if load1() > a.max_load:
        log(f"WARNING: load average {load1():.2f} > {a.max_load}: running anyway (--allow-load); NOT quotable")
    log(f"{meta['cpu_model']}; OpenBLAS core {meta['openblas'].get('corename')}; lwc {meta['git']}; out {a.out}")
    skips = find_skips(a, versions)
    meta["skipped"] = sorted(set(skips.values()))
    for line in meta["skipped"]:
        log("SKIP " + line)
    cases = build_cases(a, env0, skips)
    t_start = time.perf_counter()
    prepare(a, cases, env0, log)
    t_rounds = time.perf_counter()
    meta["prep_s"] = round(t_rounds - t_start, 1)

    csv_rows = []
    rounds_done, last_round = 0, 0.0

    def write_outputs(rounds_done):
        meta.update(rounds_done=rounds_done, wall_s=time.perf_counter() - t_start, load1_end=load1(),
                    round_s=round(last_round, 1))
        summ = summarize(cases, a.max_others)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "summary": summ,
                       "rows": [{"id": c.id, "section": c.section, "tool": c.tool, "params": c.params, "skip": c.skip,
                                 "refused": c.refused, "runs": c.runs} for c in cases]}, f, indent=1)
        fields = ["round", "id", "section", "tool", "task", "score_batch", "model", "dtype", "threads",
                  "examples_per_s", "prefill_tok_s", "decode_tok_s", "accuracy", "rc", "wall_s", "cpu_s",
                  "others_cores", "load1_before", "load1_after", "loaded", "error"]
        with open(os.path.join(a.out, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(csv_rows)
        sfields = ["id", "section", "tool", "task", "score_batch", "model", "dtype", "threads", "rounds", "status",
                   "examples_per_s", "prefill_tok_s", "decode_tok_s", "accuracy", "loaded_rounds", "load1_max",
                   "others_cores_max"]
        with open(os.path.join(a.out, "summary.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=sfields, extrasaction="ignore")
            w.writeheader()
            w.writerows(summ)
        md = markdown(meta, summ, a)
        with open(os.path.join(a.out, "results.md"), "w") as f:
            f.write(md)
        return md

    for r in range(a.rounds):
        spent = time.perf_counter() - t_start
        if r > 0 and spent + last_round > a.budget:
            log(f"stopping after {r} round(s): another (~{last_round:.0f} s) would pass the budget ({a.budget:.0f} s)")
            break
        t_r = time.perf_counter()
        rd = os.path.join(a.out, f"round{r + 1}")
        os.makedirs(rd, exist_ok=True)
        order = cases if r % 2 == 0 else list(reversed(cases))
        for c in order:
            if c.skip or c.refused:
                continue
            cmd, env, cwd = c.make(rd)
            rc, out, err, wall, cpu, others, l0, l1 = run_row(cmd, env, a.row_timeout, cwd)
            rec = {"round": r + 1, "rc": rc, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                   "others_cores": round(others, 2), "load1_before": l0, "load1_after": l1, "cmd": cmd}
            if rc == 0:
                try:
                    rec["metrics"] = c.parse(rc, out, err, rd)
                except (ValueError, KeyError, OSError, IndexError) as e:
                    rec["error"] = f"unreadable output: {e}"
            else:
                msg = last_line(err) or last_line(out)
                rec["error"] = f"rc {rc}: {msg}"
                if r == 0 and rc != 124:
                    c.refused = f"refused/failed: {msg}"[:200]
            with open(os.path.join(rd, c.id.replace("/", "_") + ".log"), "w") as f:
                f.write(" ".join(cmd) + "\n--- stdout\n" + out + "\n--- stderr\n" + err)
            c.runs.append(rec)
            m = rec.get("metrics", {})
            shown = ", ".join(f"{k} {v:.2f}" for k, v in m.items() if k.endswith(("_per_s", "_tok_s")))
            flag = " LOADED" if others > a.max_others else ""
            log(f"round {r + 1} {c.id}: {shown or rec.get('error')} ({wall:.1f} s, others {others:.2f} cores){flag}")
            csv_rows.append({"round": r + 1, "id": c.id, "section": c.section, "tool": c.tool, **c.params,
                             **{k: m.get(k) for k in ("examples_per_s", "prefill_tok_s", "decode_tok_s", "accuracy")},
                             "rc": rc, "wall_s": rec["wall_s"], "cpu_s": rec["cpu_s"], "others_cores": rec["others_cores"],
                             "load1_before": l0, "load1_after": l1, "loaded": others > a.max_others,
                             "error": rec.get("error", "")})
            write_outputs(rounds_done)   # a run cut short still leaves its tables
        last_round = max(last_round, time.perf_counter() - t_r)
        rounds_done += 1

    md = write_outputs(rounds_done)
    print()
    print(md)
    log(f"done: {rounds_done} round(s), {meta['wall_s']:.0f} s (prep {meta['prep_s']:.0f} s); {a.out}/results.md")
    shutil.rmtree(os.path.join(a.out, "prep"), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
