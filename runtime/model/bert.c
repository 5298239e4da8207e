/* The BERT encoder's loader and forward pass (see bert.h), made of the
 * shared CPU ops: matmul, layernorm, attention (not causal), exact GELU. */
#include "bert.h"
#include "jsonerr.h"
#include "ops.h"
#include "safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- config.json ------------------------------------------------------------ */

static lw_status config_int(const char *path, json_t *root, const char *key, int lo, int hi, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return lw_fail(LW_ERR_FORMAT, "%s: %s: expected an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return LW_OK;
}

/* The keys transformers' BertModel reads; a value it would treat otherwise
 * than this code (another activation, relative positions) is refused. */
static lw_status read_config(const char *path, lw_bert_config *c)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return lw_fail(LW_ERR_FORMAT, "%s:%d: %s", path, err.line, lw_json_file_error(path, &err));
    lw_status st = LW_OK;
    const char *type = json_string_value(json_object_get(root, "model_type"));
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    const char *pos = json_string_value(json_object_get(root, "position_embedding_type"));
    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (!type || strcmp(type, "bert") != 0)
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: model_type is %s, expected bert", path, type ? type : "(missing)");
    else if (!act || strcmp(act, "gelu") != 0)
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: hidden_act is %s; only gelu (the exact, erf form) is implemented",
                     path, act ? act : "(missing)");
    else if (pos && strcmp(pos, "absolute") != 0)
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: position_embedding_type %s is not supported (absolute is)", path, pos);
    else if (json_is_true(json_object_get(root, "is_decoder")) ||
             json_is_true(json_object_get(root, "add_cross_attention")))
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: is_decoder / add_cross_attention: only the bidirectional encoder is "
                     "implemented", path);
    else if (eps && (!json_is_number(eps) || !(json_number_value(eps) > 0) || json_number_value(eps) > 1))
        st = lw_fail(LW_ERR_FORMAT, "%s: layer_norm_eps: expected a number in (0, 1]", path);
    if (!st) st = config_int(path, root, "vocab_size", 1, 1 << 24, &c->vocab);
    if (!st) st = config_int(path, root, "hidden_size", 1, 1 << 16, &c->hidden);
    if (!st) st = config_int(path, root, "num_hidden_layers", 1, 1024, &c->n_layers);
    if (!st) st = config_int(path, root, "num_attention_heads", 1, 1024, &c->n_heads);
    if (!st) st = config_int(path, root, "intermediate_size", 1, 1 << 18, &c->ffn);
    if (!st) st = config_int(path, root, "max_position_embeddings", 1, 1 << 16, &c->max_positions);
    if (!st) st = config_int(path, root, "type_vocab_size", 1, 1 << 10, &c->n_types);
    if (!st && c->hidden % c->n_heads)
        st = lw_fail(LW_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path,
                     c->hidden, c->n_heads);
    c->head_dim = st ? 0 : c->hidden / c->n_heads;
    c->eps = eps ? (float)json_number_value(eps) : 1e-12f;
    json_decref(root);
    return st;
}

/* ---- weights ------------------------------------------------------------------ */

typedef struct {
    const char *path;
    const lw_safetensors *st;
} loader;

/* One tensor, by its transformers name (with or without "bert."), checked
 * against the shape the config implies (cols 0: a vector of rows), as fp32. */
