#!/usr/bin/env python3
"""Goldens for runtime/io/dequant.c, made with gguf-py's numpy dequantizer.

Writes tests/golden/dequant/dequant_goldens.txt:
  tensor <file> <name> <type> <ndim> <d0> [d1] <n> <fnv1a64>   one real tensor per (file, type)
  first <64 float bits as hex>                                  its first 64 values
  synth <type> <nbytes> <block bytes as hex>                    a hand-built or quantized block
  values <n> <float bits as hex>                                 its dequantized values
  embed_rms <file> <rms>          RMS of token_embd as layer 0 sees it (x sqrt(hidden) for Gemma)
Shapes are in PyTorch order (slowest first). The hash is 64-bit FNV-1a over
the little-endian bytes of all dequantized float32 values of the tensor.

Usage: python3 tests/golden/make_dequant_goldens.py [models_dir [shared_dir]]   (run from the repo root)
"""
import os
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

MODELS = sys.argv[1] if len(sys.argv) > 1 else "models"
SHARED = sys.argv[2] if len(sys.argv) > 2 else "../shared"
FILES = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant", "dequant_goldens.txt")


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hexbits(a: np.ndarray) -> str:
    return " ".join("%08x" % v for v in np.ascontiguousarray(a, dtype="<f4").view("<u4"))


def real_tensors(out):
    for fname in FILES:
        reader = GGUFReader(os.path.join(MODELS, fname))
        by_type = {}
        for t in reader.tensors:
            by_type.setdefault(t.tensor_type, []).append(t)
        for qtype, ts in sorted(by_type.items()):
            # Prefer the smallest 2-D tensor (hashing in Python is slow).
            two_d = [t for t in ts if len(t.shape) == 2]
            pick = min(two_d or ts, key=lambda t: int(t.n_elements))
            values = dequantize(pick.data, qtype).astype("<f4").reshape(-1)
            shape = [int(d) for d in reversed(pick.shape)]
            h = fnv1a64(values.tobytes())
            out.append("tensor %s %s %s %d %s %d %016x" % (fname, pick.name, qtype.name, len(shape),
                                                          " ".join(map(str, shape)), values.size, h))
            out.append("first " + hexbits(values[:64]))
            print(fname, pick.name, qtype.name, shape, "%016x" % h, file=sys.stderr)


def synth_blocks(rng):
    """Raw bytes of two blocks of each type, as uint8 arrays."""
    blocks = {}
    x = (rng.standard_normal(64) * 0.7).astype(np.float32)
    x[3], x[40] = 0.0, -2.5
    for qt in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16):
        blocks[qt] = quantize(x.reshape(2, 32), qt).reshape(-1)
    blocks[T.F32] = x.view(np.uint8)
    # F16 with the awkward cases: subnormals, -0, the largest finite, inf.
    h = x.astype(np.float16)
    h[0:5] = np.array([6e-8, -3e-5, -0.0, 65504.0, np.inf], dtype=np.float16)
    blocks[T.F16] = h.view(np.uint8)
    # K-quants (numpy has no quantizer): random payload, sane fp16 scales.
    for qt, size, d_at in ((T.Q4_K, 144, (0, 2)), (T.Q5_K, 176, (0, 2)), (T.Q6_K, 210, (208,))):
        raw = rng.integers(0, 256, size=(2, size), dtype=np.uint8)
        for b in range(2):
            for i, off in enumerate(d_at):
                raw[b, off:off + 2] = np.array([0.0123 * (b + 1), -0.0041 * (i + 1)][i],
                                               dtype=np.float16).reshape(1).view(np.uint8)
        blocks[qt] = raw.reshape(-1)
    return blocks


def embed_rms(out):
    """RMS of token_embd as the first layer sees it (Gemma: times sqrt(hidden))."""
    for fname in FILES:
        reader = GGUFReader(os.path.join(MODELS, fname))
        t = next(t for t in reader.tensors if t.name == "token_embd.weight")
        total, n = 0.0, 0
        for r in range(0, t.data.shape[0], 4096):
            v = dequantize(t.data[r:r + 4096], t.tensor_type).astype(np.float64)
            total += float(np.sum(v * v))
            n += v.size
        rms = np.sqrt(total / n)
        if "gemma" in fname:
            rms *= np.sqrt(int(t.shape[0]))
        out.append("embed_rms %s %.9g" % (fname, rms))
        print(fname, "embed rms", rms, file=sys.stderr)
    # llama2.c: 7 int32 header (dim, ..., vocab_size), then the fp32 embedding table.
    path = os.path.join(SHARED, "models", "stories260k", "stories260K.bin")
    head = np.fromfile(path, dtype="<i4", count=7)
    emb = np.fromfile(path, dtype="<f4", count=int(head[0]) * abs(int(head[5])), offset=28).astype(np.float64)
    out.append("embed_rms stories260K.bin %.9g" % np.sqrt(np.mean(emb * emb)))


