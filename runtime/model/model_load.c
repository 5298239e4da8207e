/* Loading a model's weights from the files its config names into an
 * lw_model (model_load.h). */
#include "model_load.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

/* Every loader hands norm gains over as the multiplier (llama.cpp's
 * converter stores Gemma's 1 + w, the safetensors reader adds the 1 to
 * Hugging Face's w: family.h), so only a config whose norm adds the 1
 * itself (rmsnorm_gemma, as a manifest writes Gemma) wants w back. */
static void norm_to_kind(float *w, int n, const lw_model_config *c)
{
    if (c->norm != LW_NORM_RMSNORM_GEMMA) return;
    for (int i = 0; i < n; i++) w[i] -= 1.0f;
}

static lw_status get(const lw_weights *w, const char *name, int64_t d0, int64_t d1, float **out)
{
    return lw_weights_get_f32_shaped(w, name, out, d0, d1);
}

static lw_status get_norm(const lw_weights *w, const lw_model_config *c, const char *name, int n, float **out)
{
    lw_status st = get(w, name, n, 0, out);
    if (st == LW_OK) norm_to_kind(*out, n, c);
    return st;
}

/* Moves k row blocks into one allocation, parts[i] becoming views of it. */
static lw_status fuse_rows(float **parts, const size_t *n, int k, float **fused)
{
    size_t total = 0;
    for (int i = 0; i < k; i++) total += n[i];
    *fused = malloc(total * sizeof(float));
    if (!*fused) {
        for (int i = 0; i < k; i++) free(parts[i]);
        return lw_fail(LW_ERR_NOMEM, "out of memory fusing projections");
    }
    size_t at = 0;
    for (int i = 0; i < k; i++) {
        memcpy(*fused + at, parts[i], n[i] * sizeof(float));
        free(parts[i]);
        parts[i] = *fused + at;
        at += n[i];
    }
    return LW_OK;
}

static lw_status load_layer(const lw_weights *w, const lw_model_config *c, int l, lw_layer_weights *L)
{
    char name[96];
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    lw_status st;
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s ".weight", l), name)
    if ((st = get_norm(w, c, NAME("attn_norm"), H, &L->attn_norm))) return st;
    if ((st = get(w, NAME("attn_q"), qd, H, &L->wq))) return st;
    if ((st = get(w, NAME("attn_k"), kvd, H, &L->wk))) return st;
    if ((st = get(w, NAME("attn_v"), kvd, H, &L->wv))) return st;
    float *qkv[3] = {L->wq, L->wk, L->wv};
    size_t qkv_n[3] = {(size_t)qd * H, (size_t)kvd * H, (size_t)kvd * H};
    L->wq = L->wk = L->wv = NULL;
    if ((st = fuse_rows(qkv, qkv_n, 3, &L->wqkv))) return st;
    L->wq = qkv[0], L->wk = qkv[1], L->wv = qkv[2];
#undef NAME
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s ".bias", l), name)
    if (c->qkv_bias) {
        /* fused like the weights, so one matmul adds all three */
        float *b[3] = {NULL, NULL, NULL};
        size_t b_n[3] = {(size_t)qd, (size_t)kvd, (size_t)kvd};
        if ((st = get(w, NAME("attn_q"), qd, 0, &b[0])) || (st = get(w, NAME("attn_k"), kvd, 0, &b[1])) ||
            (st = get(w, NAME("attn_v"), kvd, 0, &b[2]))) {
            for (int i = 0; i < 3; i++) free(b[i]);
            return st;
        }
        if ((st = fuse_rows(b, b_n, 3, &L->bqkv))) return st;
    }
