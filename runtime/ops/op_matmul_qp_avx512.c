/* The AVX-512 VNNI kernel of op_matmul_qp.h (target attribute only here; the
 * dispatcher calls it only on CPUs that have the features, cpu_path.c). */
#include "op_matmul_qp_kernels.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
/* constant trip counts once inlined: unrolled, the accumulators stay in registers */
#define UNROLL _Pragma("GCC unroll 8")

/* TR rows of x (from t0) against NB panels of 16 outputs (from P0). Per
 * group of 16 GS columns (one scale per output): 4 GS vpdpbusd steps of 4
 * columns (x's 4 bytes broadcast, the panel's 16 outputs x 4 columns
 * loaded: u unsigned, qx signed) sum exactly into int32 lanes (at most
 * 32 * 255 * 127); then per output acc += I * (s_g sx_b) + xf * c_g, the
 * order of op_matmul_qn_avx512.c's panel_tile. Each output's sums are the
 * same in any tile: the split over threads changes no bit. */
INLINE TARGET_VNNI void tile(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool accum,
                             int P0, int t0, const int TR, const int NB, const int GS, const int NIB, const int CZ)
{
    const int cols = a->in, nG = cols / (16 * GS), ng16 = cols / 16, nb32 = cols / 32;
    const size_t su = (size_t)p->ldp * 16 >> NIB, ss = (size_t)(p->ldp / (16 * GS)) * 16;
    const __m512i lo4 = _mm512_set1_epi8(0x0f);
    const __m512 negz = _mm512_set1_ps(-p->cz);   /* CZ: c = s * -z, exactly the stored c (lw_qp.cz) */
    const uint8_t *ub[8];
    const float *sb[8], *cb[8];
    UNROLL
    for (int n = 0; n < NB; n++) {
        ub[n] = p->u + (size_t)(P0 + n) * su + (size_t)(p->c0 / (4 << NIB)) * 64;
        sb[n] = p->s + (size_t)(P0 + n) * ss + (size_t)(p->c0 / (16 * GS)) * 16;
        cb[n] = CZ ? NULL : p->c + (size_t)(P0 + n) * ss + (size_t)(p->c0 / (16 * GS)) * 16;
    }
    __m512 acc[4][8];
    UNROLL
    for (int r = 0; r < TR; r++)
        UNROLL
        for (int n = 0; n < NB; n++) acc[r][n] = _mm512_setzero_ps();
    for (int G = 0; G < nG; G++) {
        __m512i is[4][8];
        UNROLL
        for (int r = 0; r < TR; r++)
            UNROLL
            for (int n = 0; n < NB; n++) is[r][n] = _mm512_setzero_si512();
        if (NIB) { /* a 64-byte load holds 8 columns: the low nibbles 4 of them, the high the next 4 */
            UNROLL
            for (int q = 0; q < 4 * GS; q += 2) {
                const size_t kq = (size_t)G * 4 * GS + (size_t)q;
                __m512i v[8];
                UNROLL
                for (int n = 0; n < NB; n++) v[n] = _mm512_load_si512((const void *)(ub[n] + kq / 2 * 64));
                UNROLL
                for (int h = 0; h < 2; h++)
                    UNROLL
                    for (int r = 0; r < TR; r++) {
                        uint32_t x4;
                        memcpy(&x4, a->qx + (size_t)(t0 + r) * cols + (kq + (size_t)h) * 4, 4);
                        __m512i xv = _mm512_set1_epi32((int)x4);
                        UNROLL
                        for (int n = 0; n < NB; n++) {
                            __m512i w = h ? _mm512_and_si512(_mm512_srli_epi16(v[n], 4), lo4)
                                          : _mm512_and_si512(v[n], lo4);
                            is[r][n] = _mm512_dpbusd_epi32(is[r][n], w, xv);
                        }
                    }
            }
        } else {
            UNROLL
            for (int q = 0; q < 4 * GS; q++) {
                const size_t kq = (size_t)G * 4 * GS + (size_t)q;
                __m512i wv[8];
                UNROLL
                for (int n = 0; n < NB; n++) wv[n] = _mm512_load_si512((const void *)(ub[n] + kq * 64));
                UNROLL
                for (int r = 0; r < TR; r++) {
                    uint32_t x4;
                    memcpy(&x4, a->qx + (size_t)(t0 + r) * cols + kq * 4, 4);
                    __m512i xv = _mm512_set1_epi32((int)x4);
                    UNROLL
                    for (int n = 0; n < NB; n++) is[r][n] = _mm512_dpbusd_epi32(is[r][n], wv[n], xv);
                }
            }
        }
        __m512 sxv[4], xfv[4];
        UNROLL
        for (int r = 0; r < TR; r++) {
            const float *xf = a->xf + (size_t)(t0 + r) * ng16 + (size_t)G * GS;
            sxv[r] = _mm512_set1_ps(a->sx[(size_t)(t0 + r) * nb32 + (size_t)(G * GS) / 2]);
            xfv[r] = _mm512_set1_ps(GS == 2 ? xf[0] + xf[1] : xf[0]);
        }
        UNROLL
        for (int n = 0; n < NB; n++) {
            __m512 sv = _mm512_load_ps(sb[n] + (size_t)G * 16);
            __m512 cv = CZ ? _mm512_mul_ps(sv, negz) : _mm512_load_ps(cb[n] + (size_t)G * 16);
            UNROLL
            for (int r = 0; r < TR; r++) {
                acc[r][n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][n]), _mm512_mul_ps(sv, sxv[r]), acc[r][n]);
                acc[r][n] = _mm512_fmadd_ps(xfv[r], cv, acc[r][n]);
            }
        }
    }
    UNROLL
    for (int n = 0; n < NB; n++) {
        int o = (P0 + n) * 16, left = p->rows - o;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 bias = !accum && b ? _mm512_maskz_loadu_ps(m, b + o) : _mm512_setzero_ps();
        UNROLL
        for (int r = 0; r < TR; r++) {
            float *yo = y + (size_t)(t0 + r) * ldy + o;
            __m512 v = accum ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, yo), acc[r][n]) : _mm512_add_ps(acc[r][n], bias);
            _mm512_mask_storeu_ps(yo, m, v);
        }
    }
}

