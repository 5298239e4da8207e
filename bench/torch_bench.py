#!/usr/bin/env python3
"""PyTorch + transformers reference for `lw bench` (docs/gpu.md, "Benchmarks on
the GPU"): the same four methods on the same GGUF model files, from the raw
text to the labels' scores, timed the same way, written as JSON with the
field names of `lw bench --json` so bench/compare.py can put both side by side.

  python3 bench/torch_bench.py --device cuda --json torch.json            # the default pair
  python3 bench/torch_bench.py --device cpu --runs 1 --warmup 0 --batch 1 --limit 2 --methods receiver-zeroshot
  python3 bench/torch_bench.py --device cuda --hbm --json hbm.json        # decode/prefill bandwidth

The work of each method (as lw/bench.h):
  bridge             sender reads the text in its chat template, forward through
                     the first source_layer blocks only (a truncated copy of its
                     layer list); a Perceiver-shaped bridge (random weights, the
                     pair's width/depth/heads) maps the rows after the template
                     head to M soft tokens; the receiver reads its prompt with
                     them (inputs_embeds) and scores the labels.
  text-relay         sender generates up to --relay-tokens tokens (greedy, stops
                     at its end of turn), the receiver reads that text and scores.
  receiver-zeroshot  the receiver reads the text and scores.
  sender-zeroshot    the sender reads the text and scores.
Scoring: one forward over the prompt (logits of the last row), then each label's
tokens but the last continue from the KV cache, which is cropped back to the
prompt before the next label. A batch of B is B examples back to back, as lw does.

Prompts are rendered by the same rules as runtime/tokenizer/chat_template.c (chatml,
gemma) and runtime/model/receiver_input.c (primer + "\\n" + content + tail + answer
prompt), tokenized by the GGUF's own tokenizer through transformers, so the
token counts match lw's up to tokenizer differences; both JSONs record them
("traffic") so compare.py shows any gap.

--random-weights SEED: no model files needed (a device machine gets the working
tree, not models/). Each model is built from the manifest's dims (LlamaConfig,
Gemma3TextConfig) with random init, and a byte tokenizer stands in (id = byte
+ 3, decode one character per id), as lw does under LWC_RANDOM_WEIGHTS=SEED
(runtime/model/random_weights.h): the same prompts give the same token counts on
both sides, the relay writes its full --relay-tokens (no stop tokens), so the
two time equal work. The scores are meaningless: for timing only.

Timing: time.perf_counter around each stage, torch.cuda.synchronize() before
every clock read on the GPU; medians [min, max] over --runs timed runs after
--warmup runs. Weights: --dtype fp32 (lw's GPU path today) or bf16.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["bridge", "text-relay", "receiver-zeroshot", "sender-zeroshot"]
STAGES = ["tokenize", "sender_forward", "bridge", "generate", "receiver_score"]
USES = {"bridge": ["tokenize", "sender_forward", "bridge", "receiver_score"],
        "text-relay": ["tokenize", "generate", "receiver_score"],
        "receiver-zeroshot": ["tokenize", "receiver_score"],
        "sender-zeroshot": ["tokenize", "sender_forward"]}
RELAY_INSTRUCTION = "Summarize the following text in one sentence:\n"
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
MAX_TEXT_TOKENS = 512   # LW_SENDER_MAX_TOKENS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", default=os.path.join(SRC, "pairs/smollm2-135m_to_gemma3-270m.json"))
    p.add_argument("--task", default="sst2", help="tasks/NAME.json (default sst2)")
    p.add_argument("--split", default=None, help="JSONL of {text,label} (default <shared>/data/TASK/dev.jsonl)")
    p.add_argument("--limit", type=int, default=64, help="first N texts of the split (default 64)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--batch", default="1,4,16", help="batch sizes: B examples back to back")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--relay-tokens", type=int, default=32)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--models", default=os.environ.get("LWC_MODELS", os.path.join(SRC, "models")))
    p.add_argument("--random-weights", type=int, default=None, metavar="SEED",
                   help="random weights of the manifest's shapes and a byte tokenizer (timing only)")
    p.add_argument("--hbm", action="store_true", help="measure decode/prefill bandwidth instead (bench/hbm.py)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


class Clock:
    """perf_counter after the device has finished what was issued."""

    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device == "cuda"

    def __call__(self):
        if self.cuda:
            self.torch.cuda.synchronize()
        return time.perf_counter()


def render(kind, user):
    """(head, tail) of the chat prompt around user text, as runtime/tokenizer/chat_template.c."""
    if kind == "chatml":
        return (f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\n{user}",
                "<|im_end|>\n<|im_start|>assistant\n")
    if kind == "gemma":
        return f"<bos><start_of_turn>user\n{user}", "<end_of_turn>\n<start_of_turn>model\n"
    if kind == "none":
        return user, ""
    raise SystemExit(f"torch_bench: chat template {kind!r} not rendered here (chatml, gemma, none)")


def gguf_file(side):
    path = side["weights"]["path"]
    return os.path.basename(path.replace("${LWC_MODELS:-../models}", ""))


BYTE_OFFSET = 3   # LW_BYTE_TOKEN_OFFSET


class ByteTokenizer:
    """lw's byte tokenizer of LWC_RANDOM_WEIGHTS (runtime/tokenizer/tokenizer_bytes.c)."""

    def encode(self, text, add_special_tokens=False):
        return [b + BYTE_OFFSET for b in text.encode("utf-8")]

    def decode(self, ids):
        return "".join(chr(i - BYTE_OFFSET) if 32 <= i - BYTE_OFFSET < 127 or i - BYTE_OFFSET == 10 else "?"
                       for i in ids)


