/* The bridge on answers: bridge forward, the receiver's answer pass, back. */
#include "bridge_answer.h"

#include <stdlib.h>
#include <string.h>

lw_status lw_bridge_answer_init(lw_bridge_answer *b, lw_bridge *bridge, lw_answer_pass *pass, int max_T,
                                float first_token_weight)
{
    memset(b, 0, sizeof *b);
    if (bridge->receiver_hidden != pass->m->cfg.hidden)
        return lw_fail(LW_ERR_INVALID, "bridge on answers: the bridge gives width %d, the receiver %s has %d",
                       bridge->receiver_hidden, pass->m->cfg.name, pass->m->cfg.hidden);
    b->bridge = bridge;
    b->pass = pass;
    b->max_T = max_T;
    b->first_token_weight = first_token_weight;
    lw_status st = lw_bridge_acts_create(bridge, max_T, &b->acts);
    size_t MR = (size_t)bridge->cfg.soft_tokens * bridge->receiver_hidden;
    if (!st && (!(b->soft = calloc(MR, sizeof(float))) || !(b->dsoft = calloc(MR, sizeof(float)))))
        st = lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    if (st) lw_bridge_answer_free(b);
    return st;
}

void lw_bridge_answer_free(lw_bridge_answer *b)
{
    lw_bridge_acts_free(b->acts);
    free(b->soft);
    free(b->dsoft);
    lw_spread_term_free(&b->spread);
    memset(b, 0, sizeof *b);
}

lw_status lw_bridge_answer_set_spread(lw_bridge_answer *b, float weight)
{
    lw_spread_term_free(&b->spread);
    return lw_spread_term_init(&b->spread, weight, b->bridge->cfg.soft_tokens, b->bridge->receiver_hidden);
}

lw_status lw_bridge_answer_fill(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *r)
{
    if (T < 1 || T > b->max_T) return lw_fail(LW_ERR_INVALID, "bridge on answers: %d sender rows (1..%d)", T, b->max_T);
    lw_status st = lw_bridge_forward(b->bridge, b->acts, x, T, b->soft);
    if (!st)
        st = lw_answer_pass_fill(b->pass, r->before, r->n_before, b->soft, b->bridge->cfg.soft_tokens, r->after,
                                 r->n_after, r->answer, r->L);
    return st;
}

lw_status lw_bridge_answer_loss(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *rows,
                                float *loss)
{
    lw_status st = lw_bridge_answer_fill(b, x, T, rows);
    return st ? st : lw_answer_pass_loss(b->pass, b->first_token_weight, loss);
}

lw_status lw_bridge_answer_example(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *rows,
                                   float scale, float *loss)
{
    lw_status st = lw_bridge_answer_loss(b, x, T, rows, loss);
    if (!st) st = lw_answer_pass_backward(b->pass, b->first_token_weight, scale);
    if (st) return lw_fail_wrap(st, "bridge on answers");
    size_t MR = (size_t)b->bridge->cfg.soft_tokens * b->bridge->receiver_hidden;
    memcpy(b->dsoft, lw_answer_pass_d_soft(b->pass), MR * sizeof(float));
    lw_spread_term_step(&b->spread, b->soft, b->dsoft, scale);
    lw_bridge_backward(b->bridge, b->acts, b->dsoft, NULL);
    return LW_OK;
}
