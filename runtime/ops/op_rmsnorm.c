/* RMSNorm: y = x * rstd * g with rstd = 1/sqrt(mean(x^2) + eps) and
 * g = w (llama) or 1 + w (Gemma stores the offset from one). Sums are taken
 * in double so the CPU path is the accurate reference the kernels are held to. */
#include "ops.h"

#include <math.h>
#include <stddef.h>

static float norm_gain(const float *w, int i, lw_norm_kind kind)
{
    if (!w) return 1.0f;
    return kind == LW_NORM_RMSNORM_GEMMA ? 1.0f + w[i] : w[i];
}

void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps,
                     lw_norm_kind kind)
{
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;
        float *yt = y + (size_t)t * C;
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)xt[i] * xt[i];
        float r = (float)(1.0 / sqrt(ss / (C > 0 ? C : 1) + eps));
        for (int i = 0; i < C; i++) yt[i] = xt[i] * r * norm_gain(w, i, kind);
        if (rstd) rstd[t] = r;
    }
}

/* With n = x * r:  dx = r * (g*dy - n * mean(g*dy*n)),  dw += dy * n
 * (d(1 + w)/dw = 1, so both kinds share dw). */
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      const float *rstd, int T, int C, lw_norm_kind kind)
{
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;
        const float *dyt = dy + (size_t)t * C;
        float r = rstd[t];
        if (dw && w)
            for (int i = 0; i < C; i++) dw[i] += dyt[i] * xt[i] * r;
        if (!dx) continue;
        double dot = 0.0;
        for (int i = 0; i < C; i++) dot += (double)dyt[i] * norm_gain(w, i, kind) * xt[i] * r;
        float mean_dot = (float)(dot / (C > 0 ? C : 1));
        float *dxt = dx + (size_t)t * C;
        for (int i = 0; i < C; i++)
            dxt[i] += r * (dyt[i] * norm_gain(w, i, kind) - xt[i] * r * mean_dot);
    }
}
