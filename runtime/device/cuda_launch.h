/* Where the generated kernel launchers send their launches.
 *
 * Each CUDA kernel is launched through its own typed function,
 * lwk_<kernel>(launch, kernels, arguments..., launch sizes...), generated
 * from templates/kernels.def into out/gen/kernel_launchers.h: the function
 * takes the kernel's arguments as C parameters (device pointers as
 * lw_cuda_ptr), packs them, and computes the grid and block from the table's
 * rule, so an argument that is missing, extra or of the wrong kind is a
 * compile error on the host rather than a fault on a GPU. The kernels of a
 * unit are found once, by the generated lw_model_kernels_find /
 * lw_bridge_kernels_find, into a struct with one handle per kernel.
 *
 *   lw_model_kernels ks;
 *   lw_model_kernels_find(&cu, &mod, &ks);
 *   lwk_glu_forward((lw_launch){.cu = &cu, .owner = "receiver"}, &ks, out, gate, up, n);
 */
#ifndef LW_CUDA_LAUNCH_H
#define LW_CUDA_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_driver.h"

typedef struct {
    lw_cuda *cu;
    const char *owner;     /* the model (or test) the kernels belong to, in messages; may be NULL */
    bool sync;             /* wait after every launch, so a fault names its kernel (tests) */
    /* Called after each successful launch (tests count which kernels ran); may be NULL. */
    void (*observe)(void *user, const lw_cuda_kernel *k);
    void *user;
} lw_launch;

/* ceil(n / per): the blocks that cover n items, per to a block. */
static inline unsigned lw_blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

/* Launches k (looked up under `name`) with grid (gx, gy, 1) and block
 * (bx, 1, 1) on the default stream, then waits if L.sync. Used by the
 * generated launchers; call those instead. */
lw_status lw_launch_kernel(lw_launch L, const lw_cuda_kernel *k, const char *name, unsigned gx, unsigned gy,
                           unsigned bx, void **args);

#endif
