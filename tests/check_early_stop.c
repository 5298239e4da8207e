/* Early stopping on a dev slice (early_stop.h) on the tiny synthetic pair:
 * a slice whose labels are flipped gets worse once training separates the
 * real ones, so the run must stop; where, and which step best/ holds, must
 * follow from the logged dev losses; a resumed run must make the same
 * decisions and write the same dev log; the dev loss is the mean of the
 * trainer's loss, logged with the slice's first-token accuracy and message
 * spread; bad options are refused. */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "early_stop.h"
#include "fileutil.h"
#include "train.h"

typedef tl_synthetic_pair pair;
enum { N_EX = 32, M_SOFT = 2 };

static lw_train_options options(int steps, const char *out)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = steps, .batch = 4, .grad_accum = 1, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    o.out_dir = out;
    return o;
}

/* The training set's first n examples with every label flipped. */
static void flipped_slice(const lw_dataset *d, int n, lw_dataset *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->n_labels = 2;
    out->examples = calloc((size_t)n, sizeof *out->examples);
    out->label_counts = calloc(2, sizeof(int));
    ck_assert(out->examples && out->label_counts);
    for (int i = 0; i < n; i++) {
        out->examples[i].label = 1 - d->examples[i].label;
        out->examples[i].text = strdup("flipped");
        out->label_counts[out->examples[i].label]++;
    }
}

static char *read_text(const char *dir, const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text;
    size_t len;
    ck_assert_int_eq(lw_read_file(path, &text, &len), LW_OK);
    return text;
}

/* The dev log's losses in step order; returns how many. */
static int logged_losses(const char *text, long *steps, double *losses, int cap)
{
    int n = 0;
    for (const char *c = text; c && *c && n < cap; n++) {
        ck_assert_int_eq(sscanf(c, "{\"step\": %ld, \"dev_loss\": %lf", &steps[n], &losses[n]), 2);
        c = strchr(c, '\n');
        if (c) c++;
    }
    return n;
}

/* What the decisions must have been, from the logged losses alone: the
 * best is the minimum; the run stops at the first evaluation that is the
 * patience-th in a row without a new best. */
static void replay(const long *steps, const double *losses, int n, int patience, long *stop_at, long *best_step,
                   double *best)
{
    *best = INFINITY, *best_step = 0, *stop_at = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (losses[i] < *best) *best = losses[i], *best_step = steps[i], bad = 0;
        else if (++bad >= patience) {
            *stop_at = steps[i];
            return;
        }
    }
}

START_TEST(patience_stops_the_run_and_keeps_the_best)
{
    const char *dir = tl_tmpdir("early_stop_patience");
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.0f, 2);
    lw_dataset dev;
    flipped_slice(&p.data, 8, &dev);
    lw_early_stop_options es = {.states = &p.states, .data = &dev, .every = 2, .patience = 2};
    lw_train_options o = options(60, dir);
    o.early_stop = &es;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    ck_assert(r.stopped_early);   /* the flipped slice gets worse once the classes separate */
    char *log = read_text(dir, "dev_log.jsonl");
    long steps[64], stop_at, best_step;
    double losses[64], best;
    int n = logged_losses(log, steps, losses, 64);
    replay(steps, losses, n, 2, &stop_at, &best_step, &best);
    ck_assert_int_eq(n, (int)(r.steps_done / 2));
    ck_assert_int_eq(r.steps_done, stop_at);
    ck_assert_int_eq(r.best_step, best_step);
    ck_assert_int_lt(best_step, stop_at);
    ck_assert_double_le(fabs(r.best_dev_loss - best), 1e-5 * fabs(best));
    free(log);
    /* what the log adds, on the last step's bridge (in memory), over the whole
     * training set and its flipped copy: the same loss as lw_dev_loss; the
     * first-token check of the flipped labels is the real labels' complement
     * (two labels); the messages differ by input, but not wholly (the
     * bridge's common part), and the same inputs give the same spread */
    lw_dev_stats flipped, real;
    double loss;
    float *x = NULL;
    size_t cap = 0;
    lw_dataset all;
    flipped_slice(&p.data, N_EX, &all);
    ck_assert_int_eq(lw_dev_eval(&p.trainer, &p.states, &all, &x, &cap, &flipped), LW_OK);
    ck_assert_int_eq(lw_dev_loss(&p.trainer, &p.states, &all, &x, &cap, &loss), LW_OK);
    ck_assert_double_eq(flipped.loss, loss);
    ck_assert_int_eq(lw_dev_eval(&p.trainer, &p.states, &p.data, &x, &cap, &real), LW_OK);
    lw_dataset_free(&all);
    ck_assert_double_eq_tol(flipped.first_acc + real.first_acc, 1.0, 1e-12);
    ck_assert_double_eq(flipped.spread, real.spread);
    ck_assert(real.spread > 0.0 && real.spread < 1.0);
    /* best/ is the best step's bridge, final/ the last step's, which is the one in memory */
    char path[4300];
    lw_adamw opt;
    lw_rng rng;
    long step = 0;
    lw_bridge *b = &p.bridge;
    float *now = malloc(b->n_params * sizeof(float));
    memcpy(now, b->params, b->n_params * sizeof(float));
    ck_assert_int_eq(lw_adamw_init(&opt, b->n_params, lw_adamw_defaults()), LW_OK);
    snprintf(path, sizeof path, "%s/final", dir);
    ck_assert_int_eq(lw_checkpoint_load(path, b, &opt, &rng, &step), LW_OK);
    ck_assert_int_eq(step, stop_at);
    ck_assert(memcmp(now, b->params, b->n_params * sizeof(float)) == 0);
    snprintf(path, sizeof path, "%s/best", dir);
    ck_assert_int_eq(lw_checkpoint_load(path, b, &opt, &rng, &step), LW_OK);
    ck_assert_int_eq(step, best_step);
    ck_assert(memcmp(now, b->params, b->n_params * sizeof(float)) != 0);
    /* and best/'s dev loss is the logged best */
    ck_assert_int_eq(lw_dev_loss(&p.trainer, &p.states, &dev, &x, &cap, &loss), LW_OK);
    ck_assert_double_le(fabs(loss - r.best_dev_loss), 1e-5 * fabs(loss));
    free(x);
    free(now);
    lw_adamw_free(&opt);
    lw_dataset_free(&dev);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* Patience 3 every 2 steps with a checkpoint at 4: the straight run stops
 * past step 4 (the first evaluations improve); a run resumed from step-4 (its dev log cut there, best and
 * count taken from it) stops there too, with the same log and parameters. */
