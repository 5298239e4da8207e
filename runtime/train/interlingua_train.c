/* One example through the interlingua and every reader. */
#include "interlingua_train.h"

#include <stdlib.h>
#include <string.h>

lw_status lw_il_trainer_create(lw_il_trainer *t, lw_interlingua *il, const lw_model *const *readers, int max_T,
                               int max_answer, float first_token_weight)
{
    memset(t, 0, sizeof *t);
    t->il = il;
    t->first_token_weight = first_token_weight;
    int M = lw_interlingua_M(il);
    lw_status st = LW_OK;
    for (int r = 0; !st && r < il->n_readers; r++) {
        const lw_model *m = readers[r];
        t->readers[r] = m;
        if (m->cfg.hidden != il->readers[r].hidden) {
            st = lw_fail(LW_ERR_INVALID, "interlingua trainer: reader %d (%s) has hidden %d, its adapter gives %d", r,
                         m->cfg.name, m->cfg.hidden, il->readers[r].hidden);
            break;
        }
        st = lw_answer_pass_alloc(&t->pass[r], m, max_T, max_answer);
        t->n_readers = r + 1;   /* what free must release */
        if (!st && !(t->soft[r] = calloc((size_t)M * m->cfg.hidden, sizeof(float))))
            st = lw_fail(LW_ERR_NOMEM, "interlingua trainer: out of memory for reader %d's soft tokens", r);
    }
    if (st) lw_il_trainer_free(t);
    return st;
}

void lw_il_trainer_free(lw_il_trainer *t)
{
    for (int r = 0; r < t->n_readers; r++) {
        lw_answer_pass_free(&t->pass[r]);
        free(t->soft[r]);
    }
    lw_spread_term_free(&t->spread);
    memset(t, 0, sizeof *t);
}

lw_status lw_il_trainer_set_spread(lw_il_trainer *t, float weight)
{
    lw_spread_term_free(&t->spread);
    return lw_spread_term_init(&t->spread, weight, lw_interlingua_M(t->il), t->il->enc.receiver_hidden);
}

lw_status lw_il_trainer_encode(lw_il_trainer *t, const float *feats, int T)
{
    return lw_interlingua_encode(t->il, feats, T, NULL);
}

lw_status lw_il_trainer_fill(lw_il_trainer *t, int r, const lw_il_rows *x)
{
    if (r < 0 || r >= t->n_readers)
        return lw_fail(LW_ERR_INVALID, "interlingua trainer: reader %d of %d", r, t->n_readers);
    lw_status st = lw_interlingua_read(t->il, r, t->soft[r]);
    if (!st)
        st = lw_answer_pass_fill(&t->pass[r], x->before, x->n_before, t->soft[r], lw_interlingua_M(t->il), x->after,
                                 x->n_after, x->answer, x->L);
    return st ? lw_fail_wrap(st, "interlingua trainer: reader %d (%s)", r, t->readers[r]->cfg.name) : LW_OK;
}

lw_status lw_il_trainer_loss(lw_il_trainer *t, const float *feats, int T, const lw_il_rows *rows, float *total)
{
    lw_status st = lw_il_trainer_encode(t, feats, T);
    double sum = 0.0;
    for (int r = 0; !st && r < t->n_readers; r++) {
        float l;
        if (!(st = lw_il_trainer_fill(t, r, &rows[r])) && !(st = lw_answer_pass_loss(&t->pass[r], t->first_token_weight, &l)))
            sum += l;
    }
    if (!st) *total = (float)sum;
    return st;
}

lw_status lw_il_trainer_example(lw_il_trainer *t, const float *feats, int T, const lw_il_rows *rows, float scale,
                                float *losses)
{
    lw_status st = lw_il_trainer_encode(t, feats, T);
    for (int r = 0; !st && r < t->n_readers; r++) {
        if ((st = lw_il_trainer_fill(t, r, &rows[r]))) break;
        lw_answer_pass *p = &t->pass[r];
        if ((st = lw_answer_pass_loss(p, t->first_token_weight, &losses[r])) ||
            (st = lw_answer_pass_backward(p, t->first_token_weight, scale)))
            break;
        lw_interlingua_read_backward(t->il, r, lw_answer_pass_d_soft(p));
    }
    if (st) return lw_fail_wrap(st, "interlingua trainer: example");
    lw_spread_term_step(&t->spread, t->il->z, t->il->dz, scale);   /* dz: the readers' sum so far */
    lw_interlingua_encode_backward(t->il);
    return LW_OK;
}
