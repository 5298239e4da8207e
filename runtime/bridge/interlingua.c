/* The shared interlingua: the resampler (the bridge's Perceiver) and the
 * readers' adapters. */
#include "interlingua.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

static const float RMS_EPS = 1e-6f;

lw_status lw_il_adapter_create(lw_il_adapter *ad, int d_z, int hidden, int ffn, int M, float embed_rms)
{
    memset(ad, 0, sizeof *ad);
    if (d_z < 1 || hidden < 1 || ffn < 1 || M < 1 || d_z > 65536 || hidden > 65536 || ffn > 262144 || M > 1024 ||
        !(embed_rms > 0.0f))
        return lw_fail(LW_ERR_INVALID, "interlingua adapter: d_z %d, hidden %d, ffn %d, M %d, embed_rms %g out of range",
                       d_z, hidden, ffn, M, (double)embed_rms);
    ad->d_z = d_z, ad->hidden = hidden, ad->ffn = ffn, ad->M = M, ad->embed_rms = embed_rms;
    size_t R = (size_t)hidden, F = (size_t)ffn, Z = (size_t)d_z, n = 0;
    ad->w_in = n, n += R * Z;
    ad->b_in = n, n += R;
    ad->w1 = n, n += F * R;
    ad->b1 = n, n += F;
    ad->w2 = n, n += R * F;
    ad->b2 = n, n += R;
    ad->scale = n, n += 1;
    ad->n_params = n;
    size_t MR = (size_t)M * R, MF = (size_t)M * F;
    ad->params = calloc(n, sizeof(float));
    ad->grads = calloc(n, sizeof(float));
    ad->z = calloc((size_t)M * Z, sizeof(float));
    ad->u = calloc(MR, sizeof(float));
    ad->h1 = calloc(MF, sizeof(float));
    ad->a = calloc(MF, sizeof(float));
    ad->v = calloc(MR, sizeof(float));
    ad->rstd = calloc((size_t)M, sizeof(float));
    ad->du = calloc(MR, sizeof(float));
    ad->dv = calloc(MR, sizeof(float));
    ad->dh = calloc(MF * 2, sizeof(float));
    if (!ad->params || !ad->grads || !ad->z || !ad->u || !ad->h1 || !ad->a || !ad->v || !ad->rstd || !ad->du ||
        !ad->dv || !ad->dh) {
        lw_il_adapter_free(ad);
        return lw_fail(LW_ERR_NOMEM, "interlingua adapter: out of memory for %zu parameters", n);
    }
    return LW_OK;
}

void lw_il_adapter_free(lw_il_adapter *ad)
{
    free(ad->params), free(ad->grads), free(ad->z), free(ad->u), free(ad->h1), free(ad->a), free(ad->v);
    free(ad->rstd), free(ad->du), free(ad->dv), free(ad->dh);
    memset(ad, 0, sizeof *ad);
}

static void fill_normal(float *p, size_t n, double std, lw_rng *rng)
{
    for (size_t i = 0; i < n; i++) p[i] = (float)(std * lw_rng_normal(rng));
}

void lw_il_adapter_init(lw_il_adapter *ad, uint64_t seed)
{
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    size_t R = (size_t)ad->hidden, F = (size_t)ad->ffn, Z = (size_t)ad->d_z;
    memset(ad->params, 0, ad->n_params * sizeof(float));
    /* w_in keeps z's per-coordinate size, so the residual stream starts as
     * a random projection of the latents and the RMS calibration sets its size */
    fill_normal(ad->params + ad->w_in, R * Z, 1.0 / sqrt((double)Z), &rng);
    fill_normal(ad->params + ad->w1, F * R, 0.02, &rng);
    fill_normal(ad->params + ad->w2, R * F, 0.02, &rng);
    ad->params[ad->scale] = ad->embed_rms;
}

void lw_il_adapter_forward(lw_il_adapter *ad, const float *z, float *out)
{
    int M = ad->M, R = ad->hidden, F = ad->ffn, Z = ad->d_z;
    const float *P = ad->params;
    memcpy(ad->z, z, (size_t)M * Z * sizeof(float));
    matmul_forward(ad->u, z, P + ad->w_in, P + ad->b_in, M, Z, R);
    matmul_forward(ad->h1, ad->u, P + ad->w1, P + ad->b1, M, R, F);
    gelu_erf_forward(ad->a, ad->h1, M * F);
    matmul_forward(ad->v, ad->a, P + ad->w2, P + ad->b2, M, F, R);
    float s = P[ad->scale];
    for (int t = 0; t < M; t++) {
        float *v = ad->v + (size_t)t * R, *o = out + (size_t)t * R;
        const float *u = ad->u + (size_t)t * R;
        double ss = 0.0;
        for (int i = 0; i < R; i++) {
            v[i] += u[i];   /* the residual */
            ss += (double)v[i] * v[i];
        }
        float rstd = (float)(1.0 / sqrt(ss / R + RMS_EPS));
        ad->rstd[t] = rstd;
        for (int i = 0; i < R; i++) o[i] = v[i] * rstd * s;
    }
}

