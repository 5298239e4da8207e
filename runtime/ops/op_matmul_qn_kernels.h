/* The per-path kernels behind op_matmul_qn.h (internal). Each computes
 * y[t, o] for every row t of the quantised activations a and the outputs o
 * in [n0, n1) of the segment seg (whose rows it decodes into the scratch u,
 * s, m, c: in bytes, in/16, in/32 and in/16 floats). */
#ifndef LW_OP_MATMUL_QN_KERNELS_H
#define LW_OP_MATMUL_QN_KERNELS_H

#include "op_matmul_qn_types.h"

typedef struct {
    uint8_t *u;
    float *s, *m;
    float *c; /* in/16: m_b - z * s_g, the offsets' factor per 16 columns */
    /* 16 decoded rows side by side for the AVX-512 panel kernel: up
     * [in/4][16][4] bytes (4 columns of 16 rows: one vpdpbusd operand), sp
     * and cp [in/16][16] (s_g and c_g of the 16 rows) */
    uint8_t *up;
    float *sp, *cp;
} qn_scratch;

void qn_forward_scalar(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                       int n1, qn_scratch sc);
void qn_forward_avx2(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                     int n1, qn_scratch sc);
void qn_forward_avx512(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                       int n1, qn_scratch sc);

/* The backward on decoded rows: dx[t, :in] += sum_k dy[t, k] wf[k, :in] for the
 * T rows of dx (in apart) and dy (ldy apart) and the n rows of wf (ld apart),
 * the rows of wf in groups of 4, each group's four products summed first,
 * left to right (g0 w0 + g1 w1 + g2 w2 + g3 w3), then added to dx; the last
 * n % 4 rows one at a time. Every path does exactly these operations on
 * every element (no FMA), so they agree bit for bit.
 * _cols_scalar: the same on the columns [i0, i1) only. */
/* (inline: the scalar reference the AVX2 kernel also runs on its tail columns, below both files) */
static inline void qn_backward_cols_scalar(float *dx, int in, const float *dy, int ldy, const float *wf, int ld, int n,
                                           int T, int i0, int i1)
{
    for (int t = 0; t < T; t++) {
        float *d = dx + (size_t)t * in;
        const float *g = dy + (size_t)t * ldy;
        int k = 0;
        for (; k + 4 <= n; k += 4) {
            const float g0 = g[k], g1 = g[k + 1], g2 = g[k + 2], g3 = g[k + 3];
            const float *w0 = wf + (size_t)k * ld, *w1 = w0 + ld, *w2 = w1 + ld, *w3 = w2 + ld;
            for (int i = i0; i < i1; i++) d[i] += g0 * w0[i] + g1 * w1[i] + g2 * w2[i] + g3 * w3[i];
        }
        for (; k < n; k++)
            for (int i = i0; i < i1; i++) d[i] += g[k] * wf[(size_t)k * ld + i];
    }
}
void qn_backward_rows_avx2(float *dx, int in, const float *dy, int ldy, const float *wf, int ld, int n, int T);
/* Row o of the segment in fp32 (in a multiple of 16), bit for bit the scalar
 * decode's s_g * (u - z) + m_b (op_matmul_qn.c's dequant_row). */
void qn_dequant_row_avx2(const lw_qn_segment *seg, int o, int in, qn_scratch sc, float *dst);

/* lw_qn_act_quantize's loop on AVX-512 (a allocated; the same results). */
void qn_act_quantize_avx512(lw_qn_act *a, const float *x, int T, int xin, int in);

/* The offsets' part of one output, sum_g xf_g * c_g (fp32; c_g = m_b -
 * z * s_g comes with the decode, op_matmul_qn_decode.h): with it,
 * y = sum_b sx_b sum_{g in b} s_g I_g + sum_g xf_g c_g. */
static inline float qn_offsets(const float *xf, const float *c, int in)
{
    float acc = 0.0f;
    for (int g = 0; g < in / 16; g++) acc += xf[g] * c[g];
    return acc;
}

#endif
