#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_wire.c into tests/fuzz/seeds/wire/:
a small message of each dtype (3 soft tokens of width 4), two messages in a
row, and damaged copies (cut short, a payload bit flipped, another version).
usage: python3 tests/fuzz/make_wire_seeds.py   (from the source tree)"""
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
import lw_wire  # noqa: E402

out = os.path.join(here, "seeds", "wire")
os.makedirs(out, exist_ok=True)
x = (np.sin(np.arange(12, dtype=np.float32) * 1.7 + 0.3) * 0.4).astype(np.float32).reshape(3, 4)
hashes = {"bridge": 0x1234, "sender_weights": 5, "receiver_tokenizer": 7}
msgs = {}
for d in ("fp32", "bf16", "fp16", "int8"):
    msgs[d] = lw_wire.encode(x, d, seq=3, pair="a_to_b", task="sst2", sender_layer=2, hashes=hashes)
    open(os.path.join(out, d + ".msg"), "wb").write(msgs[d])
open(os.path.join(out, "two.msg"), "wb").write(msgs["fp32"] + msgs["int8"])
open(os.path.join(out, "cut.msg"), "wb").write(msgs["bf16"][:-5])
flipped = bytearray(msgs["fp16"])
flipped[lw_wire.HEADER_BYTES + 3] ^= 0x40
open(os.path.join(out, "flipped.msg"), "wb").write(bytes(flipped))
v2 = bytearray(msgs["fp32"])
v2[8] = 2
open(os.path.join(out, "version2.msg"), "wb").write(bytes(v2))
