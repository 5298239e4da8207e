/* What the baselines put in front of a model: the task's prompt pieces in
 * its tokens, the k-shot examples, the prompt of one text, and the parser of
 * a generated answer (baselines.h). */
#include "baselines.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

lw_status lw_text_model_init(lw_text_model *t, const lw_model *m, const lw_tokenizer *tok, const lw_task *task,
                             int max_context, const char *role)
{
    memset(t, 0, sizeof *t);
    t->model = m;
    t->tok = tok;
    t->role = role;
    const lw_model_config *c = &m->cfg;
    for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++) t->stop_ids[t->n_stop++] = c->stop_ids[i];
    if (c->eos_id >= 0) t->stop_ids[t->n_stop++] = c->eos_id;
    int cap = max_context > 0 ? max_context : LW_BASELINE_DEFAULT_CONTEXT;
    if (cap > c->context) cap = c->context;
    lw_status st = lw_receiver_layout_build(task, c->chat_template, tok, 1, c->vocab, &t->layout);
    if (!st) st = lw_label_scorer_init(&t->scorer, m, cap);
    if (st) {
        lw_text_model_free(t);
        return lw_fail_wrap(st, "%s %s", role, c->name);
    }
    return LW_OK;
}

void lw_text_model_free(lw_text_model *t)
{
    lw_receiver_layout_free(&t->layout);
    lw_label_scorer_free(&t->scorer);
    memset(t, 0, sizeof *t);
}

/* text without leading and trailing white space, as [*start, *start + *len) */
static void trimmed(const char *text, const char **start, size_t *len)
{
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)*text)) text++, n--;
    while (n > 0 && isspace((unsigned char)text[n - 1])) n--;
    *start = text;
    *len = n;
}

static lw_status encode_trimmed(const lw_text_model *t, const char *text, int **ids, int *n)
{
    const char *s;
    size_t len;
    trimmed(text, &s, &len);
    *ids = NULL;
    *n = 0;
    if (len == 0) return (*ids = malloc(sizeof(int))) ? LW_OK : lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    lw_status st = lw_tokenizer_encode(t->tok, s, len, false, ids, n);
    if (st) return lw_fail_wrap(st, "baseline: tokenizing a text for the %s", t->role);
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= t->model->cfg.vocab) {
            int bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            return lw_fail(LW_ERR_INVALID, "baseline: the %s's tokenizer gave id %d outside its vocab %d", t->role,
                           bad, t->model->cfg.vocab);
        }
    return LW_OK;
}

/* ---- k-shot examples ---------------------------------------------------- */

void lw_shots_free(lw_shots *s)
{
    for (int i = 0; s->ids && i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->example);
    free(s->label);
    free(s->len);
    memset(s, 0, sizeof *s);
}

static lw_status shot_ids(const lw_text_model *t, const lw_task *task, const lw_example *e, int **ids, int *n)
{
    const char *s;
    size_t len;
    trimmed(e->text, &s, &len);
    const char *ap = task->answer_prompt, *vb = task->verbalizers[e->label];
    size_t cap = len + strlen(ap) + strlen(vb) + 4;
    char *text = malloc(cap);
    if (!text) return lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    snprintf(text, cap, "%.*s\n%s%s\n\n", (int)len, s, ap, vb);
    lw_status st = lw_tokenizer_encode(t->tok, text, strlen(text), false, ids, n);
    free(text);
    if (st) return lw_fail_wrap(st, "baseline: tokenizing a k-shot example");
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= t->model->cfg.vocab) {
            st = lw_fail(LW_ERR_INVALID, "baseline: a k-shot example has id %d outside the vocab", (*ids)[i]);
            free(*ids);
            *ids = NULL;
            break;
        }
    return st;
}

/* Picks min(k, count) examples of each label: picks[c * k + r], -1 if none. */
static void pick_per_label(const lw_dataset *train, int C, int k, lw_rng *rng, int *picks, int *pool)
{
    for (int c = 0; c < C; c++) {
        int n = 0;
        for (int i = 0; i < train->n; i++)
            if (train->examples[i].label == c) pool[n++] = i;
        for (int r = 0; r < k; r++) {
            if (r >= n) {
                picks[c * k + r] = -1;
                continue;
            }
            int j = r + (int)lw_rng_below(rng, (uint64_t)(n - r));   /* partial Fisher-Yates */
            int tmp = pool[r];
            pool[r] = pool[j];
            pool[j] = tmp;
            picks[c * k + r] = pool[r];
        }
    }
}

