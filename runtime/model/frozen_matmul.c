/* The one rule for products on frozen matrices (frozen_matmul.h). */
#include "frozen_matmul.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the label-scoring record (plan.h LW_OP_HEAD_LOGSOFTMAX) on the CPU ----
 *
 * The output head with a log-softmax over the vocabulary for a few (row,
 * token) pairs, forward and backward: a product on the frozen head whose
 * form the head's dtype picks, as every product here. The record names the
 * rows (in: xf), the head (w) and the widths (width: hidden, parts[0]:
 * vocab).
 *
 *   fp32  one fused pass (ops.h head_logsoftmax_forward / _backward): the
 *         vocabulary in blocks, a running log-sum-exp per row, no V-wide
 *         row of logits held;
 *   else  (bf16, GGUF blocks) the head's own product SCORE_CHUNK rows at a
 *         time, whole rows of logits, the log-softmax in double
 *         (lw_log_prob).
 *
 * These are the two forms label scoring ran by hand before it was a record
 * (label_scoring.c's continuations and the packed scorer's rows), with the
 * same calls in the same order. Every scorer now stands on it: a prompt's
 * last row (every label's first token), the verbalizers' continuation rows
 * and the packed scorer's rows all reach the head here. It lives here, beside
 * the products, rather than with the block executor (plan_cpu.c), so that
 * label scoring stands on the products only (scripts/include-floors). */

/* Rows of the output head per product of the narrow form: 64 x 262,144
 * floats for Gemma is 64 MiB. */
#define SCORE_CHUNK 64

/* The plan's record (the receiver's last model-level op). */
static lw_status find_op(const lw_plan *p, const lw_model *m, const lw_plan_op **op)
{
    for (int i = 0; i < p->n_model_ops; i++)
        if (p->model_ops[i].kind == LW_OP_HEAD_LOGSOFTMAX) {
            *op = &p->model_ops[i];
            if ((*op)->width != m->cfg.hidden || (*op)->parts[0].width != m->cfg.vocab)
                return lw_fail(LW_ERR_INVALID, "%s: the plan's head_logsoftmax is %d x %d, the model %d x %d",
                               m->cfg.name, (*op)->parts[0].width, (*op)->width, m->cfg.vocab, m->cfg.hidden);
            return LW_OK;
        }
    return lw_fail(LW_ERR_INVALID, "%s: the plan has no head_logsoftmax record (label scoring)", m->cfg.name);
}

static lw_status check_pairs(const lw_model *m, int n_rows, const int *pair_row, const int *pair_id, int n_pairs)
{
    if (n_rows < 0 || n_pairs < 0)
        return lw_fail(LW_ERR_INVALID, "%s: head_logsoftmax over %d rows, %d pairs", m->cfg.name, n_rows, n_pairs);
    for (int k = 0; k < n_pairs; k++)
        if (pair_row[k] < 0 || pair_row[k] >= n_rows || pair_id[k] < 0 || pair_id[k] >= m->cfg.vocab)
            return lw_fail(LW_ERR_INVALID, "%s: head_logsoftmax pair %d is (row %d, token %d); rows 0..%d, vocab %d",
                           m->cfg.name, k, pair_row[k], pair_id[k], n_rows - 1, m->cfg.vocab);
    return LW_OK;
}

/* A row's max and sum of exp(logit - max), in double: lw_log_prob's sums,
 * taken once a row however many of its tokens are asked for (Banking77:
 * 77 first tokens on one row). */
static void row_sums(const float *logits, int V, float *mx_out, double *sum_out)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    *mx_out = mx, *sum_out = sum;
}

double lw_log_prob(const float *logits, int V, int id)
{
    float mx;
    double sum;
    row_sums(logits, V, &mx, &sum);
    return (double)(logits[id] - mx) - log(sum);
}

/* The narrow head (bf16, GGUF blocks), forward (dlogp NULL: logp[k] and,
 * if lse, each row's log-sum-exp) or backward (dxf += dlogits @ head, from
 * the forward's lse_in): one loop for both, the head's own product over
 * SCORE_CHUNK rows at a time into whole rows of logits. A chunk never
 * leaves a lone row for the last product (a one-row product may sum in
 * another order than a matrix product: the packed scorer's rule). */
