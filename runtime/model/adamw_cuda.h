/* AdamW on the device with the global gradient-norm clip: the CPU's
 * lw_clip_grad_norm then lw_adamw_update over each span (runtime/ops/adamw.h),
 * as two bridge kernels (templates/bridge_kernels.cu.in): grad_sumsq sums the
 * squared gradient into one double on the device, then adamw_clip_step, one
 * launch a span of one weight decay, clips (when max_norm > 0 and the norm
 * is above it, in place, as the CPU does) and steps. Nothing comes back to
 * the host: the norm stays on the device (lw_adamw_cuda_norm reads it when
 * a log line wants it). The float operations are the CPU's in its order;
 * the bias corrections are computed on the host in double as the CPU does. */
#ifndef LW_ADAMW_CUDA_H
#define LW_ADAMW_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "adamw.h"
#include "cuda_launch.h"
#include "kernel_launchers.h"

typedef struct {
    size_t offset, count;   /* floats into the flat buffers */
    float weight_decay;
} lw_adamw_span;

typedef struct {
    lw_cuda *cu;
    const lw_bridge_kernels *k;
    bool sync_each_launch;
    lw_cuda_ptr params, grads, m, v;   /* [n] each */
    size_t n;
    lw_cuda_ptr sumsq;                 /* one double of scratch */
} lw_adamw_cuda;

/* One step: step is the step count after this one (lw_adamw's o->step
 * after begin_step), lr this step's rate. Spans must lie in [0, n). */
lw_status lw_adamw_cuda_step(const lw_adamw_cuda *a, const lw_adamw_span *spans, int n_spans, lw_adamw_config cfg,
                             long step, float lr, float max_norm);

/* The gradient norm before clipping of the last step (a download of one double). */
lw_status lw_adamw_cuda_norm(const lw_adamw_cuda *a, double *norm);

#endif
