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

#include "cpu_path.h"
#include "status.h"

/* bf16 <-> fp32. Rounding is to nearest, ties to even; a NaN stays a NaN
 * (quietened), an infinity stays infinite, finite values above bf16's range
 * become infinite as IEEE rounding says. */
uint16_t lw_bf16_from_f32(float f);
float lw_f32_from_bf16(uint16_t h);

/* A weight matrix [out][in] in bf16, row-major as GGUF and nn.Linear lay it
 * out (so a file's bf16 tensor is this layout already), each row padded with
 * zeros to ld = in rounded up to 32 elements: no tail loop and no read past a
 * row in any kernel. The backward and the AVX2 and scalar paths read it.
 *
 * On CPUs with AVX-512 BF16 a second copy, p, is made for the forward: rows
 * in blocks of 16, and within a block the column pairs (2k, 2k+1) of the 16
 * rows side by side, [out/16][ld/2][16][2], so one 64-byte load is exactly a
 * vdpbf16ps operand holding a column pair for 16 outputs, and the product
 * becomes an outer product (x pair broadcast, 16 outputs a vector, no
 * horizontal sums). Two copies are the memory of one fp32 matrix; a backward
 * on p alone is left to do. */
typedef struct lw_bf16_matrix {
    uint16_t *w; /* out * ld values, 64-byte aligned */
    uint16_t *p; /* the packed copy, or NULL when the CPU has no AVX-512 BF16 */
    int out, in, ld;
} lw_bf16_matrix;

lw_status lw_bf16_matrix_pack(lw_bf16_matrix *m, const float *w, int out, int in);
void lw_bf16_matrix_free(lw_bf16_matrix *m);

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
