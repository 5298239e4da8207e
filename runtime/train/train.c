/* The training loop: sample, accumulate, clip, step, log, checkpoint. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "clock.h"
#include "early_stop.h"
#include "fileutil.h"
#include "layer_mix_file.h"
#include "run_dir.h"
#include "sender_cache_layers.h"
#include "train_checks.h"
#include "train_log.h"

/* Streams drawn from the run's seed: bridge init uses the seed itself. */
#define SAMPLER_SALT 0x5a4d504cULL
#define RNG_SALT 0x524e4721ULL
#define DROPOUT_SALT 0x44524f50ULL

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

/* DIR/<name>: checked finite first (a NaN must not replace a good
 * checkpoint), written into a hidden folder, then swapped in whole. */
lw_status lw_train_save_checkpoint(const char *out_dir, const char *name, const lw_trainer *t,
                                   const lw_adamw *opt, const lw_rng *rng, long step, const char *run_json)
{
    char dir[4096], tmp[4200];
    if (!lw_pathf(dir, sizeof dir, "%s/%s", out_dir, name))
        return lw_fail(LW_ERR_INVALID, "train: checkpoint path too long under %s", out_dir);
    lw_status st = lw_check_bridge_finite(t->bridge, opt);
    if (!st && t->adapters) st = lw_check_adapter_set_finite(t->adapters);
    for (int k = 0; !st && t->mix && k < t->mix->K; k++)
        if (!isfinite(t->mix->logits[k]) || !isfinite(t->mix->opt.m[k]) || !isfinite(t->mix->opt.v[k]))
            st = lw_fail(LW_ERR_INVALID, "layer mix logit %d or its moments not finite", k);
    if (st) return lw_fail_wrap(st, "train: step %ld: checkpoint %s not written", step, dir);
    if ((st = lw_checkpoint_temp_dir(out_dir, name, tmp, sizeof tmp))) return st;
    st = lw_checkpoint_save(tmp, t->bridge, opt, rng, step);
    if (!st && t->adapters) st = lw_adapter_set_save(t->adapters, tmp);
    if (!st && t->mix) st = lw_layer_mix_save(t->mix, tmp);
    if (!st && run_json) st = lw_train_write_run_json(tmp, run_json);
    if (st) {
        lw_remove_tree(tmp);
        return lw_fail_wrap(st, "train: step %ld: checkpoint %s not written", step, dir);
    }
    return lw_checkpoint_publish(tmp, dir);
}

/* Clips the bridge's and the adapters' gradients by their joint norm (as
 * one parameter vector, like clip_grad_norm_ over all of them); returns
 * the norm before clipping. */
static double clip_all(lw_trainer *t, float max_norm)
{
    lw_bridge *b = t->bridge;
    if (!t->adapters && !t->mix) return lw_clip_grad_norm(b->grads, b->n_params, max_norm);
    double nb = lw_grad_norm(b->grads, b->n_params);
    double sq = nb * nb + (t->adapters ? lw_adapter_set_grad_sq(t->adapters) : 0.0);
    for (int k = 0; t->mix && k < t->mix->K; k++) sq += (double)t->mix->grads[k] * t->mix->grads[k];
    double norm = sqrt(sq);
    if (max_norm > 0 && norm > max_norm) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < b->n_params; i++) b->grads[i] *= f;
        if (t->adapters) lw_adapter_set_scale_grads(t->adapters, f);
        for (int k = 0; t->mix && k < t->mix->K; k++) t->mix->grads[k] *= f;
    }
    return norm;
}

/* The bridge's input_norm from the training set: per-dimension mean and
 * std over every token of every example (with a layer mix: of the mix's
 * output at its initial weights, after its own statistics are fitted). */
