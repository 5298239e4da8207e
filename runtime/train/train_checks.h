/* What a run checks before it lets a number replace something good: every
 * trained value and optimiser moment finite before a checkpoint is written
 * (a NaN bridge must never overwrite a good one). Each names the tensor and
 * the first bad element. */
#ifndef LW_TRAIN_CHECKS_H
#define LW_TRAIN_CHECKS_H

#include <stddef.h>

#include "adamw.h"
#include "adapter_set.h"
#include "adapters.h"
#include "bridge.h"
#include "finite.h"
#include "status.h"

/* The bridge's tensors and, with opt, its AdamW moments. */
lw_status lw_check_bridge_finite(const lw_bridge *b, const lw_adamw *opt);

/* An adapter's tensors (by name) and, with opt, their moments. */
lw_status lw_check_adapter_params_finite(const char *what, const lw_adapter_params *p, const lw_adamw *opt);

/* LoRA and the deep prefix of a set, with their moments. */
lw_status lw_check_adapter_set_finite(const lw_adapter_set *s);

#endif
