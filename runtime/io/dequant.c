/* ggml block formats to fp32. Each block function mirrors the arithmetic of
 * gguf-py's numpy dequantize_blocks exactly: the same operands, the same
 * order (d * q + m, never m + d * q), and one rounding per operation: the
 * products are stored in a variable before the add so no compiler fuses
 * them into an FMA (which rounds once and would change the last bit). */
#include "dequant.h"

#include <string.h>

enum { QK = 32, QK_K = 256 };

typedef struct {
    const char *name;
    uint16_t block_elems;
    uint16_t block_bytes;
    bool dequant;            /* this file can convert it */
} type_traits;

/* Sizes from ggml (gguf.constants.GGML_QUANT_SIZES); every type is listed so
 * the GGUF reader can bounds-check tensors it will never convert. */
static const type_traits traits[LW_GGML_TYPE_COUNT] = {
    [0] = {"F32", 1, 4, true},       [1] = {"F16", 1, 2, true},
    [2] = {"Q4_0", 32, 18, true},    [3] = {"Q4_1", 32, 20, true},
    [6] = {"Q5_0", 32, 22, true},    [7] = {"Q5_1", 32, 24, true},
    [8] = {"Q8_0", 32, 34, true},    [9] = {"Q8_1", 32, 40, false},
    [10] = {"Q2_K", 256, 84, false}, [11] = {"Q3_K", 256, 110, false},
    [12] = {"Q4_K", 256, 144, true}, [13] = {"Q5_K", 256, 176, true},
    [14] = {"Q6_K", 256, 210, true}, [15] = {"Q8_K", 256, 292, false},
    [16] = {"IQ2_XXS", 256, 66, false}, [17] = {"IQ2_XS", 256, 74, false},
    [18] = {"IQ3_XXS", 256, 98, false}, [19] = {"IQ1_S", 256, 50, false},
    [20] = {"IQ4_NL", 32, 18, false},   [21] = {"IQ3_S", 256, 110, false},
    [22] = {"IQ2_S", 256, 82, false},   [23] = {"IQ4_XS", 256, 136, false},
    [24] = {"I8", 1, 1, false},   [25] = {"I16", 1, 2, false},
    [26] = {"I32", 1, 4, false},  [27] = {"I64", 1, 8, false},
    [28] = {"F64", 1, 8, false},  [29] = {"IQ1_M", 256, 56, false},
    [30] = {"BF16", 1, 2, true},
    [34] = {"TQ1_0", 256, 54, false}, [35] = {"TQ2_0", 256, 66, false},
};

const char *lw_ggml_type_name(uint32_t type)
{
    return type < LW_GGML_TYPE_COUNT ? traits[type].name : NULL;
}

bool lw_ggml_block_info(uint32_t type, size_t *block_elems, size_t *block_bytes)
{
    if (type >= LW_GGML_TYPE_COUNT || !traits[type].name) return false;
    *block_elems = traits[type].block_elems;
    *block_bytes = traits[type].block_bytes;
    return true;
}

bool lw_dequant_supported(uint32_t type)
{
    return type < LW_GGML_TYPE_COUNT && traits[type].dequant;
}

bool lw_ggml_nbytes(uint32_t type, int64_t n, size_t *nbytes)
{
    size_t be, bb;
    if (n < 0 || !lw_ggml_block_info(type, &be, &bb) || (uint64_t)n % be != 0) return false;
    uint64_t blocks = (uint64_t)n / be;
    if (blocks > SIZE_MAX / bb) return false;
    *nbytes = (size_t)blocks * bb;
    return true;
}

/* --- scalar conversions ---------------------------------------------------- */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lw_fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13)); /* inf, NaN */
    if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return bits_to_f32(sign);
    /* Subnormal: shift the mantissa up until its leading 1 is the hidden bit. */
    exp = 113;
    while (!(mant & 0x400)) {
        mant <<= 1;
        exp--;
    }
    return bits_to_f32(sign | (exp << 23) | ((mant & 0x3ff) << 13));
}

float lw_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

static float half_at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return lw_fp16_to_f32(h);
}

/* --- 32-element blocks ----------------------------------------------------- */

/* Element j of a 16-byte nibble array: low nibbles first, then high. */
static inline int nibble(const uint8_t *qs, int j)
{
    return j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
}

static void block_q4_0(const uint8_t *b, float *y)
{
    float d = half_at(b);
    for (int j = 0; j < QK; j++) y[j] = d * (float)(nibble(b + 2, j) - 8);
}

static void block_q4_1(const uint8_t *b, float *y)
{
    float d = half_at(b), m = half_at(b + 2);
    for (int j = 0; j < QK; j++) {
        float t = d * (float)nibble(b + 4, j);
        y[j] = t + m;
    }
}

