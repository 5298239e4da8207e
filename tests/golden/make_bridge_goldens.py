#!/usr/bin/env python3
"""Goldens for tests/check_bridge.c and tests/check_adamw.c.

A PyTorch re-implementation of the bridge (runtime/bridge/bridge.h), written from
the description rather than from the C, with parameter names equal to the
checkpoint's, so that `safetensors.torch.load_file` + `load_state_dict`
moves weights between the two. Writes into tests/golden/bridge/:
  <kind>.safetensors     bridge weights and input_norm buffers (tiny config, random, seeded)
  <kind>_io.safetensors  x, probe, out, dx and grad.<name> for loss = sum(out * probe)
  adamw.safetensors      torch.optim.AdamW trajectory on a few steps
Run from anywhere: python3 tests/golden/make_bridge_goldens.py
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bridge")
TINY = dict(sender=12, width=8, heads=2, soft_tokens=3, depth=2, receiver=10, ffn_mult=2)
T = 5


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, xq, xkv):
        H, D = self.heads, xq.shape[-1] // self.heads
        q = self.q(xq).view(-1, H, D).transpose(0, 1)
        k = self.k(xkv).view(-1, H, D).transpose(0, 1)
        v = self.v(xkv).view(-1, H, D).transpose(0, 1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1)
        return self.o((att @ v).transpose(0, 1).reshape(xq.shape[0], -1))


class CrossAttention(Attention):
    def __init__(self, d, heads):
        super().__init__(d, heads)
        self.norm_q = nn.LayerNorm(d, eps=1e-5)
        self.norm_kv = nn.LayerNorm(d, eps=1e-5)


class SelfAttention(Attention):
    def __init__(self, d, heads):
        super().__init__(d, heads)
        self.norm = nn.LayerNorm(d, eps=1e-5)


class FFN(nn.Module):
    def __init__(self, d, mult):
        super().__init__()
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.fc1 = nn.Linear(d, mult * d)
        self.fc2 = nn.Linear(mult * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x)), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, d, heads, mult):
        super().__init__()
        self.cross_attn = CrossAttention(d, heads)
        self.self_attn = SelfAttention(d, heads)
        self.ffn = FFN(d, mult)

    def forward(self, lat, ctx):
        c = self.cross_attn
        lat = lat + c(c.norm_q(lat), c.norm_kv(ctx))
        s = self.self_attn
        n = s.norm(lat)
        lat = lat + s(n, n)
        return lat + self.ffn(lat)


class InputNorm(nn.Module):
    """Per-dimension standardisation with fixed buffers (set from data)."""
    def __init__(self, sender):
        super().__init__()
        self.register_buffer("mean", torch.zeros(sender))
        self.register_buffer("std", torch.ones(sender))

    def forward(self, x):
        return (x - self.mean) / self.std


class Bridge(nn.Module):
    def __init__(self, kind, sender, width, heads, soft_tokens, depth, receiver, ffn_mult, calibration="rms",
                 embed_rms=1.0):
        super().__init__()
        self.kind, self.M, self.R, self.calibration = kind, soft_tokens, receiver, calibration
        self.input_norm = InputNorm(sender)
        if kind == "perceiver":
            self.in_proj = nn.Linear(sender, width)
            self.queries = nn.Parameter(torch.zeros(soft_tokens, width))
            self.blocks = nn.ModuleList(Block(width, heads, ffn_mult) for _ in range(depth))
            self.final_norm = nn.LayerNorm(width, eps=1e-5)
            self.out_proj = nn.Linear(width, receiver)
        elif kind == "mlp":
            self.in_proj = nn.Linear(sender, width)
            self.out_proj = nn.Linear(width, soft_tokens * receiver)
        else:
            self.out_proj = nn.Linear(sender, soft_tokens * receiver)
        if calibration == "rms":
            self.out_scale = nn.Parameter(torch.tensor([float(embed_rms)]))

    def forward(self, x):
        x = self.input_norm(x)
        if self.kind == "perceiver":
            ctx = self.in_proj(x)
            lat = self.queries
            for b in self.blocks:
                lat = b(lat, ctx)
            z = self.out_proj(self.final_norm(lat))
        else:
            pooled = x.mean(0)
            h = F.gelu(self.in_proj(pooled), approximate="tanh") if self.kind == "mlp" else pooled
            z = self.out_proj(h).view(self.M, self.R)
        if self.calibration == "rms":
            z = z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * self.out_scale
        return z


def randomise(model, gen):
    """Every parameter random (norm weights too) so every path is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
            if name == "out_scale":
                p.fill_(1.5)
        # the buffers from their own stream, so the parameters' draws stay put
        bgen = torch.Generator().manual_seed(gen.initial_seed() + 1000)
        model.input_norm.mean.copy_(torch.randn(model.input_norm.mean.shape, generator=bgen) * 0.5)
        model.input_norm.std.copy_(0.5 + torch.rand(model.input_norm.std.shape, generator=bgen) * 1.5)


def make_bridge(kind, seed):
    gen = torch.Generator().manual_seed(seed)
    model = Bridge(kind, **TINY, embed_rms=1.5)
    randomise(model, gen)
    x = torch.randn(T, TINY["sender"], generator=gen).requires_grad_(True)
    probe = torch.randn(TINY["soft_tokens"], TINY["receiver"], generator=gen)
    out = model(x)
    (out * probe).sum().backward()
    weights = {n: p.detach().contiguous() for n, p in model.named_parameters()}
    weights.update({n: t.contiguous() for n, t in model.named_buffers()})
    save_file(weights, os.path.join(HERE, f"{kind}.safetensors"))
    io = {"x": x.detach(), "probe": probe, "out": out.detach(), "dx": x.grad}
    io.update({f"grad.{n}": p.grad.contiguous() for n, p in model.named_parameters()})
    save_file(io, os.path.join(HERE, f"{kind}_io.safetensors"))


def make_adamw():
    gen = torch.Generator().manual_seed(3)
    n, steps = 16, 5
    p = torch.nn.Parameter(torch.randn(n, generator=gen))
    init = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, foreach=False)
    grads, after = [], []
    for _ in range(steps):
        g = torch.randn(n, generator=gen) * 0.5
        p.grad = g.clone()
        opt.step()
        grads.append(g)
        after.append(p.detach().clone())
    save_file({"init": init, "grads": torch.stack(grads), "after": torch.stack(after)},
              os.path.join(HERE, "adamw.safetensors"))


if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    for i, kind in enumerate(["perceiver", "mlp", "linear"]):
        make_bridge(kind, 100 + i)
    make_adamw()
    print("wrote", sorted(os.listdir(HERE)))
