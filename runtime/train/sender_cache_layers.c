/* Several layers' sender states side by side (sender_cache_layers.h). */
#include "sender_cache_layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_sender_cache_stack(const lw_sender_cache *caches, int K, lw_sender_cache *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (K < 1) return lw_fail(LW_ERR_INVALID, "stacked sender states: no layers");
    int n = caches[0].n, S = caches[0].hidden;
    for (int k = 1; k < K; k++)
        if (caches[k].n != n || caches[k].hidden != S)
            return lw_fail(LW_ERR_INVALID, "stacked sender states: layer cache %d holds %d x %d wide, the first %d x %d",
                           k, caches[k].n, caches[k].hidden, n, S);
    for (int i = 0; i < n; i++)
        for (int k = 1; k < K; k++)
            if (caches[k].tokens[i] != caches[0].tokens[i])
                return lw_fail(LW_ERR_INVALID, "stacked sender states: example %d has %d rows in layer cache %d, %d in "
                               "the first (caches of different files?)", i, caches[k].tokens[i], k, caches[0].tokens[i]);
    lw_status st = lw_sender_cache_init_memory(out, n, K * S, caches[0].tokens);
    float *x = NULL;
    size_t cap = 0;
    for (int k = 0; !st && k < K; k++)
        for (int i = 0; !st && i < n; i++) {
            int T;
            if ((st = lw_sender_cache_read(&caches[k], i, &x, &cap, &T))) break;
            float *dst = out->mem + out->offset[i];
            for (int t = 0; t < T; t++) memcpy(dst + ((size_t)t * K + k) * S, x + (size_t)t * S, (size_t)S * sizeof *x);
        }
    free(x);
    if (st) lw_sender_cache_close(out);
    return st ? lw_fail_wrap(st, "stacked sender states") : LW_OK;
}

lw_status lw_layer_mix_fit_norm(lw_layer_mix *m, const lw_sender_cache *stacked, int n)
{
    int K = m->K, S = m->S;
    if (stacked->hidden != K * S || n < 1 || n > stacked->n)
        return lw_fail(LW_ERR_INVALID, "layer mix statistics: %d x %d wide states for %d layers of %d, %d examples",
                       stacked->n, stacked->hidden, K, S, n);
    double *sum = calloc((size_t)K * S * 2, sizeof *sum), *sq = sum ? sum + (size_t)K * S : NULL;
    float *mean = malloc((size_t)S * 2 * sizeof *mean), *std = mean ? mean + S : NULL, *x = NULL;
    size_t cap = 0;
    long rows = 0;
    lw_status st = sum && mean ? LW_OK : lw_fail(LW_ERR_NOMEM, "layer mix statistics: out of memory");
    for (int i = 0; !st && i < n; i++) {
        int T;
        if ((st = lw_sender_cache_read(stacked, i, &x, &cap, &T))) break;
        for (size_t j = 0; j < (size_t)T * K * S; j++) {
            double v = x[j];
            sum[j % ((size_t)K * S)] += v, sq[j % ((size_t)K * S)] += v * v;
        }
        rows += T;
    }
    if (!st && rows < 1) st = lw_fail(LW_ERR_INVALID, "layer mix statistics: no rows");
    for (int k = 0; !st && k < K; k++) {
        for (int s = 0; s < S; s++) {
            size_t j = (size_t)k * S + s;
            double mu = sum[j] / rows, var = sq[j] / rows - mu * mu;
            mean[s] = (float)mu, std[s] = (float)sqrt(var > 0 ? var : 0);
        }
        lw_layer_mix_set_norm(m, k, mean, std);
    }
    free(sum);
    free(mean);
    free(x);
    return st;
}
