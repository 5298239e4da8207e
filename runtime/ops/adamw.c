#include "adamw.h"

#include <math.h>
#include <stdlib.h>

lw_adamw_config lw_adamw_defaults(void) { return (lw_adamw_config){0.9f, 0.999f, 1e-8f}; }

lw_status lw_adamw_init(lw_adamw *o, size_t n, lw_adamw_config cfg)
{
    o->cfg = cfg;
    o->n = n;
    o->step = 0;
    o->m = calloc(n ? n : 1, sizeof(float));
    o->v = calloc(n ? n : 1, sizeof(float));
    if (!o->m || !o->v) {
        lw_adamw_free(o);
        return lw_fail(LW_ERR_NOMEM, "AdamW: cannot allocate state for %zu parameters", n);
    }
    return LW_OK;
}

void lw_adamw_free(lw_adamw *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void lw_adamw_begin_step(lw_adamw *o) { o->step++; }

void lw_adamw_update(lw_adamw *o, float *params, const float *grads, size_t offset, size_t count, float lr,
                     float weight_decay)
{
    const float b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    /* The same float operations in the same order as torch's single-tensor
     * AdamW, so short runs match it to rounding. */
    double bc1 = 1.0 - pow(b1, (double)o->step);
    double bc2 = 1.0 - pow(b2, (double)o->step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    for (size_t i = offset; i < offset + count; i++) {
        float g = grads[i];
        float p = params[i] * (1.0f - lr * weight_decay);
        float m = o->m[i] = o->m[i] + (g - o->m[i]) * (1.0f - b1);
        float v = o->v[i] = o->v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(v) / bc2_sqrt + o->cfg.eps;
        params[i] = p - step_size * (m / denom);
    }
}

void lw_adamw_step(lw_adamw *o, float *params, const float *grads, float lr, float weight_decay)
{
    lw_adamw_begin_step(o);
    lw_adamw_update(o, params, grads, 0, o->n, lr, weight_decay);
}

float lw_lr_at(long step, long warmup_steps, long total_steps, float peak_lr, float min_ratio)
{
    if (step < warmup_steps) return peak_lr * (float)(step + 1) / (float)warmup_steps;
    long decay = total_steps - warmup_steps;
    if (decay <= 0) return peak_lr;
    double progress = (double)(step - warmup_steps) / (double)decay;
    if (progress > 1.0) progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(peak_lr * (min_ratio + (1.0 - min_ratio) * cosine));
}

double lw_grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

double lw_clip_grad_norm(float *g, size_t n, float max_norm)
{
    double norm = lw_grad_norm(g, n);
    if (max_norm > 0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < n; i++) g[i] *= scale;
    }
    return norm;
}
