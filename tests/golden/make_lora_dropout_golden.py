#!/usr/bin/env python3
"""LoRA dropout masks for tests/check_kernel_templates.c, from an independent
Python copy of the draw documented in runtime/model/lora.h: column j of the row at
position pos in (layer, target) is kept iff

    mix64(stream ^ (pos << 24 | j)) >> 11  >=  float32(p) * 2^53,
    stream = mix64(seed ^ mix64(layer * 7 + target)),

mix64 being splitmix64's finaliser. Writes tests/golden/lora/dropout_mask.txt:
a header line "seed p", then one line per (layer, target, pos) with the
64 bits of columns 0..63 as '0'/'1'. Run from the repository root."""
import struct

M64 = (1 << 64) - 1
SEED = 0x0123456789ABCDEF
P = 0.3


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    cut = f32(P) * 2.0 ** 53
    lines = ["%d %.9g" % (SEED, P)]
    for layer in (0, 1, 17):
        for target in (0, 2, 6):   # q, v, down
            stream = mix64(SEED ^ mix64(layer * 7 + target))
            for pos in (0, 1, 5, 40, 1000, 65535):
                bits = "".join("1" if (mix64(stream ^ (pos << 24 | j)) >> 11) >= cut else "0" for j in range(64))
                lines.append("%d %d %d %s" % (layer, target, pos, bits))
    with open("tests/golden/lora/dropout_mask.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
