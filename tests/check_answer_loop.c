/* The answer-trained runs' shared loop (answer_loop.h) on a toy problem
 * with scripted hooks: batches are filled with rows that fit (the others
 * counted and replaced), every epoch visits every row once, the loss
 * falls, the schedule and the clip are applied, early stopping saves each
 * new best and stops when the patience runs out, a loss that is not
 * finite stops the run before a step is taken, periodic checkpoints are
 * named step-N, and a set where nothing fits is refused. */
#include "testlib.h"
#include "adamw.h"
#include "answer_loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 6 };

typedef struct {
    double x, g;               /* one parameter and its gradient: loss_i = (x - t_i)^2 */
    double t[ROWS];
    bool too_long[ROWS];
    int seen[ROWS], used_in_step, steps, zeroed;
    double dev[8];             /* scripted dev losses */
    int n_dev;
    char saved[8][16];
    long saved_step[8];
    int n_saved, n_log, n_nonfinite_log;
    int nan_row;               /* -1: none */
    float last_lr[64];
} toy;

static void zero(void *u)
{
    toy *t = u;
    t->g = 0, t->used_in_step = 0, t->zeroed++;
}

static lw_status ex(void *u, int i, float scale, double *l, bool *fits)
{
    toy *t = u;
    ck_assert(i >= 0 && i < ROWS);
    t->seen[i]++;
    *fits = !t->too_long[i];
    if (!*fits) return LW_OK;
    double d = t->x - t->t[i];
    l[0] = i == t->nan_row ? NAN : d * d;
    l[1] = 2.0 * d * d;   /* a second reported value: the loop averages each */
    t->g += scale * 2.0 * d;
    t->used_in_step++;
    return LW_OK;
}

static double clip(void *u, float max_norm)
{
    toy *t = u;
    double n = fabs(t->g);
    if (max_norm > 0 && n > max_norm) t->g *= max_norm / n;
    return n;
}

static void step(void *u, float lr)
{
    toy *t = u;
    t->x -= lr * t->g;
    t->last_lr[t->steps < 64 ? t->steps : 63] = lr;
    t->steps++;
}

static lw_status dev(void *u, double *mean)
{
    toy *t = u;
    *mean = t->dev[t->n_dev++ % 8];
    return LW_OK;
}

static lw_status save(void *u, const char *name, long s)
{
    toy *t = u;
    ck_assert_int_lt(t->n_saved, 8);
    snprintf(t->saved[t->n_saved], sizeof t->saved[0], "%s", name);
    t->saved_step[t->n_saved++] = s;
    return LW_OK;
}

static void log_line(void *u, long s, float lr, const double *l, double norm, double secs, bool nonfinite)
{
    toy *t = u;
    t->n_log++;
    t->n_nonfinite_log += nonfinite;
    ck_assert(s >= 1 && secs >= 0 && lr > 0);
    if (!nonfinite) ck_assert(fabs(l[1] - 2.0 * l[0]) <= 1e-9 * (1 + l[0]) && norm >= 0);
}

static void toy_init(toy *t)
{
    memset(t, 0, sizeof *t);
    t->x = 10.0;
    for (int i = 0; i < ROWS; i++) t->t[i] = i;   /* the minimum: x = 2.5 (the mean of those that fit) */
    t->nan_row = -1;
}

static lw_answer_loop_hooks hooks(toy *t)
{
    return (lw_answer_loop_hooks){.user = t, .n_losses = 2, .zero_grad = zero, .example = ex, .clip = clip,
                                  .step = step, .dev_loss = dev, .save = save, .log = log_line};
}

