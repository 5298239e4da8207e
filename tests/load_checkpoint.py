#!/usr/bin/env python3
"""Shows that PyTorch loads an lwc checkpoint by name, as-is (not run by CI).

usage: python3 tests/load_checkpoint.py CHECKPOINT_DIR_OR_BRIDGE_FILE

Loads bridge.safetensors with safetensors.torch.load_file, rebuilds the
PyTorch bridge of tests/golden/make_bridge_goldens.py from the file's
__metadata__, load_state_dict(strict=True), runs it on random sender states,
and loads train_state.safetensors beside it if present. A deep prefix beside
it (deep_prefix.safetensors) goes the same way into DeepPrefix below (the
generator of runtime/model/deep_prefix.h), fed the bridge's soft tokens. (LoRA:
tests/load_lora_peft.py.) Names and shapes are checked strictly here; the
values of the C forward and backward are checked by tests/check_deep_prefix.c.
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
from make_bridge_goldens import Bridge  # noqa: E402


class DeepPrefix(torch.nn.Module):
    """s = mean of the soft tokens; z0_p = in_proj(LayerNorm(s)) + positions[p];
    z = z0 + fc2(gelu_tanh(fc1(z0))); K_l = z key_l^T, V_l = z value_l^T."""

    def __init__(self, length, hidden, layers, kv_dim, receiver_hidden):
        super().__init__()
        self.norm = torch.nn.LayerNorm(receiver_hidden, eps=1e-5)
        self.in_proj = torch.nn.Linear(receiver_hidden, hidden)
        self.positions = torch.nn.Parameter(torch.zeros(length, hidden))
        self.mlp = torch.nn.ModuleDict({"fc1": torch.nn.Linear(hidden, hidden), "fc2": torch.nn.Linear(hidden, hidden)})
        self.layers = torch.nn.ModuleList(torch.nn.ModuleDict({
            "key": torch.nn.Linear(hidden, kv_dim, bias=False), "value": torch.nn.Linear(hidden, kv_dim, bias=False)})
            for _ in range(layers))

    def forward(self, soft):
        z0 = self.in_proj(self.norm(soft.mean(0))) + self.positions
        z = z0 + self.mlp["fc2"](torch.nn.functional.gelu(self.mlp["fc1"](z0), approximate="tanh"))
        return [(l["key"](z), l["value"](z)) for l in self.layers]


def load_deep_prefix(path, soft):
    weights = load_file(path)
    with safe_open(path, "pt") as f:
        cfg = json.loads(f.metadata()["deep_prefix"])
    print("deep prefix:", json.dumps(cfg, sort_keys=True), len(weights), "tensors")
    model = DeepPrefix(cfg["length"], cfg["hidden"], cfg["layers"], cfg["kv_dim"], soft.shape[1])
    model.load_state_dict(weights, strict=True)
    kv = model(soft)
    print("deep prefix forward ok:", len(kv), "layers of keys", list(kv[0][0].shape), "and values",
          list(kv[0][1].shape))


def main(path):
    bridge_file = os.path.join(path, "bridge.safetensors") if os.path.isdir(path) else path
    weights = load_file(bridge_file)
    with safe_open(bridge_file, "pt") as f:
        meta = f.metadata()
    print("metadata:", json.dumps(meta, sort_keys=True))
    for name, t in weights.items():
        print(f"  {name:40s} {str(t.dtype):14s} {list(t.shape)}")
    ints = {k: int(meta[k]) for k in ["sender_hidden", "width", "heads", "soft_tokens", "depth",
                                       "receiver_hidden", "ffn_mult"]}
    model = Bridge(meta["kind"], ints["sender_hidden"], ints["width"], ints["heads"], ints["soft_tokens"],
                   ints["depth"], ints["receiver_hidden"], ints["ffn_mult"], meta["calibration"])
    model.load_state_dict(weights, strict=True)
    out = model(torch.randn(7, ints["sender_hidden"]))
    print("forward ok:", list(out.shape), "soft-token rms", out.pow(2).mean(-1).sqrt().tolist())
    state_file = os.path.join(os.path.dirname(bridge_file), "train_state.safetensors")
    if os.path.exists(state_file):
        state = load_file(state_file)
        with safe_open(state_file, "pt") as f:
            smeta = f.metadata()
        print(f"train state: {len(state)} tensors, step {smeta['step']}, rng {smeta['rng']}")
    prefix_file = os.path.join(os.path.dirname(bridge_file), "deep_prefix.safetensors")
    if os.path.exists(prefix_file):
        load_deep_prefix(prefix_file, out.detach())


if __name__ == "__main__":
    main(sys.argv[1])
