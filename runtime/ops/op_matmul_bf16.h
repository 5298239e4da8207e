/* Matrix products on frozen weights kept in bf16 (issue 19, "frozen weights
 * kept narrow"): the weights are rounded once, then read as bf16 on every
 * call, half the bytes of fp32; activations and results stay fp32.
 *
 *   forward   y[T,out]  = x[T,in] @ w[out,in]^T (+ b[out])
 *   backward  dx[T,in] += dy[T,out] @ w[out,in]
 *
 * Every path computes the same thing: x and dy exact, each bf16 weight
 * widened to fp32 (exact), products and sums in fp32, so a result depends on
 * the CPU only through the order of the sums. The paths (cpu_path.h):
 * AVX-512 (FMA on weights widened in registers), AVX2+FMA (the same, 8
 * wide), scalar C (the reference). The vdpbf16ps kernel, which must round x
 * to bf16 too, is kept beside them (matmul_bf16_forward_vdpbf16ps): on this
 * machine's CPU it is the slower of the two AVX-512 ways (docs/perf.md).
 * Threads: a call splits over the process's pool (cpu_threads.h) into row
 * ranges (one row: blocks of outputs), bit-identical for any thread count. */
#ifndef LW_OP_MATMUL_BF16_H
#define LW_OP_MATMUL_BF16_H

#include <stdint.h>

#include "bf16.h"
#include "cpu_path.h"
#include "status.h"

/* On the process's path (lw_cpu_path_get). The forward allocates a T x ld
 * scratch for the padded x, hence the status. */
lw_status matmul_bf16_forward(float *y, const float *x, const lw_bf16_matrix *w, const float *b, int T);
lw_status matmul_bf16_backward_x(float *dx, const float *dy, const lw_bf16_matrix *w, int T);

/* On a named path, for the tests and the benchmark; a path above what this
 * CPU runs is LW_ERR_UNSUPPORTED. */
lw_status matmul_bf16_forward_on(lw_cpu_path path, float *y, const float *x, const lw_bf16_matrix *w,
                                 const float *b, int T);
lw_status matmul_bf16_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_bf16_matrix *w,
                                    int T);

/* The forward with AVX-512 BF16 dot products: y = bf16(x) @ w^T (+ b), x
 * rounded to bf16 (to nearest even) because vdpbf16ps multiplies bf16 by
 * bf16; fp32 sums. LW_ERR_UNSUPPORTED without AVX-512 BF16. */
lw_status matmul_bf16_forward_vdpbf16ps(float *y, const float *x, const lw_bf16_matrix *w, const float *b, int T);

#endif
