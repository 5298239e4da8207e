#!/usr/bin/env python3
"""Shows that PyTorch loads an lwc checkpoint by name, as-is (not run by CI).

usage: python3 tests/load_checkpoint.py CHECKPOINT_DIR_OR_BRIDGE_FILE

Loads bridge.safetensors with safetensors.torch.load_file, rebuilds the
PyTorch bridge of tests/golden/make_bridge_goldens.py from the file's
__metadata__, load_state_dict(strict=True), runs it on random sender states,
and loads train_state.safetensors beside it if present.
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
from make_bridge_goldens import Bridge  # noqa: E402


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


if __name__ == "__main__":
    main(sys.argv[1])
