/* One row of GGUF blocks decoded to the common form of op_matmul_qn.h
 * (internal): u[in] bytes, s[in/16] scales, m[in/32] offsets, and the
 * format's zero z, with w = s_g * (u - z) + m_b. Static inline so that each
 * path's file (compiled for its own instruction set by a target attribute)
 * gets the loops vectorised for that set: every loop runs over 16 or 32
 * contiguous bytes with constant bounds. The block layouts are ggml's
 * (ggml-common.h), the same ones runtime/io/dequant.c converts. */
#ifndef LW_OP_MATMUL_QN_DECODE_H
#define LW_OP_MATMUL_QN_DECODE_H

#include <stdint.h>
#include <string.h>

#include "op_matmul_qn_types.h"

static inline float qn_half(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h & 0x7c00, bits;
    if (exp != 0 && exp != 0x7c00) {
        /* normal (every scale in practice): rebias the exponent by 112 */
        bits = sign | ((uint32_t)(h & 0x7fff) + 0x1c000u) << 13;
    } else if (exp == 0) {
        /* subnormal (or zero): man * 2^-24, exact in fp32 */
        float f = (float)(h & 0x3ff) * (1.0f / 16777216.0f);
        return sign ? -f : f;
    } else {
        bits = sign | 0x7f800000u | (uint32_t)(h & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline int qn_zero(uint32_t type)
{
    switch (type) {
    case LW_QN_Q4_0: return 8;
    case LW_QN_Q5_0: return 16;
    case LW_QN_Q6_K: return 32;
    case LW_QN_Q8_0: return 128;
    default: return 0;
    }
}

/* The 16 nibbles of a 32-block: low nibbles are columns 0-15, high 16-31. */
static inline void qn_nibbles(uint8_t *restrict u, const uint8_t *restrict qs)
{
    for (int j = 0; j < 16; j++) u[j] = qs[j] & 0x0f;
    for (int j = 0; j < 16; j++) u[j + 16] = qs[j] >> 4;
}

/* The fifth bit of Q5_0/Q5_1: bit j of qh is column j's. */
static inline void qn_fifth_bits(uint8_t *restrict u, const uint8_t *restrict qh4)
{
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 32; j++) u[j] |= (uint8_t)(((qh >> j) & 1u) << 4);
}

/* Q4_K/Q5_K's 12 bytes of eight 6-bit scales and mins (dequant.c's k_scale_min). */
static inline void qn_k_scale_min(const uint8_t *s, int i, int *sc, int *m)
{
    if (i < 4) {
        *sc = s[i] & 0x3f;
        *m = s[i + 4] & 0x3f;
    } else {
        *sc = (s[i + 4] & 0x0f) | ((s[i - 4] >> 2) & 0x30);
        *m = (s[i + 4] >> 4) | ((s[i] >> 2) & 0x30);
    }
}

/* Decodes a row of `in` columns of `type` blocks at src; also c[in/16],
 * c_g = m_b - z * s_g, the factor of the products' offsets (what
 * qn_offset_factors computes, here without a second pass). Always inlined: a
 * separate copy would be compiled for the baseline instruction set, not the
 * caller's. */
__attribute__((always_inline)) static inline void qn_decode_row(uint32_t type, const uint8_t *restrict src, int in,
                                                               uint8_t *restrict u, float *restrict s,
                                                               float *restrict m, float *restrict c)
{
    switch (type) {
    case LW_QN_Q8_0:
        for (int b = 0; b < in / 32; b++, src += 34) {
            float d = qn_half(src);
            for (int j = 0; j < 32; j++) u[b * 32 + j] = (uint8_t)(src[2 + j] ^ 0x80);   /* q + 128 */
            s[2 * b] = s[2 * b + 1] = d, m[b] = 0.0f, c[2 * b] = c[2 * b + 1] = -(128.0f * d);
        }
        break;
    case LW_QN_Q4_0:
        for (int b = 0; b < in / 32; b++, src += 18) {
            qn_nibbles(u + b * 32, src + 2);
            float d = qn_half(src);
            s[2 * b] = s[2 * b + 1] = d, m[b] = 0.0f, c[2 * b] = c[2 * b + 1] = -(8.0f * d);
        }
        break;
    case LW_QN_Q4_1:
        for (int b = 0; b < in / 32; b++, src += 20) {
            qn_nibbles(u + b * 32, src + 4);
            s[2 * b] = s[2 * b + 1] = qn_half(src), m[b] = c[2 * b] = c[2 * b + 1] = qn_half(src + 2);
        }
        break;
    case LW_QN_Q5_0:
        for (int b = 0; b < in / 32; b++, src += 22) {
            qn_nibbles(u + b * 32, src + 6);
            qn_fifth_bits(u + b * 32, src + 2);
            float d = qn_half(src);
            s[2 * b] = s[2 * b + 1] = d, m[b] = 0.0f, c[2 * b] = c[2 * b + 1] = -(16.0f * d);
        }
        break;
    case LW_QN_Q5_1:
        for (int b = 0; b < in / 32; b++, src += 24) {
            qn_nibbles(u + b * 32, src + 8);
            qn_fifth_bits(u + b * 32, src + 4);
            s[2 * b] = s[2 * b + 1] = qn_half(src), m[b] = c[2 * b] = c[2 * b + 1] = qn_half(src + 2);
        }
        break;
    case LW_QN_Q4_K:
    case LW_QN_Q5_K: {
        const int five = type == LW_QN_Q5_K;
        const size_t bytes = five ? 176 : 144;
        for (int B = 0; B < in / 256; B++, src += bytes) {
            float d = qn_half(src), dmin = qn_half(src + 2);
            const uint8_t *scales = src + 4, *qh = src + 16, *qs = src + (five ? 48 : 16);
            for (int i = 0; i < 8; i++) {
                int sc, mn;
                qn_k_scale_min(scales, i, &sc, &mn);
                uint8_t *ub = u + B * 256 + i * 32;
                const uint8_t *q = qs + (i / 2) * 32;
                const int shift = (i % 2) * 4;
                for (int l = 0; l < 32; l++) ub[l] = (uint8_t)((q[l] >> shift) & 0x0f);
                if (five)
                    for (int l = 0; l < 32; l++) ub[l] |= (uint8_t)(((qh[l] >> i) & 1) << 4);
                int g = B * 16 + i * 2;
                s[g] = s[g + 1] = d * (float)sc;
                m[B * 8 + i] = c[g] = c[g + 1] = -(dmin * (float)mn);
            }
        }
        break;
    }
    case LW_QN_Q6_K:
        for (int B = 0; B < in / 256; B++, src += 210) {
            const uint8_t *ql = src, *qh = src + 128;
            const int8_t *sc = (const int8_t *)(src + 192);
            float d = qn_half(src + 208);
            /* 32 columns k = 32 c + l: half h = c / 4, r = k % 128, so r / 64
             * and r / 32 are fixed per c and the bytes run contiguously */
            for (int c = 0; c < 8; c++) {
                int h = c / 4, r0 = (c % 4) * 32;
                const uint8_t *lo = ql + h * 64 + r0 % 64, *hi = qh + h * 32;
                const int sl = (r0 / 64) * 4, sh = (r0 / 32) * 2;
                uint8_t *ub = u + B * 256 + c * 32;
                for (int l = 0; l < 32; l++)
                    ub[l] = (uint8_t)(((lo[l] >> sl) & 0x0f) | ((hi[l] >> sh) & 0x03) << 4);
            }
            for (int g = 0; g < 16; g++) s[B * 16 + g] = d * (float)sc[g], c[B * 16 + g] = -(32.0f * s[B * 16 + g]);
            for (int b = 0; b < 8; b++) m[B * 8 + b] = 0.0f;
        }
        break;
    default:
        break;
    }
}

/* A decoded row widened to fp32: dst[i] = s_g (u_i - z) + m_b, the values
 * lw_dequantize gives, up to the rounding of that sum. */
static inline void qn_widen(uint32_t type, const uint8_t *u, const float *s, const float *m, int in, float *dst)
{
    int z = qn_zero(type);
    for (int i = 0; i < in; i++) {
        float t = s[i / 16] * (float)((int)u[i] - z);
        dst[i] = t + m[i / 32];
    }
}

#endif
