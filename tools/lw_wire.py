#!/usr/bin/env python3
"""Reads (and writes) lwc soft-token messages, version 1 (docs/wire.md).

A message is what `lw send` writes and `lw receive` reads: a 208-byte header
(magic, version, flags, size, seq, the XXH64 of the bridge checkpoint and of
each model's files, sender layer, M, width, dtype, pair and task names), the
M x width soft tokens in fp32, bf16, fp16 or int8 with per-token scales, and
an XXH64 checksum of everything before it. Messages follow one another in a
stream.

    import lw_wire
    for msg in lw_wire.read_stream(open("msgs.bin", "rb")):
        print(msg["seq"], msg["pair"], msg["soft"].shape)   # soft: float32 [M, width]

    python3 tools/lw_wire.py msgs.bin            # one JSON line per message (as lw receive --inspect)

Only numpy is needed. Every field is checked as the C reader checks it
(runtime/bridge/wire.c); a bad message raises WireError naming the field.
"""
import json
import struct
import sys

import numpy as np

MAGIC = b"\x89LWSOFT\n"
VERSION = 1
HEADER_BYTES = 208
MAX_M, MAX_WIDTH, MAX_LAYER = 64, 65536, 4096
MAX_BYTES = HEADER_BYTES + MAX_M * MAX_WIDTH * 4 + 8
DTYPES = {1: "fp32", 2: "bf16", 3: "fp16", 4: "int8"}
HASHES = ("bridge", "sender_weights", "sender_tokenizer", "receiver_weights", "receiver_tokenizer")
_M64 = (1 << 64) - 1
_P1, _P2, _P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_P4, _P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


class WireError(ValueError):
    pass


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc, v):
    return _rotl((acc + v * _P2) & _M64, 31) * _P1 & _M64


