/* The AVX-512 VNNI kernel of op_matmul_qn.h (target attribute only here;
 * the dispatcher calls it only on CPUs that have the features, cpu_path.c). */
#include "op_matmul_qn_decode.h"
#include "op_matmul_qn_kernels.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

/* sum_g xf_g c_g (qn_offsets), 16 groups a step, the tail masked. */
INLINE TARGET_VNNI float offsets(const float *xf, const float *c, int n)
{
    __m512 acc = _mm512_setzero_ps();
    for (int g = 0; g < n; g += 16) {
        __mmask16 m = n - g >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - g)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xf + g), _mm512_maskz_loadu_ps(m, c + g), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* One decoded row against TR rows of x from t0. Per 64 columns: one
 * vpdpbusd gives 16 exact int32 sums of 4 products u * qx (lane l: columns
 * 4l..4l+3, so lanes 4g..4g+3 belong to group g of 16); each lane is then
 * scaled by its group's s_g times its block's sx_b and summed in fp32. A
 * row of 32 columns more (in = 64k + 32) takes the same steps masked. */
INLINE TARGET_VNNI void row_tile(float *y, const lw_qn_act *a, int out, const float *b, int o, int t0, const int TR,
                                 qn_scratch sc)
{
    const int in = a->in;
    const __m512i gidx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 64 <= in; k += 64) {
        __m512i uv = _mm512_loadu_si512((const void *)(sc.u + k));
        __m512 sg = _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(_mm_loadu_ps(sc.s + k / 16)));
        UNROLL
        for (int r = 0; r < TR; r++) {
            const int8_t *qx = a->qx + (size_t)(t0 + r) * in;
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), uv, _mm512_loadu_si512((const void *)(qx + k)));
            __m512 sl = _mm512_loadu_ps(a->sxl + (size_t)(t0 + r) * (in / 4) + k / 4);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(sg, sl), acc[r]);
        }
    }
    if (k < in) { /* 32 columns: lanes 0-7 */
        const __mmask64 mb = 0xffffffffull;
        const __mmask16 ml = 0x00ff;
        __m512i uv = _mm512_maskz_loadu_epi8(mb, sc.u + k);
        __m512 sg = _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(_mm_castsi128_ps(
                                                    _mm_loadl_epi64((const __m128i *)(const void *)(sc.s + k / 16)))));
        UNROLL
        for (int r = 0; r < TR; r++) {
            const int8_t *qx = a->qx + (size_t)(t0 + r) * in;
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), uv, _mm512_maskz_loadu_epi8(mb, qx + k));
            __m512 sl = _mm512_maskz_loadu_ps(ml, a->sxl + (size_t)(t0 + r) * (in / 4) + k / 4);
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(sg, sl), acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < TR; r++) {
        float v = _mm512_reduce_add_ps(acc[r]) + offsets(a->xf + (size_t)(t0 + r) * (in / 16), sc.c, in / 16);
        y[(size_t)(t0 + r) * out + o] = v + (b ? b[o] : 0.0f);
    }
}

/* Rows [o0, o0 + n) (n <= 16) decoded into the panel (sc.up, sc.sp,
 * sc.cp), rows past n zero: they add nothing and are not stored. */
INLINE TARGET_VNNI void decode_panel(const lw_qn_segment *seg, int in, int o0, int n, qn_scratch sc)
{
    uint32_t *up = (uint32_t *)(void *)sc.up;
    for (int j = 0; j < 16; j++) {
        if (j < n) {
            qn_decode_row(seg->type, seg->data + (size_t)(o0 + j - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
        } else {
            memset(sc.u, 0, (size_t)in);
            memset(sc.s, 0, sizeof(float) * (size_t)(in / 16));
            memset(sc.c, 0, sizeof(float) * (size_t)(in / 16));
        }
        for (int c = 0; c < in / 4; c++) memcpy(up + (size_t)c * 16 + j, sc.u + 4 * c, 4);
        for (int g = 0; g < in / 16; g++) sc.sp[g * 16 + j] = sc.s[g], sc.cp[g * 16 + j] = sc.c[g];
    }
}

/* TR rows of x against the 16 decoded rows of the panel: per 4 columns,
 * x's 4 bytes broadcast and one vpdpbusd for 16 outputs (u unsigned, qx
 * signed); per GS groups of 16 columns sharing one scale (GS = 2: a whole
 * block of 32, every format but Q6_K, whose scales are per 16), the exact
 * int32 sums (at most 32 * 255 * 127) scaled by the 16 rows' s_g times the
 * block's sx_b, and the offsets' xf_g * c_g added. */
INLINE TARGET_VNNI void panel_tile(float *y, const lw_qn_act *a, int out, const float *b, int o0, int n, int t0,
                                   const int TR, const int GS, qn_scratch sc)
{
    const int in = a->in, ng = in / 16;
    __m512 acc[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g += GS) {
        __m512i is[4];
        UNROLL
        for (int r = 0; r < TR; r++) is[r] = _mm512_setzero_si512();
        UNROLL
        for (int q = 0; q < 4 * GS; q++) {
            __m512i wv = _mm512_load_si512((const void *)(sc.up + ((size_t)g * 4 + q) * 64));
            UNROLL
            for (int r = 0; r < TR; r++) {
                uint32_t x4;
                memcpy(&x4, a->qx + (size_t)(t0 + r) * in + g * 16 + q * 4, 4);
                is[r] = _mm512_dpbusd_epi32(is[r], wv, _mm512_set1_epi32((int)x4));
            }
        }
        __m512 sg = _mm512_load_ps(sc.sp + (size_t)g * 16), cg = _mm512_load_ps(sc.cp + (size_t)g * 16);
        UNROLL
        for (int r = 0; r < TR; r++) {
            const float *xf = a->xf + (size_t)(t0 + r) * ng + g;
            __m512 f = _mm512_mul_ps(sg, _mm512_set1_ps(a->sx[(size_t)(t0 + r) * (in / 32) + g / 2]));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r]), f, acc[r]);
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(GS == 2 ? xf[0] + xf[1] : xf[0]), cg, acc[r]);
        }
    }
    __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    __m512 bias = b ? _mm512_maskz_loadu_ps(m, b + o0) : _mm512_setzero_ps();
    UNROLL
    for (int r = 0; r < TR; r++) _mm512_mask_storeu_ps(y + (size_t)(t0 + r) * out + o0, m, _mm512_add_ps(acc[r], bias));
}

