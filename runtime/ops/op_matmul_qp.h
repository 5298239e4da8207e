/* The block products of op_matmul_qn.h on weights repacked ONCE at load
 * (issue 19): the per-call decode of every 16-row panel was most of the
 * block products' time (docs/perf.md, "Quantised weights in the plan"), so
 * a matrix keeps, beside its blocks, the decoded panels the AVX-512 VNNI
 * kernel reads (lw_qp, op_matmul_qn_types.h) and, for lw train's receiver,
 * a second int8 copy of w^T for dx = dy w.
 *
 * Forward: the panels hold exactly the decoded u, s_g and c_g = m_b - z s_g
 * of the file's blocks (or of --dtype q8's Q8_0), so every format stays
 * exact w.r.t. the file's dequantised values: Q4_1's and the K-quants' mins
 * enter as c_g times the block's sum of x (xf_g = sx_b sum qx), as in
 * llama.cpp; Q6_K's 6-bit u and Q8_0's q + 128 are bytes, the 4-bit
 * formats' u (Q4_0, Q4_1, Q4_K) two a byte (lw_qp.nib: half the bytes
 * decode streams; the kernel masks them back to the same byte operands, so
 * the sums are the same integers). x is quantised per
 * 32 (lw_qn_act). Each output is summed alone in the same order whatever
 * the tile (NB panels x TR rows) or the thread split, so the results are
 * the same for any thread count, and equal bit for bit to the per-call
 * panel kernel of op_matmul_qn_avx512.c at T >= 2.
 *
 * Backward dx = dy w: w^T [in, out] is requantised per 32 along out
 * (d = max|v| / 127 in fp32, as Q8_0 but the scale not rounded to fp16)
 * and dy per 32 as x: the same kernel. This is NOT exact: each weight moves
 * by at most d/2 (half a step of its block of 32 outputs), and dy by half a
 * step of its block; tests/check_matmul_qn.c bounds dx against the exact
 * product of the dequantised weights. The exact path (op_matmul_qn.c's row
 * decode) stays the fallback and the reference. */
#ifndef LW_OP_MATMUL_QP_H
#define LW_OP_MATMUL_QP_H

#include <stdbool.h>

#include "cpu_path.h"
#include "op_matmul_qn_matrix.h"
#include "op_matmul_qn_types.h"
#include "status.h"

/* m->fwd from m's blocks (any path may call it; only the AVX-512 path
 * reads it). */
lw_status lw_qn_pack_forward(lw_qn_matrix *m);
/* The same with the 4-bit formats' u one a byte when !nibbles (the panels
 * before lw_qp.nib): the same integer operands of vpdpbusd in the same
 * order, so the same bits (tests/check_matmul_qp.c); twice the u bytes.
 * For the A/B of the nibble panels (LWC_QN_PACK=bytes, narrow_weights.c). */
lw_status lw_qn_pack_forward_as(lw_qn_matrix *m, bool nibbles);
/* m->bwd from m's blocks: w^T requantised (above). */
lw_status lw_qn_pack_backward(lw_qn_matrix *m);
/* Freeing, sizing and viewing a packed copy: op_matmul_qn_matrix.h. */

/* The panel kernel that reads the packed copies: op_matmul_qp_kernels.h;
 * the products (op_matmul_qn.h) call it, split over the thread pool. */

#endif
