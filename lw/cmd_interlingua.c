/* lw train / lw eval --method interlingua on a generate task, for a pair
 * whose manifest has an "interlingua" block (interlingua_run.h): one
 * encoder, the sender and the receiver as its two readers.
 *
 *   lw train --task squad --split train.jsonl --out runs/il [--steps N --batch B --lr X --warmup W
 *            --limit N --seed S --max-answer L --log-every K --quiet --dtype fp32|bf16|q8|native --threads N
 *            --soft-field FIELD --first-token-weight W --norm-rows N (64; 0: no input norm)
 *            --spread X (the term against the message collapse on the latents, spread_term.h; 0: off)
 *            --dev FILE --eval-every K [--dev-slice N --patience P]]
 *   lw eval  --task squad --split dev.jsonl --method interlingua --checkpoint runs/il/final
 *            [--limit N --candidates K --json out.json --quiet --dtype D --threads N]
 *
 * --soft-field: the soft tokens stand for that field of the task's prompt
 * (SQuAD: context) and the readers read the rest (the question) as text;
 * the checkpoint records it (layout.json) and eval follows it. --dtype: the
 * frozen readers' matrices (narrow_weights.h; the encoder stays fp32).
 * Training writes out/train_log.jsonl (a line a step), out/final/,
 * out/run.json and, with --dev, out/dev_log.jsonl and out/best/. Evaluation prints EM/F1 with 95% bootstrap intervals for
 * each reader alone (its greedy answer) and for joint rescoring, and the
 * payload: M x d_z latents in fp32 and bf16 bytes against the prompt's
 * UTF-8 bytes, and the compression (each reader's text prompt tokens / M). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_data.h"
#include "answer_eval.h"
#include "answer_metrics.h"
#include "clock.h"
#include "cmd_common.h"
#include "fileutil.h"
#include "interlingua_run.h"
#include "lw_cli.h"
#include "metrics.h"
#include "run_dir.h"
#include "train_log.h"


bool lw_interlingua_task(const lw_pair *pair, int argc, char **argv, lw_task *task)
{
    if (!pair->manifest.has_interlingua) return false;
    if (!lw_named_task_peek(pair, argc, argv, task)) return false;
    if (task->kind == LW_TASK_GENERATE) return true;
    lw_task_free(task);
    return false;
}

typedef struct {
    const char *split, *out, *checkpoint, *json, *method, *soft_field, *dev;
    int limit, steps, batch, warmup, max_answer, log_every, candidates, eval_every, dev_slice, patience, norm_rows;
    int threads;   /* --threads; 0: $LWC_THREADS, else 1 (lw_threads_apply: the blocks lw eval's baselines use) */
    float lr, first_token_weight, spread_weight;   /* spread_weight: --spread (spread_term.h) */
    bool has_ftw;
    long seed;
    bool quiet;
    lw_weights_dtype dtype;
} il_args;

