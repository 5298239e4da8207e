/* The block matrix of the quantised products (op_matmul_qn.h): which ggml
 * block formats they read, a matrix made of the file's rows of blocks (in
 * segments), its row views, its bytes, a row widened to fp32, and the
 * storage of its packed copies (made by op_matmul_qp.h's packers). Apart
 * from the products, so that what holds and reads a model's narrow set
 * (narrow_store.h) stands on the container alone, not on the products and
 * the thread pool under them. */
#ifndef LW_OP_MATMUL_QN_MATRIX_H
#define LW_OP_MATMUL_QN_MATRIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op_matmul_qn_types.h"
#include "status.h"

/* Whether the products read blocks of this ggml type; and the bytes one row
 * of `in` columns takes (0 when unsupported or in is not a block multiple). */
bool lw_qn_type_supported(uint32_t type);
size_t lw_qn_row_bytes(uint32_t type, int in);
const char *lw_qn_type_name(uint32_t type);

/* An empty matrix of `in` columns; rows come by lw_qn_matrix_append, which
 * copies `rows` rows of blocks of `type` (the file may be closed after). */
void lw_qn_matrix_init(lw_qn_matrix *m, int in);
lw_status lw_qn_matrix_append(lw_qn_matrix *m, uint32_t type, const void *blocks, int rows);
void lw_qn_matrix_free(lw_qn_matrix *m);

/* Rows [r0, r0 + n) of m, sharing its bytes (for per-part backward products). */
lw_qn_matrix lw_qn_rows_view(const lw_qn_matrix *m, int r0, int n);
size_t lw_qn_matrix_bytes(const lw_qn_matrix *m);

/* Row o of m as fp32 (dst[in]): the backward's decode, and the tests' view. */
void lw_qn_dequant_row(const lw_qn_matrix *m, int o, float *dst);

/* A packed copy (m->fwd, m->bwd): freed, its bytes, and its part that a
 * row view of the matrix reads. */
void lw_qp_free(lw_qp *p);
size_t lw_qp_bytes(const lw_qp *p);
/* The views of lw_qn_rows_view: rows [r0, r0 + n) of w; an empty lw_qp when
 * the stored layout cannot start there (forward: r0 not a multiple of 16;
 * backward: not of 32). */
lw_qp lw_qp_rows_view_fwd(const lw_qp *p, int r0, int n);
lw_qp lw_qp_rows_view_bwd(const lw_qp *p, int r0, int n);

#endif