START_TEST(a_resumed_run_makes_the_same_decisions)
{
    const char *dir = tl_tmpdir("early_stop_resume");
    char a_dir[4200], b_dir[4200], from[4300];
    snprintf(a_dir, sizeof a_dir, "%s/straight", dir);
    snprintf(b_dir, sizeof b_dir, "%s/resumed", dir);
    snprintf(from, sizeof from, "%s/step-4", a_dir);
    pair a, b;
    tl_synthetic_pair_open(&a, M_SOFT, N_EX, 0.0f, 3);
    tl_synthetic_pair_open(&b, M_SOFT, N_EX, 0.0f, 3);
    lw_dataset dev;
    flipped_slice(&a.data, 8, &dev);
    lw_early_stop_options es = {.states = &a.states, .data = &dev, .every = 2, .patience = 3};
    lw_train_options o = options(60, a_dir);
    o.early_stop = &es;
    o.checkpoint_every = 4;
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &ra), LW_OK);
    ck_assert(ra.stopped_early);
    ck_assert_int_gt(ra.steps_done, 4);
    /* the resumed run's folder holds the straight run's whole log: it must cut it at step 4 */
    char *log_a = read_text(a_dir, "dev_log.jsonl");
    /* a rank that does not write (data parallel) reads the state at step 4 and leaves the log alone */
    long steps[64];
    double losses[64];
    int n = logged_losses(log_a, steps, losses, 64);
    ck_assert_int_ge(n, 3);
    lw_early_stop reader;
    ck_assert_int_eq(lw_early_stop_open(&reader, &es, a_dir, false, 4), LW_OK);
    long stop_at, best_step;
    double best;
    replay(steps, losses, 2, 1000, &stop_at, &best_step, &best);   /* the evaluations at 2 and 4 */
    ck_assert_int_eq(reader.best_step, best_step);
    ck_assert_int_eq(reader.bad, losses[1] < losses[0] ? 0 : 1);
    ck_assert_ptr_null(reader.log);
    lw_early_stop_close(&reader);
    char *log_again = read_text(a_dir, "dev_log.jsonl");
    ck_assert_str_eq(log_again, log_a);
    free(log_again);
    char path[4300];
    snprintf(path, sizeof path, "%s/dev_log.jsonl", b_dir);
    ck_assert_int_eq(lw_mkdir_p(b_dir), LW_OK);
    ck_assert_int_eq(lw_write_file_atomic(path, log_a, strlen(log_a), NULL), LW_OK);
    lw_train_options o2 = options(60, b_dir);
    o2.early_stop = &es;
    o2.resume_dir = from;
    es.states = &b.states;
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o2, &rb), LW_OK);
    ck_assert(rb.stopped_early);
    ck_assert_int_eq(rb.steps_done, ra.steps_done - 4);
    ck_assert_int_eq(rb.best_step, ra.best_step);
    char *log_b = read_text(b_dir, "dev_log.jsonl");
    ck_assert_str_eq(log_b, log_a);
    ck_assert(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) == 0);
    free(log_a);
    free(log_b);
    lw_dataset_free(&dev);
    tl_synthetic_pair_close(&a);
    tl_synthetic_pair_close(&b);
}
END_TEST

START_TEST(bad_early_stop_options_are_refused)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, 8, 0.0f, 1);
    lw_train_result r;
    lw_train_options o = options(4, NULL);
    lw_early_stop_options es = {.states = &p.states, .data = &p.data, .every = 0, .patience = 1};
    o.early_stop = &es;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_ERR_INVALID);
    es.every = 2, es.patience = -1;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_ERR_INVALID);
    lw_dataset big = p.data;
    big.n = p.states.n + 1;   /* more dev examples than sender states */
    es.patience = 1, es.data = &big;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_ERR_INVALID);
    ck_assert_int_eq(r.steps_done, 0);
    tl_synthetic_pair_close(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("early_stop");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, patience_stops_the_run_and_keeps_the_best);
    tcase_add_test(tc, a_resumed_run_makes_the_same_decisions);
    tcase_add_test(tc, bad_early_stop_options_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
