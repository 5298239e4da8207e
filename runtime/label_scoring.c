#include "label_scoring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_label_scorer_init(lw_label_scorer *s, const lw_model *m, int max_tokens)
{
    memset(s, 0, sizeof *s);
    s->model = m;
    s->max_tokens = max_tokens;
    if (max_tokens < 1 || max_tokens > m->cfg.context)
        return lw_fail(LW_ERR_INVALID, "label scorer: %d positions (%s has 1..%d)", max_tokens, m->cfg.name,
                       m->cfg.context);
    lw_status st = lw_state_alloc(m, max_tokens, false, &s->state);
    s->fed = malloc((size_t)max_tokens * sizeof *s->fed);
    s->last = malloc((size_t)m->cfg.vocab * sizeof *s->last);
    if (!st && (!s->fed || !s->last)) st = lw_fail(LW_ERR_NOMEM, "label scorer: out of memory");
    if (st) lw_label_scorer_free(s);
    return st;
}

void lw_label_scorer_free(lw_label_scorer *s)
{
    lw_state_free(s->state);
    free(s->fed);
    free(s->last);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

double lw_log_prob(const float *logits, int V, int id)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    return (double)(logits[id] - mx) - log(sum);
}

lw_status lw_score_verbalizers(const lw_model *m, lw_state *s, const lw_receiver_adapters *ad, int P,
                               const float *last, float *rows, int n_labels, const int *const *verb,
                               const int *verb_len, double *scores)
{
    int V = m->cfg.vocab;
    for (int k = 0; k < n_labels; k++) {
        const int *v = verb[k];
        int L = verb_len[k];
        scores[k] = lw_log_prob(last, V, v[0]);
        if (L < 2) continue;
        lw_forward_args b = {.ids = v, .T = L - 1, .pos0 = P, .logits = rows, .all_logits = true,
                             .capture_layer = -1, .adapters = ad};
        lw_status st = lw_forward(m, s, &b);
        if (st) return st;
        for (int i = 1; i < L; i++) scores[k] += lw_log_prob(rows + (size_t)(i - 1) * V, V, v[i]);
    }
    return LW_OK;
}

static lw_status check_ids(const lw_label_scorer *s, const int *ids, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->model->cfg.vocab)
            return lw_fail(LW_ERR_INVALID, "label scorer: %s token %d is id %d, outside %s's vocab %d", what, i,
                           ids[i], s->model->cfg.name, s->model->cfg.vocab);
    return LW_OK;
}

/* Runs the prompt from the first position the cache does not already hold
 * (at least its last token, whose logits we need) into s->last. */
static lw_status run_prompt(lw_label_scorer *s, const int *ids, int n)
{
    if (n < 1 || n > s->max_tokens)
        return lw_fail(LW_ERR_INVALID, "label scorer: a prompt of %d tokens (1..%d fit)", n, s->max_tokens);
    lw_status st = check_ids(s, ids, n, "prompt");
    if (st) return st;
    int keep = 0, held = s->n_fed < lw_state_cached(s->state) ? s->n_fed : lw_state_cached(s->state);
    while (keep < held && keep < n - 1 && s->fed[keep] == ids[keep]) keep++;
    lw_forward_args a = {.ids = ids + keep, .T = n - keep, .pos0 = keep, .logits = s->last, .capture_layer = -1};
    s->n_fed = 0;
    if ((st = lw_forward(s->model, s->state, &a))) return st;
    memcpy(s->fed, ids, (size_t)n * sizeof *ids);
    s->n_fed = n;
    return LW_OK;
}

static lw_status grow_rows(lw_label_scorer *s, int rows)
{
    if (rows <= s->rows_cap) return LW_OK;
    float *r = realloc(s->rows, (size_t)rows * (size_t)s->model->cfg.vocab * sizeof *r);
    if (!r) return lw_fail(LW_ERR_NOMEM, "label scorer: out of memory for %d logit rows", rows);
    s->rows = r;
    s->rows_cap = rows;
    return LW_OK;
}

lw_status lw_label_scorer_score(lw_label_scorer *s, const int *ids, int n, int n_labels, const int *const *verb,
                                const int *verb_len, double *scores)
{
    int max_verb = 0;
    for (int k = 0; k < n_labels; k++) {
        if (verb_len[k] < 1) return lw_fail(LW_ERR_INVALID, "label scorer: label %d has an empty verbalizer", k);
        if (verb_len[k] > max_verb) max_verb = verb_len[k];
        lw_status st = check_ids(s, verb[k], verb_len[k], "verbalizer");
        if (st) return st;
    }
    if (n > s->max_tokens - (max_verb - 1))
        return lw_fail(LW_ERR_INVALID, "label scorer: %d prompt tokens + %d verbalizer tokens exceed %d positions",
                       n, max_verb - 1, s->max_tokens);
    lw_status st = grow_rows(s, max_verb);
    if (!st) st = run_prompt(s, ids, n);
    if (!st) st = lw_score_verbalizers(s->model, s->state, NULL, n, s->last, s->rows, n_labels, verb, verb_len,
                                       scores);
    return st;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

lw_status lw_label_scorer_generate(lw_label_scorer *s, const int *ids, int n, int max_new, const int *stop_ids,
                                   int n_stop, int *out, int *n_out)
{
    *n_out = 0;
    if (max_new < 0 || n_stop < 0 || (n_stop > 0 && !stop_ids))
        return lw_fail(LW_ERR_INVALID, "label scorer: generate %d tokens with %d stop ids", max_new, n_stop);
    lw_status st = run_prompt(s, ids, n);
    int pos = n;
    while (!st && *n_out < max_new) {
        int t = argmax(s->last, s->model->cfg.vocab);
        out[(*n_out)++] = t;
        bool stop = false;
        for (int i = 0; i < n_stop; i++) stop = stop || stop_ids[i] == t;
        if (stop || *n_out == max_new || pos >= s->max_tokens) break;
        lw_forward_args a = {.ids = &out[*n_out - 1], .T = 1, .pos0 = pos, .logits = s->last, .capture_layer = -1};
        st = lw_forward(s->model, s->state, &a);
        pos++;
    }
    return st;
}
