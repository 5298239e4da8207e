/* The receiver's trainable adapters as one unit for the training loop:
 * an optional LoRA and an optional deep prefix, their lw_receiver_adapters
 * view, their AdamW state, and their files in a checkpoint directory.
 *
 * Per example (beside the bridge; see train_example.c):
 *   lw_adapter_set_forward(set, soft, M, true, seed)   after the bridge made the soft tokens
 *   lw_forward(..., .adapters = &set->ad)
 *   lw_model_backward_adapted(..., &set->ad, ...)       instead of lw_model_backward_rows
 *   lw_adapter_set_backward(set, dsoft)                 adds the prefix's d soft, before lw_bridge_backward
 * Per step: lw_adapter_set_zero_grad before, and after accumulating
 * grad_sq / scale_grads (global-norm clipping together with the bridge),
 * then lw_adapter_set_adamw_step.
 *
 * Checkpoint files (beside bridge.safetensors), each written atomically:
 * lora.safetensors (PEFT names, lora.h) and lora_state.safetensors (its
 * AdamW moments and step), deep_prefix.safetensors and
 * deep_prefix_state.safetensors likewise. */
#ifndef LW_ADAPTER_SET_H
#define LW_ADAPTER_SET_H

#include <stdbool.h>
#include <stdint.h>

#include "adamw.h"
#include "adapters.h"
#include "deep_prefix.h"
#include "lora.h"
#include "model.h"
#include "status.h"

typedef struct {
    bool has_lora, has_prefix;
    lw_lora lora;
    lw_deep_prefix prefix;
    lw_receiver_adapters ad;        /* what lw_forward / lw_model_backward_adapted take */
    lw_adamw opt_lora, opt_prefix;
} lw_adapter_set;

/* lora / prefix NULL: that adapter is off. max_tokens: text rows of the
 * longest receiver call (the state must hold max_tokens + prefix length).
 * Parameters are initialised from seed. */
lw_status lw_adapter_set_create(lw_adapter_set *s, const lw_model *receiver, int max_tokens,
                                const lw_lora_config *lora, const lw_deep_prefix_config *prefix, uint64_t seed);
void lw_adapter_set_free(lw_adapter_set *s);
size_t lw_adapter_set_n_params(const lw_adapter_set *s);
/* How many positions the receiver's state needs beyond the text. */
int lw_adapter_set_extra_positions(const lw_adapter_set *s);

/* Runs the prefix generator on soft [M, R] and sets LoRA's dropout draw;
 * training turns dropout on, seed picks the masks. */
lw_status lw_adapter_set_forward(lw_adapter_set *s, const float *soft, int M, bool training, uint64_t seed);
/* After the receiver's backward: the generator's backward, adding to dsoft
 * [M, R]; clears the prefix keys' gradients for the next example. */
void lw_adapter_set_backward(lw_adapter_set *s, float *dsoft);

void lw_adapter_set_zero_grad(lw_adapter_set *s);
/* Sum of squared gradients (for a global norm with the bridge's), and a scale. */
double lw_adapter_set_grad_sq(const lw_adapter_set *s);
void lw_adapter_set_scale_grads(lw_adapter_set *s, float factor);
void lw_adapter_set_adamw_step(lw_adapter_set *s, float lr, float weight_decay);

/* For evaluation: builds the set a checkpoint directory describes (the
 * configs from the metadata of lora.safetensors and deep_prefix.safetensors,
 * whichever exist) and loads the weights; *found is false, and the set
 * empty, when dir holds neither. */
lw_status lw_adapter_set_open(lw_adapter_set *s, const lw_model *receiver, int max_tokens, const char *dir,
                              bool *found);

/* Writes / reads the files named above in dir. A failed load can leave the
 * set partly loaded: discard it. */
lw_status lw_adapter_set_save(const lw_adapter_set *s, const char *dir);
lw_status lw_adapter_set_load(lw_adapter_set *s, const char *dir);

#endif
