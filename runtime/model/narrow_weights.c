/* A model's frozen matrices in bf16 (narrow_weights.h). */
#include "narrow_weights.h"

#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_path.h"

/* One block's narrow matrices. wq wk wv and w_gate w_up are row views of
 * the fused wqkv and w_gate_up (the backward's per-part products read them;
 * a view has no packed copy and owns nothing). */
typedef struct {
    lw_bf16_matrix wqkv, wo, w_gate_up, w_down;
    lw_bf16_matrix wq, wk, wv, w_gate, w_up;   /* views */
} lw_layer_narrow;

struct lw_narrow_weights {
    int n_layers;
    lw_layer_narrow *layers;   /* [n_layers] */
    lw_bf16_matrix output;     /* the head [vocab, hidden]; its own copy when tied (the table stays fp32) */
};

const char *lw_weights_dtype_name(lw_weights_dtype d) { return d == LW_WEIGHTS_BF16 ? "bf16" : "fp32"; }

bool lw_weights_dtype_parse(const char *s, lw_weights_dtype *out)
{
    if (!s) return false;
    if (!strcmp(s, "fp32")) return *out = LW_WEIGHTS_F32, true;
    if (!strcmp(s, "bf16")) return *out = LW_WEIGHTS_BF16, true;
    return false;
}

/* Rows [r0, r0 + n) of a packed matrix, for the backward (which reads w
 * only): no packed copy, owns nothing. */
static lw_bf16_matrix rows_view(const lw_bf16_matrix *m, int r0, int n)
{
    if (!m->w) return (lw_bf16_matrix){0};   /* forward only: no rows to view */
    return (lw_bf16_matrix){.w = m->w + (size_t)r0 * m->ld, .p = NULL, .out = n, .in = m->in, .ld = m->ld};
}

void lw_narrow_weights_free(struct lw_narrow_weights *n)
{
    if (!n) return;
    for (int l = 0; n->layers && l < n->n_layers; l++) {
        lw_layer_narrow *N = &n->layers[l];
        lw_bf16_matrix_free(&N->wqkv);
        lw_bf16_matrix_free(&N->wo);
        lw_bf16_matrix_free(&N->w_gate_up);
        lw_bf16_matrix_free(&N->w_down);
    }
    free(n->layers);
    lw_bf16_matrix_free(&n->output);
    free(n);
}

/* Without a backward, a matrix the forward reads packed needs no rows. */
static void drop_rows(lw_bf16_matrix *b, bool backward)
{
    lw_cpu_path path;
    if (backward || !b->p || lw_cpu_path_get(&path) != LW_OK || path != LW_CPU_AVX512) return;
    free(b->w);
    b->w = NULL;
}

static lw_status narrow_layer(const lw_model_config *c, int l, const lw_layer_weights *L, lw_layer_narrow *N,
                              bool backward)
{
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    if (!L->wqkv || !L->wo || !L->w_gate_up || !L->w_down)
        return lw_fail(LW_ERR_INVALID, "--dtype bf16: %s layer %d has no fused fp32 projections to narrow", c->name,
                       l);
    lw_status st;
    if ((st = lw_bf16_matrix_pack(&N->wqkv, L->wqkv, qd + 2 * kvd, H)) ||
        (st = lw_bf16_matrix_pack(&N->wo, L->wo, H, qd)) ||
        (st = lw_bf16_matrix_pack(&N->w_gate_up, L->w_gate_up, 2 * F, H)) ||
        (st = lw_bf16_matrix_pack(&N->w_down, L->w_down, H, F)))
        return lw_fail_wrap(st, "--dtype bf16: %s layer %d", c->name, l);
    drop_rows(&N->wqkv, backward), drop_rows(&N->wo, backward);
    drop_rows(&N->w_gate_up, backward), drop_rows(&N->w_down, backward);
    N->wq = rows_view(&N->wqkv, 0, qd);
    N->wk = rows_view(&N->wqkv, qd, kvd);
    N->wv = rows_view(&N->wqkv, qd + kvd, kvd);
    N->w_gate = rows_view(&N->w_gate_up, 0, F);
    N->w_up = rows_view(&N->w_gate_up, F, F);
    return LW_OK;
}

