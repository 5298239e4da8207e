/* LWC_RANDOM_WEIGHTS: random weights of the manifest's shapes and a byte
 * tokenizer, for timing without the model files (random_weights.h). */
#include "random_weights.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "narrow_weights.h"
#include "rng.h"

/* ---- a random model in memory -------------------------------------------- */

static float *fbuf(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

static lw_status check_random_config(const lw_model_config *c)
{
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn <= 0 || c->vocab <= 0 || c->n_heads % c->n_kv_heads != 0 || c->head_dim % 2 != 0)
        return lw_fail(LW_ERR_INVALID,
                       "random model %s: hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, ffn %d, "
                       "vocab %d: all must be > 0, heads a multiple of kv heads, head_dim even",
                       c->name, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn, c->vocab);
    /* small models only: the weights are drawn one number at a time */
    const int64_t big = (int64_t)1 << 30;
    if ((int64_t)c->vocab * c->hidden > big || (int64_t)c->ffn * c->hidden > big ||
        (int64_t)c->n_heads * c->head_dim > (1 << 20) || c->n_layers > 4096)
        return lw_fail(LW_ERR_INVALID, "random model %s: dimensions too large", c->name);
    if (!(c->rope_base > 0) || c->norm_eps < 0 || !isfinite(c->norm_eps))
        return lw_fail(LW_ERR_INVALID, "random model %s: rope_base %g, norm_eps %g", c->name, c->rope_base,
                       c->norm_eps);
    return LW_OK;
}

/* n draws of normal(0, std), or NULL (and *ok = false). */
static float *rand_normal(lw_rng *r, size_t n, double std, bool *ok)
{
    float *p = fbuf(n, ok);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = (float)(std * lw_rng_normal(r));
    return p;
}

/* A norm gain near 1 in the config's convention (Gemma stores g - 1). */
static float *rand_norm(lw_rng *r, int n, const lw_model_config *c, bool *ok)
{
    float *p = rand_normal(r, (size_t)n, 0.1, ok);
    if (p && c->norm != LW_NORM_RMSNORM_GEMMA)
        for (int i = 0; i < n; i++) p[i] += 1.0f;
    return p;
}

static void rand_layer(lw_rng *r, const lw_model_config *c, lw_layer_weights *L, bool *ok)
{
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->ffn;
    double sH = 1.0 / sqrt((double)H);
    L->attn_norm = rand_norm(r, c->hidden, c, ok);
    /* fused as model_load.c fuses them (wq wk wv are views); same draws as three tensors */
    L->wqkv = rand_normal(r, (qd + 2 * kvd) * H, sH, ok);
    if (L->wqkv) L->wq = L->wqkv, L->wk = L->wq + qd * H, L->wv = L->wk + kvd * H;
    L->wo = rand_normal(r, H * qd, 1.0 / sqrt((double)qd), ok);
    if (c->qk_norm) {
        L->q_norm = rand_norm(r, c->head_dim, c, ok);
        L->k_norm = rand_norm(r, c->head_dim, c, ok);
    }
    if (c->post_norms) {
        L->post_attn_norm = rand_norm(r, c->hidden, c, ok);
        L->post_ffn_norm = rand_norm(r, c->hidden, c, ok);
    }
    L->ffn_norm = rand_norm(r, c->hidden, c, ok);
    L->w_gate_up = rand_normal(r, 2 * F * H, sH, ok);
    if (L->w_gate_up) L->w_gate = L->w_gate_up, L->w_up = L->w_gate + F * H;
    L->w_down = rand_normal(r, H * F, 1.0 / sqrt((double)F), ok);
    /* drawn last, so a config without biases keeps its earlier draws */
    if (c->qkv_bias) L->bqkv = rand_normal(r, qd + 2 * kvd, 0.5, ok);
}

