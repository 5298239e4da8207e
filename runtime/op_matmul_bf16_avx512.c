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
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

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

/* TR rows of x against OC rows of w (o0.., the last ones clamped to out-1
 * and not stored when out is not a multiple of OC): TR*OC independent
 * accumulators, each loaded x vector used OC times and each w vector TR
 * times. One row (decode) takes OC = 8 so that 8 chains cover vdpbf16ps's
 * latency. The pairs that vdpbf16ps sums are adjacent columns, which is how
 * a row-major weight lies, so the weights need no re-packing. */
INLINE TARGET_BF16 void fwd_tile(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b,
                                 int t0, int o0, const int TR, const int OC)
{
    const int ld = w->ld, out = w->out;
    const uint16_t *wr[8];
    UNROLL
    for (int c = 0; c < OC; c++) wr[c] = w->w + (size_t)(o0 + c < out ? o0 + c : out - 1) * ld;
    __m512 acc[4][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int c = 0; c < OC; c++) acc[r][c] = _mm512_setzero_ps();
    for (int k = 0; k < ld; k += 32) {
        __m512bh wv[8];
        UNROLL
        for (int c = 0; c < OC; c++) wv[c] = (__m512bh)_mm512_load_si512((const void *)(wr[c] + k));
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xb + (size_t)(t0 + r) * ld + k));
            UNROLL
            for (int c = 0; c < OC; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
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
        for (int c = 0; c < nc; c++) yr[c] = s[c] + (b ? b[o0 + c] : 0.0f);
    }
}

TARGET_BF16 void bf16_forward_avx512(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T)
{
    if (T == 1) {
        for (int o0 = 0; o0 < w->out; o0 += 8) fwd_tile(y, xb, w, b, 0, o0, 1, 8);
        return;
    }
    /* Output tiles outside, row tiles inside: four weight rows stay in L1
     * while the (smaller) bf16 activations stream past them. */
    for (int o0 = 0; o0 < w->out; o0 += 4) {
        int t0 = 0;
        for (; t0 + 4 <= T; t0 += 4) fwd_tile(y, xb, w, b, t0, o0, 4, 4);
        switch (T - t0) {
        case 3: fwd_tile(y, xb, w, b, t0, o0, 3, 4); break;
        case 2: fwd_tile(y, xb, w, b, t0, o0, 2, 4); break;
        case 1: fwd_tile(y, xb, w, b, t0, o0, 1, 4); break;
        default: break;
        }
    }
}

/* The backward reads 32 bf16 weights (one 512-bit load) as two fp32 vectors:
 * each 32-bit lane holds an (even, odd) column pair, and bf16 is the top half
 * of an fp32, so `lane << 16` is the even column and `lane & 0xffff0000` the
 * odd one: two cheap instructions per 32 weights where zero-extending 16 at a
 * time takes four. The accumulators then hold dx split into even and odd
 * columns, which is undone once per tile (below), not once per weight. */
