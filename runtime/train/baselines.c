/* The baseline methods of lw eval (baselines.h): one loop per family, the
 * relay's sender turn, and the hook lw eval calls. */
#include "baselines.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "clock.h"

static const char *const NAMES[LW_BASELINE_COUNT] = {"sender-zeroshot", "receiver-zeroshot", "receiver-kshot",
                                                     "text-relay",      "cot-relay",         "token-budget"};

int lw_baseline_from_name(const char *name)
{
    for (int m = 0; m < LW_BASELINE_COUNT; m++)
        if (!strcmp(name, NAMES[m])) return m;
    return -1;
}

const char *lw_baseline_name(lw_baseline_method m)
{
    return m >= 0 && m < LW_BASELINE_COUNT ? NAMES[m] : "?";
}

lw_baseline_options lw_baseline_defaults(void)
{
    return (lw_baseline_options){.k = 1, .seed = 1, .relay_tokens = 32};
}

/* ---- classifying one prompt --------------------------------------------- */

static int answer_room(const lw_text_model *t, const lw_baseline_options *o)
{
    return o->generate ? LW_BASELINE_GEN_TOKENS : t->layout.max_verb - 1;
}

/* ids decoded, without a trailing stop token. */
static lw_status decode_text(const lw_text_model *t, const int *ids, int n, char **text)
{
    for (int i = 0; n > 0 && i < t->n_stop; i++)
        if (ids[n - 1] == t->stop_ids[i]) {
            n--;
            break;
        }
    if (n == 0) return (*text = calloc(1, 1)) ? LW_OK : lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    return lw_tokenizer_decode(t->tok, ids, n, text);
}

/* *pred from the verbalizers' scores, or from a short greedy answer (then
 * *answer gets it, malloc'd). */
static lw_status classify(lw_text_model *t, const lw_task *task, const int *ids, int n, const lw_baseline_options *o,
                          int *pred, char **answer)
{
    const lw_receiver_layout *L = &t->layout;
    *answer = NULL;
    if (o->generate) {
        int out[LW_BASELINE_GEN_TOKENS], n_out;
        lw_status st = lw_label_scorer_generate(&t->scorer, ids, n, LW_BASELINE_GEN_TOKENS, t->stop_ids, t->n_stop,
                                                out, &n_out);
        if (!st) st = decode_text(t, out, n_out, answer);
        if (!st) *pred = lw_baseline_parse_label(task, *answer);
        return st;
    }
    double *scores = malloc((size_t)L->n_labels * sizeof *scores);
    if (!scores) return lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    lw_status st = lw_label_scorer_score(&t->scorer, ids, n, L->n_labels, (const int *const *)L->verb, L->verb_len,
                                         scores);
    *pred = 0;
    for (int k = 1; !st && k < L->n_labels; k++)
        if (scores[k] > scores[*pred]) *pred = k;
    for (int k = 0; !st && o->verbose && k < L->n_labels && k < 20; k++)
        fprintf(stderr, "%s%s %.3f%s", k ? ", " : "    log p: ", task->labels[k], scores[k],
                k + 1 == L->n_labels || k == 19 ? "\n" : "");
    free(scores);
    return st;
}

static void show_prompt(const lw_text_model *t, int i, const int *ids, int n)
{
    char *text = NULL;
    if (lw_tokenizer_decode(t->tok, ids, n, &text) == LW_OK)
        fprintf(stderr, "---- example %d: the %s's prompt (%d tokens) ----\n%s\n----\n", i, t->role, n, text);
    free(text);
}

/* One text through the classifying model into r. */
static lw_status classify_text(lw_text_model *t, const lw_task *task, const lw_shots *shots, const char *text,
                               int budget, const lw_baseline_options *o, int i, int gold, lw_baseline_result *r)
{
    int *ids, n;
    char *answer = NULL;
    lw_status st = lw_baseline_prompt(t, shots, text, budget, answer_room(t, o), &ids, &n, &r->shots);
    if (st) return lw_fail_wrap(st, "example %d", i);
    if (o->verbose && i < 3) show_prompt(t, i, ids, n);
    st = classify(t, task, ids, n, o, &r->pred, &answer);
    r->prompt_tokens = n;
    if (!st && o->verbose)
        fprintf(stderr, "[%d] gold %s, predicted %s%s%s%s\n", i, task->labels[gold],
                r->pred >= 0 ? task->labels[r->pred] : "(unparsed)", answer ? " from \"" : "", answer ? answer : "",
                answer ? "\"" : "");
    free(ids);
    free(answer);
    return st;
}

static void progress(const lw_baseline_options *o, const char *what, int i, int n, double t0)
{
    if (o->quiet || o->verbose || ((i + 1) % 10 && i + 1 != n)) return;
    fprintf(stderr, "\r%s: %d/%d  %.3f s/example   %s", what, i + 1, n, (lw_now_s() - t0) / (i + 1),
            i + 1 == n ? "\n" : "");
}

/* ---- the method families ------------------------------------------------ */

lw_status lw_baseline_zeroshot(lw_text_model *t, const lw_task *task, const lw_dataset *d, int budget,
                               const lw_baseline_options *o, lw_baseline_result *out)
{
    double t0 = lw_now_s();
    for (int i = 0; i < d->n; i++) {
        double ti = lw_now_s();
        memset(&out[i], 0, sizeof out[i]);
        lw_status st = classify_text(t, task, NULL, d->examples[i].text, budget, o, i, d->examples[i].label, &out[i]);
        if (st) return st;
        out[i].seconds = lw_now_s() - ti;
        progress(o, t->role, i, d->n, t0);
    }
    return LW_OK;
}

