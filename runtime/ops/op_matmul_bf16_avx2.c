/* The AVX2+FMA kernels of op_matmul_bf16.h, for CPUs without AVX-512 BF16:
 * the weights are still read as bf16 (half the bytes of fp32) and widened to
 * fp32 in registers, the products are fp32 FMAs. Compiled with a target
 * attribute like the AVX-512 file, so the build needs no -m flags. */
#include "op_matmul_bf16.h"
#include "op_matmul_bf16_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

/* 8 bf16 values widened to fp32 (bf16 is the top half of an fp32). */
INLINE TARGET_AVX2 __m256 load_bf16x8(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

INLINE TARGET_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

/* TR rows of x against OC rows of w (clamped to out-1, not stored, past the
 * end) with NA accumulators per pair, summed at the end: enough independent
 * FMA chains (TR*OC*NA = 8) to cover the FMA latency with AVX2's 16
 * registers. One row (decode) takes OC = 4, NA = 2; more rows take OC = 2. */
INLINE TARGET_AVX2 void fwd_tile(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int t0,
                                 int o0, const int TR, const int OC, const int NA)
{
    const int ld = w->ld, out = w->out;
    const uint16_t *wr[4];
    UNROLL
    for (int c = 0; c < OC; c++) wr[c] = w->w + (size_t)(o0 + c < out ? o0 + c : out - 1) * ld;
    __m256 acc[4][4][2];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < OC; c++)
            UNROLL
            for (int a = 0; a < NA; a++) acc[r][c][a] = _mm256_setzero_ps();
    /* ld is a multiple of 32, so also of 8 * NA */
    for (int k = 0; k < ld; k += 8 * NA) {
        UNROLL
        for (int a = 0; a < NA; a++) {
            __m256 wv[4];
            UNROLL
            for (int c = 0; c < OC; c++) wv[c] = load_bf16x8(wr[c] + k + 8 * a);
            UNROLL
            for (int r = 0; r < TR; r++) {
                __m256 xv = _mm256_loadu_ps(xf + (size_t)(t0 + r) * ld + k + 8 * a);
                UNROLL
                for (int c = 0; c < OC; c++) acc[r][c][a] = _mm256_fmadd_ps(xv, wv[c], acc[r][c][a]);
            }
        }
    }
    int nc = out - o0 < OC ? out - o0 : OC;
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < nc; c++) {
            __m256 s = acc[r][c][0];
            UNROLL
            for (int a = 1; a < NA; a++) s = _mm256_add_ps(s, acc[r][c][a]);
            y[(size_t)(t0 + r) * out + o0 + c] = hsum8(s) + (b ? b[o0 + c] : 0.0f);
        }
}

TARGET_AVX2 void bf16_forward_avx2(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T)
{
    if (T == 1) {
        for (int o0 = 0; o0 < w->out; o0 += 4) fwd_tile(y, xf, w, b, 0, o0, 1, 4, 2);
        return;
    }
    for (int o0 = 0; o0 < w->out; o0 += 2) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) fwd_tile(y, xf, w, b, t0, o0, 4, 2, 1);
        switch (T - t0) {
        case 3: fwd_tile(y, xf, w, b, t0, o0, 3, 2, 1); break;
        case 2: fwd_tile(y, xf, w, b, t0, o0, 2, 2, 1); break;
        case 1: fwd_tile(y, xf, w, b, t0, o0, 1, 2, 1); break;
        default: break;
        }
    }
}

/* dx[t, i0..i0+31] += sum_o dy[t,o] w[o, i0..i0+31] for TR <= 2 rows: 8
 * accumulators over the whole sum. Columns past `in` in the last block go
 * through the scalar loop below (AVX2 has no cheap masked 16-bit loads). */
INLINE TARGET_AVX2 void bwd_tile(float *dx, const float *dy, const lw_bf16_matrix *w, int t0, int i0,
                                 const int TR)
{
    const int in = w->in, out = w->out, ld = w->ld;
    __m256 acc[2][4];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int j = 0; j < 4; j++) acc[r][j] = _mm256_loadu_ps(dx + (size_t)(t0 + r) * in + i0 + 8 * j);
    for (int o = 0; o < out; o++) {
        const uint16_t *wo = w->w + (size_t)o * ld + i0;
        __m256 wv[4];
        UNROLL
        for (int j = 0; j < 4; j++) wv[j] = load_bf16x8(wo + 8 * j);
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m256 g = _mm256_set1_ps(dy[(size_t)(t0 + r) * out + o]);
            UNROLL
            for (int j = 0; j < 4; j++) acc[r][j] = _mm256_fmadd_ps(g, wv[j], acc[r][j]);
        }
    }
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(dx + (size_t)(t0 + r) * in + i0 + 8 * j, acc[r][j]);
}

TARGET_AVX2 void bf16_backward_x_avx2(float *dx, const float *dy, const lw_bf16_matrix *w, int T)
{
    const int in = w->in, out = w->out, ld = w->ld;
    int full = in / 32 * 32;
    for (int i0 = 0; i0 < full; i0 += 32) {
        int t0 = 0;
        for (; t0 + 2 <= T; t0 += 2) bwd_tile(dx, dy, w, t0, i0, 2);
        if (t0 < T) bwd_tile(dx, dy, w, t0, i0, 1);
    }
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            float g = dy[(size_t)t * out + o];
            const uint16_t *wo = w->w + (size_t)o * ld;
            for (int i = full; i < in; i++) dx[(size_t)t * in + i] += g * lw_f32_from_bf16(wo[i]);
        }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void bf16_forward_avx2(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T) {}
void bf16_backward_x_avx2(float *dx, const float *dy, const lw_bf16_matrix *w, int T) {}
#endif
