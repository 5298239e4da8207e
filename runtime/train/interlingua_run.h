/* The interlingua on a generate task, end to end on the CPU: what `lw train`
 * and `lw eval --method interlingua` run for a pair whose manifest has an
 * "interlingua" block.
 *
 * Encoder input: the row's filled prompt (SQuAD: the instruction, the
 * context, the question) through the frozen BERT (MiniLM) tokenizer and
 * encoder; when it has more than max_encoder_tokens tokens, [CLS] and the
 * LAST max_encoder_tokens - 2 tokens and [SEP] are kept (the question sits
 * at the end of the prompt, so the cut falls on the instruction and the
 * start of the context). Its last hidden states are the features.
 *
 * Readers: the pair's sender (r = 0) and receiver (r = 1), frozen. Each
 * reads its chat template around the soft tokens and the task's answer
 * prompt (receiver_input.h's layout: the user turn holds only the soft
 * tokens). With a soft field (lw_il_session_open_field: the task's
 * budget_field, SQuAD's context) the soft tokens stand for that field only:
 * the user turn is the task's prompt as text with the M soft tokens where
 * the field's text would be (the token budget's prompt with the latents in
 * place of the field's first M tokens); the encoder still reads the whole
 * filled prompt. The answer target is " " + the first gold answer in its own
 * tokens followed by its first stop id (so it learns to stop; a model
 * loaded without stop ids, random mode or LWC_IGNORE_STOP, gets none).
 *
 * Evaluation of a row: each reader writes k candidates after its soft
 * tokens (the greedy one, then k - 1 sampled at temperature 0.7, seeded by
 * the row), cut as the task says (first line, trimmed); every reader scores
 * every distinct candidate (mean log-prob per token of " " + candidate and
 * its stop id); each reader alone answers its greedy candidate, joint
 * rescoring (joint_rescore.h) picks the best sum (none scorable by every
 * reader: the empty answer, scored as wrong). Candidates are at most
 * max_answer - 2 tokens, room for the leading space and the stop id. */
#ifndef LW_INTERLINGUA_RUN_H
#define LW_INTERLINGUA_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "answer_data.h"
#include "bert.h"
#include "interlingua_train.h"
#include "manifest.h"
#include "receiver_input.h"
#include "task.h"
#include "tokenizer.h"

enum { LW_IL_READERS = 2, LW_IL_MAX_CANDIDATES = 16 };

typedef struct {
    const lw_manifest *man;
    const lw_task *task;
    lw_bert *enc;
    lw_tokenizer *enc_tok;
    lw_model *models[LW_IL_READERS];
    lw_tokenizer *toks[LW_IL_READERS];
    lw_receiver_layout layouts[LW_IL_READERS];
    int stop[LW_IL_READERS][LW_MAX_SPECIAL + 1], n_stop[LW_IL_READERS];
    lw_interlingua il;
    lw_il_trainer tr;
    int max_answer;
    const char *soft_field;   /* NULL: the soft tokens stand for the whole prompt; else for this field */
    char *tpl_before, *tpl_after;   /* soft field: the task's prompt before and after "{field}" */
    int field_room;                 /* soft field: the most tokens of text around it, beyond the layout's */
    float *feats;          /* [max_encoder_tokens, encoder hidden] */
    int enc_tokens;        /* of the last lw_il_session_features */
    /* of the last lw_il_session_dev_loss: its rows' latents' spread
     * (message_spread.h) and the mean cosine of consecutive rows' latents */
    double dev_spread, dev_cos;
    bool open_il, open_tr;
} lw_il_session;

/* Loads the encoder and both readers, builds their layouts and the
 * interlingua (init from seed). max_answer: answer tokens with the stop id
 * (training and scoring) and new tokens (generation) at most. */
lw_status lw_il_session_open(lw_il_session *s, const lw_manifest *man, const lw_task *task, int max_answer,
                             uint64_t seed);
/* The same with the soft tokens standing for task field soft_field only
 * (NULL: the whole prompt, as lw_il_session_open); the field must appear
 * once in the task's prompt as "{field}". The text around it takes at most
 * s->field_room tokens more than the layout's (LW_IL_FIELD_TEXT_MAX, less
 * where a reader's context is shorter; a row with more is skipped in
 * training and refused in answering). */
enum { LW_IL_FIELD_TEXT_MAX = 192 };
lw_status lw_il_session_open_field(lw_il_session *s, const lw_manifest *man, const lw_task *task, int max_answer,
                                   uint64_t seed, const char *soft_field);
