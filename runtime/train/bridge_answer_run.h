/* The pair's bridge on a generate task, end to end on the CPU (issue #24
 * item 1): what `lw train` runs for a generate task of a pair without an
 * "interlingua" block, and `lw eval --method bridge` on such a task.
 *
 * An example: the sender reads the row's filled prompt (instruction,
 * context, question) in its chat template (sender_states.h: the kept rows,
 * the first LW_SENDER_MAX_TOKENS after the template head) and its layer
 * source_layer states go through the bridge into M soft tokens; the frozen
 * receiver reads them in its prompt (receiver_input.h's layout: the user
 * turn holds only the soft tokens, then the task's answer prompt) and the
 * loss is bridge_answer.h's: the teacher-forced CE of the answer tokens
 * (" " + the first gold answer, then the receiver's first stop id) plus
 * first_token_weight x the first answer token's CE. Its gradient reaches
 * the bridge through the receiver.
 *
 * Sender states are computed on the fly (no cache: a generate task's rows
 * are read by answer_data.h, not the classification dataset the cache
 * keys). The bridge's input_norm is fitted on the states of the first
 * LW_BA_NORM_ROWS training rows before the first step.
 *
 * Answering: greedy decoding after the soft tokens up to the task's
 * max_new_tokens (and max_answer), stopping at the receiver's stop ids or,
 * for first_line tasks, once the first non-empty line is complete; the
 * scored text is its first line, trimmed (lw_answer_extract). */
#ifndef LW_BRIDGE_ANSWER_RUN_H
#define LW_BRIDGE_ANSWER_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "answer_data.h"
#include "bridge_answer.h"
#include "manifest.h"
#include "receiver_input.h"
#include "sender_states.h"
#include "task.h"
#include "tokenizer.h"

enum { LW_BA_NORM_ROWS = 64 };

typedef struct {
    const lw_manifest *man;
    const lw_task *task;
    lw_sender_run sender;
    lw_model *receiver;
    lw_tokenizer *tok;
    lw_receiver_layout layout;
    lw_bridge bridge;
    lw_answer_pass pass;
    lw_bridge_answer ba;
    int stop[LW_MAX_SPECIAL + 1], n_stop;
    int M, max_answer;
    int sender_tokens;           /* of the last lw_ba_session_states */
    bool open_sender, open_bridge, open_pass, open_ba;
} lw_ba_session;

/* Loads the sender and the receiver (with backward when train), builds the
 * receiver's layout for M soft tokens, the bridge (the manifest's kind and
 * size, M soft tokens, initialised from seed) and the answer pass for
 * answers of max_answer tokens with the stop id. Refuses a task that is not
 * generate. */
lw_status lw_ba_session_open(lw_ba_session *s, const lw_manifest *man, const lw_task *task, int M, int max_answer,
                             float first_token_weight, bool train, uint64_t seed);
void lw_ba_session_close(lw_ba_session *s);

/* text -> s->sender.hidden [s->sender_tokens, sender hidden]. */
lw_status lw_ba_session_states(lw_ba_session *s, const char *text);
/* The receiver's answer target: " " + text, then its first stop id (malloc'd). */
lw_status lw_ba_session_answer_ids(const lw_ba_session *s, const char *text, int **ids, int *L);

/* The bridge's input_norm from the first min(d->n, LW_BA_NORM_ROWS) rows. */
lw_status lw_ba_session_fit_norm(lw_ba_session *s, const lw_answer_data *d);

/* One row's loss (no gradient); *fits false (loss untouched) when its answer
 * is longer than max_answer. */
lw_status lw_ba_session_loss(lw_ba_session *s, const lw_answer_row *row, float *loss, bool *fits);

typedef struct {
    int steps, batch, warmup_steps, log_every, checkpoint_every;
    float lr, weight_decay, grad_clip;
    uint64_t seed;
    bool quiet;
    /* early stopping on a dev slice (dev NULL: none): every eval_every steps
     * the mean loss over dev's rows; a new best is saved as out/best, each
     * evaluation a line of out/dev_log.jsonl; patience evaluations in a row
     * without a new best stop the run (0: never) */
    const lw_answer_data *dev;
    int eval_every, patience;
    float spread_weight;         /* > 0: the spread term (spread_term.h) on the soft tokens */
} lw_ba_train_options;

typedef struct {
    long steps_done;
    double last_loss, seconds;
    int skipped;                 /* examples whose answer did not fit max_answer */
    double best_dev_loss;        /* early stopping: the best, and its step (0: none) */
    long best_step;
    bool stopped_early;
} lw_ba_train_result;

/* Trains on d's rows in answer_loop.h's loop (each its first gold; rows
 * whose answer does not fit are skipped, counted and replaced): shuffled epochs, warmup + cosine, the global
 * gradient-norm clip, AdamW. out: train_log.jsonl (train_log.h's line a
 * step), step-N every checkpoint_every steps, final/ (checkpoint.h: the
 * bridge with its input_norm, its moments, the rng and the step). */
lw_status lw_ba_session_train(lw_ba_session *s, const lw_answer_data *d, const lw_ba_train_options *o,
                              const char *out, lw_ba_train_result *r);

/* The bridge of a checkpoint (a run's final/ or its bridge.safetensors). */
lw_status lw_ba_session_load(lw_ba_session *s, const char *checkpoint);

/* The receiver's greedy answer after the bridge's soft tokens (malloc'd,
 * the scored text); *prompt_rows: the receiver's prompt rows, *gen_tokens
 * the tokens written. */
lw_status lw_ba_session_answer(lw_ba_session *s, const lw_answer_row *row, int row_index, char **answer,
                               int *prompt_rows, int *gen_tokens);

#endif
