/* The AVX-512 BF16 kernels of op_matmul_bf16.h. Only these functions carry
 * the target attribute, so the rest of the build needs no -m flags and runs
 * on any x86-64; the dispatcher calls them only when the CPU has the features
 * (cpu_path.c). */
#include "op_matmul_bf16_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq")))
#define INLINE static inline __attribute__((always_inline))

/* The sums of four vectors as one 128-bit vector [sum a, sum b, sum c, sum d]:
 * ~5 instructions a sum instead of ~9 for four separate reductions, which
 * matters because every output pays one reduction (in/32 dot steps each). */
INLINE TARGET_BF16 __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m256 a2 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m256 b2 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    __m256 c2 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    __m256 d2 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a2, b2), _mm256_hadd_ps(c2, d2));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* TR rows of x against 4 rows of w (o0..o0+3, the last ones clamped to
 * out-1 and not stored when out is not a multiple of 4): 4*TR independent
 * accumulators, each loaded x vector used 4 times and each w vector TR times.
 * The pairs that vdpbf16ps sums are adjacent columns, which is how a
 * row-major weight lies, so the weights need no re-packing. */
INLINE TARGET_BF16 void fwd_tile(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b,
                                 int t0, int o0, const int TR)
{
    const int ld = w->ld, out = w->out;
    const uint16_t *wr[4];
    for (int c = 0; c < 4; c++) wr[c] = w->w + (size_t)(o0 + c < out ? o0 + c : out - 1) * ld;
    __m512 acc[4][4];
    for (int r = 0; r < TR; r++)
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < ld; k += 32) {
        __m512bh wv[4];
        for (int c = 0; c < 4; c++) wv[c] = (__m512bh)_mm512_load_si512((const void *)(wr[c] + k));
        for (int r = 0; r < TR; r++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xb + (size_t)(t0 + r) * ld + k));
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
        }
    }
    int nc = out - o0 < 4 ? out - o0 : 4;
    for (int r = 0; r < TR; r++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
        float *yr = y + (size_t)(t0 + r) * out + o0;
        for (int c = 0; c < nc; c++) yr[c] = s[c] + (b ? b[o0 + c] : 0.0f);
    }
}

TARGET_BF16 void bf16_forward_avx512(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T)
{
    /* Output tiles outside, row tiles inside: four weight rows stay in L1
     * while the (smaller) bf16 activations stream past them. */
    for (int o0 = 0; o0 < w->out; o0 += 4) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) fwd_tile(y, xb, w, b, t0, o0, 4);
        switch (T - t0) {
        case 3: fwd_tile(y, xb, w, b, t0, o0, 3); break;
        case 2: fwd_tile(y, xb, w, b, t0, o0, 2); break;
        case 1: fwd_tile(y, xb, w, b, t0, o0, 1); break;
        default: break;
        }
    }
}

/* 16 bf16 values (maskz: columns past `in` read as 0, nothing read there)
 * widened to fp32: bf16 is the top half of an fp32, so a zero-extend and a
 * shift are the whole conversion. */
INLINE TARGET_BF16 __m512 load_bf16x16(const uint16_t *p, __mmask16 m)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, (const void *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* dx[t, i0..i0+63] += sum_o dy[t,o] w[o, i0..i0+63] for TR rows: 4*TR
 * accumulators held across the whole sum over o. dy stays fp32 (fp32 FMA on
 * the widened weights), so the gradient carries no rounding of dy. */
INLINE TARGET_BF16 void bwd_tile(float *dx, const float *dy, const lw_bf16_matrix *w, int t0, int i0,
                                 const int TR)
{
    const int in = w->in, out = w->out, ld = w->ld;
    __mmask16 m[4];
    for (int j = 0; j < 4; j++) {
        int left = in - (i0 + 16 * j);
        m[j] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
    __m512 acc[4][4];
    for (int r = 0; r < TR; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = _mm512_maskz_loadu_ps(m[j], dx + (size_t)(t0 + r) * in + i0 + 16 * j);
    for (int o = 0; o < out; o++) {
        const uint16_t *wo = w->w + (size_t)o * ld + i0;
        __m512 wv[4];
        for (int j = 0; j < 4; j++) wv[j] = load_bf16x16(wo + 16 * j, m[j]);
        for (int r = 0; r < TR; r++) {
            __m512 g = _mm512_set1_ps(dy[(size_t)(t0 + r) * out + o]);
            for (int j = 0; j < 4; j++) acc[r][j] = _mm512_fmadd_ps(g, wv[j], acc[r][j]);
        }
    }
    for (int r = 0; r < TR; r++)
        for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(dx + (size_t)(t0 + r) * in + i0 + 16 * j, m[j], acc[r][j]);
}

TARGET_BF16 void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T)
{
    for (int i0 = 0; i0 < w->in; i0 += 64) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) bwd_tile(dx, dy, w, t0, i0, 4);
        switch (T - t0) {
        case 3: bwd_tile(dx, dy, w, t0, i0, 3); break;
        case 2: bwd_tile(dx, dy, w, t0, i0, 2); break;
        case 1: bwd_tile(dx, dy, w, t0, i0, 1); break;
        default: break;
        }
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void bf16_forward_avx512(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T) {}
void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T) {}
#endif
