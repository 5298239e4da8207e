/* The one rule for products on frozen matrices (frozen_matmul.h). */
#include "frozen_matmul.h"

#include "narrow_store.h"
#include "op_matmul_bf16.h"
#include "ops.h"

static const float *f32_of(const lw_model *m, int l, lw_plan_weight w)
{
    switch (w) {
    case LW_W_TOKEN_EMBD: return m->token_embd;
    case LW_W_OUTPUT_NORM: return m->output_norm;
    case LW_W_OUTPUT: return m->output;
    default: break;
    }
    if (l < 0 || l >= m->cfg.n_layers) return NULL;
    const lw_layer_weights *L = &m->layers[l];
    switch (w) {
    case LW_W_ATTN_NORM: return L->attn_norm;
    case LW_W_WQKV: return L->wqkv;
    case LW_W_WQ: return L->wq;
    case LW_W_WK: return L->wk;
    case LW_W_WV: return L->wv;
    case LW_W_BQKV: return L->bqkv;
    case LW_W_WO: return L->wo;
    case LW_W_Q_NORM: return L->q_norm;
    case LW_W_K_NORM: return L->k_norm;
    case LW_W_POST_ATTN_NORM: return L->post_attn_norm;
    case LW_W_FFN_NORM: return L->ffn_norm;
    case LW_W_GATE_UP: return L->w_gate_up;
    case LW_W_GATE: return L->w_gate;
    case LW_W_UP: return L->w_up;
    case LW_W_DOWN: return L->w_down;
    case LW_W_POST_FFN_NORM: return L->post_ffn_norm;
    default: return NULL;
    }
}

lw_weight_ref lw_model_weight(const lw_model *m, int l, lw_plan_weight w)
{
    lw_narrow_ref n = lw_narrow_lookup(m, l, w);
    if (n.bf16) return (lw_weight_ref){.bf16 = n.bf16};
    if (n.qn) return (lw_weight_ref){.qn = n.qn};
    return (lw_weight_ref){.f32 = f32_of(m, l, w)};
}

/* The narrow matrix's shape against the product's. */
static lw_status check_shape(lw_weight_ref w, int in, int out)
{
    int wo = w.bf16 ? w.bf16->out : w.qn->out, wi = w.bf16 ? w.bf16->in : w.qn->in;
    const char *what = w.bf16 ? "bf16" : "block";
    if (wi != in || wo != out)
        return lw_fail(LW_ERR_INVALID, "%s product: weight %d x %d, asked for %d x %d", what, wo, wi, out, in);
    return LW_OK;
}

lw_status lw_weight_forward(float *y, const float *x, lw_weight_ref w, const float *b, int T, int in, int out)
{
    if (!w.bf16 && !w.qn) {
        matmul_forward(y, x, w.f32, b, T, in, out);
        return LW_OK;
    }
    lw_status st = check_shape(w, in, out);
    if (st) return st;
    if (w.bf16) return matmul_bf16_forward(y, x, w.bf16, b, T);
    return matmul_qn_forward(y, x, w.qn, b, T);
}

lw_status lw_weight_backward_x(float *dx, const float *dy, lw_weight_ref w, int T, int in, int out)
{
    if (!w.bf16 && !w.qn) {
        matmul_backward(dx, NULL, NULL, dy, NULL, w.f32, T, in, out);
        return LW_OK;
    }
    lw_status st = check_shape(w, in, out);
    if (st) return st;
    if (w.bf16) return matmul_bf16_backward_x(dx, dy, w.bf16, T);
    return matmul_qn_backward_x(dx, dy, w.qn, T);
}
