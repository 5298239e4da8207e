/* What `lwc build` bakes into each pair's binary: the validated manifest and
 * the kernels NVRTC compiled for it. The generated build/<pair>/pair_runtime.c
 * defines one const lw_pair and hands it to lw_main(). */
#ifndef LW_PAIR_H
#define LW_PAIR_H

#include <stddef.h>

#include "manifest.h"

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
} lw_pair;

/* The lw command line: info, generate, hidden, train, eval, bench. */
int lw_main(const lw_pair *pair, int argc, char **argv);

#endif