static void block_q5_0(const uint8_t *b, float *y)
{
    float d = half_at(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    for (int j = 0; j < QK; j++) {
        int q = nibble(b + 6, j) | (int)((qh >> j) & 1) << 4;
        y[j] = d * (float)(q - 16);
    }
}

static void block_q5_1(const uint8_t *b, float *y)
{
    float d = half_at(b), m = half_at(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    for (int j = 0; j < QK; j++) {
        int q = nibble(b + 8, j) | (int)((qh >> j) & 1) << 4;
        float t = d * (float)q;
        y[j] = t + m;
    }
}

static void block_q8_0(const uint8_t *b, float *y)
{
    float d = half_at(b);
    for (int j = 0; j < QK; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* --- 256-element K-quant blocks -------------------------------------------- */

/* The 12 packed bytes of Q4_K/Q5_K hold eight 6-bit scales and eight 6-bit
 * mins: the low 6 bits of bytes 0-3 / 4-7 are scales/mins 0-3; scales/mins
 * 4-7 take their low nibble from bytes 8-11 and top 2 bits from bytes 0-7. */
static void k_scale_min(const uint8_t *s, int i, int *sc, int *m)
{
    if (i < 4) {
        *sc = s[i] & 0x3f;
        *m = s[i + 4] & 0x3f;
    } else {
        *sc = (s[i + 4] & 0x0f) | ((s[i - 4] >> 2) & 0x30);
        *m = (s[i + 4] >> 4) | ((s[i] >> 2) & 0x30);
    }
}

/* Sub-block i (32 elements) of Q4_K/Q5_K: 4-bit values from chunk i/2 of
 * the 128 qs bytes, low nibbles for even i, high for odd. */
static void block_q4_k(const uint8_t *b, float *y)
{
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int i = 0; i < 8; i++) {
        int sc, mn;
        k_scale_min(scales, i, &sc, &mn);
        float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + (i / 2) * 32;
        int shift = (i % 2) * 4;
        for (int l = 0; l < 32; l++) {
            float t = dl * (float)((q[l] >> shift) & 0x0f);
            y[i * 32 + l] = t - ml;
        }
    }
}

static void block_q5_k(const uint8_t *b, float *y)
{
    float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int i = 0; i < 8; i++) {
        int sc, mn;
        k_scale_min(scales, i, &sc, &mn);
        float dl = d * (float)sc, ml = dmin * (float)mn;
        const uint8_t *q = qs + (i / 2) * 32;
        int shift = (i % 2) * 4;
        for (int l = 0; l < 32; l++) {
            int v = ((q[l] >> shift) & 0x0f) | ((qh[l] >> i) & 1) << 4;
            float t = dl * (float)v;
            y[i * 32 + l] = t - ml;
        }
    }
}

/* Q6_K: element k lives in half h = k/128; its low 4 bits are nibble
 * (k%128)/64 of ql[h*64 + k%64], its high 2 bits are pair (k%128)/32 of
 * qh[h*32 + k%32]; every 16 elements share an int8 scale. */
static void block_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    float d = half_at(b + 208);
    for (int k = 0; k < QK_K; k++) {
        int h = k / 128, r = k % 128;
        int lo = (ql[h * 64 + r % 64] >> ((r / 64) * 4)) & 0x0f;
        int hi = (qh[h * 32 + r % 32] >> ((r / 32) * 2)) & 0x03;
        float dl = d * (float)scales[k / 16];
        y[k] = dl * (float)((lo | hi << 4) - 32);
    }
}

/* --- dispatch -------------------------------------------------------------- */

typedef void (*block_fn)(const uint8_t *, float *);

static block_fn block_function(uint32_t type)
{
    switch (type) {
    case LW_GGML_Q4_0: return block_q4_0;
    case LW_GGML_Q4_1: return block_q4_1;
    case LW_GGML_Q5_0: return block_q5_0;
    case LW_GGML_Q5_1: return block_q5_1;
    case LW_GGML_Q8_0: return block_q8_0;
    case LW_GGML_Q4_K: return block_q4_k;
    case LW_GGML_Q5_K: return block_q5_k;
    case LW_GGML_Q6_K: return block_q6_k;
    default: return NULL;
    }
}

lw_status lw_dequantize(uint32_t type, const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    size_t be = 1, bb = 1;
    if (!lw_dequant_supported(type))
        return lw_fail(LW_ERR_UNSUPPORTED, "cannot dequantize ggml type %s (%u)",
                       lw_ggml_type_name(type) ? lw_ggml_type_name(type) : "unknown", type);
    lw_ggml_block_info(type, &be, &bb);
    if (n < 0 || (uint64_t)n % be != 0)
        return lw_fail(LW_ERR_INVALID, "cannot dequantize %lld elements of %s: not a multiple of %zu",
                       (long long)n, lw_ggml_type_name(type), be);
    switch (type) {
    case LW_GGML_F32:
        memcpy(dst, src, (size_t)n * 4);
        return LW_OK;
    case LW_GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = half_at(p + 2 * i);
        return LW_OK;
    case LW_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = lw_bf16_to_f32(h);
        }
        return LW_OK;
    }
    block_fn fn = block_function(type);
    for (int64_t i = 0; i < n / (int64_t)be; i++) fn(p + (size_t)i * bb, dst + (size_t)i * be);
    return LW_OK;
}
