/* The bridge: parameter table and init (see bridge.h); forward and backward
 * run its plan (plan/bridge_plan.c lowers every kind, standardisation and
 * calibration included; bridge_exec.c runs it on the CPU). */
#include "bridge.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_exec.h"
#include "rng.h"
#include "thread_pool.h"

static const float INIT_STD = 0.02f;
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

lw_status lw_bridge_create(lw_bridge *b, const lw_bridge_config *cfg, int sender_hidden, int receiver_hidden,
                           float embed_rms)
{
    memset(b, 0, sizeof *b);
    lw_status st = lw_bridge_config_check(cfg, sender_hidden, receiver_hidden);
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
        b->params[b->in_std + c] = std[c] > LW_BRIDGE_MIN_INPUT_STD ? std[c] : LW_BRIDGE_MIN_INPUT_STD;
    }
}

const lw_bridge_tensor *lw_bridge_find(const lw_bridge *b, const char *name)
{
    for (int i = 0; i < b->n_tensors; i++)
        if (strcmp(b->tensors[i].name, name) == 0) return &b->tensors[i];
    return NULL;
}

void lw_bridge_zero_grad(lw_bridge *b) { memset(b->grads, 0, b->n_params * sizeof(float)); }

/* The step in chunks of at most ADAMW_CHUNK parameters of one tensor, over
 * the thread pool: AdamW is elementwise (lw_adamw_update computes each
 * parameter on its own, the same at any offset), so any split gives the
 * bits of the whole loop. A few million parameters are milliseconds. */
enum { ADAMW_CHUNK = 1 << 15 };

typedef struct {
    lw_bridge *b;
    lw_adamw *opt;
    float lr, weight_decay;
} adamw_job;

static size_t adamw_chunks(const lw_bridge_tensor *t)
{
    return t->trainable ? (t->count + ADAMW_CHUNK - 1) / ADAMW_CHUNK : 0;
}

static void adamw_chunk(void *ctx, int k)
{
    const adamw_job *j = ctx;
    size_t left = (size_t)k;
    for (int i = 0; i < j->b->n_tensors; i++) {
        const lw_bridge_tensor *t = &j->b->tensors[i];
        size_t n = adamw_chunks(t);
        if (left >= n) {
            left -= n;
            continue;
        }
        size_t a = left * ADAMW_CHUNK, count = t->count - a < ADAMW_CHUNK ? t->count - a : ADAMW_CHUNK;
        lw_adamw_update(j->opt, j->b->params, j->b->grads, t->offset + a, count, j->lr,
                        t->decay ? j->weight_decay : 0.0f);
        return;
    }
}

void lw_bridge_adamw_step(lw_bridge *b, lw_adamw *opt, float lr, float weight_decay)
{
    lw_adamw_begin_step(opt);
    adamw_job j = {b, opt, lr, weight_decay};
    size_t chunks = 0;
    for (int i = 0; i < b->n_tensors; i++) chunks += adamw_chunks(&b->tensors[i]);
    if (chunks > 1 && chunks <= INT_MAX && lw_threads_get() > 1) {
        lw_parallel_for((int)chunks, adamw_chunk, &j);
        return;
    }
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        if (!t->trainable) continue;
        lw_adamw_update(opt, b->params, b->grads, t->offset, t->count, lr, t->decay ? weight_decay : 0.0f);
    }
}

/* ---- activations -------------------------------------------------------- */

/* Every kind's activations and gradients live in one arena laid out by its
 * plan (plan/bridge_plan.h; run by bridge_exec.c): the input rows, the
 * standardisation, the bridge, the calibration and the soft tokens. */
struct lw_bridge_acts {
    int max_T, T;
    lw_bridge_plan plan;
    lw_bridge_memory mem;
    float *arena;
    float *x, *out;     /* the plan's slots X [T, S] and OUT [M, R] */
    float *dx, *dout;   /* and their gradients */
};

lw_status lw_bridge_acts_create(const lw_bridge *b, int max_T, lw_bridge_acts **out)
{
    *out = NULL;
    if (max_T < 1 || max_T > 65536)
        return lw_fail(LW_ERR_INVALID, "bridge: max_T is %d, expected 1..65536", max_T);
    lw_bridge_acts *a = calloc(1, sizeof *a);
    if (!a) return lw_fail(LW_ERR_NOMEM, "bridge: out of memory for activations");
    a->max_T = max_T;
    /* every forward may be followed by a backward: the training layout */
    lw_status st = lw_bridge_plan_lower(&b->cfg, b->sender_hidden, b->receiver_hidden, &a->plan);
    if (!st) st = lw_bridge_memory_layout(&a->plan, max_T, true, &a->mem);
    if (st) {
        free(a);
        return lw_fail_wrap(st, "bridge: activations for T = %d", max_T);
    }
    a->arena = a->mem.bytes <= SIZE_MAX ? aligned_alloc(LW_PLAN_ALIGN, (size_t)a->mem.bytes) : NULL;
    if (!a->arena) {
        unsigned long long n = (unsigned long long)a->mem.bytes;
        free(a);
        return lw_fail(LW_ERR_NOMEM, "bridge: cannot allocate %llu bytes of activations for T = %d", n, max_T);
    }
    memset(a->arena, 0, (size_t)a->mem.bytes);
    a->x = lw_bridge_exec_slot(&a->mem, a->arena, LW_BS_X, 0);
    a->out = lw_bridge_exec_slot(&a->mem, a->arena, LW_BS_OUT, 0);
    a->dx = lw_bridge_exec_grad(&a->mem, a->arena, LW_BG_DX);
    a->dout = lw_bridge_exec_grad(&a->mem, a->arena, LW_BG_DOUT);
    *out = a;
    return LW_OK;
}

void lw_bridge_acts_free(lw_bridge_acts *a)
{
    if (!a) return;
    free(a->arena);
    free(a);
}

/* ---- forward and backward: the plan ------------------------------------- */

lw_status lw_bridge_forward(const lw_bridge *b, lw_bridge_acts *a, const float *x, int T, float *out)
{
    if (T < 1 || T > a->max_T)
        return lw_fail(LW_ERR_INVALID, "bridge: input has %d rows, expected 1..%d (max_T of the activations)", T,
                       a->max_T);
    size_t MR = (size_t)b->cfg.soft_tokens * b->receiver_hidden;
    a->T = T;
    memcpy(a->x, x, (size_t)T * b->sender_hidden * sizeof(float));
    lw_bridge_exec_forward(b, &a->plan, &a->mem, a->arena, T);
    memcpy(out, a->out, MR * sizeof(float));
    return LW_OK;
}

void lw_bridge_backward(lw_bridge *b, lw_bridge_acts *a, const float *dout, float *dx)
{
    size_t MR = (size_t)b->cfg.soft_tokens * b->receiver_hidden;
    memcpy(a->dout, dout, MR * sizeof(float));
    lw_bridge_exec_backward(b, &a->plan, &a->mem, a->arena, a->T, dx != NULL);
    if (!dx) return;
    for (size_t i = 0, n = (size_t)a->T * b->sender_hidden; i < n; i++) dx[i] += a->dx[i];
}
