/* The one funnel of the generated launchers (cuda_launch.h). */
#include "cuda_launch.h"

#include <stdio.h>

lw_status lw_launch_kernel(lw_launch L, const lw_cuda_kernel *k, const char *name, unsigned gx, unsigned gy,
                           unsigned bx, void **args)
{
    /* A zeroed handle: its unit's *_kernels_find was not called, or failed. */
    if (!k->fn)
        return lw_fail(LW_ERR_INVALID, "launching %s%s%s%s: the kernel was not found in its module (call the unit's "
                       "*_kernels_find first)", name, L.owner ? " (" : "", L.owner ? L.owner : "", L.owner ? ")" : "");
    lw_status st = lw_cuda_launch(L.cu, k, gx, gy, 1, bx, 1, 1, 0, args);
    if (!st && L.sync) {
        char what[256];
        snprintf(what, sizeof what, "after %s of %s (%s)", k->name, k->unit ? k->unit : "?", L.owner ? L.owner : "?");
        st = lw_cuda_sync(L.cu, what);
    }
    if (!st && L.observe) L.observe(L.user, k);
    return st;
}
