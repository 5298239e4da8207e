/* The AVX-512 kernels of op_matmul_bf16.h. Only these functions carry
 * the target attribute, so the rest of the build needs no -m flags and runs
 * on any x86-64; the dispatcher calls them only when the CPU has the features
 * (cpu_path.c). */
#include "op_matmul_bf16.h"
#include "op_matmul_bf16_kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq")))
#define INLINE static inline __attribute__((always_inline))
/* The tile loops have constant trip counts once inlined; GCC -O2 does not
 * unroll them by itself and would then keep the accumulators in memory. */
#define UNROLL _Pragma("GCC unroll 8")

/* ---- forward, fp32 FMA on widened bf16 (the path's kernel) ------------
 * TR rows of x against NB blocks of 16 outputs of the packed copy p: one
 * 64-byte load is a column pair (2k, 2k+1) for 16 outputs; `<< 16` widens
 * the even column and `& 0xffff0000` the odd one to fp32 (bf16 is the top
 * half of an fp32), and each row's x[2k], x[2k+1] are broadcast into FMAs.
 * Measured on this machine's CPU (docs/perf.md), vpdpbf16ps retires half
 * the flops of two-port fp32 FMA, so widening and FMA is the faster way to
 * use bf16 weights here, and x stays exact. Each accumulator holds 16
 * outputs, stored as they are: no horizontal sums. 8 rows x 2 blocks: 16
 * accumulators, 4 widened weight vectors, 2 broadcasts. Column pairs
 * [kp0, kp1) only: a later range adds onto what an earlier one stored in y,
 * and the bias comes with the last. */
INLINE TARGET_BF16 void fma_panel(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int t0,
                                  int blk0, int kp0, int kp1, const int TR, const int NB)
{
    const int ld = w->ld, ldp = w->ld / 2, out = w->out;
    const uint16_t *pb[8];
    UNROLL
    for (int n = 0; n < NB; n++) pb[n] = w->p + (size_t)(blk0 + n) * ldp * 32;
    const __m512i hi_half = _mm512_set1_epi32((int)0xffff0000u);
    __mmask16 msk[8];
    UNROLL
    for (int n = 0; n < NB; n++) {
        int left = out - (blk0 + n) * 16;
        msk[n] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    }
    __m512 acc[8][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int n = 0; n < NB; n++)
            acc[r][n] = kp0 == 0 ? _mm512_setzero_ps()
                                 : _mm512_maskz_loadu_ps(msk[n], y + (size_t)(t0 + r) * out + (blk0 + n) * 16);
    for (int kp = kp0; kp < kp1; kp++) {
        __m512 we[8], wo[8];
        UNROLL
        for (int n = 0; n < NB; n++) {
            __m512i v = _mm512_load_si512((const void *)(pb[n] + (size_t)kp * 32));
            we[n] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            wo[n] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_half));
        }
        UNROLL
        for (int r = 0; r < TR; r++) {
            const float *xr = xf + (size_t)(t0 + r) * ld + 2 * kp;
            __m512 xe = _mm512_set1_ps(xr[0]), xo = _mm512_set1_ps(xr[1]);
            UNROLL
            for (int n = 0; n < NB; n++) acc[r][n] = _mm512_fmadd_ps(xo, wo[n], _mm512_fmadd_ps(xe, we[n], acc[r][n]));
        }
    }
    UNROLL
    for (int n = 0; n < NB; n++) {
        int o = (blk0 + n) * 16;
        __m512 bias = b && kp1 == ldp ? _mm512_maskz_loadu_ps(msk[n], b + o) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < TR; r++)
            _mm512_mask_storeu_ps(y + (size_t)(t0 + r) * out + o, msk[n], _mm512_add_ps(acc[r][n], bias));
    }
}

#define FMA_ROWS(NB)                                                                                          \
    do {                                                                                                     \
        int t0 = 0;                                                                                          \
        for (; t0 + 8 <= T; t0 += 8) fma_panel(y, xf, w, b, t0, blk, kp0, kp1, 8, NB);                       \
        if (T - t0 >= 4) fma_panel(y, xf, w, b, t0, blk, kp0, kp1, 4, NB), t0 += 4;                          \
        if (T - t0 >= 2) fma_panel(y, xf, w, b, t0, blk, kp0, kp1, 2, NB), t0 += 2;                          \
        if (T - t0 >= 1) fma_panel(y, xf, w, b, t0, blk, kp0, kp1, 1, NB);                                   \
    } while (0)

/* The row tile (8, then 4, 2, 1 for what is left) and the block count as
 * compile-time constants, so each combination gets its own fully unrolled,
 * register-resident code. */
