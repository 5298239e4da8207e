/* Frozen weights kept narrow (issue 19, item 1): a model whose big matrices
 * (wqkv, wo, w_gate_up, w_down of every block, and the output head) are held
 * as bf16 (lw_bf16_matrix, rounded to nearest even once, op_matmul_bf16.h)
 * and whose fp32 copies of them are freed. The token embedding table, the
 * norms and the biases stay fp32 (they are small, or read a row at a time).
 *
 * The dtype is a load option (lw_load_options.dtype, set by a command's
 * --dtype); lw_config_load_model narrows a model after loading it. Which
 * product a weight takes is decided in one place, lw_model_weight
 * (frozen_matmul.h), from whether the model holds a narrow copy of it. */
#ifndef LW_NARROW_WEIGHTS_H
#define LW_NARROW_WEIGHTS_H

#include <stddef.h>

#include "model.h"
#include "model_config.h"
#include "plan.h"

/* The matrices themselves (op_matmul_bf16.h's lw_bf16_matrix) stay inside
 * narrow_weights.c: this header does not include op_matmul_bf16.h, so files
 * that see cuda_blas.h's inline bf16 conversions can include it too. */
struct lw_bf16_matrix;
struct lw_narrow_weights;

/* Converts m's big matrices to bf16 and frees their fp32 copies (m->output
 * becomes NULL, and so do the layers' projection pointers). m must be fp32
 * and its projections fused (as every loader makes them). On failure m is
 * unchanged.
 *
 * Memory: on the AVX-512 path the forward reads a packed copy and the dX
 * backward the row-major one (op_matmul_bf16.h); together they are as big
 * as the fp32 matrix. Without `backward` only the packed copy is kept (half
 * of fp32: the forward-only models, i.e. every sender, and the receiver of
 * eval, generate and bench); a backward on such a model is refused ("no
 * weights"). On other paths the row-major copy is the only one. */
lw_status lw_model_narrow_bf16(lw_model *m, bool backward);

/* The dtype m's frozen matrices are held in. */
static inline lw_weights_dtype lw_model_dtype(const lw_model *m)
{
    return m->narrow ? LW_WEIGHTS_BF16 : LW_WEIGHTS_F32;
}

/* m's bf16 copy of weight w of layer l (l = -1: the model level), or NULL
 * when m holds it in fp32 (every weight of an fp32 model; the norms, the
 * biases and the table of a bf16 one). The lookup frozen_matmul.h's rule
 * reads. Views (wq wk wv, w_gate w_up) have no packed copy: backward only. */
const struct lw_bf16_matrix *lw_narrow_matrix(const lw_model *m, int l, lw_plan_weight w);

/* lw_narrow_weights_free: in model.h (lw_model_free calls it). */

/* Bytes of m's weights as held now (fp32 arrays plus bf16 matrices, with
 * their padding and packed copies), for the benchmark's memory column. */
size_t lw_model_weight_bytes_held(const lw_model *m);

#endif
