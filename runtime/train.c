/* The training loop: sample, accumulate, clip, step, log, checkpoint. */
#include "train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "fileutil.h"

/* Streams drawn from the run's seed: bridge init uses the seed itself. */
#define SAMPLER_SALT 0x5a4d504cULL
#define RNG_SALT 0x524e4721ULL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lw_status check_options(const lw_train_options *o, const lw_dataset *d, const lw_sender_cache *c)
{
    const lw_train_config *k = &o->cfg;
    if (k->steps < 1 || k->batch < 1 || k->grad_accum < 1 || k->batch > 1 << 20 || k->grad_accum > 1 << 20)
        return lw_fail(LW_ERR_INVALID, "train: steps %d, batch %d, grad_accum %d must be positive", k->steps, k->batch,
                       k->grad_accum);
    if (!(k->lr > 0.0f) || k->warmup_steps < 0 || k->weight_decay < 0.0f || k->grad_clip < 0.0f)
        return lw_fail(LW_ERR_INVALID, "train: lr %g, warmup %d, weight decay %g, clip %g out of range", (double)k->lr,
                       k->warmup_steps, (double)k->weight_decay, (double)k->grad_clip);
    if (c->n < d->n)
        return lw_fail(LW_ERR_INVALID, "train: %d sender states for %d examples", c->n, d->n);
    return LW_OK;
}

static lw_status save(const char *out_dir, const char *name, const lw_trainer *t, const lw_adamw *opt,
                      const lw_rng *rng, long step)
{
    char dir[4096];
    if (!lw_pathf(dir, sizeof dir, "%s/%s", out_dir, name))
        return lw_fail(LW_ERR_INVALID, "train: checkpoint path too long under %s", out_dir);
    return lw_checkpoint_save(dir, t->bridge, opt, rng, step);
}

static FILE *open_log(const char *out_dir, bool append, lw_status *st)
{
    char path[4096];
    *st = lw_mkdir_p(out_dir);
    if (*st) return NULL;
    if (!lw_pathf(path, sizeof path, "%s/train_log.jsonl", out_dir)) {
        *st = lw_fail(LW_ERR_INVALID, "train: log path too long under %s", out_dir);
        return NULL;
    }
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) *st = lw_fail(LW_ERR_IO, "train: cannot open %s: %s", path, strerror(errno));
    return f;
}

typedef struct {
    double loss;
    int right, seen;
} step_stats;

/* One optimiser step's worth of examples: grads hold their mean gradient. */
static lw_status accumulate(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *d, lw_sampler *smp,
                            int per_step, float **x, size_t *x_cap, step_stats *s)
{
    lw_bridge_zero_grad(t->bridge);
    for (int i = 0; i < per_step; i++) {
        int idx = lw_sampler_next(smp), T;
        float loss;
        bool right;
        lw_status st = lw_sender_cache_read(states, idx, x, x_cap, &T);
        if (!st) st = lw_trainer_example(t, *x, T, d->examples[idx].label, 1.0f / (float)per_step, &loss, &right);
        if (st) return lw_fail_wrap(st, "train: example %d", idx);
        s->loss += loss / per_step;
        s->right += right;
        s->seen++;
    }
    return LW_OK;
}

lw_status lw_train_run(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data,
                       const lw_train_options *o, lw_train_result *r)
{
    memset(r, 0, sizeof *r);
    lw_status st = check_options(o, data, states);
    if (st) return st;
    const lw_train_config *k = &o->cfg;
    lw_bridge *b = t->bridge;
    lw_adamw opt = {0};
    lw_sampler smp = {0};
    lw_rng rng;
    long step = 0;
    lw_rng_seed(&rng, k->seed ^ RNG_SALT);
    if ((st = lw_adamw_init(&opt, b->n_params, lw_adamw_defaults()))) return st;
    if (o->resume_dir) {
        st = lw_checkpoint_load(o->resume_dir, b, &opt, &rng, &step);
        if (st) {
            lw_adamw_free(&opt);
            return lw_fail_wrap(st, "train: resuming from %s", o->resume_dir);
        }
    } else {
        lw_bridge_init(b, k->seed);
    }
    int per_step = k->batch * k->grad_accum;
    if (!(st = lw_sampler_init(&smp, data, k->class_balanced, k->seed ^ SAMPLER_SALT)))
        lw_sampler_skip(&smp, step * per_step);
    FILE *log = !st && o->out_dir ? open_log(o->out_dir, o->resume_dir != NULL, &st) : NULL;
    float *x = NULL;
    size_t x_cap = 0;
    double t0 = now_s();
    int right = 0, seen = 0;
    for (; !st && step < k->steps; step++) {
        step_stats s = {0};
        if ((st = accumulate(t, states, data, &smp, per_step, &x, &x_cap, &s))) break;
        double gnorm = lw_clip_grad_norm(b->grads, b->n_params, k->grad_clip);
        float lr = lw_lr_at(step, k->warmup_steps, k->steps, k->lr, 0.1f);
        lw_bridge_adamw_step(b, &opt, lr, k->weight_decay);
        right += s.right;
        seen += s.seen;
        r->steps_done++;
        r->last_loss = s.loss;
        double el = now_s() - t0, eps = seen / (el > 0 ? el : 1e-9);
        double eta = el / (double)r->steps_done * (double)(k->steps - step - 1);
        if (!o->quiet)
            fprintf(stderr, "\rstep %ld/%d  loss %.4f  acc %.3f  lr %.2e  |g| %.3f  %.1f ex/s  eta %.0f s   ",
                    step + 1, k->steps, s.loss, (double)right / seen, (double)lr, gnorm, eps, eta);
        if (log) {
            fprintf(log, "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, \"train_acc\": %.4f, "
                    "\"examples_per_s\": %.3f, \"elapsed_s\": %.3f}\n", step + 1, s.loss, (double)lr, gnorm,
                    (double)right / seen, eps, el);
            fflush(log);
        }
        if (o->out_dir && o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < k->steps) {
            char name[32];
            snprintf(name, sizeof name, "step-%ld", step + 1);
            st = save(o->out_dir, name, t, &opt, &rng, step + 1);
        }
    }
    if (!o->quiet && r->steps_done) fputc('\n', stderr);
    if (!st && o->out_dir) st = save(o->out_dir, "final", t, &opt, &rng, step);
    r->seconds = now_s() - t0;
    r->train_acc = seen ? (double)right / seen : 0.0;
    if (log && fclose(log) != 0 && !st) st = lw_fail(LW_ERR_IO, "train: writing the log under %s", o->out_dir);
    free(x);
    lw_sampler_free(&smp);
    lw_adamw_free(&opt);
    return st;
}
