/* The adapters' flat parameter table, its AdamW and safetensors I/O, and the
 * scratch the receiver's forward and backward use for them (adapters.h). */
#include "adapters.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "lora.h"
#include "finite.h"
#include "safetensors.h"
#include "safetensors_write.h"

/* Keeps n_params * 4 bytes and every count far from overflow. */
#define MAX_ADAPTER_PARAMS ((size_t)1 << 32)

/* ---- the table ---------------------------------------------------------- */

lw_status lw_adapter_params_add(lw_adapter_params *p, const char *name, int ndim, int64_t d0, int64_t d1,
                                bool decay, size_t *offset)
{
    if (strlen(name) >= LW_ADAPTER_NAME_MAX)
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: name longer than %d", name, LW_ADAPTER_NAME_MAX - 1);
    if (ndim < 1 || ndim > 2 || d0 <= 0 || d0 > (1 << 24) || (ndim == 2 && (d1 <= 0 || d1 > (1 << 24))))
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: shape [%lld, %lld] (expected 1..2 dims of 1..2^24)", name,
                       (long long)d0, (long long)d1);
    size_t count = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    if (count > MAX_ADAPTER_PARAMS - p->n_params)
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: more than %zu parameters in all", name,
                       MAX_ADAPTER_PARAMS);
    if (p->n_tensors == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        lw_adapter_tensor *t = realloc(p->tensors, (size_t)cap * sizeof *t);
        if (!t) return lw_fail(LW_ERR_NOMEM, "adapter tensor %s: out of memory", name);
        p->tensors = t;
        p->cap = cap;
    }
    lw_adapter_tensor *t = &p->tensors[p->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = p->n_params;
    t->count = count;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->decay = decay;
    p->n_params += count;
    if (offset) *offset = t->offset;
    return LW_OK;
}

lw_status lw_adapter_params_alloc(lw_adapter_params *p)
{
    size_t n = p->n_params ? p->n_params : 1;
    p->params = calloc(n, sizeof(float));
    p->grads = calloc(n, sizeof(float));
    if (!p->params || !p->grads)
        return lw_fail(LW_ERR_NOMEM, "adapter: out of memory for %zu parameters", p->n_params);
    return LW_OK;
}

void lw_adapter_params_free(lw_adapter_params *p)
{
    free(p->params);
    free(p->grads);
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

void lw_adapter_params_zero_grad(lw_adapter_params *p)
{
    if (p->grads) memset(p->grads, 0, p->n_params * sizeof(float));
}

const lw_adapter_tensor *lw_adapter_params_find(const lw_adapter_params *p, const char *name)
{
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return &p->tensors[i];
    return NULL;
}

void lw_adapter_params_adamw(lw_adapter_params *p, lw_adamw *opt, float lr, float weight_decay)
{
    for (int i = 0; i < p->n_tensors; i++) {
        const lw_adapter_tensor *t = &p->tensors[i];
        lw_adamw_update(opt, p->params, p->grads, t->offset, t->count, lr, t->decay ? weight_decay : 0.0f);
    }
}

/* ---- safetensors -------------------------------------------------------- */

/* Writes tensors of base (params or a moment buffer) under prefix + name. */
static lw_status save_buffers(const lw_adapter_params *p, const char *path, const float *const *bufs,
                              const char *const *prefixes, int n_bufs, const lw_st_meta *meta, int n_meta)
{
    int n = p->n_tensors * n_bufs;
    lw_st_tensor *ts = calloc(n ? (size_t)n : 1, sizeof *ts);
    char (*names)[LW_ADAPTER_NAME_MAX + 16] = calloc(n ? (size_t)n : 1, sizeof *names);
    if (!ts || !names) {
        free(ts);
        free(names);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int b = 0; b < n_bufs; b++)
        for (int i = 0; i < p->n_tensors; i++) {
            const lw_adapter_tensor *t = &p->tensors[i];
            int k = b * p->n_tensors + i;
            snprintf(names[k], sizeof names[k], "%s%s", prefixes[b], t->name);
            ts[k] = (lw_st_tensor){.name = names[k], .data = bufs[b] + t->offset, .ndim = t->ndim,
                                   .shape = {t->shape[0], t->shape[1]}};
        }
    lw_status st = lw_safetensors_write(path, ts, n, meta, n_meta);
    free(ts);
    free(names);
    return st;
}

lw_status lw_adapter_params_save(const lw_adapter_params *p, const char *path, const lw_adapter_meta *meta,
                                 int n_meta)
{
    lw_st_meta *m = calloc(n_meta > 0 ? (size_t)n_meta : 1, sizeof *m);
    if (!m) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n_meta; i++) m[i] = (lw_st_meta){meta[i].key, meta[i].value};
    const float *bufs[] = {p->params};
    const char *prefixes[] = {""};
    lw_status st = save_buffers(p, path, bufs, prefixes, 1, m, n_meta);
    free(m);
    return st;
}

