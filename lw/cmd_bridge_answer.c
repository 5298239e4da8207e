/* lw train / lw eval --method bridge on a generate task, for a pair without
 * an "interlingua" block (bridge_answer_run.h): the pair's bridge trained on
 * written answers, and the receiver's greedy answer after its soft tokens.
 *
 *   lw train --task squad --split train.jsonl (or --data DIR) --out runs/ba [--steps N --batch B --lr X --warmup W
 *            --limit N --seed S --soft-tokens M --max-answer L --first-token-weight W
 *            --spread X (the term against the message collapse, spread_term.h; 0: off)
 *            --weight-decay X --grad-clip X --checkpoint-every N --log-every K --force --quiet --threads N
 *            --eval-every K --dev FILE --dev-slice N --patience P]
 *   lw eval  --task squad --split dev.jsonl --method bridge --checkpoint runs/ba/final
 *            [--limit N --max-answer L --json out.json --quiet --threads N]
 *
 * Training writes out/train_log.jsonl (a line a step), out/final/ (and
 * step-N, best/ with early stopping, dev_log.jsonl) and out/run.json, which
 * eval reads for M. Evaluation prints the task's metric (SQuAD EM/F1, or
 * GSM8K's number) with 95% bootstrap intervals (1000 resamples, seed 1) and
 * writes every row's answer to the JSON. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_data.h"
#include "answer_metrics.h"
#include "bridge_answer_run.h"
#include "clock.h"
#include "cmd_common.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "metrics.h"
#include "run_dir.h"
#include "train_log.h"


bool lw_bridge_answer_task(const lw_pair *pair, int argc, char **argv, lw_task *task)
{
    if (pair->manifest.has_interlingua) return false;
    if (!lw_named_task_peek(pair, argc, argv, task)) return false;
    if (task->kind == LW_TASK_GENERATE) return true;
    lw_task_free(task);
    return false;
}

typedef struct {
    const char *split, *out, *checkpoint, *json, *method, *dev;
    int limit, steps, batch, warmup, max_answer, log_every, M, checkpoint_every, eval_every, dev_slice, patience;
    int threads;   /* --threads; 0: $LWC_THREADS, else 1 (lw_threads_apply: the blocks lw eval's baselines use) */
    float lr, first_token_weight, weight_decay, grad_clip, spread_weight;
    long seed;
    bool quiet, force;
    char data_path[4096];
} ba_args;

static bool float_in(const char *cmd, int argc, char **argv, int *i, float lo, float hi, float *out)
{
    const char *flag = argv[*i];
    if (!lw_opt_float(argc, argv, i, out)) return false;
    if (!(*out >= lo && *out <= hi)) {
        fprintf(stderr, "lw %s: %s %g: expected a number in [%g, %g]\n", cmd, flag, (double)*out, (double)lo,
                (double)hi);
        return false;
    }
    return true;
}

