#!/usr/bin/env python3
"""llama.cpp reference for prefill and decode (issue 19's decode target): the same GGUF file, the same
prompt ids and the same thread count as bench/bench_forward.c and bench/bench_torch.py.

  python3 bench/bench_llama_cpp.py MODEL.gguf [--threads N] [--prompt 64] [--decode 32] [--runs 5]
                                    [--extra-bufts auto|on|off]

Prefill: one llama_decode of the whole prompt in one batch (logits of the last row only, as
generation needs); decode: greedy steps of one token over the KV cache, the argmax read from the
logits each step. Prompt ids 3 + (i * 7919) mod (V - 3), as the other two benchmarks. tokens/s by
the wall clock, medians over --runs (the KV cache cleared before each). Prints one JSON line.

llama.cpp is the llama-cpp-python package built from its PyPI source package on this machine, so
that ggml is compiled for this CPU (AVX-512, VNNI, BF16 where it has them; AMX too where the CPU
reports it, which crashes on a VM that does not give AMX state: --extra-bufts, "extra_bufts" in the
JSON line says which ran):

  CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --no-binary llama-cpp-python llama-cpp-python
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

try:
    import llama_cpp
except ImportError:   # the round script reads this line and skips the row
    print(json.dumps({"skipped": "llama-cpp-python is not installed (bench/README.md: how to build it)"}))
    sys.exit(0)


def no_extra_bufts():
    """Loads models without ggml's extra CPU buffer types (its AMX and REPACK weight layouts):
    llama-cpp-python's Llama() does not expose llama_model_params.use_extra_bufts, so its default
    params are patched."""
    default = llama_cpp.llama_model_default_params

    def params():
        mp = default()
        mp.use_extra_bufts = False
        return mp
    llama_cpp.llama_model_default_params = params
    import llama_cpp.llama as ll
    ll.llama_cpp.llama_model_default_params = params


def extra_bufts_run(gguf):
    """Whether one token evaluates with the extra buffer types, in a child process: a ggml built
    with -march=native on a CPU that reports AMX uses AMX tiles, and where the hypervisor does not
    really give AMX state (the 2-vCPU Xeon of stop 22: arch_prctl grants XTILEDATA, then ldtilecfg
    faults) the process dies with SIGSEGV in ggml_backend_amx_mul_mat."""
    import subprocess
    code = ("import llama_cpp; m = llama_cpp.Llama(model_path=%r, n_ctx=32, n_batch=8, n_threads=1, "
            "verbose=False); m.eval([5, 6, 7])" % gguf)
    r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gguf")
    p.add_argument("--extra-bufts", choices=("auto", "on", "off"), default="auto",
                   help="ggml's AMX/REPACK weight layouts: auto (the default) turns them off only where one "
                        "token crashes with them (extra_bufts_run)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    if a.prompt < 1 or a.decode < 0 or a.runs < 1 or a.threads < 1:
        p.error("--prompt and --runs and --threads must be >= 1, --decode >= 0")
    if not os.path.isfile(a.gguf):
        p.error(f"no such file: {a.gguf}")

    extra = a.extra_bufts == "on" or (a.extra_bufts == "auto" and extra_bufts_run(a.gguf))
    if not extra:
        no_extra_bufts()
    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=a.gguf, n_ctx=a.prompt + a.decode + 16, n_batch=max(a.prompt, 8),
                          n_threads=a.threads, n_threads_batch=a.threads, logits_all=False, verbose=False)
    load_s = time.perf_counter() - t0
    V = llm.n_vocab()
    ids = [3 + (i * 7919) % (V - 3) for i in range(a.prompt)]

    def last_logits():
        # the last evaluated row's logits (logits_all=False keeps one row in llama.cpp's buffer)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(V,))

    llm.reset()
    llm.eval(ids[:8])   # warm-up: first-call allocations, thread start
    prefill, decode, generated = [], [], []
    for _ in range(a.runs):
        llm.reset()
        w = time.perf_counter()
        llm.eval(ids)
        nxt = int(np.argmax(last_logits()))
        prefill.append(a.prompt / (time.perf_counter() - w))
        toks = []
        w = time.perf_counter()
        for _ in range(a.decode):
            toks.append(nxt)
            llm.eval([nxt])
            nxt = int(np.argmax(last_logits()))
        if a.decode:
            decode.append(a.decode / (time.perf_counter() - w))
        generated = toks
    med = lambda x: round(statistics.median(x), 2) if x else None
    print(json.dumps({
        "tool": "llama.cpp", "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
        "gguf": os.path.basename(a.gguf), "threads": a.threads, "prompt": a.prompt, "decode": a.decode,
        "runs": a.runs, "load_s": round(load_s, 2), "extra_bufts": extra,
        "prefill_tok_s": med(prefill), "decode_tok_s": med(decode),
        "first_tokens": generated[:8], "system_info": llama_cpp.llama_print_system_info().decode(errors="replace")
        if hasattr(llama_cpp, "llama_print_system_info") else ""}))


if __name__ == "__main__":
    main()
