/* The adapters' flat parameter table and its AdamW, and the scratch the
 * receiver's forward and backward use for them (adapters.h). The table's
 * safetensors form is adapter_file.c. */
#include "adapters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

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