static lw_status set_input_norm(lw_bridge *b, lw_layer_mix *mix, const lw_sender_cache *states, int n)
{
    int S = b->sender_hidden, width = mix ? mix->K * S : S;
    if (states->hidden != width)
        return lw_fail(LW_ERR_INVALID, "train: sender states are %d wide, the bridge%s takes %d", states->hidden,
                       mix ? "'s layer mix" : "", width);
    if (mix) {
        lw_status st = lw_layer_mix_fit_norm(mix, states, n);
        if (st) return lw_fail_wrap(st, "train");
    }
    double *sum = calloc((size_t)S * 2, sizeof *sum), *sq = sum + S;
    float *mean = malloc((size_t)S * 2 * sizeof *mean), *std = mean + S, *x = NULL, *mixed = NULL;
    size_t cap = 0, mixed_cap = 0;
    long rows = 0;
    lw_status st = sum && mean ? LW_OK : lw_fail(LW_ERR_NOMEM, "train: out of memory for input statistics");
    for (int i = 0; !st && i < n; i++) {
        int T;
        if ((st = lw_sender_cache_read(states, i, &x, &cap, &T))) break;
        if (mix) {
            if ((size_t)T * S > mixed_cap) {
                float *p = realloc(mixed, (size_t)T * S * sizeof *p);
                if (!p) { st = lw_fail(LW_ERR_NOMEM, "train: out of memory for input statistics"); break; }
                mixed = p, mixed_cap = (size_t)T * S;
            }
            lw_layer_mix_forward(mix, x, T, mixed);
        }
        const float *rx = mix ? mixed : x;
        for (int t = 0; t < T; t++)
            for (int c = 0; c < S; c++) {
                double v = rx[(size_t)t * S + c];
                sum[c] += v, sq[c] += v * v;
            }
        rows += T;
    }
    if (!st && rows < 1) st = lw_fail(LW_ERR_INVALID, "train: no sender states to standardise the input with");
    for (int c = 0; !st && c < S; c++) {
        double mu = sum[c] / (double)rows, var = sq[c] / (double)rows - mu * mu;
        mean[c] = (float)mu;
        std[c] = (float)sqrt(var > 0 ? var : 0);
    }
    if (!st) lw_bridge_set_input_norm(b, mean, std);
    free(sum);
    free(mean);
    free(x);
    free(mixed);
    return st;
}

typedef struct {
    double loss;
    int right, seen;
} step_stats;

/* The bridge's trainable tensors' names and gradient norms (before
 * clipping) for the log's "grad_groups"; returns how many. */
static int grad_groups(const lw_bridge *b, const char **names, double *norms)
{
    int n = 0;
    for (int k = 0; k < b->n_tensors; k++) {
        const lw_bridge_tensor *tt = &b->tensors[k];
        if (!tt->trainable) continue;
        names[n] = tt->name;
        norms[n++] = lw_grad_norm(b->grads + tt->offset, tt->count);
    }
    return n;
}

/* Which examples of a step this process runs: example j when j % world is
 * its rank (world 1: all of them). */
typedef struct {
    lw_comm *comm;   /* NULL: world 1 */
    int world, rank;
} shard;

/* One optimiser step's worth of examples: grads hold the sum of this
 * shard's examples' gradients over the step's per_step (the mean, at world
 * 1). Every rank draws every index so the samplers stay in step. The
 * adapters' dropout draw of an example is a function of the seed and of how
 * many examples came before it, so a resumed run draws the same, and so
 * does whichever rank runs it. */
static lw_status accumulate(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *d, lw_sampler *smp,
                            int per_step, int batch, long drawn, uint64_t seed, shard sh, float **x, size_t *x_cap,
                            step_stats *s)
{
    lw_bridge_zero_grad(t->bridge);
    lw_spread_term_reset(&t->spread);   /* the step's messages only */
    if (t->adapters) lw_adapter_set_zero_grad(t->adapters);
    if (t->mix) memset(t->mix->grads, 0, sizeof t->mix->grads);
    size_t n_max = (size_t)per_step;
    int *idx = malloc(n_max * sizeof *idx), *label = malloc(n_max * sizeof *label), n = 0;
    uint64_t *seeds = malloc(n_max * sizeof *seeds);
    float *loss = malloc(n_max * sizeof *loss);
    bool *right = malloc(n_max * sizeof *right);
    lw_status st = idx && label && seeds && loss && right
                       ? LW_OK
                       : lw_fail(LW_ERR_NOMEM, "train: out of memory for a step of %d examples", per_step);
    for (int i = 0; !st && i < per_step; i++) {
        int j = lw_sampler_next(smp);
        if (i % sh.world != sh.rank) continue;
        idx[n] = j;
        label[n] = d->examples[j].label;
        seeds[n++] = (seed ^ DROPOUT_SALT) + (uint64_t)(drawn + i) * 0x9e3779b97f4a7c15ULL;
    }
    /* a micro-batch at a time: packed into one receiver pass where it can be */
    for (int g = 0; !st && g < n; g += batch) {
        int k = n - g < batch ? n - g : batch;
        st = lw_trainer_examples(t, states, idx + g, label + g, seeds + g, k, 1.0f / (float)per_step, x, x_cap,
                                 loss + g, right + g);
    }
    for (int i = 0; !st && i < n; i++) {
        s->loss += loss[i] / per_step;
        s->right += right[i];
        s->seen++;
    }
    free(idx), free(label), free(seeds), free(loss), free(right);
    return st ? lw_fail_wrap(st, "train") : LW_OK;
}