lw_status lw_model_narrow_bf16(lw_model *m, bool backward)
{
    const lw_model_config *c = &m->cfg;
    if (m->narrow) return lw_fail(LW_ERR_INVALID, "--dtype bf16: %s is already bf16", c->name);
    if (!m->output) return lw_fail(LW_ERR_INVALID, "--dtype bf16: %s has no output head", c->name);
    struct lw_narrow_weights *n = calloc(1, sizeof *n);
    if (!n) return lw_fail(LW_ERR_NOMEM, "--dtype bf16: %s", c->name);
    n->n_layers = c->n_layers;
    n->layers = calloc((size_t)c->n_layers, sizeof *n->layers);
    lw_status st = n->layers ? LW_OK : lw_fail(LW_ERR_NOMEM, "--dtype bf16: %s: %d layers", c->name, c->n_layers);
    for (int l = 0; !st && l < c->n_layers; l++) st = narrow_layer(c, l, &m->layers[l], &n->layers[l], backward);
    if (!st && (st = lw_bf16_matrix_pack(&n->output, m->output, c->vocab, c->hidden)))
        st = lw_fail_wrap(st, "--dtype bf16: %s output head", c->name);
    if (!st) drop_rows(&n->output, backward);
    if (st) {
        lw_narrow_weights_free(n);
        return st;
    }
    /* every copy made: only now drop the fp32 ones (the views with them) */
    for (int l = 0; l < c->n_layers; l++) {
        lw_layer_weights *L = &m->layers[l];
        free(L->wqkv);
        free(L->wo);
        free(L->w_gate_up);
        free(L->w_down);
        L->wqkv = L->wq = L->wk = L->wv = L->wo = L->w_gate_up = L->w_gate = L->w_up = L->w_down = NULL;
    }
    if (m->output != m->token_embd) free(m->output);
    m->output = NULL;
    m->narrow = n;
    return LW_OK;
}

static size_t bf16_bytes(const lw_bf16_matrix *b)
{
    size_t w = (size_t)b->out * (size_t)b->ld * sizeof(uint16_t);
    return (b->w ? w : 0) + (b->p ? (size_t)(b->out + 15) / 16 * 16 * (size_t)b->ld * sizeof(uint16_t) : 0);
}

size_t lw_model_weight_bytes_held(const lw_model *m)
{
    const lw_model_config *c = &m->cfg;
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t F = (size_t)c->ffn, V = (size_t)c->vocab, f = sizeof(float);
    size_t bytes = V * H * f + H * f;   /* the table, output_norm */
    if (m->output && m->output != m->token_embd) bytes += V * H * f;
    for (int l = 0; l < c->n_layers; l++) {
        const lw_layer_weights *L = &m->layers[l];
        bytes += 4 * H * f + 2 * (size_t)c->head_dim * f + (L->bqkv ? (qd + 2 * kvd) * f : 0);  /* norms, bias */
        if (L->wqkv) bytes += ((qd + 2 * kvd) * H + H * qd + 2 * F * H + H * F) * f;
    }
    if (m->narrow) {
        for (int l = 0; l < m->narrow->n_layers; l++) {
            const lw_layer_narrow *N = &m->narrow->layers[l];
            bytes += bf16_bytes(&N->wqkv) + bf16_bytes(&N->wo) + bf16_bytes(&N->w_gate_up) + bf16_bytes(&N->w_down);
        }
        bytes += bf16_bytes(&m->narrow->output);
    }
    return bytes;
}

const struct lw_bf16_matrix *lw_narrow_matrix(const lw_model *m, int l, lw_plan_weight w)
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
