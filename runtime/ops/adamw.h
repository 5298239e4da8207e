/* AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias
 * correction), the learning-rate schedule (linear warmup, then cosine decay)
 * and clipping by the global gradient norm. The optimiser sees parameters as
 * one flat float buffer; callers update it span by span so that each tensor
 * can have its own weight decay (none for biases, norms and scales). */
#ifndef LW_ADAMW_H
#define LW_ADAMW_H

#include <stddef.h>

#include "status.h"

typedef struct {
    float beta1, beta2, eps;
} lw_adamw_config;

typedef struct {
    lw_adamw_config cfg;
    size_t n;
    float *m;           /* first moment, [n] */
    float *v;           /* second moment, [n] */
    long step;          /* completed steps; the bias correction uses step after begin_step */
} lw_adamw;

/* The PyTorch defaults: 0.9, 0.999, 1e-8. */
lw_adamw_config lw_adamw_defaults(void);
lw_status lw_adamw_init(lw_adamw *o, size_t n, lw_adamw_config cfg);
void lw_adamw_free(lw_adamw *o);

/* One optimiser step is begin_step then update over every span once. */
void lw_adamw_begin_step(lw_adamw *o);
/* p[i] and g[i] for i in [offset, offset + count) of the flat buffers. */
void lw_adamw_update(lw_adamw *o, float *params, const float *grads, size_t offset, size_t count, float lr,
                     float weight_decay);
/* Convenience: one step over the whole buffer with one weight decay. */
void lw_adamw_step(lw_adamw *o, float *params, const float *grads, float lr, float weight_decay);

/* Learning rate at step (0-based): peak * (step+1)/warmup during warmup, then
 * cosine from peak down to peak * min_ratio at total_steps. */
float lw_lr_at(long step, long warmup_steps, long total_steps, float peak_lr, float min_ratio);

/* The L2 norm of g[0..n) (accumulated in double). */
double lw_grad_norm(const float *g, size_t n);
/* Scales g so its norm is at most max_norm (no-op if max_norm <= 0 or the
 * norm is within it); returns the norm before clipping. Like
 * torch.nn.utils.clip_grad_norm_: factor max_norm / (norm + 1e-6). */
double lw_clip_grad_norm(float *g, size_t n, float max_norm);

#endif
