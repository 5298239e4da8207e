/* A model's narrow set as the products read it: the bf16 or GGUF-block
 * copies of its big matrices (m->narrow), looked up by the plan's weight id.
 * Making the set (from the fp32 matrices or the file's blocks) is
 * narrow_weights.h's; reading it is here, so that the products
 * (frozen_matmul.h) and the embedding of a row stand on the set's layout,
 * not on the weight files the native set is read from. */
#ifndef LW_NARROW_STORE_H
#define LW_NARROW_STORE_H

#include <stddef.h>

#include "bf16.h"
#include "model.h"
#include "model_config.h"
#include "op_matmul_qn_matrix.h"
#include "plan.h"

/* One frozen matrix as the set's dtype holds it: one member is filled, or
 * none (native: a weight whose blocks no product reads stays in
 * fp32, widened with a notice). */
typedef struct {
    lw_bf16_matrix bf16;
    lw_qn_matrix qn;   /* q8 (Q8_0 made here) and native (the file's blocks) */
} lw_narrow_mat;

/* One block's narrow matrices. wq wk wv and w_gate w_up are row views of
 * the fused wqkv and w_gate_up (the backward's per-part products read them;
 * a view has no packed copy and owns nothing). */
typedef struct {
    lw_narrow_mat wqkv, wo, w_gate_up, w_down;
    lw_narrow_mat wq, wk, wv, w_gate, w_up;   /* views */
} lw_layer_narrow;

struct lw_narrow_weights {
    lw_weights_dtype dtype;
    int n_layers;
    lw_layer_narrow *layers;   /* [n_layers] */
    lw_narrow_mat output;      /* the head [vocab, hidden]; its own copy when tied (the table stays fp32) */
};

/* The dtype m's frozen matrices are held in. */
lw_weights_dtype lw_model_dtype(const lw_model *m);

/* m's narrow copy of weight w of layer l (l = -1: the model level): at most
 * one member set, the one of m's dtype; none when m holds it in fp32 (every
 * weight of an fp32 model; the norms, the biases and the table of a narrow
 * one; under native, a matrix widened at load). The lookup frozen_matmul.h's
 * rule reads. Views (wq wk wv, w_gate w_up) have no packed copy: backward only. */
typedef struct {
    const lw_bf16_matrix *bf16;
    const lw_qn_matrix *qn;   /* q8 and native */
} lw_narrow_ref;
lw_narrow_ref lw_narrow_lookup(const lw_model *m, int l, lw_plan_weight w);
/* Its bf16 member alone (NULL unless m is bf16). */
const lw_bf16_matrix *lw_narrow_matrix(const lw_model *m, int l, lw_plan_weight w);

/* Row `id` of the input embedding table, unscaled, into row[hidden]: from
 * m->token_embd, or, when m is q8 or native with a tied head (the table
 * freed: it was the head's fp32 twin, 671 MB for Gemma 3), dequantised
 * from the head's blocks. LW_ERR_INVALID for an id outside the vocabulary. */
lw_status lw_model_embed_row(const lw_model *m, int id, float *row);

/* lw_narrow_weights_free (defined in narrow_store.c): in model.h
 * (lw_model_free calls it). */

/* Bytes of m's weights as held now (fp32 arrays plus bf16 matrices, with
 * their padding and packed copies), for the benchmark's memory column. */
size_t lw_model_weight_bytes_held(const lw_model *m);

#endif
