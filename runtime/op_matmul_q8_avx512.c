/* The AVX-512 VNNI kernel of op_matmul_q8.h (target attribute only here; the
 * dispatcher calls it only on CPUs that have the features, cpu_path.c). */
#include "op_matmul_q8_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

/* [sum a, sum b, sum c, sum d] (as in op_matmul_bf16_avx512.c) */
INLINE TARGET_VNNI __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m256 a2 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    __m256 c2 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    __m256 d2 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a2, b2), _mm256_hadd_ps(c2, d2));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static const int32_t HALF_IDX[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};

/* TR rows of x against OC weight rows, 64 columns (two blocks) a step.
 * vpdpbusd multiplies UNSIGNED by signed bytes, so x goes in as qx + 128
 * (an xor with 0x80) and the surplus 128 * sum(qw) comes off at the end as
 * one per-row constant (corr). Each 32-bit lane sums 4 products of one
 * block, so a lane's int32 is exact and is scaled by its block's d before
 * the fp32 accumulation: lanes 0-7 carry the first block, 8-15 the second. */
INLINE TARGET_VNNI void fwd_tile(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w,
                                 const float *b, int t0, int o0, const int TR, const int OC)
{
    const int ld = w->ld, out = w->out, nb = ld / LW_Q8_BLOCK;
    const int8_t *wr[8];
    const float *dr[8];
    UNROLL
    for (int c = 0; c < OC; c++) {
        int o = o0 + c < out ? o0 + c : out - 1;
        wr[c] = w->q + (size_t)o * ld;
        dr[c] = w->d + (size_t)o * nb;
    }
    const __m512i flip = _mm512_set1_epi8((char)0x80), idx = _mm512_loadu_si512(HALF_IDX);
    __m512 acc[4][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < OC; c++) acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < ld; k += 64) {
        __m512i wv[8];
        __m512 se[8];
        UNROLL
        for (int c = 0; c < OC; c++) {
            wv[c] = _mm512_load_si512((const void *)(wr[c] + k));
            se[c] = _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(0x3, dr[c] + k / LW_Q8_BLOCK));
        }
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m512i xv = _mm512_xor_si512(_mm512_loadu_si512((const void *)(xq + (size_t)(t0 + r) * ld + k)), flip);
            UNROLL
            for (int c = 0; c < OC; c++) {
                __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), xv, wv[c]);
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), se[c], acc[r][c]);
            }
        }
    }
    int nc = out - o0 < OC ? out - o0 : OC;
    UNROLL
    for (int r = 0; r < TR; r++) {
        float s[8];
        UNROLL
        for (int c = 0; c < OC; c += 4)
            _mm_storeu_ps(s + c, hsum4(acc[r][c], acc[r][c + 1], acc[r][c + 2], acc[r][c + 3]));
        float *yr = y + (size_t)(t0 + r) * out + o0;
        UNROLL
        for (int c = 0; c < nc; c++) yr[c] = sx[t0 + r] * (s[c] - w->corr[o0 + c]) + (b ? b[o0 + c] : 0.0f);
    }
}

TARGET_VNNI void q8_forward_avx512(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b,
                                   int T)
{
    if (T == 1) {
        for (int o0 = 0; o0 < w->out; o0 += 8) fwd_tile(y, xq, sx, w, b, 0, o0, 1, 8);
        return;
    }
    for (int o0 = 0; o0 < w->out; o0 += 4) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) fwd_tile(y, xq, sx, w, b, t0, o0, 4, 4);
        switch (T - t0) {
        case 3: fwd_tile(y, xq, sx, w, b, t0, o0, 3, 4); break;
        case 2: fwd_tile(y, xq, sx, w, b, t0, o0, 2, 4); break;
        case 1: fwd_tile(y, xq, sx, w, b, t0, o0, 1, 4); break;
        default: break;
        }
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void q8_forward_avx512(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T) {}
#endif