static bool parse(const lw_manifest *m, const char *cmd, int argc, char **argv, bool train, ba_args *a)
{
    memset(a, 0, sizeof *a);
    a->steps = m->train.steps, a->batch = m->train.batch, a->warmup = m->train.warmup_steps, a->max_answer = 24;
    a->log_every = 1, a->lr = m->train.lr, a->seed = (long)m->train.seed, a->M = m->bridge.soft_tokens;
    a->first_token_weight = 1.0f, a->weight_decay = m->train.weight_decay, a->grad_clip = m->train.grad_clip;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *ignored = NULL;
        bool ok = true;
        if (!strcmp(o, "--task") || !strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &ignored);
        else if (!strcmp(o, "--split") || (train && !strcmp(o, "--train"))) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (train && !strcmp(o, "--data")) {   /* DIR: DIR/train.jsonl, as the classification path */
            const char *dir = NULL;
            if ((ok = lw_opt_str(argc, argv, &i, &dir))) {
                lw_pathf(a->data_path, sizeof a->data_path, "%s/train.jsonl", dir);
                a->split = a->data_path;
            }
        }
        else if (!strcmp(o, "--limit") || (train && !strcmp(o, "--limit-train")))
            ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--max-answer")) ok = lw_opt_int(argc, argv, &i, 2, 256, &a->max_answer);
        else if (!strcmp(o, "--method")) {
            ok = lw_opt_str(argc, argv, &i, &a->method);
            if (ok && strcmp(a->method, "bridge")) {
                fprintf(stderr, "lw %s: --method %s: on a generate task this path is the bridge's (--method bridge)%s\n",
                        cmd, a->method, train ? "" : "; the text baselines are receiver-text, sender-text, "
                        "token-budget, sender-token-budget");
                return false;
            }
        } else if (train && !strcmp(o, "--seed")) {
            int s = 0;
            ok = lw_opt_int(argc, argv, &i, 0, 1 << 30, &s);
            a->seed = s;
        } else if (train && !strcmp(o, "--out")) ok = lw_opt_str(argc, argv, &i, &a->out);
        else if (train && !strcmp(o, "--steps")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 24, &a->steps);
        else if (train && !strcmp(o, "--batch")) ok = lw_opt_int(argc, argv, &i, 1, 4096, &a->batch);
        else if (train && !strcmp(o, "--warmup")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 24, &a->warmup);
        else if (train && !strcmp(o, "--log-every")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 24, &a->log_every);
        else if (train && !strcmp(o, "--soft-tokens")) ok = lw_opt_int(argc, argv, &i, 1, 64, &a->M);
        else if (train && !strcmp(o, "--checkpoint-every"))
            ok = lw_opt_int(argc, argv, &i, 0, 1 << 30, &a->checkpoint_every);
        else if (train && !strcmp(o, "--eval-every")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 30, &a->eval_every);
        else if (train && !strcmp(o, "--dev-slice")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->dev_slice);
        else if (train && !strcmp(o, "--patience")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 20, &a->patience);
        else if (train && !strcmp(o, "--dev")) ok = lw_opt_str(argc, argv, &i, &a->dev);
        else if (train && !strcmp(o, "--force")) a->force = true;
        else if (train && !strcmp(o, "--lr")) ok = float_in(cmd, argc, argv, &i, 1e-8f, 0.999f, &a->lr);
        else if (train && !strcmp(o, "--first-token-weight"))
            ok = float_in(cmd, argc, argv, &i, 0.0f, 100.0f, &a->first_token_weight);
        else if (train && !strcmp(o, "--spread"))
            ok = float_in(cmd, argc, argv, &i, 0.0f, 100.0f, &a->spread_weight);
        else if (train && !strcmp(o, "--weight-decay")) ok = float_in(cmd, argc, argv, &i, 0.0f, 10.0f, &a->weight_decay);
        else if (train && !strcmp(o, "--grad-clip")) ok = float_in(cmd, argc, argv, &i, 0.0f, 1e6f, &a->grad_clip);
        else if (!train && !strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!train && !strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else {
            fprintf(stderr, "lw %s: option '%s' does not apply to the bridge on a generate task\n", cmd, o);
            return false;
        }
        if (!ok) return false;
    }
    if (!a->split || (train && !a->out) || (!train && !a->checkpoint)) {
        fprintf(stderr, "lw %s: the bridge on a generate task needs --split and %s\n", cmd,
                train ? "--out" : "--checkpoint");
        return false;
    }
    if (train && (a->eval_every > 0) != (a->dev != NULL && a->dev_slice > 0)) {
        fprintf(stderr, "lw train: early stopping takes --eval-every, --dev and --dev-slice together\n");
        return false;
    }
    return true;
}

