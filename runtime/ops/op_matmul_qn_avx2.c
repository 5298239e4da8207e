/* The AVX2 kernel of op_matmul_qn.h, for CPUs without VNNI (target
 * attribute only here). */
#include "op_matmul_qn_decode.h"
#include "op_matmul_qn_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

INLINE TARGET_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

/* sum_g xf_g c_g (qn_offsets), 8 groups a step. */
INLINE TARGET_AVX2 float offsets(const float *xf, const float *c, int n)
{
    __m256 acc = _mm256_setzero_ps();
    int g = 0;
    for (; g + 8 <= n; g += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(xf + g), _mm256_loadu_ps(c + g), acc);
    float r = hsum8(acc);
    for (; g < n; g++) r += xf[g] * c[g];
    return r;
}

/* Per 16 columns (one group g): u and qx widened to 16 bits, vpmaddwd sums
 * pairs exactly into 8 int32 lanes (u <= 255, |qx| <= 127: no saturation,
 * which vpmaddubsw would hit on Q8_0's u up to 255), scaled by s_g * sx_b. */
INLINE TARGET_AVX2 void row_tile(float *y, const lw_qn_act *a, int out, const float *b, int o, int t0, const int TR,
                                 qn_scratch sc)
{
    const int in = a->in;
    __m256 acc[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    for (int k = 0; k < in; k += 16) {
        __m256i uv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(sc.u + k)));
        const float s = sc.s[k / 16];
        UNROLL
        for (int r = 0; r < TR; r++) {
            const int8_t *qx = a->qx + (size_t)(t0 + r) * in + k;
            __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)qx));
            __m256i p = _mm256_madd_epi16(uv, xv);
            __m256 f = _mm256_set1_ps(s * a->sx[(size_t)(t0 + r) * (in / 32) + k / 32]);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < TR; r++) {
        float v = hsum8(acc[r]) + offsets(a->xf + (size_t)(t0 + r) * (in / 16), sc.c, in / 16);
        y[(size_t)(t0 + r) * out + o] = v + (b ? b[o] : 0.0f);
    }
}

/* row_tile for two outputs o and o + 1 (rows decoded into sc and sc2): each
 * row of x is loaded and widened once for both; each output's sum is
 * row_tile's, operation for operation. */
INLINE TARGET_AVX2 void row_tile2(float *y, const lw_qn_act *a, int out, const float *b, int o, int t0, const int TR,
                                  qn_scratch sc, qn_scratch sc2)
{
    const int in = a->in;
    __m256 acc[4], acc2[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = acc2[r] = _mm256_setzero_ps();
    for (int k = 0; k < in; k += 16) {
        __m256i uv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(sc.u + k)));
        __m256i uv2 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(sc2.u + k)));
        const float s = sc.s[k / 16], s2 = sc2.s[k / 16];
        UNROLL
        for (int r = 0; r < TR; r++) {
            const int8_t *qx = a->qx + (size_t)(t0 + r) * in + k;
            __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)qx));
            const float sx = a->sx[(size_t)(t0 + r) * (in / 32) + k / 32];
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(uv, xv)), _mm256_set1_ps(s * sx), acc[r]);
            acc2[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(uv2, xv)), _mm256_set1_ps(s2 * sx),
                                      acc2[r]);
        }
    }
    UNROLL
    for (int r = 0; r < TR; r++) {
        const float *xf = a->xf + (size_t)(t0 + r) * (in / 16);
        float v = hsum8(acc[r]) + offsets(xf, sc.c, in / 16), v2 = hsum8(acc2[r]) + offsets(xf, sc2.c, in / 16);
        y[(size_t)(t0 + r) * out + o] = v + (b ? b[o] : 0.0f);
        y[(size_t)(t0 + r) * out + o + 1] = v2 + (b ? b[o + 1] : 0.0f);
    }
}

