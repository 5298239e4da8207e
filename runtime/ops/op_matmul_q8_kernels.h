/* The per-path kernels behind op_matmul_q8.h (internal): xq[T][ld] is x
 * quantised per row (zero past column in), sx[T] the row scales. For the
 * AVX-512 kernel each byte of xq has its top bit flipped (qx + 128, the
 * unsigned operand vpdpbusd wants). */
#ifndef LW_OP_MATMUL_Q8_KERNELS_H
#define LW_OP_MATMUL_Q8_KERNELS_H

#include <stdint.h>

/* The matrix is op_matmul_q8.h's; the kernels only take it by pointer, so
 * this header stands below its parent (which includes it), not beside it. */
typedef struct lw_q8_matrix lw_q8_matrix;

void q8_forward_scalar(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T);
void q8_forward_avx2(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T);
/* lw_q8_quantize_row for T rows of x[T][in] into xq[T][ld] (zero past in),
 * with the same results bit for bit, then the offset of 128 the AVX-512
 * kernel wants: per-call work that the scalar loop made a third of a T = 64
 * product's time. */
void q8_quantize_rows_avx512(int8_t *xq, float *sx, const float *x, int T, int in, int ld);
void q8_forward_avx512(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T);

#endif