#undef NAME
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s ".weight", l), name)
    if ((st = get(w, NAME("attn_output"), H, qd, &L->wo))) return st;
    if ((st = get_norm(w, c, NAME("ffn_norm"), H, &L->ffn_norm))) return st;
    if ((st = get(w, NAME("ffn_gate"), F, H, &L->w_gate))) return st;
    if ((st = get(w, NAME("ffn_up"), F, H, &L->w_up))) return st;
    float *gu[2] = {L->w_gate, L->w_up};
    size_t gu_n[2] = {(size_t)F * H, (size_t)F * H};
    L->w_gate = L->w_up = NULL;
    if ((st = fuse_rows(gu, gu_n, 2, &L->w_gate_up))) return st;
    L->w_gate = gu[0], L->w_up = gu[1];
    if ((st = get(w, NAME("ffn_down"), H, F, &L->w_down))) return st;
    if (c->qk_norm) {
        if ((st = get_norm(w, c, NAME("attn_q_norm"), c->head_dim, &L->q_norm))) return st;
        if ((st = get_norm(w, c, NAME("attn_k_norm"), c->head_dim, &L->k_norm))) return st;
    }
    if (c->post_norms) {
        if ((st = get_norm(w, c, NAME("post_attention_norm"), H, &L->post_attn_norm))) return st;
        if ((st = get_norm(w, c, NAME("post_ffw_norm"), H, &L->post_ffn_norm))) return st;
    }
#undef NAME
    return LW_OK;
}

static lw_status load_tensors(const lw_weights *w, lw_model *m)
{
    const lw_model_config *c = &m->cfg;
    lw_status st;
    if ((st = get(w, "token_embd.weight", c->vocab, c->hidden, &m->token_embd))) return st;
    if ((st = get_norm(w, c, "output_norm.weight", c->hidden, &m->output_norm))) return st;
    if (c->tied_embeddings) {
        m->output = m->token_embd;
    } else if ((st = get(w, "output.weight", c->vocab, c->hidden, &m->output))) {
        return st;
    }
    for (int l = 0; l < c->n_layers; l++)
        if ((st = load_layer(w, c, l, &m->layers[l]))) return st;
    return LW_OK;
}

lw_status lw_model_load(const lw_model_config *cfg, lw_model **out)
{
    *out = NULL;
    lw_status st = lw_model_config_check(cfg);
    if (st) return st;
    if (cfg->rope_base <= 0)
        return lw_fail(LW_ERR_INVALID, "model %s: rope_base %g must be > 0", cfg->name, cfg->rope_base);
    lw_model *m = calloc(1, sizeof *m);
    if (!m) return lw_fail(LW_ERR_NOMEM, "model %s: out of memory", cfg->name);
    m->cfg = *cfg;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    m->inv_freq_global = malloc(sizeof(float) * (size_t)(cfg->head_dim / 2));
    m->inv_freq_local = malloc(sizeof(float) * (size_t)(cfg->head_dim / 2));
    if (!m->layers || !m->inv_freq_global || !m->inv_freq_local) {
        lw_model_free(m);
        return lw_fail(LW_ERR_NOMEM, "model %s: out of memory", cfg->name);
    }
    lw_model_set_derived(m);

    lw_weights *w = NULL;
    st = lw_weights_open(cfg->weights_path, cfg->weights_format, &w);
    if (st == LW_OK) {
        st = load_tensors(w, m);
        lw_weights_close(w);
    }
    if (st) {
        lw_model_free(m);
        return lw_fail_wrap(st, "loading model %s", cfg->name);
    }
    *out = m;
    return LW_OK;
}

lw_status lw_model_open(const char *path, lw_weights_format fmt, lw_model **out)
{
    *out = NULL;
    lw_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (strlen(path) >= sizeof cfg.weights_path)
        return lw_fail(LW_ERR_INVALID, "weights path too long: %.64s...", path);
    lw_weights *w = NULL;
    lw_status st = lw_weights_open(path, fmt, &w);
    if (st) return st;
    st = lw_weights_read_config(w, &cfg);
    lw_weights_close(w);
    if (st) return st;
    cfg.weights_format = fmt;
    snprintf(cfg.weights_path, sizeof cfg.weights_path, "%s", path);
    if (!cfg.name[0]) snprintf(cfg.name, sizeof cfg.name, "%s", lw_family_name(cfg.family));
    return lw_model_load(&cfg, out);
}