static const int32_t EVEN_IDX[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int32_t ODD_IDX[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const int32_t LO_IDX[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int32_t HI_IDX[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

static __mmask16 cols_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

/* dx[t, i0..i0+63] += sum_{o in [o0,o1)} dy[t,o] w[o, i0..i0+63] for TR rows:
 * 4*TR accumulators (even/odd columns of two 32-column groups) held across
 * the sum over o. dy stays fp32 (fp32 FMA on the widened weights), so the
 * gradient carries no rounding of dy. */
INLINE TARGET_BF16 void bwd_tile(float *dx, const float *dy, const lw_bf16_matrix *w, int t0, int i0, int o0,
                                 int o1, const int TR)
{
    const int in = w->in, out = w->out, ld = w->ld;
    const __m512i even = _mm512_loadu_si512(EVEN_IDX), odd = _mm512_loadu_si512(ODD_IDX);
    __mmask16 m[4];
    UNROLL
    for (int j = 0; j < 4; j++) m[j] = cols_mask(in - (i0 + 16 * j));
    /* the second group may lie past the padded row (ld): load nothing there */
    const __mmask32 wm1 = i0 + 32 < ld ? (__mmask32)0xffffffffu : (__mmask32)0;
    __m512 acc[4][4]; /* [row][group g: 2g even, 2g+1 odd] */
    UNROLL
    for (int r = 0; r < TR; r++) {
        const float *d = dx + (size_t)(t0 + r) * in + i0;
        UNROLL
        for (int g = 0; g < 2; g++) {
            __m512 a = _mm512_maskz_loadu_ps(m[2 * g], d + 32 * g);
            __m512 c = _mm512_maskz_loadu_ps(m[2 * g + 1], d + 32 * g + 16);
            acc[r][2 * g] = _mm512_permutex2var_ps(a, even, c);
            acc[r][2 * g + 1] = _mm512_permutex2var_ps(a, odd, c);
        }
    }
    const __m512i hi_half = _mm512_set1_epi32((int)0xffff0000u);
    for (int o = o0; o < o1; o++) {
        const uint16_t *wo = w->w + (size_t)o * ld + i0;
        __m512i v0 = _mm512_load_si512((const void *)wo);
        __m512i v1 = _mm512_maskz_loadu_epi16(wm1, (const void *)(wo + 32));
        __m512 wv[4] = {_mm512_castsi512_ps(_mm512_slli_epi32(v0, 16)),
                        _mm512_castsi512_ps(_mm512_and_si512(v0, hi_half)),
                        _mm512_castsi512_ps(_mm512_slli_epi32(v1, 16)),
                        _mm512_castsi512_ps(_mm512_and_si512(v1, hi_half))};
        UNROLL
        for (int r = 0; r < TR; r++) {
            __m512 g = _mm512_set1_ps(dy[(size_t)(t0 + r) * out + o]);
            UNROLL
            for (int j = 0; j < 4; j++) acc[r][j] = _mm512_fmadd_ps(g, wv[j], acc[r][j]);
        }
    }
    const __m512i lo = _mm512_loadu_si512(LO_IDX), hi = _mm512_loadu_si512(HI_IDX);
    UNROLL
    for (int r = 0; r < TR; r++) {
        float *d = dx + (size_t)(t0 + r) * in + i0;
        UNROLL
        for (int g = 0; g < 2; g++) {
            _mm512_mask_storeu_ps(d + 32 * g, m[2 * g], _mm512_permutex2var_ps(acc[r][2 * g], lo, acc[r][2 * g + 1]));
            _mm512_mask_storeu_ps(d + 32 * g + 16, m[2 * g + 1],
                                  _mm512_permutex2var_ps(acc[r][2 * g], hi, acc[r][2 * g + 1]));
        }
    }
}

TARGET_BF16 void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T)
{
    /* Blocks of weight rows of ~1 MB (half the L2), so that the block stays in L2 while
     * every row tile of dy passes over it (a vocabulary-sized w does not). */
    int ob = (int)((1024 * 1024) / ((size_t)w->ld * 2));
    if (ob < 16) ob = 16;
    for (int o0 = 0; o0 < w->out; o0 += ob) {
        int o1 = o0 + ob < w->out ? o0 + ob : w->out;
        for (int i0 = 0; i0 < w->in; i0 += 64) {
            int t0 = 0;
            for (; t0 + 4 <= T; t0 += 4) bwd_tile(dx, dy, w, t0, i0, o0, o1, 4);
            switch (T - t0) {
            case 3: bwd_tile(dx, dy, w, t0, i0, o0, o1, 3); break;
            case 2: bwd_tile(dx, dy, w, t0, i0, o0, o1, 2); break;
            case 1: bwd_tile(dx, dy, w, t0, i0, o0, o1, 1); break;
            default: break;
            }
        }
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void bf16_forward_avx512(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T) {}
void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T) {}
#endif