lw_status lw_shots_pick(lw_shots *s, const lw_text_model *t, const lw_task *task, const lw_dataset *train, int k,
                        uint64_t seed)
{
    memset(s, 0, sizeof *s);
    int C = task->n_labels;
    if (k < 0 || k > 1024) return lw_fail(LW_ERR_INVALID, "baseline: k = %d examples per class (0..1024)", k);
    if ((size_t)C * (size_t)k > (size_t)1 << 20) return lw_fail(LW_ERR_INVALID, "baseline: %d x %d shots", C, k);
    size_t total = (size_t)C * (size_t)k;
    int *picks = malloc((total ? total : 1) * sizeof *picks), *pool = malloc(((size_t)train->n + 1) * sizeof *pool);
    int *order = malloc(((size_t)C + 1) * sizeof *order);
    s->example = malloc((total ? total : 1) * sizeof *s->example);
    s->label = malloc((total ? total : 1) * sizeof *s->label);
    s->len = calloc(total ? total : 1, sizeof *s->len);
    s->ids = calloc(total ? total : 1, sizeof *s->ids);
    lw_status st = LW_OK;
    if (!picks || !pool || !order || !s->example || !s->label || !s->len || !s->ids)
        st = lw_fail(LW_ERR_NOMEM, "baseline: out of memory for %zu shots", total);
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    if (!st) pick_per_label(train, C, k, &rng, picks, pool);
    for (int r = 0; !st && r < k; r++) {
        for (int c = 0; c < C; c++) order[c] = c;
        lw_rng_shuffle(&rng, order, (size_t)C);   /* no class always sits next to the query */
        for (int j = 0; !st && j < C; j++) {
            int e = picks[order[j] * k + r];
            if (e < 0) continue;
            s->example[s->n] = e;
            s->label[s->n] = order[j];
            st = shot_ids(t, task, &train->examples[e], &s->ids[s->n], &s->len[s->n]);
            if (!st) s->n++;
        }
    }
    free(picks);
    free(pool);
    free(order);
    if (st) lw_shots_free(s);
    return st;
}

/* ---- the prompt of one text --------------------------------------------- */

lw_status lw_baseline_prompt(const lw_text_model *t, const lw_shots *shots, const char *text, int budget, int room,
                             int **ids, int *n, int *n_shots)
{
    *ids = NULL;
    *n = *n_shots = 0;
    const lw_receiver_layout *L = &t->layout;
    int *tx, nt;
    lw_status st = encode_trimmed(t, text, &tx, &nt);
    if (st) return st;
    if (budget > 0 && nt > budget) nt = budget;
    long fixed = (long)L->n_before + nt + L->n_after, cap = t->scorer.max_tokens - (long)room;
    if (fixed > cap) {
        free(tx);
        return lw_fail(LW_ERR_INVALID,
                       "baseline: the %s's prompt needs %ld positions (%d of them text) and %d more to answer; "
                       "it has %d (--max-context)",
                       t->role, fixed, nt, room, t->scorer.max_tokens);
    }
    int k = 0;
    long total = fixed;
    while (shots && k < shots->n && total + shots->len[k] <= cap) total += shots->len[k++];
    int *p = malloc((size_t)total * sizeof *p);
    if (!p) {
        free(tx);
        return lw_fail(LW_ERR_NOMEM, "baseline: out of memory for a %ld-token prompt", total);
    }
    int w = 0;
    memcpy(p + w, L->before, (size_t)L->n_before * sizeof *p), w += L->n_before;
    for (int i = 0; i < k; i++) memcpy(p + w, shots->ids[i], (size_t)shots->len[i] * sizeof *p), w += shots->len[i];
    memcpy(p + w, tx, (size_t)nt * sizeof *p), w += nt;
    memcpy(p + w, L->after, (size_t)L->n_after * sizeof *p), w += L->n_after;
    free(tx);
    *ids = p;
    *n = w;
    *n_shots = k;
    return LW_OK;
}

/* ---- parsing a generated answer ----------------------------------------- */

/* First position of needle[0..nn) in hay, ASCII case folded, or -1. */
static long find_nocase(const char *hay, const char *needle, size_t nn)
{
    if (nn == 0) return -1;
    for (size_t i = 0; hay[i]; i++) {
        size_t j = 0;
        while (j < nn && hay[i + j] && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j])) j++;
        if (j == nn) return (long)i;
    }
    return -1;
}

int lw_baseline_parse_label(const lw_task *task, const char *output)
{
    int best = -1;
    long best_pos = -1;
    size_t best_len = 0;
    for (int k = 0; k < task->n_labels; k++) {
        const char *v;
        size_t len;
        trimmed(task->verbalizers[k], &v, &len);
        long pos = find_nocase(output, v, len);
        if (pos < 0) continue;
        if (best < 0 || pos < best_pos || (pos == best_pos && len > best_len)) best = k, best_pos = pos, best_len = len;
    }
    return best;
}
