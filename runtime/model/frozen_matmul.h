/* Products on a frozen model's matrices, whatever dtype it holds them in
 * (narrow_weights.h): the one rule that picks the fp32 product (ops.h's
 * matmul_forward / matmul_backward), the bf16 one (op_matmul_bf16.h) or the
 * one on GGUF blocks (op_matmul_qn.h: the file's own under --dtype native,
 * Q8_0 made at load under --dtype q8).
 * A weight is named by the plan's weight id (plan.h) and a layer; the rule
 * is "the model holds a narrow copy of it": lw_model_weight. Every caller
 * that multiplies by a frozen model's matrix (the plan's executor, the
 * output head of label scoring and of the training passes) goes through
 * here, so no other file asks which dtype a model is. */
#ifndef LW_FROZEN_MATMUL_H
#define LW_FROZEN_MATMUL_H

#include "bf16.h"
#include "model.h"
#include "op_matmul_qn.h"
#include "plan.h"

/* A frozen matrix [out, in]: exactly one member is set (all NULL for a
 * weight the model has not, e.g. a missing bias). */
typedef struct {
    const float *f32;
    const lw_bf16_matrix *bf16;
    const lw_qn_matrix *qn;
} lw_weight_ref;

/* Weight w of layer l (l = -1: the model level: the table, output_norm,
 * output). Norms, biases and the embedding table are always fp32. */
lw_weight_ref lw_model_weight(const lw_model *m, int l, lw_plan_weight w);

/* y[T, out] = x[T, in] @ w^T (+ b). */
lw_status lw_weight_forward(float *y, const float *x, lw_weight_ref w, const float *b, int T, int in, int out);

/* dx[T, in] += dy[T, out] @ w (the frozen matrix gets no gradient). */
lw_status lw_weight_backward_x(float *dx, const float *dy, lw_weight_ref w, int T, int in, int out);

/* ---- the label-scoring record (plan.h LW_OP_HEAD_LOGSOFTMAX) ---- */

/* The plan's head_logsoftmax record over n_rows final-normed rows xf
 * [n_rows, hidden] (what the LOGITS record reads; a caller captures them
 * with capture_layer = n_layers): logp[k] = log softmax(xf[pair_row[k]] @
 * head^T)[pair_id[k]] for k < n_pairs, lse[n_rows] (NULL: not kept) each
 * row's log-sum-exp, which backward reads. An fp32 head runs fused with the
 * log-softmax; a narrow one through its product, 64 rows at a time. */
lw_status lw_plan_cpu_head_logsoftmax(const lw_plan *p, const lw_model *m, const float *xf, int n_rows,
                                      const int *pair_row, const int *pair_id, int n_pairs, float *lse, double *logp);

/* dxf [n_rows, hidden] = d(sum_k dlogp[k] logp[k]) / d xf, from the same
 * rows and pairs and the forward's lse (the head is frozen: no dw). */
lw_status lw_plan_cpu_head_logsoftmax_backward(const lw_plan *p, const lw_model *m, const float *xf, int n_rows,
                                               const int *pair_row, const int *pair_id, int n_pairs, const float *lse,
                                               const float *dlogp, float *dxf);

/* log softmax(logits[V])[id], in double (the narrow head's form). */
double lw_log_prob(const float *logits, int V, int id);

#endif
