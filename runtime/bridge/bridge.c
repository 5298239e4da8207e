/* The bridge: parameter table and init, forward and backward (see bridge.h).
 * The maths lives in the shared ops (ops.h); this file wires them together
 * and keeps the activations backward needs. */
#include "bridge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

static const float LN_EPS = 1e-5f;
static const float OUT_RMS_EPS = 1e-6f;
static const float INIT_STD = 0.02f;
static const float MIN_INPUT_STD = 1e-6f;
static const size_t MAX_PARAMS = (size_t)1 << 31;   /* 8 GiB of fp32: surely a config error */

const char *lw_bridge_kind_name(lw_bridge_kind k)
{
    switch (k) {
    case LW_BRIDGE_PERCEIVER: return "perceiver";
    case LW_BRIDGE_MLP: return "mlp";
    case LW_BRIDGE_LINEAR: return "linear";
    }
    return "?";
}

/* ---- the tensor table --------------------------------------------------- */

typedef struct {
    lw_bridge *b;
    int cap;
    int failed;
} table_builder;

/* Appends a tensor and returns its offset; the table is sized up front. */
static size_t add(table_builder *tb, const char *name, int64_t d0, int64_t d1, lw_bridge_init_kind init, bool decay)
{
    lw_bridge *b = tb->b;
    if (b->n_tensors >= tb->cap) {
        tb->failed = 1;
        return 0;
    }
    lw_bridge_tensor *t = &b->tensors[b->n_tensors];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->count = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->offset = b->n_params;
    t->decay = decay;
    t->trainable = true;
    t->init = init;
    b->n_tensors++;
    b->n_params += t->count;
    if (b->n_params > MAX_PARAMS) tb->failed = 1;
    return t->offset;
}

static size_t add_blk(table_builder *tb, int l, const char *what, int64_t d0, int64_t d1, lw_bridge_init_kind init, bool decay)
{
    char name[LW_BRIDGE_NAME_MAX];
    snprintf(name, sizeof name, "blocks.%d.%s", l, what);
    return add(tb, name, d0, d1, init, decay);
}