static lw_status load_tensor(const loader *ld, const char *name, int rows, int cols, float **out)
{
    char prefixed[160];
    snprintf(prefixed, sizeof prefixed, "bert.%s", name);
    const lw_raw_tensor *t = lw_safetensors_find(ld->st, name);
    if (!t) t = lw_safetensors_find(ld->st, prefixed);
    if (!t) return lw_fail(LW_ERR_FORMAT, "%s: tensor %s is missing (a BertModel checkpoint has it)", ld->path, name);
    bool ok = cols ? t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols : t->ndim == 1 && t->shape[0] == rows;
    if (!ok) {
        char got[96] = "";
        for (int d = 0; d < t->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        return cols ? lw_fail(LW_ERR_FORMAT, "%s: tensor %s has shape [%s], config.json implies [%d, %d]", ld->path,
                              name, got, rows, cols)
                    : lw_fail(LW_ERR_FORMAT, "%s: tensor %s has shape [%s], config.json implies [%d]", ld->path,
                              name, got, rows);
    }
    float *v = malloc(sizeof(float) * (size_t)t->n_elements);
    if (!v) return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %s", ld->path, name);
    lw_status st = lw_dequantize(t->type, t->data, v, t->n_elements);
    if (st) {
        free(v);
        return lw_fail_wrap(st, "%s: tensor %s", ld->path, name);
    }
    for (int64_t i = 0; i < t->n_elements; i++)
        if (!isfinite(v[i])) {
            free(v);
            return lw_fail(LW_ERR_FORMAT, "%s: tensor %s holds a non-finite value at %lld", ld->path, name,
                           (long long)i);
        }
    *out = v;
    return LW_OK;
}

static lw_status load_layer(const loader *ld, const lw_bert_config *c, int l, lw_bert_layer *w)
{
    const int H = c->hidden, F = c->ffn;
    const struct {
        const char *name;
        float **dst;
        int rows, cols;
    } parts[] = {
        {"attention.self.query.weight", &w->wq, H, H}, {"attention.self.query.bias", &w->bq, H, 0},
        {"attention.self.key.weight", &w->wk, H, H},   {"attention.self.key.bias", &w->bk, H, 0},
        {"attention.self.value.weight", &w->wv, H, H}, {"attention.self.value.bias", &w->bv, H, 0},
        {"attention.output.dense.weight", &w->wo, H, H}, {"attention.output.dense.bias", &w->bo, H, 0},
        {"attention.output.LayerNorm.weight", &w->ln1_w, H, 0}, {"attention.output.LayerNorm.bias", &w->ln1_b, H, 0},
        {"intermediate.dense.weight", &w->w1, F, H},   {"intermediate.dense.bias", &w->b1, F, 0},
        {"output.dense.weight", &w->w2, H, F},         {"output.dense.bias", &w->b2, H, 0},
        {"output.LayerNorm.weight", &w->ln2_w, H, 0},  {"output.LayerNorm.bias", &w->ln2_b, H, 0},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char name[128];
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, parts[i].name);
        lw_status st = load_tensor(ld, name, parts[i].rows, parts[i].cols, parts[i].dst);
        if (st) return st;
    }
    return LW_OK;
}

static lw_status load_weights(const loader *ld, lw_bert *m)
{
    const lw_bert_config *c = &m->cfg;
    lw_status st;
    if ((st = load_tensor(ld, "embeddings.word_embeddings.weight", c->vocab, c->hidden, &m->word))) return st;
    if ((st = load_tensor(ld, "embeddings.position_embeddings.weight", c->max_positions, c->hidden, &m->position)))
        return st;
    if ((st = load_tensor(ld, "embeddings.token_type_embeddings.weight", c->n_types, c->hidden, &m->type))) return st;
    if ((st = load_tensor(ld, "embeddings.LayerNorm.weight", c->hidden, 0, &m->emb_ln_w))) return st;
    if ((st = load_tensor(ld, "embeddings.LayerNorm.bias", c->hidden, 0, &m->emb_ln_b))) return st;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", ld->path);
    for (int l = 0; l < c->n_layers; l++)
        if ((st = load_layer(ld, c, l, &m->layers[l]))) return st;
    return LW_OK;
}