def xxh64(data, seed=0):
    """XXH64 of bytes (the checksum and the file hashes of the format)."""
    n, p = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M64, (seed + _P2) & _M64, seed, (seed - _P1) & _M64]
        lanes = np.frombuffer(data, dtype="<u8", count=(n // 32) * 4).tolist()
        for i in range(0, len(lanes), 4):
            v = [_round(v[k], lanes[i + k]) for k in range(4)]
        p = (n // 32) * 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for x in v:
            h = ((h ^ _round(0, x)) * _P1 + _P4) & _M64
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while n - p >= 8:
        h = (_rotl(h ^ _round(0, struct.unpack_from("<Q", data, p)[0]), 27) * _P1 + _P4) & _M64
        p += 8
    if n - p >= 4:
        h = (_rotl(h ^ (struct.unpack_from("<I", data, p)[0] * _P1 & _M64), 23) * _P2 + _P3) & _M64
        p += 4
    while p < n:
        h = _rotl(h ^ (data[p] * _P5 & _M64), 11) * _P1 & _M64
        p += 1
    h ^= h >> 33
    h = h * _P2 & _M64
    h ^= h >> 29
    h = h * _P3 & _M64
    return h ^ (h >> 32)


def payload_bytes(dtype, m, width):
    return {"fp32": 4 * m * width, "bf16": 2 * m * width, "fp16": 2 * m * width, "int8": 4 * m + m * width}[dtype]


def _name(raw, what, dot):
    text = raw.split(b"\0", 1)[0]
    allowed = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-" + (b"." if dot else b"")
    if not 1 <= len(text) <= 63 or any(c not in allowed for c in text) or any(raw[len(text):]):
        raise WireError(f"message {what} name: 1..63 of [A-Za-z0-9{'.' if dot else ''}_-], NUL-padded to 64 bytes")
    return text.decode()


def decode(buf):
    """One message of exactly len(buf) bytes -> dict (soft: float32 [M, width])."""
    buf = bytes(buf)
    if len(buf) < 16:
        raise WireError(f"message of {len(buf)} bytes: shorter than the {HEADER_BYTES}-byte header")
    if buf[:8] != MAGIC:
        raise WireError("not a soft-token message (bad magic)")
    version, flags, total = struct.unpack_from("<HHI", buf, 8)
    if version != VERSION:
        raise WireError(f"message version {version}: this reader knows version {VERSION}")
    if flags:
        raise WireError(f"message flags 0x{flags:04x}: version 1 defines none")
    if not HEADER_BYTES + 8 <= total <= MAX_BYTES:
        raise WireError(f"message total_bytes {total} outside {HEADER_BYTES + 8}..{MAX_BYTES}")
    if total != len(buf):
        raise WireError(f"message of {len(buf)} bytes, its header says {total}")
    want, got = struct.unpack_from("<Q", buf, total - 8)[0], xxh64(buf[:-8])
    if want != got:
        raise WireError(f"message checksum: XXH64 of its bytes is {got:016x}, it says {want:016x}")
    seq, *hashes = struct.unpack_from("<6Q", buf, 16)
    layer, m, width, dt = struct.unpack_from("<IIIB", buf, 64)
    if layer > MAX_LAYER:
        raise WireError(f"message sender layer {layer} (0..{MAX_LAYER})")
    if not 1 <= m <= MAX_M:
        raise WireError(f"message M = {m} soft tokens (1..{MAX_M})")
    if not 1 <= width <= MAX_WIDTH:
        raise WireError(f"message width {width} (1..{MAX_WIDTH})")
    if dt not in DTYPES:
        raise WireError(f"message dtype {dt} (1 fp32, 2 bf16, 3 fp16, 4 int8)")
    if any(buf[77:80]):
        raise WireError("message bytes 77..79 must be zero")
    dtype = DTYPES[dt]
    msg = {"seq": seq, "version": version, "pair": _name(buf[80:144], "pair", True),
           "task": _name(buf[144:208], "task", False), "sender_layer": layer, "M": m, "width": width,
           "dtype": dtype}
    msg.update({k: f"{h:016x}" for k, h in zip(HASHES, hashes)})
    msg["checksum"] = f"{want:016x}"
    need = HEADER_BYTES + payload_bytes(dtype, m, width) + 8
    if total != need:
        raise WireError(f"message of {total} bytes: {m} x {width} {dtype} values need {need}")
    p = buf[HEADER_BYTES:-8]
    if dtype == "fp32":
        soft = np.frombuffer(p, dtype="<f4").astype(np.float32)
    elif dtype == "bf16":
        soft = (np.frombuffer(p, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif dtype == "fp16":
        soft = np.frombuffer(p, dtype="<f2").astype(np.float32)
    else:
        scales = np.frombuffer(p, dtype="<f4", count=m).astype(np.float32)
        q = np.frombuffer(p, dtype=np.int8, offset=4 * m).reshape(m, width)
        bad = np.flatnonzero(~np.isfinite(scales) | (scales < 0))
        if bad.size:
            raise WireError(f"message soft token {bad[0]}: int8 scale {scales[bad[0]]} (finite, >= 0)")
        if (q == -128).any():
            raise WireError(f"message soft token {np.argwhere(q == -128)[0][0]}: int8 value -128 (-127..127)")
        soft = (q.astype(np.float32) * scales[:, None]).astype(np.float32)
    soft = soft.reshape(m, width)
    bad = np.argwhere(~np.isfinite(soft))
    if bad.size:
        raise WireError(f"message soft token {bad[0][0]}, value {bad[0][1]} is not finite")
    msg["soft"] = soft
    return msg


def read_stream(f):
    """Yields each message of a binary stream; raises WireError on one cut short."""
    while True:
        head = f.read(16)
        if not head:
            return
        if len(head) < 16:
            raise WireError(f"stream ends {len(head)} bytes into a message (cut short)")
        if head[:8] != MAGIC:
            raise WireError("not a soft-token message (bad magic)")
        total = struct.unpack_from("<I", head, 12)[0]
        if not HEADER_BYTES + 8 <= total <= MAX_BYTES:
            raise WireError(f"message total_bytes {total} outside {HEADER_BYTES + 8}..{MAX_BYTES}")
        rest = f.read(total - 16)
        if len(rest) < total - 16:
            raise WireError(f"a message of {total} bytes ends after {16 + len(rest)} (cut short)")
        yield decode(head + rest)


def encode(soft, dtype="fp32", seq=0, pair="pair", task="task", sender_layer=0, hashes=None):
    """A message of soft [M, width] (tests and fuzz seeds; lw send is the writer in use)."""
    soft = np.asarray(soft, dtype=np.float32)
    m, width = soft.shape
    code = {v: k for k, v in DTYPES.items()}[dtype]
    hashes = hashes or {}
    total = HEADER_BYTES + payload_bytes(dtype, m, width) + 8
    head = MAGIC + struct.pack("<HHIQ", VERSION, 0, total, seq)
    head += struct.pack("<5Q", *(hashes.get(k, 0) for k in HASHES))
    head += struct.pack("<IIIB3x", sender_layer, m, width, code)
    head += pair.encode().ljust(64, b"\0") + task.encode().ljust(64, b"\0")
    if dtype == "fp32":
        body = soft.astype("<f4").tobytes()
    elif dtype == "bf16":
        u = soft.view(np.uint32).astype(np.uint64)
        body = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    elif dtype == "fp16":
        body = soft.astype("<f2").tobytes()
    else:
        scales = (np.abs(soft).max(axis=1) / np.float32(127)).astype(np.float32)
        safe = np.where(scales > 0, scales, np.float32(1))
        q = np.clip(np.rint(soft / safe[:, None]), -127, 127).astype(np.int8)
        body = scales.astype("<f4").tobytes() + q.tobytes()
    msg = head + body
    return msg + struct.pack("<Q", xxh64(msg))


def _main(argv):
    if len(argv) != 2:
        print("usage: lw_wire.py FILE|-   (one JSON line per message, values as float)", file=sys.stderr)
        return 2
    f = sys.stdin.buffer if argv[1] == "-" else open(argv[1], "rb")
    try:
        for msg in read_stream(f):
            soft = msg.pop("soft")
            msg["values"] = [float(v) for v in soft.reshape(-1)]
            print(json.dumps(msg, separators=(",", ":")))
    except WireError as e:
        print(f"lw_wire: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
