/* Matrix products on frozen weights kept in bf16 (issue 19, "frozen weights
 * kept narrow"): the weights are rounded once, then read as bf16 on every
 * call, half the bytes of fp32; activations and results stay fp32.
 *
 *   forward   y[T,out]  = bf16(x)[T,in] @ w[out,in]^T (+ b[out])
 *   backward  dx[T,in] += dy[T,out] @ w[out,in]          (dy stays fp32)
 *
 * Every path computes the same thing: x is rounded to bf16 once per call
 * (vdpbf16ps can only multiply bf16 by bf16, and doing the same rounding on
 * the AVX2 and scalar paths means a result depends on the CPU only through
 * the order of the fp32 sums), products are exact in fp32, sums are fp32.
 * The paths (cpu_path.h): AVX-512 BF16 dot products; AVX2+FMA with bf16
 * widened to fp32 in registers; scalar C, the reference.
 * Single-threaded: the build has no OpenMP and the thread pool of the plan
 * (issue 19, item 3) is not there yet. */
#ifndef LW_OP_MATMUL_BF16_H
#define LW_OP_MATMUL_BF16_H

#include <stdint.h>

#include "cpu_path.h"
#include "status.h"

/* bf16 <-> fp32. Rounding is to nearest, ties to even; a NaN stays a NaN
 * (quietened), an infinity stays infinite, finite values above bf16's range
 * become infinite as IEEE rounding says. */
uint16_t lw_bf16_from_f32(float f);
float lw_f32_from_bf16(uint16_t h);

/* A weight matrix [out][in] in bf16, row-major as GGUF and nn.Linear lay it
 * out (so a file's bf16 tensor is this layout already), each row padded with
 * zeros to ld = in rounded up to 32 elements: one 64-byte cache line per
 * vdpbf16ps operand, no tail loop and no read past a row in any kernel. */
typedef struct {
    uint16_t *w; /* out * ld values, 64-byte aligned */
    int out, in, ld;
} lw_bf16_matrix;

lw_status lw_bf16_matrix_pack(lw_bf16_matrix *m, const float *w, int out, int in);
void lw_bf16_matrix_free(lw_bf16_matrix *m);

/* On the process's path (lw_cpu_path_get). They allocate a T x ld scratch
 * for the rounded x, hence the status. */
lw_status matmul_bf16_forward(float *y, const float *x, const lw_bf16_matrix *w, const float *b, int T);
lw_status matmul_bf16_backward_x(float *dx, const float *dy, const lw_bf16_matrix *w, int T);

/* On a named path, for the tests and the benchmark; a path above what this
 * CPU runs is LW_ERR_UNSUPPORTED. */
lw_status matmul_bf16_forward_on(lw_cpu_path path, float *y, const float *x, const lw_bf16_matrix *w,
                                 const float *b, int T);
lw_status matmul_bf16_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_bf16_matrix *w,
                                    int T);

#endif
