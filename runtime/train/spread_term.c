/* The term against the message collapse (spread_term.h). */
#include "spread_term.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_spread_term_init(lw_spread_term *s, float weight, int M, int W)
{
    memset(s, 0, sizeof *s);
    if (!(weight >= 0.0f) || !isfinite(weight))
        return lw_fail(LW_ERR_INVALID, "spread term: weight %g, expected a finite number >= 0", (double)weight);
    if (M < 1 || W < 1) return lw_fail(LW_ERR_INVALID, "spread term: messages of %d x %d", M, W);
    s->weight = weight;
    s->M = M;
    s->W = W;
    if (weight == 0.0f) return LW_OK;
    if (!(s->sum = calloc((size_t)M * (size_t)W, sizeof *s->sum)))
        return lw_fail(LW_ERR_NOMEM, "spread term: out of memory for %d x %d", M, W);
    return LW_OK;
}

void lw_spread_term_free(lw_spread_term *s)
{
    free(s->sum);
    memset(s, 0, sizeof *s);
}

void lw_spread_term_reset(lw_spread_term *s)
{
    if (s->sum) memset(s->sum, 0, (size_t)s->M * (size_t)s->W * sizeof *s->sum);
    s->n = 0;
}

double lw_spread_cos(const float *z, const double *mbar, int M, int W, float *dz, float scale)
{
    double total = 0.0;
    for (int m = 0; m < M; m++) {
        const float *a = z + (size_t)m * W;
        const double *b = mbar + (size_t)m * W;
        double ab = 0.0, aa = 0.0, bb = 0.0;
        for (int k = 0; k < W; k++) ab += a[k] * b[k], aa += (double)a[k] * a[k], bb += b[k] * b[k];
        if (!(aa > 0.0) || !(bb > 0.0)) continue;   /* no direction: cos 0, no gradient */
        double na = sqrt(aa), nb = sqrt(bb), c = ab / (na * nb);
        total += c;
        if (!dz) continue;
        /* d cos / d a = b / (|a||b|) - cos a / |a|^2 */
        double g = (double)scale / M;
        float *d = dz + (size_t)m * W;
        for (int k = 0; k < W; k++) d[k] += (float)(g * (b[k] / (na * nb) - c * a[k] / aa));
    }
    return total / M;
}

double lw_spread_term_step(lw_spread_term *s, const float *z, float *dz, float scale)
{
    if (!s->sum) return 0.0;
    size_t n = (size_t)s->M * (size_t)s->W;
    double v = 0.0;
    if (s->n > 0) {
        /* the cosine is scale-free, so the sum stands for the mean */
        v = s->weight * lw_spread_cos(z, s->sum, s->M, s->W, dz, scale * s->weight);
    }
    for (size_t k = 0; k < n; k++) s->sum[k] += z[k];
    s->n++;
    return v;
}