void lw_il_adapter_backward(lw_il_adapter *ad, const float *dout, float *dz)
{
    int M = ad->M, R = ad->hidden, F = ad->ffn, Z = ad->d_z;
    const float *P = ad->params;
    float *G = ad->grads, s = P[ad->scale];
    double ds = 0.0;
    for (int t = 0; t < M; t++) {
        const float *v = ad->v + (size_t)t * R, *d = dout + (size_t)t * R;
        float *dv = ad->dv + (size_t)t * R, r = ad->rstd[t];
        double dv_dot = 0.0;
        for (int i = 0; i < R; i++) dv_dot += (double)d[i] * v[i];
        ds += dv_dot * r;
        /* d(v r)/dv = r (I - v v^T r^2 / R) */
        float c = (float)(dv_dot * r * r / R);
        for (int i = 0; i < R; i++) dv[i] = s * r * (d[i] - v[i] * c);
    }
    G[ad->scale] += (float)ds;
    size_t MF = (size_t)M * F;
    float *da = ad->dh, *dh1 = ad->dh + MF;
    memset(ad->dh, 0, 2 * MF * sizeof(float));
    memcpy(ad->du, ad->dv, (size_t)M * R * sizeof(float));   /* the residual path */
    matmul_backward(da, G + ad->w2, G + ad->b2, ad->dv, ad->a, P + ad->w2, M, F, R);
    gelu_erf_backward(dh1, da, ad->h1, M * F);
    matmul_backward(ad->du, G + ad->w1, G + ad->b1, dh1, ad->u, P + ad->w1, M, R, F);
    matmul_backward(dz, G + ad->w_in, G + ad->b_in, ad->du, ad->z, P + ad->w_in, M, Z, R);
}

/* ---- the interlingua ----------------------------------------------------- */

lw_status lw_interlingua_create(lw_interlingua *il, const lw_interlingua_config *cfg)
{
    memset(il, 0, sizeof *il);
    if (cfg->n_readers < 1 || cfg->n_readers > LW_IL_MAX_READERS)
        return lw_fail(LW_ERR_INVALID, "interlingua: %d readers (1..%d)", cfg->n_readers, LW_IL_MAX_READERS);
    if (cfg->feat_dim < 1 || cfg->d_z < 1 || cfg->max_T < 1)
        return lw_fail(LW_ERR_INVALID, "interlingua: feature width %d, d_z %d, max_T %d must be positive",
                       cfg->feat_dim, cfg->d_z, cfg->max_T);
    if (cfg->resampler.kind != LW_BRIDGE_PERCEIVER)
        return lw_fail(LW_ERR_INVALID, "interlingua: the resampler must be a perceiver (learned queries), not %s",
                       lw_bridge_kind_name(cfg->resampler.kind));
    lw_bridge_config rc = cfg->resampler;
    rc.calibration = LW_CALIB_NONE;   /* the adapters calibrate, per reader */
    lw_status st = lw_bridge_create(&il->enc, &rc, cfg->feat_dim, cfg->d_z, 1.0f);
    if (st) return lw_fail_wrap(st, "interlingua: resampler");
    il->max_T = cfg->max_T;
    il->n_readers = cfg->n_readers;
    int M = rc.soft_tokens;
    if (!st) st = lw_bridge_acts_create(&il->enc, cfg->max_T, &il->acts);
    for (int r = 0; !st && r < cfg->n_readers; r++) {
        st = lw_il_adapter_create(&il->readers[r], cfg->d_z, cfg->reader_hidden[r], cfg->adapter_ffn, M,
                                  cfg->reader_embed_rms[r]);
        if (st) st = lw_fail_wrap(st, "interlingua: reader %d", r);
    }
    if (!st && (!(il->z = calloc((size_t)M * cfg->d_z, sizeof(float))) ||
                !(il->dz = calloc((size_t)M * cfg->d_z, sizeof(float)))))
        st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory for %d latents", M);
    if (st) lw_interlingua_free(il);
    return st;
}

void lw_interlingua_free(lw_interlingua *il)
{
    lw_bridge_acts_free(il->acts);
    lw_bridge_free(&il->enc);
    for (int r = 0; r < LW_IL_MAX_READERS; r++)
        if (il->readers[r].params) lw_il_adapter_free(&il->readers[r]);
    free(il->z);
    free(il->dz);
    memset(il, 0, sizeof *il);
}

void lw_interlingua_init(lw_interlingua *il, uint64_t seed)
{
    lw_bridge_init(&il->enc, seed);
    for (int r = 0; r < il->n_readers; r++) lw_il_adapter_init(&il->readers[r], seed + 1 + (uint64_t)r);
}

void lw_interlingua_zero_grad(lw_interlingua *il)
{
    lw_bridge_zero_grad(&il->enc);
    for (int r = 0; r < il->n_readers; r++)
        memset(il->readers[r].grads, 0, il->readers[r].n_params * sizeof(float));
    memset(il->dz, 0, (size_t)lw_interlingua_M(il) * il->enc.receiver_hidden * sizeof(float));
}