def fuzz_seeds(rng):
    """Small valid files for tests/fuzz/seeds/{gguf,safetensors}/ (libFuzzer starts from them)."""
    import json
    from gguf import GGUFWriter
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz", "seeds")
    os.makedirs(os.path.join(root, "gguf"), exist_ok=True)
    os.makedirs(os.path.join(root, "safetensors"), exist_ok=True)
    x = rng.standard_normal((2, 256)).astype(np.float32)
    for name, types in (("quants", (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16, T.F32)),
                        ("kquants", (T.Q4_K, T.Q5_K, T.Q6_K))):
        path = os.path.join(root, "gguf", name + ".gguf")
        w = GGUFWriter(path, "llama")
        w.add_block_count(1)
        w.add_embedding_length(256)
        w.add_float32("llama.rope.freq_base", 10000.0)
        w.add_bool("tokenizer.ggml.add_bos_token", True)
        w.add_token_list(["<s>", "</s>", "a", "b"])
        w.add_token_scores([0.0, -1.0, -2.5, -3.0])
        w.add_array("test.nested", [[1, 2], ["x", "y"]])
        w.add_uint64("test.u64", 1 << 40)
        w.add_int8("test.i8", -3)
        w.add_float64("test.f64", 0.25)
        for i, qt in enumerate(types):
            if qt in (T.F32,):
                w.add_tensor("t%d.weight" % i, x)
            elif qt == T.F16:
                w.add_tensor("t%d.weight" % i, x.astype(np.float16))
            elif qt in (T.Q4_K, T.Q5_K, T.Q6_K):
                size = {T.Q4_K: 144, T.Q5_K: 176, T.Q6_K: 210}[qt]
                raw = rng.integers(0, 256, size=(2, size), dtype=np.uint8)
                w.add_tensor("t%d.weight" % i, raw, raw_dtype=qt)
            else:
                w.add_tensor("t%d.weight" % i, quantize(x, qt), raw_dtype=qt)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    # safetensors: llama names (F32, BF16, F16) and a gemma file.
    for name, entries in (("llama", [("model.embed_tokens.weight", "F32", [4, 2]),
                                     ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 2]),
                                     ("model.norm.weight", "F16", [2]),
                                     ("lm_head.weight", "F32", [4, 2])]),
                          ("gemma", [("model.layers.0.pre_feedforward_layernorm.weight", "F32", [3]),
                                     ("model.layers.0.post_attention_layernorm.weight", "BF16", [3]),
                                     ("model.layers.0.mlp.down_proj.weight", "F16", [3, 1])])):
        header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
        for tname, dtype, shape in entries:
            n = int(np.prod(shape))
            v = rng.standard_normal(n).astype(np.float32)
            blob = {"F32": lambda a: a.tobytes(), "F16": lambda a: a.astype(np.float16).tobytes(),
                    "BF16": lambda a: (a.view(np.uint32) >> 16).astype(np.uint16).tobytes()}[dtype](v)
            header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
            blobs.append(blob)
            off += len(blob)
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(root, "safetensors", name + ".safetensors"), "wb") as f:
            f.write(np.uint64(len(h)).tobytes() + h + b"".join(blobs))


def main():
    out = ["# dequantization goldens, made by tests/golden/make_dequant_goldens.py (gguf-py numpy)"]
    real_tensors(out)
    embed_rms(out)
    for qt, raw in synth_blocks(np.random.default_rng(1234)).items():
        values = dequantize(raw, qt).astype("<f4").reshape(-1)
        out.append("synth %s %d %s" % (qt.name, raw.size, raw.tobytes().hex()))
        out.append("values %d %s" % (values.size, hexbits(values)))
    fuzz_seeds(np.random.default_rng(99))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
