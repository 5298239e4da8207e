/* The CUDA executor of the bridge's plan (plan/bridge_plan.h): what
 * runtime/bridge/bridge_exec.c does on the CPU, over device buffers, each
 * record through the generated bridge kernels (templates/bridge_kernels.cu.in,
 * launched by the typed launchers of kernel_launchers.h) and cuBLAS for the
 * products:
 *
 *   STANDARDISE    standardise_forward / _backward
 *   MATMUL         lw_cublas_matmul, bridge_bias_forward; backward
 *                  lw_cublas_matmul_dx, lw_cublas_matmul_dw, bridge_bias_backward
 *   LAYERNORM      layernorm_forward / _backward
 *   ATTENTION      bridge_attention_forward / _backward (aux holds each
 *                  (head, query)'s log-sum-exp where the CPU keeps the
 *                  probabilities: the slot is larger than that needs)
 *   GELU           gelu_forward / _backward
 *   COPY, ADD      bridge_copy, bridge_add (a copied tensor's gradient: bridge_add)
 *   MEAN_ROWS      mean_rows_forward / _backward (the pooled ablations)
 *   RMS_CALIBRATE  rms_calibrate_forward / _backward (its keep, z / rms(z),
 *                  is not written: the kernel's backward needs only z and rstd)
 *   BLOCKS         every block's list in turn, backward in reverse
 *
 * As on the CPU the accumulating kernels get a zeroed gradient where the
 * plan flags LW_PLAN_ZERO_DIN. The arena is the plan's memory layout
 * (lw_bridge_memory_layout, training) allocated on the device; params and
 * grads the bridge's flat buffers there. This folder may not read the
 * bridge's parameter layout (runtime/bridge), so the caller hands the
 * weight offsets lw_bridge_weight_offsets gives (runtime/bridge/bridge_exec.h).
 *
 * The bridge kernels bake the manifest's sizes in (width, heads, M, the
 * receiver's width, the calibration); lw_bridge_cuda_check refuses, in this
 * one place, a plan whose sizes those kernels were not built for. */
#ifndef LW_BRIDGE_CUDA_H
#define LW_BRIDGE_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge_plan.h"
#include "cuda_blas.h"
#include "cuda_launch.h"
#include "kernel_launchers.h"

typedef struct {
    lw_cuda *cu;
    lw_cublas *blas;
    const lw_bridge_kernels *k;
    bool sync_each_launch;           /* wait after every launch (tests: a fault names its kernel) */
    const lw_bridge_plan *p;
    const lw_bridge_memory *mem;     /* laid out for training */
    lw_cuda_ptr arena;               /* mem->bytes on the device */
    lw_cuda_ptr params, grads;       /* the bridge's flat buffers on the device */
    /* [(1 + depth) x LW_BW_COUNT] offsets in floats: row 0 the model level's
     * (lw_bridge_weight_offsets(b, -1, ...)), row 1 + l block l's */
    const size_t *w_at;
} lw_bridge_cuda;

/* The sizes the bridge kernels were built with (the manifest's bridge, as
 * gen_kernels.c bakes them). */
typedef struct {
    int width, heads, soft_tokens, receiver_hidden;
    bool calibrate_rms;
} lw_bridge_cuda_sizes;

/* LW_OK when every record of p runs on kernels built for sz; otherwise
 * LW_ERR_UNSUPPORTED naming the record and the size. */
lw_status lw_bridge_cuda_check(const lw_bridge_plan *p, const lw_bridge_cuda_sizes *sz);

/* Slot s of block l (model-level and shared slots: l ignored), gradient g;
 * 0 where the layout has none. */
lw_cuda_ptr lw_bridge_cuda_slot(const lw_bridge_cuda *x, lw_bridge_slot s, int l);
lw_cuda_ptr lw_bridge_cuda_grad(const lw_bridge_cuda *x, lw_bridge_grad g);

/* Forward over T context rows (the input rows in slot X); the soft tokens
 * in slot OUT. Asynchronous as launches are. */
lw_status lw_bridge_cuda_forward(const lw_bridge_cuda *x, int T);

/* Backward from dOUT (its gradient buffer) after a forward over the same T:
 * accumulates into grads, and writes dX when want_dx. */
lw_status lw_bridge_cuda_backward(const lw_bridge_cuda *x, int T, bool want_dx);

#endif