lw_status lw_bert_open(const char *path, lw_bert **out)
{
    *out = NULL;
    struct stat sb;
    bool is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    size_t n = strlen(path);
    char *cfg = malloc(n + 16);
    if (!cfg) return lw_fail(LW_ERR_NOMEM, "opening BERT model %s: out of memory", path);
    if (is_dir) {
        snprintf(cfg, n + 16, "%s/config.json", path);
    } else {
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(cfg, n + 16, "%.*s/config.json", (int)(slash - path), path);
        else snprintf(cfg, n + 16, "config.json");
    }
    lw_bert *m = calloc(1, sizeof *m);
    lw_status st = m ? read_config(cfg, &m->cfg) : lw_fail(LW_ERR_NOMEM, "out of memory");
    free(cfg);
    lw_safetensors *s = NULL;
    if (!st) st = lw_safetensors_open(path, &s);
    if (!st) {
        loader ld = {path, s};
        st = load_weights(&ld, m);
    }
    lw_safetensors_close(s);
    if (st) {
        lw_bert_free(m);
        return lw_fail_wrap(st, "opening BERT model %s", path);
    }
    *out = m;
    return LW_OK;
}

void lw_bert_free(lw_bert *m)
{
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            lw_bert_layer *w = &m->layers[l];
            float *all[] = {w->wq, w->bq, w->wk, w->bk, w->wv, w->bv, w->wo, w->bo,
                            w->ln1_w, w->ln1_b, w->w1, w->b1, w->w2, w->b2, w->ln2_w, w->ln2_b};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
        }
    free(m->layers);
    free(m->word);
    free(m->position);
    free(m->type);
    free(m->emb_ln_w);
    free(m->emb_ln_b);
    free(m);
}

/* ---- forward ------------------------------------------------------------------ */

typedef struct {
    float *q, *k, *v, *kv_k, *kv_v, *ctx, *proj, *ffn, *mean, *rstd, *att;
    int *keys;
} scratch;

static void scratch_free(scratch *s)
{
    float *all[] = {s->q, s->k, s->v, s->kv_k, s->kv_v, s->ctx, s->proj, s->ffn, s->mean, s->rstd, s->att};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(s->keys);
}

static bool scratch_alloc(scratch *s, const lw_bert_config *c, int T)
{
    size_t th = (size_t)T * c->hidden;
    s->q = malloc(sizeof(float) * th);
    s->k = malloc(sizeof(float) * th);
    s->v = malloc(sizeof(float) * th);
    s->kv_k = malloc(sizeof(float) * th);
    s->kv_v = malloc(sizeof(float) * th);
    s->ctx = malloc(sizeof(float) * th);
    s->proj = malloc(sizeof(float) * th);
    s->ffn = malloc(sizeof(float) * (size_t)T * c->ffn * 2);
    s->mean = malloc(sizeof(float) * (size_t)T);
    s->rstd = malloc(sizeof(float) * (size_t)T);
    s->att = malloc(sizeof(float) * (size_t)c->n_heads * T * T);
    s->keys = malloc(sizeof(int) * (size_t)T);
    return s->q && s->k && s->v && s->kv_k && s->kv_v && s->ctx && s->proj && s->ffn && s->mean && s->rstd &&
           s->att && s->keys;
}

/* x = LN(x + delta), in place. */
static void add_norm(float *x, const float *delta, const float *w, const float *b, scratch *s, int T, int H, float eps)
{
    for (size_t i = 0; i < (size_t)T * H; i++) s->proj[i] = x[i] + delta[i];
    layernorm_forward(x, s->mean, s->rstd, s->proj, w, b, T, H, eps);
}

