#include "gpu_receiver.h"

#include <string.h>

#include "cuda_pair.h"

lw_status lw_gpu_receiver_open(lw_gpu_receiver *r, const lw_pair *pair, const lw_model *receiver,
                               const lw_receiver_layout *layout, int max_T, lw_weight_dtype dtype, int ordinal)
{
    memset(r, 0, sizeof *r);
    lw_status st = lw_cuda_init(&r->cu, ordinal);
    if (!st) st = lw_cuda_load_unit(&r->cu, pair, "receiver", &r->mod);
    if (!st) st = lw_cublas_init(&r->blas, &r->cu);
    if (!st) st = lw_gpu_model_upload_dtype(&r->cu, &r->blas, &r->mod, receiver, dtype, &r->g);
    if (!st) st = lw_gpu_receiver_pass_alloc(&r->pass, r->g, layout, max_T, "receiver on the GPU");
    if (st) {
        lw_gpu_receiver_close(r);
        return lw_fail_wrap(st, "--device cuda (GPU %d)", ordinal);
    }
    return LW_OK;
}

void lw_gpu_receiver_close(lw_gpu_receiver *r)
{
    lw_gpu_receiver_pass_free(&r->pass);
    lw_gpu_model_free(r->g);
    lw_cublas_close(&r->blas);
    if (r->mod.module) lw_cuda_unload(&r->cu, &r->mod);
    lw_cuda_close(&r->cu);
    memset(r, 0, sizeof *r);
}
