#!/usr/bin/env python3
"""PyTorch + transformers baseline for bench/bench_forward.c (docs/perf.md):
the same prompt length, the same decode steps, fp32, the same thread count.

  OPENBLAS_NUM_THREADS=2 python3 bench/bench_torch.py smollm2|gemma3|stories260k [prompt=64] [decode=32] [runs=5]

Prefill: one forward over the prompt keeping only the last row's logits
(logits_to_keep=1, as generate does). Decode: greedy steps over the KV cache.
stories260K has no transformers loader: a LlamaForCausalLM of its exact
shape (random weights; the timing does not depend on the values) stands in.
"""
import os
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTN = os.environ.get("ATTN", "sdpa")   # or eager: the faster of the two is reported
models = os.environ.get("LWC_MODELS", os.path.join(src, "models"))


def load(name):
    if name == "stories260k":
        cfg = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=5, num_attention_heads=8,
                          num_key_value_heads=4, vocab_size=512, max_position_embeddings=512,
                          tie_word_embeddings=True, rms_norm_eps=1e-5)
        cfg._attn_implementation = ATTN
        return LlamaForCausalLM(cfg).float().eval()
    gguf = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3": "gemma-3-270m-q4_k_m.gguf"}[name]
    copy = os.path.join(os.environ.get("LWC_TORCH_HF_DIR", ""), {"smollm2": "sender", "gemma3": "receiver"}[name])
    if os.environ.get("LWC_TORCH_HF_DIR") and os.path.exists(os.path.join(copy, "config.json")):
        return AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float32, attn_implementation=ATTN).eval()
    return AutoModelForCausalLM.from_pretrained(models, gguf_file=gguf, dtype=torch.float32,
                                                attn_implementation=ATTN).eval()


@torch.no_grad()
def main():
    name = sys.argv[1]
    n_prompt = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    n_decode = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    model = load(name)
    V = model.config.vocab_size
    ids = torch.tensor([[3 + (i * 7919) % (V - 3) for i in range(n_prompt)]])
    model(ids[:, :8], logits_to_keep=1)  # warm-up
    prefill, decode = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = model(ids, use_cache=True, logits_to_keep=1)
        prefill.append(n_prompt / (time.perf_counter() - t0))
        past = out.cache
        nxt = out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(n_decode):
            out = model(nxt, cache=past, use_cache=True)
            past = out.cache
            nxt = out.logits[:, -1:].argmax(-1)
        decode.append(n_decode / (time.perf_counter() - t0))
    print("%s (torch %s, %s attention, %d threads): prefill %d tokens: %.1f tok/s, decode %d tokens: %.1f tok/s (medians of %d)"
          % (name, torch.__version__, ATTN, torch.get_num_threads(), n_prompt, statistics.median(prefill), n_decode,
             statistics.median(decode), runs))


if __name__ == "__main__":
    main()