/* The trained parameter blocks: the bridge's, then the adapters'. *grads
 * false: their values. Returns how many (at most 3). */
static int param_blocks(lw_trainer *t, bool grads, float **ptr, size_t *n)
{
    int k = 0;
    ptr[k] = grads ? t->bridge->grads : t->bridge->params, n[k++] = t->bridge->n_params;
    if (t->adapters && t->adapters->has_lora) {
        lw_adapter_params *p = &t->adapters->lora.p;
        ptr[k] = grads ? p->grads : p->params, n[k++] = p->n_params;
    }
    if (t->adapters && t->adapters->has_prefix) {
        lw_adapter_params *p = &t->adapters->prefix.p;
        ptr[k] = grads ? p->grads : p->params, n[k++] = p->n_params;
    }
    return k;
}

/* Sums the shards' gradients and counters: every rank then holds the
 * global batch's mean gradient, the same bits on each. */
static lw_status reduce_step(lw_trainer *t, shard sh, step_stats *s)
{
    float *ptr[3];
    size_t n[3];
    int k = param_blocks(t, true, ptr, n);
    lw_status st = LW_OK;
    for (int i = 0; !st && i < k; i++) st = lw_comm_allreduce_sum_f32(sh.comm, ptr[i], n[i]);
    if (!st && t->mix) st = lw_comm_allreduce_sum_f32(sh.comm, t->mix->grads, (size_t)t->mix->K);
    double counts[3] = {s->loss, s->right, s->seen};
    if (!st) st = lw_comm_allreduce_sum_f64(sh.comm, counts, 3);
    s->loss = counts[0], s->right = (int)counts[1], s->seen = (int)counts[2];
    return st ? lw_fail_wrap(st, "train: summing the step's gradients over %d ranks", sh.world) : LW_OK;
}

/* Before the first step: the ranks must run the same run (a rank started
 * with other options would step other parameters), and they start from
 * rank 0's parameters. */
static lw_status sync_ranks(lw_trainer *t, shard sh, const lw_train_config *k, int n_examples, long step)
{
    float *ptr[3];
    size_t n[3];
    int blocks = param_blocks(t, false, ptr, n);
    int64_t mine[10] = {(int64_t)n[0], blocks > 1 ? (int64_t)n[1] : -1, blocks > 2 ? (int64_t)n[2] : -1, k->steps,
                        k->batch, k->grad_accum, (int64_t)k->seed, k->class_balanced, n_examples, step};
    int64_t root[10];
    memcpy(root, mine, sizeof root);
    lw_status st = lw_comm_broadcast(sh.comm, root, sizeof root, 0);
    static const char *what[10] = {"bridge parameters", "LoRA parameters", "deep prefix parameters", "steps",
                                   "batch", "grad_accum", "seed", "class_balanced", "training examples", "start step"};
    for (int i = 0; !st && i < 10; i++)
        if (root[i] != mine[i])
            st = lw_fail(LW_ERR_INVALID, "train: rank %d has %s %lld, rank 0 %lld: every rank must run the same "
                         "options, data and checkpoint", sh.rank, what[i], (long long)mine[i], (long long)root[i]);
    for (int i = 0; !st && i < blocks; i++) st = lw_comm_broadcast(sh.comm, ptr[i], n[i] * sizeof(float), 0);
    if (!st && t->mix) st = lw_comm_broadcast(sh.comm, t->mix->logits, (size_t)t->mix->K * sizeof(float), 0);
    return st;
}

/* A resumed run's layer mix: the checkpoint's logits, buffers and moments,
 * on the same layers as this run's; a checkpoint of one layer does not
 * resume with a mix, nor the other way round. */
static lw_status resume_mix(lw_trainer *t, const char *dir)
{
    const char *saved = t->bridge->sender_layers;
    char mine[96] = "";
    if (t->mix) lw_layer_mix_describe(t->mix, mine, sizeof mine);
    if (strcmp(saved, mine) != 0)
        return lw_fail(LW_ERR_INVALID, "%s was trained on sender layer%s %s, this run reads %s", dir,
                       *saved ? "s" : "", *saved ? saved : "(one, the manifest's)",
                       *mine ? mine : "one layer (the manifest's): pass --sender-layers as the run did");
    if (!t->mix) return LW_OK;
    lw_layer_mix saved_mix;
    lw_status st = lw_layer_mix_load(&saved_mix, dir, t->mix->S);
    if (st) return st;
    memcpy(t->mix->logits, saved_mix.logits, sizeof saved_mix.logits);
    memcpy(t->mix->mean, saved_mix.mean, (size_t)saved_mix.K * saved_mix.S * sizeof(float));
    memcpy(t->mix->std, saved_mix.std, (size_t)saved_mix.K * saved_mix.S * sizeof(float));
    memcpy(t->mix->opt.m, saved_mix.opt.m, (size_t)saved_mix.K * sizeof(float));
    memcpy(t->mix->opt.v, saved_mix.opt.v, (size_t)saved_mix.K * sizeof(float));
    t->mix->opt.step = saved_mix.opt.step;
    lw_layer_mix_free(&saved_mix);
    return LW_OK;
}

