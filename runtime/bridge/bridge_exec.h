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

/* Where each weight role of block l (l = -1: the model level's roles
 * only) sits in the flat params / grads, in floats; LW_BRIDGE_NO_WEIGHT
 * for a role that level does not have. Other backends (the CUDA executor,
 * runtime/model/bridge_cuda.h) take this table, as they may not read the
 * bridge's layout. */
void lw_bridge_weight_offsets(const lw_bridge *b, int l, size_t at[LW_BW_COUNT]);

/* Forward over T context rows (the input rows in slot X); the soft tokens
 * are left in slot OUT. */
void lw_bridge_exec_forward(const lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                            int T);

/* Backward from dOUT (in its gradient buffer): accumulates into b->grads,
 * and writes dX's buffer (d loss / d the input rows) when want_dx. */
void lw_bridge_exec_backward(lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                             int T, bool want_dx);

#endif
