/* The receiver's pass over soft tokens, a prompt and a written answer. */
#include "answer_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frozen_matmul.h"
#include "ops.h"

lw_status lw_answer_pass_alloc(lw_answer_pass *p, const lw_model *m, int max_T, int max_answer)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    p->max_T = max_T;
    p->max_answer = max_answer;
    const lw_model_config *c = &m->cfg;
    if (max_answer < 1 || max_T < 2 || max_T + max_answer > c->context)
        return lw_fail(LW_ERR_INVALID, "answer pass: %d prompt rows and %d answer tokens do not fit %s's %d positions",
                       max_T, max_answer, c->name, c->context);
    lw_status st = lw_state_alloc(m, max_T, true, &p->state);
    if (!st) st = lw_state_alloc(m, max_T + max_answer, false, &p->gen_state);
    if (!st) st = lw_backward_scratch_alloc(m, max_T, &p->bwd);
    if (st) {
        lw_answer_pass_free(p);
        return lw_fail_wrap(st, "answer pass: %s", c->name);
    }
    st = lw_pass_rows_alloc(&p->rows_buf, (size_t)max_T, (size_t)c->hidden, (size_t)max_answer, (size_t)c->vocab,
                            "answer pass");
    if (st) lw_answer_pass_free(p);
    return st;
}

void lw_answer_pass_free(lw_answer_pass *p)
{
    lw_state_free(p->state);
    lw_state_free(p->gen_state);
    lw_backward_scratch_free(p->bwd);
    lw_pass_rows_free(&p->rows_buf);
    memset(p, 0, sizeof *p);
}

lw_status lw_answer_pass_fill(lw_answer_pass *p, const int *before, int n_before, const float *soft, int M,
                              const int *after, int n_after, const int *answer, int L)
{
    const lw_model_config *c = &p->m->cfg;
    if (n_before < 0 || n_after < 0 || M < 0 || L < 0 || (L > 0 && !answer))
        return lw_fail(LW_ERR_INVALID, "answer pass: negative row counts");
    int P = n_before + M + n_after, T = P + (L > 0 ? L - 1 : 0);
    if (P < 1 || T > p->max_T || L > p->max_answer)
        return lw_fail(LW_ERR_INVALID,
                       "answer pass: a %d-row prompt and a %d-token answer do not fit %d rows and %d answer tokens", P,
                       L, p->max_T, p->max_answer);
    size_t H = (size_t)c->hidden;
    int r = 0;
    for (int i = 0; i < n_before; i++, r++) p->ids[r] = before[i], p->is_embed[r] = false;
    p->soft_row = r;
    p->M = M;
    if (M > 0) memcpy(p->embeds + (size_t)r * H, soft, (size_t)M * H * sizeof(float));
    for (int i = 0; i < M; i++, r++) p->ids[r] = 0, p->is_embed[r] = true;
    for (int i = 0; i < n_after; i++, r++) p->ids[r] = after[i], p->is_embed[r] = false;
    for (int i = 0; i + 1 < L; i++, r++) p->ids[r] = answer[i], p->is_embed[r] = false;
    for (int i = 0; i < L; i++) {
        if (answer[i] < 0 || answer[i] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "answer pass: answer token %d is %d, vocab %d", i, answer[i], c->vocab);
        p->targets[i] = answer[i];
    }
    for (int i = 0; i < n_before + n_after; i++) {
        int id = i < n_before ? before[i] : after[i - n_before];
        if (id < 0 || id >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "answer pass: prompt token %d is %d, vocab %d", i, id, c->vocab);
    }
    p->T = T;
    p->P = P;
    p->L = L;
    return LW_OK;
}

/* -log softmax(row)[target] in double, from the logits. */
static double row_ce(const float *logits, int V, int target)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return mx + log(sum) - logits[target];
}

