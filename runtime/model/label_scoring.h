/* Label scoring and greedy generation on a model fed token ids, for the
 * baselines that give a model the input as text (baselines.h).
 *
 * A label is scored as the bridge's labels are (lw_trainer_score): the
 * summed log-probs of its verbalizer tokens right after the prompt; the
 * prompt runs once, and each label's tokens but its last continue it from
 * the KV cache. The scorer also remembers which ids its cache holds, so a
 * prompt that shares a head with the previous one (chat template, primer,
 * k-shot examples) only runs its new tail. */
#ifndef LW_LABEL_SCORING_H
#define LW_LABEL_SCORING_H

#include <stdbool.h>

#include "adapters.h"
#include "model.h"
#include "frozen_matmul.h"   /* lw_log_prob, for callers that score logits by hand (the GPU bench) */
#include "status.h"

typedef struct {
    const lw_model *model;
    lw_state *state;     /* max_tokens positions, no saved activations */
    int max_tokens;
    int *fed;            /* [max_tokens] the ids whose K/V the cache holds */
    int n_fed;
    float *last;         /* [vocab] logits of a prompt's last row */
} lw_label_scorer;

lw_status lw_label_scorer_init(lw_label_scorer *s, const lw_model *m, int max_tokens);
void lw_label_scorer_free(lw_label_scorer *s);

/* scores[k] = sum_i log p(verb[k][i] | ids, verb[k][0..i)), in double.
 * Needs n + max verb_len - 1 <= max_tokens. */
lw_status lw_label_scorer_score(lw_label_scorer *s, const int *ids, int n, int n_labels, const int *const *verb,
                                const int *verb_len, double *scores);

/* Greedy: up to max_new tokens after ids into out[max_new]; ends after a
 * stop id (included in *n_out) or when the cache is full. */
lw_status lw_label_scorer_generate(lw_label_scorer *s, const int *ids, int n, int max_new, const int *stop_ids,
                                   int n_stop, int *out, int *n_out);
/* The same, also ending after a token for which until(ctx, out, n_out)
 * says true (NULL: never), e.g. when the answer's first line is complete. */
lw_status lw_label_scorer_generate_until(lw_label_scorer *s, const int *ids, int n, int max_new, const int *stop_ids,
                                         int n_stop, bool (*until)(void *ctx, const int *out, int n_out), void *ctx,
                                         int *out, int *n_out);

/* The scoring loop of every method, after its prompt ran: the prompt's P
 * rows are in s's KV cache and last is its last row, final-normed
 * ([hidden]: lw_forward's capture_layer = n_layers). scores[k] = the summed
 * log-probs of label k's verbalizer tokens; each label's tokens but its
 * last continue the cached prompt (writing positions >= P only, so the
 * prompt stays for the next label), and the plan's head_logsoftmax record
 * (frozen_matmul.h) then reads the prompt's last row and all labels' rows
 * at once. ad: the receiver's adapters or NULL. */
lw_status lw_score_verbalizers(const lw_model *m, lw_state *s, const lw_receiver_adapters *ad, int P,
                               const float *last, int n_labels, const int *const *verb, const int *verb_len,
                               double *scores);

/* Runs the prompt (its rows, from prompt->pos0, with its adapters; what it
 * asks for as output is ignored: the final-normed rows are captured), then
 * lw_score_verbalizers after its pos0 + T positions. */
lw_status lw_score_after_prompt(const lw_model *m, lw_state *s, const lw_forward_args *prompt, int n_labels,
                                const int *const *verb, const int *verb_len, double *scores);

#endif