static void build_table(table_builder *tb)
{
    lw_bridge *b = tb->b;
    const lw_bridge_config *c = &b->cfg;
    int64_t S = b->sender_hidden, R = b->receiver_hidden, d = c->width, M = c->soft_tokens;
    int64_t F = (int64_t)c->ffn_mult * d;
    b->in_mean = add(tb, "input_norm.mean", S, 0, LW_INIT_ZERO, false);
    b->in_std = add(tb, "input_norm.std", S, 0, LW_INIT_ONE, false);
    for (int i = 0; i < b->n_tensors; i++) b->tensors[i].trainable = false;
    if (c->kind == LW_BRIDGE_PERCEIVER) {
        b->in_w = add(tb, "in_proj.weight", d, S, LW_INIT_NORMAL, true);
        b->in_b = add(tb, "in_proj.bias", d, 0, LW_INIT_ZERO, false);
        b->queries = add(tb, "queries", M, d, LW_INIT_NORMAL, true);
        for (int l = 0; l < c->depth; l++) {
            lw_bridge_block *k = &b->blocks[l];
            k->cross_norm_q_w = add_blk(tb, l, "cross_attn.norm_q.weight", d, 0, LW_INIT_ONE, false);
            k->cross_norm_q_b = add_blk(tb, l, "cross_attn.norm_q.bias", d, 0, LW_INIT_ZERO, false);
            k->cross_norm_kv_w = add_blk(tb, l, "cross_attn.norm_kv.weight", d, 0, LW_INIT_ONE, false);
            k->cross_norm_kv_b = add_blk(tb, l, "cross_attn.norm_kv.bias", d, 0, LW_INIT_ZERO, false);
            k->cross_q = add_blk(tb, l, "cross_attn.q.weight", d, d, LW_INIT_NORMAL, true);
            k->cross_k = add_blk(tb, l, "cross_attn.k.weight", d, d, LW_INIT_NORMAL, true);
            k->cross_v = add_blk(tb, l, "cross_attn.v.weight", d, d, LW_INIT_NORMAL, true);
            k->cross_o = add_blk(tb, l, "cross_attn.o.weight", d, d, LW_INIT_NORMAL, true);
            k->self_norm_w = add_blk(tb, l, "self_attn.norm.weight", d, 0, LW_INIT_ONE, false);
            k->self_norm_b = add_blk(tb, l, "self_attn.norm.bias", d, 0, LW_INIT_ZERO, false);
            k->self_q = add_blk(tb, l, "self_attn.q.weight", d, d, LW_INIT_NORMAL, true);
            k->self_k = add_blk(tb, l, "self_attn.k.weight", d, d, LW_INIT_NORMAL, true);
            k->self_v = add_blk(tb, l, "self_attn.v.weight", d, d, LW_INIT_NORMAL, true);
            k->self_o = add_blk(tb, l, "self_attn.o.weight", d, d, LW_INIT_NORMAL, true);
            k->ffn_norm_w = add_blk(tb, l, "ffn.norm.weight", d, 0, LW_INIT_ONE, false);
            k->ffn_norm_b = add_blk(tb, l, "ffn.norm.bias", d, 0, LW_INIT_ZERO, false);
            k->ffn_fc1_w = add_blk(tb, l, "ffn.fc1.weight", F, d, LW_INIT_NORMAL, true);
            k->ffn_fc1_b = add_blk(tb, l, "ffn.fc1.bias", F, 0, LW_INIT_ZERO, false);
            k->ffn_fc2_w = add_blk(tb, l, "ffn.fc2.weight", d, F, LW_INIT_NORMAL, true);
            k->ffn_fc2_b = add_blk(tb, l, "ffn.fc2.bias", d, 0, LW_INIT_ZERO, false);
        }
        b->final_norm_w = add(tb, "final_norm.weight", d, 0, LW_INIT_ONE, false);
        b->final_norm_b = add(tb, "final_norm.bias", d, 0, LW_INIT_ZERO, false);
        b->out_w = add(tb, "out_proj.weight", R, d, LW_INIT_NORMAL, true);
        b->out_b = add(tb, "out_proj.bias", R, 0, LW_INIT_ZERO, false);
    } else if (c->kind == LW_BRIDGE_MLP) {
        b->in_w = add(tb, "in_proj.weight", d, S, LW_INIT_NORMAL, true);
        b->in_b = add(tb, "in_proj.bias", d, 0, LW_INIT_ZERO, false);
        b->out_w = add(tb, "out_proj.weight", M * R, d, LW_INIT_NORMAL, true);
        b->out_b = add(tb, "out_proj.bias", M * R, 0, LW_INIT_ZERO, false);
    } else {
        b->out_w = add(tb, "out_proj.weight", M * R, S, LW_INIT_NORMAL, true);
        b->out_b = add(tb, "out_proj.bias", M * R, 0, LW_INIT_ZERO, false);
    }
    if (c->calibration == LW_CALIB_RMS) b->out_scale = add(tb, "out_scale", 1, 0, LW_INIT_EMBED_RMS, false);
}

static lw_status check_config(const lw_bridge_config *c, int S, int R)
{
    if (S < 1 || R < 1 || S > (1 << 20) || R > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "bridge: sender_hidden %d and receiver_hidden %d must be 1..2^20", S, R);
    if (c->soft_tokens < 1 || c->soft_tokens > 64)
        return lw_fail(LW_ERR_INVALID, "bridge.soft_tokens is %d, expected 1..64", c->soft_tokens);
    if (c->width < 1 || c->width > (1 << 16))
        return lw_fail(LW_ERR_INVALID, "bridge.width is %d, expected 1..65536", c->width);
    if (c->kind == LW_BRIDGE_PERCEIVER) {
        if (c->depth < 1 || c->depth > 64)
            return lw_fail(LW_ERR_INVALID, "bridge.depth is %d, expected 1..64", c->depth);
        if (c->heads < 1 || c->width % c->heads != 0)
            return lw_fail(LW_ERR_INVALID, "bridge.heads is %d, expected a divisor of width %d", c->heads,
                           c->width);
        if (c->ffn_mult < 1 || c->ffn_mult > 16)
            return lw_fail(LW_ERR_INVALID, "bridge.ffn_mult is %d, expected 1..16", c->ffn_mult);
    }
    return LW_OK;
}