/* All T rows against one panel, GS as panel_tile's. */
INLINE TARGET_VNNI void panel_rows(float *y, const lw_qn_act *a, int out, const float *b, int o0, int n,
                                   const int GS, qn_scratch sc)
{
    int t = 0, T = a->T;
    for (; t + 4 <= T; t += 4) panel_tile(y, a, out, b, o0, n, t, 4, GS, sc);
    for (; t + 2 <= T; t += 2) panel_tile(y, a, out, b, o0, n, t, 2, GS, sc);
    for (; t < T; t++) panel_tile(y, a, out, b, o0, n, t, 1, GS, sc);
}

/* --- decode (T = 1) on the 32-column formats, blocks expanded in registers -- */

/* The 32 u of one block as 32 bytes in a register (no store: a row decoded
 * to memory and loaded back 64 bytes at a time stalls on store forwarding,
 * which made that half of the decode step's time). */
INLINE TARGET_VNNI __m256i block_u(uint32_t type, const uint8_t *blk)
{
    const __m128i lo4 = _mm_set1_epi8(0x0f);
    switch (type) {
    case LW_QN_Q8_0:
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 2)), _mm256_set1_epi8((char)0x80));
    case LW_QN_Q5_0:
    case LW_QN_Q5_1: {
        const int off = type == LW_QN_Q5_0 ? 2 : 4;
        __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(blk + off + 4));
        __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), _mm_and_si128(q, lo4));
        uint32_t qh;
        memcpy(&qh, blk + off, 4);
        return _mm256_mask_blend_epi8((__mmask32)qh, u, _mm256_or_si256(u, _mm256_set1_epi8(0x10)));
    }
    default: { /* Q4_0, Q4_1 */
        __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(blk + (type == LW_QN_Q4_0 ? 2 : 4)));
        return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), _mm_and_si128(q, lo4));
    }
    }
}

/* The block's s (its d) and c (m_b - z * d), as qn_decode_row gives them. */
INLINE TARGET_VNNI void block_sc(uint32_t type, const uint8_t *blk, float *sv, float *cv)
{
    float d = qn_half(blk);
    *sv = d;
    switch (type) {
    case LW_QN_Q8_0: *cv = -(128.0f * d); break;
    case LW_QN_Q4_0: *cv = -(8.0f * d); break;
    case LW_QN_Q5_0: *cv = -(16.0f * d); break;
    default: *cv = qn_half(blk + 2); break; /* Q4_1, Q5_1: the min */
    }
}

static bool fused_row_format(uint32_t type)
{
    return type == LW_QN_Q8_0 || type == LW_QN_Q4_0 || type == LW_QN_Q4_1 || type == LW_QN_Q5_0 ||
           type == LW_QN_Q5_1;
}