def random_model_config(spec):
    """A transformers config of the manifest's dims (lw_model_config)."""
    from transformers import Gemma3TextConfig, LlamaConfig
    common = dict(hidden_size=spec["hidden"], intermediate_size=spec["ffn"], num_hidden_layers=spec["n_layers"],
                  num_attention_heads=spec["n_heads"], num_key_value_heads=spec["n_kv_heads"],
                  head_dim=spec["head_dim"], vocab_size=spec["vocab"], rms_norm_eps=spec["norm_eps"],
                  max_position_embeddings=spec["context"], tie_word_embeddings=spec["tied_embeddings"])
    if spec["family"] == "llama":
        return LlamaConfig(hidden_act=spec["activation"], attention_bias=False, mlp_bias=False,
                           rope_parameters={"rope_type": "default", "rope_theta": float(spec["rope_theta"])},
                           **common)
    if spec["family"] == "gemma3":
        every, n = spec["global_every"], spec["n_layers"]
        types = ["full_attention" if (l + 1) % every == 0 else "sliding_attention" for l in range(n)]
        return Gemma3TextConfig(
            hidden_activation="gelu_pytorch_tanh", sliding_window=spec["sliding_window"], layer_types=types,
            query_pre_attn_scalar=spec["query_scale"] ** -2 if spec.get("query_scale") else spec["head_dim"],
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": float(spec["rope_theta"])},
                             "sliding_attention": {"rope_type": "default",
                                                   "rope_theta": float(spec["rope_theta_local"])}},
            **common)
    raise SystemExit(f"torch_bench: --random-weights builds llama and gemma3 families, not {spec['family']!r}")


