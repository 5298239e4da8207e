/* bf16 numbers and the bf16 weight matrix (bf16.c): what a model's narrow
 * copy of its weights (narrow_weights.h) and the wire's bf16 payloads are
 * made of. The products on the matrix are op_matmul_bf16.h's, which includes
 * this header; what only converts or packs stands on this one, not on the
 * products (and their thread pool). */
#ifndef LW_BF16_H
#define LW_BF16_H

#include <stdint.h>

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

#endif
