/* The soft-token message format, version 1 (wire.h, docs/wire.md). Bytes
 * are put and taken one by one in little-endian order, so the format does
 * not depend on the host's byte order or struct layout. */
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "bf16.h"
#include "xxhash64.h"

const unsigned char LW_WIRE_MAGIC[8] = {0x89, 'L', 'W', 'S', 'O', 'F', 'T', '\n'};

enum {
    OFF_VERSION = 8, OFF_FLAGS = 10, OFF_TOTAL = 12, OFF_SEQ = 16, OFF_HASHES = 24, OFF_LAYER = 64, OFF_M = 68,
    OFF_WIDTH = 72, OFF_DTYPE = 76, OFF_PAIR = 80, OFF_TASK = 144,
    FRAME_PREFIX = 16   /* magic, version, flags, total_bytes: what a stream reader needs first */
};
#define FP16_MAX 65504.0f

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static void putf(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put32(p, u);
}
static float getf(const uint8_t *p)
{
    uint32_t u = get32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16, round to nearest even; the caller has checked |f| <= 65504
 * and that f is finite. */
static uint16_t fp16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a < 0x38800000u)   /* below 2^-14: a subnormal half, counted in units of 2^-24 (lrintf: to even) */
        return (uint16_t)(sign | (uint16_t)lrintf(fabsf(f) * 16777216.0f));
    a -= (uint32_t)(127 - 15) << 23;   /* rebias the exponent, then drop 13 mantissa bits to even */
    return (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u)) >> 13));
}

const char *lw_wire_dtype_name(lw_wire_dtype d)
{
    switch (d) {
    case LW_WIRE_FP32: return "fp32";
    case LW_WIRE_BF16: return "bf16";
    case LW_WIRE_FP16: return "fp16";
    case LW_WIRE_INT8: return "int8";
    }
    return NULL;
}

bool lw_wire_dtype_from_name(const char *name, lw_wire_dtype *d)
{
    for (int k = LW_WIRE_FP32; k <= LW_WIRE_INT8; k++)
        if (!strcmp(name, lw_wire_dtype_name((lw_wire_dtype)k))) {
            *d = (lw_wire_dtype)k;
            return true;
        }
    return false;
}

size_t lw_wire_payload_bytes(lw_wire_dtype d, int M, int width)
{
    size_t n = (size_t)M * (size_t)width;
    switch (d) {
    case LW_WIRE_FP32: return n * 4;
    case LW_WIRE_BF16:
    case LW_WIRE_FP16: return n * 2;
    case LW_WIRE_INT8: return (size_t)M * 4 + n;
    }
    return 0;
}

/* A name field: 1..63 characters of the allowed set, NUL-padded. */
static bool name_ok(const char *s, size_t n, bool dot)
{
    size_t len = strnlen(s, n);
    if (len < 1 || len >= n) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              (dot && c == '.')))
            return false;
    }
    return true;
}

static lw_status check_fields(const lw_wire_message *h)
{
    if (!lw_wire_dtype_name(h->dtype)) return lw_fail(LW_ERR_INVALID, "wire: dtype %d (1..4)", (int)h->dtype);
    if (h->M < 1 || h->M > LW_WIRE_MAX_M)
        return lw_fail(LW_ERR_INVALID, "wire: M = %d soft tokens (1..%d)", h->M, LW_WIRE_MAX_M);
    if (h->width < 1 || h->width > LW_WIRE_MAX_WIDTH)
        return lw_fail(LW_ERR_INVALID, "wire: width %d (1..%d)", h->width, LW_WIRE_MAX_WIDTH);
    if (h->sender_layer < 0 || h->sender_layer > LW_WIRE_MAX_LAYER)
        return lw_fail(LW_ERR_INVALID, "wire: sender layer %d (0..%d)", h->sender_layer, LW_WIRE_MAX_LAYER);
    if (!name_ok(h->id.pair, sizeof h->id.pair, true))
        return lw_fail(LW_ERR_INVALID, "wire: pair name: 1..63 of [A-Za-z0-9._-]");
    if (!name_ok(h->id.task, sizeof h->id.task, false))
        return lw_fail(LW_ERR_INVALID, "wire: task name: 1..63 of [A-Za-z0-9_-]");
    return LW_OK;
}