#define ROWS(NB, GS, NIB, CZ)                                                                                \
    do {                                                                                                     \
        int t0 = 0;                                                                                          \
        for (; t0 + 4 <= T; t0 += 4) tile(y, ldy, a, p, b, accum, P, t0, 4, NB, GS, NIB, CZ);               \
        if (T - t0 >= 2) tile(y, ldy, a, p, b, accum, P, t0, 2, NB, GS, NIB, CZ), t0 += 2;                  \
        if (T - t0 >= 1) tile(y, ldy, a, p, b, accum, P, t0, 1, NB, GS, NIB, CZ);                           \
    } while (0)

/* GS, NIB and CZ as constants, so that every tile is unrolled for them. */
INLINE TARGET_VNNI void forward_gs(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool accum,
                                   int p0, int p1, const int GS, const int NIB, const int CZ)
{
    const int T = a->T;
    int P = p0;
    if (T == 1) { /* decode: 8 panels per broadcast, the weights streamed once */
        for (; P + 8 <= p1; P += 8) tile(y, ldy, a, p, b, accum, P, 0, 1, 8, GS, NIB, CZ);
        for (; P < p1; P++) tile(y, ldy, a, p, b, accum, P, 0, 1, 1, GS, NIB, CZ);
        return;
    }
    for (; P + 3 <= p1; P += 3) ROWS(3, GS, NIB, CZ);
    if (p1 - P == 2) ROWS(2, GS, NIB, CZ);
    else if (p1 - P == 1) ROWS(1, GS, NIB, CZ);
}

TARGET_VNNI void qp_forward_avx512(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool acc,
                                   int p0, int p1)
{
    if (a->T <= 0 || p0 >= p1) return;
    const int cz = p->c == NULL;   /* the symmetric formats: c made from s (lw_qp.cz) */
    if (p->nib && cz) forward_gs(y, ldy, a, p, b, acc, p0, p1, 2, 1, 1);   /* Q4_0 */
    else if (p->nib) forward_gs(y, ldy, a, p, b, acc, p0, p1, 2, 1, 0);   /* Q4_1, Q4_K: per-32 scales */
    else if (p->gs == 2 && cz) forward_gs(y, ldy, a, p, b, acc, p0, p1, 2, 0, 1);   /* Q5_0, Q8_0 */
    else if (p->gs == 2) forward_gs(y, ldy, a, p, b, acc, p0, p1, 2, 0, 0);
    else if (cz) forward_gs(y, ldy, a, p, b, acc, p0, p1, 1, 0, 1);   /* Q6_K */
    else forward_gs(y, ldy, a, p, b, acc, p0, p1, 1, 0, 0);
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void qp_forward_avx512(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool acc, int p0,
                       int p1) {}
#endif
