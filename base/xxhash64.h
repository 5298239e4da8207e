/* XXH64 (Yann Collet's xxHash, 64-bit variant), one-shot, seed given.
 *
 * The wire format (wire.h, docs/wire.md) uses it twice: as the checksum
 * closing every message, and to name the files a message was made with
 * (bridge.safetensors, each model's weights and tokenizer). It is chosen
 * for the second use: it runs at memory speed on one core (hundreds of MB
 * in a fraction of a second), where SHA-256 would cost seconds on the model
 * files; the identity it gives is against mix-ups, not against an
 * adversary, which a 64-bit non-cryptographic hash serves. One hash for
 * both keeps the Python reader (tools/lw_wire.py) small.
 *
 * Checked against the reference implementation's published values
 * (tests/check_wire.c). */
#ifndef LW_XXHASH64_H
#define LW_XXHASH64_H

#include <stddef.h>
#include <stdint.h>

uint64_t lw_xxh64(const void *data, size_t len, uint64_t seed);

#endif
