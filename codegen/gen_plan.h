/* Emits a pair's plans (plan.h) as C: build/<pair>/plan_tables.c defines
 * lw_baked_plans[2], the sender's and the receiver's plan as lw_plan_lower
 * made them at build time, and lw_baked_memory[2], their memory plans at
 * the baked shapes (lw_pair_memory_shape); for a perceiver bridge also
 * lw_baked_bridge_plan and lw_baked_bridge_memory (bridge_plan.h). The
 * binary compares them all with its own lowering (lw_pair_check_plans). */
#ifndef LW_GEN_PLAN_H
#define LW_GEN_PLAN_H

#include "bridge_plan.h"
#include "fileutil.h"
#include "manifest.h"
#include "plan.h"

/* One plan as a C initializer `{ ... }` (no trailing separator). */
void lw_gen_plan_initializer(const lw_plan *p, lw_strbuf *out);

/* One memory plan as a C initializer `{ ... }`. */
void lw_gen_memory_initializer(const lw_plan_memory *mem, lw_strbuf *out);

/* The bridge's plan and its memory plan as C initializers. */
void lw_gen_bridge_plan_initializer(const lw_bridge_plan *p, lw_strbuf *out);
void lw_gen_bridge_memory_initializer(const lw_bridge_memory *mem, lw_strbuf *out);

/* plan_tables.c of the pair m: both models lowered, then emitted. */
lw_status lw_gen_plan_tables(const lw_manifest *m, lw_strbuf *out);

#endif
