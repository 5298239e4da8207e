/* The CPU executor of the bridge's plan (plan/bridge_plan.h): forward runs
 * the model-level ops in order (BLOCKS: every block's list), backward walks
 * them in reverse, each op kind calling its runtime/ops function. Slots are
 * the arena laid out by lw_bridge_memory_layout (a block's LAYER slots at
 * their block's copy), weights and their gradients the bridge's flat
 * buffers (params, grads). */
#ifndef LW_BRIDGE_EXEC_H
#define LW_BRIDGE_EXEC_H

#include <stdbool.h>

#include "bridge_params.h"
#include "bridge_plan.h"

/* Slot s of block l (l ignored for model-level and shared slots), or
 * gradient g, in arena laid out as mem; NULL where the layout has none. */
float *lw_bridge_exec_slot(const lw_bridge_memory *mem, float *arena, lw_bridge_slot s, int l);
float *lw_bridge_exec_grad(const lw_bridge_memory *mem, float *arena, lw_bridge_grad g);

/* Forward over T context rows (xs in its slot); z is left in its slot. */
void lw_bridge_exec_forward(const lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                            int T);

/* Backward from dz (in its gradient buffer): accumulates into b->grads,
 * and writes dxs's buffer when want_dxs. */
void lw_bridge_exec_backward(lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                             int T, bool want_dxs);

#endif