lw_status lw_train_run(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data,
                       const lw_train_options *o, lw_train_result *r)
{
    memset(r, 0, sizeof *r);
    lw_status st = check_options(o, data, states);
    if (st) return st;
    int width = t->mix ? t->mix->K * t->bridge->sender_hidden : t->bridge->sender_hidden;
    if (states->hidden != width)
        return lw_fail(LW_ERR_INVALID, "train: sender states are %d wide, the %s takes %d", states->hidden,
                       t->mix ? "layer mix" : "bridge", width);
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
        if (!st && t->adapters) st = lw_adapter_set_load(t->adapters, o->resume_dir);
        if (!st) st = resume_mix(t, o->resume_dir);
        if (st) {
            lw_adamw_free(&opt);
            return lw_fail_wrap(st, "train: resuming from %s", o->resume_dir);
        }
    } else {
        lw_bridge_init(b, k->seed);
        if (t->mix) {   /* a fresh mix: the plain mean, no moments */
            memset(t->mix->logits, 0, sizeof t->mix->logits);
            lw_adamw_free(&t->mix->opt);
            st = lw_adamw_init(&t->mix->opt, (size_t)t->mix->K, lw_adamw_defaults());
            lw_layer_mix_describe(t->mix, b->sender_layers, sizeof b->sender_layers);
        } else {
            b->sender_layers[0] = '\0';
        }
        if (st || (st = set_input_norm(b, t->mix, states, data->n))) {
            lw_adamw_free(&opt);
            return st;
        }
    }
    int per_step = k->batch * k->grad_accum;
    shard sh = {.comm = o->comm, .world = o->comm ? o->comm->world : 1, .rank = o->comm ? o->comm->rank : 0};
    bool lead = sh.rank == 0, quiet = o->quiet || !lead;   /* rank 0 logs and saves for all */
    if (o->no_head_cache) t->rx.no_head_cache = true;
    const char *out_dir = lead ? o->out_dir : NULL;
    if (sh.world > 1 && (st = sync_ranks(t, sh, k, data->n, step))) {
        lw_adamw_free(&opt);
        return st;
    }
    if (!(st = lw_sampler_init(&smp, data, k->class_balanced, k->seed ^ SAMPLER_SALT)))
        lw_sampler_skip(&smp, step * per_step);
    FILE *log = !st && out_dir ? lw_train_log_open(out_dir, o->resume_dir ? step : -1, &st) : NULL;
    if (!st && out_dir && o->run_json) st = lw_train_write_run_json(out_dir, o->run_json);
    char last_saved[4096];   /* for the message of a step that stops the run */
    lw_pathf(last_saved, sizeof last_saved, "%s", o->resume_dir ? o->resume_dir : "");
    float *x = NULL;
    size_t x_cap = 0;
    const char **g_names = o->log_grad_groups ? calloc((size_t)b->n_tensors, sizeof *g_names) : NULL;
    double *g_norms = o->log_grad_groups ? calloc((size_t)b->n_tensors, sizeof *g_norms) : NULL;
    if (!st && o->log_grad_groups && (!g_names || !g_norms))
        st = lw_fail(LW_ERR_NOMEM, "train: out of memory for the gradient groups");
    lw_early_stop es = {0};
    if (!st && o->early_stop) st = lw_early_stop_open(&es, o->early_stop, o->out_dir, lead, o->resume_dir ? step : -1);
    double t0 = lw_now_s();
    int right = 0, seen = 0;
    for (; !st && step < k->steps; step++) {
        step_stats s = {0};
        st = accumulate(t, states, data, &smp, per_step, k->batch, step * per_step, k->seed, sh, &x, &x_cap, &s);
        if (!st && sh.world > 1) st = reduce_step(t, sh, &s);
        if (st) break;
        int n_groups = o->log_grad_groups ? grad_groups(b, g_names, g_norms) : 0;
        double gnorm = clip_all(t, k->grad_clip);
        float lr = lw_lr_at(step, k->warmup_steps, k->steps, k->lr, 0.1f);
        r->steps_done++;
        double el = lw_now_s() - t0, eps = seen / (el > 0 ? el : 1e-9);
        lw_train_log_line line = {step + 1, s.loss, lr, gnorm, seen ? (double)right / seen : 0.0, eps, el, false};
        if (!isfinite(s.loss) || !isfinite(gnorm)) {   /* never step on it */
            line.nonfinite = true;
            if (log) lw_train_log_write_groups(log, &line, n_groups, g_names, g_norms);
            if (r->steps_skipped < o->skip_nonfinite) {
                r->steps_skipped++;
                continue;
            }
            st = lw_train_nonfinite_stop(step + 1, s.loss, gnorm, last_saved, o->skip_nonfinite);
            break;
        }
        lw_bridge_adamw_step(b, &opt, lr, k->weight_decay);
        if (t->adapters) lw_adapter_set_adamw_step(t->adapters, lr, k->weight_decay);
        if (t->mix) lw_layer_mix_adamw_step(t->mix, lr);
        right += s.right;
        seen += s.seen;
        r->last_loss = s.loss;
        line.train_acc = (double)right / seen;
        line.examples_per_s = seen / (el > 0 ? el : 1e-9);
        double eta = el / (double)r->steps_done * (double)(k->steps - step - 1);
        if (!quiet)
            fprintf(stderr, "\rstep %ld/%d  loss %.4f  acc %.3f  lr %.2e  |g| %.3f  %.1f ex/s  eta %.0f s   ",
                    step + 1, k->steps, s.loss, line.train_acc, (double)lr, gnorm, line.examples_per_s, eta);
        if (log) lw_train_log_write_groups(log, &line, n_groups, g_names, g_norms);
        if (o->early_stop && (step + 1) % es.o.every == 0) {   /* before step-N: its dev log holds step N */
            lw_dev_stats dev;
            bool improved, stop;
            if ((st = lw_dev_eval(t, es.o.states, es.o.data, &es.x, &es.x_cap, &dev)))
                st = lw_fail_wrap(st, "early stopping at step %ld", step + 1);
            if (st || (st = lw_early_stop_eval(&es, step + 1, &dev, &improved, &stop))) break;
            if (!quiet)
                fprintf(stderr, "\nstep %ld: dev loss %.4f%s (best %.4f at step %ld), first-token acc %.3f, "
                        "message spread %.4f\n", step + 1, dev.loss, improved ? ", new best" : "", es.best,
                        es.best_step, dev.first_acc, dev.spread);
            if (improved && out_dir &&
                (st = lw_train_save_checkpoint(out_dir, "best", t, &opt, &rng, step + 1, o->run_json)))
                break;
            if (stop) {
                r->stopped_early = true;
                step++;   /* final/ holds the step just made */
                break;
            }
        }
        if (out_dir && o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < k->steps) {
            char name[32];
            snprintf(name, sizeof name, "step-%ld", step + 1);
            if (!(st = lw_train_save_checkpoint(out_dir, name, t, &opt, &rng, step + 1, o->run_json)))
                lw_pathf(last_saved, sizeof last_saved, "%s/%s", out_dir, name);
        }
    }
    if (!quiet && r->steps_done) fputc('\n', stderr);
    if (o->early_stop) {
        r->best_step = es.best_step, r->best_dev_loss = es.best;
        if (r->stopped_early && !quiet)
            fprintf(stderr, "train: stopped at step %ld: no better dev loss in %d evaluations (best %.4f at step %ld, "
                    "saved as best/)\n", step, es.o.patience, es.best, es.best_step);
        lw_early_stop_close(&es);
    }
    if (r->steps_skipped && lead)
        fprintf(stderr, "train: %ld step%s skipped for a non-finite loss or gradient (--skip-nonfinite %d)\n",
                r->steps_skipped, r->steps_skipped > 1 ? "s" : "", o->skip_nonfinite);
    if (!st && out_dir) st = lw_train_save_checkpoint(out_dir, "final", t, &opt, &rng, step, o->run_json);
    /* a rank that failed has closed its sockets or will: the others learn it here */
    if (!st && sh.world > 1) st = lw_comm_barrier(sh.comm);
    r->seconds = lw_now_s() - t0;
    r->train_acc = seen ? (double)right / seen : 0.0;
    if (log && fclose(log) != 0 && !st) st = lw_fail(LW_ERR_IO, "train: writing the log under %s", out_dir);
    free(x);
    free(g_names);
    free(g_norms);
    lw_sampler_free(&smp);
    lw_adamw_free(&opt);
    return st;
}
