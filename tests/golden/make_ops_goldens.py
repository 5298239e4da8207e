#!/usr/bin/env python3
"""Goldens for the CPU ops (tests/check_ops.c), from PyTorch and transformers.

Writes tests/golden/ops/<group>.txt, each a list of named arrays:
    <name> <count>
    <count floats, %.9g>
Inputs are float32 values; references are computed in float64 from them, so
the goldens hold the exact answer and the C test's tolerance is the float
error of the op alone. Gradients come from autograd on sum(out * dout).

Run from anywhere: python3 tests/golden/make_ops_goldens.py
"""
import math
import os

import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.masking_utils import (bidirectional_mask_function, causal_mask_function,
                                        sliding_window_causal_mask_function)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb, repeat_kv

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
gen = torch.Generator().manual_seed(1234)


def rand(*shape, scale=1.0):
    """float32 values, returned as float64 so the reference math is exact."""
    return ((torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1) * scale).double()


class Golden:
    def __init__(self, group):
        self.path = os.path.join(OUT, group + ".txt")
        self.lines = []

    def add(self, name, t):
        vals = torch.as_tensor(t).detach().double().flatten().tolist()
        self.lines.append(f"{name} {len(vals)}")
        for i in range(0, len(vals), 8):
            self.lines.append(" ".join(f"{float(v):.9g}" for v in vals[i:i + 8]))

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        os.replace(tmp, self.path)


def leaf(t):
    return t.clone().requires_grad_(True)


# ---- attention: GQA + causal + sliding window + q_offset, masks from transformers
def attention_case(g, name, Tq, Tk, Hq, Hkv, D, causal, q_offset, window, scale):
    q, k, v = leaf(rand(Tq, Hq, D, scale=1.5)), leaf(rand(Tk, Hkv, D, scale=1.5)), leaf(rand(Tk, Hkv, D))
    dout = rand(Tq, Hq, D)
    qi = (torch.arange(Tq) + q_offset)[:, None]  # HF masks take the absolute query position
    kj = torch.arange(Tk)[None, :]
    if not causal:
        mask = bidirectional_mask_function(0, 0, qi, kj).expand(Tq, Tk)
    elif window > 0:
        mask = sliding_window_causal_mask_function(window)(0, 0, qi, kj)
    else:
        mask = causal_mask_function(0, 0, qi, kj)
    qh = q.permute(1, 0, 2)[None]                              # [1, Hq, Tq, D]
    kh = repeat_kv(k.permute(1, 0, 2)[None], Hq // Hkv)         # [1, Hq, Tk, D]
    vh = repeat_kv(v.permute(1, 0, 2)[None], Hq // Hkv)
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    scores = (qh @ kh.transpose(-1, -2)) * scale
    att = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)[0]
    out = out[0].permute(1, 0, 2)                               # [Tq, Hq, D]
    (out * dout).sum().backward()
    g.add(name + ".params", [Tq, Tk, Hq, Hkv, D, int(causal), q_offset, window, scale])
    for n, t in [("q", q), ("k", k), ("v", v), ("dout", dout), ("out", out), ("att", att),
                 ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)]:
        g.add(f"{name}.{n}", t)


def attention():
    g = Golden("attention")
    attention_case(g, "window", Tq=5, Tk=9, Hq=4, Hkv=2, D=8, causal=True, q_offset=4, window=3, scale=0.3)
    attention_case(g, "causal", Tq=6, Tk=6, Hq=3, Hkv=1, D=4, causal=True, q_offset=0, window=0, scale=0.5)
    attention_case(g, "bidir", Tq=4, Tk=5, Hq=2, Hkv=2, D=8, causal=False, q_offset=0, window=0,
                   scale=1 / math.sqrt(8))
    g.write()


# ---- RoPE: inv_freq from transformers' init functions, both layouts
def rope_config(head_dim, theta, params):
    return LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, head_dim=head_dim,
                       max_position_embeddings=131072, rope_parameters=dict(rope_theta=theta, **params))


def rope_rotate_half(x, pos, inv):
    """HF layout via transformers' apply_rotary_pos_emb; x [T, H, D]."""
    freqs = pos[:, None].double() * inv[None, :].double()
    emb = torch.cat([freqs, freqs], dim=-1)[None]              # [1, T, D]
    xh = x.permute(1, 0, 2)[None]                             # [1, H, T, D]
    out, _ = apply_rotary_pos_emb(xh, xh, emb.cos(), emb.sin())
    return out[0].permute(1, 0, 2)


