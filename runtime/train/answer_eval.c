/* A model of the pair answering generate and choice tasks from the text
 * (answer_eval.h). */
#include "answer_eval.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_metrics.h"
#include "baselines.h"
#include "chat_template.h"
#include "clock.h"
#include "label_scoring.h"
#include "random_weights.h"

int lw_answer_method(const lw_task *task, const char *method)
{
    if (!strcmp(method, "receiver-text") || !strcmp(method, "receiver-zeroshot")) return 0;
    if (!strcmp(method, "sender-text") || !strcmp(method, "sender-zeroshot")) return 1;
    bool budget = !strcmp(method, "token-budget") || !strcmp(method, "receiver-token-budget") ||
                  !strcmp(method, "sender-token-budget");
    if (budget && task->kind == LW_TASK_GENERATE && task->budget_field)
        return LW_ANSWER_BUDGET + (!strcmp(method, "sender-token-budget") ? 1 : 0);
    const char *why = !strcmp(method, "bridge") || !strcmp(method, "bridge-fallback")
                          ? (task->kind == LW_TASK_GENERATE
                                 ? "the bridge on answers needs --checkpoint (lw eval's bridge path)"
                                 : "the bridge on answers is built for generate tasks only")
                      : !strcmp(method, "linear-probe") ? "a probe predicts labels"
                      : !strcmp(method, "receiver-kshot") ? "its shots are picked per label"
                      : (!strcmp(method, "text-relay") || !strcmp(method, "cot-relay"))
                          ? "the relays are not built for answer tasks yet"
                      : budget ? "the task file names no \"budget_field\" to cut (generate tasks only)"
                      : (!strcmp(method, "prompt-tuning") || !strcmp(method, "lora"))
                          ? "it is trained on labels"
                          : "it is no method of lw eval";
    lw_fail(LW_ERR_INVALID, "--method %s does not apply to %s (a %s task): %s; use receiver-text or sender-text%s",
            method, task->name, lw_task_kind_name(task->kind), why,
            task->kind == LW_TASK_GENERATE
                ? (task->budget_field ? ", token-budget or sender-token-budget, bridge (trained on answers)"
                                      : ", bridge (trained on answers)")
                : "");
    return -1;
}

void lw_answer_results_free(lw_answer_result *r, int n)
{
    for (int i = 0; r && i < n; i++) free(r[i].answer);
}

typedef struct {
    lw_model *model;
    lw_tokenizer *tok;
    lw_label_scorer scorer;
    bool scorer_ready;
    int stop_ids[LW_MAX_SPECIAL + 1], n_stop;
    const char *role;
} reader;

static lw_status reader_open(reader *r, const lw_model_config *c, int max_context, const char *role)
{
    memset(r, 0, sizeof *r);
    r->role = role;
    for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++) r->stop_ids[r->n_stop++] = c->stop_ids[i];
    if (c->eos_id >= 0) r->stop_ids[r->n_stop++] = c->eos_id;
    int cap = max_context > 0 ? max_context : LW_ANSWER_DEFAULT_CONTEXT;
    if (cap > c->context) cap = c->context;
    lw_status st = lw_config_load_tokenizer(c, &r->tok);
    if (!st) st = lw_config_load_model(c, &r->model);
    if (!st) st = lw_label_scorer_init(&r->scorer, r->model, cap);
    if (!st) r->scorer_ready = true;
    return st ? lw_fail_wrap(st, "%s %s", role, c->name) : LW_OK;
}

static void reader_close(reader *r)
{
    if (r->scorer_ready) lw_label_scorer_free(&r->scorer);
    lw_model_free(r->model);
    lw_tokenizer_free(r->tok);
    memset(r, 0, sizeof *r);
}

static lw_status encode(const reader *r, const char *text, bool trim, int **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    size_t len = strlen(text);
    if (trim) {
        while (len > 0 && isspace((unsigned char)*text)) text++, len--;
        while (len > 0 && isspace((unsigned char)text[len - 1])) len--;
    }
    if (len == 0) return (*ids = malloc(sizeof(int))) ? LW_OK : lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    lw_status st = lw_tokenizer_encode(r->tok, text, len, false, ids, n);
    for (int i = 0; !st && i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= r->model->cfg.vocab)
            st = lw_fail(LW_ERR_INVALID, "answer: the %s's tokenizer gave id %d outside its vocab %d", r->role,
                         (*ids)[i], r->model->cfg.vocab);
    if (st) {
        free(*ids);
        *ids = NULL;
    }
    return st;
}

/* The chat turn with the row's prompt and the reply opened by the answer
 * prompt, as ids. */
