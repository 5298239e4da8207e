/* Reading a model's narrow set: lookups, the embedding row, bytes held
 * (narrow_store.h); the set is made by narrow_weights.c. */
#include "narrow_store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void nmat_free(lw_narrow_mat *n)
{
    lw_bf16_matrix_free(&n->bf16);
    lw_qn_matrix_free(&n->qn);
}

void lw_narrow_weights_free(struct lw_narrow_weights *n)
{
    if (!n) return;
    for (int l = 0; n->layers && l < n->n_layers; l++) {
        lw_layer_narrow *N = &n->layers[l];
        nmat_free(&N->wqkv);
        nmat_free(&N->wo);
        nmat_free(&N->w_gate_up);
        nmat_free(&N->w_down);
    }
    free(n->layers);
    nmat_free(&n->output);
    free(n);
}

lw_weights_dtype lw_model_dtype(const lw_model *m) { return m->narrow ? m->narrow->dtype : LW_WEIGHTS_F32; }

static size_t nmat_bytes(const lw_narrow_mat *m)
{
    const lw_bf16_matrix *b = &m->bf16;
    size_t bytes = (b->w ? (size_t)b->out * (size_t)b->ld * sizeof(uint16_t) : 0) +
                   (b->p ? (size_t)(b->out + 15) / 16 * 16 * (size_t)b->ld * sizeof(uint16_t) : 0);
    return bytes + lw_qn_matrix_bytes(&m->qn);
}

size_t lw_model_weight_bytes_held(const lw_model *m)
{
    const lw_model_config *c = &m->cfg;
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t F = (size_t)c->ffn, V = (size_t)c->vocab, f = sizeof(float);
    size_t bytes = (m->token_embd ? V * H * f : 0) + H * f;   /* the table, output_norm */
    if (m->output && m->output != m->token_embd) bytes += V * H * f;
    for (int l = 0; l < c->n_layers; l++) {
        const lw_layer_weights *L = &m->layers[l];
        bytes += 4 * H * f + 2 * (size_t)c->head_dim * f + (L->bqkv ? (qd + 2 * kvd) * f : 0);  /* norms, bias */
        bytes += (L->wqkv ? (qd + 2 * kvd) * H * f : 0) + (L->wo ? H * qd * f : 0) +
                 (L->w_gate_up ? 2 * F * H * f : 0) + (L->w_down ? H * F * f : 0);
    }
    if (m->narrow) {
        for (int l = 0; l < m->narrow->n_layers; l++) {
            const lw_layer_narrow *N = &m->narrow->layers[l];
            bytes += nmat_bytes(&N->wqkv) + nmat_bytes(&N->wo) + nmat_bytes(&N->w_gate_up) + nmat_bytes(&N->w_down);
        }
        bytes += nmat_bytes(&m->narrow->output);
    }
    return bytes;
}

static const lw_narrow_mat *lookup(const lw_model *m, int l, lw_plan_weight w)
{
    const struct lw_narrow_weights *n = m->narrow;
    if (!n) return NULL;
    if (w == LW_W_OUTPUT) return &n->output;
    if (l < 0 || l >= n->n_layers) return NULL;
    const lw_layer_narrow *N = &n->layers[l];
    switch (w) {
    case LW_W_WQKV: return &N->wqkv;
    case LW_W_WQ: return &N->wq;
    case LW_W_WK: return &N->wk;
    case LW_W_WV: return &N->wv;
    case LW_W_WO: return &N->wo;
    case LW_W_GATE_UP: return &N->w_gate_up;
    case LW_W_GATE: return &N->w_gate;
    case LW_W_UP: return &N->w_up;
    case LW_W_DOWN: return &N->w_down;
    default: return NULL;   /* norms, biases, the table: fp32 always */
    }
}

lw_narrow_ref lw_narrow_lookup(const lw_model *m, int l, lw_plan_weight w)
{
    const lw_narrow_mat *n = lookup(m, l, w);
    lw_narrow_ref r = {0};
    if (!n) return r;
    switch (m->narrow->dtype) {
    case LW_WEIGHTS_BF16: r.bf16 = &n->bf16; break;
    case LW_WEIGHTS_Q8:
    case LW_WEIGHTS_NATIVE:
        /* a matrix widened at load (no product reads its blocks) is in fp32;
         * its views have no segments either */
        if (n->qn.nseg) r.qn = &n->qn;
        break;
    default: break;
    }
    return r;
}

const lw_bf16_matrix *lw_narrow_matrix(const lw_model *m, int l, lw_plan_weight w)
{
    return lw_narrow_lookup(m, l, w).bf16;
}

lw_status lw_model_embed_row(const lw_model *m, int id, float *row)
{
    const lw_model_config *c = &m->cfg;
    if (id < 0 || id >= c->vocab) return lw_fail(LW_ERR_INVALID, "%s: token id %d outside [0, %d)", c->name, id, c->vocab);
    if (m->token_embd) {
        memcpy(row, m->token_embd + (size_t)id * c->hidden, (size_t)c->hidden * sizeof *row);
        return LW_OK;
    }
    if (!m->narrow || !m->narrow->output.qn.nseg || m->narrow->output.qn.in != c->hidden)
        return lw_fail(LW_ERR_INVALID, "%s: no embedding table and no head to embed from", c->name);
    lw_qn_dequant_row(&m->narrow->output.qn, id, row);
    return LW_OK;
}
