/* What `lwc build` bakes into each pair's binary: the validated manifest and
 * the kernels NVRTC compiled for it, the models' plans and memory plans
 * (plan.h). The generated build/<pair>/pair_runtime.c defines one const
 * lw_pair and hands it to lw_main(); plan_tables.c holds the plans. */
#ifndef LW_PAIR_H
#define LW_PAIR_H

#include <stddef.h>

#include "bridge_plan.h"
#include "manifest.h"
#include "plan.h"

typedef struct {
    const char *unit;              /* "sender", "receiver", "bridge" */
    int arch;                      /* 80 = sm_80 */
    const unsigned char *cubin;
    size_t size;
} lw_kernel_image;

typedef struct {
    lw_manifest manifest;
    const lw_kernel_image *kernels;
    int n_kernels;
    const char *build_stamp;       /* hex hash over manifest, templates, toolchain */
    const char *lwc_version;
    const char *nvrtc_version;     /* "none" when built CPU-only */
    const lw_plan *plans;          /* [2] the sender's and the receiver's plans as lwc build lowered them */
    const lw_plan_memory *memory;  /* [2] their memory plans at the baked shapes (lw_pair_memory_shape) */
    const lw_bridge_plan *bridge_plan;       /* the perceiver bridge's plan; NULL for the mlp and linear kinds */
    const lw_bridge_memory *bridge_memory;   /* its memory plan: LW_PAIR_BAKED_SEQ context rows, training */
} lw_pair;

/* The shapes lwc build lays the models out for (memory plans baked into the
 * binary): one example at a time, as both backends' training passes run
 * them; model 0, the sender, forward only over LW_PAIR_BAKED_SEQ rows;
 * model 1, the receiver, training over LW_PAIR_BAKED_SEQ + soft_tokens rows
 * (its prompt after the soft tokens); both with the attention's log-sum-exp
 * (the GPU kernels' aux). */
enum { LW_PAIR_BAKED_SEQ = 512 };
lw_status lw_pair_memory_shape(const lw_manifest *m, int model, lw_plan_shape *out);

/* Whether the models this binary loads (the manifest's) and its perceiver
 * bridge lower to the plans lwc build baked in, and lay out to the baked
 * memory plans; an error naming the model (or the bridge) and the first
 * difference otherwise (the binary and its lowering disagree: rebuild the
 * pair). */
lw_status lw_pair_check_plans(const lw_pair *pair);

/* The lw command line: info, generate, hidden, train, eval, bench. */
int lw_main(const lw_pair *pair, int argc, char **argv);

#endif