lw_status lw_wire_encode(const lw_wire_message *h, const float *soft, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    lw_status st = check_fields(h);
    if (st) return lw_fail_wrap(st, "writing a message");
    size_t n = (size_t)h->M * (size_t)h->width;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(soft[i]))
            return lw_fail(LW_ERR_INVALID, "writing a message: soft token %zu, value %zu is not finite",
                           i / (size_t)h->width, i % (size_t)h->width);
        if (h->dtype == LW_WIRE_FP16 && fabsf(soft[i]) > FP16_MAX)
            return lw_fail(LW_ERR_INVALID, "writing a message: soft token %zu, value %zu = %g is beyond fp16's "
                           "%g (use bf16 or fp32)", i / (size_t)h->width, i % (size_t)h->width, soft[i], FP16_MAX);
    }
    size_t total = LW_WIRE_HEADER_BYTES + lw_wire_payload_bytes(h->dtype, h->M, h->width) + LW_WIRE_CHECKSUM_BYTES;
    uint8_t *b = calloc(total, 1);
    if (!b) return lw_fail(LW_ERR_NOMEM, "writing a message: %zu bytes", total);
    memcpy(b, LW_WIRE_MAGIC, 8);
    put16(b + OFF_VERSION, LW_WIRE_VERSION);
    put16(b + OFF_FLAGS, 0);
    put32(b + OFF_TOTAL, (uint32_t)total);
    put64(b + OFF_SEQ, h->seq);
    const uint64_t hashes[5] = {h->id.bridge, h->id.sender_weights, h->id.sender_tokenizer, h->id.receiver_weights,
                                h->id.receiver_tokenizer};
    for (int k = 0; k < 5; k++) put64(b + OFF_HASHES + 8 * k, hashes[k]);
    put32(b + OFF_LAYER, (uint32_t)h->sender_layer);
    put32(b + OFF_M, (uint32_t)h->M);
    put32(b + OFF_WIDTH, (uint32_t)h->width);
    b[OFF_DTYPE] = (uint8_t)h->dtype;
    memcpy(b + OFF_PAIR, h->id.pair, strlen(h->id.pair));   /* checked: < 64, the rest stays NUL */
    memcpy(b + OFF_TASK, h->id.task, strlen(h->id.task));
    uint8_t *p = b + LW_WIRE_HEADER_BYTES;
    switch (h->dtype) {
    case LW_WIRE_FP32:
        for (size_t i = 0; i < n; i++) putf(p + 4 * i, soft[i]);
        break;
    case LW_WIRE_BF16:
        for (size_t i = 0; i < n; i++) put16(p + 2 * i, lw_bf16_from_f32(soft[i]));
        break;
    case LW_WIRE_FP16:
        for (size_t i = 0; i < n; i++) put16(p + 2 * i, fp16_from_f32(soft[i]));
        break;
    case LW_WIRE_INT8: {
        /* per soft token: scale = max |x| / 127, q = round(x / scale) */
        uint8_t *q = p + (size_t)h->M * 4;
        for (int t = 0; t < h->M; t++) {
            const float *row = soft + (size_t)t * h->width;
            float amax = 0.0f;
            for (int k = 0; k < h->width; k++) amax = fmaxf(amax, fabsf(row[k]));
            float scale = amax / 127.0f;
            putf(p + 4 * (size_t)t, scale);
            for (int k = 0; k < h->width; k++) {
                long v = scale > 0.0f ? lrintf(row[k] / scale) : 0;
                v = v > 127 ? 127 : v < -127 ? -127 : v;
                q[(size_t)t * h->width + k] = (uint8_t)(int8_t)v;
            }
        }
        break;
    }
    }
    put64(b + total - 8, lw_xxh64(b, total - 8, 0));
    *out = b;
    *len = total;
    return LW_OK;
}

void lw_wire_message_free(lw_wire_message *m)
{
    free(m->soft);
    memset(m, 0, sizeof *m);
}

