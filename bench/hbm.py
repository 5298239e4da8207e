#!/usr/bin/env python3
"""Achieved HBM bandwidth of decode and prefill, as a fraction of the GPU's
peak: `python3 bench/torch_bench.py --device cuda --hbm [--dtype bf16] [--json F]`.

Per model of the pair (the GGUF files, loaded as torch_bench.py does):
  decode:  bytes read per token = every weight the step reads (all parameters
           but the embedding table, of which one row is read; a tied output
           head is read once, as the head) + the K and V cache up to the
           position (2 x layers x kv_heads x head_dim x position x bytes),
           divided by the median time of one greedy step at that position.
  prefill: the same weight bytes / time of a P-token forward (prefill is
           compute bound: the fraction is low by nature; TFLOP/s is given too,
           2 x parameters x P).
Peak: PEAK_BW below by device name (H100 SXM 3.35 TB/s, H200 4.8 TB/s,
...) and a measured device-to-device copy (2 x bytes / time) of 1 GiB; both
fractions are printed. Medians over --runs after --warmup.
"""
import json
import os
import statistics
import time

# Peak HBM bandwidth by device name (vendor data sheets), bytes/s.
PEAK_BW = {"H100 SXM": 3.35e12, "H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12, "H100 NVL": 3.9e12,
           "H200": 4.8e12, "A100-SXM4-80GB": 2.039e12, "A100-SXM4-40GB": 1.555e12, "A100 80GB PCIe": 1.935e12}


def peak_from_table(name, table):
    for key, bw in sorted(table.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return bw
    return None


def measured_copy_bw(torch, runs=20):
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return 2 * n / statistics.median(ts)   # read + write


def weight_bytes(model):
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if out.data_ptr() != emb.data_ptr():   # untied: the table is only indexed
        total -= emb.numel() * emb.element_size()
    return total


def kv_bytes(cfg, pos, elt):
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * pos * elt


def time_model(torch, side, prompt_len, decode_steps, runs, warmup):
    from transformers import DynamicCache
    m = side.model
    ids = torch.randint(100, 1000, (1, prompt_len), device="cuda")
    pre, dec = [], []
    for r in range(warmup + runs):
        cache = DynamicCache()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        nxt = out.logits[:, -1:].argmax(-1)
        steps = []
        for _ in range(decode_steps):
            s0 = time.perf_counter()
            out = m(input_ids=nxt, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
            torch.cuda.synchronize()
            steps.append(time.perf_counter() - s0)
        if r >= warmup:
            pre.append(t1 - t0)
            dec.append(statistics.median(steps))
    return statistics.median(pre), statistics.median(dec)


def main(args, torch, Side):
    """Side: torch_bench.Side (one model of the pair, loaded as the bench loads
    it), handed in by torch_bench.py so that this file does not import it."""
    if args.device != "cuda":
        raise SystemExit("hbm: needs --device cuda")
    pair = json.load(open(args.pair))
    task = json.load(open(os.path.join(os.path.dirname(args.pair), "..", "tasks", args.task + ".json")))
    name = torch.cuda.get_device_name(0)
    table, copy = peak_from_table(name, PEAK_BW), measured_copy_bw(torch)
    P, D = 128, 32
    rows = []
    with torch.inference_mode():
        for role in ("sender", "receiver"):
            side = Side(args, torch, pair[role], task)
            elt = next(side.model.parameters()).element_size()
            wb = weight_bytes(side.model)
            pre_s, dec_s = time_model(torch, side, P, D, args.runs, args.warmup)
            dec_bytes = wb + kv_bytes(side.model.config, P + D // 2, elt)
            n_params = sum(p.numel() for p in side.model.parameters())
            row = {"model": pair[role]["name"], "role": role, "dtype": args.dtype, "weight_bytes": wb,
                   "prompt_tokens": P, "decode_position": P + D // 2,
                   "decode_s_per_token": dec_s, "decode_bytes_per_token": dec_bytes,
                   "decode_bw": dec_bytes / dec_s, "prefill_s": pre_s, "prefill_bw": wb / pre_s,
                   "prefill_tflops": 2 * n_params * P / pre_s / 1e12}
            for k, peak in (("table", table), ("copy", copy)):
                if peak:
                    row[f"decode_fraction_of_{k}_peak"] = row["decode_bw"] / peak
                    row[f"prefill_fraction_of_{k}_peak"] = row["prefill_bw"] / peak
            rows.append(row)
            del side
            torch.cuda.empty_cache()
    rep = {"device": name, "peak_bw_table": table, "peak_bw_copy_measured": copy, "results": rows}
    print(f"hbm: {name}; peak {table / 1e12 if table else float('nan'):.2f} TB/s (table), "
          f"{copy / 1e12:.2f} TB/s (measured copy)")
    for r in rows:
        print(f"  {r['role']:8} {r['model']:24} decode {1e3 * r['decode_s_per_token']:.3f} ms/token, "
              f"{r['decode_bw'] / 1e9:.0f} GB/s ({100 * r.get('decode_fraction_of_table_peak', float('nan')):.1f}% "
              f"of table, {100 * r['decode_fraction_of_copy_peak']:.1f}% of copy); prefill {P} tokens "
              f"{1e3 * r['prefill_s']:.2f} ms, {r['prefill_tflops']:.1f} TFLOP/s")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(rep, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return 0