lw_status lw_bridge_create(lw_bridge *b, const lw_bridge_config *cfg, int sender_hidden, int receiver_hidden,
                           float embed_rms)
{
    memset(b, 0, sizeof *b);
    lw_status st = check_config(cfg, sender_hidden, receiver_hidden);
    if (st) return st;
    b->cfg = *cfg;
    b->sender_hidden = sender_hidden;
    b->receiver_hidden = receiver_hidden;
    b->embed_rms = embed_rms;
    int depth = cfg->kind == LW_BRIDGE_PERCEIVER ? cfg->depth : 0;
    table_builder tb = {b, 10 + 20 * depth, 0};
    b->tensors = calloc((size_t)tb.cap, sizeof *b->tensors);
    b->blocks = calloc((size_t)(depth ? depth : 1), sizeof *b->blocks);
    if (!b->tensors || !b->blocks) {
        lw_bridge_free(b);
        return lw_fail(LW_ERR_NOMEM, "bridge: out of memory for the tensor table");
    }
    build_table(&tb);
    if (tb.failed) {
        size_t n = b->n_params;
        lw_bridge_free(b);
        return lw_fail(LW_ERR_INVALID, "bridge: %zu parameters is too many for this config", n);
    }
    b->params = calloc(b->n_params, sizeof(float));
    b->grads = calloc(b->n_params, sizeof(float));
    if (!b->params || !b->grads) {
        size_t n = b->n_params;
        lw_bridge_free(b);
        return lw_fail(LW_ERR_NOMEM, "bridge: cannot allocate %zu parameters", n);
    }
    return LW_OK;
}

void lw_bridge_free(lw_bridge *b)
{
    free(b->params);
    free(b->grads);
    free(b->tensors);
    free(b->blocks);
    memset(b, 0, sizeof *b);
}

void lw_bridge_init(lw_bridge *b, uint64_t seed)
{
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        float *p = b->params + t->offset;
        for (size_t j = 0; j < t->count; j++) {
            switch (t->init) {
            case LW_INIT_NORMAL: p[j] = (float)(INIT_STD * lw_rng_normal(&rng)); break;
            case LW_INIT_ZERO: p[j] = 0.0f; break;
            case LW_INIT_ONE: p[j] = 1.0f; break;
            case LW_INIT_EMBED_RMS: p[j] = b->embed_rms; break;
            }
        }
    }
}

void lw_bridge_set_input_norm(lw_bridge *b, const float *mean, const float *std)
{
    for (int c = 0; c < b->sender_hidden; c++) {
        b->params[b->in_mean + c] = mean[c];
        b->params[b->in_std + c] = std[c] > MIN_INPUT_STD ? std[c] : MIN_INPUT_STD;
    }
}

const lw_bridge_tensor *lw_bridge_find(const lw_bridge *b, const char *name)
{
    for (int i = 0; i < b->n_tensors; i++)
        if (strcmp(b->tensors[i].name, name) == 0) return &b->tensors[i];
    return NULL;
}

void lw_bridge_zero_grad(lw_bridge *b) { memset(b->grads, 0, b->n_params * sizeof(float)); }

void lw_bridge_adamw_step(lw_bridge *b, lw_adamw *opt, float lr, float weight_decay)
{
    lw_adamw_begin_step(opt);
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        if (!t->trainable) continue;
        lw_adamw_update(opt, b->params, b->grads, t->offset, t->count, lr, t->decay ? weight_decay : 0.0f);
    }
}

/* ---- activations -------------------------------------------------------- */

typedef struct {
    float *nq, *nq_mean, *nq_rstd, *nkv, *nkv_mean, *nkv_rstd, *q, *k, *v, *att, *ao, *lat1;   /* cross */
    float *ns, *ns_mean, *ns_rstd, *sq, *sk, *sv, *satt, *sao, *lat2;                         /* self */
    float *nf, *nf_mean, *nf_rstd, *h, *g;                                                     /* ffn */
} block_acts;