/* The fixed prefix every reader checks first: magic, version, size. */
static lw_status check_prefix(const uint8_t *b, uint32_t *total)
{
    if (memcmp(b, LW_WIRE_MAGIC, 8) != 0)
        return lw_fail(LW_ERR_FORMAT, "not a soft-token message (its first 8 bytes are not the magic \\x89LWSOFT\\n)");
    uint16_t version = get16(b + OFF_VERSION);
    if (version != LW_WIRE_VERSION)
        return lw_fail(LW_ERR_UNSUPPORTED, "message version %u: this reader knows version %d", version,
                       LW_WIRE_VERSION);
    uint16_t flags = get16(b + OFF_FLAGS);
    if (flags != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "message flags 0x%04x: version 1 defines none", flags);
    *total = get32(b + OFF_TOTAL);
    if (*total < LW_WIRE_HEADER_BYTES + LW_WIRE_CHECKSUM_BYTES || *total > LW_WIRE_MAX_BYTES)
        return lw_fail(LW_ERR_FORMAT, "message total_bytes %u outside %d..%zu", *total,
                       LW_WIRE_HEADER_BYTES + LW_WIRE_CHECKSUM_BYTES, LW_WIRE_MAX_BYTES);
    return LW_OK;
}

static lw_status decode(const uint8_t *b, size_t len, lw_wire_message *m)
{
    if (len < FRAME_PREFIX)
        return lw_fail(LW_ERR_FORMAT, "message of %zu bytes: shorter than the %d-byte header", len,
                       LW_WIRE_HEADER_BYTES);
    uint32_t total;
    lw_status st = check_prefix(b, &total);
    if (st) return st;
    if (total != len)
        return lw_fail(LW_ERR_FORMAT, "message of %zu bytes, its header says %u (cut short or run together?)", len,
                       total);
    uint64_t want = get64(b + len - 8), got = lw_xxh64(b, len - 8, 0);
    if (want != got)
        return lw_fail(LW_ERR_FORMAT, "message checksum: XXH64 of its %zu bytes is %016llx, it says %016llx "
                       "(damaged in transit)", len - 8, (unsigned long long)got, (unsigned long long)want);
    m->version = LW_WIRE_VERSION;
    m->flags = 0;
    m->checksum = want;
    m->seq = get64(b + OFF_SEQ);
    uint64_t *hashes[5] = {&m->id.bridge, &m->id.sender_weights, &m->id.sender_tokenizer, &m->id.receiver_weights,
                           &m->id.receiver_tokenizer};
    for (int k = 0; k < 5; k++) *hashes[k] = get64(b + OFF_HASHES + 8 * k);
    /* u32 fields above INT_MAX would turn negative as int: range-check them as u32 first */
    uint32_t layer = get32(b + OFF_LAYER), M = get32(b + OFF_M), width = get32(b + OFF_WIDTH);
    if (layer > LW_WIRE_MAX_LAYER) return lw_fail(LW_ERR_FORMAT, "message sender layer %u (0..%d)", layer, LW_WIRE_MAX_LAYER);
    if (M < 1 || M > LW_WIRE_MAX_M) return lw_fail(LW_ERR_FORMAT, "message M = %u soft tokens (1..%d)", M, LW_WIRE_MAX_M);
    if (width < 1 || width > LW_WIRE_MAX_WIDTH)
        return lw_fail(LW_ERR_FORMAT, "message width %u (1..%d)", width, LW_WIRE_MAX_WIDTH);
    m->sender_layer = (int)layer, m->M = (int)M, m->width = (int)width;
    uint8_t dt = b[OFF_DTYPE];
    if (!lw_wire_dtype_name((lw_wire_dtype)dt))
        return lw_fail(LW_ERR_FORMAT, "message dtype %u (1 fp32, 2 bf16, 3 fp16, 4 int8)", dt);
    m->dtype = (lw_wire_dtype)dt;
    if (b[77] | b[78] | b[79]) return lw_fail(LW_ERR_FORMAT, "message bytes 77..79 must be zero");
    memcpy(m->id.pair, b + OFF_PAIR, LW_WIRE_NAME_BYTES);
    memcpy(m->id.task, b + OFF_TASK, LW_WIRE_NAME_BYTES);
    for (int f = 0; f < 2; f++) {   /* 1..63 allowed characters, then NULs only */
        const uint8_t *s = b + (f ? OFF_TASK : OFF_PAIR);
        size_t n = strnlen((const char *)s, LW_WIRE_NAME_BYTES);
        bool pad = true;
        for (size_t i = n; i < LW_WIRE_NAME_BYTES; i++) pad = pad && s[i] == 0;
        if (!pad || !name_ok((const char *)s, LW_WIRE_NAME_BYTES, !f))
            return lw_fail(LW_ERR_FORMAT, "message %s name: 1..63 of [A-Za-z0-9%s_-], NUL-padded to 64 bytes",
                           f ? "task" : "pair", f ? "" : ".");
    }
    size_t payload = lw_wire_payload_bytes(m->dtype, m->M, m->width);
    if (len != LW_WIRE_HEADER_BYTES + payload + LW_WIRE_CHECKSUM_BYTES)
        return lw_fail(LW_ERR_FORMAT, "message of %zu bytes: %d x %d %s values need %zu", len, m->M, m->width,
                       lw_wire_dtype_name(m->dtype), LW_WIRE_HEADER_BYTES + payload + LW_WIRE_CHECKSUM_BYTES);
    size_t n = (size_t)m->M * (size_t)m->width;
    if (!(m->soft = malloc(n * sizeof *m->soft))) return lw_fail(LW_ERR_NOMEM, "message: %zu values", n);
    const uint8_t *p = b + LW_WIRE_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        float v;
        switch (m->dtype) {
        case LW_WIRE_FP32: v = getf(p + 4 * i); break;
        case LW_WIRE_BF16: v = lw_bf16_to_f32(get16(p + 2 * i)); break;
        case LW_WIRE_FP16: v = lw_fp16_to_f32(get16(p + 2 * i)); break;
        default: {
            size_t t = i / (size_t)m->width;
            float scale = getf(p + 4 * t);
            int8_t q = (int8_t)p[(size_t)m->M * 4 + i];
            if (!isfinite(scale) || scale < 0.0f)
                return lw_fail(LW_ERR_FORMAT, "message soft token %zu: int8 scale %g (finite, >= 0)", t, scale);
            if (q == -128) return lw_fail(LW_ERR_FORMAT, "message soft token %zu: int8 value -128 (-127..127)", t);
            v = (float)q * scale;
        }
        }
        if (!isfinite(v))
            return lw_fail(LW_ERR_FORMAT, "message soft token %zu, value %zu is not finite", i / (size_t)m->width,
                           i % (size_t)m->width);
        m->soft[i] = v;
    }
    return LW_OK;
}