class Side:
    """One model, its tokenizer and its prompt pieces."""

    def __init__(self, args, torch, spec, task):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
        self.spec, self.kind, self.torch = spec, spec["chat_template"], torch
        self.random = args.random_weights is not None
        if self.random:
            self.tok = ByteTokenizer()
            self.model = AutoModelForCausalLM.from_config(random_model_config(spec), dtype=dtype,
                                                          attn_implementation=args.attn).to(args.device).eval()
        else:
            if spec["weights"]["format"] != "gguf":
                raise SystemExit(f"torch_bench: {spec['name']} is {spec['weights']['format']}; this script loads "
                                 "GGUF (for the 8B/7B shapes use bench/project_flagship.py)")
            f = gguf_file(spec)
            self.tok = AutoTokenizer.from_pretrained(args.models, gguf_file=f)
            self.model = AutoModelForCausalLM.from_pretrained(args.models, gguf_file=f, dtype=dtype,
                                                              attn_implementation=args.attn).to(args.device).eval()
        self.device = args.device
        head, tail = render(self.kind, task["primer"] + "\n")
        self.before = self.encode(head)
        self.after = self.encode(tail + task["answer_prompt"])
        self.verbs = [self.encode(l["verbalizer"]) for l in task["labels"]]
        sp = spec.get("special_tokens", {})
        self.stop = [i for i in ([sp.get("eos")] + list(sp.get("stop", []))) if i is not None]
        if self.random:
            self.stop = []   # as lw: random weights would stop at a random step
        self.n_head = len(self.encode(render(self.kind, "")[0]))

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False)

    def ids(self, xs):
        return self.torch.tensor([xs], device=self.device)

    def text_ids(self, text):
        return self.encode(text.strip())[:MAX_TEXT_TOKENS]

    def score(self, prompt_ids=None, embeds=None):
        """Summed log-probs of each label's verbalizer after the prompt."""
        torch, m = self.torch, self.model
        from transformers import DynamicCache
        cache = DynamicCache()
        if embeds is not None:
            out = m(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
            P = embeds.shape[1]
        else:
            out = m(input_ids=self.ids(prompt_ids), past_key_values=cache, use_cache=True, logits_to_keep=1)
            P = len(prompt_ids)
        last = torch.log_softmax(out.logits[0, -1].float(), -1)
        scores = []
        for v in self.verbs:
            s = last[v[0]].item()
            if len(v) > 1:
                o = m(input_ids=self.ids(v[:-1]), past_key_values=cache, use_cache=True)
                lp = torch.log_softmax(o.logits[0].float(), -1)
                s += sum(lp[i - 1, v[i]].item() for i in range(1, len(v)))
                cache.crop(-(len(v) - 1))   # back to the prompt (negative: tokens to drop)
            scores.append(s)
        return scores


class Bridge:
    """Perceiver-shaped stand-in of the pair's bridge: M queries cross-attend
    to the projected sender rows, depth x (attention + FFN), then the map to
    the receiver's width. Random weights: lw times a fresh bridge too."""

    def __init__(self, torch, cfg, sender_h, receiver_h, device, dtype):
        nn = torch.nn
        w, M = cfg["width"], cfg["soft_tokens"]
        self.torch = torch
        self.inp = nn.Linear(sender_h, w).to(device, dtype)
        self.queries = torch.randn(1, M, w, device=device, dtype=dtype)
        self.blocks = [(nn.MultiheadAttention(w, cfg["heads"], batch_first=True).to(device, dtype),
                        nn.Sequential(nn.LayerNorm(w), nn.Linear(w, w * cfg["ffn_mult"]), nn.GELU(),
                                      nn.Linear(w * cfg["ffn_mult"], w)).to(device, dtype))
                       for _ in range(cfg["depth"])]
        self.out = nn.Linear(w, receiver_h).to(device, dtype)

    def __call__(self, rows):
        kv = self.inp(rows)
        q = self.queries
        for att, ffn in self.blocks:
            q = q + att(q, kv, kv, need_weights=False)[0]
            q = q + ffn(q)
        return self.out(q)


class Bench:
    def __init__(self, args, torch):
        pair = json.load(open(args.pair))
        self.pair, self.args, self.torch = pair, args, torch
        self.task = json.load(open(os.path.join(os.path.dirname(args.pair), "..", "tasks", args.task + ".json")))
        self.S = Side(args, torch, pair["sender"], self.task)
        self.R = Side(args, torch, pair["receiver"], self.task)
        self.clock = Clock(torch, args.device)
        b = pair["bridge"]
        self.M, self.layer = b["soft_tokens"], b["source_layer"]
        dtype = next(self.R.model.parameters()).dtype
        self.bridge = Bridge(torch, b, pair["sender"]["hidden"], pair["receiver"]["hidden"], args.device, dtype)
        # The sender's first source_layer blocks: the same modules, a shorter list.
        self.S_layers = self.S.model.model.layers

    def sender_prefix_rows(self, ids):
        """Hidden states after block source_layer - 1 (HF hidden_states[source_layer])."""
        torch, m = self.torch, self.S.model
        m.model.layers = self.S_layers[:self.layer]
        try:
            out = m.model(input_ids=self.S.ids(ids), output_hidden_states=True, use_cache=False)
        finally:
            m.model.layers = self.S_layers
        return out.hidden_states[self.layer]

    def example(self, method, text, t):
        S, R, c = self.S, self.R, self.clock
        tr = {"payload_bytes": 0.0, "content_tokens": 0.0, "prompt_tokens": 0.0, "sender_tokens": 0.0}
        t0 = c()
        if method == "bridge":
            head, tail = render(S.kind, text)
            ids = S.encode(head + tail)
            skip = S.n_head if 1 < S.n_head < len(ids) else 1
            ids = ids[:skip + MAX_TEXT_TOKENS]
            t1 = c()
            rows = self.sender_prefix_rows(ids)
            t2 = c()
            soft = self.bridge(rows[:, skip:])
            t3 = c()
            emb = R.model.get_input_embeddings()
            embeds = self.torch.cat([emb(R.ids(R.before)), soft.to(emb.weight.dtype), emb(R.ids(R.after))], 1)
            scores = R.score(embeds=embeds)
            t4 = c()
            t["tokenize"] += t1 - t0
            t["sender_forward"] += t2 - t1
            t["bridge"] += t3 - t2
            t["receiver_score"] += t4 - t3
            tr.update(payload_bytes=self.M * self.pair["receiver"]["hidden"] * 4.0, content_tokens=self.M,
                      prompt_tokens=embeds.shape[1], sender_tokens=len(ids))
        elif method == "text-relay":
            head, tail = render(S.kind, RELAY_INSTRUCTION + text)
            ids = S.encode(head + tail)
            t1 = c()
            n_min = self.args.relay_tokens if S.random else 0   # no stop tokens: the full count
            gen = S.model.generate(S.ids(ids), max_new_tokens=self.args.relay_tokens, min_new_tokens=n_min,
                                   do_sample=False, eos_token_id=S.stop or None,
                                   pad_token_id=S.stop[0] if S.stop else 0)
            new = gen[0, len(ids):].tolist()
            if new and new[-1] in S.stop:
                new = new[:-1]
            relay = S.tok.decode(new)
            t2 = c()
            P = R.before + R.text_ids(relay) + R.after
            t3 = c()
            scores = R.score(prompt_ids=P)
            t4 = c()
            t["tokenize"] += (t1 - t0) + (t3 - t2)
            t["generate"] += t2 - t1
            t["receiver_score"] += t4 - t3
            tr.update(payload_bytes=float(len(relay.encode())), content_tokens=len(new), prompt_tokens=len(P),
                      sender_tokens=len(ids) + len(new))
        else:
            on_sender = method == "sender-zeroshot"
            side = S if on_sender else R
            body = side.text_ids(text)
            P = side.before + body + side.after
            t1 = c()
            scores = side.score(prompt_ids=P)
            t2 = c()
            t["tokenize"] += t1 - t0
            t["sender_forward" if on_sender else "receiver_score"] += t2 - t1
            tr.update(content_tokens=len(body), prompt_tokens=len(P), sender_tokens=len(P) if on_sender else 0)
        assert all(math.isfinite(s) for s in scores), scores
        return scores, tr

    def measure(self, method, texts, batch):
        a, runs = self.args, self.args.runs
        run_s, eps, stage = [], [], {s: [] for s in STAGES}
        sums = {}
        for r in range(a.warmup + runs):
            t = {s: 0.0 for s in STAGES}
            t0 = self.clock()
            for j in range(batch):
                _, tr = self.example(method, texts[(r * batch + j) % len(texts)], t)
                if r >= a.warmup:
                    for k, v in tr.items():
                        sums[k] = sums.get(k, 0.0) + v
            el = self.clock() - t0
            if r < a.warmup:
                continue
            run_s.append(el)
            eps.append(batch / el)
            for s in STAGES:
                stage[s].append(1e3 * t[s] / batch)
        res = {"method": method, "batch": batch, "runs": runs, "warmup": a.warmup}
        if batch == 1:
            res["latency_s"] = stats(run_s)
        res["run_s"] = stats(run_s)
        res["examples_per_s"] = stats(eps)
        res["stages_ms_per_example"] = {s: stats(stage[s]) for s in USES[method]}
        res["traffic"] = {k: v / (runs * batch) for k, v in sums.items()}
        return res


def machine(torch, device):
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        return f"{p.name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, " \
           f"{torch.get_num_threads()} threads"


def read_texts(args):
    shared = os.environ.get("LWC_SHARED", os.path.join(SRC, "..", "shared"))
    path = args.split or os.path.join(shared, "data", args.task, "dev.jsonl")
    texts = []
    with open(path) as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"])
            if len(texts) >= args.limit:
                break
    if not texts:
        raise SystemExit(f"torch_bench: {path} has no texts")
    return texts


def print_table(rep):
    print(f"torch_bench: {rep['pair']}, task {rep['task']}, device {rep['device']} ({rep['machine']}), "
          f"weights {rep['dtype']}")
    print(f"{'method':18} {'batch':>5} {'runs':>4}  {'ms per run':26} {'examples/s':26}" +
          "".join(f" {s:>14}" for s in STAGES))
    for r in rep["results"]:
        rs, e = r["run_s"], r["examples_per_s"]
        line = f"{r['method']:18} {r['batch']:5d} {r['runs']:4d}  " \
               f"{'%.1f [%.1f, %.1f]' % (1e3 * rs['median'], 1e3 * rs['min'], 1e3 * rs['max']):26} " \
               f"{'%.2f [%.2f, %.2f]' % (e['median'], e['min'], e['max']):26}"
        for s in STAGES:
            st = r["stages_ms_per_example"].get(s)
            line += f" {st['median']:14.2f}" if st else f" {'-':>14}"
        print(line)


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch_bench: --device cuda but torch sees no CUDA device")
    torch.manual_seed(0 if args.random_weights is None else args.random_weights)
    if args.random_weights is not None:
        print("torch_bench: random weights and a byte tokenizer, no stop tokens: for timing only", file=sys.stderr)
    if args.hbm:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import hbm
        return hbm.main(args, torch, Side)   # hbm.py loads models as Side does, without importing this file
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"torch_bench: unknown method {m!r} ({', '.join(METHODS)})")
    batches = [int(b) for b in args.batch.split(",")]
    texts = read_texts(args)
    with torch.inference_mode():
        b = Bench(args, torch)
        results = []
        for m in methods:
            for B in batches:
                if not args.quiet:
                    print(f"torch_bench: {m}, batch {B}, {args.warmup} + {args.runs} runs ...", file=sys.stderr)
                results.append(b.measure(m, texts, B))
    rep = {"pair": b.pair["name"], "task": args.task, "split": args.split or f"{args.task}/dev.jsonl",
           "implementation": "torch+transformers", "device": args.device, "dtype": args.dtype,
           "attention": args.attn, "random_weights_seed": args.random_weights, "machine": machine(torch, args.device), "end_point": "label scores ready",
           "batching": "back to back: a batch of B is B examples one after another; examples_per_s = B / run seconds",
           "clock": "time.perf_counter after torch.cuda.synchronize()" if args.device == "cuda"
           else "time.perf_counter", "source_layer": b.layer, "relay_tokens_max": args.relay_tokens,
           "results": results}
    print_table(rep)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rep, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
