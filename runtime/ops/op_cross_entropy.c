/* Softmax cross-entropy over a vocabulary, mean over the rows that have a
 * target (target < 0 marks padding or prompt positions). A target >= V
 * cannot be scored and is ignored the same way rather than read out of bounds. */
#include "ops.h"

#include <math.h>
#include <stddef.h>

static bool scored(int target, int V) { return target >= 0 && target < V; }

float cross_entropy_forward(float *probs, const float *logits, const int *targets, int T, int V)
{
    double total = 0.0;
    int count = 0;
    for (int t = 0; t < T; t++) {
        const float *lt = logits + (size_t)t * V;
        float *pt = probs + (size_t)t * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            if (lt[i] > mx) mx = lt[i];
        double sum = 0.0;
        for (int i = 0; i < V; i++) {
            pt[i] = expf(lt[i] - mx);
            sum += pt[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++) pt[i] *= inv;
        if (scored(targets[t], V)) {
            /* -log p from the logits, not from p, so a tiny p does not give inf */
            total += mx + log(sum) - lt[targets[t]];
            count++;
        }
    }
    return count > 0 ? (float)(total / count) : 0.0f;
}

void cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int T, int V, float dloss)
{
    int count = 0;
    for (int t = 0; t < T; t++) count += scored(targets[t], V);
    if (count == 0) return;
    float g = dloss / count;
    for (int t = 0; t < T; t++) {
        if (!scored(targets[t], V)) continue;
        const float *pt = probs + (size_t)t * V;
        float *dt = dlogits + (size_t)t * V;
        for (int i = 0; i < V; i++) dt[i] += g * (pt[i] - (i == targets[t] ? 1.0f : 0.0f));
    }
}
