/* A batch of label scores in one packed receiver pass (train_score_batch.h). */
#include "train_score_batch.h"

#include <stdlib.h>
#include <string.h>

bool lw_trainer_can_pack_scores(const lw_trainer *t)
{
    return !t->gpu && !(t->adapters && lw_adapters_active(&t->adapters->ad));
}

void lw_trainer_batch_scorer_free(lw_trainer_batch_scorer *b)
{
    if (b->ready) lw_packed_scorer_free(&b->ps);
    free(b->ids);
    free(b->is_embed);
    free(b->embeds);
    free(b->prompts);
    memset(b, 0, sizeof *b);
}

/* Room for n examples' rows. */
static lw_status reserve(lw_trainer *t, lw_trainer_batch_scorer *b, int n)
{
    if (!b->ready) {
        const lw_model *m = t->receiver;
        int rows = m->cfg.context < LW_CHUNK_ROWS ? m->cfg.context : LW_CHUNK_ROWS;
        lw_status st = lw_packed_scorer_init(&b->ps, m, rows);
        if (st) return lw_fail_wrap(st, "trainer: packed scoring");
        b->ready = true;
    }
    if (n <= b->cap) return LW_OK;
    size_t T = (size_t)t->max_T, H = (size_t)t->receiver->cfg.hidden, N = (size_t)n;
    int *ids = realloc(b->ids, N * T * sizeof *ids);
    if (ids) b->ids = ids;
    bool *is_embed = realloc(b->is_embed, N * T * sizeof *is_embed);
    if (is_embed) b->is_embed = is_embed;
    float *embeds = realloc(b->embeds, N * T * H * sizeof *embeds);
    if (embeds) b->embeds = embeds;
    lw_score_prompt *prompts = realloc(b->prompts, N * sizeof *prompts);
    if (prompts) b->prompts = prompts;
    if (!ids || !is_embed || !embeds || !prompts)
        return lw_fail(LW_ERR_NOMEM, "trainer: out of memory for %d examples' rows to score", n);
    b->cap = n;
    return LW_OK;
}

lw_status lw_trainer_score_batch(lw_trainer *t, lw_trainer_batch_scorer *b, int n, const float *const *x,
                                 const int *Tx, const float *const *soft, double *scores)
{
    int L = t->layout->n_labels;
    if (n < 1) return LW_OK;
    if (!lw_trainer_can_pack_scores(t)) {
        for (int i = 0; i < n; i++) {
            lw_status st = x ? lw_trainer_score(t, x[i], Tx[i], scores + (size_t)i * L)
                             : lw_trainer_score_soft(t, soft[i], scores + (size_t)i * L);
            if (st) return lw_fail_wrap(st, "trainer: example %d of a batch of %d", i, n);
        }
        return LW_OK;
    }
    lw_status st = reserve(t, b, n);
    size_t T = (size_t)t->max_T, H = (size_t)t->receiver->cfg.hidden;
    for (int i = 0; !st && i < n; i++) {
        int P;
        st = lw_trainer_fill_prompt(t, x ? x[i] : NULL, x ? Tx[i] : 0, x ? NULL : soft[i], &P);
        if (st) return lw_fail_wrap(st, "trainer: example %d of a batch of %d", i, n);
        /* the rows are the pass's scratch: each example's are kept for the pack */
        int *ids = b->ids + i * T;
        bool *is_embed = b->is_embed + i * T;
        float *embeds = b->embeds + i * T * H;
        memcpy(ids, t->rx.ids, (size_t)P * sizeof *ids);
        memcpy(is_embed, t->rx.is_embed, (size_t)P * sizeof *is_embed);
        memcpy(embeds, t->rx.embeds, (size_t)P * H * sizeof *embeds);
        b->prompts[i] = (lw_score_prompt){.ids = ids, .embeds = embeds, .is_embed = is_embed, .P = P};
    }
    if (!st)
        st = lw_packed_scorer_score(&b->ps, n, b->prompts, L, (const int *const *)t->layout->verb, t->layout->verb_len,
                                    scores);
    return st;
}
