/* Label scoring of several prompts in one receiver pass: the serving and
 * evaluation twin of the packed training pass (receiver_pass.h, "Packing").
 *
 * lw_score_verbalizers scores one prompt: the prompt's P rows run from
 * position 0, then every label's verbalizer tokens but the last continue
 * it as segments, and the output head reads the rows. Here the rows every
 * prompt begins with (token ids: the chat template's head and the task's
 * primer, about 40% of a bridge prompt) run once and stay cached across
 * calls, as the training pass's cached head; then n prompts' own rows run
 * as segments of one forward after them (lw_forward_args.n_segments: a
 * segment sees the head and its own rows), so every block's weights are
 * read once for the n examples and the output head once per 64 scored
 * rows. A segment is one example's prompt; a label whose verbalizer has
 * more than one token gets its own segment, the prompt followed by the
 * verbalizer but its last token (a segment cannot read another's keys),
 * which repeats the prompt's rows for that label only. Examples that do
 * not fit the state's rows together are split over several passes. An
 * example whose labels' segments would not fit a pass, or would take more
 * than twice the rows of its prompt once and its labels' tails after it
 * (Banking77: 77 labels, 1948 rows against 200), is scored on its own: its
 * rows after the head run once and stay cached, then its labels' tails
 * continue them as segments, as many labels a pass as fit, over as many
 * passes as they take. One whose prompt, or one of whose verbalizers,
 * does not fit a pass even so is refused, naming it.
 *
 * The scores are the same sums in the same order as lw_score_verbalizers';
 * the products differ in how many rows they multiply at once (a BLAS sums
 * a one-row product, and a product of another height, in another order),
 * so the two agree to float rounding, not bit for bit: on the tiny test
 * models the largest difference is 5.4e-6 on scores of magnitude up to
 * 40 (tests/check_label_scoring_packed.c asserts 1e-5 * (1 + |score|)),
 * and an example's packed scores move by as much with the batch around it.
 * No adapters (lw_trainer_score_batch scores those one by one). */
#ifndef LW_LABEL_SCORING_PACKED_H
#define LW_LABEL_SCORING_PACKED_H

#include <stdbool.h>

#include "model.h"
#include "status.h"

/* One example's prompt rows, as lw_forward reads them. */
typedef struct {
    const int *ids;        /* [P] */
    const float *embeds;   /* [P, hidden] or NULL: ids only */
    const bool *is_embed;  /* [P] which rows take embeds (NULL with embeds: all) */
    int P;
} lw_score_prompt;

typedef struct {
    const lw_model *m;
    lw_state *state;       /* a head and a pass's rows of positions, no saved activations */
    int rows;              /* rows of one pass */
    int *head, head_len;   /* [rows] the shared head's ids whose keys the state holds */
    int *ids;              /* [rows] */
    bool *is_embed;        /* [rows] */
    float *embeds, *hid;   /* [rows, hidden] */
    int *seg_len;          /* [rows] */
} lw_packed_scorer;

/* rows: the most rows one pass holds (1..the model's context; at most
 * LW_CHUNK_ROWS are used, one chunk of the forward). */
lw_status lw_packed_scorer_init(lw_packed_scorer *s, const lw_model *m, int rows);
void lw_packed_scorer_free(lw_packed_scorer *s);

/* Rows that example's segments take (what one pass must hold). */
int lw_packed_scorer_rows_needed(int P, int n_labels, const int *verb_len);

/* scores[i * n_labels + k] = the summed log-probs of label k's verbalizer
 * after prompt i, for i < n. Refused (LW_ERR_INVALID, naming the example)
 * if an example's prompt after the shared head, or its prompt and one of
 * its verbalizers, exceed a pass's rows. */
lw_status lw_packed_scorer_score(lw_packed_scorer *s, int n, const lw_score_prompt *prompts, int n_labels,
                                 const int *const *verb, const int *verb_len, double *scores);

#endif
