/* The receiver on the GPU for `lw train` / `lw eval --device cuda`: the
 * driver, cuBLAS, the pair's receiver kernels, the uploaded weights and a
 * training pass (gpu_receiver_pass.h), opened and closed as one. The bridge
 * and the sender's cached states stay on the CPU: the soft tokens go up and
 * their gradient comes back each example (a few KiB).
 * Status: written without a GPU and not yet run on one (docs/gpu.md). */
#ifndef LW_GPU_RECEIVER_H
#define LW_GPU_RECEIVER_H

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "pair.h"

typedef struct {
    lw_cuda cu;
    lw_cublas blas;
    lw_cuda_module mod;
    lw_gpu_model *g;
    lw_gpu_receiver_pass pass;
} lw_gpu_receiver;

/* GPU `ordinal`; receiver: the CPU model (fp32) whose weights go up, as
 * dtype (LW_DTYPE_F32, or LW_DTYPE_BF16: bf16 projections and output head,
 * the training pass's backward through them in bf16 products with fp32
 * accumulation); max_T: the trainer's rows. On failure r is closed and the
 * message says what failed (without a GPU: the driver's message). */
lw_status lw_gpu_receiver_open(lw_gpu_receiver *r, const lw_pair *pair, const lw_model *receiver,
                               const lw_receiver_layout *layout, int max_T, lw_weight_dtype dtype, int ordinal);
void lw_gpu_receiver_close(lw_gpu_receiver *r);

#endif
