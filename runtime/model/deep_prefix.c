/* The deep-prefix generator (deep_prefix.h): soft tokens to per-layer
 * prefix keys and values, forward and backward. */
#include "deep_prefix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_file.h"
#include "ops.h"
#include "rng.h"

#define LW_COMMON_HOST_ONLY   /* the dropout hash, shared with the CUDA kernels */
#include "common.cuh"

#define LN_EPS 1e-5f

static lw_status add(lw_deep_prefix *dp, const char *name, int ndim, int64_t d0, int64_t d1, bool decay,
                     size_t *off)
{
    return lw_adapter_params_add(&dp->p, name, ndim, d0, d1, decay, off);
}

static float *fbuf(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

lw_status lw_deep_prefix_create(lw_deep_prefix *dp, const lw_deep_prefix_config *cfg, const lw_model_config *m)
{
    memset(dp, 0, sizeof *dp);
    if (cfg->length < 1 || cfg->length > 256 || cfg->hidden < 1 || cfg->hidden > 65536 ||
        !(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return lw_fail(LW_ERR_INVALID, "deep prefix for %s: length %d, hidden %d, dropout %g; expected 1..256, "
                       "1..65536, [0, 1)", m->name, cfg->length, cfg->hidden, (double)cfg->dropout);
    if (m->hidden <= 0 || m->n_layers <= 0 || m->n_kv_heads <= 0 || m->head_dim <= 0)
        return lw_fail(LW_ERR_INVALID, "deep prefix for %s: receiver dims missing", m->name);
    dp->cfg = *cfg;
    dp->R = m->hidden;
    dp->n_layers = m->n_layers;
    dp->kvd = m->n_kv_heads * m->head_dim;
    int R = dp->R, d = cfg->hidden, P = cfg->length, L = dp->n_layers;
    dp->key_w = calloc((size_t)L, sizeof *dp->key_w);
    dp->value_w = calloc((size_t)L, sizeof *dp->value_w);
    if (!dp->key_w || !dp->value_w) {
        lw_deep_prefix_free(dp);
        return lw_fail(LW_ERR_NOMEM, "deep prefix for %s: out of memory", m->name);
    }
    lw_status st = LW_OK;
    if (!st) st = add(dp, "norm.weight", 1, R, 0, false, &dp->norm_w);
    if (!st) st = add(dp, "norm.bias", 1, R, 0, false, &dp->norm_b);
    if (!st) st = add(dp, "in_proj.weight", 2, d, R, true, &dp->in_w);
    if (!st) st = add(dp, "in_proj.bias", 1, d, 0, false, &dp->in_b);
    if (!st) st = add(dp, "positions", 2, P, d, true, &dp->pos);
    if (!st) st = add(dp, "mlp.fc1.weight", 2, d, d, true, &dp->fc1_w);
    if (!st) st = add(dp, "mlp.fc1.bias", 1, d, 0, false, &dp->fc1_b);
    if (!st) st = add(dp, "mlp.fc2.weight", 2, d, d, true, &dp->fc2_w);
    if (!st) st = add(dp, "mlp.fc2.bias", 1, d, 0, false, &dp->fc2_b);
    for (int l = 0; !st && l < L; l++) {
        char name[LW_ADAPTER_NAME_MAX];
        snprintf(name, sizeof name, "layers.%d.key.weight", l);
        st = add(dp, name, 2, dp->kvd, d, true, &dp->key_w[l]);
        snprintf(name, sizeof name, "layers.%d.value.weight", l);
        if (!st) st = add(dp, name, 2, dp->kvd, d, true, &dp->value_w[l]);
    }
    if (!st) st = lw_adapter_params_alloc(&dp->p);
    if (st) {
        lw_deep_prefix_free(dp);
        return st;
    }
    bool ok = true;
    size_t Pd = (size_t)P * d, out = (size_t)L * P * dp->kvd;
    dp->pooled = fbuf((size_t)R, &ok);
    dp->n = fbuf((size_t)R, &ok);
    dp->z0 = fbuf(Pd, &ok);
    dp->h1 = fbuf(Pd, &ok);
    dp->h2 = fbuf(Pd, &ok);
    dp->z = fbuf(Pd, &ok);
    dp->zd = fbuf(Pd, &ok);
    dp->keep = fbuf(Pd, &ok);
    dp->k = fbuf(out, &ok);
    dp->v = fbuf(out, &ok);
    dp->dk = fbuf(out, &ok);
    dp->dv = fbuf(out, &ok);
    dp->dz = fbuf(Pd, &ok);
    dp->dz0 = fbuf(Pd, &ok);
    dp->dh = fbuf(Pd, &ok);
    dp->dbase = fbuf((size_t)d, &ok);
    dp->dn = fbuf((size_t)R, &ok);
    dp->dpooled = fbuf((size_t)R, &ok);
    if (!ok) {
        lw_deep_prefix_free(dp);
        return lw_fail(LW_ERR_NOMEM, "deep prefix for %s: out of memory", m->name);
    }
    return LW_OK;
}

void lw_deep_prefix_free(lw_deep_prefix *dp)
{
    float *all[] = {dp->pooled, dp->n, dp->z0, dp->h1, dp->h2, dp->z, dp->zd, dp->keep, dp->k, dp->v,
                    dp->dk, dp->dv, dp->dz, dp->dz0, dp->dh, dp->dbase, dp->dn, dp->dpooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(dp->key_w);
    free(dp->value_w);
    lw_adapter_params_free(&dp->p);
    memset(dp, 0, sizeof *dp);
}

void lw_deep_prefix_init(lw_deep_prefix *dp, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    float *P = dp->p.params;
    for (int i = 0; i < dp->p.n_tensors; i++) {
        const lw_adapter_tensor *t = &dp->p.tensors[i];
        float *x = P + t->offset;
        /* values start at 0: a fresh prefix only takes some attention
         * mass, it adds nothing, so the receiver starts close to itself */
        bool value = strstr(t->name, ".value.weight") != NULL;
        double std = value ? 0.0 : 0.02;
        if (t->ndim == 2)
            for (size_t k = 0; k < t->count; k++) x[k] = (float)(std * lw_rng_normal(&r));
        else
            for (size_t k = 0; k < t->count; k++) x[k] = t->offset == dp->norm_w ? 1.0f : 0.0f;
    }
}

lw_status lw_deep_prefix_forward(lw_deep_prefix *dp, const float *soft, int M, bool training, uint64_t seed)
{
    if (M < 1 || M > (1 << 20)) return lw_fail(LW_ERR_INVALID, "deep prefix: %d soft tokens; expected 1..2^20", M);
    const float *W = dp->p.params;
    int R = dp->R, d = dp->cfg.hidden, P = dp->cfg.length;
    size_t Pd = (size_t)P * d;
    dp->M = M;
    memset(dp->pooled, 0, (size_t)R * sizeof(float));
    for (int m = 0; m < M; m++)
        for (int i = 0; i < R; i++) dp->pooled[i] += soft[(size_t)m * R + i];
    for (int i = 0; i < R; i++) dp->pooled[i] /= (float)M;
    layernorm_forward(dp->n, &dp->ln_mean, &dp->ln_rstd, dp->pooled, W + dp->norm_w, W + dp->norm_b, 1, R, LN_EPS);
    float *base = dp->dbase;   /* in_proj(n) [d]; the buffer is free until backward */
    matmul_forward(base, dp->n, W + dp->in_w, W + dp->in_b, 1, R, d);
    for (int p = 0; p < P; p++)
        for (int j = 0; j < d; j++) dp->z0[(size_t)p * d + j] = base[j] + W[dp->pos + (size_t)p * d + j];
    matmul_forward(dp->h1, dp->z0, W + dp->fc1_w, W + dp->fc1_b, P, d, d);
    gelu_tanh_forward(dp->h2, dp->h1, P * d);
    matmul_forward(dp->z, dp->h2, W + dp->fc2_w, W + dp->fc2_b, P, d, d);
    for (size_t i = 0; i < Pd; i++) dp->z[i] += dp->z0[i];
    float drop = training ? dp->cfg.dropout : 0.0f;
    double cut = lw_dropout_cut(drop);
    for (size_t i = 0; i < Pd; i++) {
        bool keep = drop <= 0.0f || lw_prefix_kept(seed, i, cut);
        dp->keep[i] = keep ? 1.0f / (1.0f - drop) : 0.0f;
        dp->zd[i] = dp->z[i] * dp->keep[i];
    }
    size_t per_layer = (size_t)P * dp->kvd;
    for (int l = 0; l < dp->n_layers; l++) {
        matmul_forward(dp->k + l * per_layer, dp->zd, W + dp->key_w[l], NULL, P, d, dp->kvd);
        matmul_forward(dp->v + l * per_layer, dp->zd, W + dp->value_w[l], NULL, P, d, dp->kvd);
    }
    return LW_OK;
}

void lw_deep_prefix_backward(lw_deep_prefix *dp, float *dsoft)
{
    const float *W = dp->p.params;
    float *G = dp->p.grads;
    int R = dp->R, d = dp->cfg.hidden, P = dp->cfg.length;
    size_t Pd = (size_t)P * d, per_layer = (size_t)P * dp->kvd;
    memset(dp->dz, 0, Pd * sizeof(float));
    for (int l = 0; l < dp->n_layers; l++) {
        matmul_backward(dp->dz, G + dp->key_w[l], NULL, dp->dk + l * per_layer, dp->zd, W + dp->key_w[l], P, d,
                        dp->kvd);
        matmul_backward(dp->dz, G + dp->value_w[l], NULL, dp->dv + l * per_layer, dp->zd, W + dp->value_w[l], P,
                        d, dp->kvd);
    }
    for (size_t i = 0; i < Pd; i++) dp->dz[i] *= dp->keep[i];
    /* z = z0 + fc2(gelu(fc1(z0))): dz0 = dz + the MLP's path */
    memcpy(dp->dz0, dp->dz, Pd * sizeof(float));
    memset(dp->dh, 0, Pd * sizeof(float));
    matmul_backward(dp->dh, G + dp->fc2_w, G + dp->fc2_b, dp->dz, dp->h2, W + dp->fc2_w, P, d, d);
    float *dh1 = dp->dz;   /* dz is consumed */
    memset(dh1, 0, Pd * sizeof(float));
    gelu_tanh_backward(dh1, dp->dh, dp->h1, P * d);
    matmul_backward(dp->dz0, G + dp->fc1_w, G + dp->fc1_b, dh1, dp->z0, W + dp->fc1_w, P, d, d);
    memset(dp->dbase, 0, (size_t)d * sizeof(float));
    for (int p = 0; p < P; p++)
        for (int j = 0; j < d; j++) {
            float g = dp->dz0[(size_t)p * d + j];
            G[dp->pos + (size_t)p * d + j] += g;
            dp->dbase[j] += g;
        }
    memset(dp->dn, 0, (size_t)R * sizeof(float));
    matmul_backward(dp->dn, G + dp->in_w, G + dp->in_b, dp->dbase, dp->n, W + dp->in_w, 1, R, d);
    memset(dp->dpooled, 0, (size_t)R * sizeof(float));
    layernorm_backward(dp->dpooled, G + dp->norm_w, G + dp->norm_b, dp->dn, dp->pooled, W + dp->norm_w,
                       &dp->ln_mean, &dp->ln_rstd, 1, R);
    if (!dsoft) return;
    for (int m = 0; m < dp->M; m++)
        for (int i = 0; i < R; i++) dsoft[(size_t)m * R + i] += dp->dpooled[i] / (float)dp->M;
}

void lw_deep_prefix_zero_grad(lw_deep_prefix *dp)
{
    size_t out = (size_t)dp->n_layers * dp->cfg.length * dp->kvd;
    memset(dp->dk, 0, out * sizeof(float));
    memset(dp->dv, 0, out * sizeof(float));
    lw_adapter_params_zero_grad(&dp->p);
}

void lw_deep_prefix_attach(const lw_deep_prefix *dp, lw_receiver_adapters *ad)
{
    ad->prefix_len = dp->cfg.length;
    ad->prefix_k = dp->k;
    ad->prefix_v = dp->v;
    ad->d_prefix_k = dp->dk;
    ad->d_prefix_v = dp->dv;
}

lw_status lw_deep_prefix_save(const lw_deep_prefix *dp, const char *path)
{
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"length\":%d,\"hidden\":%d,\"dropout\":%.9g,\"layers\":%d,\"kv_dim\":%d}",
             dp->cfg.length, dp->cfg.hidden, (double)dp->cfg.dropout, dp->n_layers, dp->kvd);
    lw_adapter_meta meta[] = {{"format", "pt"}, {"deep_prefix", cfg}};
    return lw_adapter_params_save(&dp->p, path, meta, 2);
}

lw_status lw_deep_prefix_load(lw_deep_prefix *dp, const char *path) { return lw_adapter_params_load(&dp->p, path); }
