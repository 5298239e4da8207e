/* lw eval on a generate or choice task (answer_eval.h): the options that
 * apply, the run, EM/F1 or accuracy with 95% bootstrap intervals (the
 * percentile bootstrap of metrics.h, 1000 resamples, seed 1, as the
 * classification metrics), as a table and as JSON with every row's answer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_eval.h"
#include "clock.h"
#include "cmd_common.h"
#include "dataset.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "metrics.h"


typedef struct {
    const char *task, *split, *method, *json, *tasks_dir;
    int limit;
    int threads;   /* --threads; 0: $LWC_THREADS, else 1 */
    lw_weights_dtype dtype;   /* --dtype: the reader's matrices, as lw eval's other methods and the interlingua */
    lw_answer_options o;
} answer_args;

static bool parse(const lw_manifest *m, const lw_task *task, int argc, char **argv, answer_args *a)
{
    memset(a, 0, sizeof *a);
    a->method = "receiver-text";
    a->dtype = LW_WEIGHTS_F32;
    const char *stray = NULL;   /* the first option that does not apply: said after the method's verdict */
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool ok = true;
        const char *device = NULL;
        if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--split")) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (!strcmp(o, "--method")) ok = lw_opt_str(argc, argv, &i, &a->method);
        else if (!strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--budget")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 20, &a->o.budget);
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--dtype")) {
            const char *v = NULL;
            ok = lw_opt_str(argc, argv, &i, &v) && lw_opt_dtype("eval", v, &a->dtype);
        } else if (!strcmp(o, "--max-context")) ok = lw_opt_int(argc, argv, &i, 16, 1 << 20, &a->o.max_context);
        else if (!strcmp(o, "--verbose")) a->o.verbose = true;
        else if (!strcmp(o, "--quiet")) a->o.quiet = true;
        else if (!strcmp(o, "--device")) {
            ok = lw_opt_str(argc, argv, &i, &device);
            if (ok && strcmp(device, "cpu")) {
                fprintf(stderr, "lw eval: %s (a %s task) runs on --device cpu only for now\n", task->name,
                        lw_task_kind_name(task->kind));
                return false;
            }
        } else if (!stray) stray = o;
        if (!ok) return false;
    }
    int who = lw_answer_method(task, a->method);
    if (who < 0) {
        fprintf(stderr, "lw eval: %s\n", lw_last_error());
        return false;
    }
    a->o.sender = (who & 1) == 1;
    bool budget = who >= LW_ANSWER_BUDGET;
    if (!budget && a->o.budget > 0) {
        fprintf(stderr, "lw eval: --budget applies to --method token-budget or sender-token-budget, not %s\n",
                a->method);
        return false;
    }
    /* the budget defaults to the M the pair's soft tokens have: the interlingua's latents if it has one */
    if (budget && a->o.budget == 0) a->o.budget = m->has_interlingua ? m->interlingua.latents : m->bridge.soft_tokens;
    if (stray) {
        fprintf(stderr, "lw eval: option '%s' does not apply to %s (a %s task); it takes --task, --split, "
                "--method, --limit, --budget (token budgets), --max-context, --dtype, --threads, --json, --tasks-dir, "
                "--verbose, --quiet\n", stray, task->name,
                lw_task_kind_name(task->kind));
        return false;
    }
    if (!a->task || !a->split) {
        fprintf(stderr, "lw eval: --task and --split are required (see lw eval --help)\n");
        return false;
    }
    return true;
}

/* The per-row values a metric averages, and their mean and interval. */
typedef struct {
    const char *name;       /* JSON key */
    const char *label;      /* table */
    lw_mean_ci ci;
} summary;

