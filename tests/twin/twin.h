/* The host twin of the CUDA launch layer: what tests/check_plan_cuda_host.c
 * runs the CUDA executor of the plan (runtime/model/plan_cuda.c) on without
 * a device.
 *
 * Built with LW_KERNEL_HOST_TWIN, each generated lwk_<kernel>()
 * (out/gen/kernel_launchers.h, from templates/kernels.def) calls
 * lw_twin_<kernel>() of kernel_twins.c, a C implementation of the kernel's
 * template over host memory; cuda_twin.c is the driver and cuBLAS of that
 * build: "device memory" is host memory (an lw_cuda_ptr is the address),
 * copies are memcpy, products a CPU sgemm. What this checks is the
 * executor's orchestration (op order, offsets, strides, which kernel runs
 * for which op); the kernels themselves are held to their CPU twins on a
 * device by tests/gpu/check_kernels_gpu.c and check_backend_ops_gpu.c.
 *
 * The kernels bake their model's sizes in as constants; the twins read
 * them from the config given to lw_twin_set_model. */
#ifndef LW_TWIN_H
#define LW_TWIN_H

#include <stdbool.h>

#include "model_config.h"

/* The model whose kernels the twins stand for (kept by pointer: it must
 * outlive the calls). */
void lw_twin_set_model(const lw_model_config *c);

/* The bridge whose kernels the bridge twins (bridge_twins.c) stand for:
 * the sizes gen_kernels.c bakes into the bridge unit. */
void lw_twin_set_bridge(int width, int heads, int soft_tokens, int receiver_hidden, bool calibrate_rms);

/* Launches made through the twin launchers since the last reset, and the
 * cuBLAS products (tests check the executor ran at all). */
typedef struct {
    long launches, products;
    long download_bytes;   /* device to host, all downloads */
    long bf16_dx_products; /* input-gradient products through bf16 weights */
    long by_kernel[32];   /* indexed by lw_twin_kernel_index */
    long by_bridge_kernel[32];   /* indexed by lw_twin_bridge_kernel_index */
} lw_twin_counts;
extern lw_twin_counts lw_twin_count;
int lw_twin_kernel_index(const char *name);
/* While true, the GPU training pass's host staging cannot be allocated
 * (gpu_receiver_pass.c in this build): a pack that cannot grow. */
extern bool lw_twin_fail_staging;
int lw_twin_bridge_kernel_index(const char *name);

#endif
