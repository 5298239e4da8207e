#include "label_scoring.h"
#include "frozen_matmul.h"

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
    memset(s, 0, sizeof *s);
}

/* scores[k] from the n_rows + 1 final-normed rows in hid: row 0 the
 * prompt's last (every label's first token), then label by label its
 * continuation rows (verb_len[k] - 1 each), through the plan's
 * head_logsoftmax record (frozen_matmul.c): the head is read once for all
 * of them, and no row of logits is held under an fp32 head. */
static lw_status add_log_probs(const lw_model *m, const float *hid, int n_rows, int n_labels, const int *const *verb,
                               const int *verb_len, double *scores)
{
    lw_plan plan;
    lw_plan_lower(&m->cfg, &plan);
    int n_pairs = n_labels + n_rows;
    double *logp = malloc((size_t)n_pairs * sizeof *logp);
    int *pairs = malloc(2 * (size_t)n_pairs * sizeof *pairs);
    if (!logp || !pairs) {
        free(logp), free(pairs);
        return lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory for %d rows", m->cfg.name, n_rows);
    }
    for (int k = 0; k < n_labels; k++) pairs[k] = 0, pairs[n_pairs + k] = verb[k][0];
    for (int k = 0, r = 0; k < n_labels; k++)
        for (int i = 1; i < verb_len[k]; i++, r++) pairs[n_labels + r] = 1 + r, pairs[n_pairs + n_labels + r] = verb[k][i];
    /* a lone row is multiplied with a copy of itself, as the packed scorer's */
    int rows = n_rows ? n_rows + 1 : 2;
    lw_status st = lw_plan_cpu_head_logsoftmax(&plan, m, hid, rows, pairs, pairs + n_pairs, n_pairs, NULL, logp);
    for (int k = 0; !st && k < n_labels; k++) scores[k] = logp[k];
    for (int k = 0, r = 0; !st && k < n_labels; k++)   /* in order: the sums add as before */
        for (int i = 1; i < verb_len[k]; i++) scores[k] += logp[n_labels + r++];
    free(logp), free(pairs);
    return st;
}

lw_status lw_score_verbalizers(const lw_model *m, lw_state *s, const lw_receiver_adapters *ad, int P,
                               const float *last, int n_labels, const int *const *verb, const int *verb_len,
                               double *scores)
{
    int H = m->cfg.hidden, n_rows = 0;
    for (int k = 0; k < n_labels; k++) n_rows += verb_len[k] - 1;
    /* The blocks per label, the head once: for one or two rows a label the
     * head (vocab x hidden: 671 MB of fp32 for Gemma) costs far more to read
     * than to multiply, so the prompt's last row and every continuation row
     * go through it together. Row 0 is the prompt's last (and, with no
     * continuations, row 1 its copy). */
    float *hid = malloc((size_t)(n_rows + 2) * H * sizeof *hid);
    int *ids = malloc((size_t)(n_rows + 1) * sizeof *ids), *len = malloc((size_t)(n_labels + 1) * sizeof *len);
    lw_status st = LW_OK;
    if (!hid || !ids || !len) st = lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory for %d rows", m->cfg.name, n_rows);
    if (!st) {
        memcpy(hid, last, (size_t)H * sizeof *hid);
        if (n_rows == 0) memcpy(hid + H, last, (size_t)H * sizeof *hid);
    }
    /* every label as a segment of one pass when they fit in a chunk (the
     * weights are read once, not once per label), else label by label */
    int n_seg = 0;
    for (int k = 0, r = 0; !st && k < n_labels; k++)
        if (verb_len[k] > 1) {
            memcpy(ids + r, verb[k], (size_t)(verb_len[k] - 1) * sizeof *ids);
            r += len[n_seg++] = verb_len[k] - 1;
        }
    /* the adapters' scratch, sized for one example's rows, grows to hold all labels' (Banking77: 177
     * rows against 75); with a deep prefix it holds the text's positions too, and every label's
     * segment reads the one prefix (prefix_segments 0) */
    int prefix = ad ? ad->prefix_len : 0;
    bool one_pass = n_rows <= s->chunk && prefix + P + n_rows <= s->max_tokens &&
                    (!ad || ad->prefix_segments == 0);
    if (n_rows && one_pass && ad && ad->scratch) one_pass = !lw_adapters_reserve(ad, m, prefix ? P + n_rows : n_rows);
    if (!st && n_rows && one_pass) {
        lw_forward_args b = {.ids = ids, .T = n_rows, .pos0 = P, .capture_layer = m->cfg.n_layers,
                             .hidden_out = hid + H, .adapters = ad, .n_segments = n_seg, .segment_len = len};
        st = lw_forward(m, s, &b);
    }
    for (int k = 0, r = 0; !st && n_rows && !one_pass && k < n_labels; r += verb_len[k] - 1, k++) {
        if (verb_len[k] < 2) continue;
        lw_forward_args b = {.ids = verb[k], .T = verb_len[k] - 1, .pos0 = P, .capture_layer = m->cfg.n_layers,
                             .hidden_out = hid + (size_t)(1 + r) * H, .adapters = ad};
        st = lw_forward(m, s, &b);
    }
    if (!st) st = add_log_probs(m, hid, n_rows, n_labels, verb, verb_len, scores);
    free(hid);
    free(ids);
    free(len);
    return st;
}

