/* libFuzzer: the soft-token message reader (lw_wire_decode and the stream
 * framing of wire.c) on arbitrary bytes. Each input is read three ways: as
 * one message; as one message with its checksum made right (so the fields
 * behind the checksum are reached, which a random input's checksum never
 * lets through); and as a stream of messages (lw_wire_read_frame over a
 * memory FILE). A read that fails must explain itself and hand back no
 * values; one that succeeds must give finite values of the announced shape,
 * and an fp32, bf16 or fp16 message written again must give back its bytes.
 * Seeds (tests/fuzz/seeds/wire/, made by tests/fuzz/make_wire_seeds.py):
 * a message of each dtype, two in a row, and damaged ones. */
#include "wire.h"
#include "xxhash64.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(const uint8_t *data, size_t size)
{
    lw_wire_message m;
    lw_fail(LW_OK, "%s", "");
    if (lw_wire_decode(data, size, &m) != LW_OK) {
        if (lw_last_error()[0] == 0 || m.soft) abort();   /* every failure explains itself, keeps nothing */
        return;
    }
    if (m.M < 1 || m.M > LW_WIRE_MAX_M || m.width < 1 || m.width > LW_WIRE_MAX_WIDTH) abort();
    for (size_t i = 0; i < (size_t)m.M * m.width; i++)
        if (!isfinite(m.soft[i])) abort();
    if (m.dtype != LW_WIRE_INT8) {   /* int8's scales are the writer's choice: not a fixed point */
        uint8_t *again;
        size_t len;
        if (lw_wire_encode(&m, m.soft, &again, &len) != LW_OK || len != size || memcmp(again, data, size)) abort();
        free(again);
    }
    lw_wire_message_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    if (size >= 8 && size <= LW_WIRE_MAX_BYTES) {
        uint8_t *b = malloc(size);
        if (!b) abort();
        memcpy(b, data, size);
        uint64_t h = lw_xxh64(b, size - 8, 0);
        for (int i = 0; i < 8; i++) b[size - 8 + i] = (uint8_t)(h >> (8 * i));
        check(b, size);
        free(b);
    }
    FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
    if (!f) abort();
    if (size == 0) getc(f);   /* fmemopen wants a size of 1 or more: read past the one byte */
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    for (int n = 0; n < 64; n++) {
        lw_fail(LW_OK, "%s", "");
        if (lw_wire_read_frame(f, "fuzz", &buf, &cap, &len) != LW_OK) {
            if (lw_last_error()[0] == 0) abort();
            break;
        }
        if (len == 0) break;
        if (len > cap || len > LW_WIRE_MAX_BYTES) abort();
        check(buf, len);
    }
    free(buf);
    fclose(f);
    return 0;
}
