/* What a training run is asked (lw_train_options) and what it reports
 * (lw_train_result): shared by the bridge's loop (train.h) and the text
 * methods' loop (train_text.h), apart from either so that neither stands
 * above the other. */
#ifndef LW_TRAIN_OPTIONS_H
#define LW_TRAIN_OPTIONS_H

#include <stdbool.h>

#include "comm.h"
#include "manifest.h"

struct lw_early_stop_options;   /* early_stop.h */

typedef struct {
    lw_train_config cfg;      /* steps, batch, grad_accum, lr, warmup_steps, weight_decay, grad_clip, seed,
                                 class_balanced (diversity_weight goes to lw_trainer_create) */
    int checkpoint_every;     /* 0: only final/ */
    const char *out_dir;      /* NULL: no checkpoints, no log */
    const char *resume_dir;   /* NULL: a fresh run (the bridge is initialised from cfg.seed) */
    bool quiet;               /* no progress line */
    lw_comm *comm;            /* data parallel over comm's ranks; NULL: world size 1 (docs/distributed.md) */
    bool no_head_cache;       /* every example alone from position 0: no cached prompt head, no packing */
    int skip_nonfinite;       /* steps with a NaN/Inf loss or gradient skipped (counted, logged) before
                                 one stops the run; 0: the first stops it */
    const struct lw_early_stop_options *early_stop;   /* dev-slice evaluations, best/, patience; NULL: none
                                 (the bridge's loop only) */
    bool log_grad_groups;     /* train_log.jsonl: each bridge tensor's gradient norm (train_log.h) */
    const char *run_json;     /* written as out_dir/run.json once the run has started (its checkpoint
                                 loaded, its log opened): a run that fails before never writes it */
} lw_train_options;

typedef struct {
    long steps_done;          /* steps this call ran (skipped ones included) */
    long steps_skipped;       /* steps skipped for a non-finite loss or gradient */
    double last_loss;         /* mean loss of the last step */
    double train_acc;         /* over the examples this call saw */
    double seconds;
    bool stopped_early;       /* the patience ran out (early_stop.h) */
    long best_step;           /* the dev slice's best evaluation (0: none) and its loss */
    double best_dev_loss;
} lw_train_result;

#endif
