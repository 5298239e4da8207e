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

lw_status lw_sender_cache_get_layers(const lw_model_config *sender, const int *layers, int K, const char *data_path,
                                     const lw_dataset *d, const char *cache_dir, int quiet, lw_sender_cache *out)
{
    if (K == 1) return lw_sender_cache_get(sender, layers[0], data_path, d, cache_dir, quiet, out);
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (K < 1 || K > LW_LAYER_MIX_MAX)
        return lw_fail(LW_ERR_INVALID, "sender states of %d layers (1..%d)", K, LW_LAYER_MIX_MAX);
    lw_sender_cache one[LW_LAYER_MIX_MAX];
    for (int k = 0; k < K; k++) one[k] = (lw_sender_cache){.fd = -1};
    lw_status st = LW_OK;
    for (int k = 0; !st && k < K; k++)
        if ((st = lw_sender_cache_get(sender, layers[k], data_path, d, cache_dir, quiet, &one[k])))
            st = lw_fail_wrap(st, "sender states of layer %d", layers[k]);
    if (!st) st = lw_sender_cache_stack(one, K, out);
    for (int k = 0; k < K; k++) lw_sender_cache_close(&one[k]);
    return st;
}

lw_status lw_sender_run_mixed(lw_sender_run *r, const lw_layer_mix *mix, const char *text, float **stack,
                              size_t *stack_cap, float *out, int *T)
{
    int K = mix->K, S = mix->S, Tk = 0;
    if (r->model->cfg.hidden != S)
        return lw_fail(LW_ERR_INVALID, "sender states: the sender is %d wide, the layer mix takes %d",
                       r->model->cfg.hidden, S);
    for (int k = 0; k < K; k++) {
        lw_status st = lw_sender_run_states(r, mix->layers[k], text, &Tk);
        if (st) return lw_fail_wrap(st, "sender states of layer %d", mix->layers[k]);
        if (k == 0) *T = Tk;
        else if (Tk != *T)
            return lw_fail(LW_ERR_INVALID, "sender states: layer %d gave %d rows, layer %d %d", mix->layers[k], Tk,
                           mix->layers[0], *T);
        size_t need = (size_t)Tk * K * S;
        if (need > *stack_cap) {
            float *p = realloc(*stack, need * sizeof *p);
            if (!p) return lw_fail(LW_ERR_NOMEM, "sender states: out of memory for %d layers", K);
            *stack = p, *stack_cap = need;
        }
        for (int t = 0; t < Tk; t++)
            memcpy(*stack + ((size_t)t * K + k) * S, r->hidden + (size_t)t * S, (size_t)S * sizeof(float));
    }
    lw_layer_mix_forward(mix, *stack, *T, out);
    return LW_OK;
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