/* The forward of every filled row and the answer rows' logits. */
static lw_status answer_logits(lw_answer_pass *p)
{
    const lw_model *m = p->m;
    if (p->L < 1) return lw_fail(LW_ERR_INVALID, "answer pass: no answer tokens filled");
    int H = m->cfg.hidden, L = p->L, T = p->T;
    lw_state_reset(p->state);
    /* capturing the final-normed output runs every block (what backward
     * needs) without projecting every row onto the vocabulary */
    lw_forward_args a = {.ids = p->ids, .embeds = p->embeds, .is_embed = p->is_embed, .T = T,
                         .capture_layer = m->cfg.n_layers, .hidden_out = p->final};
    lw_status st = lw_forward(m, p->state, &a);
    if (st) return st;
    return lw_weight_forward(p->logits, p->final + (size_t)(T - L) * H, lw_model_weight(m, -1, LW_W_OUTPUT), NULL,
                             L, H, m->cfg.vocab);
}

lw_status lw_answer_pass_loss(lw_answer_pass *p, float first_token_weight, float *loss)
{
    lw_status st = answer_logits(p);
    if (st) return st;
    int V = p->m->cfg.vocab;
    double ce = cross_entropy_forward(p->probs, p->logits, p->targets, p->L, V);
    if (first_token_weight != 0.0f) ce += first_token_weight * row_ce(p->logits, V, p->targets[0]);
    *loss = (float)ce;
    return LW_OK;
}

lw_status lw_answer_pass_backward(lw_answer_pass *p, float first_token_weight, float scale)
{
    int L = p->L, V = p->m->cfg.vocab;
    if (L < 1) return lw_fail(LW_ERR_INVALID, "answer pass: backward without an answer");
    memset(p->dlogits, 0, (size_t)L * V * sizeof(float));
    cross_entropy_backward(p->dlogits, p->probs, p->targets, L, V, scale);
    /* the first-token term: one more row-0 cross-entropy (count 1) */
    if (first_token_weight != 0.0f)
        cross_entropy_backward(p->dlogits, p->probs, p->targets, 1, V, scale * first_token_weight);
    for (int i = 0; i < L; i++) p->rows[i] = p->T - L + i;
    return lw_model_backward_rows(p->m, p->state, p->bwd, p->rows, L, p->dlogits, p->d_embeds);
}

lw_status lw_answer_pass_score(lw_answer_pass *p, double *mean_logprob)
{
    lw_status st = answer_logits(p);
    if (st) return st;
    int V = p->m->cfg.vocab;
    double total = 0.0;
    for (int i = 0; i < p->L; i++) total += row_ce(p->logits + (size_t)i * V, V, p->targets[i]);
    *mean_logprob = -total / p->L;
    return LW_OK;
}

static bool is_stop(const lw_answer_gen_args *a, int tok)
{
    for (int i = 0; i < a->n_stop; i++)
        if (a->stop_ids[i] == tok) return true;
    return false;
}

lw_status lw_answer_pass_generate(lw_answer_pass *p, const lw_answer_gen_args *a, int *out, int *n_out)
{
    const lw_model *m = p->m;
    *n_out = 0;
    int P = p->P, V = m->cfg.vocab;
    if (p->L != 0) return lw_fail(LW_ERR_INVALID, "answer pass: generation needs the prompt alone (fill with L = 0)");
    if (a->max_new < 1 || P + a->max_new > p->max_T + p->max_answer)
        return lw_fail(LW_ERR_INVALID, "answer pass: %d new tokens after %d prompt rows exceed %d positions",
                       a->max_new, P, p->max_T + p->max_answer);
    lw_rng rng;
    lw_rng_seed(&rng, a->seed);
    lw_state_reset(p->gen_state);
    lw_forward_args f = {.ids = p->ids, .embeds = p->embeds, .is_embed = p->is_embed, .T = P, .logits = p->last,
                         .capture_layer = -1};
    lw_status st = lw_forward(m, p->gen_state, &f);
    for (int n = 0; !st && n < a->max_new; n++) {
        int tok = lw_sample(p->last, V, a->temperature, a->top_p, &rng);
        if (is_stop(a, tok)) break;
        out[(*n_out)++] = tok;
        if (a->keep_going && !a->keep_going(a->user, out, *n_out)) break;
        if (n + 1 == a->max_new) break;
        lw_forward_args g = {.ids = &tok, .T = 1, .pos0 = P + n, .logits = p->last, .capture_layer = -1};
        st = lw_forward(m, p->gen_state, &g);
    }
    return st ? lw_fail_wrap(st, "answer pass: generating") : LW_OK;
}
