/* The learned mix of sender layers (layer_mix.h). */
#include "layer_mix.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_layer_mix_parse(const char *spec, int n_layers, int *layers, int *K)
{
    *K = 0;
    const char *c = spec;
    while (c && *c) {
        char *end;
        errno = 0;
        long v = strtol(c, &end, 10);
        if (end == c || errno || v < 0 || v >= n_layers)
            return lw_fail(LW_ERR_INVALID, "sender layers '%s': each must be a layer 0..%d", spec, n_layers - 1);
        if (*K == LW_LAYER_MIX_MAX)
            return lw_fail(LW_ERR_INVALID, "sender layers '%s': at most %d", spec, LW_LAYER_MIX_MAX);
        for (int k = 0; k < *K; k++)
            if (layers[k] == (int)v) return lw_fail(LW_ERR_INVALID, "sender layers '%s': layer %ld twice", spec, v);
        layers[(*K)++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return lw_fail(LW_ERR_INVALID, "sender layers '%s': a comma-separated list of layers", spec);
        c = end;
    }
    if (*K < 1) return lw_fail(LW_ERR_INVALID, "sender layers: an empty list");
    return LW_OK;
}

lw_status lw_layer_mix_create(lw_layer_mix *m, const int *layers, int K, int S)
{
    memset(m, 0, sizeof *m);
    if (K < 1 || K > LW_LAYER_MIX_MAX || S < 1)
        return lw_fail(LW_ERR_INVALID, "layer mix: %d layers (1..%d) of width %d", K, LW_LAYER_MIX_MAX, S);
    m->K = K, m->S = S;
    memcpy(m->layers, layers, (size_t)K * sizeof *layers);
    m->mean = calloc((size_t)K * S, sizeof *m->mean);
    m->std = malloc((size_t)K * S * sizeof *m->std);
    if (!m->mean || !m->std) {
        lw_layer_mix_free(m);
        return lw_fail(LW_ERR_NOMEM, "layer mix: out of memory for %d x %d buffers", K, S);
    }
    for (size_t i = 0; i < (size_t)K * S; i++) m->std[i] = 1.0f;
    lw_status st = lw_adamw_init(&m->opt, (size_t)K, lw_adamw_defaults());
    if (st) lw_layer_mix_free(m);
    return st;
}

void lw_layer_mix_free(lw_layer_mix *m)
{
    free(m->mean);
    free(m->std);
    lw_adamw_free(&m->opt);
    memset(m, 0, sizeof *m);
}

void lw_layer_mix_set_norm(lw_layer_mix *m, int k, const float *mean, const float *std)
{
    for (int s = 0; s < m->S; s++) {
        m->mean[(size_t)k * m->S + s] = mean[s];
        m->std[(size_t)k * m->S + s] = std[s] > 1e-6f ? std[s] : 1e-6f;
    }
}

void lw_layer_mix_weights(const lw_layer_mix *m, float *w)
{
    float mx = m->logits[0];
    for (int k = 1; k < m->K; k++) mx = m->logits[k] > mx ? m->logits[k] : mx;
    double sum = 0;
    for (int k = 0; k < m->K; k++) sum += exp((double)m->logits[k] - mx);
    for (int k = 0; k < m->K; k++) w[k] = (float)(exp((double)m->logits[k] - mx) / sum);
}

void lw_layer_mix_forward(const lw_layer_mix *m, const float *x, int T, float *out)
{
    int K = m->K, S = m->S;
    float w[LW_LAYER_MIX_MAX];
    lw_layer_mix_weights(m, w);
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * S;
        memset(o, 0, (size_t)S * sizeof *o);
        for (int k = 0; k < K; k++) {
            const float *xk = x + ((size_t)t * K + k) * S, *mu = m->mean + (size_t)k * S, *sd = m->std + (size_t)k * S;
            for (int s = 0; s < S; s++) o[s] += w[k] * (xk[s] - mu[s]) / sd[s];
        }
    }
}

void lw_layer_mix_backward(lw_layer_mix *m, const float *x, int T, const float *dout)
{
    int K = m->K, S = m->S;
    float w[LW_LAYER_MIX_MAX];
    double g[LW_LAYER_MIX_MAX] = {0};   /* d(loss)/d(w_k) */
    lw_layer_mix_weights(m, w);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            const float *xk = x + ((size_t)t * K + k) * S, *mu = m->mean + (size_t)k * S, *sd = m->std + (size_t)k * S;
            const float *d = dout + (size_t)t * S;
            for (int s = 0; s < S; s++) g[k] += (double)d[s] * (xk[s] - mu[s]) / sd[s];
        }
    /* softmax: d/d(logit_j) = w_j (g_j - sum_k w_k g_k) */
    double wg = 0;
    for (int k = 0; k < K; k++) wg += w[k] * g[k];
    for (int j = 0; j < K; j++) m->grads[j] += (float)(w[j] * (g[j] - wg));
}

void lw_layer_mix_describe(const lw_layer_mix *m, char *out, size_t cap)
{
    size_t n = 0;
    if (cap) out[0] = '\0';
    for (int k = 0; k < m->K && n < cap; k++) {
        int w = snprintf(out + n, cap - n, "%s%d", k ? "," : "", m->layers[k]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

void lw_layer_mix_adamw_step(lw_layer_mix *m, float lr)
{
    lw_adamw_begin_step(&m->opt);
    lw_adamw_update(&m->opt, m->logits, m->grads, 0, (size_t)m->K, lr, 0.0f);
}