struct lw_bridge_acts {
    int max_T, T;
    float *pool;
    float *x;                       /* [T, S] the input, standardised */
    float *ctx;                     /* [T, d] projected sender states */
    float *lat;                     /* [depth+1][M, d] residual stream at block inputs, then the output */
    block_acts *blk;
    float *fn, *fn_mean, *fn_rstd;  /* final LN */
    float *pooled, *ph, *pg;        /* mlp/linear: mean of x, hidden pre/post GELU */
    float *z, *zn, *z_rstd;         /* [M, R] before calibration, normalised, rstd [M] */
    /* backward scratch */
    float *dxs;                     /* [T, S] d(loss)/d(standardised input) */
    float *dlat, *dn, *dao, *dq, *dk, *dv, *dnkv, *dctx, *dh, *dg, *dz, *dzn, *dpooled;
};

/* Hands out consecutive slices of the pool; with pool NULL only counts. */
typedef struct {
    float *base;
    size_t used;
} carver;

static float *carve(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += n;
    return p;
}

static void layout(const lw_bridge *b, lw_bridge_acts *a, carver *c)
{
    size_t T = (size_t)a->max_T, S = (size_t)b->sender_hidden, R = (size_t)b->receiver_hidden;
    size_t M = (size_t)b->cfg.soft_tokens, d = (size_t)b->cfg.width, H = (size_t)b->cfg.heads;
    size_t F = (size_t)b->cfg.ffn_mult * d, TM = T > M ? T : M;
    a->x = carve(c, T * S);
    a->dxs = carve(c, T * S);
    a->z = carve(c, M * R);
    a->zn = carve(c, M * R);
    a->z_rstd = carve(c, M);
    a->dz = carve(c, M * R);
    a->dzn = carve(c, M * R);
    if (b->cfg.kind != LW_BRIDGE_PERCEIVER) {
        a->pooled = carve(c, S);
        a->dpooled = carve(c, S);
        a->ph = carve(c, d);
        a->pg = carve(c, d);
        a->dh = carve(c, d);
        a->dg = carve(c, d);
        return;
    }
    a->ctx = carve(c, T * d);
    a->lat = carve(c, ((size_t)b->cfg.depth + 1) * M * d);
    for (int l = 0; l < b->cfg.depth; l++) {
        block_acts *k = &a->blk[l];
        k->nq = carve(c, M * d), k->nq_mean = carve(c, M), k->nq_rstd = carve(c, M);
        k->nkv = carve(c, T * d), k->nkv_mean = carve(c, T), k->nkv_rstd = carve(c, T);
        k->q = carve(c, M * d), k->k = carve(c, T * d), k->v = carve(c, T * d);
        k->att = carve(c, H * M * T), k->ao = carve(c, M * d), k->lat1 = carve(c, M * d);
        k->ns = carve(c, M * d), k->ns_mean = carve(c, M), k->ns_rstd = carve(c, M);
        k->sq = carve(c, M * d), k->sk = carve(c, M * d), k->sv = carve(c, M * d);
        k->satt = carve(c, H * M * M), k->sao = carve(c, M * d), k->lat2 = carve(c, M * d);
        k->nf = carve(c, M * d), k->nf_mean = carve(c, M), k->nf_rstd = carve(c, M);
        k->h = carve(c, M * F), k->g = carve(c, M * F);
    }
    a->fn = carve(c, M * d), a->fn_mean = carve(c, M), a->fn_rstd = carve(c, M);
    a->dlat = carve(c, M * d), a->dn = carve(c, M * d), a->dao = carve(c, M * d), a->dq = carve(c, M * d);
    a->dk = carve(c, TM * d), a->dv = carve(c, TM * d);
    a->dnkv = carve(c, T * d), a->dctx = carve(c, T * d);
    a->dh = carve(c, M * F), a->dg = carve(c, M * F);
}

