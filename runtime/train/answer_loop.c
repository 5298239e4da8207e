/* The answer-trained runs' shared training loop (answer_loop.h). */
#include "answer_loop.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "clock.h"
#include "rng.h"

static lw_status check(int n_rows, const lw_answer_loop_options *o, const lw_answer_loop_hooks *h)
{
    const char *w = o->what ? o->what : "training";
    if (n_rows < 1) return lw_fail(LW_ERR_INVALID, "%s: no training rows", w);
    if (o->steps < 1 || o->batch < 1 || !(o->lr > 0.0f) || o->warmup_steps < 0 || o->grad_clip < 0.0f ||
        o->eval_every < 0 || o->patience < 0 || o->checkpoint_every < 0 || (o->eval_every > 0 && !h->dev_loss))
        return lw_fail(LW_ERR_INVALID, "%s: steps %d, batch %d, lr %g, warmup %d, clip %g, eval every %d%s", w, o->steps,
                       o->batch, (double)o->lr, o->warmup_steps, (double)o->grad_clip, o->eval_every,
                       o->eval_every > 0 && !h->dev_loss ? " without a dev loss" : "");
    if (h->n_losses < 1 || h->n_losses > LW_ANSWER_LOOP_MAX_LOSSES || !h->zero_grad || !h->example || !h->clip ||
        !h->step)
        return lw_fail(LW_ERR_INVALID, "%s: the loop's hooks are incomplete (%d losses)", w, h->n_losses);
    return LW_OK;
}

/* A dev evaluation at step; *stop when the patience ran out. */
static lw_status evaluate(const lw_answer_loop_options *o, const lw_answer_loop_hooks *h, FILE *dev_log, long step,
                          double t0, int *bad, lw_answer_loop_result *r, bool *stop)
{
    double dl = 0;
    lw_status st = h->dev_loss(h->user, &dl);
    if (st) return lw_fail_wrap(st, "early stopping at step %ld", step);
    bool improved = dl < r->best_dev_loss;
    if (improved) r->best_dev_loss = dl, r->best_step = step, *bad = 0;
    else (*bad)++;
    double spread = NAN, cos = NAN;
    if (h->dev_message) h->dev_message(h->user, &spread, &cos);
    if (dev_log) {
        fprintf(dev_log,
                "{\"step\": %ld, \"dev_loss\": %.6f, \"best_step\": %ld, \"best_dev_loss\": %.6f, \"bad_evals\": %d, "
                "\"seconds\": %.2f",
                step, dl, r->best_step, r->best_dev_loss, *bad, lw_now_s() - t0);
        if (h->dev_message) {   /* JSON has no NaN: null */
            if (isfinite(spread)) fprintf(dev_log, ", \"msg_spread\": %.6f", spread);
            else fprintf(dev_log, ", \"msg_spread\": null");
            if (isfinite(cos)) fprintf(dev_log, ", \"msg_cos\": %.6f", cos);
            else fprintf(dev_log, ", \"msg_cos\": null");
        }
        fprintf(dev_log, "}\n");
        fflush(dev_log);
    }
    if (!o->quiet)
        fprintf(stderr, "step %ld: dev loss %.4f%s (best %.4f at step %ld)", step, dl, improved ? ", new best" : "",
                r->best_dev_loss, r->best_step);
    if (!o->quiet && h->dev_message) fprintf(stderr, ", message spread %.4f, cosine %.4f", spread, cos);
    if (!o->quiet) fprintf(stderr, "\n");
    if (improved && h->save && (st = h->save(h->user, "best", step))) return st;
    *stop = o->patience > 0 && *bad >= o->patience;
    return LW_OK;
}

lw_status lw_answer_loop_run(int n_rows, const lw_answer_loop_options *o, const lw_answer_loop_hooks *h,
                             FILE *dev_log, lw_answer_loop_result *r)
{
    memset(r, 0, sizeof *r);
    r->best_dev_loss = INFINITY;
    lw_status st = check(n_rows, o, h);
    if (st) return st;
    const char *w = o->what ? o->what : "training";
    lw_rng order_rng;
    lw_rng_seed(&order_rng, o->order_seed);
    int *order = malloc((size_t)n_rows * sizeof(int)), pos = n_rows, bad = 0;
    if (!order) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", w);
    double t0 = lw_now_s();
    for (long step = 0; !st && step < o->steps; step++) {
        h->zero_grad(h->user);
        double loss[LW_ANSWER_LOOP_MAX_LOSSES] = {0};
        int used = 0;
        /* a batch of rows that fit: one that does not is skipped, counted and replaced */
        for (int tries = 0; !st && used < o->batch && tries < o->batch + n_rows; tries++) {
            if (pos >= n_rows) {   /* a new epoch: a fresh shuffle */
                for (int i = 0; i < n_rows; i++) order[i] = i;
                lw_rng_shuffle(&order_rng, order, (size_t)n_rows);
                pos = 0;
            }
            double l[LW_ANSWER_LOOP_MAX_LOSSES] = {0};
            bool fits = false;
            st = h->example(h->user, order[pos++], 1.0f / (float)o->batch, l, &fits);
            if (!st && !fits) r->skipped++;
            if (!st && fits) {
                for (int k = 0; k < h->n_losses; k++) loss[k] += l[k];
                used++;
            }
        }
        if (st) break;
        if (used < o->batch) {
            st = lw_fail(LW_ERR_INVALID, "%s: no training row fits %s", w,
                         o->fit_limit ? o->fit_limit : "(the answer's or the prompt's length)");
            break;
        }
        bool finite = true;
        for (int k = 0; k < h->n_losses; k++) finite &= isfinite(loss[k] /= used) != 0;
        double norm = h->clip(h->user, o->grad_clip);
        float lr = lw_lr_at(step, o->warmup_steps, o->steps, o->lr, 0.1f);
        double secs = lw_now_s() - t0;
        if (!finite || !isfinite(norm)) {   /* never step on it */
            if (h->log) h->log(h->user, step + 1, lr, loss, norm, secs, true);
            st = lw_fail(LW_ERR_INVALID, "%s: step %ld: the loss or the gradient norm (%g) is not finite", w, step + 1,
                         norm);
            break;
        }
        h->step(h->user, lr);
        r->steps_done = step + 1;
        memcpy(r->last_losses, loss, sizeof loss);
        if (h->log) h->log(h->user, step + 1, lr, loss, norm, secs, false);
        if (!o->quiet && (step + 1) % (o->log_every > 0 ? o->log_every : 1) == 0) {
            fprintf(stderr, "step %ld/%d  loss", step + 1, o->steps);
            for (int k = 0; k < h->n_losses; k++)
                fprintf(stderr, " %s%s%.4f", h->loss_names ? h->loss_names[k] : "", h->loss_names ? " " : "", loss[k]);
            fprintf(stderr, "  |g| %.3g  lr %.3g  %.1f s\n", norm, (double)lr, secs);
        }
        if (o->eval_every > 0 && (step + 1) % o->eval_every == 0) {
            bool stop = false;
            if ((st = evaluate(o, h, dev_log, step + 1, t0, &bad, r, &stop))) break;
            if (stop) {
                r->stopped_early = true;
                break;
            }
        }
        if (h->save && o->checkpoint_every > 0 && (step + 1) % o->checkpoint_every == 0 && step + 1 < o->steps) {
            char name[32];
            snprintf(name, sizeof name, "step-%ld", step + 1);
            st = h->save(h->user, name, step + 1);
        }
    }
    r->seconds = lw_now_s() - t0;
    free(order);
    return st;
}
