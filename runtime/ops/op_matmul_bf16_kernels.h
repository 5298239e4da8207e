/* The per-path kernels behind op_matmul_bf16.h (internal). The forwards take
 * x padded to ld columns with zeros: xf[T][ld] in fp32, or, for the
 * vdpbf16ps kernel, xb[T][ld] rounded to bf16. */
#ifndef LW_OP_MATMUL_BF16_KERNELS_H
#define LW_OP_MATMUL_BF16_KERNELS_H

#include <stdint.h>

/* The matrix is op_matmul_bf16.h's; the kernels only take it by pointer, so
 * this header stands below its parent (which includes it), not beside it. */
typedef struct lw_bf16_matrix lw_bf16_matrix;

void bf16_forward_scalar(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T);
void bf16_backward_x_scalar(float *dx, const float *dy, const lw_bf16_matrix *w, int T);
void bf16_forward_avx2(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T);
void bf16_backward_x_avx2(float *dx, const float *dy, const lw_bf16_matrix *w, int T);
void bf16_forward_avx512(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T);
void bf16_forward_avx512_dp(float *y, const uint16_t *xb, const lw_bf16_matrix *w, const float *b, int T);
void bf16_backward_x_avx512(float *dx, const float *dy, const lw_bf16_matrix *w, int T);

#endif
