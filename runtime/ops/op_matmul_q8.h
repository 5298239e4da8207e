/* Matrix products on frozen weights kept as int8 (issue 19): Q8_0-style
 * weights (blocks of 32 int8 along a row, one fp32 scale a block, as GGUF's
 * Q8_0 lays them out apart from its fp16 scale) against activations
 * quantised per row to int8 with one fp32 scale, int32 dot products
 * (AVX-512 VNNI vpdpbusd; AVX2 vpmaddubsw), fp32 accumulation across blocks.
 *
 *   forward   y[T,out] = (sx_t * qx[T,in]) @ (d_b * qw[out,in])^T (+ b[out])
 *
 * Quantisation is llama.cpp's: d = max|v| / 127, q = round(v / d), so
 * |q| <= 127 and each value moves by at most d/2. llama.cpp scales its
 * activations per 32-block (Q8_0) or 256 (Q8_K); one scale a row, as here,
 * keeps x's scale out of the inner loop, at a cost in accuracy on rows with
 * outliers (measure before wiring it in). Every path computes the
 * same integer block sums exactly; paths differ only in the order of the
 * fp32 sums. Forward only: the backward through int8 weights (dx = dy W)
 * would need dy quantised too and is not written yet. Single-threaded. */
#ifndef LW_OP_MATMUL_Q8_H
#define LW_OP_MATMUL_Q8_H

#include <stdint.h>

#include "cpu_path.h"
#include "status.h"

enum { LW_Q8_BLOCK = 32 };

/* Row-major q and d serve the AVX2 and scalar paths. On CPUs with AVX-512
 * VNNI the same values are also kept packed for an outer-product kernel:
 * rows in blocks of 16, and within a block 4 consecutive columns of the 16
 * rows side by side ([out/16][ld/4][16][4], one 64-byte load is a vpdpbusd
 * operand: 4 columns for 16 outputs), the scales as [out/16][ld/32][16]. */
typedef struct lw_q8_matrix {
    int8_t *q;   /* out * ld, 64-byte aligned, zero past column in */
    float *d;    /* out * (ld / 32) block scales (0 for all-zero blocks) */
    float *corr; /* out: 128 * sum_b d_b * sum(q in b), for the unsigned trick of vpdpbusd */
    int8_t *qp;  /* packed q, or NULL without AVX-512 VNNI */
    float *dp;   /* packed d, or NULL */
    int out, in, ld; /* ld = in rounded up to 64 */
} lw_q8_matrix;

lw_status lw_q8_matrix_pack(lw_q8_matrix *m, const float *w, int out, int in);
void lw_q8_matrix_free(lw_q8_matrix *m);

/* One row quantised: q[0..n) and its scale (0 for an all-zero row). */
void lw_q8_quantize_row(int8_t *q, float *scale, const float *x, int n);

lw_status matmul_q8_forward(float *y, const float *x, const lw_q8_matrix *w, const float *b, int T);
lw_status matmul_q8_forward_on(lw_cpu_path path, float *y, const float *x, const lw_q8_matrix *w,
                               const float *b, int T);

#endif