static lw_status check_ids(const lw_label_scorer *s, const int *ids, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->model->cfg.vocab)
            return lw_fail(LW_ERR_INVALID, "label scorer: %s token %d is id %d, outside %s's vocab %d", what, i,
                           ids[i], s->model->cfg.name, s->model->cfg.vocab);
    return LW_OK;
}

/* The prompt's rows from the first position the cache does not already
 * hold (at least its last token, which the caller needs) as forward args:
 * *a gets ids, T and pos0; the caller says what comes out. */
static lw_status prompt_args(lw_label_scorer *s, const int *ids, int n, lw_forward_args *a)
{
    if (n < 1 || n > s->max_tokens)
        return lw_fail(LW_ERR_INVALID, "label scorer: a prompt of %d tokens (1..%d fit)", n, s->max_tokens);
    lw_status st = check_ids(s, ids, n, "prompt");
    if (st) return st;
    int keep = 0, held = s->n_fed < lw_state_cached(s->state) ? s->n_fed : lw_state_cached(s->state);
    while (keep < held && keep < n - 1 && s->fed[keep] == ids[keep]) keep++;
    *a = (lw_forward_args){.ids = ids + keep, .T = n - keep, .pos0 = keep, .capture_layer = -1};
    s->n_fed = 0;
    return LW_OK;
}

static void prompt_fed(lw_label_scorer *s, const int *ids, int n)
{
    memcpy(s->fed, ids, (size_t)n * sizeof *ids);
    s->n_fed = n;
}

/* Runs the prompt into s->last (its last row's logits: generation). */
static lw_status run_prompt(lw_label_scorer *s, const int *ids, int n)
{
    lw_forward_args a;
    lw_status st = prompt_args(s, ids, n, &a);
    if (st) return st;
    a.logits = s->last;
    if ((st = lw_forward(s->model, s->state, &a))) return st;
    prompt_fed(s, ids, n);
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
    lw_forward_args a;
    lw_status st = prompt_args(s, ids, n, &a);
    if (!st) st = lw_score_after_prompt(s->model, s->state, &a, n_labels, verb, verb_len, scores);
    if (!st) prompt_fed(s, ids, n);
    return st;
}

lw_status lw_score_after_prompt(const lw_model *m, lw_state *s, const lw_forward_args *prompt, int n_labels,
                                const int *const *verb, const int *verb_len, double *scores)
{
    if (prompt->T < 1)
        return lw_fail(LW_ERR_INVALID, "scoring %s: a prompt of %d rows", m->cfg.name, prompt->T);
    int H = m->cfg.hidden;
    float *final = malloc((size_t)prompt->T * H * sizeof *final);
    if (!final) return lw_fail(LW_ERR_NOMEM, "scoring %s: out of memory for a %d-row prompt", m->cfg.name, prompt->T);
    lw_forward_args a = *prompt;
    a.logits = NULL, a.all_logits = false, a.capture_layer = m->cfg.n_layers, a.hidden_out = final;
    lw_status st = lw_forward(m, s, &a);
    if (!st)
        st = lw_score_verbalizers(m, s, a.adapters, a.pos0 + a.T, final + (size_t)(a.T - 1) * H, n_labels, verb,
                                  verb_len, scores);
    free(final);
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
    return lw_label_scorer_generate_until(s, ids, n, max_new, stop_ids, n_stop, NULL, NULL, out, n_out);
}

lw_status lw_label_scorer_generate_until(lw_label_scorer *s, const int *ids, int n, int max_new, const int *stop_ids,
                                         int n_stop, bool (*until)(void *ctx, const int *out, int n_out), void *ctx,
                                         int *out, int *n_out)
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
        if (!stop && until) stop = until(ctx, out, *n_out);
        if (stop || *n_out == max_new || pos >= s->max_tokens) break;
        lw_forward_args a = {.ids = &out[*n_out - 1], .T = 1, .pos0 = pos, .logits = s->last, .capture_layer = -1};
        st = lw_forward(s->model, s->state, &a);
        pos++;
    }
    return st;
}