lw_status lw_wire_decode(const uint8_t *buf, size_t len, lw_wire_message *m)
{
    memset(m, 0, sizeof *m);
    lw_status st = decode(buf, len, m);
    if (st) lw_wire_message_free(m);
    return st;
}

static lw_status read_exact(FILE *f, const char *what, uint8_t *p, size_t n, size_t *got)
{
    *got = fread(p, 1, n, f);
    if (*got == n) return LW_OK;
    if (ferror(f)) return lw_fail(LW_ERR_IO, "%s: reading: %s", what, strerror(errno));
    return LW_OK;
}

lw_status lw_wire_read_frame(FILE *f, const char *what, uint8_t **buf, size_t *cap, size_t *len)
{
    *len = 0;
    uint8_t prefix[FRAME_PREFIX];
    size_t got;
    lw_status st = read_exact(f, what, prefix, sizeof prefix, &got);
    if (st) return st;
    if (got == 0) return LW_OK;   /* a clean end between messages */
    if (got < sizeof prefix)
        return lw_fail(LW_ERR_FORMAT, "%s: ends %zu bytes into a message (cut short)", what, got);
    uint32_t total;
    if ((st = check_prefix(prefix, &total))) return lw_fail_wrap(st, "%s", what);
    if (*cap < total) {
        uint8_t *p = realloc(*buf, total);
        if (!p) return lw_fail(LW_ERR_NOMEM, "%s: a message of %u bytes", what, total);
        *buf = p;
        *cap = total;
    }
    memcpy(*buf, prefix, sizeof prefix);
    if ((st = read_exact(f, what, *buf + sizeof prefix, total - sizeof prefix, &got))) return st;
    if (got < total - sizeof prefix)
        return lw_fail(LW_ERR_FORMAT, "%s: a message of %u bytes ends after %zu (cut short)", what, total,
                       sizeof prefix + got);
    *len = total;
    return LW_OK;
}

lw_status lw_wire_write_frame(FILE *f, const char *what, const uint8_t *buf, size_t len)
{
    if (fwrite(buf, 1, len, f) != len) return lw_fail(LW_ERR_IO, "%s: writing: %s", what, strerror(errno));
    return LW_OK;
}
