/* The scratch the receiver's forward and backward use for its adapters
 * (adapters.h). The parameter table is adapter_params.c. */
#include "adapters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

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
