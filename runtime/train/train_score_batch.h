/* A bridge's label scores for several examples at once: each example's
 * prompt rows as the trainer fills them (lw_trainer_fill_prompt,
 * train_example.h), all of them through one packed receiver pass
 * (label_scoring_packed.h). What lw serve's worker does with a batch of
 * requests and lw eval --score-batch N with N examples. With adapters or
 * the receiver on the GPU (neither packs for scoring yet) the examples are
 * scored one after another (lw_trainer_score_soft), exactly as alone.
 * Apart from the trainer, which scores one example and stands below the
 * packed scorer (and so do the bridge scorer and the wire receiver on it):
 * the commands that score batches hold one of these beside their bridge
 * scorer. */
#ifndef LW_TRAIN_SCORE_BATCH_H
#define LW_TRAIN_SCORE_BATCH_H

#include <stdbool.h>

#include "label_scoring_packed.h"
#include "status.h"
#include "train_example.h"

typedef struct {
    lw_packed_scorer ps;
    bool ready;            /* ps made (at the first packed batch) */
    int cap;               /* examples the row buffers hold */
    int *ids;              /* [cap, max_T] */
    bool *is_embed;        /* [cap, max_T] */
    float *embeds;         /* [cap, max_T, hidden] */
    lw_score_prompt *prompts;   /* [cap] */
} lw_trainer_batch_scorer;

/* Whether t's examples go through the packed pass (CPU, no adapters). */
bool lw_trainer_can_pack_scores(const lw_trainer *t);

/* scores[i * n_labels + k] for n examples: from sender states x[i] [Tx[i], S]
 * (soft NULL) or from soft tokens soft[i] [M, R] (x NULL). A batch the
 * pass cannot hold together is split over several passes. b starts zeroed. */
lw_status lw_trainer_score_batch(lw_trainer *t, lw_trainer_batch_scorer *b, int n, const float *const *x,
                                 const int *Tx, const float *const *soft, double *scores);
void lw_trainer_batch_scorer_free(lw_trainer_batch_scorer *b);

#endif
