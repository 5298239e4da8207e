#include "receiver_pass.h"
#include "frozen_matmul.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* Rows every label's verbalizer but its last adds after a prompt: the
 * scoring state holds them all at once (lw_score_verbalizers' one pass). */
static int score_positions(const lw_model *m, const lw_receiver_layout *layout, int max_T)
{
    int n = max_T;
    for (int k = 0; k < layout->n_labels; k++) n += layout->verb_len[k] - 1;
    return n < m->cfg.context ? n : m->cfg.context;   /* else label by label */
}

lw_status lw_receiver_pass_alloc(lw_receiver_pass *p, const lw_model *m, const lw_receiver_layout *layout, int max_T,
                                 const char *who)
{
    memset(p, 0, sizeof *p);
    p->m = m;
    p->layout = layout;
    p->max_T = max_T;
    const lw_model_config *c = &m->cfg;
    if (max_T < 1 || max_T > c->context)
        return lw_fail(LW_ERR_INVALID, "%s: the receiver prompt needs %d positions, %s has %d", who, max_T, c->name,
                       c->context);
    lw_status st = lw_state_alloc(m, max_T, true, &p->state);
    if (!st) st = lw_state_alloc(m, score_positions(m, layout, max_T), false, &p->score_state);
    if (!st) st = lw_backward_scratch_alloc(m, max_T, &p->bwd);
    if (st) {
        lw_receiver_pass_free(p);
        return st;
    }
    st = lw_pass_rows_alloc(&p->rows_buf, (size_t)max_T, (size_t)c->hidden, (size_t)layout->max_verb,
                            (size_t)c->vocab, who);
    if (st) lw_receiver_pass_free(p);
    return st;
}

void lw_receiver_pass_free(lw_receiver_pass *p)
{
    lw_receiver_pack_free(p->pack);
    lw_state_free(p->state);
    lw_state_free(p->score_state);
    lw_backward_scratch_free(p->bwd);
    lw_pass_rows_free(&p->rows_buf);
    memset(p, 0, sizeof *p);
}

lw_status lw_receiver_pass_grow_state(lw_receiver_pass *p, int extra)
{
    lw_state *s = NULL, *ss = NULL;
    lw_status st = lw_state_alloc(p->m, p->max_T + extra, true, &s);
    if (!st) st = lw_state_alloc(p->m, score_positions(p->m, p->layout, p->max_T + extra), false, &ss);
    if (st) {
        lw_state_free(s);
        return st;
    }
    lw_state_free(p->state);
    lw_state_free(p->score_state);
    p->state = s;
    p->score_state = ss;
    p->head_cached = false;
    return LW_OK;
}

static lw_status check_rows(const lw_receiver_pass *p, int T, int label)
{
    if (label < 0 || label >= p->layout->n_labels)
        return lw_fail(LW_ERR_INVALID, "receiver pass: label %d of %d", label, p->layout->n_labels);
    if (T < p->layout->verb_len[label] || T > p->max_T)
        return lw_fail(LW_ERR_INVALID, "receiver pass: %d rows (the verbalizer's %d..%d)", T,
                       p->layout->verb_len[label], p->max_T);
    return LW_OK;
}

/* Rows at the start of the filled T that the cached head covers: the
 * layout's before ids, when nothing trained reaches them (see the header). */
static int head_rows(const lw_receiver_pass *p, const lw_receiver_adapters *ad, int T, int L)
{
    const lw_receiver_layout *Ly = p->layout;
    int C = Ly->n_before;
    if (p->no_head_cache || C < 1 || T - C < L || lw_adapters_active(ad)) return 0;
    for (int t = 0; t < C; t++)
        if (p->is_embed[t] || p->ids[t] != Ly->before[t]) return 0;
    return C;
}

lw_status lw_receiver_pass_run_head(lw_receiver_pass *p, lw_state *s)
{
    lw_state_reset(s);
    lw_forward_args a = {.ids = p->layout->before, .T = p->layout->n_before, .capture_layer = p->m->cfg.n_layers,
                         .hidden_out = p->final};
    return lw_forward(p->m, s, &a);
}

lw_status lw_receiver_pass_loss(lw_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label, float *loss)
{
    lw_status st = check_rows(p, T, label);
    if (st) return st;
    const lw_model *m = p->m;
    int L = p->layout->verb_len[label], H = m->cfg.hidden, C = head_rows(p, ad, T, L);
    if (C && !p->head_cached && (st = lw_receiver_pass_run_head(p, p->state))) return st;
    p->head_cached = C > 0;   /* a pass from position 0 overwrites the cached rows */
    p->last_head = C;
    if (C) lw_state_rewind(p->state, C);
    else lw_state_reset(p->state);
    /* capturing the final-normed output runs every block (what backward
     * needs) without the full vocabulary projection of every row */
    size_t c0 = (size_t)C;
    lw_forward_args a = {.ids = p->ids + c0, .embeds = p->embeds + c0 * H, .is_embed = p->is_embed + c0, .T = T - C,
                         .pos0 = C, .capture_layer = m->cfg.n_layers, .hidden_out = p->final, .adapters = ad};
    if ((st = lw_forward(m, p->state, &a))) return st;
    if ((st = lw_weight_forward(p->logits, p->final + (size_t)(T - C - L) * H, lw_model_weight(m, -1, LW_W_OUTPUT),
                                NULL, L, H, m->cfg.vocab)))
        return st;
    memcpy(p->targets, p->layout->verb[label], (size_t)L * sizeof(int));
    *loss = cross_entropy_forward(p->probs, p->logits, p->targets, L, m->cfg.vocab);
    if (p->kd && p->kd->L != L)
        return lw_fail(LW_ERR_INVALID, "receiver pass: KD targets for %d positions, the verbalizer has %d", p->kd->L, L);
    if (p->kd) *loss += (float)lw_kd_loss(p->kd, p->logits, m->cfg.vocab);
    return LW_OK;
}

lw_status lw_receiver_pass_backward(lw_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label, float scale,
                                    bool *correct)
{
    lw_status st = check_rows(p, T, label);
    if (st) return st;
    int L = p->layout->verb_len[label], V = p->m->cfg.vocab;
    if (correct) *correct = lw_receiver_first_token_right(p->layout, p->logits, label);
    memset(p->dlogits, 0, (size_t)L * V * sizeof(float));
    cross_entropy_backward(p->dlogits, p->probs, p->targets, L, V, scale);
    if (p->kd) lw_kd_backward(p->kd, p->logits, V, scale, p->dlogits);
    /* rows of the last forward, which started after the cached head */
    int C = p->last_head;
    for (int i = 0; i < L; i++) p->rows[i] = T - C - L + i;
    memset(p->d_embeds, 0, (size_t)C * p->m->cfg.hidden * sizeof(float));   /* token rows: nothing to train */
    return lw_model_backward_adapted(p->m, p->state, p->bwd, ad, p->rows, L, p->dlogits,
                                     p->d_embeds + (size_t)C * p->m->cfg.hidden);
}

lw_status lw_receiver_pass_prompt(lw_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds)
{
    const lw_receiver_layout *Ly = p->layout;
    if (P < 1 || P + Ly->max_verb - 1 > p->max_T)
        return lw_fail(LW_ERR_INVALID, "receiver pass: a %d-row prompt and %d verbalizer rows exceed %d", P,
                       Ly->max_verb - 1, p->max_T);
    lw_state_reset(p->score_state);
    lw_forward_args a = {.ids = p->ids, .embeds = embeds ? p->embeds : NULL, .is_embed = embeds ? p->is_embed : NULL,
                         .T = P, .capture_layer = p->m->cfg.n_layers, .hidden_out = p->final, .adapters = ad};
    lw_status st = lw_forward(p->m, p->score_state, &a);
    /* the scorer reads the prompt's last row final-normed (lw_score_verbalizers: the head_logsoftmax record) */
    if (!st) memcpy(p->last, p->final + (size_t)(P - 1) * p->m->cfg.hidden, (size_t)p->m->cfg.hidden * sizeof(float));
    return st;
}