static lw_status prompt_ids(const reader *r, const lw_task *t, const char *user, int **ids, int *n)
{
    char *turn = NULL;
    lw_status st = lw_chat_render(r->model->cfg.chat_template, NULL, user, &turn);
    char *full = NULL;
    if (!st) {
        size_t cap = strlen(turn) + strlen(t->answer_prompt) + 1;
        if (!(full = malloc(cap))) st = lw_fail(LW_ERR_NOMEM, "answer: out of memory");
        else snprintf(full, cap, "%s%s", turn, t->answer_prompt);
    }
    if (!st) st = encode(r, full, false, ids, n);
    free(turn);
    free(full);
    return st;
}

static lw_status decode_answer(const reader *r, const int *ids, int n, char **text)
{
    for (int i = 0; n > 0 && i < r->n_stop; i++)
        if (ids[n - 1] == r->stop_ids[i]) {
            n--;
            break;
        }
    if (n == 0) return (*text = calloc(1, 1)) ? LW_OK : lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    return lw_tokenizer_decode(r->tok, ids, n, text);
}

static lw_status too_long(const reader *r, int i, int n, int more)
{
    bool at_most = r->scorer.max_tokens >= r->model->cfg.context;
    return lw_fail(LW_ERR_INVALID, "row %d: the %s's prompt has %d tokens and %d more must fit in %d positions (%s %d)",
                   i, r->role, n, more, r->scorer.max_tokens,
                   at_most ? "the model's whole context: it cannot read this row; its context is"
                           : "raise --max-context, up to the model's context of", r->model->cfg.context);
}

/* first_line tasks: generation may end once the text holds a line with
 * something on it followed by a newline; what is scored stays the same. */
static bool line_done(void *ctx, const int *out, int n)
{
    const reader *r = ctx;
    char *text = NULL;
    if (lw_tokenizer_decode(r->tok, out, n, &text)) return false;
    const char *s = text;
    while (*s && isspace((unsigned char)*s)) s++;
    bool done = strchr(s, '\n') != NULL;
    free(text);
    return done;
}

static lw_status generate_one(reader *r, const lw_task *t, const lw_answer_row *row, int i, const int *ids, int n,
                              lw_answer_result *res)
{
    if (n + t->max_new_tokens > r->scorer.max_tokens) return too_long(r, i, n, t->max_new_tokens);
    int *out = malloc((size_t)t->max_new_tokens * sizeof *out);
    char *text = NULL;
    lw_status st = out ? LW_OK : lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    if (!st) st = lw_label_scorer_generate_until(&r->scorer, ids, n, t->max_new_tokens, r->stop_ids, r->n_stop,
                                                 t->first_line ? line_done : NULL, r, out, &res->gen_tokens);
    if (!st) st = decode_answer(r, out, res->gen_tokens, &text);
    if (!st && !(res->answer = lw_answer_extract(text, t->first_line))) st = lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    if (!st && t->metric == LW_METRIC_SQUAD_EM_F1)
        st = lw_squad_score(res->answer, (const char *const *)row->golds, row->n_gold, &res->em, &res->f1);
    if (!st && t->metric == LW_METRIC_GSM8K_NUMBER) st = lw_gsm8k_score(res->answer, row->golds[0], &res->correct);
    free(out);
    free(text);
    return st;
}

static lw_status choose_one(reader *r, const lw_task *t, const lw_answer_row *row, int i, const int *ids, int n,
                            lw_answer_result *res, bool verbose)
{
    int C = row->n_choices, *len = calloc((size_t)C, sizeof *len), **verb = calloc((size_t)C, sizeof *verb);
    double *score = calloc((size_t)C, sizeof *score);
    lw_status st = len && verb && score ? LW_OK : lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    int longest = 0;
    for (int k = 0; !st && k < C; k++) {
        size_t cap = strlen(t->choice_prefix) + strlen(row->choices[k]) + 1;
        char *s = malloc(cap);
        if (!s) { st = lw_fail(LW_ERR_NOMEM, "answer: out of memory"); break; }
        snprintf(s, cap, "%s%s", t->choice_prefix, row->choices[k]);
        st = encode(r, s, false, &verb[k], &len[k]);
        free(s);
        if (!st && len[k] == 0) st = lw_fail(LW_ERR_INVALID, "row %d: choice %d has no tokens", i, k);
        if (!st && len[k] > longest) longest = len[k];
    }
    if (!st && n + longest - 1 > r->scorer.max_tokens) st = too_long(r, i, n, longest - 1);
    if (!st) st = lw_label_scorer_score(&r->scorer, ids, n, C, (const int *const *)verb, len, score);
    res->pred = 0;
    for (int k = 0; !st && k < C; k++) {
        if (t->choice_mean) score[k] /= len[k];
        if (score[k] > score[res->pred]) res->pred = k;
    }
    res->correct = !st && res->pred == row->label;
    for (int k = 0; !st && verbose && k < C; k++)
        fprintf(stderr, "%s%d %.3f (%d tokens)%s", k ? ", " : "    log p: ", k, score[k], len[k], k + 1 == C ? "\n" : "");
    for (int k = 0; verb && k < C; k++) free(verb[k]);
    free(verb);
    free(len);
    free(score);
    return st;
}