static bool parse(const char *cmd, int argc, char **argv, bool train, il_args *a)
{
    memset(a, 0, sizeof *a);
    a->steps = 50, a->batch = 4, a->warmup = 5, a->max_answer = 24, a->log_every = 1, a->candidates = 2;
    a->lr = 1e-3f, a->seed = 1, a->dtype = LW_WEIGHTS_F32, a->dev_slice = 64, a->patience = 0, a->norm_rows = 64;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *ignored = NULL;
        bool ok = true;
        if (!strcmp(o, "--task") || !strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &ignored);
        else if (!strcmp(o, "--split")) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--seed")) {
            int s = 0;
            ok = lw_opt_int(argc, argv, &i, 0, 1 << 30, &s);
            a->seed = s;
        } else if (!strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--max-answer")) ok = lw_opt_int(argc, argv, &i, 2, 256, &a->max_answer);
        else if (!strcmp(o, "--dtype")) {
            const char *v = NULL;
            ok = lw_opt_str(argc, argv, &i, &v) && lw_opt_dtype(cmd, v, &a->dtype);
        } else if (train && !strcmp(o, "--soft-field")) ok = lw_opt_str(argc, argv, &i, &a->soft_field);
        else if (train && !strcmp(o, "--first-token-weight")) {
            ok = lw_opt_float(argc, argv, &i, &a->first_token_weight);
            a->has_ftw = true;
            if (ok && !(a->first_token_weight >= 0.0f && a->first_token_weight <= 100.0f)) {
                fprintf(stderr, "lw %s: --first-token-weight %g: expected 0..100\n", cmd, (double)a->first_token_weight);
                return false;
            }
        } else if (train && !strcmp(o, "--spread")) {
            ok = lw_opt_float(argc, argv, &i, &a->spread_weight);
            if (ok && !(a->spread_weight >= 0.0f && a->spread_weight <= 100.0f)) {
                fprintf(stderr, "lw %s: --spread %g: expected 0..100\n", cmd, (double)a->spread_weight);
                return false;
            }
        } else if (train && !strcmp(o, "--dev")) ok = lw_opt_str(argc, argv, &i, &a->dev);
        else if (train && !strcmp(o, "--eval-every")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 24, &a->eval_every);
        else if (train && !strcmp(o, "--dev-slice")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 20, &a->dev_slice);
        else if (train && !strcmp(o, "--patience")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 20, &a->patience);
        else if (train && !strcmp(o, "--norm-rows")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 20, &a->norm_rows);
        else if (train && !strcmp(o, "--out")) ok = lw_opt_str(argc, argv, &i, &a->out);
        else if (train && !strcmp(o, "--steps")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 24, &a->steps);
        else if (train && !strcmp(o, "--batch")) ok = lw_opt_int(argc, argv, &i, 1, 4096, &a->batch);
        else if (train && !strcmp(o, "--warmup")) ok = lw_opt_int(argc, argv, &i, 0, 1 << 24, &a->warmup);
        else if (train && !strcmp(o, "--log-every")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 24, &a->log_every);
        else if (train && !strcmp(o, "--lr")) {
            ok = lw_opt_float(argc, argv, &i, &a->lr);
            if (ok && !(a->lr > 0.0f && a->lr < 1.0f)) {
                fprintf(stderr, "lw %s: --lr %g: expected a number in (0, 1)\n", cmd, (double)a->lr);
                return false;
            }
        } else if (!train && !strcmp(o, "--method")) ok = lw_opt_str(argc, argv, &i, &a->method);
        else if (!train && !strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!train && !strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else if (!train && !strcmp(o, "--candidates"))
            ok = lw_opt_int(argc, argv, &i, 1, LW_IL_MAX_CANDIDATES / LW_IL_READERS, &a->candidates);
        else {
            fprintf(stderr, "lw %s: option '%s' does not apply to the interlingua on a generate task\n", cmd, o);
            return false;
        }
        if (!ok) return false;
    }
    if (train && (a->eval_every > 0) != (a->dev != NULL)) {
        fprintf(stderr, "lw %s: --eval-every and --dev go together (early stopping on a held-out file)\n", cmd);
        return false;
    }
    if (!a->split || (train && !a->out) || (!train && !a->checkpoint)) {
        fprintf(stderr, "lw %s: the interlingua needs --split and %s\n", cmd, train ? "--out" : "--checkpoint");
        return false;
    }
    return true;
}

