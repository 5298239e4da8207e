/* The training loop of the text methods (train_text.h), the same schedule,
 * sampler and clipping as the bridge's (train.c), and the lw train / lw eval
 * entry points that load the receiver and tokenize the texts. */
#include "train_text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baselines.h"
#include "clock.h"
#include "fileutil.h"
#include "random_weights.h"
#include "run_dir.h"
#include "train_checks.h"
#include "train_log.h"

/* The bridge's sampler and dropout salts (train.c), so both draw alike. */
#define SAMPLER_SALT 0x5a4d504cULL
#define DROPOUT_SALT 0x44524f50ULL
/* Prompt positions the receiver's tokenizer may use for one example. */
enum { TEXT_MAX_CONTEXT = 1024 };

void lw_text_prompts_free(lw_text_prompts *p)
{
    for (int i = 0; p->ids && i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
    memset(p, 0, sizeof *p);
}

static double clip(lw_text_trainer *t, float max_norm)
{
    if (t->method == LW_TEXT_LORA) {
        double norm = sqrt(lw_adapter_set_grad_sq(&t->lora));
        if (max_norm > 0 && norm > max_norm) lw_adapter_set_scale_grads(&t->lora, (float)(max_norm / (norm + 1e-6)));
        return norm;
    }
    return lw_clip_grad_norm(t->prompt.grads, t->prompt.n_params, max_norm);
}

static void opt_step(lw_text_trainer *t, float lr, float wd)
{
    if (t->method == LW_TEXT_LORA) {
        lw_adapter_set_adamw_step(&t->lora, lr, wd);
        return;
    }
    lw_adamw_begin_step(&t->opt);
    lw_adapter_params_adamw(&t->prompt, &t->opt, lr, wd);
}

/* As the bridge's (train.c): finite first, then written whole, with the
 * run's run.json inside (NULL: none). */
static lw_status save(const lw_text_trainer *t, const char *out_dir, const char *name, const char *run_json)
{
    char dir[4096], tmp[4200];
    if (!lw_pathf(dir, sizeof dir, "%s/%s", out_dir, name))
        return lw_fail(LW_ERR_INVALID, "train: checkpoint path too long under %s", out_dir);
    lw_status st = t->method == LW_TEXT_LORA ? lw_check_adapter_set_finite(&t->lora)
                                             : lw_check_adapter_params_finite("prompt", &t->prompt, &t->opt);
    if (st) return lw_fail_wrap(st, "train: checkpoint %s not written", dir);
    if ((st = lw_checkpoint_temp_dir(out_dir, name, tmp, sizeof tmp))) return st;
    if ((st = lw_text_trainer_save(t, tmp)) || (run_json && (st = lw_train_write_run_json(tmp, run_json)))) {
        lw_remove_tree(tmp);
        return lw_fail_wrap(st, "train: checkpoint %s not written", dir);
    }
    return lw_checkpoint_publish(tmp, dir);
}

/* One step's examples, a micro-batch (batch examples) at a time; the grads
 * hold their mean gradient. */
static lw_status accumulate(lw_text_trainer *t, const lw_text_prompts *p, const lw_dataset *d, lw_sampler *smp,
                            int per_step, int batch, long drawn, uint64_t seed, double *loss, int *right)
{
    lw_text_trainer_zero_grad(t);
    size_t n = (size_t)batch;
    const int **ids = malloc(n * sizeof *ids);
    int *len = malloc(n * sizeof *len), *label = malloc(n * sizeof *label), *idx = malloc(n * sizeof *idx);
    uint64_t *seeds = malloc(n * sizeof *seeds);
    float *l = malloc(n * sizeof *l);
    bool *ok = malloc(n * sizeof *ok);
    lw_status st = ids && len && label && idx && seeds && l && ok
                       ? LW_OK
                       : lw_fail(LW_ERR_NOMEM, "train: out of memory for a micro-batch of %d", batch);
    for (int g = 0; !st && g < per_step; g += batch) {
        int k = per_step - g < batch ? per_step - g : batch;
        for (int i = 0; i < k; i++) {
            seeds[i] = (seed ^ DROPOUT_SALT) + (uint64_t)(drawn + g + i) * 0x9e3779b97f4a7c15ULL;
            idx[i] = lw_sampler_next(smp);
            ids[i] = p->ids[idx[i]], len[i] = p->len[idx[i]], label[i] = d->examples[idx[i]].label;
        }
        st = lw_text_trainer_examples(t, ids, len, label, seeds, k, 1.0f / (float)per_step, l, ok);
        if (st) st = lw_fail_wrap(st, "train: a micro-batch from example %d", idx[0]);
        for (int i = 0; !st && i < k; i++) {
            *loss += l[i] / per_step;
            *right += ok[i];
        }
    }
    free(ids), free(len), free(label), free(idx), free(seeds), free(l), free(ok);
    return st;
}

lw_status lw_text_train_run(lw_text_trainer *t, const lw_text_prompts *prompts, const lw_dataset *data,
                            const lw_train_options *o, lw_train_result *r)
{
    memset(r, 0, sizeof *r);
    const lw_train_config *k = &o->cfg;
    if (k->steps < 1 || k->batch < 1 || k->grad_accum < 1 || k->batch > 1 << 20 || k->grad_accum > 1 << 20 ||
        !(k->lr > 0.0f) || k->warmup_steps < 0 || k->weight_decay < 0.0f || k->grad_clip < 0.0f)
        return lw_fail(LW_ERR_INVALID, "train: steps %d, batch %d, grad_accum %d, lr %g, warmup %d out of range",
                       k->steps, k->batch, k->grad_accum, (double)k->lr, k->warmup_steps);
    if (prompts->n < data->n || data->n < 1)
        return lw_fail(LW_ERR_INVALID, "train: %d prompts for %d examples", prompts->n, data->n);
    if (o->no_head_cache) t->rx.no_head_cache = true;
    long step = 0;
    lw_status st = o->resume_dir ? lw_text_trainer_load(t, o->resume_dir, &step) : LW_OK;
    if (st) return st;
    int per_step = k->batch * k->grad_accum, right = 0, seen = 0;
    lw_sampler smp = {0};
    if (!(st = lw_sampler_init(&smp, data, k->class_balanced, k->seed ^ SAMPLER_SALT)))
        lw_sampler_skip(&smp, step * per_step);
    FILE *log = !st && o->out_dir ? lw_train_log_open(o->out_dir, o->resume_dir ? step : -1, &st) : NULL;
    if (!st && o->out_dir && o->run_json) st = lw_train_write_run_json(o->out_dir, o->run_json);
    char last_saved[4096];
    lw_pathf(last_saved, sizeof last_saved, "%s", o->resume_dir ? o->resume_dir : "");
    double t0 = lw_now_s();
    for (; !st && step < k->steps; step++) {
        double loss = 0.0;
        int ok = 0;
        if ((st = accumulate(t, prompts, data, &smp, per_step, k->batch, step * per_step, k->seed, &loss, &ok))) break;
        double gnorm = clip(t, k->grad_clip);
        float lr = lw_lr_at(step, k->warmup_steps, k->steps, k->lr, 0.1f);
        r->steps_done++;
        double el = lw_now_s() - t0;
        lw_train_log_line line = {step + 1, loss, lr, gnorm, seen ? (double)right / seen : 0.0,
                                  seen / (el > 0 ? el : 1e-9), el, false};
        if (!isfinite(loss) || !isfinite(gnorm)) {   /* never step on it (train.c) */
            line.nonfinite = true;
            if (log) lw_train_log_write(log, &line);
            if (r->steps_skipped < o->skip_nonfinite) {
                r->steps_skipped++;
                continue;
            }
            st = lw_train_nonfinite_stop(step + 1, loss, gnorm, last_saved, o->skip_nonfinite);
            break;
        }
        opt_step(t, lr, k->weight_decay);
        right += ok, seen += per_step;
        r->last_loss = loss;
        line.train_acc = (double)right / seen;
        line.examples_per_s = seen / (el > 0 ? el : 1e-9);
        if (!o->quiet)
            fprintf(stderr, "\rstep %ld/%d  loss %.4f  acc %.3f  lr %.2e  |g| %.3f  %.1f ex/s   ", step + 1,
                    k->steps, loss, line.train_acc, (double)lr, gnorm, line.examples_per_s);
        if (log) lw_train_log_write(log, &line);
        if (o->out_dir && o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < k->steps) {
            char name[32];
            snprintf(name, sizeof name, "step-%ld", step + 1);
            if (!(st = save(t, o->out_dir, name, o->run_json)))
                lw_pathf(last_saved, sizeof last_saved, "%s/%s", o->out_dir, name);
        }
    }
    if (!o->quiet && r->steps_done) fputc('\n', stderr);
    if (r->steps_skipped)
        fprintf(stderr, "train: %ld step%s skipped for a non-finite loss or gradient (--skip-nonfinite %d)\n",
                r->steps_skipped, r->steps_skipped > 1 ? "s" : "", o->skip_nonfinite);
    if (!st && o->out_dir) st = save(t, o->out_dir, "final", o->run_json);
    r->seconds = lw_now_s() - t0;
    r->train_acc = seen ? (double)right / seen : 0.0;
    if (log && fclose(log) != 0 && !st) st = lw_fail(LW_ERR_IO, "train: writing the log under %s", o->out_dir);
    lw_sampler_free(&smp);
    return st;
}

/* ---- lw train / lw eval --------------------------------------------------- */

/* The receiver, its tokenizer, the task's text layout, and data's prompts
 * as the receiver-zeroshot baseline builds them. */
typedef struct {
    lw_model *model;
    lw_tokenizer *tok;
    lw_text_model text;
    bool text_ready;
    lw_text_prompts prompts;
} text_side;

static void side_close(text_side *s)
{
    lw_text_prompts_free(&s->prompts);
    if (s->text_ready) lw_text_model_free(&s->text);
    lw_model_free(s->model);
    lw_tokenizer_free(s->tok);
    memset(s, 0, sizeof *s);
}

static lw_status side_open(text_side *s, const lw_manifest *m, const lw_task *task, const lw_dataset *d, int M)
{
    memset(s, 0, sizeof *s);
    const lw_model_config *c = &m->receiver;
    lw_status st = lw_config_load_tokenizer(c, &s->tok);
    if (!st) st = lw_config_load_model(c, &s->model);
    if (!st) st = lw_text_model_init(&s->text, s->model, s->tok, task, TEXT_MAX_CONTEXT, "receiver");
    s->text_ready = !st;
    lw_text_prompts *p = &s->prompts;
    if (!st && (!(p->ids = calloc((size_t)d->n + 1, sizeof *p->ids)) ||
                !(p->len = calloc((size_t)d->n + 1, sizeof *p->len))))
        st = lw_fail(LW_ERR_NOMEM, "train: out of memory for %d prompts", d->n);
    int room = M + s->text.layout.max_verb, shots;
    for (int i = 0; !st && i < d->n; i++, p->n++) {
        st = lw_baseline_prompt(&s->text, NULL, d->examples[i].text, 0, room, &p->ids[i], &p->len[i], &shots);
        if (!st && p->len[i] > p->max_len) p->max_len = p->len[i];
        if (st) st = lw_fail_wrap(st, "example %d", i);
    }
    if (st) side_close(s);
    return st ? lw_fail_wrap(st, "receiver %s", c->name) : LW_OK;
}

lw_status lw_text_method_train(const lw_manifest *m, const lw_task *task, const lw_dataset *data,
                               lw_text_method method, int M, const lw_lora_config *lora, const lw_train_options *o,
                               lw_train_result *r)
{
    text_side s;
    lw_text_trainer t = {0};
    lw_status st = side_open(&s, m, task, data, method == LW_TEXT_PROMPT_TUNING ? M : 0);
    if (st) return st;
    st = lw_text_trainer_create(&t, s.model, &s.text.layout, method, M, lora, s.prompts.max_len, o->cfg.seed);
    if (!st)
        fprintf(stderr, "train: %s on the receiver's text prompt, %ld parameters, longest prompt %d tokens\n",
                lw_text_method_name(method), (long)lw_text_trainer_n_params(&t), s.prompts.max_len + t.M);
    if (!st) st = lw_text_train_run(&t, &s.prompts, data, o, r);
    lw_text_trainer_free(&t);
    side_close(&s);
    return st;
}

lw_status lw_text_method_predict(const lw_manifest *m, const lw_task *task, const lw_dataset *data,
                                 lw_text_method method, const char *dir, bool quiet, int *pred, int *M)
{
    *M = 0;
    lw_status st = method == LW_TEXT_PROMPT_TUNING ? lw_text_checkpoint_soft_tokens(dir, M) : LW_OK;
    if (st) return st;
    text_side s;
    lw_text_trainer t = {0};
    if ((st = side_open(&s, m, task, data, *M))) return st;
    lw_lora_config lc;   /* replaced by the checkpoint's own */
    lw_lora_config_parse(&lc, 8, 16.0f, 0.0f, "q,v", NULL);
    st = lw_text_trainer_create(&t, s.model, &s.text.layout, method, *M, &lc, s.prompts.max_len, 0);
    if (!st) st = lw_text_trainer_open(&t, dir);
    double *scores = calloc((size_t)task->n_labels, sizeof *scores), t0 = lw_now_s();
    if (!st && !scores) st = lw_fail(LW_ERR_NOMEM, "eval: out of memory");
    for (int i = 0; !st && i < data->n; i++) {
        if ((st = lw_text_trainer_score(&t, s.prompts.ids[i], s.prompts.len[i], scores))) break;
        pred[i] = 0;
        for (int k = 1; k < task->n_labels; k++)
            if (scores[k] > scores[pred[i]]) pred[i] = k;
        if (!quiet && ((i + 1) % 10 == 0 || i + 1 == data->n))
            fprintf(stderr, "\reval: %d/%d  %.3f s/example   ", i + 1, data->n, (lw_now_s() - t0) / (i + 1));
    }
    if (!quiet) fputc('\n', stderr);
    free(scores);
    lw_text_trainer_free(&t);
    side_close(&s);
    return st;
}
