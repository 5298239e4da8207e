/* Training and reading the shared interlingua (interlingua.h) with written
 * answers as targets (answer_train.h), on every reader at once.
 *
 * One example: the encoder features go through the resampler once; each
 * reader r reads its soft tokens through its adapter, its frozen model runs
 * [before_r] [soft_r] [after_r] [answer_r but the last] (its own
 * tokenization of the same text), and its teacher-forced answer loss is
 * taken. The example's loss is the sum over readers; each reader's
 * backward adds its adapter's gradient and its part of dz, and the
 * resampler's backward runs once on the sum. */
#ifndef LW_INTERLINGUA_TRAIN_H
#define LW_INTERLINGUA_TRAIN_H

#include "answer_train.h"
#include "interlingua.h"
#include "model.h"
#include "spread_term.h"
#include "status.h"

/* One reader's rows of one example; answer / L may be NULL / 0 for reading. */
typedef struct {
    const int *before, *after, *answer;
    int n_before, n_after, L;
} lw_il_rows;

typedef struct {
    lw_interlingua *il;
    int n_readers;
    const lw_model *readers[LW_IL_MAX_READERS];
    lw_answer_pass pass[LW_IL_MAX_READERS];
    float *soft[LW_IL_MAX_READERS];   /* [M, hidden_r] */
    float first_token_weight;
    lw_spread_term spread;            /* on the latents (spread_term.h); weight 0: off */
} lw_il_trainer;

/* max_T: each reader's prompt rows + answer - 1 at most; max_answer: answer tokens. */
lw_status lw_il_trainer_create(lw_il_trainer *t, lw_interlingua *il, const lw_model *const *readers, int max_T,
                               int max_answer, float first_token_weight);
void lw_il_trainer_free(lw_il_trainer *t);
/* The spread term (spread_term.h) on the latents (the payload both readers
 * read) from now on, at weight (0: off, the default); the training loop
 * resets it at each step's start. */
lw_status lw_il_trainer_set_spread(lw_il_trainer *t, float weight);

/* Forward and backward of one example: losses[n_readers] (each reader's),
 * scale * the gradient of their sum (and of the spread term, when on)
 * added to the interlingua's grads. */
lw_status lw_il_trainer_example(lw_il_trainer *t, const float *feats, int T, const lw_il_rows *rows, float scale,
                                float *losses);
/* The summed loss alone (what the finite-difference test probes). */
lw_status lw_il_trainer_loss(lw_il_trainer *t, const float *feats, int T, const lw_il_rows *rows, float *total);

/* Reading: encode once, then per reader its soft tokens into its pass,
 * with the prompt rows (and an answer, to score it). */
lw_status lw_il_trainer_encode(lw_il_trainer *t, const float *feats, int T);
lw_status lw_il_trainer_fill(lw_il_trainer *t, int r, const lw_il_rows *rows);

#endif