lw_status lw_model_init_random(const lw_model_config *cfg, uint64_t seed, lw_model **out)
{
    *out = NULL;
    lw_status st = check_random_config(cfg);
    if (st) return st;
    const lw_model_config *c = cfg;
    lw_model *m = calloc(1, sizeof *m);
    if (!m) return lw_fail(LW_ERR_NOMEM, "random model %s: out of memory", c->name);
    m->cfg = *cfg;
    bool ok = true;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->inv_freq_global = fbuf((size_t)c->head_dim / 2, &ok);
    m->inv_freq_local = fbuf((size_t)c->head_dim / 2, &ok);
    if (!m->layers) ok = false;
    lw_rng r;
    lw_rng_seed(&r, seed);
    size_t VH = (size_t)c->vocab * c->hidden;
    m->token_embd = rand_normal(&r, VH, 1.0, &ok);
    m->output_norm = rand_norm(&r, c->hidden, c, &ok);
    m->output = c->tied_embeddings ? m->token_embd : rand_normal(&r, VH, 1.0 / sqrt((double)c->hidden), &ok);
    for (int l = 0; ok && l < c->n_layers; l++) rand_layer(&r, c, &m->layers[l], &ok);
    if (!ok) {
        lw_model_free(m);
        return lw_fail(LW_ERR_NOMEM, "random model %s: out of memory", c->name);
    }
    lw_model_set_derived(m);
    *out = m;
    return LW_OK;
}

/* ---- random mode ---------------------------------------------------------- */

static void drop_stop_tokens(lw_model_config *cfg)
{
    cfg->eos_id = -1;
    cfg->n_stop_ids = 0;
}

lw_status lw_random_model(const lw_model_config *cfg, uint64_t seed, lw_model **out)
{
    *out = NULL;
    lw_random_weights_warn();
    /* the two models of a pair get different weights from one seed */
    uint64_t s = lw_fnv1a(lw_fnv1a(LW_FNV_INIT, &seed, sizeof seed), cfg->name, strlen(cfg->name));
    lw_model *m;
    lw_status st = lw_model_init_random(cfg, s, &m);
    if (st) return lw_fail_wrap(st, "LWC_RANDOM_WEIGHTS=%" PRIu64, seed);
    /* unit-normal embeddings give tied logits of std sqrt(hidden); the
     * manifest's embedding RMS brings them to the real model's scale */
    if (cfg->embed_rms > 0 && isfinite(cfg->embed_rms)) {
        float f = cfg->embed_rms / m->embed_scale;
        size_t n = (size_t)cfg->vocab * (size_t)cfg->hidden;
        for (size_t i = 0; i < n; i++) m->token_embd[i] *= f;
    }
    drop_stop_tokens(&m->cfg);
    *out = m;
    return LW_OK;
}

static lw_status load_fp32(const lw_model_config *cfg, lw_model **out)
{
    *out = NULL;
    if (!cfg->load.random_weights) {
        lw_status st = lw_model_load(cfg, out);
        if (!st && cfg->load.ignore_stop) drop_stop_tokens(&(*out)->cfg);
        return st;
    }
    /* the same checks as the files' loader, with its words */
    lw_status st = lw_model_config_check(cfg);
    return st ? st : lw_random_model(cfg, cfg->load.seed, out);
}

lw_status lw_config_load_model(const lw_model_config *cfg, lw_model **out)
{
    lw_status st = load_fp32(cfg, out);
    if (st || cfg->load.dtype == LW_WEIGHTS_F32) return st;
    /* narrowed right after loading: the fp32 matrices go before anything runs */
    if (cfg->load.random_weights && cfg->load.dtype == LW_WEIGHTS_NATIVE)
        st = lw_fail(LW_ERR_INVALID, "--dtype native: %s has random weights, not a file's blocks to keep", cfg->name);
    if (st || (st = lw_model_narrow(*out, cfg->load.dtype, cfg->load.backward))) {
        lw_model_free(*out);
        *out = NULL;
    }
    return st;
}

lw_status lw_config_load_tokenizer(const lw_model_config *cfg, lw_tokenizer **out)
{
    if (cfg->load.random_weights) return lw_byte_tokenizer_load(out);
    return lw_tokenizer_load(cfg->tokenizer_kind, cfg->tokenizer_path, out);
}