/* The tensor prefix+t->name of s, F32 with t's exact shape, or an error. */
static lw_status find_tensor(const lw_safetensors *s, const char *path, const char *prefix,
                             const lw_adapter_tensor *t, const float **data)
{
    char name[LW_ADAPTER_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    const lw_raw_tensor *r = lw_safetensors_find(s, name);
    if (!r) return lw_fail(LW_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    bool same = r->ndim == t->ndim && r->shape[0] == t->shape[0] && (t->ndim == 1 || r->shape[1] == t->shape[1]);
    if (r->type != LW_GGML_F32 || !same || r->nbytes != t->count * sizeof(float))
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: expected F32 [%lld%s%lld]", path, name,
                       (long long)t->shape[0], t->ndim == 2 ? ", " : "", t->ndim == 2 ? (long long)t->shape[1] : 0LL);
    *data = r->data;
    return LW_OK;
}

/* Copies the tensors named prefixes[b] + name into bufs[b], all or nothing. */
static lw_status load_buffers(const lw_adapter_params *p, const char *path, float *const *bufs,
                              const char *const *prefixes, int n_bufs)
{
    lw_safetensors *s = NULL;
    lw_status st = lw_safetensors_open(path, &s);
    if (st) return st;
    size_t expected = (size_t)p->n_tensors * (size_t)n_bufs;
    if (lw_safetensors_n_tensors(s) != expected)
        st = lw_fail(LW_ERR_FORMAT, "%s: %zu tensors; expected %zu (%d named tensors)", path,
                     lw_safetensors_n_tensors(s), expected, p->n_tensors);
    const float **src = calloc(expected ? expected : 1, sizeof *src);
    if (!st && !src) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; !st && i < p->n_tensors; i++)
            st = find_tensor(s, path, prefixes[b], &p->tensors[i], &src[(size_t)b * p->n_tensors + i]);
    /* Adapter files are trained checkpoints (LoRA, deep prefix, prompt
     * tuning and their moments): refuse NaN/inf before anything is copied. */
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; !st && i < p->n_tensors; i++) {
            char name[LW_ADAPTER_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", prefixes[b], p->tensors[i].name);
            st = lw_check_finite(path, name, src[(size_t)b * p->n_tensors + i], p->tensors[i].count);
        }
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; i < p->n_tensors; i++) {
            const lw_adapter_tensor *t = &p->tensors[i];
            memcpy(bufs[b] + t->offset, src[(size_t)b * p->n_tensors + i], t->count * sizeof(float));
        }
    free(src);
    lw_safetensors_close(s);
    return st;
}

lw_status lw_adapter_params_load(lw_adapter_params *p, const char *path)
{
    float *bufs[] = {p->params};
    const char *prefixes[] = {""};
    return load_buffers(p, path, bufs, prefixes, 1);
}

lw_status lw_adapter_params_save_adamw(const lw_adapter_params *p, const lw_adamw *opt, const char *path)
{
    if (opt->n != p->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu moments for %zu parameters", path, opt->n,
                       p->n_params);
    char step[32];
    snprintf(step, sizeof step, "%ld", opt->step);
    lw_st_meta meta[] = {{"adam_step", step}};
    const float *bufs[] = {opt->m, opt->v};
    const char *prefixes[] = {"adam_m.", "adam_v."};
    return save_buffers(p, path, bufs, prefixes, 2, meta, 1);
}