static json_t *rows_json(const lw_task *t, const lw_answer_data *d, const lw_answer_result *r)
{
    json_t *rows = json_array();
    for (int i = 0; i < d->n; i++) {
        json_t *o = t->kind == LW_TASK_CHOICE
                        ? json_pack("{s:i, s:i}", "chose", r[i].pred, "label", d->rows[i].label)
                        : json_pack("{s:s, s:s}", "answer", r[i].answer ? r[i].answer : "", "gold",
                                    d->rows[i].golds[0]);
        if (t->kind == LW_TASK_GENERATE && t->metric == LW_METRIC_SQUAD_EM_F1) {
            json_object_set_new(o, "em", json_real(r[i].em));
            json_object_set_new(o, "f1", json_real(r[i].f1));
        } else json_object_set_new(o, "correct", json_boolean(r[i].correct > 0.5));
        json_array_append_new(rows, o);
    }
    return rows;
}

static lw_status write_json(const lw_manifest *m, const lw_task *t, const answer_args *a, const lw_answer_data *d,
                            const lw_answer_result *r, const summary *s, int n_sum, double chance, double majority,
                            double secs)
{
    json_t *o = json_object();
    json_object_set_new(o, "task", json_string(t->name));
    json_object_set_new(o, "kind", json_string(lw_task_kind_name(t->kind)));
    json_object_set_new(o, "split", json_string(a->split));
    char subset[96];
    lw_subset_describe(&(lw_subset){a->limit, false, 1}, subset, sizeof subset);
    json_object_set_new(o, "subset", json_string(subset));
    json_object_set_new(o, "method", json_string(a->method));
    json_object_set_new(o, "reader", json_string(a->o.sender ? "sender" : "receiver"));
    json_object_set_new(o, "pair", json_string(m->name));
    json_object_set_new(o, "dtype", json_string(lw_weights_dtype_name(a->dtype)));
    json_object_set_new(o, "soft_tokens", json_null());
    if (a->o.budget > 0) {   /* the token budget: what was cut, from what */
        double field = 0;
        for (int i = 0; i < d->n; i++) field += r[i].field_tokens;
        json_object_set_new(o, "budget", json_integer(a->o.budget));
        json_object_set_new(o, "budget_field", json_string(t->budget_field));
        json_object_set_new(o, "budget_keeps", json_string("first"));
        json_object_set_new(o, "mean_field_tokens_before_cut", json_real(field / d->n));
    }
    json_object_set_new(o, "seed", json_null());
    json_object_set_new(o, "n", json_integer(d->n));
    json_object_set_new(o, "metric", json_string(t->kind == LW_TASK_CHOICE ? (t->choice_mean ? "choice_mean_logprob"
                                                                                              : "choice_sum_logprob")
                                                 : t->metric == LW_METRIC_SQUAD_EM_F1 ? "squad_em_f1"
                                                                                       : "gsm8k_number"));
    for (int k = 0; k < n_sum; k++) {
        char key[64];
        json_object_set_new(o, s[k].name, json_real(s[k].ci.mean));
        snprintf(key, sizeof key, "%s_ci95", s[k].name);
        json_object_set_new(o, key, json_pack("[f, f]", s[k].ci.lo, s[k].ci.hi));
    }
    if (t->kind == LW_TASK_CHOICE) {
        json_object_set_new(o, "chance", json_real(chance));
        json_object_set_new(o, "majority", json_real(majority));
    }
    json_object_set_new(o, "bootstrap", json_pack("{s:i, s:i}", "resamples", LW_ANSWER_RESAMPLES,
                                                    "seed", LW_ANSWER_BOOT_SEED));
    if (t->kind == LW_TASK_GENERATE) json_object_set_new(o, "max_new_tokens", json_integer(t->max_new_tokens));
    double prompt = 0, gen = 0;
    for (int i = 0; i < d->n; i++) prompt += r[i].prompt_tokens, gen += r[i].gen_tokens;
    json_object_set_new(o, "mean_prompt_tokens", json_real(prompt / d->n));
    if (t->kind == LW_TASK_GENERATE) json_object_set_new(o, "mean_generated_tokens", json_real(gen / d->n));
    json_object_set_new(o, "seconds", json_real(secs));
    json_object_set_new(o, "seconds_per_example", json_real(secs / d->n));
    json_object_set_new(o, "rows", rows_json(t, d, r));
    return lw_json_write_atomic(a->json, o);
}