lw_status lw_bridge_acts_create(const lw_bridge *b, int max_T, lw_bridge_acts **out)
{
    *out = NULL;
    if (max_T < 1 || max_T > 65536)
        return lw_fail(LW_ERR_INVALID, "bridge: max_T is %d, expected 1..65536", max_T);
    lw_bridge_acts *a = calloc(1, sizeof *a);
    int depth = b->cfg.kind == LW_BRIDGE_PERCEIVER ? b->cfg.depth : 0;
    if (a) a->blk = calloc((size_t)(depth ? depth : 1), sizeof *a->blk);
    if (!a || !a->blk) {
        if (a) free(a->blk);
        free(a);
        return lw_fail(LW_ERR_NOMEM, "bridge: out of memory for activations");
    }
    a->max_T = max_T;
    carver count = {NULL, 0};
    layout(b, a, &count);
    a->pool = calloc(count.used, sizeof(float));
    if (!a->pool) {
        lw_bridge_acts_free(a);
        return lw_fail(LW_ERR_NOMEM, "bridge: cannot allocate %zu floats of activations for T = %d", count.used,
                       max_T);
    }
    carver fill = {a->pool, 0};
    layout(b, a, &fill);
    *out = a;
    return LW_OK;
}

void lw_bridge_acts_free(lw_bridge_acts *a)
{
    if (!a) return;
    free(a->pool);
    free(a->blk);
    free(a);
}

/* ---- forward ------------------------------------------------------------ */

#define P(off) (b->params + (off))
#define G(off) (b->grads + (off))

static lw_attention_params attn_params(const lw_bridge *b)
{
    lw_attention_params p = {false, 0, 0, 1.0f / sqrtf((float)(b->cfg.width / b->cfg.heads))};
    return p;
}