void lw_il_session_close(lw_il_session *s);

/* text -> s->feats [s->enc_tokens, encoder hidden]. */
lw_status lw_il_session_features(lw_il_session *s, const char *text);
/* The tokens reader r reads before and after its soft tokens for row (the
 * layout's with the whole prompt; the row's prompt around the soft field
 * otherwise); *fits false when they are over s->field_room more. */
lw_status lw_il_session_reader_prompt(const lw_il_session *s, int r, const lw_answer_row *row, int *n_before,
                                      int *n_after, bool *fits);
/* Reader r's answer target: " " + text, then its first stop id (malloc'd). */
lw_status lw_il_session_answer_ids(const lw_il_session *s, int r, const char *text, int **ids, int *L);

typedef struct {
    long steps_done, best_step;   /* best_step 0: no dev evaluation */
    double best_dev_loss;
    bool stopped_early;
} lw_il_train_result;

typedef struct {
    int steps, batch, warmup_steps, log_every;
    float lr, weight_decay, grad_clip;
    uint64_t seed;
    bool quiet;
    /* early stopping (dev NULL: none): every eval_every steps the mean
     * summed loss of both readers over dev's rows (no gradient), a line of
     * dev_log (may be NULL); a new best is saved as out_dir/best (out_dir
     * may be NULL: not saved; written whole, then swapped in);
     * patience evaluations in a row without one stop the run (0: never). */
    const lw_answer_data *dev;
    int eval_every, patience;
    FILE *dev_log;
    const char *out_dir;
    lw_il_train_result *result;   /* may be NULL */
    /* > 0: before the first step, the resampler's input_norm (bridge.h) is
     * fitted on the encoder features of d's first norm_rows rows (each
     * feature's mean and std over all their tokens), as the bridge's is on
     * the sender's states; 0: it stays the identity */
    int norm_rows;
    /* > 0: the spread term (spread_term.h) on the latents at this weight */
    float spread_weight;
} lw_il_train_options;

/* Trains on d's rows with opt (lw_il_optim_init on s->il) (each its first
 * gold) in answer_loop.h's loop; one JSON line a step into log (may be
 * NULL): step, lr, both losses, the gradient norm, seconds. Rows whose
 * answer does not fit max_answer (or, with a soft field, whose prompt does
 * not fit its room) are skipped, counted in *skipped, and replaced. */
lw_status lw_il_session_train(lw_il_session *s, const lw_answer_data *d, const lw_il_train_options *o,
                              lw_il_optim *opt, FILE *log, int *skipped);

/* dir/encoder (checkpoint.h: the resampler and its moments),
 * dir/readers.safetensors (each adapter's flat parameters "reader<r>") and,
 * with a soft field, dir/layout.json ({"soft_field": "context"}). Loading
 * refuses a checkpoint whose soft field is not the session's. */
/* The resampler's input_norm from the encoder features of d's first n rows
 * (fewer when d has fewer): per feature the mean and std over all tokens. */
lw_status lw_il_session_fit_norm(lw_il_session *s, const lw_answer_data *d, int n);

/* The mean over rows of both readers' summed answer loss, no gradient;
 * rows that do not fit are left out (none fits: an error). */
lw_status lw_il_session_dev_loss(lw_il_session *s, const lw_answer_data *d, double *mean);

lw_status lw_il_session_save(const lw_il_session *s, const char *dir, const lw_il_optim *opt, long step);
lw_status lw_il_session_load(lw_il_session *s, const char *dir);
/* lw_il_session_save into a temporary folder of out, then swapped in as
 * out/name whole (run_dir.h). */
lw_status lw_il_session_publish(const lw_il_session *s, const char *out, const char *name, const lw_il_optim *opt,
                                long step);
/* The soft field a checkpoint was trained with (*field malloc'd; NULL: the
 * whole prompt, also for a checkpoint without layout.json). */
lw_status lw_il_checkpoint_soft_field(const char *dir, char **field);

typedef struct {
    char *alone[LW_IL_READERS];   /* each reader's greedy answer */
    char *joint;                  /* the rescored pick */
    int n_candidates;
    int prompt_tokens[LW_IL_READERS];   /* what the reader would read as text (its template, the prompt) */
    int enc_tokens;
} lw_il_answer;

lw_status lw_il_session_answer(lw_il_session *s, const lw_answer_row *row, int row_index, int k, lw_il_answer *out);
void lw_il_answer_free(lw_il_answer *a);

#endif