int lw_cmd_train_interlingua(const lw_pair *pair, const lw_task *task, int argc, char **argv)
{
    il_args a;
    if (!parse("train", argc, argv, true, &a) || !lw_threads_apply("train", a.threads)) return 2;
    const lw_manifest *m = &pair->manifest;
    lw_answer_data d = {0}, dev = {0};
    lw_il_session s;
    lw_il_optim opt = {0};
    lw_run_dir rd = {.lock_fd = -1};
    FILE *log = NULL, *dev_log = NULL;
    lw_il_train_result res = {0};
    int rc = 1, skipped = 0;
    char path[4096];
    if (lw_answer_data_load(a.split, task, a.limit, &d)) {
        fprintf(stderr, "lw train: data: %s\n", lw_last_error());
        return 1;
    }
    lw_pair run_pair;
    lw_pair_with_dtype(&run_pair, pair, a.dtype);
    run_pair.manifest.sender.load.backward = run_pair.manifest.receiver.load.backward = true;   /* dz comes through both */
    if (a.has_ftw) run_pair.manifest.interlingua.first_token_weight = a.first_token_weight;
    m = &run_pair.manifest;
    if (a.dev && lw_answer_data_load(a.dev, task, a.dev_slice, &dev)) {
        fprintf(stderr, "lw train: dev: %s\n", lw_last_error());
        lw_answer_data_free(&d);
        return 1;
    }
    if (lw_il_session_open_field(&s, m, task, a.max_answer, (uint64_t)a.seed, a.soft_field)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        lw_answer_data_free(&d);
        lw_answer_data_free(&dev);
        return 1;
    }
    if (lw_il_optim_init(&opt, &s.il) || lw_run_dir_open(&rd, a.out, LW_RUN_NEW)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    lw_pathf(path, sizeof path, "%s/train_log.jsonl", a.out);
    if (!(log = fopen(path, "w"))) {
        fprintf(stderr, "lw train: cannot write %s\n", path);
        goto done;
    }
    if (a.dev) {
        lw_pathf(path, sizeof path, "%s/dev_log.jsonl", a.out);
        if (!(dev_log = fopen(path, "w"))) {
            fprintf(stderr, "lw train: cannot write %s\n", path);
            goto done;
        }
    }
    lw_il_train_options o = {.steps = a.steps, .batch = a.batch, .warmup_steps = a.warmup, .log_every = a.log_every,
                             .lr = a.lr, .weight_decay = m->train.weight_decay, .grad_clip = m->train.grad_clip,
                             .seed = (uint64_t)a.seed, .quiet = a.quiet, .dev = a.dev ? &dev : NULL,
                             .eval_every = a.eval_every, .patience = a.patience, .dev_log = dev_log,
                             .out_dir = a.out, .result = &res, .norm_rows = a.norm_rows,
                             .spread_weight = a.spread_weight};
    double t0 = lw_now_s();
    if (lw_il_session_train(&s, &d, &o, &opt, log, &skipped)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    double secs = lw_now_s() - t0;
    if (lw_il_session_publish(&s, a.out, "final", &opt, res.steps_done)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    char run_json[2048], best[160] = "null";
    if (res.best_step > 0)
        snprintf(best, sizeof best, "{\"step\": %ld, \"dev_loss\": %.6f, \"stopped_early\": %s}", res.best_step,
                 res.best_dev_loss, res.stopped_early ? "true" : "false");
    snprintf(run_json, sizeof run_json,
             "{\n  \"method\": \"interlingua\",\n  \"task\": \"%s\",\n  \"pair\": \"%s\",\n  \"rows\": %d,\n"
             "  \"steps\": %d,\n  \"steps_done\": %ld,\n  \"batch\": %d,\n  \"lr\": %g,\n  \"warmup\": %d,\n"
             "  \"seed\": %ld,\n  \"latents\": %d,\n  \"d_z\": %d,\n"
             "  \"first_token_weight\": %g,\n  \"soft_field\": %s%s%s,\n  \"dtype\": \"%s\",\n  \"norm_rows\": %d,\n"
             "  \"spread_weight\": %g,\n"
             "  \"skipped_examples\": %d,\n  \"early_stopping\": %s,\n  \"seconds\": %.1f\n}\n",
             task->name, m->name, d.n, a.steps, res.steps_done, a.batch, (double)a.lr, a.warmup, a.seed,
             m->interlingua.latents, m->interlingua.d_z, (double)m->interlingua.first_token_weight,
             a.soft_field ? "\"" : "", a.soft_field ? a.soft_field : "null", a.soft_field ? "\"" : "",
             lw_weights_dtype_name(a.dtype), a.norm_rows, (double)a.spread_weight, skipped, best, secs);
    if (lw_train_write_run_json(a.out, run_json)) {
        fprintf(stderr, "lw train: %s\n", lw_last_error());
        goto done;
    }
    if (!a.quiet)
        printf("interlingua trained: %ld steps of %d on %d rows (%d too long skipped), %.1f s; %s/final\n",
               res.steps_done, a.batch, d.n, skipped, secs, a.out);
    rc = 0;
done:
    if (log) fclose(log);
    if (dev_log) fclose(dev_log);
    lw_run_dir_close(&rd);
    lw_il_optim_free(&opt);
    lw_il_session_close(&s);
    lw_answer_data_free(&d);
    lw_answer_data_free(&dev);
    return rc;
}

int lw_cmd_eval_interlingua(const lw_pair *pair, const lw_task *task, int argc, char **argv)
{
    il_args a;
    if (!parse("eval", argc, argv, false, &a) || !lw_threads_apply("eval", a.threads)) return 2;
    if (task->metric != LW_METRIC_SQUAD_EM_F1) {
        fprintf(stderr, "lw eval: the interlingua reports SQuAD EM/F1; %s's metric is not built here yet\n", task->name);
        return 1;
    }
    const lw_manifest *m = &pair->manifest;
    lw_answer_data d = {0};
    lw_il_session s;
    int rc = 1;
    enum { V = 3 };   /* sender alone, receiver alone, joint */
    static const char *const who[V] = {"sender", "receiver", "joint"};
    double *em[V] = {0}, *f1[V] = {0};
    char **ans[V] = {0};
    double text_bytes = 0, prompt_tok[LW_IL_READERS] = {0}, enc_tok = 0, cands = 0, z_cos = 0;
    float *prev_z = NULL;
    if (lw_answer_data_load(a.split, task, a.limit, &d)) {
        fprintf(stderr, "lw eval: data: %s\n", lw_last_error());
        return 1;
    }
    lw_pair run_pair;
    lw_pair_with_dtype(&run_pair, pair, a.dtype);
    m = &run_pair.manifest;
    char *field = NULL;
    if (lw_il_checkpoint_soft_field(a.checkpoint, &field) ||
        lw_il_session_open_field(&s, m, task, a.max_answer, 1, field) || lw_il_session_load(&s, a.checkpoint)) {
        fprintf(stderr, "lw eval: %s\n", lw_last_error());
        free(field);
        lw_answer_data_free(&d);
        return 1;
    }
    if (!(prev_z = malloc((size_t)s.il.readers[0].M * s.il.readers[0].d_z * sizeof(float)))) {
        fprintf(stderr, "lw eval: out of memory\n");
        goto done;
    }
    for (int k = 0; k < V; k++)
        if (!(em[k] = calloc((size_t)d.n, sizeof(double))) || !(f1[k] = calloc((size_t)d.n, sizeof(double))) ||
            !(ans[k] = calloc((size_t)d.n, sizeof(char *)))) {
            fprintf(stderr, "lw eval: out of memory\n");
            goto done;
        }
    double t0 = lw_now_s();
    for (int i = 0; i < d.n; i++) {
        lw_il_answer r;
        const lw_answer_row *row = &d.rows[i];
        if (lw_il_session_answer(&s, row, i, a.candidates, &r)) {
            fprintf(stderr, "lw eval: %s\n", lw_last_error());
            goto done;
        }
        /* how alike consecutive rows' latents are (1: the readers get the same message whatever the row) */
        size_t nz = (size_t)s.il.readers[0].M * s.il.readers[0].d_z;
        if (i > 0) {
            double dot = 0, n0 = 0, n1 = 0;
            for (size_t q = 0; q < nz; q++)
                dot += (double)s.il.z[q] * prev_z[q], n0 += (double)s.il.z[q] * s.il.z[q], n1 += (double)prev_z[q] * prev_z[q];
            z_cos += n0 > 0 && n1 > 0 ? dot / sqrt(n0 * n1) : 0.0;
        }
        memcpy(prev_z, s.il.z, nz * sizeof(float));
        char *pick[V] = {r.alone[0], r.alone[1], r.joint};
        lw_status st = LW_OK;
        for (int k = 0; !st && k < V; k++) {
            st = lw_squad_score(pick[k], (const char *const *)row->golds, row->n_gold, &em[k][i], &f1[k][i]);
            if (!st && !(ans[k][i] = strdup(pick[k]))) st = lw_fail(LW_ERR_NOMEM, "eval: out of memory");
        }
        text_bytes += (double)strlen(row->prompt);
        for (int q = 0; q < LW_IL_READERS; q++) prompt_tok[q] += r.prompt_tokens[q];
        enc_tok += r.enc_tokens;
        cands += r.n_candidates;
        lw_il_answer_free(&r);
        if (st) {
            fprintf(stderr, "lw eval: %s\n", lw_last_error());
            goto done;
        }
        if (!a.quiet) fprintf(stderr, "\r%d/%d rows", i + 1, d.n);
    }
    if (!a.quiet) fprintf(stderr, "\n");
    double secs = lw_now_s() - t0;
    lw_mean_ci sem[V], sf1[V];
    for (int k = 0; k < V; k++)
        if (lw_answer_mean_ci(em[k], d.n, &sem[k]) || lw_answer_mean_ci(f1[k], d.n, &sf1[k])) {
            fprintf(stderr, "lw eval: metrics: %s\n", lw_last_error());
            goto done;
        }
    int M = m->interlingua.latents;
    lw_il_payload pl = lw_interlingua_payload(M, m->interlingua.d_z, (size_t)(text_bytes / d.n + 0.5),
                                              (int)(prompt_tok[1] / d.n + 0.5));
    printf("%s on %s (%d examples, method interlingua, %d candidates a reader, %.1f s)\n", task->name, a.split, d.n,
           a.candidates, secs);
    for (int k = 0; k < V; k++)
        printf("  %-9s EM %.4f [%.4f, %.4f]  F1 %.4f [%.4f, %.4f]\n", who[k], sem[k].mean, sem[k].lo, sem[k].hi,
               sf1[k].mean, sf1[k].lo, sf1[k].hi);
    if (d.n > 1) printf("  latents   mean cosine of consecutive rows' latents %.4f\n", z_cos / (d.n - 1));
    printf("  payload   %d x %d latents: %zu bytes fp32, %zu bf16; the prompt's text %.0f bytes (UTF-8, mean)\n", M,
           m->interlingua.d_z, pl.fp32_bytes, pl.bf16_bytes, text_bytes / d.n);
    printf("  compression  text prompt tokens / M: sender %.2f, receiver %.2f; encoder tokens / M %.2f\n",
           prompt_tok[0] / d.n / M, prompt_tok[1] / d.n / M, enc_tok / d.n / M);
    if (a.json) {
        json_t *o = json_object(), *rows = json_array();
        json_object_set_new(o, "task", json_string(task->name));
        json_object_set_new(o, "split", json_string(a.split));
        json_object_set_new(o, "method", json_string("interlingua"));
        json_object_set_new(o, "pair", json_string(m->name));
        json_object_set_new(o, "checkpoint", json_string(a.checkpoint));
        json_object_set_new(o, "soft_field", field ? json_string(field) : json_null());
        json_object_set_new(o, "dtype", json_string(lw_weights_dtype_name(a.dtype)));
        json_object_set_new(o, "n", json_integer(d.n));
        json_object_set_new(o, "candidates_per_reader", json_integer(a.candidates));
        json_object_set_new(o, "mean_distinct_candidates", json_real(cands / d.n));
        json_object_set_new(o, "latent_cosine_consecutive_rows", d.n > 1 ? json_real(z_cos / (d.n - 1)) : json_null());
        for (int k = 0; k < V; k++)
            json_object_set_new(o, who[k],
                                json_pack("{s:f, s:[f, f], s:f, s:[f, f]}", "exact_match", sem[k].mean,
                                          "exact_match_ci95", sem[k].lo, sem[k].hi, "f1", sf1[k].mean, "f1_ci95",
                                          sf1[k].lo, sf1[k].hi));
        json_object_set_new(o, "payload",
                            json_pack("{s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "latents", M, "d_z",
                                      m->interlingua.d_z, "fp32_bytes", (int)pl.fp32_bytes, "bf16_bytes",
                                      (int)pl.bf16_bytes, "mean_text_bytes", text_bytes / d.n,
                                      "sender_prompt_tokens_per_latent", prompt_tok[0] / d.n / M,
                                      "receiver_prompt_tokens_per_latent", prompt_tok[1] / d.n / M,
                                      "encoder_tokens_per_latent", enc_tok / d.n / M));
        json_object_set_new(o, "bootstrap", json_pack("{s:i, s:i}", "resamples", LW_ANSWER_RESAMPLES,
                                                        "seed", LW_ANSWER_BOOT_SEED));
        json_object_set_new(o, "seconds", json_real(secs));
        for (int i = 0; i < d.n; i++)
            json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:f}", "gold", d.rows[i].golds[0], "sender",
                                                  ans[0][i], "receiver", ans[1][i], "joint", ans[2][i], "joint_f1",
                                                  f1[2][i]));
        json_object_set_new(o, "rows", rows);
        if (lw_json_write_atomic(a.json, o)) {
            fprintf(stderr, "lw eval: writing JSON: %s\n", lw_last_error());
            goto done;
        }
    }
    rc = 0;
done:
    for (int k = 0; k < V; k++) {
        for (int i = 0; ans[k] && i < d.n; i++) free(ans[k][i]);
        free(ans[k]);
        free(em[k]);
        free(f1[k]);
    }
    lw_il_session_close(&s);
    free(prev_z);
    free(field);
    lw_answer_data_free(&d);
    return rc;
}