int lw_cmd_train_bridge_answer(const lw_pair *pair, const lw_task *task, int argc, char **argv)
{
    ba_args a;
    const lw_manifest *m = &pair->manifest;
    if (!parse(m, "train", argc, argv, true, &a) || !lw_threads_apply("train", a.threads)) return 2;
    lw_answer_data d = {0}, dev = {0};
    lw_ba_session s;
    lw_run_dir rd = {.lock_fd = -1};
    int rc = 1;
    if (lw_answer_data_load(a.split, task, a.limit, &d)) {
        fprintf(stderr, "lw train: data: %s\n", lw_last_error());
        return 1;
    }
    if (a.dev && lw_answer_data_load(a.dev, task, a.dev_slice, &dev)) {
        fprintf(stderr, "lw train: --dev: %s\n", lw_last_error());
        lw_answer_data_free(&d);
        return 1;
    }
    if (lw_ba_session_open(&s, m, task, a.M, a.max_answer, a.first_token_weight, true, (uint64_t)a.seed)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        lw_answer_data_free(&dev);
        lw_answer_data_free(&d);
        return 1;
    }
    if (lw_run_dir_open(&rd, a.out, a.force ? LW_RUN_FORCE : LW_RUN_NEW)) {
        fprintf(stderr, "lw train: --out: %s\n", lw_last_error());
        goto done;
    }
    if (*rd.moved_to) fprintf(stderr, "lw train: --force: the run that was in %s is now in %s\n", a.out, rd.moved_to);
    if (!a.quiet)
        fprintf(stderr, "train: the bridge on answers: %s, %d rows, %ld bridge parameters, %d soft tokens, %d steps x %d"
                " examples, first-token weight %g\n", a.split, d.n, (long)s.bridge.n_params, a.M, a.steps, a.batch,
                (double)a.first_token_weight);
    lw_ba_train_options o = {.steps = a.steps, .batch = a.batch, .warmup_steps = a.warmup, .log_every = a.log_every,
                             .checkpoint_every = a.checkpoint_every, .lr = a.lr, .weight_decay = a.weight_decay,
                             .grad_clip = a.grad_clip, .seed = (uint64_t)a.seed, .quiet = a.quiet,
                             .dev = a.dev ? &dev : NULL, .eval_every = a.eval_every, .patience = a.patience,
                             .spread_weight = a.spread_weight};
    lw_ba_train_result r;
    lw_status st = lw_ba_session_train(&s, &d, &o, a.out, &r);
    if (st) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:i, s:i, s:f, s:i, s:f, s:f, s:f, s:i, s:I, s:f, s:f}",
                          "method", "bridge", "objective", "answer", "task", task->name, "train", a.split,
                          "train_examples", d.n, "seed", (json_int_t)a.seed, "soft_tokens", a.M, "steps", a.steps,
                          "batch", a.batch, "lr", (double)a.lr, "warmup_steps", a.warmup, "weight_decay",
                          (double)a.weight_decay, "grad_clip", (double)a.grad_clip, "first_token_weight",
                          (double)a.first_token_weight, "max_answer", a.max_answer, "steps_done",
                          (json_int_t)r.steps_done, "last_loss", r.last_loss, "seconds", r.seconds);
    if (j) json_object_set_new(j, "skipped_examples", json_integer(r.skipped));
    if (j) json_object_set_new(j, "spread_weight", json_real(a.spread_weight));
    if (j && a.dev)
        json_object_set_new(j, "early_stop", json_pack("{s:s, s:i, s:i, s:i, s:I, s:f, s:b}", "dev", a.dev,
                                                       "dev_slice", dev.n, "eval_every", a.eval_every, "patience",
                                                       a.patience, "best_step", (json_int_t)r.best_step,
                                                       "best_dev_loss", r.best_dev_loss, "stopped_early",
                                                       r.stopped_early));
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    st = text ? lw_train_write_run_json(a.out, text) : lw_fail(LW_ERR_NOMEM, "train: building run.json");
    free(text);
    if (st) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    if (!a.quiet)
        printf("bridge trained on answers: %ld steps of %d on %d rows (%d answers too long skipped), last loss %.4f, "
               "%.1f s; %s/final%s\n", r.steps_done, a.batch, d.n, r.skipped, r.last_loss, r.seconds, a.out,
               r.stopped_early ? " (stopped early; best/ has the best dev loss)" : "");
    rc = 0;
done:
    lw_run_dir_close(&rd);
    lw_ba_session_close(&s);
    lw_answer_data_free(&dev);
    lw_answer_data_free(&d);
    return rc;
}

