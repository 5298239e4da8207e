/* LayerNorm over the last axis, as in the bridge and the prefix generator:
 * y = (x - mean) * rstd * w + b, biased variance, like torch.nn.LayerNorm. */
#include "ops.h"

#include <math.h>
#include <stddef.h>

void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                       int T, int C, float eps)
{
    int n = C > 0 ? C : 1;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;
        float *yt = y + (size_t)t * C;
        double s = 0.0;
        for (int i = 0; i < C; i++) s += xt[i];
        double m = s / n;
        double v = 0.0;
        for (int i = 0; i < C; i++) v += ((double)xt[i] - m) * ((double)xt[i] - m);
        float r = (float)(1.0 / sqrt(v / n + eps));
        float mf = (float)m;
        for (int i = 0; i < C; i++) {
            float nrm = (xt[i] - mf) * r;
            yt[i] = nrm * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
        }
        if (mean) mean[t] = mf;
        if (rstd) rstd[t] = r;
    }
}

/* With n = (x - mean) * rstd and g = dy * w:
 * dx = rstd * (g - mean(g) - n * mean(g * n)). */
void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                        const float *mean, const float *rstd, int T, int C)
{
    int n = C > 0 ? C : 1;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;
        const float *dyt = dy + (size_t)t * C;
        float m = mean[t], r = rstd[t];
        double sum_g = 0.0, sum_gn = 0.0;
        for (int i = 0; i < C; i++) {
            float nrm = (xt[i] - m) * r;
            float g = dyt[i] * (w ? w[i] : 1.0f);
            sum_g += g;
            sum_gn += (double)g * nrm;
            if (dw) dw[i] += dyt[i] * nrm;
            if (db) db[i] += dyt[i];
        }
        if (!dx) continue;
        float mean_g = (float)(sum_g / n), mean_gn = (float)(sum_gn / n);
        float *dxt = dx + (size_t)t * C;
        for (int i = 0; i < C; i++) {
            float nrm = (xt[i] - m) * r;
            float g = dyt[i] * (w ? w[i] : 1.0f);
            dxt[i] += r * (g - mean_g - nrm * mean_gn);
        }
    }
}