TARGET_AVX2 void qn_forward_avx2(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b,
                                 int n0, int n1, qn_scratch sc)
{
    const int in = a->in, T = a->T;
    /* the second row's decode in the AVX-512 panel's room, unused on this
     * path: up holds 16 in bytes, sp and cp in floats each */
    qn_scratch sc2 = {.u = sc.up, .s = sc.sp, .m = sc.sp + in / 16, .c = sc.cp};
    int o = n0;
    for (; o + 2 <= n1; o += 2) {
        const uint8_t *row = seg->data + (size_t)(o - seg->row0) * seg->row_bytes;
        qn_decode_row(seg->type, row, in, sc.u, sc.s, sc.m, sc.c);
        qn_decode_row(seg->type, row + seg->row_bytes, in, sc2.u, sc2.s, sc2.m, sc2.c);
        int t = 0;
        for (; t + 4 <= T; t += 4) row_tile2(y, a, out, b, o, t, 4, sc, sc2);
        for (; t < T; t++) row_tile2(y, a, out, b, o, t, 1, sc, sc2);
    }
    for (; o < n1; o++) {
        qn_decode_row(seg->type, seg->data + (size_t)(o - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
        int t = 0;
        for (; t + 4 <= T; t += 4) row_tile(y, a, out, b, o, t, 4, sc);
        for (; t < T; t++) row_tile(y, a, out, b, o, t, 1, sc);
    }
}

/* --- backward: dx += dy @ w on decoded rows (qn_backward_rows) --------------
 * AVX only, no FMA: each element sees the scalar reference's operations in
 * its order (the group's four products summed left to right, then added to
 * dx), so the results are bit for bit the scalar kernel's. */
#define TARGET_BWD __attribute__((target("avx2")))

/* acc + (g0 w0 + g1 w1 + g2 w2 + g3 w3), left to right */
INLINE TARGET_BWD __m256 group4(__m256 acc, const float *g, __m256 w0, __m256 w1, __m256 w2, __m256 w3)
{
    __m256 s = _mm256_mul_ps(_mm256_set1_ps(g[0]), w0);
    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(g[1]), w1));
    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(g[2]), w2));
    s = _mm256_add_ps(s, _mm256_mul_ps(_mm256_set1_ps(g[3]), w3));
    return _mm256_add_ps(acc, s);
}

/* TR rows of dx, 8 columns from i, over the n rows of wf. */
INLINE TARGET_BWD void bwd_tile(float *dx, int in, const float *dy, int ldy, const float *wf, int ld, int n, int i,
                                int TR)
{
    __m256 acc[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = _mm256_loadu_ps(dx + (size_t)r * in + i);
    int k = 0;
    for (; k + 4 <= n; k += 4) {
        const float *w = wf + (size_t)k * ld + i;
        __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + ld), w2 = _mm256_loadu_ps(w + 2 * (size_t)ld),
               w3 = _mm256_loadu_ps(w + 3 * (size_t)ld);
        UNROLL
        for (int r = 0; r < TR; r++) acc[r] = group4(acc[r], dy + (size_t)r * ldy + k, w0, w1, w2, w3);
    }
    for (; k < n; k++) {
        __m256 w = _mm256_loadu_ps(wf + (size_t)k * ld + i);
        UNROLL
        for (int r = 0; r < TR; r++)
            acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(_mm256_set1_ps(dy[(size_t)r * ldy + k]), w));
    }
    UNROLL
    for (int r = 0; r < TR; r++) _mm256_storeu_ps(dx + (size_t)r * in + i, acc[r]);
}

/* One row of w in fp32, as op_matmul_qn.c's dequant_row: s_g * (u - z), then
 * + m_b, two roundings as there (no FMA), 16 columns a step. */
TARGET_BWD void qn_dequant_row_avx2(const lw_qn_segment *seg, int o, int in, qn_scratch sc, float *dst)
{
    qn_decode_row(seg->type, seg->data + (size_t)(o - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
    const __m256i z = _mm256_set1_epi32(qn_zero(seg->type));
    for (int g = 0; g < in / 16; g++) {
        __m128i u = _mm_loadu_si128((const __m128i *)(const void *)(sc.u + 16 * g));
        __m256 s = _mm256_set1_ps(sc.s[g]), m = _mm256_set1_ps(sc.m[g / 2]);
        __m256 lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(u), z));
        __m256 hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(u, 8)), z));
        _mm256_storeu_ps(dst + 16 * g, _mm256_add_ps(_mm256_mul_ps(s, lo), m));
        _mm256_storeu_ps(dst + 16 * g + 8, _mm256_add_ps(_mm256_mul_ps(s, hi), m));
    }
}

enum { BWD_COLS = 64 };   /* columns of wf a block: its rows stay in L1 over every row of dx */

TARGET_BWD void qn_backward_rows_avx2(float *dx, int in, const float *dy, int ldy, const float *wf, int ld, int n,
                                      int T)
{
    for (int i0 = 0; i0 < in; i0 += BWD_COLS) {
        int i1 = in - i0 < BWD_COLS ? in : i0 + BWD_COLS, v1 = i0 + (i1 - i0) / 8 * 8;
        int t = 0;
        for (; t + 4 <= T; t += 4)
            for (int i = i0; i < v1; i += 8)
                bwd_tile(dx + (size_t)t * in, in, dy + (size_t)t * ldy, ldy, wf, ld, n, i, 4);
        for (; t < T; t++)
            for (int i = i0; i < v1; i += 8)
                bwd_tile(dx + (size_t)t * in, in, dy + (size_t)t * ldy, ldy, wf, ld, n, i, 1);
        if (v1 < i1) qn_backward_cols_scalar(dx, in, dy, ldy, wf, ld, n, T, v1, i1);
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void qn_forward_avx2(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                     int n1, qn_scratch sc) {}
void qn_backward_rows_avx2(float *dx, int in, const float *dy, int ldy, const float *wf, int ld, int n, int T) {}
void qn_dequant_row_avx2(const lw_qn_segment *seg, int o, int in, qn_scratch sc, float *dst) {}
#endif
