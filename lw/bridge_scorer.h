/* A trained bridge checkpoint opened for scoring labels: the receiver, its
 * prompt layout, the bridge, the receiver adapters saved beside it (LoRA,
 * deep prefix) and, with device "cuda", the receiver's pass on GPU 0.
 * lw eval --method bridge scores cached sender states through it
 * (lw_trainer_score); lw receive scores the soft tokens of a message
 * (lw_trainer_score_soft): the same trainer, so the two agree bit for bit
 * on the same soft tokens. A batch in one packed pass (lw eval
 * --score-batch, lw serve --packed) is the caller's lw_trainer_batch_scorer
 * on s->tr (train_score_batch.h); the lines are score_line.h's. */
#ifndef LW_BRIDGE_SCORER_H
#define LW_BRIDGE_SCORER_H

#include <stdbool.h>

#include "adapter_set.h"
#include "cmd_common.h"
#include "gpu_receiver.h"
#include "layer_mix.h"
#include "pair.h"
#include "task.h"
#include "train_example.h"

typedef struct {
    lw_bridge_side side;
    lw_trainer tr;
    lw_adapter_set adapters;
    bool with_adapters;        /* the checkpoint folder held adapters */
    lw_gpu_receiver gpu;
    char bridge_path[4200];    /* the bridge.safetensors read */
    lw_layer_mix mix;          /* the checkpoint's layer mix (layer_mix_file.h) */
    bool with_mix;             /* then the sender states are [T, K*S]: lw_bridge_checkpoint_layers */
    lw_receiver_layout first;  /* first_token: side.layout's verbalizers cut to their first token */
    bool first_token;          /* the trainer scores through `first` (lw_bridge_scorer_open_first) */
} lw_bridge_scorer;

/* A checkpoint whose bridge was trained behind a layer mix is refused
 * without its layer_mix.safetensors (or with another mix). */
lw_status lw_bridge_scorer_open(lw_bridge_scorer *s, const lw_pair *pair, const lw_task *task, int M,
                                const char *checkpoint, const char *device);
/* The same, scoring each label by the log-prob of its verbalizer's FIRST
 * receiver token alone (lw eval --score first): the head's row after the
 * prompt, no continuations, which is what lw train --ce first trains.
 * Refused unless every label's first token is its own (ties could not be
 * told apart). */
lw_status lw_bridge_scorer_open_first(lw_bridge_scorer *s, const lw_pair *pair, const lw_task *task, int M,
                                      const char *checkpoint, const char *device);
void lw_bridge_scorer_close(lw_bridge_scorer *s);

/* "bridge", "bridge+lora", "bridge+deep-prefix" or "bridge+lora+deep-prefix":
 * lw report keeps the ablation's variants apart by this name. */
const char *lw_bridge_scorer_method(const lw_bridge_scorer *s);

#endif
