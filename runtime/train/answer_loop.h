/* The training loop the answer-trained runs share (the pair's bridge on
 * answers, bridge_answer_run.h; the interlingua, interlingua_run.h): what
 * differs between them, one example's forward and backward, the clip, the
 * optimizer step, the dev loss, saving and the log line, is passed in.
 *
 * Each step: the gradients zeroed; examples taken in shuffled epochs (a
 * fresh shuffle of the row order from order_seed at each epoch's start)
 * until `batch` of them fit (a row that does not, e.g. its answer longer
 * than the run's cap, is skipped, counted and replaced; no row of the
 * whole data fitting is an error), each at scale 1/batch; the losses
 * averaged over them; the gradient-norm clip; lr = lw_lr_at (warmup, then
 * cosine to 0.1 lr); a loss or norm that is not finite stops the run
 * before any step on it (the log hook hears of it); the optimizer step;
 * the log hook. With a dev evaluation (dev_loss set and eval_every > 0):
 * every eval_every steps the dev loss, a line of dev_log
 * {"step", "dev_loss", "best_step", "best_dev_loss", "bad_evals",
 * "seconds"} (and "msg_spread", "msg_cos" with a dev_message hook), a
 * new best handed to save(user, "best", step), and patience
 * evaluations in a row without one stop the run (0: never). */
#ifndef LW_ANSWER_LOOP_H
#define LW_ANSWER_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

enum { LW_ANSWER_LOOP_MAX_LOSSES = 4 };

typedef struct {
    int steps, batch, warmup_steps, log_every;
    float lr, grad_clip;
    uint64_t order_seed;
    int eval_every, patience;    /* eval_every 0: no dev evaluation */
    int checkpoint_every;        /* > 0: save(user, "step-N", N) every so many steps but the last */
    bool quiet;                  /* no progress lines on stderr */
    const char *what;            /* names the run in errors ("interlingua") */
    const char *fit_limit;       /* what a row must fit, for the error when none does (may be NULL) */
} lw_answer_loop_options;

typedef struct {
    void *user;
    int n_losses;                /* values an example reports: 1 .. LW_ANSWER_LOOP_MAX_LOSSES */
    const char *const *loss_names;   /* for the progress line (n_losses of them) */
    void (*zero_grad)(void *user);
    /* row's forward and backward, its gradient times scale added; *fits
     * false: the row was not used (losses untouched) */
    lw_status (*example)(void *user, int row, float scale, double *losses, bool *fits);
    double (*clip)(void *user, float max_norm);           /* the norm before clipping */
    void (*step)(void *user, float lr);
    lw_status (*dev_loss)(void *user, double *mean);      /* may be NULL: no dev evaluation */
    /* may be NULL: after dev_loss, how much the dev rows' messages depend on
     * the row (message_spread.h's spread, the mean cosine of consecutive
     * rows' messages), logged as "msg_spread" and "msg_cos" */
    void (*dev_message)(void *user, double *spread, double *cos);
    lw_status (*save)(void *user, const char *name, long step);   /* may be NULL: nothing saved */
    /* one line a step (may be NULL); nonfinite: the step was not taken */
    void (*log)(void *user, long step, float lr, const double *losses, double norm, double seconds, bool nonfinite);
} lw_answer_loop_hooks;

typedef struct {
    long steps_done;
    double last_losses[LW_ANSWER_LOOP_MAX_LOSSES];
    int skipped;                 /* rows that did not fit */
    double best_dev_loss;        /* INFINITY: no evaluation */
    long best_step;              /* 0: none */
    bool stopped_early;
    double seconds;
} lw_answer_loop_result;

/* Runs the loop over n_rows rows; dev_log may be NULL. */
lw_status lw_answer_loop_run(int n_rows, const lw_answer_loop_options *o, const lw_answer_loop_hooks *h,
                             FILE *dev_log, lw_answer_loop_result *r);

#endif