lw_status lw_interlingua_encode(lw_interlingua *il, const float *feats, int T, float *z_out)
{
    if (T < 1 || T > il->max_T)
        return lw_fail(LW_ERR_INVALID, "interlingua: %d encoder tokens (1..%d)", T, il->max_T);
    lw_status st = lw_bridge_forward(&il->enc, il->acts, feats, T, il->z);
    if (st) return lw_fail_wrap(st, "interlingua: resampler");
    memset(il->dz, 0, (size_t)lw_interlingua_M(il) * il->enc.receiver_hidden * sizeof(float));
    if (z_out) memcpy(z_out, il->z, (size_t)lw_interlingua_M(il) * il->enc.receiver_hidden * sizeof(float));
    return LW_OK;
}

lw_status lw_interlingua_read(lw_interlingua *il, int r, float *out)
{
    if (r < 0 || r >= il->n_readers) return lw_fail(LW_ERR_INVALID, "interlingua: reader %d of %d", r, il->n_readers);
    lw_il_adapter_forward(&il->readers[r], il->z, out);
    return LW_OK;
}

void lw_interlingua_read_backward(lw_interlingua *il, int r, const float *dsoft)
{
    lw_il_adapter_backward(&il->readers[r], dsoft, il->dz);
}

void lw_interlingua_encode_backward(lw_interlingua *il) { lw_bridge_backward(&il->enc, il->acts, il->dz, NULL); }

lw_status lw_il_optim_init(lw_il_optim *o, const lw_interlingua *il)
{
    memset(o, 0, sizeof *o);
    lw_status st = lw_adamw_init(&o->enc, il->enc.n_params, lw_adamw_defaults());
    for (int r = 0; !st && r < il->n_readers; r++, o->n_readers++)
        st = lw_adamw_init(&o->readers[r], il->readers[r].n_params, lw_adamw_defaults());
    if (st) lw_il_optim_free(o);
    return st;
}

void lw_il_optim_free(lw_il_optim *o)
{
    lw_adamw_free(&o->enc);
    for (int r = 0; r < o->n_readers; r++) lw_adamw_free(&o->readers[r]);
    memset(o, 0, sizeof *o);
}

void lw_interlingua_adamw_step(lw_interlingua *il, lw_il_optim *o, float lr, float weight_decay)
{
    lw_bridge_adamw_step(&il->enc, &o->enc, lr, weight_decay);
    for (int r = 0; r < il->n_readers; r++) {
        lw_il_adapter *ad = &il->readers[r];
        lw_adamw *a = &o->readers[r];
        size_t R = (size_t)ad->hidden, F = (size_t)ad->ffn, Z = (size_t)ad->d_z;
        lw_adamw_begin_step(a);
        lw_adamw_update(a, ad->params, ad->grads, ad->w_in, R * Z, lr, weight_decay);
        lw_adamw_update(a, ad->params, ad->grads, ad->b_in, R, lr, 0.0f);
        lw_adamw_update(a, ad->params, ad->grads, ad->w1, F * R, lr, weight_decay);
        lw_adamw_update(a, ad->params, ad->grads, ad->b1, F, lr, 0.0f);
        lw_adamw_update(a, ad->params, ad->grads, ad->w2, R * F, lr, weight_decay);
        lw_adamw_update(a, ad->params, ad->grads, ad->b2, R, lr, 0.0f);
        lw_adamw_update(a, ad->params, ad->grads, ad->scale, 1, lr, 0.0f);
    }
}

double lw_interlingua_clip_grads(lw_interlingua *il, float max_norm)
{
    double ss = 0.0;
    for (int i = 0; i < il->enc.n_tensors; i++) {
        const lw_bridge_tensor *t = &il->enc.tensors[i];
        if (!t->trainable) continue;
        double n = lw_grad_norm(il->enc.grads + t->offset, t->count);
        ss += n * n;
    }
    for (int r = 0; r < il->n_readers; r++) {
        double n = lw_grad_norm(il->readers[r].grads, il->readers[r].n_params);
        ss += n * n;
    }
    double norm = sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < il->enc.n_params; i++) il->enc.grads[i] *= f;
        for (int r = 0; r < il->n_readers; r++)
            for (size_t i = 0; i < il->readers[r].n_params; i++) il->readers[r].grads[i] *= f;
    }
    return norm;
}

lw_il_payload lw_interlingua_payload(int M, int d_z, size_t text_bytes, int prompt_tokens)
{
    lw_il_payload p;
    size_t n = (size_t)M * (size_t)d_z;
    p.fp32_bytes = n * 4;
    p.bf16_bytes = n * 2;
    p.text_bytes = text_bytes;
    p.ratio_fp32 = p.fp32_bytes ? (double)text_bytes / (double)p.fp32_bytes : 0.0;
    p.ratio_bf16 = p.bf16_bytes ? (double)text_bytes / (double)p.bf16_bytes : 0.0;
    p.compression = M > 0 ? (double)prompt_tokens / M : 0.0;
    return p;
}