lw_status lw_adapter_params_load_adamw(const lw_adapter_params *p, lw_adamw *opt, const char *path)
{
    if (opt->n != p->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu moments for %zu parameters", path, opt->n,
                       p->n_params);
    char *text = NULL;
    lw_status st = lw_adapter_read_meta(path, "adam_step", &text);
    if (st) return st;
    char *end = NULL;
    long step = text ? strtol(text, &end, 10) : -1;
    bool ok = text && end != text && *end == '\0' && step >= 0;
    free(text);
    if (!ok) return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.adam_step: expected a non-negative integer", path);
    /* moments into copies first, so a bad file leaves opt as it was */
    size_t n = p->n_params ? p->n_params : 1;
    float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    if (!m || !v) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    float *bufs[] = {m, v};
    const char *prefixes[] = {"adam_m.", "adam_v."};
    if (!st) st = load_buffers(p, path, bufs, prefixes, 2);
    if (!st) {
        memcpy(opt->m, m, p->n_params * sizeof *m);
        memcpy(opt->v, v, p->n_params * sizeof *v);
        opt->step = step;
    }
    free(m);
    free(v);
    return st;
}

lw_status lw_adapter_read_meta(const char *path, const char *key, char **value)
{
    *value = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open", path);
    unsigned char len8[8];
    uint64_t n = 0;
    lw_status st = LW_OK;
    if (fread(len8, 1, 8, f) != 8) st = lw_fail(LW_ERR_FORMAT, "%s: shorter than a safetensors header", path);
    for (int i = 7; !st && i >= 0; i--) n = n << 8 | len8[i];
    if (!st && (n < 2 || n > (100u << 20))) st = lw_fail(LW_ERR_FORMAT, "%s: header of %llu bytes", path,
                                                        (unsigned long long)n);
    char *buf = st ? NULL : malloc((size_t)n);
    if (!st && !buf) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    if (!st && fread(buf, 1, (size_t)n, f) != n) st = lw_fail(LW_ERR_FORMAT, "%s: header cut short", path);
    fclose(f);
    json_t *root = st ? NULL : json_loadb(buf, (size_t)n, 0, NULL);
    free(buf);
    if (!st && !root) st = lw_fail(LW_ERR_FORMAT, "%s: header is not JSON", path);
    if (!st) {
        json_t *v = json_object_get(json_object_get(root, "__metadata__"), key);
        if (v && !json_is_string(v)) st = lw_fail(LW_ERR_FORMAT, "%s: __metadata__.%s is not a string", path, key);
        else if (v && !(*value = strdup(json_string_value(v)))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    json_decref(root);
    return st;
}

/* ---- the receiver's scratch --------------------------------------------- */

static int imax(int a, int b) { return a > b ? a : b; }

/* s's buffers for calls of max_tokens rows (s's pointers NULL before); false
 * when out of memory, with whatever was allocated left in s to free. */
static bool scratch_buffers(lw_adapter_scratch *s, const lw_model *m, const lw_lora *lora, int prefix_len,
                            int max_tokens)
{
    const lw_model_config *c = &m->cfg;
    s->max_tokens = max_tokens;
    s->kv_rows = prefix_len + max_tokens;
    size_t T = (size_t)max_tokens, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = (size_t)imax(imax(c->hidden, c->ffn), imax(c->n_heads, c->n_kv_heads) * c->head_dim);
    size_t r = lora ? (size_t)lora->cfg.rank : 0;
    bool ok = true;
    if (prefix_len > 0) {
        size_t n = (size_t)s->kv_rows * kvd;
        ok = (s->k = calloc(n, sizeof(float))) && (s->v = calloc(n, sizeof(float))) &&
             (s->dk = calloc(n, sizeof(float))) && (s->dv = calloc(n, sizeof(float)));
    }
    if (ok && lora)
        ok = (s->u = calloc(T * r, sizeof(float))) && (s->du = calloc(T * r, sizeof(float))) &&
             (s->xd = calloc(T * wide, sizeof(float))) && (s->y = calloc(T * wide, sizeof(float)));
    return ok;
}

static void scratch_buffers_free(lw_adapter_scratch *s)
{
    float *all[] = {s->k, s->v, s->dk, s->dv, s->u, s->du, s->xd, s->y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

lw_status lw_adapters_init(lw_receiver_adapters *ad, const lw_model *m, int max_tokens, lw_lora *lora,
                           int prefix_len)
{
    memset(ad, 0, sizeof *ad);
    const lw_model_config *c = &m->cfg;
    if (max_tokens <= 0 || max_tokens > (1 << 20) || prefix_len < 0 || prefix_len > 4096)
        return lw_fail(LW_ERR_INVALID, "adapters for %s: %d tokens, prefix %d (expected 1..2^20, 0..4096)", c->name,
                       max_tokens, prefix_len);
    if (lora && lora->n_layers != c->n_layers)
        return lw_fail(LW_ERR_INVALID, "adapters for %s: LoRA built for %d layers, model has %d", c->name,
                       lora->n_layers, c->n_layers);
    lw_adapter_scratch *s = calloc(1, sizeof *s);
    if (!s) return lw_fail(LW_ERR_NOMEM, "adapters for %s: out of memory", c->name);
    ad->scratch = s;
    ad->lora = lora;
    ad->prefix_len = prefix_len;
    if (!scratch_buffers(s, m, lora, prefix_len, max_tokens)) {
        lw_adapters_free(ad);
        return lw_fail(LW_ERR_NOMEM, "adapters for %s: out of memory for %d tokens", c->name, max_tokens);
    }
    return LW_OK;
}

bool lw_adapters_active(const lw_receiver_adapters *ad) { return ad && (ad->lora || ad->prefix_len > 0); }

lw_status lw_adapters_reserve(const lw_receiver_adapters *ad, const lw_model *m, int rows)
{
    lw_adapter_scratch *s = ad->scratch, grown = {0};
    if (!s) return lw_fail(LW_ERR_INVALID, "adapters for %s: not initialised (lw_adapters_init)", m->cfg.name);
    if (rows <= s->max_tokens) return LW_OK;
    if (rows > (1 << 20) || !scratch_buffers(&grown, m, ad->lora, ad->prefix_len, rows)) {
        scratch_buffers_free(&grown);
        return lw_fail(LW_ERR_NOMEM, "adapters for %s: no scratch for %d rows", m->cfg.name, rows);
    }
    scratch_buffers_free(s);
    *s = grown;
    return LW_OK;
}

void lw_adapters_free(lw_receiver_adapters *ad)
{
    lw_adapter_scratch *s = ad->scratch;
    if (s) {
        scratch_buffers_free(s);
        free(s);
    }
    memset(ad, 0, sizeof *ad);
}

lw_status lw_adapters_check(const lw_receiver_adapters *ad, const lw_model *m, int rows, int end,
                            int max_positions)
{
    const lw_model_config *c = &m->cfg;
    const lw_adapter_scratch *s = ad->scratch;
    if (!s) return lw_fail(LW_ERR_INVALID, "adapters for %s: not initialised (lw_adapters_init)", c->name);
    if (ad->lora && (ad->lora->n_layers != c->n_layers || !s->u))
        return lw_fail(LW_ERR_INVALID, "adapters for %s: LoRA not the one lw_adapters_init sized for", c->name);
    if (ad->lora && rows > s->max_tokens)
        return lw_fail(LW_ERR_INVALID, "adapters for %s: %d rows exceed the scratch's %d", c->name, rows,
                       s->max_tokens);
    if (ad->prefix_len < 0 || ad->prefix_len > s->kv_rows - s->max_tokens)
        return lw_fail(LW_ERR_INVALID, "adapters for %s: prefix of %d, scratch sized for %d", c->name,
                       ad->prefix_len, s->kv_rows - s->max_tokens);
    if (ad->prefix_len == 0) return LW_OK;
    if (!ad->prefix_k || !ad->prefix_v)
        return lw_fail(LW_ERR_INVALID, "adapters for %s: prefix of %d without keys/values", c->name,
                       ad->prefix_len);
    if (end > s->max_tokens || (long long)end + ad->prefix_len > max_positions)
        return lw_fail(LW_ERR_INVALID,
                       "adapters for %s: text up to position %d after a prefix of %d needs %d positions "
                       "(the state holds %d, the adapters' scratch %d text positions)", c->name, end,
                       ad->prefix_len, end + ad->prefix_len, max_positions, s->max_tokens);
    return LW_OK;
}