static void add_into(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* lat_out = lat_in + the block's three residual branches. */
static void block_forward(const lw_bridge *b, const lw_bridge_block *o, block_acts *k, const float *ctx,
                          const float *lat_in, float *lat_out, int T)
{
    int M = b->cfg.soft_tokens, d = b->cfg.width, H = b->cfg.heads, D = d / H, F = b->cfg.ffn_mult * d;
    size_t Md = (size_t)M * d;
    lw_attention_params ap = attn_params(b);

    layernorm_forward(k->nq, k->nq_mean, k->nq_rstd, lat_in, P(o->cross_norm_q_w), P(o->cross_norm_q_b), M, d,
                      LN_EPS);
    layernorm_forward(k->nkv, k->nkv_mean, k->nkv_rstd, ctx, P(o->cross_norm_kv_w), P(o->cross_norm_kv_b), T, d,
                      LN_EPS);
    matmul_forward(k->q, k->nq, P(o->cross_q), NULL, M, d, d);
    matmul_forward(k->k, k->nkv, P(o->cross_k), NULL, T, d, d);
    matmul_forward(k->v, k->nkv, P(o->cross_v), NULL, T, d, d);
    attention_forward(k->ao, k->att, k->q, k->k, k->v, M, T, H, H, D, &ap);
    matmul_forward(k->lat1, k->ao, P(o->cross_o), NULL, M, d, d);
    add_into(k->lat1, lat_in, Md);

    layernorm_forward(k->ns, k->ns_mean, k->ns_rstd, k->lat1, P(o->self_norm_w), P(o->self_norm_b), M, d, LN_EPS);
    matmul_forward(k->sq, k->ns, P(o->self_q), NULL, M, d, d);
    matmul_forward(k->sk, k->ns, P(o->self_k), NULL, M, d, d);
    matmul_forward(k->sv, k->ns, P(o->self_v), NULL, M, d, d);
    attention_forward(k->sao, k->satt, k->sq, k->sk, k->sv, M, M, H, H, D, &ap);
    matmul_forward(k->lat2, k->sao, P(o->self_o), NULL, M, d, d);
    add_into(k->lat2, k->lat1, Md);

    layernorm_forward(k->nf, k->nf_mean, k->nf_rstd, k->lat2, P(o->ffn_norm_w), P(o->ffn_norm_b), M, d, LN_EPS);
    matmul_forward(k->h, k->nf, P(o->ffn_fc1_w), P(o->ffn_fc1_b), M, d, F);
    gelu_tanh_forward(k->g, k->h, M * F);
    matmul_forward(lat_out, k->g, P(o->ffn_fc2_w), P(o->ffn_fc2_b), M, F, d);
    add_into(lat_out, k->lat2, Md);
}

static void perceiver_forward(const lw_bridge *b, lw_bridge_acts *a, int T)
{
    int M = b->cfg.soft_tokens, d = b->cfg.width, S = b->sender_hidden, R = b->receiver_hidden;
    size_t Md = (size_t)M * d;
    matmul_forward(a->ctx, a->x, P(b->in_w), P(b->in_b), T, S, d);
    memcpy(a->lat, P(b->queries), Md * sizeof(float));
    for (int l = 0; l < b->cfg.depth; l++)
        block_forward(b, &b->blocks[l], &a->blk[l], a->ctx, a->lat + l * Md, a->lat + (l + 1) * Md, T);
    const float *top = a->lat + (size_t)b->cfg.depth * Md;
    layernorm_forward(a->fn, a->fn_mean, a->fn_rstd, top, P(b->final_norm_w), P(b->final_norm_b), M, d, LN_EPS);
    matmul_forward(a->z, a->fn, P(b->out_w), P(b->out_b), M, d, R);
}

static void mean_rows(float *y, const float *x, int T, int C)
{
    memset(y, 0, (size_t)C * sizeof(float));
    for (int t = 0; t < T; t++) add_into(y, x + (size_t)t * C, (size_t)C);
    for (int c = 0; c < C; c++) y[c] /= (float)T;
}

static void pooled_forward(const lw_bridge *b, lw_bridge_acts *a, int T)
{
    int S = b->sender_hidden, d = b->cfg.width, MR = b->cfg.soft_tokens * b->receiver_hidden;
    mean_rows(a->pooled, a->x, T, S);
    if (b->cfg.kind == LW_BRIDGE_LINEAR) {
        matmul_forward(a->z, a->pooled, P(b->out_w), P(b->out_b), 1, S, MR);
        return;
    }
    matmul_forward(a->ph, a->pooled, P(b->in_w), P(b->in_b), 1, S, d);
    gelu_tanh_forward(a->pg, a->ph, d);
    matmul_forward(a->z, a->pg, P(b->out_w), P(b->out_b), 1, d, MR);
}

/* xs = (x - mean) / std per dimension; a std the checkpoint got wrong
 * (zero, negative, NaN) is floored rather than trusted. */
static void standardise(const lw_bridge *b, float *xs, const float *x, int T)
{
    int S = b->sender_hidden;
    const float *mean = P(b->in_mean), *std = P(b->in_std);
    for (int c = 0; c < S; c++) {
        float sd = std[c] > MIN_INPUT_STD ? std[c] : MIN_INPUT_STD, inv = 1.0f / sd;
        for (int t = 0; t < T; t++) xs[(size_t)t * S + c] = (x[(size_t)t * S + c] - mean[c]) * inv;
    }
}

lw_status lw_bridge_forward(const lw_bridge *b, lw_bridge_acts *a, const float *x, int T, float *out)
{
    if (T < 1 || T > a->max_T)
        return lw_fail(LW_ERR_INVALID, "bridge: input has %d rows, expected 1..%d (max_T of the activations)", T,
                       a->max_T);
    int M = b->cfg.soft_tokens, R = b->receiver_hidden;
    size_t MR = (size_t)M * R;
    a->T = T;
    standardise(b, a->x, x, T);
    if (b->cfg.kind == LW_BRIDGE_PERCEIVER) perceiver_forward(b, a, T);
    else pooled_forward(b, a, T);
    if (b->cfg.calibration == LW_CALIB_RMS) {
        rmsnorm_forward(a->zn, a->z_rstd, a->z, NULL, M, R, OUT_RMS_EPS, LW_NORM_RMSNORM);
        float s = *P(b->out_scale);
        for (size_t i = 0; i < MR; i++) out[i] = a->zn[i] * s;
    } else {
        memcpy(out, a->z, MR * sizeof(float));
    }
    return LW_OK;
}

/* ---- backward ------------------------------------------------------------ */

static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* a->dlat holds d(lat_out) on entry and d(lat_in) on return; d(ctx) is
 * accumulated into a->dctx. Every residual branch adds its input gradient
 * into dlat after the last read of dlat as that branch's output gradient. */
static void block_backward(lw_bridge *b, const lw_bridge_block *o, const block_acts *k, lw_bridge_acts *a,
                           const float *lat_in, int T)
{
    int M = b->cfg.soft_tokens, d = b->cfg.width, H = b->cfg.heads, D = d / H, F = b->cfg.ffn_mult * d;
    size_t Md = (size_t)M * d, Td = (size_t)T * d;
    lw_attention_params ap = attn_params(b);
    float *dlat = a->dlat, *dn = a->dn, *dao = a->dao, *dq = a->dq, *dk = a->dk, *dv = a->dv;

    zero(a->dg, (size_t)M * F), zero(a->dh, (size_t)M * F), zero(dn, Md);
    matmul_backward(a->dg, G(o->ffn_fc2_w), G(o->ffn_fc2_b), dlat, k->g, P(o->ffn_fc2_w), M, F, d);
    gelu_tanh_backward(a->dh, a->dg, k->h, M * F);
    matmul_backward(dn, G(o->ffn_fc1_w), G(o->ffn_fc1_b), a->dh, k->nf, P(o->ffn_fc1_w), M, d, F);
    layernorm_backward(dlat, G(o->ffn_norm_w), G(o->ffn_norm_b), dn, k->lat2, P(o->ffn_norm_w), k->nf_mean,
                       k->nf_rstd, M, d);

    zero(dao, Md), zero(dq, Md), zero(dk, Md), zero(dv, Md), zero(dn, Md);
    matmul_backward(dao, G(o->self_o), NULL, dlat, k->sao, P(o->self_o), M, d, d);
    attention_backward(dq, dk, dv, dao, k->satt, k->sq, k->sk, k->sv, M, M, H, H, D, &ap);
    matmul_backward(dn, G(o->self_q), NULL, dq, k->ns, P(o->self_q), M, d, d);
    matmul_backward(dn, G(o->self_k), NULL, dk, k->ns, P(o->self_k), M, d, d);
    matmul_backward(dn, G(o->self_v), NULL, dv, k->ns, P(o->self_v), M, d, d);
    layernorm_backward(dlat, G(o->self_norm_w), G(o->self_norm_b), dn, k->lat1, P(o->self_norm_w), k->ns_mean,
                       k->ns_rstd, M, d);

    zero(dao, Md), zero(dq, Md), zero(dk, Td), zero(dv, Td), zero(dn, Md), zero(a->dnkv, Td);
    matmul_backward(dao, G(o->cross_o), NULL, dlat, k->ao, P(o->cross_o), M, d, d);
    attention_backward(dq, dk, dv, dao, k->att, k->q, k->k, k->v, M, T, H, H, D, &ap);
    matmul_backward(dn, G(o->cross_q), NULL, dq, k->nq, P(o->cross_q), M, d, d);
    matmul_backward(a->dnkv, G(o->cross_k), NULL, dk, k->nkv, P(o->cross_k), T, d, d);
    matmul_backward(a->dnkv, G(o->cross_v), NULL, dv, k->nkv, P(o->cross_v), T, d, d);
    layernorm_backward(a->dctx, G(o->cross_norm_kv_w), G(o->cross_norm_kv_b), a->dnkv, a->ctx,
                       P(o->cross_norm_kv_w), k->nkv_mean, k->nkv_rstd, T, d);
    layernorm_backward(dlat, G(o->cross_norm_q_w), G(o->cross_norm_q_b), dn, lat_in, P(o->cross_norm_q_w),
                       k->nq_mean, k->nq_rstd, M, d);
}

static void perceiver_backward(lw_bridge *b, lw_bridge_acts *a, float *dxs)
{
    int T = a->T, M = b->cfg.soft_tokens, d = b->cfg.width, S = b->sender_hidden, R = b->receiver_hidden;
    size_t Md = (size_t)M * d;
    zero(a->dn, Md), zero(a->dlat, Md), zero(a->dctx, (size_t)T * d);
    matmul_backward(a->dn, G(b->out_w), G(b->out_b), a->dz, a->fn, P(b->out_w), M, d, R);
    layernorm_backward(a->dlat, G(b->final_norm_w), G(b->final_norm_b), a->dn, a->lat + (size_t)b->cfg.depth * Md,
                       P(b->final_norm_w), a->fn_mean, a->fn_rstd, M, d);
    for (int l = b->cfg.depth - 1; l >= 0; l--)
        block_backward(b, &b->blocks[l], &a->blk[l], a, a->lat + l * Md, T);
    add_into(G(b->queries), a->dlat, Md);
    matmul_backward(dxs, G(b->in_w), G(b->in_b), a->dctx, a->x, P(b->in_w), T, S, d);
}

static void pooled_backward(lw_bridge *b, lw_bridge_acts *a, float *dxs)
{
    int T = a->T, S = b->sender_hidden, d = b->cfg.width, MR = b->cfg.soft_tokens * b->receiver_hidden;
    zero(a->dpooled, (size_t)S);
    if (b->cfg.kind == LW_BRIDGE_LINEAR) {
        matmul_backward(a->dpooled, G(b->out_w), G(b->out_b), a->dz, a->pooled, P(b->out_w), 1, S, MR);
    } else {
        zero(a->dg, (size_t)d), zero(a->dh, (size_t)d);
        matmul_backward(a->dg, G(b->out_w), G(b->out_b), a->dz, a->pg, P(b->out_w), 1, d, MR);
        gelu_tanh_backward(a->dh, a->dg, a->ph, d);
        matmul_backward(a->dpooled, G(b->in_w), G(b->in_b), a->dh, a->pooled, P(b->in_w), 1, S, d);
    }
    if (!dxs) return;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < S; c++) dxs[(size_t)t * S + c] += a->dpooled[c] / (float)T;
}

