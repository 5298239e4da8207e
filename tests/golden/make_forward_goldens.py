#!/usr/bin/env python3
"""Reference outputs for tests/check_forward.c: logits, hidden states and
greedy continuations of three real models, computed in fp32 by PyTorch.

  SmolLM2-135M (llama) and Gemma-3-270M (gemma3): transformers loading the SAME
    GGUF files the C runtime reads (transformers dequantizes them to fp32),
    eager attention.
  stories260K (llama2c): a direct torch transcription of llama2.c's run.c on
    the checkpoint (transformers has no loader for it). Its greedy run from BOS
    is checked here against greedy_ref.txt before anything is written.

Usage: python3 tests/golden/make_forward_goldens.py [--models DIR] [--shared DIR]
Writes tests/golden/forward/<model>.txt, one record per prompt:

  prompt <name> window <w>        w = sliding window used (0 = model's own)
  ids <T> <id>...
  argmax <T> <id>...              argmax of the logits at every position
  maxabs <x>                      largest |logit| over all positions
  vocab <K> <id>...               the vocab entries whose logits are stored
  logits <T*K floats>             row-major [T, K]
  hidden <layer> <maxabs> <D> <dim>... then <T*D floats>
                                  HF hidden_states[layer] at the listed dims;
                                  maxabs over the full vector at all positions
  greedy <N> <id>...              greedy continuation (no stop tokens)
  end
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch

N_GREEDY = 64
N_VOCAB_SEL = 64
N_DIMS = 32

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "forward")


def fmt(xs):
    return " ".join("%.7g" % float(x) for x in xs)


def vocab_selection(logits, vocab):
    """Argmax ids first (the entries that decide), then evenly spaced ids."""
    sel = []
    for i in logits.argmax(-1).tolist():
        if i not in sel:
            sel.append(i)
    sel = sel[: N_VOCAB_SEL // 2]
    for i in np.linspace(0, vocab - 1, N_VOCAB_SEL).astype(int).tolist():
        if len(sel) == N_VOCAB_SEL:
            break
        if i not in sel:
            sel.append(i)
    return sel


def dim_selection(d):
    dims = list(range(N_DIMS // 2))
    for i in np.linspace(N_DIMS // 2, d - 1, N_DIMS // 2).astype(int).tolist():
        if i not in dims:
            dims.append(i)
    return dims


def write_record(f, name, window, ids, logits, hiddens, greedy):
    """logits [T, V] torch; hiddens: {layer: [T, D] torch}."""
    logits = logits.double().numpy()
    T, V = logits.shape
    sel = vocab_selection(logits, V)
    f.write("prompt %s window %d\n" % (name, window))
    f.write("ids %d %s\n" % (T, " ".join(map(str, ids))))
    f.write("argmax %d %s\n" % (T, " ".join(map(str, logits.argmax(-1).tolist()))))
    f.write("maxabs %.7g\n" % np.abs(logits).max())
    f.write("vocab %d %s\n" % (len(sel), " ".join(map(str, sel))))
    f.write("logits %s\n" % fmt(logits[:, sel].ravel()))
    for layer, h in hiddens.items():
        h = h.double().numpy()
        dims = dim_selection(h.shape[1])
        f.write("hidden %d %.7g %d %s\n" % (layer, np.abs(h).max(), len(dims), " ".join(map(str, dims))))
        f.write("%s\n" % fmt(h[:, dims].ravel()))
    f.write("greedy %d %s\n" % (len(greedy), " ".join(map(str, greedy))))
    f.write("end\n")


# ---------------------------------------------------------------- HF models

def hf_layers(n_layers):
    return [1, n_layers // 2, n_layers]   # n_layers = after the final norm, as HF reports it


@torch.no_grad()
def hf_greedy(model, ids, n):
    out = model(torch.tensor([ids]), use_cache=True)
    past = out.past_key_values
    toks = []
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(n):
        toks.append(nxt)
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
    return toks


@torch.no_grad()
def hf_record(f, model, name, ids, window):
    out = model(torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    n_layers = model.config.num_hidden_layers
    hiddens = {l: out.hidden_states[l][0] for l in hf_layers(n_layers)}
    write_record(f, name, window, ids, out.logits[0], hiddens, hf_greedy(model, ids, N_GREEDY))


def load_hf(models, gguf):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(models, gguf_file=gguf, dtype=torch.float32,
                                             attn_implementation="eager")
    return m.eval()


def smollm2(models, shared):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(shared, "models/smollm2-135m-instruct/tokenizer.json"))
    model = load_hf(models, "SmolLM2-135M-Instruct.Q4_1.gguf")
    prompts = {
        "story": "Once upon a time, in a small village by the sea, there lived",
        "chat": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        "code": "def fibonacci(n):\n    if n < 2:\n        return n\n",
    }
    with open(os.path.join(out_dir, "smollm2.txt.tmp"), "w") as f:
        for name, text in prompts.items():
            ids = tok.encode(text).ids[:32]
            hf_record(f, model, name, ids, 0)
    os.replace(os.path.join(out_dir, "smollm2.txt.tmp"), os.path.join(out_dir, "smollm2.txt"))


def gemma3(models, shared):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(models, gguf_file="gemma-3-270m-q4_k_m.gguf")
    model = load_hf(models, "gemma-3-270m-q4_k_m.gguf")
    prompts = {
        "story": "Once upon a time, in a small village by the sea, there lived",
        "chat": "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
        "facts": "The three primary colors are red, yellow and",
    }
    long_text = ("The quick brown fox jumps over the lazy dog. Then the dog wakes up and chases "
                 "the fox across the field, past the old barn and into the woods.")
    with open(os.path.join(out_dir, "gemma3.txt.tmp"), "w") as f:
        for name, text in prompts.items():
            ids = tok(text).input_ids[:32]
            hf_record(f, model, name, ids, 0)
        # The sliding-window logic on a short window: the same model with
        # sliding_window = 8, a prompt three windows long.
        ids = tok(long_text).input_ids[:28]
        full = model(torch.tensor([ids])).logits[0]
        model.config.sliding_window = 8
        for layer in model.model.layers:
            if hasattr(layer.self_attn, "sliding_window") and layer.self_attn.sliding_window:
                layer.self_attn.sliding_window = 8
        short = model(torch.tensor([ids])).logits[0]
        assert (full - short).abs().max() > 1e-2, "sliding_window=8 changed nothing"
        hf_record(f, model, "window8", ids, 8)
    os.replace(os.path.join(out_dir, "gemma3.txt.tmp"), os.path.join(out_dir, "gemma3.txt"))


# ---------------------------------------------------------------- llama2.c

class Llama2c:
    """run.c in torch: interleaved RoPE (base 10000), RMSNorm eps 1e-5, SwiGLU."""

    def __init__(self, path):
        raw = open(path, "rb").read()
        dim, hid, nl, nh, nkv, vocab, seq = struct.unpack("7i", raw[:28])
        shared = vocab > 0
        vocab = abs(vocab)
        self.dim, self.nl, self.nh, self.nkv, self.vocab = dim, nl, nh, nkv, vocab
        self.hd = dim // nh
        w = np.frombuffer(raw, dtype=np.float32, offset=28)
        off = 0

        def take(*shape):
            nonlocal off
            n = int(np.prod(shape))
            t = torch.from_numpy(w[off:off + n].copy()).reshape(shape)
            off += n
            return t
        kvd = nkv * self.hd
        self.emb = take(vocab, dim)
        self.rms_att = take(nl, dim)
        self.wq = take(nl, dim, dim)
        self.wk = take(nl, kvd, dim)
        self.wv = take(nl, kvd, dim)
        self.wo = take(nl, dim, dim)
        self.rms_ffn = take(nl, dim)
        self.w1 = take(nl, hid, dim)
        self.w2 = take(nl, dim, hid)
        self.w3 = take(nl, hid, dim)
        self.rms_final = take(dim)
        off += seq * self.hd  # freq_cis_real, freq_cis_imag (unused: run.c recomputes)
        self.wcls = self.emb if shared else take(vocab, dim)

    @staticmethod
    def rmsnorm(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x, T):
        # x [T, H, hd]; rotate pairs (2i, 2i+1) by pos * 10000^(-2i/hd)
        i = torch.arange(0, self.hd, 2, dtype=torch.float32)
        freq = 1.0 / (10000.0 ** (i / self.hd))
        ang = torch.arange(T, dtype=torch.float32)[:, None] * freq[None, :]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    @torch.no_grad()
    def forward(self, ids):
        T = len(ids)
        x = self.emb[torch.tensor(ids)]
        hs = [x]
        mask = torch.full((T, T), float("-inf")).triu(1)
        rep = self.nh // self.nkv
        for l in range(self.nl):
            h = self.rmsnorm(x, self.rms_att[l])
            q = (h @ self.wq[l].T).view(T, self.nh, self.hd)
            k = (h @ self.wk[l].T).view(T, self.nkv, self.hd)
            v = (h @ self.wv[l].T).view(T, self.nkv, self.hd)
            q, k = self.rope(q, T), self.rope(k, T)
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = torch.einsum("thd,shd->hts", q, k) / (self.hd ** 0.5) + mask
            att = att.softmax(-1)
            o = torch.einsum("hts,shd->thd", att, v).reshape(T, self.dim)
            x = x + o @ self.wo[l].T
            h = self.rmsnorm(x, self.rms_ffn[l])
            g = h @ self.w1[l].T
            x = x + (torch.nn.functional.silu(g) * (h @ self.w3[l].T)) @ self.w2[l].T
            hs.append(x)
        x = self.rmsnorm(x, self.rms_final)
        hs[-1] = x   # as HF: the last hidden state is after the final norm
        return x @ self.wcls.T, hs

    def greedy(self, ids, n):
        ids = list(ids)
        out = []
        for _ in range(n):
            logits, _ = self.forward(ids)
            nxt = int(logits[-1].argmax())
            out.append(nxt)
            ids.append(nxt)
        return out


def llama2c_decode(tok_path, ids):
    raw = open(tok_path, "rb").read()
    off = 4
    pieces = []
    while off < len(raw):
        _score, n = struct.unpack("fi", raw[off:off + 8])
        pieces.append(raw[off + 8:off + 8 + n])
        off += 8 + n
    text = b""
    prev = 1
    for t in ids:
        p = pieces[t]
        if prev == 1 and p.startswith(b" "):
            p = p[1:]
        if p.startswith(b"<0x") and p.endswith(b">") and len(p) == 6:
            p = bytes([int(p[3:5], 16)])
        text += p
        prev = t
    return text.decode("utf-8", "replace")


def stories260k(models, shared):
    d = os.path.join(shared, "models/stories260k")
    m = Llama2c(os.path.join(d, "stories260K.bin"))
    ref = open(os.path.join(d, "greedy_ref.txt")).read().split("\n", 1)[1]
    gen = m.greedy([1], 60)
    text = llama2c_decode(os.path.join(d, "tok512.bin"), gen)
    if text.strip() != ref.strip():
        sys.exit("stories260K reference does not reproduce greedy_ref.txt:\n%r\n%r" % (text, ref))
    rng = np.random.default_rng(7)
    prompts = {
        "bos": [1],
        "story": [1] + gen[:23],
        "random": [1] + rng.integers(3, m.vocab, 31).tolist(),
    }
    with open(os.path.join(out_dir, "stories260k.txt.tmp"), "w") as f:
        for name, ids in prompts.items():
            logits, hs = m.forward(ids)
            hiddens = {l: hs[l] for l in hf_layers(m.nl)}
            write_record(f, name, 0, ids, logits, hiddens, m.greedy(ids, N_GREEDY))
        # greedy_ref.txt: 60 steps from BOS, as run.c prints them
        f.write("greedy_ref 60 %s\n" % " ".join(map(str, gen)))
    os.replace(os.path.join(out_dir, "stories260k.txt.tmp"), os.path.join(out_dir, "stories260k.txt"))


def main():
    ap = argparse.ArgumentParser()
    src = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--models", default=os.environ.get("LWC_MODELS", os.path.join(src, "models")))
    ap.add_argument("--shared", default=os.environ.get("LWC_SHARED", os.path.join(src, "..", "shared")))
    ap.add_argument("only", nargs="*", help="stories260k smollm2 gemma3 (default: all)")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    os.makedirs(out_dir, exist_ok=True)
    todo = {"stories260k": stories260k, "smollm2": smollm2, "gemma3": gemma3}
    for name in a.only or todo:
        print("goldens:", name, flush=True)
        todo[name](a.models, a.shared)


if __name__ == "__main__":
    main()