/* y[0, o] for o in [n0, n1), 64 columns (two blocks) a vpdpbusd. */
INLINE TARGET_VNNI void fused_rows(float *y, const lw_qn_act *a, const lw_qn_segment *seg, const float *b, int n0,
                                   int n1)
{
    const int in = a->in, nb = in / 32;
    const size_t bb = seg->row_bytes / (size_t)nb;
    const uint32_t type = seg->type;
    for (int o = n0; o < n1; o++) {
        const uint8_t *row = seg->data + (size_t)(o - seg->row0) * seg->row_bytes;
        __m512 acc = _mm512_setzero_ps();
        float off = 0.0f;
        int k = 0;
        for (; k + 2 <= nb; k += 2) {
            const uint8_t *b0 = row + (size_t)k * bb, *b1 = b0 + bb;
            __m512i uv = _mm512_inserti64x4(_mm512_castsi256_si512(block_u(type, b0)), block_u(type, b1), 1);
            float s0, c0, s1, c1;
            block_sc(type, b0, &s0, &c0), block_sc(type, b1, &s1, &c1);
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), uv, _mm512_loadu_si512((const void *)(a->qx + k * 32)));
            __m512 sv = _mm512_mask_blend_ps((__mmask16)0xff00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(sv, _mm512_loadu_ps(a->sxl + k * 8)), acc);
            off += c0 * (a->xf[2 * k] + a->xf[2 * k + 1]) + c1 * (a->xf[2 * k + 2] + a->xf[2 * k + 3]);
        }
        if (k < nb) {
            const uint8_t *b0 = row + (size_t)k * bb;
            float s0, c0;
            block_sc(type, b0, &s0, &c0);
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_castsi256_si512(block_u(type, b0)),
                                            _mm512_maskz_loadu_epi8((__mmask64)0xffffffffull, a->qx + k * 32));
            __m512 sl = _mm512_maskz_loadu_ps((__mmask16)0x00ff, a->sxl + k * 8);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(_mm512_set1_ps(s0), sl), acc);
            off += c0 * (a->xf[2 * k] + a->xf[2 * k + 1]);
        }
        y[o] = _mm512_reduce_add_ps(acc) + off + (b ? b[o] : 0.0f);
    }
}

TARGET_VNNI void qn_forward_avx512(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b,
                                   int n0, int n1, qn_scratch sc)
{
    const int in = a->in, T = a->T;
    if (T >= 2) { /* prefill: 16 rows decoded side by side, x read 16 outputs at a time */
        for (int o0 = n0; o0 < n1; o0 += 16) {
            int n = n1 - o0 < 16 ? n1 - o0 : 16;
            decode_panel(seg, in, o0, n, sc);
            if (seg->type == LW_QN_Q6_K) panel_rows(y, a, out, b, o0, n, 1, sc);
            else panel_rows(y, a, out, b, o0, n, 2, sc);   /* one scale per 32 columns */
        }
        return;
    }
    if (T == 1 && fused_row_format(seg->type)) {
        fused_rows(y, a, seg, b, n0, n1);
        return;
    }
    for (int o = n0; o < n1; o++) { /* decode: one row at a time, streamed once */
        qn_decode_row(seg->type, seg->data + (size_t)(o - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
        int t = 0;
        for (; t + 4 <= T; t += 4) row_tile(y, a, out, b, o, t, 4, sc);
        for (; t < T; t++) row_tile(y, a, out, b, o, t, 1, sc);
    }
}

/* lw_qn_act_quantize's blocks, 16 lanes at a time, with the scalar loop's
 * operations in the same fp32 (max of |v|, d = amax / 127, 1 / d, v * id
 * clamped to +-127, + 0.5 with v's sign, truncated): the same bytes and
 * scales bit for bit (tests/check_matmul_qp.c). The scalar loop (libm fmaxf
 * a value) was most of a packed T = 64 product's time. */
TARGET_VNNI void qn_act_quantize_avx512(lw_qn_act *a, const float *x, int T, int xin, int in)
{
    const __m512 half = _mm512_set1_ps(0.5f), lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), zero = _mm512_setzero_ps();
    const int nb = in / 32;
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * xin;
        for (int bk = 0; bk < nb; bk++) {
            const int c0 = bk * 32, left = xin - c0;
            const __mmask16 m0 = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? (__mmask16)0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            __m512 v0 = _mm512_maskz_loadu_ps(m0, xr + c0), v1 = _mm512_maskz_loadu_ps(m1, xr + c0 + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask)));
            float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            const __m512 idv = _mm512_set1_ps(id);
            __m512i q[2];
            __m512 vs[2] = {v0, v1};
            for (int h = 0; h < 2; h++) {
                __m512 v = _mm512_max_ps(_mm512_min_ps(_mm512_mul_ps(vs[h], idv), lim), nlim);
                __mmask16 neg = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
                q[h] = _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_mask_sub_ps(half, neg, zero, half)));
            }
            const size_t b = (size_t)t * nb + (size_t)bk;
            _mm_storeu_si128((__m128i *)(void *)(a->qx + b * 32), _mm512_cvtepi32_epi8(q[0]));
            _mm_storeu_si128((__m128i *)(void *)(a->qx + b * 32 + 16), _mm512_cvtepi32_epi8(q[1]));
            a->sx[b] = d;
            a->xf[2 * b] = d * (float)_mm512_reduce_add_epi32(q[0]);
            a->xf[2 * b + 1] = d * (float)_mm512_reduce_add_epi32(q[1]);
            _mm256_storeu_ps(a->sxl + b * 8, _mm256_set1_ps(d));
        }
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void qn_forward_avx512(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                       int n1, qn_scratch sc) {}
void qn_act_quantize_avx512(lw_qn_act *a, const float *x, int T, int xin, int in) {}
#endif
