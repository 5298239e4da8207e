/* AdamW with the global-norm clip on the device (adamw_cuda.h). */
#include "adamw_cuda.h"

#include <limits.h>
#include <math.h>

#define F32 sizeof(float)

lw_status lw_adamw_cuda_step(const lw_adamw_cuda *a, const lw_adamw_span *spans, int n_spans, lw_adamw_config cfg,
                             long step, float lr, float max_norm)
{
    if (step < 1) return lw_fail(LW_ERR_INVALID, "AdamW on CUDA: step %ld, expected >= 1 (after begin_step)", step);
    lw_launch L = {.cu = a->cu, .owner = "adamw", .sync = a->sync_each_launch};
    lw_status st = lw_cuda_memset0(a->cu, a->sumsq, sizeof(double), "AdamW gradient norm");
    /* one launch covers at most INT_MAX values */
    for (size_t at = 0; !st && at < a->n; at += INT_MAX) {
        size_t len = a->n - at < (size_t)INT_MAX ? a->n - at : (size_t)INT_MAX;
        st = lwk_grad_sumsq(L, a->k, a->sumsq, a->grads + at * F32, (int)len);
    }
    /* lw_adamw_update's bias corrections, in double on the host */
    double bc1 = 1.0 - pow(cfg.beta1, (double)step), bc2 = 1.0 - pow(cfg.beta2, (double)step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (int s = 0; !st && s < n_spans; s++) {
        const lw_adamw_span *sp = &spans[s];
        if (sp->offset > a->n || sp->count > a->n - sp->offset)
            return lw_fail(LW_ERR_INVALID, "AdamW on CUDA: span %d [%zu, +%zu) outside the %zu parameters", s,
                           sp->offset, sp->count, a->n);
        for (size_t at = 0; !st && at < sp->count; at += INT_MAX) {
            size_t len = sp->count - at < (size_t)INT_MAX ? sp->count - at : (size_t)INT_MAX;
            size_t o = (sp->offset + at) * F32;
            st = lwk_adamw_clip_step(L, a->k, a->params + o, a->grads + o, a->m + o, a->v + o, a->sumsq, max_norm,
                                     (int)len, lr, sp->weight_decay, cfg.beta1, cfg.beta2, cfg.eps, step_size,
                                     bc2_sqrt);
        }
    }
    return st ? lw_fail_wrap(st, "AdamW on CUDA: step %ld", step) : LW_OK;
}

lw_status lw_adamw_cuda_norm(const lw_adamw_cuda *a, double *norm)
{
    double sq = 0.0;
    lw_status st = lw_cuda_download(a->cu, &sq, a->sumsq, sizeof sq, "AdamW gradient norm");
    if (st) return st;
    *norm = sqrt(sq);
    return LW_OK;
}
