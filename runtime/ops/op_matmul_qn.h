/* Matrix products on frozen weights kept in their GGUF block format
 * (issue 19 item 1, `--dtype native`): the file's blocks are kept byte for
 * byte (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) and read by the
 * product directly, never widened to an fp32 matrix.
 *
 *   forward   y[T,out]  = x[T,in] @ w[out,in]^T (+ b[out])
 *   backward  dx[T,in] += dy[T,out] @ w[out,in]
 *
 * Every format is, per 16 columns g of a row, w = s_g * (u - z) + m_b with
 * u an unsigned integer of 4, 5, 6 or 8 bits, s_g a scale (one per 16
 * columns: Q6_K's; the others repeat theirs), z a zero fixed by the format
 * (8 for Q4_0, 16 for Q5_0, 32 for Q6_K, 128 for Q8_0 held as q + 128) and
 * m_b a per-32 offset (Q4_1, Q5_1, and the mins of Q4_K, Q5_K). The forward
 * decodes one weight row at a time into that form (bytes u, floats s and m:
 * a few KiB, in L1), then for each row of x takes exact int32 sums of u * qx
 * per 16 columns (AVX-512 VNNI vpdpbusd, unsigned u times signed qx; AVX2
 * widened to 16 bits and vpmaddwd; scalar C), with x quantised per block of
 * 32 as llama.cpp's Q8_0 (d = max|v| / 127, q = round(v / d)):
 *
 *   y[t,o] = sum_b sx_b * ( sum_{g in b} s_g * (I_g - z * X_g) + m_b * X_b )
 *
 * where I_g = sum u*qx and X_g = sum qx over the 16 columns of g. Per 32, not
 * llama.cpp's Q8_K per 256 for the K-quants: a finer scale costs one more
 * fp32 multiply per 32 columns and moves x by less. fp32 accumulation; paths
 * differ only in the order of the fp32 sums. The backward decodes a row at a
 * time to fp32 (the same values lw_dequantize gives, up to rounding of
 * s * (u - z) + m) and adds dy[t,o] times it into dx: no fp32 matrix.
 *
 * Rows may come in segments of different formats (a fused wqkv whose v part
 * is Q8_0 and q, k parts Q5_0, as in Gemma's Q4_K_M file). */
#ifndef LW_OP_MATMUL_QN_H
#define LW_OP_MATMUL_QN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_path.h"
#include "op_matmul_qn_matrix.h"
#include "op_matmul_qn_types.h"
#include "status.h"



/* w[out][in] quantised to Q8_0 blocks as llama.cpp's quantize_row_q8_0
 * does (d = max|v| / 127 stored as fp16, q = round(v / d)), each row padded
 * with zeros to a multiple of 32: `--dtype q8`, for any model. */
lw_status lw_qn_matrix_quantize_q8_0(lw_qn_matrix *m, const float *w, int out, int in);


/* x[T][xin] quantised per 32 into rows of ld columns (xin <= ld, ld a
 * multiple of 32). */
lw_status lw_qn_act_quantize(lw_qn_act *a, const float *x, int T, int xin, int ld);
/* The same on a given path (AVX-512: vectorised, the same bits as scalar C). */
lw_status lw_qn_act_quantize_on(lw_cpu_path path, lw_qn_act *a, const float *x, int T, int xin, int ld);
void lw_qn_act_free(lw_qn_act *a);

/* y[t, o] for o in [n0, n1) only (y is still [T, out]); needs a scratch of
 * one decoded row, allocated here. */
lw_status matmul_qn_forward_cols(lw_cpu_path path, float *y, const lw_qn_act *a, const lw_qn_matrix *w,
                                 const float *b, int n0, int n1);

lw_status matmul_qn_forward(float *y, const float *x, const lw_qn_matrix *w, const float *b, int T);
lw_status matmul_qn_forward_on(lw_cpu_path path, float *y, const float *x, const lw_qn_matrix *w,
                               const float *b, int T);
lw_status matmul_qn_backward_x(float *dx, const float *dy, const lw_qn_matrix *w, int T);
lw_status matmul_qn_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_qn_matrix *w, int T);

#endif
