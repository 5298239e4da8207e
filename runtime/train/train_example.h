/* The trainer: a bridge and the frozen receiver it feeds, one example at a
 * time, and its label scores of one example (train_example.c). lw_train_run
 * (train.h) loops over it; the bridge scorer (lw eval, lw receive, lw serve)
 * scores with it and needs no more than this; a batch in one packed pass is
 * train_score_batch.h's, above it.
 *
 * One example: the bridge turns the sender's cached layer-l states into M
 * soft tokens; the frozen receiver reads them in its prompt
 * (receiver_input.h) followed by the gold label's verbalizer (teacher
 * forcing); the loss is the mean cross-entropy of the verbalizer tokens,
 * plus diversity_weight times the mean pairwise cosine similarity of the
 * soft tokens. Its gradient flows back through the receiver to the soft
 * tokens (lw_model_backward_rows) and into the bridge.
 *
 * A label is predicted by scoring every label with the summed log-probs of
 * its verbalizer tokens after the prefix (the prefix runs once; each label's
 * tokens continue from its KV cache) and taking the argmax. */
#ifndef LW_TRAIN_EXAMPLE_H
#define LW_TRAIN_EXAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "adapter_set.h"
#include "bridge.h"
#include "dataset.h"
#include "early_stop.h"
#include "gpu_receiver_pass.h"
#include "layer_mix.h"
#include "model.h"
#include "receiver_input.h"
#include "receiver_pass.h"
#include "sender_cache.h"
#include "spread_term.h"
#include "status.h"

typedef struct {
    const lw_model *receiver;            /* frozen */
    const lw_receiver_layout *layout;
    lw_bridge *bridge;
    float diversity_weight;
    float align_weight;                  /* objectives.h: soft tokens towards the answer's embeddings */
    const float *align_targets;          /* [n_labels, hidden] (lw_answer_embeddings); not owned */
    lw_spread_term spread;               /* against the message collapse (spread_term.h); weight 0: off */
    /* scratch, sized for the layout */
    int max_T;                           /* receiver rows: prefix + the longest verbalizer */
    lw_receiver_pass rx;
    lw_gpu_receiver_pass *gpu;           /* the receiver's pass on the GPU instead of rx; NULL: the CPU */
    lw_bridge_acts *acts;
    int acts_T;                          /* sender rows acts was sized for */
    float *soft, *dsoft;                 /* [M, R] */
    lw_adapter_set *adapters;            /* LoRA / deep prefix trained with the bridge; NULL: none */
    uint64_t dropout_seed;               /* the adapters' dropout draw for the next example */
    lw_layer_mix *mix;                   /* several sender layers mixed before the bridge; NULL: one layer */
    float *mixed, *dmixed;               /* [acts_T, S]: the mix's output and the bridge's dx */
    const float *mix_x;                  /* the last forward's input rows [mix_T, K*S] (the caller's buffer) */
    int mix_T;
} lw_trainer;

lw_status lw_trainer_create(lw_trainer *t, const lw_model *receiver, const lw_receiver_layout *layout,
                            lw_bridge *bridge, float diversity_weight);
void lw_trainer_free(lw_trainer *t);
/* The spread term (spread_term.h) on the soft tokens from now on, at weight
 * (0: off, the default); lw_train_run resets it at each step's start. */
lw_status lw_trainer_set_spread(lw_trainer *t, float weight);
/* From now on the receiver runs with set's adapters (forward, backward,
 * scoring) and lw_train_run steps, clips, saves and resumes them with the
 * bridge. set must be sized for t->max_T text rows; the receiver state is
 * reallocated to hold the prefix as well. */
lw_status lw_trainer_attach_adapters(lw_trainer *t, lw_adapter_set *set);
/* From now on the receiver runs on the GPU through p (sized for t->max_T
 * rows; LoRA and the deep prefix's keys go with it, before or after
 * lw_trainer_attach_adapters); the bridge stays on the CPU. */
lw_status lw_trainer_use_gpu(lw_trainer *t, lw_gpu_receiver_pass *p);
/* From now on x is [T, K*S], several sender layers side by side
 * (sender_cache_layers.h), mixed by mix (not owned) into the bridge's
 * input; backward adds the mix's logits' gradient to mix->grads.
 * lw_train_run steps, clips and saves the logits with the bridge
 * (layer_mix_file.h) and restores them on --resume. */
lw_status lw_trainer_attach_layer_mix(lw_trainer *t, lw_layer_mix *mix);

/* Forward and backward of one example (x: the sender's states [T, S]);
 * adds scale * d(loss)/d(params) to the bridge's grads. *loss gets the
 * example's loss, *correct the first-token check (either may be NULL). */
lw_status lw_trainer_example(lw_trainer *t, const float *x, int T, int label, float scale, float *loss,
                             bool *correct);

/* n examples of a step (idx: their rows in states, labels, the adapters'
 * dropout draws) through bridge and receiver, adding scale * each one's
 * gradient to the trained parameters' grads: packed into one receiver pass
 * when the pass can (receiver_pass.h: on the CPU, no adapters, head cache
 * on), else one lw_trainer_example after another. losses[n], correct[n]. x,
 * x_cap: a buffer for the sender's states (grown as needed). */
lw_status lw_trainer_examples(lw_trainer *t, const lw_sender_cache *states, const int *idx, const int *labels,
                              const uint64_t *dropout_seeds, int n, float scale, float **x, size_t *x_cap,
                              float *losses, bool *correct);

/* The weighted soft-token terms of t for label (diversity_weight times the
 * diversity, align_weight times the alignment to align_targets[label], the
 * objectives of objectives.h); with dz, adds scale * their gradient. 0 when
 * both weights are 0. */
double lw_trainer_soft_terms(const lw_trainer *t, const float *z, int label, float *dz, float scale);

/* The loss alone (no gradients): what the finite-difference test probes. */
lw_status lw_trainer_loss(lw_trainer *t, const float *x, int T, int label, float *loss);

/* The mean of lw_trainer_loss over the n examples of states / data (the dev
 * loss that early stopping records, early_stop.h). */
lw_status lw_dev_loss(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data, float **x,
                      size_t *x_cap, double *loss);
/* The same pass, with what early stopping logs beside the loss: the
 * first-token check of each example (as the training log's accuracy; CPU
 * pass only, else NaN) and the spread of the messages (message_spread.h). */
lw_status lw_dev_eval(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data, float **x,
                      size_t *x_cap, lw_dev_stats *out);

/* scores[n_labels]: the summed log-probs of each label's verbalizer. */
lw_status lw_trainer_score(lw_trainer *t, const float *x, int T, double *scores);
/* The same from soft tokens [M, R] already made (a message's: lw receive);
 * lw_trainer_score is the bridge's forward then this. */
lw_status lw_trainer_score_soft(lw_trainer *t, const float *soft, double *scores);
/* The receiver's prompt rows of one example (the bridge's forward of x
 * [Tx, S], or soft [M, R] when x is NULL) into the pass's ids / is_embed /
 * embeds (t->rx's on the CPU); *P gets their count. The two above are this
 * then the scoring of those rows; the packed scorer reads them instead. */
lw_status lw_trainer_fill_prompt(lw_trainer *t, const float *x, int Tx, const float *soft, int *P);

#endif
