/* Trainable additions to the frozen receiver (issue 7): LoRA on its
 * projections (lora.h) and a deep prefix of per-layer keys and values
 * (deep_prefix.h). lw_forward reads them through lw_forward_args.adapters
 * and lw_model_backward_adapted writes their gradients; a NULL adapters
 * pointer is exactly the plain model.
 *
 * The flat parameter table both keep is adapter_params.h; the types the
 * forward and backward read are adapter_view.h. */
#ifndef LW_ADAPTERS_H
#define LW_ADAPTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "status.h"

#include "adapter_params.h"
#include "adapter_view.h"

/* Whether ad changes what the receiver computes (LoRA or a deep prefix):
 * then every row, the prompt's shared head too, depends on trained
 * parameters, so no cached head can stand in for it. NULL: false. */
bool lw_adapters_active(const lw_receiver_adapters *ad);

/* Sizes the scratch for calls of up to max_tokens rows of text (the state
 * must hold max_tokens + prefix_len positions). lora may be NULL. */
lw_status lw_adapters_init(lw_receiver_adapters *ad, const lw_model *m, int max_tokens, lw_lora *lora,
                           int prefix_len);
void lw_adapters_free(lw_receiver_adapters *ad);
/* Grows the scratch (never shrinks it) for calls of up to rows rows: a
 * packed training pass runs several examples' rows at once. The scratch is
 * the adapters' workspace, so a const view may grow it. */
lw_status lw_adapters_reserve(const lw_receiver_adapters *ad, const lw_model *m, int rows);

/* Fails unless ad fits m, passes of `rows` rows, text up to position end
 * (exclusive) and a state of max_positions (which must also hold the prefix). */
lw_status lw_adapters_check(const lw_receiver_adapters *ad, const lw_model *m, int rows, int end,
                            int max_positions);

#endif
