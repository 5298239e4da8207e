#!/usr/bin/env python3
"""Projected latency of the flagship pair (Llama-3.1-8B -> Mistral-7B) from
random-weight torch layers of its exact shapes (pairs/llama31-8b_to_mistral-7b.json):
no weights are needed, and the time of these shapes does not depend on the values.

  python3 bench/project_flagship.py [--dtype bf16] [--layers 4] [--prompt 96] [--relay-tokens 32] [--json F]

Each model is built as a LlamaForCausalLM of the manifest's dimensions with
--layers decoder layers (all layers are the same shape), on the GPU in the
chosen dtype. Timed (median over --runs after --warmup, synchronised):
  per layer:  prefill of P rows, and one decode step at position P;
  the head:   final norm + output product for one row;
then projected to the full depth:
  prefill(L layers)   = L x per-layer prefill + embedding + head
  bridge method       = sender prefill through source_layer layers (no head)
                        + receiver prefill of its prompt (M soft tokens + template)
                        + each label's continuation (verbalizer tokens - 1 decode steps)
  text-relay          = sender prefill + relay_tokens decode steps (with head)
                        + receiver prefill of the relayed text's prompt + labels
  receiver-zeroshot   = receiver prefill of the text's prompt + labels
The bridge itself (a few small products) and tokenization are left out; say
so wherever the numbers are quoted. This is a projection, not a measurement
of lw: label it as such.
"""
import argparse
import json
import os
import statistics
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pair", default=os.path.join(SRC, "pairs/llama31-8b_to_mistral-7b.json"))
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--layers", type=int, default=4, help="layers actually built per model (default 4)")
    p.add_argument("--prompt", type=int, default=96, help="rows of a text's prompt (default 96)")
    p.add_argument("--relay-tokens", type=int, default=32)
    p.add_argument("--label-tokens", type=int, default=2, help="tokens of the longest verbalizer (default 2)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def build(torch, spec, layers, dtype, device):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=spec["hidden"], intermediate_size=spec["ffn"], num_hidden_layers=layers,
                      num_attention_heads=spec["n_heads"], num_key_value_heads=spec["n_kv_heads"],
                      head_dim=spec["head_dim"], vocab_size=spec["vocab"], rms_norm_eps=spec["norm_eps"],
                      rope_theta=spec.get("rope_theta", 10000.0), max_position_embeddings=4096,
                      tie_word_embeddings=spec.get("tied_embeddings", False))
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(dtype)
    with torch.device(device):
        m = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    return m


def timed(torch, fn, runs, warmup, device):
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()
    ts = []
    for r in range(warmup + runs):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        if r >= warmup:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def per_layer(torch, m, P, a):
    """(prefill s per layer, decode s per layer at position P, head s for one row)."""
    from transformers import DynamicCache
    ids = torch.randint(0, m.config.vocab_size, (1, P), device=a.device)
    L = m.config.num_hidden_layers

    def prefill():
        m.model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True)
    pre = timed(torch, prefill, a.runs, a.warmup, a.device)
    cache = DynamicCache()
    m.model(input_ids=ids, past_key_values=cache, use_cache=True)
    one = ids[:, :1]

    def decode():
        m.model(input_ids=one, past_key_values=cache, use_cache=True)
        cache.crop(-1)   # back to P rows (negative: tokens to drop)
    dec = timed(torch, decode, a.runs, a.warmup, a.device)
    h = torch.randn(1, 1, m.config.hidden_size, device=a.device, dtype=next(m.parameters()).dtype)
    head = timed(torch, lambda: m.lm_head(m.model.norm(h)), a.runs, a.warmup, a.device)
    return pre / L, dec / L, head


def main(argv=None):
    a = parse_args(argv)
    import torch
    pair = json.load(open(a.pair))
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    M, src = pair["bridge"]["soft_tokens"], pair["bridge"]["source_layer"]
    T = 24   # template and primer rows around the content (an estimate; lw bench reports the real count)
    out = {"pair": pair["name"], "dtype": a.dtype, "layers_built": a.layers, "prompt_rows": a.prompt,
           "projection": True, "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu"}
    with torch.inference_mode():
        t = {}
        for role in ("sender", "receiver"):
            m = build(torch, pair[role], a.layers, dtype, a.device)
            t[role] = {"n_layers": pair[role]["n_layers"]}
            for rows in sorted({a.prompt, M + T, a.relay_tokens + T}):
                pre, dec, head = per_layer(torch, m, rows, a)
                t[role][rows] = {"prefill_s_per_layer": pre, "decode_s_per_layer": dec, "head_s": head}
            del m
            if a.device == "cuda":
                torch.cuda.empty_cache()
    s, r = t["sender"], t["receiver"]
    Ls, Lr, P = s["n_layers"], r["n_layers"], a.prompt

    def prefill(side, rows, layers, head=True):
        x = side[rows]
        return layers * x["prefill_s_per_layer"] + (x["head_s"] if head else 0.0)

    def decode(side, rows, steps):
        x = side[rows]
        return steps * (side["n_layers"] * x["decode_s_per_layer"] + x["head_s"])

    labels = decode(r, P, a.label_tokens - 1)
    proj = {
        "bridge": prefill(s, P, src, head=False) + prefill(r, M + T, Lr) + labels,
        "text-relay": prefill(s, P, Ls) + decode(s, P, a.relay_tokens) + prefill(r, a.relay_tokens + T, Lr) + labels,
        "receiver-zeroshot": prefill(r, P, Lr) + labels,
        "sender-zeroshot": prefill(s, P, Ls) + decode(s, P, a.label_tokens - 1),
    }
    out["per_layer"] = {k: {str(rows): v for rows, v in d.items()} for k, d in t.items()}
    out["projected_latency_s"] = proj
    print(f"project_flagship: {pair['name']}, {a.dtype}, {out['device']}; PROJECTED from {a.layers} built layers "
          f"per model, prompt {P} rows (tokenization and the bridge left out)")
    for k, v in proj.items():
        print(f"  {k:18} {1e3 * v:9.2f} ms")
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(out, f, indent=2)
        os.replace(a.json + ".tmp", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