START_TEST(batches_epochs_schedule_and_learning)
{
    toy t;
    toy_init(&t);
    lw_answer_loop_hooks h = hooks(&t);
    h.dev_loss = NULL;
    lw_answer_loop_options o = {.steps = 3, .batch = ROWS, .warmup_steps = 1, .lr = 0.5f, .grad_clip = 0.0f,
                                .order_seed = 7, .quiet = true, .what = "toy"};
    lw_answer_loop_result r;
    ck_assert_msg(lw_answer_loop_run(ROWS, &o, &h, NULL, &r) == LW_OK, "%s", lw_last_error());
    /* a batch of all the rows: each epoch visits each row once */
    for (int i = 0; i < ROWS; i++) ck_assert_int_eq(t.seen[i], 3);
    ck_assert_int_eq(t.steps, 3);
    ck_assert_int_eq(r.steps_done, 3);
    ck_assert_int_eq(r.skipped, 0);
    ck_assert_int_eq(t.n_log, 3);
    /* the schedule (adamw.h's lw_lr_at: warmup, then cosine to 0.1 lr) at each step */
    for (int k = 0; k < 3; k++) ck_assert_float_eq_tol(t.last_lr[k], lw_lr_at(k, 1, 3, 0.5f, 0.1f), 1e-7f);
    ck_assert(t.last_lr[2] < t.last_lr[0]);
    ck_assert(r.best_step == 0 && isinf(r.best_dev_loss));

    /* rows that do not fit are counted and replaced: every step still uses `batch` rows */
    toy_init(&t);
    t.too_long[1] = t.too_long[4] = true;
    h = hooks(&t);
    h.dev_loss = NULL;
    o = (lw_answer_loop_options){.steps = 60, .batch = 2, .lr = 0.3f, .grad_clip = 1.0f, .order_seed = 3,
                                 .quiet = true, .what = "toy"};
    double start = (t.x - 2.5) * (t.x - 2.5);
    ck_assert_msg(lw_answer_loop_run(ROWS, &o, &h, NULL, &r) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(t.steps, 60);
    ck_assert_int_eq(r.skipped, t.seen[1] + t.seen[4]);
    ck_assert_int_gt(r.skipped, 0);
    /* the loop of 60 steps of 2 over 4 usable rows: x reaches the usable rows' mean region */
    ck_assert_msg((t.x - 2.5) * (t.x - 2.5) < 0.05 * start, "x %g", t.x);
    ck_assert(r.last_losses[0] >= 0 && fabs(r.last_losses[1] - 2 * r.last_losses[0]) < 1e-9);
}
END_TEST

START_TEST(early_stopping_and_checkpoints)
{
    toy t;
    toy_init(&t);
    double script[] = {3.0, 2.0, 2.5, 2.6, 1.0};
    memcpy(t.dev, script, sizeof script);
    lw_answer_loop_hooks h = hooks(&t);
    char path[600];
    snprintf(path, sizeof path, "%s/dev_log.jsonl", tl_tmpdir("answer_loop"));
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    lw_answer_loop_options o = {.steps = 20, .batch = 2, .lr = 0.1f, .grad_clip = 1.0f, .order_seed = 1,
                                .eval_every = 2, .patience = 2, .checkpoint_every = 3, .quiet = true, .what = "toy"};
    lw_answer_loop_result r;
    ck_assert_msg(lw_answer_loop_run(ROWS, &o, &h, f, &r) == LW_OK, "%s", lw_last_error());
    fclose(f);
    /* evaluations at steps 2 (3.0, best), 4 (2.0, best), 6 (2.5), 8 (2.6): patience 2 runs out at step 8 */
    ck_assert(r.stopped_early);
    ck_assert_int_eq(r.steps_done, 8);
    ck_assert_int_eq(r.best_step, 4);
    ck_assert_float_eq_tol(r.best_dev_loss, 2.0, 1e-12);
    ck_assert_int_eq(t.n_dev, 4);
    /* saved: best at 2, step-3, best at 4, step-6 (no step-9: stopped first) */
    ck_assert_int_eq(t.n_saved, 4);
    ck_assert(!strcmp(t.saved[0], "best") && t.saved_step[0] == 2);
    ck_assert(!strcmp(t.saved[1], "step-3") && t.saved_step[1] == 3);
    ck_assert(!strcmp(t.saved[2], "best") && t.saved_step[2] == 4);
    ck_assert(!strcmp(t.saved[3], "step-6") && t.saved_step[3] == 6);
    char *text = tl_read_file(path, NULL);
    int lines = 0;
    for (char *p = text; (p = strstr(p, "\"dev_loss\": ")); p++) lines++;
    ck_assert_int_eq(lines, 4);
    ck_assert(strstr(text, "\"step\": 8, \"dev_loss\": 2.600000, \"best_step\": 4, \"best_dev_loss\": 2.000000, "
                           "\"bad_evals\": 2") != NULL);
    free(text);

    /* no checkpoint at the last step: final is the caller's */
    toy_init(&t);
    h = hooks(&t);
    h.dev_loss = NULL;
    o = (lw_answer_loop_options){.steps = 4, .batch = 1, .lr = 0.1f, .order_seed = 1, .checkpoint_every = 2,
                                 .quiet = true, .what = "toy"};
    ck_assert_int_eq(lw_answer_loop_run(ROWS, &o, &h, NULL, &r), LW_OK);
    ck_assert_int_eq(t.n_saved, 1);
    ck_assert_str_eq(t.saved[0], "step-2");
}
END_TEST

START_TEST(refusals)
{
    toy t;
    toy_init(&t);
    lw_answer_loop_hooks h = hooks(&t);
    h.dev_loss = NULL;
    lw_answer_loop_options o = {.steps = 5, .batch = 2, .lr = 0.1f, .order_seed = 1, .quiet = true, .what = "toy",
                                .fit_limit = "within 3 tokens"};
    lw_answer_loop_result r;
    /* a loss that is not finite: the run stops before any step on it, the log hears of it */
    t.nan_row = 2;
    for (int i = 0; i < ROWS; i++) t.too_long[i] = i != 2;
    ck_assert_int_eq(lw_answer_loop_run(ROWS, &o, &h, NULL, &r), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "not finite") != NULL);
    ck_assert_int_eq(t.steps, 0);
    ck_assert_int_eq(t.n_nonfinite_log, 1);
    ck_assert_int_eq(r.steps_done, 0);
    /* nothing fits */
    toy_init(&t);
    for (int i = 0; i < ROWS; i++) t.too_long[i] = true;
    ck_assert_int_eq(lw_answer_loop_run(ROWS, &o, &h, NULL, &r), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "no training row fits within 3 tokens") != NULL);
    ck_assert_int_eq(t.steps, 0);
    /* bad options and hooks */
    ck_assert_int_eq(lw_answer_loop_run(0, &o, &h, NULL, &r), LW_ERR_INVALID);
    o.eval_every = 2;   /* without a dev loss */
    ck_assert_int_eq(lw_answer_loop_run(ROWS, &o, &h, NULL, &r), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "without a dev loss") != NULL);
    o.eval_every = 0;
    h.n_losses = 0;
    ck_assert_int_eq(lw_answer_loop_run(ROWS, &o, &h, NULL, &r), LW_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("answer_loop");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, batches_epochs_schedule_and_learning);
    tcase_add_test(tc, early_stopping_and_checkpoints);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