static lw_status narrow_head(const lw_model *m, lw_weight_ref head, const float *xf, int n_rows, int H, int V,
                             const int *pair_row, const int *pair_id, int n_pairs, const float *dlogp,
                             const float *lse_in, float *lse, double *logp, float *dxf)
{
    int chunk = n_rows < SCORE_CHUNK ? n_rows : SCORE_CHUNK;
    float *logits = malloc((size_t)chunk * V * sizeof *logits);
    if (!logits) return lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory for %d rows of logits", m->cfg.name, chunk);
    lw_status st = LW_OK;
    for (int r0 = 0, nr = 0; r0 < n_rows && !st; r0 += nr) {
        nr = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        if (n_rows - r0 - nr == 1 && nr > 1) nr--;
        st = lw_weight_forward(logits, xf + (size_t)r0 * H, head, NULL, nr, H, V);
        if (st) break;
        if (!dlogp) {   /* each row's sums once, then lw_log_prob's value for each of its pairs */
            for (int r = 0; r < nr; r++) {
                bool used = lse != NULL;
                for (int k = 0; !used && k < n_pairs; k++) used = pair_row[k] == r0 + r;
                if (!used) continue;
                const float *row = logits + (size_t)r * V;
                float mx;
                double sum;
                row_sums(row, V, &mx, &sum);
                for (int k = 0; k < n_pairs; k++)
                    if (pair_row[k] == r0 + r) logp[k] = (double)(row[pair_id[k]] - mx) - log(sum);
                if (lse) lse[r0 + r] = (float)((double)mx + log(sum));
            }
            continue;
        }
        /* dlogits_t,v = sum of row t's pairs' dlogp [v = id] - g_t p_tv */
        for (int r = 0; r < nr; r++) {
            float g = 0.f, *row = logits + (size_t)r * V, l = lse_in[r0 + r];
            for (int k = 0; k < n_pairs; k++)
                if (pair_row[k] == r0 + r) g += dlogp[k];
            for (int v = 0; v < V; v++) row[v] = -g * expf(row[v] - l);
            for (int k = 0; k < n_pairs; k++)
                if (pair_row[k] == r0 + r) row[pair_id[k]] += dlogp[k];
        }
        st = lw_weight_backward_x(dxf + (size_t)r0 * H, logits, head, nr, H, V);
    }
    free(logits);
    return st;
}

lw_status lw_plan_cpu_head_logsoftmax(const lw_plan *p, const lw_model *m, const float *xf, int n_rows,
                                      const int *pair_row, const int *pair_id, int n_pairs, float *lse, double *logp)
{
    const lw_plan_op *op;
    lw_status st = find_op(p, m, &op);
    if (!st) st = check_pairs(m, n_rows, pair_row, pair_id, n_pairs);
    if (st || n_rows == 0) return st;
    int H = op->width, V = op->parts[0].width;
    lw_weight_ref head = lw_model_weight(m, -1, op->w);
    if (!head.f32) return narrow_head(m, head, xf, n_rows, H, V, pair_row, pair_id, n_pairs, NULL, NULL, lse, logp, NULL);
    float *buf = malloc((HEAD_SCRATCH + (size_t)n_pairs + (size_t)n_rows) * sizeof *buf);
    if (!buf) return lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory for %d pairs", m->cfg.name, n_pairs);
    float *lp = buf + HEAD_SCRATCH;
    if (!lse) lse = lp + n_pairs;   /* the running max lives there: not optional here */
    head_logsoftmax_forward(lp, lse, xf, head.f32, n_rows, H, V, pair_row, pair_id, n_pairs, buf);
    for (int k = 0; k < n_pairs; k++) logp[k] = lp[k];
    free(buf);
    return LW_OK;
}

lw_status lw_plan_cpu_head_logsoftmax_backward(const lw_plan *p, const lw_model *m, const float *xf, int n_rows,
                                               const int *pair_row, const int *pair_id, int n_pairs, const float *lse,
                                               const float *dlogp, float *dxf)
{
    const lw_plan_op *op;
    lw_status st = find_op(p, m, &op);
    if (!st) st = check_pairs(m, n_rows, pair_row, pair_id, n_pairs);
    if (st || n_rows == 0) return st;
    int H = op->width, V = op->parts[0].width;
    if (op->flags & LW_PLAN_ZERO_DIN) memset(dxf, 0, (size_t)n_rows * H * sizeof *dxf);
    lw_weight_ref head = lw_model_weight(m, -1, op->w);
    if (!head.f32)
        return narrow_head(m, head, xf, n_rows, H, V, pair_row, pair_id, n_pairs, dlogp, lse, NULL, NULL, dxf);
    float *buf = malloc(HEAD_SCRATCH * sizeof *buf);
    if (!buf) return lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory (backward)", m->cfg.name);
    /* dw NULL: the head is frozen */
    head_logsoftmax_backward(dxf, NULL, dlogp, xf, head.f32, n_rows, H, V, pair_row, pair_id, n_pairs, lse, buf);
    free(buf);
    return LW_OK;
}