int lw_cmd_eval_bridge_answer(const lw_pair *pair, const lw_task *task, int argc, char **argv)
{
    ba_args a;
    const lw_manifest *m = &pair->manifest;
    if (!parse(m, "eval", argc, argv, false, &a) || !lw_threads_apply("eval", a.threads)) return 2;
    int seed = 0, M = m->bridge.soft_tokens;
    bool has_seed = false, has_M = false;   /* taken from run.json when it has them */
    if (lw_run_json_read(a.checkpoint, &seed, &has_seed, &M, &has_M)) {
        fprintf(stderr, "lw eval: %s\n", lw_last_error());
        return 1;
    }
    lw_answer_data d = {0};
    lw_ba_session s;
    int rc = 1;
    bool squad = task->metric == LW_METRIC_SQUAD_EM_F1;
    double *v[2] = {NULL, NULL}, prompt = 0, gen = 0;
    char **ans = NULL;
    if (lw_answer_data_load(a.split, task, a.limit, &d)) {
        fprintf(stderr, "lw eval: data: %s\n", lw_last_error());
        return 1;
    }
    if (lw_ba_session_open(&s, m, task, M, a.max_answer, 0.0f, false, 1) || lw_ba_session_load(&s, a.checkpoint)) {
        fprintf(stderr, "lw eval: %s\n", lw_last_error());
        lw_answer_data_free(&d);
        return 1;
    }
    v[0] = calloc((size_t)d.n, sizeof(double));
    v[1] = calloc((size_t)d.n, sizeof(double));
    ans = calloc((size_t)d.n, sizeof(char *));
    if (!v[0] || !v[1] || !ans) {
        fprintf(stderr, "lw eval: out of memory\n");
        goto done;
    }
    double t0 = lw_now_s();
    for (int i = 0; i < d.n; i++) {
        const lw_answer_row *row = &d.rows[i];
        int P = 0, g = 0;
        lw_status st = lw_ba_session_answer(&s, row, i, &ans[i], &P, &g);
        if (!st) st = squad ? lw_squad_score(ans[i], (const char *const *)row->golds, row->n_gold, &v[0][i], &v[1][i])
                            : lw_gsm8k_score(ans[i], row->golds[0], &v[0][i]);
        if (st) {
            fprintf(stderr, "lw eval: %s\n", lw_last_error());
            goto done;
        }
        prompt += P, gen += g;
        if (!a.quiet) fprintf(stderr, "\r%d/%d rows", i + 1, d.n);
    }
    if (!a.quiet) fprintf(stderr, "\n");
    double secs = lw_now_s() - t0;
    lw_mean_ci sm[2] = {{0}};
    int n_sum = squad ? 2 : 1;
    for (int k = 0; k < n_sum; k++)
        if (lw_answer_mean_ci(v[k], d.n, &sm[k])) {
            fprintf(stderr, "lw eval: metrics: %s\n", lw_last_error());
            goto done;
        }
    static const char *const names[2][2] = {{"exact_match", "f1"}, {"accuracy", ""}};
    printf("%s on %s (%d examples, method bridge, %d soft tokens, %.1f s)\n", task->name, a.split, d.n, M, secs);
    for (int k = 0; k < n_sum; k++)
        printf("  %-11s %.4f  [%.4f, %.4f]\n", names[!squad][k], sm[k].mean, sm[k].lo, sm[k].hi);
    if (a.json) {
        json_t *o = json_object(), *rows = json_array();
        json_object_set_new(o, "task", json_string(task->name));
        json_object_set_new(o, "kind", json_string("generate"));
        json_object_set_new(o, "split", json_string(a.split));
        json_object_set_new(o, "method", json_string("bridge"));
        json_object_set_new(o, "reader", json_string("receiver"));
        json_object_set_new(o, "pair", json_string(m->name));
        json_object_set_new(o, "checkpoint", json_string(a.checkpoint));
        json_object_set_new(o, "soft_tokens", json_integer(M));
        json_object_set_new(o, "seed", has_seed ? json_integer(seed) : json_null());
        json_object_set_new(o, "n", json_integer(d.n));
        json_object_set_new(o, "metric", json_string(squad ? "squad_em_f1" : "gsm8k_number"));
        for (int k = 0; k < n_sum; k++) {
            char key[64];
            json_object_set_new(o, names[!squad][k], json_real(sm[k].mean));
            snprintf(key, sizeof key, "%s_ci95", names[!squad][k]);
            json_object_set_new(o, key, json_pack("[f, f]", sm[k].lo, sm[k].hi));
        }
        json_object_set_new(o, "bootstrap", json_pack("{s:i, s:i}", "resamples", LW_ANSWER_RESAMPLES,
                                                        "seed", LW_ANSWER_BOOT_SEED));
        json_object_set_new(o, "max_new_tokens", json_integer(task->max_new_tokens));
        json_object_set_new(o, "mean_prompt_tokens", json_real(prompt / d.n));
        json_object_set_new(o, "mean_generated_tokens", json_real(gen / d.n));
        json_object_set_new(o, "seconds", json_real(secs));
        json_object_set_new(o, "seconds_per_example", json_real(secs / d.n));
        for (int i = 0; i < d.n; i++) {
            json_t *r = json_pack("{s:s, s:s}", "answer", ans[i], "gold", d.rows[i].golds[0]);
            if (squad) {
                json_object_set_new(r, "em", json_real(v[0][i]));
                json_object_set_new(r, "f1", json_real(v[1][i]));
            } else json_object_set_new(r, "correct", json_boolean(v[0][i] > 0.5));
            json_array_append_new(rows, r);
        }
        json_object_set_new(o, "rows", rows);
        if (lw_json_write_atomic(a.json, o)) {
            fprintf(stderr, "lw eval: writing JSON: %s\n", lw_last_error());
            goto done;
        }
    }
    rc = 0;
done:
    for (int i = 0; ans && i < d.n; i++) free(ans[i]);
    free(ans);
    free(v[0]);
    free(v[1]);
    lw_ba_session_close(&s);
    lw_answer_data_free(&d);
    return rc;
}
