/* The AVX2 kernel of op_matmul_q8.h, for CPUs without VNNI (target attribute
 * only here). */
#include "op_matmul_q8.h"
#include "op_matmul_q8_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

INLINE TARGET_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

/* One 32-column step is one block: vpmaddubsw wants unsigned x signed, so
 * |qx| goes in with qw carrying qx's sign (llama.cpp's trick); with
 * |q| <= 127 a pair sums to at most 2 * 127 * 127 = 32258, so the 16-bit
 * saturating add never saturates and the block sum is exact. */
INLINE TARGET_AVX2 void fwd_tile(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w,
                                 const float *b, int t0, int o0, const int TR, const int OC)
{
    const int ld = w->ld, out = w->out, nb = ld / LW_Q8_BLOCK;
    const int8_t *wr[4];
    const float *dr[4];
    UNROLL
    for (int c = 0; c < OC; c++) {
        int o = o0 + c < out ? o0 + c : out - 1;
        wr[c] = w->q + (size_t)o * ld;
        dr[c] = w->d + (size_t)o * nb;
    }
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][4];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < OC; c++) acc[r][c] = _mm256_setzero_ps();
    for (int k = 0; k < ld; k += LW_Q8_BLOCK) {
        __m256i wv[4];
        __m256 dv[4];
        UNROLL
        for (int c = 0; c < OC; c++) {
            wv[c] = _mm256_load_si256((const __m256i *)(const void *)(wr[c] + k));
            dv[c] = _mm256_broadcast_ss(dr[c] + k / LW_Q8_BLOCK);
        }
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(xq + (size_t)(t0 + r) * ld + k));
            __m256i ax = _mm256_sign_epi8(xv, xv);
            UNROLL
            for (int c = 0; c < OC; c++) {
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv[c], xv)), ones);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), dv[c], acc[r][c]);
            }
        }
    }
    int nc = out - o0 < OC ? out - o0 : OC;
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < nc; c++)
            y[(size_t)(t0 + r) * out + o0 + c] = sx[t0 + r] * hsum8(acc[r][c]) + (b ? b[o0 + c] : 0.0f);
}

TARGET_AVX2 void q8_forward_avx2(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b,
                                 int T)
{
    if (T == 1) {
        for (int o0 = 0; o0 < w->out; o0 += 4) fwd_tile(y, xq, sx, w, b, 0, o0, 1, 4);
        return;
    }
    for (int o0 = 0; o0 < w->out; o0 += 2) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) fwd_tile(y, xq, sx, w, b, t0, o0, 4, 2);
        switch (T - t0) {
        case 3: fwd_tile(y, xq, sx, w, b, t0, o0, 3, 2); break;
        case 2: fwd_tile(y, xq, sx, w, b, t0, o0, 2, 2); break;
        case 1: fwd_tile(y, xq, sx, w, b, t0, o0, 1, 2); break;
        default: break;
        }
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void q8_forward_avx2(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T) {}
#endif
