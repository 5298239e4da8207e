/* The bridge's training objectives beyond the receiver's cross-entropy of
 * the gold verbalizer (train.h), each with its weight in lw_trainer:
 *
 * - first-token CE: the trainer built on lw_receiver_layout_first_tokens's
 *   layout (every verbalizer cut to its first token), so the loss is the
 *   cross-entropy of the one token that tells the labels apart, instead of
 *   the mean over all of them (where a 7-token verbalizer gives the deciding
 *   token 1/7 of the weight and the six continuations, which the receiver
 *   predicts from the first, the rest);
 * - diversity: the mean pairwise cosine similarity of the M soft tokens;
 * - alignment: 1 - cos(mean of the M soft tokens, mean of the gold
 *   verbalizer's receiver input embeddings), which pulls the message towards
 *   the receiver's own embedding of the answer (scale-free: the bridge's
 *   calibration keeps the soft tokens' scale) without making the M tokens
 *   alike.
 *
 * Each term's gradient is checked by finite differences (tests/check_objectives.c). */
#ifndef LW_OBJECTIVES_H
#define LW_OBJECTIVES_H

#include "model.h"
#include "receiver_input.h"
#include "status.h"

/* out: a copy of L whose verbalizers are their first tokens (verb_len 1). */
lw_status lw_receiver_layout_first_tokens(const lw_receiver_layout *L, lw_receiver_layout *out);

typedef struct {
    int min_len, max_len;
    double mean_len;
    int distinct_first;   /* labels told apart by their first token alone */
} lw_verbalizer_stats;

void lw_verbalizer_stats_of(const lw_receiver_layout *L, lw_verbalizer_stats *s);

/* out[n_labels * hidden]: each label's verbalizer as the receiver embeds it
 * (token_embd row times embed_scale), averaged over its tokens. */
lw_status lw_answer_embeddings(const lw_model *m, const lw_receiver_layout *L, float **out);

/* Mean pairwise cosine similarity of the M rows of z [M, H]; with dz, adds
 * scale * its gradient. */
double lw_soft_diversity(const float *z, int M, int H, float *dz, float scale);

/* 1 - cos(mean_m z_m, target); with dz, adds scale * its gradient. */
double lw_soft_alignment(const float *z, int M, int H, const float *target, float *dz, float scale);

#endif