/* The token budget's user prompt: row's budget_field rendered alone, cut to
 * its first `budget` ids in r's tokenizer, decoded, and the task's prompt
 * filled again with that text in the field's place. *field_tokens: the
 * field's ids before the cut. */
static lw_status budget_prompt(const reader *r, const lw_task *t, const lw_answer_row *row, int i, int budget,
                               char **user, int *field_tokens)
{
    char tpl[300], where[32], *field = NULL, *cut = NULL;
    int *ids = NULL, n = 0;
    snprintf(tpl, sizeof tpl, "{%s}", t->budget_field);
    snprintf(where, sizeof where, "row %d", i);
    json_t *copy = json_copy(row->fields);
    lw_status st = copy ? lw_answer_render(tpl, row->fields, where, &field)
                        : lw_fail(LW_ERR_NOMEM, "answer: out of memory");
    if (!st) st = encode(r, field, false, &ids, &n);
    *field_tokens = n;
    if (!st) st = n > budget ? lw_tokenizer_decode(r->tok, ids, budget, &cut)
                             : ((cut = strdup(field)) ? LW_OK : lw_fail(LW_ERR_NOMEM, "answer: out of memory"));
    if (!st && json_object_set_new(copy, t->budget_field, json_string(cut)))
        st = lw_fail(LW_ERR_INVALID, "%s: the cut %s is not valid UTF-8", where, t->budget_field);
    if (!st) st = lw_answer_render(t->prompt, copy, where, user);
    json_decref(copy);
    free(field);
    free(cut);
    free(ids);
    return st ? lw_fail_wrap(st, "token budget") : LW_OK;
}

lw_status lw_answer_run(const lw_manifest *m, const lw_task *task, const lw_answer_data *d,
                        const lw_answer_options *o, lw_answer_result *out)
{
    if (task->kind == LW_TASK_CLASSIFY) return lw_fail(LW_ERR_INVALID, "answer: %s is a classification task", task->name);
    if (o->budget > 0 && (task->kind != LW_TASK_GENERATE || !task->budget_field))
        return lw_fail(LW_ERR_INVALID, "answer: the token budget needs a generate task with a \"budget_field\"; %s has none",
                       task->name);
    reader r;
    lw_status st = reader_open(&r, o->sender ? &m->sender : &m->receiver, o->max_context,
                               o->sender ? "sender" : "receiver");
    double t0 = lw_now_s();
    for (int i = 0; !st && i < d->n; i++) {
        const lw_answer_row *row = &d->rows[i];
        lw_answer_result *res = &out[i];
        memset(res, 0, sizeof *res);
        double ti = lw_now_s();
        int *ids = NULL, n = 0;
        char *user = NULL;
        if (o->budget > 0) st = budget_prompt(&r, task, row, i, o->budget, &user, &res->field_tokens);
        if (!st) st = prompt_ids(&r, task, user ? user : row->prompt, &ids, &n);
        free(user);
        if (!st && o->verbose && i < 2) {
            char *shown = NULL;
            if (lw_tokenizer_decode(r.tok, ids, n, &shown) == LW_OK)
                fprintf(stderr, "---- row %d: the %s's prompt (%d tokens) ----\n%s\n----\n", i, r.role, n, shown);
            free(shown);
        }
        res->prompt_tokens = n;
        if (!st) st = task->kind == LW_TASK_GENERATE ? generate_one(&r, task, row, i, ids, n, res)
                                                     : choose_one(&r, task, row, i, ids, n, res, o->verbose);
        free(ids);
        res->seconds = lw_now_s() - ti;
        if (!st && o->verbose) {
            if (task->kind == LW_TASK_CHOICE)
                fprintf(stderr, "[%d] gold %d, chose %d\n", i, row->label, res->pred);
            else
                fprintf(stderr, "[%d] gold \"%s\", wrote \"%s\" (EM %g F1 %.3f correct %g)\n", i, row->golds[0],
                        res->answer, res->em, res->f1, res->correct);
        }
        if (!st && !o->quiet && !o->verbose && ((i + 1) % 10 == 0 || i + 1 == d->n))
            fprintf(stderr, "\r%s: %d/%d  %.3f s/example   %s", r.role, i + 1, d->n, (lw_now_s() - t0) / (i + 1),
                    i + 1 == d->n ? "\n" : "");
    }
    reader_close(&r);
    return st;
}