lw_status lw_baseline_kshot(lw_text_model *t, const lw_task *task, const lw_dataset *train, const lw_dataset *d,
                            const lw_baseline_options *o, lw_baseline_result *out)
{
    lw_shots shots;
    lw_status st = lw_shots_pick(&shots, t, task, train, o->k, o->seed);
    if (st) return st;
    if (!o->quiet) fprintf(stderr, "k-shot: %d examples from the train split (k = %d, seed %llu)\n", shots.n, o->k,
                           (unsigned long long)o->seed);
    double t0 = lw_now_s();
    for (int i = 0; !st && i < d->n; i++) {
        double ti = lw_now_s();
        memset(&out[i], 0, sizeof out[i]);
        st = classify_text(t, task, &shots, d->examples[i].text, 0, o, i, d->examples[i].label, &out[i]);
        out[i].seconds = lw_now_s() - ti;
        if (!st) progress(o, "k-shot", i, d->n, t0);
    }
    lw_shots_free(&shots);
    return st;
}

/* The relay prompt: the option, or "Summarize..." / the primer, the options
 * and a request for reasons. malloc'd. */
static char *relay_instruction(const lw_task *task, bool cot, const lw_baseline_options *o)
{
    if (o->relay_prompt) return strdup(o->relay_prompt);
    if (!cot) return strdup("Summarize the following text in one sentence:");
    size_t cap = strlen(task->primer) + 128;
    for (int k = 0; k < task->n_labels; k++) cap += strlen(task->verbalizers[k]) + 2;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t w = (size_t)snprintf(s, cap, "%s The options are:", task->primer);
    for (int k = 0; k < task->n_labels; k++) {
        const char *v = task->verbalizers[k];
        while (isspace((unsigned char)*v)) v++;
        w += (size_t)snprintf(s + w, cap - w, "%s %s", k ? "," : "", v);
    }
    snprintf(s + w, cap - w, ". Explain briefly which one applies and why.");
    return s;
}

lw_status lw_baseline_relay_text(lw_text_model *sender, const lw_task *task, const char *text, bool cot,
                                 const lw_baseline_options *o, char **relayed, int *gen_tokens)
{
    *relayed = NULL;
    *gen_tokens = 0;
    if (o->relay_tokens < 1 || o->relay_tokens > 4096)
        return lw_fail(LW_ERR_INVALID, "baseline: relay of %d tokens (1..4096)", o->relay_tokens);
    char *ask = relay_instruction(task, cot, o), *user = NULL, *prompt = NULL, *said = NULL;
    int *ids = NULL, n = 0, *out = malloc((size_t)o->relay_tokens * sizeof *out);
    lw_status st = ask && out ? LW_OK : lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    if (!st) {
        size_t cap = strlen(ask) + strlen(text) + 2;
        if (!(user = malloc(cap))) st = lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
        else snprintf(user, cap, "%s\n%s", ask, text);
    }
    if (!st) st = lw_chat_render(sender->model->cfg.chat_template, NULL, user, &prompt);
    if (!st) st = lw_tokenizer_encode(sender->tok, prompt, strlen(prompt), false, &ids, &n);
    if (!st && n > sender->scorer.max_tokens - o->relay_tokens)
        st = lw_fail(LW_ERR_INVALID, "baseline: the sender's relay prompt has %d tokens, %d + %d relay tokens fit", n,
                     sender->scorer.max_tokens - o->relay_tokens, o->relay_tokens);
    if (!st) st = lw_label_scorer_generate(&sender->scorer, ids, n, o->relay_tokens, sender->stop_ids,
                                           sender->n_stop, out, gen_tokens);
    if (!st) st = decode_text(sender, out, *gen_tokens, &said);
    if (!st) {
        const char *s = said;
        size_t len = strlen(s);
        while (len > 0 && isspace((unsigned char)*s)) s++, len--;
        while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
        memmove(said, s, len);
        said[len] = 0;
        *relayed = said;
        said = NULL;
    }
    free(ask);
    free(user);
    free(prompt);
    free(ids);
    free(out);
    free(said);
    return st;
}

lw_status lw_baseline_relay(lw_text_model *sender, lw_text_model *receiver, const lw_task *task, const lw_dataset *d,
                            bool cot, const lw_baseline_options *o, lw_baseline_result *out)
{
    double t0 = lw_now_s();
    for (int i = 0; i < d->n; i++) {
        double ti = lw_now_s();
        memset(&out[i], 0, sizeof out[i]);
        char *relayed;
        lw_status st = lw_baseline_relay_text(sender, task, d->examples[i].text, cot, o, &relayed,
                                              &out[i].gen_tokens);
        if (st) return lw_fail_wrap(st, "example %d", i);
        out[i].payload_bytes = (int)strlen(relayed);
        if (o->verbose) fprintf(stderr, "[%d] the sender relays (%d tokens): \"%s\"\n", i, out[i].gen_tokens, relayed);
        st = classify_text(receiver, task, NULL, relayed, 0, o, i, d->examples[i].label, &out[i]);
        free(relayed);
        if (st) return st;
        out[i].seconds = lw_now_s() - ti;
        progress(o, cot ? "cot-relay" : "text-relay", i, d->n, t0);
    }
    return LW_OK;
}