def rope_interleaved(x, pos, inv):
    """Meta's llama reference layout: consecutive pairs as complex numbers."""
    freqs = pos[:, None].double() * inv[None, :].double()
    cis = torch.polar(torch.ones_like(freqs), freqs)[:, None, :]  # [T, 1, D/2]
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(xc * cis).flatten(-2)


def rope():
    g = Golden("rope")
    llama3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=8192)
    inv_l3, _ = ROPE_INIT_FUNCTIONS["llama3"](rope_config(64, 500000.0, llama3), "cpu")
    g.add("llama3.params", [64, 500000.0, 8.0, 1.0, 4.0, 8192])
    g.add("llama3.inv_freq", inv_l3)
    inv_lin, _ = ROPE_INIT_FUNCTIONS["linear"](rope_config(32, 10000.0, dict(rope_type="linear", factor=4.0)),
                                               "cpu")
    g.add("linear.params", [32, 10000.0, 4.0])
    g.add("linear.inv_freq", inv_lin)
    inv_plain, _ = ROPE_INIT_FUNCTIONS["linear"](rope_config(16, 1000000.0, dict(rope_type="linear", factor=1.0)),
                                                 "cpu")
    g.add("plain.params", [16, 1000000.0])
    g.add("plain.inv_freq", inv_plain)

    T, H, D = 6, 2, 64
    pos = torch.tensor([0, 1, 7, 100, 2047, 9000])
    x = rand(T, H, D)
    dout = rand(T, H, D)
    g.add("x", x)
    g.add("pos", pos)
    g.add("dout", dout)
    for name, fn in [("half", rope_rotate_half), ("interleaved", rope_interleaved)]:
        xl = leaf(x)
        y = fn(xl, pos, inv_l3)
        (y * dout).sum().backward()
        g.add(name + ".y", y)
        g.add(name + ".dx", xl.grad)
    g.write()


# ---- RMSNorm, both kinds, with the transformers modules
def norms():
    g = Golden("norm")
    T, C, eps = 4, 16, 1e-6
    x, w, dout = rand(T, C, scale=3.0), rand(C), rand(T, C)
    g.add("x", x)
    g.add("w", w)
    g.add("dout", dout)
    g.add("eps", [eps])
    for name, mod in [("llama", LlamaRMSNorm(C, eps=eps)), ("gemma", Gemma3RMSNorm(C, eps=eps))]:
        mod = mod.double()
        with torch.no_grad():
            mod.weight.copy_(w)
        xl = leaf(x)
        y = mod(xl)
        (y * dout).sum().backward()
        g.add(name + ".y", y)
        g.add(name + ".dx", xl.grad)
        g.add(name + ".dw", mod.weight.grad)
    b = rand(C)
    xl, wl, bl = leaf(x), leaf(w), leaf(b)
    y = F.layer_norm(xl, (C,), wl, bl, eps=1e-5)
    (y * dout).sum().backward()
    g.add("layernorm.b", b)
    for n, t in [("y", y), ("dx", xl.grad), ("dw", wl.grad), ("db", bl.grad)]:
        g.add("layernorm." + n, t)
    g.write()


# ---- activations: gelu(approximate='tanh'), GeGLU, SwiGLU; cross-entropy
def activations():
    g = Golden("activation")
    n = 48
    gate, up, dout = rand(n, scale=5.0), rand(n, scale=2.0), rand(n)
    g.add("gate", gate)
    g.add("up", up)
    g.add("dout", dout)
    xl = leaf(gate)
    y = F.gelu(xl, approximate="tanh")
    (y * dout).sum().backward()
    g.add("gelu.y", y)
    g.add("gelu.dx", xl.grad)
    for name, act in [("geglu", lambda t: F.gelu(t, approximate="tanh")), ("swiglu", F.silu)]:
        gl, ul = leaf(gate), leaf(up)
        y = act(gl) * ul
        (y * dout).sum().backward()
        g.add(name + ".y", y)
        g.add(name + ".dgate", gl.grad)
        g.add(name + ".dup", ul.grad)

    T, V = 5, 11
    logits = rand(T, V, scale=4.0)
    targets = torch.tensor([3, -1, 0, 10, -1])
    ll = leaf(logits)
    loss = F.cross_entropy(ll, targets, ignore_index=-1)
    (loss * 1.5).backward()
    g.add("ce.logits", logits)
    g.add("ce.targets", targets)
    g.add("ce.loss", [loss.item()])
    g.add("ce.dlogits_x1.5", ll.grad)
    g.write()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    attention()
    rope()
    norms()
    activations()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
