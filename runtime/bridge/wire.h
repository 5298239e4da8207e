/* The soft-token message: what a sender (lw send) hands a receiver (lw
 * receive) instead of text. docs/wire.md is the specification; this is its
 * reader and writer.
 *
 * Version 1, every integer little-endian, 208 header bytes:
 *
 *   0  u8[8]  magic "\x89LWSOFT\n"
 *   8  u16    version (1)
 *  10  u16    flags (none defined in version 1: must be 0)
 *  12  u32    total_bytes: header + payload + checksum
 *  16  u64    seq: the sender's number for this message (0, 1, ... in a stream)
 *  24  u64    XXH64 of bridge.safetensors                    (wire_identity.h)
 *  32  u64    XXH64 of the sender's weights file             0: not known to the writer
 *  40  u64    XXH64 of the sender's tokenizer file           0: not known to the writer
 *  48  u64    XXH64 of the receiver's weights file           0: not known to the writer
 *  56  u64    XXH64 of the receiver's tokenizer file         0: not known to the writer
 *  64  u32    sender layer the bridge reads
 *  68  u32    M, soft tokens (1..64)
 *  72  u32    width, the receiver's hidden size (1..65536)
 *  76  u8     dtype: 1 fp32, 2 bf16, 3 fp16, 4 int8
 *  77  u8[3]  zero
 *  80  char[64] pair name, NUL-padded ([A-Za-z0-9._-], 1..63 characters)
 * 144  char[64] task name, NUL-padded ([A-Za-z0-9_-], 1..63 characters)
 * 208  payload, M x width values row by row:
 *        fp32, bf16, fp16: the values (IEEE binary32, bfloat16, binary16)
 *        int8: M f32 scales, then M x width int8 in -127..127; value = q * scale
 * end-8 u64   XXH64 (seed 0) of every byte before it
 *
 * Every message is read as untrusted: each field is range-checked, the size
 * must be exactly what the header implies, every value must be finite, and
 * the checksum must match; a failure is an lw_fail naming the field, never
 * a crash. Messages follow one another in a stream (total_bytes frames
 * them). */
#ifndef LW_WIRE_H
#define LW_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

enum {
    LW_WIRE_VERSION = 1,
    LW_WIRE_HEADER_BYTES = 208,
    LW_WIRE_CHECKSUM_BYTES = 8,
    LW_WIRE_NAME_BYTES = 64,
    LW_WIRE_MAX_M = 64,
    LW_WIRE_MAX_WIDTH = 65536,
    LW_WIRE_MAX_LAYER = 4096,
};
/* The largest message version 1 allows: 64 fp32 rows of 65536. */
#define LW_WIRE_MAX_BYTES \
    ((size_t)LW_WIRE_HEADER_BYTES + (size_t)LW_WIRE_MAX_M * LW_WIRE_MAX_WIDTH * 4 + LW_WIRE_CHECKSUM_BYTES)

extern const unsigned char LW_WIRE_MAGIC[8];

typedef enum { LW_WIRE_FP32 = 1, LW_WIRE_BF16 = 2, LW_WIRE_FP16 = 3, LW_WIRE_INT8 = 4 } lw_wire_dtype;

/* What a message was made with: the receiver compares it with its own
 * (wire_identity.h) and refuses a message from another bridge or model. */
typedef struct {
    char pair[LW_WIRE_NAME_BYTES];
    char task[LW_WIRE_NAME_BYTES];
    uint64_t bridge;
    uint64_t sender_weights, sender_tokenizer;       /* 0: not known */
    uint64_t receiver_weights, receiver_tokenizer;   /* 0: not known */
} lw_wire_identity;

typedef struct {
    uint16_t version, flags;
    uint64_t seq;
    lw_wire_identity id;
    int sender_layer, M, width;
    lw_wire_dtype dtype;
    float *soft;            /* [M * width], decoded to float (malloc'd; lw_wire_message_free) */
    uint64_t checksum;
} lw_wire_message;

/* "fp32", "bf16", "fp16", "int8"; NULL for another value. */
const char *lw_wire_dtype_name(lw_wire_dtype d);
/* The dtype of a name; false if none. */
bool lw_wire_dtype_from_name(const char *name, lw_wire_dtype *d);
/* Payload bytes of M x width values in d (scales included); 0 for a bad d. */
size_t lw_wire_payload_bytes(lw_wire_dtype d, int M, int width);

/* The message of soft[M * width] in dtype (h's version, flags and checksum
 * are ignored: the writer sets them) into a malloc'd *out of *len bytes.
 * Refuses what a reader would: a bad field, a value that is not finite or
 * that fp16 cannot hold (|x| > 65504). */
lw_status lw_wire_encode(const lw_wire_message *h, const float *soft, uint8_t **out, size_t *len);

/* Reads one message of exactly len bytes (untrusted). On success m->soft is
 * a malloc'd copy of the values as float; on failure m is zeroed and the
 * error names the field. */
lw_status lw_wire_decode(const uint8_t *buf, size_t len, lw_wire_message *m);
void lw_wire_message_free(lw_wire_message *m);

/* The next message's bytes from a stream into *buf (grown as needed,
 * capacity *cap): *len its size, or *len = 0 at a clean end of stream. A
 * stream that ends inside a message, or whose header announces a size out of
 * range, is an error (what = the stream's name, for messages). */
lw_status lw_wire_read_frame(FILE *f, const char *what, uint8_t **buf, size_t *cap, size_t *len);

/* The bytes of one message to f (what = its name, for messages). */
lw_status lw_wire_write_frame(FILE *f, const char *what, const uint8_t *buf, size_t len);

#endif
