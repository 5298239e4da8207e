/* The AVX-512 VNNI kernel of op_matmul_q8.h (target attribute only here; the
 * dispatcher calls it only on CPUs that have the features, cpu_path.c). */
#include "op_matmul_q8.h"
#include "op_matmul_q8_kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

/* TR rows of x against NB blocks of 16 outputs of the packed copy (qp, dp):
 * for each 32-column block, 8 vpdpbusd steps of 4 columns (x's 4 bytes
 * broadcast, 16 outputs x 4 columns loaded) sum exactly into int32 lanes, one
 * per output; the block's 16 scales then take the int32 sums into the fp32
 * accumulators (one convert and one FMA per 32 columns). vpdpbusd multiplies
 * UNSIGNED by signed bytes: x arrives as qx + 128 (the dispatcher flips its
 * top bit) and the surplus 128 * sum(qw) d per output comes off at the end
 * (corr). 4 rows x 3 blocks: 12 int32 and 12 fp32 accumulators. */
INLINE TARGET_VNNI void panel(float *y, const uint8_t *xu, const float *sx, const lw_q8_matrix *w, const float *b,
                              int t0, int blk0, const int TR, const int NB)
{
    const int ld = w->ld, nq = ld / 4, nb = ld / LW_Q8_BLOCK, out = w->out;
    const int8_t *pb[8];
    const float *db[8];
    UNROLL
    for (int n = 0; n < NB; n++) {
        pb[n] = w->qp + (size_t)(blk0 + n) * nq * 64;
        db[n] = w->dp + (size_t)(blk0 + n) * nb * 16;
    }
    __m512 acc[4][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int n = 0; n < NB; n++) acc[r][n] = _mm512_setzero_ps();
    for (int bk = 0; bk < nb; bk++) {
        __m512i s[4][8];
        UNROLL
        for (int r = 0; r < TR; r++)
            UNROLL
            for (int n = 0; n < NB; n++) s[r][n] = _mm512_setzero_si512();
        UNROLL
        for (int qd = 0; qd < LW_Q8_BLOCK / 4; qd++) {
            int kq = bk * (LW_Q8_BLOCK / 4) + qd;
            __m512i wv[8];
            UNROLL
            for (int n = 0; n < NB; n++) wv[n] = _mm512_load_si512((const void *)(pb[n] + (size_t)kq * 64));
            UNROLL
            for (int r = 0; r < TR; r++) {
                uint32_t x4;
                memcpy(&x4, xu + (size_t)(t0 + r) * ld + (size_t)kq * 4, sizeof x4);
                __m512i xv = _mm512_set1_epi32((int)x4);
                UNROLL
                for (int n = 0; n < NB; n++) s[r][n] = _mm512_dpbusd_epi32(s[r][n], xv, wv[n]);
            }
        }
        UNROLL
        for (int n = 0; n < NB; n++) {
            __m512 dv = _mm512_load_ps(db[n] + (size_t)bk * 16);
            UNROLL
            for (int r = 0; r < TR; r++) acc[r][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][n]), dv, acc[r][n]);
        }
    }
    UNROLL
    for (int n = 0; n < NB; n++) {
        int o = (blk0 + n) * 16, left = out - o;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 corr = _mm512_maskz_loadu_ps(m, w->corr + o);
        __m512 bias = b ? _mm512_maskz_loadu_ps(m, b + o) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m512 v = _mm512_fmadd_ps(_mm512_set1_ps(sx[t0 + r]), _mm512_sub_ps(acc[r][n], corr), bias);
            _mm512_mask_storeu_ps(y + (size_t)(t0 + r) * out + o, m, v);
        }
    }
}

TARGET_VNNI void q8_quantize_rows_avx512(int8_t *xq, float *sx, const float *x, int T, int in, int ld)
{
    const __m512 half = _mm512_set1_ps(0.5f), lim = _mm512_set1_ps(127.0f), nlim = _mm512_set1_ps(-127.0f);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m128i flip = _mm_set1_epi8((char)0x80);
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * in;
        uint8_t *qr = (uint8_t *)xq + (size_t)t * ld;
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < in; i += 16) {
            __mmask16 m = in - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (in - i)) - 1);
            mx = _mm512_max_ps(mx, _mm512_and_ps(_mm512_maskz_loadu_ps(m, xr + i), absmask));
        }
        /* the same operations as lw_q8_quantize_row, in the same fp32 */
        float amax = _mm512_reduce_max_ps(mx), d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        sx[t] = d;
        const __m512 idv = _mm512_set1_ps(id);
        for (int i = 0; i < ld; i += 16) {
            int left = in - i;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), idv);
            v = _mm512_max_ps(_mm512_min_ps(v, lim), nlim);
            /* + 0.5 with v's sign (a non-negative v gets +0.5, as v >= 0 in C), then truncate */
            __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
            __m512 r = _mm512_add_ps(v, _mm512_mask_sub_ps(half, neg, _mm512_setzero_ps(), half));
            __m128i q = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r));
            _mm_storeu_si128((__m128i *)(void *)(qr + i), _mm_xor_si128(q, flip));
        }
    }
}

#define PANEL_ROWS(NB)                                                                                        \
    do {                                                                                                     \
        int t0 = 0;                                                                                          \
        for (; t0 + 4 <= T; t0 += 4) panel(y, xu, sx, w, b, t0, blk, 4, NB);                                 \
        if (T - t0 >= 2) panel(y, xu, sx, w, b, t0, blk, 2, NB), t0 += 2;                                    \
        if (T - t0 >= 1) panel(y, xu, sx, w, b, t0, blk, 1, NB);                                             \
    } while (0)

TARGET_VNNI void q8_forward_avx512(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b,
                                   int T)
{
    const uint8_t *xu = (const uint8_t *)xq; /* already offset by 128 (op_matmul_q8_kernels.h) */
    int nblk = (w->out + 15) / 16, blk = 0;
    if (T == 1) { /* decode: 8 blocks, the weights streamed once */
        for (; blk + 8 <= nblk; blk += 8) panel(y, xu, sx, w, b, 0, blk, 1, 8);
        for (; blk < nblk; blk++) panel(y, xu, sx, w, b, 0, blk, 1, 1);
        return;
    }
    for (; blk + 3 <= nblk; blk += 3) PANEL_ROWS(3);
    if (nblk - blk == 2) PANEL_ROWS(2);
    else if (nblk - blk == 1) PANEL_ROWS(1);
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void q8_forward_avx512(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T) {}
#endif