/* dx += dxs / std: the buffers are constants, so that is all of it. */
static void unstandardise_grad(const lw_bridge *b, float *dx, const float *dxs, int T)
{
    int S = b->sender_hidden;
    const float *std = P(b->in_std);
    for (int c = 0; c < S; c++) {
        float sd = std[c] > MIN_INPUT_STD ? std[c] : MIN_INPUT_STD, inv = 1.0f / sd;
        for (int t = 0; t < T; t++) dx[(size_t)t * S + c] += dxs[(size_t)t * S + c] * inv;
    }
}

void lw_bridge_backward(lw_bridge *b, lw_bridge_acts *a, const float *dout, float *dx)
{
    int M = b->cfg.soft_tokens, R = b->receiver_hidden;
    size_t MR = (size_t)M * R;
    if (b->cfg.calibration == LW_CALIB_RMS) {
        float s = *P(b->out_scale);
        double ds = 0.0;
        for (size_t i = 0; i < MR; i++) {
            ds += (double)dout[i] * a->zn[i];
            a->dzn[i] = dout[i] * s;
        }
        *G(b->out_scale) += (float)ds;
        zero(a->dz, MR);
        rmsnorm_backward(a->dz, NULL, a->dzn, a->z, NULL, a->z_rstd, M, R, LW_NORM_RMSNORM);
    } else {
        memcpy(a->dz, dout, MR * sizeof(float));
    }
    float *dxs = dx ? a->dxs : NULL;
    if (dxs) zero(dxs, (size_t)a->T * b->sender_hidden);
    if (b->cfg.kind == LW_BRIDGE_PERCEIVER) perceiver_backward(b, a, dxs);
    else pooled_backward(b, a, dxs);
    if (dx) unstandardise_grad(b, dx, dxs, a->T);
}