int lw_cmd_eval_answer(const lw_manifest *m, const lw_task *task, int argc, char **argv)
{
    answer_args a;
    if (!parse(m, task, argc, argv, &a) || !lw_threads_apply("eval", a.threads)) return 2;
    lw_manifest run = *m;   /* the reader loads at --dtype (lw_config_load_model), as lw_pair_with_dtype does */
    run.sender.load.dtype = run.receiver.load.dtype = a.dtype;
    lw_answer_data d = {0};
    lw_answer_result *r = NULL;
    double *v[2] = {NULL, NULL};
    int rc = 1;
    double t0 = lw_now_s();
    if (lw_answer_data_load(a.split, task, a.limit, &d)) {
        fprintf(stderr, "lw eval: data: %s\n", lw_last_error());
        return 1;
    }
    r = calloc((size_t)d.n, sizeof *r);
    v[0] = malloc((size_t)d.n * sizeof(double));
    v[1] = malloc((size_t)d.n * sizeof(double));
    if (!r || !v[0] || !v[1]) {
        fprintf(stderr, "lw eval: out of memory\n");
        goto done;
    }
    if (lw_answer_run(&run, task, &d, &a.o, r)) {
        fprintf(stderr, "lw eval: %s: %s\n", a.method, lw_last_error());
        goto done;
    }
    double secs = lw_now_s() - t0;
    bool squad = task->kind == LW_TASK_GENERATE && task->metric == LW_METRIC_SQUAD_EM_F1;
    summary s[2] = {{.name = "exact_match", .label = "exact match"}, {.name = "f1", .label = "F1"}};
    if (!squad) s[0] = (summary){.name = "accuracy", .label = "accuracy"};
    double chance = 0, majority = 0;
    int max_choices = 0;
    for (int i = 0; i < d.n; i++) {
        v[0][i] = squad ? r[i].em : r[i].correct;
        v[1][i] = r[i].f1;
        if (task->kind == LW_TASK_CHOICE) chance += 1.0 / d.rows[i].n_choices / d.n;
        if (d.rows[i].n_choices > max_choices) max_choices = d.rows[i].n_choices;
    }
    /* majority: always the choice (by position) that is most often right here */
    int *count = max_choices ? calloc((size_t)max_choices, sizeof *count) : NULL;
    for (int i = 0; count && i < d.n; i++) count[d.rows[i].label]++;
    for (int k = 0; count && k < max_choices; k++)
        if (count[k] > majority * d.n) majority = (double)count[k] / d.n;
    free(count);
    int n_sum = squad ? 2 : 1;
    for (int k = 0; k < n_sum; k++)
        if (lw_answer_mean_ci(v[k], d.n, &s[k].ci)) {
            fprintf(stderr, "lw eval: metrics: %s\n", lw_last_error());
            goto done;
        }
    printf("%s on %s (%d examples, method %s, %.1f s)\n", task->name, a.split, d.n, a.method, secs);
    if (a.o.budget > 0) {
        double field = 0;
        for (int i = 0; i < d.n; i++) field += r[i].field_tokens;
        printf("  budget      %s cut to its first %d tokens (%.1f before the cut, mean); the question kept\n",
               task->budget_field, a.o.budget, field / d.n);
    }
    for (int k = 0; k < n_sum; k++)
        printf("  %-11s %.4f  [%.4f, %.4f]\n", s[k].label, s[k].ci.mean, s[k].ci.lo, s[k].ci.hi);
    if (task->kind == LW_TASK_CHOICE) printf("  %-11s %.4f\n  %-11s %.4f\n", "chance", chance, "majority", majority);
    if (a.json && write_json(m, task, &a, &d, r, s, n_sum, chance, majority, secs)) {
        fprintf(stderr, "lw eval: writing JSON: %s\n", lw_last_error());
        goto done;
    }
    rc = 0;
done:
    lw_answer_results_free(r, d.n);
    free(r);
    free(v[0]);
    free(v[1]);
    lw_answer_data_free(&d);
    return rc;
}
