/* The AVX-512 VNNI panel kernel on the packed copies of op_matmul_qp.h
 * (internal; defined in op_matmul_qp_avx512.c). Declared apart from the
 * packers, on the types alone, so that the products (op_matmul_qn.c), which
 * split it over the thread pool, do not stand on the packers and the
 * packers do not stand on the pool. */
#ifndef LW_OP_MATMUL_QP_KERNELS_H
#define LW_OP_MATMUL_QP_KERNELS_H

#include <stdbool.h>

#include "op_matmul_qn_types.h"

/* y[t, o] (row stride ldy) for o in the panels [p0, p1) of p, every row of
 * a (a->in == p->cols); acc: y += the product (b ignored), else y = it + b. */
void qp_forward_avx512(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool acc, int p0,
                       int p1);

#endif