#define PANEL_ROWS(PANEL, X, NB)                                                                              \
    do {                                                                                                     \
        int t0 = 0;                                                                                          \
        for (; t0 + 8 <= T; t0 += 8) PANEL(y, X, w, b, t0, blk, 8, NB);                                      \
        if (T - t0 >= 4) PANEL(y, X, w, b, t0, blk, 4, NB), t0 += 4;                                         \
        if (T - t0 >= 2) PANEL(y, X, w, b, t0, blk, 2, NB), t0 += 2;                                         \
        if (T - t0 >= 1) PANEL(y, X, w, b, t0, blk, 1, NB);                                                  \
    } while (0)

TARGET_BF16 void bf16_forward_avx512(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T)
{
    int nblk = (w->out + 15) / 16, ldp = w->ld / 2;
    if (T == 1) { /* decode: 8 blocks, 8 independent chains, the weights streamed once */
        int blk = 0;
        for (; blk + 8 <= nblk; blk += 8) fma_panel(y, xf, w, b, 0, blk, 0, ldp, 1, 8);
        for (; blk < nblk; blk++) fma_panel(y, xf, w, b, 0, blk, 0, ldp, 1, 1);
        return;
    }
    /* Blocks outside, rows inside: a panel of 2 x 16 weight rows stays in L1
     * (48 KB) while every row tile passes over it. A long row (in > 640) is
     * cut into ranges of 256 column pairs, whose panel (32 KB) and 8 rows of
     * x (16 KB) fit L1 together (measured at in = 2048, T = 64: 104 -> 112
     * GFLOP/s, one thread). */
    int step = ldp > 320 ? 256 : ldp;
    for (int kp0 = 0; kp0 < ldp; kp0 += step) {
        int kp1 = kp0 + step < ldp ? kp0 + step : ldp, blk = 0;
        for (; blk + 2 <= nblk; blk += 2) FMA_ROWS(2);
        if (blk < nblk) FMA_ROWS(1);
    }
}

/* ---- forward, vdpbf16ps (kept for comparison and for other CPUs) -------
 * The same panels with bf16 dot products: x rounded to bf16 pairs, one
 * 4-byte broadcast per row and column pair, 8 rows x 3 blocks = 24
 * vdpbf16ps per 11 loads. xp is x in bf16, [T][ld], read a pair at a time. */
INLINE TARGET_BF16 void dp_panel(float *y, const uint16_t *xp, const lw_bf16_matrix *w, const float *b, int t0,
                                  int blk0, const int TR, const int NB)
{
    const int ldp = w->ld / 2, out = w->out;
    const uint16_t *pb[8];
    UNROLL
    for (int n = 0; n < NB; n++) pb[n] = w->p + (size_t)(blk0 + n) * ldp * 32;
    __m512 acc[8][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int n = 0; n < NB; n++) acc[r][n] = _mm512_setzero_ps();
    for (int kp = 0; kp < ldp; kp++) {
        __m512bh wv[8];
        UNROLL
        for (int n = 0; n < NB; n++) wv[n] = (__m512bh)_mm512_load_si512((const void *)(pb[n] + (size_t)kp * 32));
        UNROLL
        for (int r = 0; r < TR; r++) {
            uint32_t pair; /* memcpy: the pair is two uint16, not a uint32 object */
            memcpy(&pair, xp + (size_t)(t0 + r) * w->ld + 2 * (size_t)kp, sizeof pair);
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)pair);
            UNROLL
            for (int n = 0; n < NB; n++) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], xv, wv[n]);
        }
    }
    UNROLL
    for (int n = 0; n < NB; n++) {
        int o = (blk0 + n) * 16, left = out - o;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 bias = b ? _mm512_maskz_loadu_ps(m, b + o) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < TR; r++) _mm512_mask_storeu_ps(y + (size_t)(t0 + r) * out + o, m, _mm512_add_ps(acc[r][n], bias));
    }
}

TARGET_BF16 void bf16_forward_avx512_dp(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T)
{
    const uint16_t *xp = xb;
    int nblk = (w->out + 15) / 16, blk = 0;
    if (T == 1) {
        for (; blk + 8 <= nblk; blk += 8) dp_panel(y, xp, w, b, 0, blk, 1, 8);
        for (; blk < nblk; blk++) dp_panel(y, xp, w, b, 0, blk, 1, 1);
        return;
    }
    for (; blk + 3 <= nblk; blk += 3) PANEL_ROWS(dp_panel, xp, 3);
    if (nblk - blk == 2) PANEL_ROWS(dp_panel, xp, 2);
    else if (nblk - blk == 1) PANEL_ROWS(dp_panel, xp, 1);
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
void bf16_forward_avx512(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T) {}
void bf16_forward_avx512_dp(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T) {}
void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T) {}
#endif
