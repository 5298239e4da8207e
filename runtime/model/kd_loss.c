/* The KD term at the verbalizer positions (kd_loss.h). */
#include "kd_loss.h"

#include <math.h>
#include <stddef.h>

/* q[k] = softmax(z_S / T) of position i; returns nothing, fills q. */
static void student(const lw_kd_target *kd, const float *logits, int V, int i, double *q)
{
    const float *z = logits + (size_t)i * V;
    const int *ids = kd->ids + (size_t)i * kd->k;
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < kd->k; j++) mx = fmax(mx, z[ids[j]] / kd->temp);
    for (int j = 0; j < kd->k; j++) sum += q[j] = exp(z[ids[j]] / kd->temp - mx);
    for (int j = 0; j < kd->k; j++) q[j] /= sum;
}

double lw_kd_loss(const lw_kd_target *kd, const float *logits, int V)
{
    double total = 0, q[kd->k > 0 ? kd->k : 1];
    for (int i = 0; i < kd->L; i++) {
        student(kd, logits, V, i, q);
        const float *p = kd->p + (size_t)i * kd->k;
        for (int j = 0; j < kd->k; j++)
            if (p[j] > 0) total += p[j] * (log(p[j]) - log(q[j] > 1e-300 ? q[j] : 1e-300));
    }
    return (double)kd->weight * kd->temp * kd->temp * total / kd->L;
}

void lw_kd_backward(const lw_kd_target *kd, const float *logits, int V, float scale, float *dlogits)
{
    double q[kd->k > 0 ? kd->k : 1], f = (double)scale * kd->weight * kd->temp / kd->L;
    for (int i = 0; i < kd->L; i++) {
        student(kd, logits, V, i, q);
        const float *p = kd->p + (size_t)i * kd->k;
        const int *ids = kd->ids + (size_t)i * kd->k;
        for (int j = 0; j < kd->k; j++) dlogits[(size_t)i * V + ids[j]] += (float)(f * (q[j] - p[j]));
    }
}
