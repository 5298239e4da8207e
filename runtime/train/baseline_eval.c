/* lw eval's hook for the baselines (baselines.h): loads what the method
 * needs from the manifest, runs it, and sums it up for the JSON. */
#include "baselines.h"
#include "random_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *lw_baseline_json(lw_baseline_method method, const lw_baseline_options *o, const lw_baseline_result *r, int n)
{
    bool relay = method == LW_BASELINE_TEXT_RELAY || method == LW_BASELINE_COT_RELAY;
    json_t *opts = json_object(), *j = json_object();
    json_object_set_new(opts, "generate", json_boolean(o->generate));
    if (method == LW_BASELINE_RECEIVER_KSHOT) {
        json_object_set_new(opts, "k", json_integer(o->k));
        json_object_set_new(opts, "seed", json_integer((json_int_t)o->seed));
    }
    if (relay) {
        json_object_set_new(opts, "relay_tokens", json_integer(o->relay_tokens));
        if (o->relay_prompt) json_object_set_new(opts, "relay_prompt", json_string(o->relay_prompt));
    }
    if (method == LW_BASELINE_TOKEN_BUDGET) json_object_set_new(opts, "budget_tokens", json_integer(o->budget_tokens));
    json_object_set_new(j, "method_options", opts);
    double prompt = 0, shots = 0, gen = 0, bytes = 0, secs = 0;
    long unparsed = 0;
    for (int i = 0; i < n; i++) {
        prompt += r[i].prompt_tokens, shots += r[i].shots, gen += r[i].gen_tokens;
        bytes += r[i].payload_bytes, secs += r[i].seconds;
        unparsed += r[i].pred < 0;
    }
    double dn = n > 0 ? n : 1;
    json_object_set_new(j, "mean_prompt_tokens", json_real(prompt / dn));
    json_object_set_new(j, "seconds_per_example", json_real(secs / dn));
    if (method == LW_BASELINE_RECEIVER_KSHOT) json_object_set_new(j, "mean_shots", json_real(shots / dn));
    if (relay) {
        json_object_set_new(j, "mean_generated_tokens", json_real(gen / dn));
        json_object_set_new(j, "mean_payload_bytes", json_real(bytes / dn));
    }
    if (o->generate) json_object_set_new(j, "unparsed", json_integer(unparsed));
    return j;
}

/* One of the pair's models with its tokenizer. */
typedef struct {
    lw_model *model;
    lw_tokenizer *tok;
    lw_text_model text;
    bool ready;
} side;

static lw_status side_open(side *s, const lw_model_config *c, const lw_task *task, int max_context, const char *role)
{
    memset(s, 0, sizeof *s);
    lw_status st = lw_config_load_tokenizer(c, &s->tok);
    if (!st) st = lw_config_load_model(c, &s->model);
    if (!st) st = lw_text_model_init(&s->text, s->model, s->tok, task, max_context, role);
    if (!st) s->ready = true;
    return st ? lw_fail_wrap(st, "%s %s", role, c->name) : LW_OK;
}

static void side_close(side *s)
{
    if (s->ready) lw_text_model_free(&s->text);
    lw_model_free(s->model);
    lw_tokenizer_free(s->tok);
    memset(s, 0, sizeof *s);
}

static lw_status run_method(const lw_manifest *m, const lw_task *task, const lw_dataset *d, const char *train_path,
                            const lw_subset *train_sel, lw_baseline_method method, const lw_baseline_options *o,
                            lw_baseline_result *r)
{
    bool relay = method == LW_BASELINE_TEXT_RELAY || method == LW_BASELINE_COT_RELAY;
    bool needs_sender = relay || method == LW_BASELINE_SENDER_ZEROSHOT;
    side snd = {0}, rcv = {0};
    lw_dataset train = {0};
    lw_status st = LW_OK;
    if (needs_sender) st = side_open(&snd, &m->sender, task, o->max_context, "sender");
    if (!st && method != LW_BASELINE_SENDER_ZEROSHOT) st = side_open(&rcv, &m->receiver, task, o->max_context, "receiver");
    if (!st && method == LW_BASELINE_RECEIVER_KSHOT)
        st = train_path ? lw_dataset_load_subset(train_path, task, train_sel ? train_sel : &(lw_subset){0}, &train)
                        : lw_fail(LW_ERR_INVALID, "baseline: receiver-kshot needs a train file");
    if (!st) switch (method) {
        case LW_BASELINE_SENDER_ZEROSHOT: st = lw_baseline_zeroshot(&snd.text, task, d, 0, o, r); break;
        case LW_BASELINE_RECEIVER_ZEROSHOT: st = lw_baseline_zeroshot(&rcv.text, task, d, 0, o, r); break;
        case LW_BASELINE_TOKEN_BUDGET: st = lw_baseline_zeroshot(&rcv.text, task, d, o->budget_tokens, o, r); break;
        case LW_BASELINE_RECEIVER_KSHOT: st = lw_baseline_kshot(&rcv.text, task, &train, d, o, r); break;
        case LW_BASELINE_TEXT_RELAY:
        case LW_BASELINE_COT_RELAY:
            st = lw_baseline_relay(&snd.text, &rcv.text, task, d, method == LW_BASELINE_COT_RELAY, o, r);
            break;
        default: st = lw_fail(LW_ERR_INVALID, "baseline: method %d", (int)method);
        }
    lw_dataset_free(&train);
    side_close(&snd);
    side_close(&rcv);
    return st;
}

lw_status lw_baseline_predict(const lw_manifest *m, const lw_task *task, const lw_dataset *d, const char *train_path,
                              const lw_subset *train_sel, lw_baseline_method method, const lw_baseline_options *o,
                              int *pred, json_t **extra)
{
    *extra = NULL;
    if (method == LW_BASELINE_TOKEN_BUDGET && o->budget_tokens < 1)
        return lw_fail(LW_ERR_INVALID, "baseline: token-budget of %d tokens", o->budget_tokens);
    lw_baseline_result *r = calloc((size_t)(d->n > 0 ? d->n : 1), sizeof *r);
    if (!r) return lw_fail(LW_ERR_NOMEM, "baseline: out of memory");
    lw_status st = run_method(m, task, d, train_path, train_sel, method, o, r);
    for (int i = 0; !st && i < d->n; i++)
        /* unparsed: a label that is not gold, so that it counts wrong */
        pred[i] = r[i].pred >= 0 ? r[i].pred : (d->examples[i].label + 1) % task->n_labels;
    if (!st && !(*extra = lw_baseline_json(method, o, r, d->n))) st = lw_fail(LW_ERR_NOMEM, "baseline: JSON");
    if (!st && !o->quiet) {
        char *s = json_dumps(*extra, JSON_COMPACT);
        if (s) fprintf(stderr, "%s: %s\n", lw_baseline_name(method), s);
        free(s);
    }
    free(r);
    return st;
}