static void layer_forward(const lw_bert_config *c, const lw_bert_layer *w, float *x, int T, int n_keys, scratch *s)
{
    const int H = c->hidden, F = c->ffn, D = c->head_dim;
    matmul_forward(s->q, x, w->wq, w->bq, T, H, H);
    matmul_forward(s->k, x, w->wk, w->bk, T, H, H);
    matmul_forward(s->v, x, w->wv, w->bv, T, H, H);
    /* Padded keys are left out (transformers adds a large negative number to
     * their scores, which softmax turns into exactly 0). */
    for (int j = 0; j < n_keys; j++) {
        memcpy(s->kv_k + (size_t)j * H, s->k + (size_t)s->keys[j] * H, sizeof(float) * H);
        memcpy(s->kv_v + (size_t)j * H, s->v + (size_t)s->keys[j] * H, sizeof(float) * H);
    }
    lw_attention_params p = {.causal = false, .q_offset = 0, .window = 0, .scale = 1.0f / sqrtf((float)D)};
    attention_forward(s->ctx, s->att, s->q, s->kv_k, s->kv_v, T, n_keys, c->n_heads, c->n_heads, D, &p);
    matmul_forward(s->k, s->ctx, w->wo, w->bo, T, H, H);   /* s->k is free again */
    add_norm(x, s->k, w->ln1_w, w->ln1_b, s, T, H, c->eps);
    float *h = s->ffn, *g = s->ffn + (size_t)T * F;
    matmul_forward(h, x, w->w1, w->b1, T, H, F);
    gelu_erf_forward(g, h, T * F);
    matmul_forward(s->k, g, w->w2, w->b2, T, F, H);
    add_norm(x, s->k, w->ln2_w, w->ln2_b, s, T, H, c->eps);
}

lw_status lw_bert_forward(const lw_bert *m, const int *ids, const int *types, const int *mask, int T, float *hidden)
{
    const lw_bert_config *c = &m->cfg;
    const int H = c->hidden;
    if (T < 1 || T > c->max_positions)
        return lw_fail(LW_ERR_INVALID, "BERT forward: %d tokens; the model has positions for 1 to %d", T,
                       c->max_positions);
    int n_keys = 0;
    for (int t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "BERT forward: token %d has id %d, outside the vocabulary of %d", t,
                           ids[t], c->vocab);
        if (types && (types[t] < 0 || types[t] >= c->n_types))
            return lw_fail(LW_ERR_INVALID, "BERT forward: token %d has type %d; the model has %d types", t, types[t],
                           c->n_types);
        if (mask && mask[t] != 0 && mask[t] != 1)
            return lw_fail(LW_ERR_INVALID, "BERT forward: mask[%d] is %d, expected 0 or 1", t, mask[t]);
        n_keys += !mask || mask[t];
    }
    if (!n_keys) return lw_fail(LW_ERR_INVALID, "BERT forward: every one of the %d tokens is masked", T);
    scratch s = {0};
    if (!scratch_alloc(&s, c, T)) {
        scratch_free(&s);
        return lw_fail(LW_ERR_NOMEM, "BERT forward: out of memory for %d tokens", T);
    }
    for (int t = 0, j = 0; t < T; t++)
        if (!mask || mask[t]) s.keys[j++] = t;
    for (int t = 0; t < T; t++) {
        const float *we = m->word + (size_t)ids[t] * H, *pe = m->position + (size_t)t * H;
        const float *te = m->type + (size_t)(types ? types[t] : 0) * H;
        for (int i = 0; i < H; i++) s.proj[(size_t)t * H + i] = we[i] + te[i] + pe[i];   /* transformers' order */
    }
    layernorm_forward(hidden, s.mean, s.rstd, s.proj, m->emb_ln_w, m->emb_ln_b, T, H, c->eps);
    for (int l = 0; l < c->n_layers; l++) layer_forward(c, &m->layers[l], hidden, T, n_keys, &s);
    scratch_free(&s);
    return LW_OK;
}

lw_status lw_bert_mean_pool(const float *hidden, const int *mask, int T, int H, float *pooled)
{
    int n = 0;
    for (int t = 0; t < T; t++) n += !mask || mask[t];
    if (!n) return lw_fail(LW_ERR_INVALID, "BERT mean pool: every one of the %d tokens is masked", T);
    for (int i = 0; i < H; i++) {
        double sum = 0;
        for (int t = 0; t < T; t++)
            if (!mask || mask[t]) sum += hidden[(size_t)t * H + i];
        pooled[i] = (float)(sum / n);
    }
    return LW_OK;
}
