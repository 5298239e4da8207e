/* A run's train_log.jsonl and run.json, shared by the bridge's loop
 * (train.c) and the text methods' (train_text_run.c).
 *
 * The log has one line a step: {"step","loss","lr","grad_norm","train_acc",
 * "examples_per_s","elapsed_s"} (a non-finite number is written as null, so
 * the file stays JSON), plus "nonfinite": true on a step whose loss or
 * gradient was NaN/Inf (it was skipped or stopped the run). A resumed run
 * keeps exactly the lines of the steps up to its checkpoint (a run killed
 * after its last checkpoint logged steps it never saved, and the last line
 * may be torn) and appends from there, so every step has one line.
 * With --log-grad-groups a line also holds "grad_groups": {tensor: the
 * norm of its gradient before clipping}, the bridge's trainable tensors
 * (which part of the bridge a |g| spike comes from). */
#ifndef LW_TRAIN_LOG_H
#define LW_TRAIN_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "status.h"

/* out_dir/train_log.jsonl opened for appending: emptied for a fresh run
 * (resume_step < 0), else cut to the steps <= resume_step. */
FILE *lw_train_log_open(const char *out_dir, long resume_step, lw_status *st);
/* The same for any out_dir/<name> of one JSON object a line with a "step". */
FILE *lw_jsonl_open(const char *out_dir, const char *name, long resume_step, lw_status *st);

typedef struct {
    long step;
    double loss, lr, grad_norm, train_acc, examples_per_s, elapsed_s;
    bool nonfinite;
} lw_train_log_line;

void lw_train_log_write(FILE *f, const lw_train_log_line *l);
/* The same with "grad_groups": names[i] -> norms[i] (n 0: none). */
void lw_train_log_write_groups(FILE *f, const lw_train_log_line *l, int n, const char *const *names,
                               const double *norms);

/* The error of a step whose loss or gradient is not finite: names the
 * step, the values and the last checkpoint (or that there is none). */
lw_status lw_train_nonfinite_stop(long step, double loss, double grad_norm, const char *last_checkpoint,
                                  int skip_limit);

/* out_dir/run.json, written whole (temporary file, rename). */
lw_status lw_train_write_run_json(const char *out_dir, const char *text);

#endif
