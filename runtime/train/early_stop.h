/* Early stopping on a dev slice: every `every` steps the bridge's training
 * loss (the trainer's objective, teacher-forced, no gradient) is averaged
 * over the slice's examples; a new best is saved as out_dir/best (a whole
 * checkpoint, as step-N), and `patience` evaluations in a row without a
 * new best stop the run (final/ is then the last step's, best/ the one to
 * evaluate). Each evaluation is a line of out_dir/dev_log.jsonl
 * {"step", "dev_loss", "dev_first_acc", "msg_spread", "best_step",
 * "best_dev_loss", "bad_evals"} (lw_dev_stats below; null where not
 * measured); a
 * resumed run cuts it to the steps up to its checkpoint (as the train log)
 * and takes the best and the count from the last line up to there, so a stopped or
 * killed run resumes to the same decisions. The evaluation draws nothing
 * from the run's streams: it leaves the training bit for bit as without. */
#ifndef LW_EARLY_STOP_H
#define LW_EARLY_STOP_H

#include <stdbool.h>
#include <stdio.h>

#include "dataset.h"
#include "sender_cache.h"
#include "status.h"

typedef struct lw_early_stop_options {
    const lw_sender_cache *states;   /* the dev slice's sender states */
    const lw_dataset *data;          /* the dev slice */
    int every;                       /* steps between evaluations (> 0) */
    int patience;                    /* evaluations without a new best that stop the run; 0: never stop */
} lw_early_stop_options;

typedef struct {
    lw_early_stop_options o;
    double best;                     /* the best dev loss so far (INFINITY: none yet) */
    long best_step;                  /* its step; 0: none */
    int bad;                         /* evaluations since it */
    FILE *log;                       /* out_dir/dev_log.jsonl; NULL: no out_dir */
    float *x;                        /* sender-state buffer */
    size_t x_cap;
} lw_early_stop;

/* One evaluation of the slice (lw_dev_eval, train_example.h). */
typedef struct {
    double loss;        /* the mean loss: what decides */
    double first_acc;   /* share whose gold first token beats every other label's (the training log's
                           accuracy; NaN where not measured: the GPU pass) */
    double spread;      /* how much the messages depend on the input (message_spread.h; NaN: < 2 examples) */
} lw_dev_stats;

/* out_dir NULL: no log (a test). resume_step < 0: a fresh run, else the
 * state at that step, read from out_dir's log by every rank (data
 * parallel: each makes the same decisions). writer: this process (rank 0)
 * cuts the log and appends to it. */
lw_status lw_early_stop_open(lw_early_stop *e, const lw_early_stop_options *o, const char *out_dir, bool writer,
                             long resume_step);
/* Records the slice's evaluation at step (lw_dev_eval over o.states / o.data,
 * with e->x as its buffer): whether its loss is a new best (*improved) and
 * whether the patience ran out (*stop); logged as step. */
lw_status lw_early_stop_eval(lw_early_stop *e, long step, const lw_dev_stats *d, bool *improved, bool *stop);
void lw_early_stop_close(lw_early_stop *e);

#endif
