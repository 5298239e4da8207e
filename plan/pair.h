/* What `lwc build` bakes into each pair's binary: the validated manifest and
 * the kernels NVRTC compiled for it, the models' plans (plan.h). The generated
 * build/<pair>/pair_runtime.c defines one const lw_pair and hands it to
 * lw_main(); plan_tables.c holds the plans. */
#ifndef LW_PAIR_H
#define LW_PAIR_H

#include <stddef.h>

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
} lw_pair;

/* Whether the models this binary loads (the manifest's) lower to the plans
 * lwc build baked in; an error naming the model and the first difference
 * otherwise (the binary and its lowering disagree: rebuild the pair). */
lw_status lw_pair_check_plans(const lw_pair *pair);

/* The lw command line: info, generate, hidden, train, eval, bench. */
int lw_main(const lw_pair *pair, int argc, char **argv);

#endif
