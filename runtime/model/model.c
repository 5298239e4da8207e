/* An lw_model and its run state: the config's bounds, what the config
 * implies beyond the weights, freeing, and lw_state. Loading the weights
 * from files is model_load.c. */
#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

lw_status lw_model_config_check(const lw_model_config *c)
{
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->ffn <= 0 || c->vocab <= 0)
        return lw_fail(LW_ERR_INVALID,
                       "model %s: hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, ffn %d, vocab %d: "
                       "all must be > 0",
                       c->name, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn, c->vocab);
    if (c->n_heads % c->n_kv_heads != 0)
        return lw_fail(LW_ERR_INVALID, "model %s: %d heads is not a multiple of %d kv heads", c->name,
                       c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return lw_fail(LW_ERR_INVALID, "model %s: head_dim %d must be even for RoPE", c->name, c->head_dim);
    /* Every tensor's element count must fit comfortably in size_t and int rows. */
    const int64_t big = (int64_t)1 << 40;
    if ((int64_t)c->vocab * c->hidden > big || (int64_t)c->ffn * c->hidden > big ||
        (int64_t)c->n_heads * c->head_dim > (1 << 24) || c->n_layers > 4096)
        return lw_fail(LW_ERR_INVALID, "model %s: dimensions too large", c->name);
    if (c->norm_eps < 0 || !isfinite(c->norm_eps))
        return lw_fail(LW_ERR_INVALID, "model %s: norm_eps %g", c->name, c->norm_eps);
    return LW_OK;
}

void lw_model_set_derived(lw_model *m)
{
    const lw_model_config *c = &m->cfg;
    lw_rope_scaling none = {.kind = LW_ROPE_SCALING_NONE};
    float base_local = c->rope_base_local > 0 ? c->rope_base_local : c->rope_base;
    rope_inv_freq(m->inv_freq_global, c->head_dim, c->rope_base, &c->rope_scaling);
    /* Sliding-window layers of Gemma 3 use plain RoPE at their own base. */
    rope_inv_freq(m->inv_freq_local, c->head_dim, base_local,
                  c->sliding_window > 0 ? &none : &c->rope_scaling);
    m->embed_scale = c->scale_embeddings ? sqrtf((float)c->hidden) : 1.0f;
    m->attn_scale = c->query_scale > 0 ? c->query_scale : 1.0f / sqrtf((float)c->head_dim);
}

void lw_model_free(lw_model *m)
{
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            lw_layer_weights *L = &m->layers[l];
            /* wq wk wv and w_gate w_up are views of the fused buffers,
             * except when loading failed between get() and fuse_rows() */
            float *all[] = {L->attn_norm, L->wqkv,   L->bqkv, L->wo,     L->q_norm,      L->k_norm, L->post_attn_norm,
                            L->ffn_norm,  L->w_gate_up, L->w_down, L->post_ffn_norm,
                            L->wqkv ? NULL : L->wq, L->wqkv ? NULL : L->wk, L->wqkv ? NULL : L->wv,
                            L->w_gate_up ? NULL : L->w_gate, L->w_gate_up ? NULL : L->w_up};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
        }
        free(m->layers);
    }
    if (m->output != m->token_embd) free(m->output);
    lw_narrow_weights_free(m->narrow);
    free(m->token_embd);
    free(m->output_norm);
    free(m->inv_freq_global);
    free(m->inv_freq_local);
    free(m);
}

/* ---- run state --------------------------------------------------------- */

/* Allocations of n floats, with n computed in size_t by the caller from
 * dimensions lw_model_config_check and lw_state_alloc bounded. */
static float *fbuf(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

static void acts_alloc(lw_layer_acts *a, const lw_model_config *c, size_t T, size_t att_rows, size_t Tk, bool save,
                       bool *ok)
{
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->ffn;
    /* The residual stream lives in lw_state.x and is updated in place; only
     * saved activations keep copies of it (x_in, x_mid) for backward. The
     * normed, rotated k and v live in the cache. */
    a->x_in = save ? fbuf(T * H, ok) : NULL;
    a->x_mid = save ? fbuf(T * H, ok) : NULL;
    a->xn = fbuf(T * H, ok);
    a->rstd_attn = fbuf(T, ok);
    a->qkv = fbuf(T * (qd + 2 * kvd), ok);
    a->q = fbuf(T * qd, ok);
    a->k = fbuf(T * kvd, ok);
    a->v = fbuf(T * kvd, ok);
    a->q_rope = fbuf(T * qd, ok);
    a->rstd_q = fbuf(T * (size_t)c->n_heads, ok);
    a->rstd_k = fbuf(T * (size_t)c->n_kv_heads, ok);
    a->att = fbuf((size_t)c->n_heads * att_rows * Tk, ok);
    a->ao = fbuf(T * qd, ok);
    a->proj = fbuf(T * H, ok);
    a->proj_n = c->post_norms ? fbuf(T * H, ok) : NULL;
    a->rstd_post_attn = fbuf(T, ok);
    a->fn = fbuf(T * H, ok);
    a->rstd_ffn = fbuf(T, ok);
    a->gate_up = fbuf(T * 2 * F, ok);
    a->gate = fbuf(T * F, ok);
    a->up = fbuf(T * F, ok);
    a->hid = fbuf(T * F, ok);
    a->down = fbuf(T * H, ok);
    a->down_n = c->post_norms ? fbuf(T * H, ok) : NULL;
    a->rstd_post_ffn = fbuf(T, ok);
}

static void acts_free(lw_layer_acts *a)
{
    float *all[] = {a->x_in, a->xn,   a->rstd_attn, a->q,   a->k,    a->v,     a->q_rope,
                    a->rstd_q, a->rstd_k, a->att, a->qkv, a->gate_up, a->ao, a->proj, a->proj_n, a->rstd_post_attn,
                    a->x_mid, a->fn, a->rstd_ffn, a->gate, a->up, a->hid, a->down, a->down_n,
                    a->rstd_post_ffn};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

lw_status lw_state_alloc(const lw_model *m, int max_tokens, bool save_acts, lw_state **out)
{
    *out = NULL;
    const lw_model_config *c = &m->cfg;
    if (max_tokens <= 0 || max_tokens > (1 << 20) || (c->context > 0 && max_tokens > c->context))
        return lw_fail(LW_ERR_INVALID, "model %s: state of %d tokens (context %d)", c->name, max_tokens,
                       c->context);
    if (save_acts && (int64_t)c->n_heads * max_tokens * max_tokens > ((int64_t)1 << 32))
        return lw_fail(LW_ERR_INVALID, "model %s: %d tokens too many to keep attention for backward",
                       c->name, max_tokens);
    lw_state *s = calloc(1, sizeof *s);
    if (!s) return lw_fail(LW_ERR_NOMEM, "model %s: out of memory for state", c->name);
    s->max_tokens = max_tokens;
    s->save_acts = save_acts;
    s->chunk = save_acts || max_tokens < LW_CHUNK_ROWS ? max_tokens : LW_CHUNK_ROWS;
    int n_acts = save_acts ? c->n_layers : 1;
    size_t T = (size_t)s->chunk, H = (size_t)c->hidden;
    size_t kv = (size_t)c->n_layers * max_tokens * c->n_kv_heads * c->head_dim;
    s->att_rows = save_acts || s->chunk < LW_ATT_ROWS ? s->chunk : LW_ATT_ROWS;
    size_t att_rows = (size_t)s->att_rows;
    bool ok = true;
    s->key_cache = fbuf(kv, &ok);
    s->value_cache = fbuf(kv, &ok);
    s->x = fbuf(T * H, &ok);
    s->xf = fbuf(T * H, &ok);
    s->rstd_final = fbuf(T, &ok);
    s->pos = calloc(T, sizeof(int));
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    s->seg_k = fbuf((size_t)max_tokens * kvd, &ok);
    s->seg_v = fbuf((size_t)max_tokens * kvd, &ok);
    if (save_acts && !(s->last_segment_len = calloc((size_t)max_tokens, sizeof(int)))) ok = false;
    s->acts = calloc((size_t)n_acts, sizeof *s->acts);
    if (!s->pos || !s->acts) ok = false;
    else s->acts_count = n_acts;
    for (int i = 0; ok && i < n_acts; i++)
        acts_alloc(&s->acts[i], c, T, att_rows, (size_t)max_tokens, save_acts, &ok);
    if (!ok) {
        lw_state_free(s);
        return lw_fail(LW_ERR_NOMEM, "model %s: out of memory for a state of %d tokens", c->name, max_tokens);
    }
    *out = s;
    return LW_OK;
}

void lw_state_free(lw_state *s)
{
    if (!s) return;
    for (int i = 0; i < s->acts_count; i++) acts_free(&s->acts[i]);
    free(s->last_segment_len);
    free(s->acts);
    free(s->key_cache);
    free(s->value_cache);
    free(s->x);
    free(s->xf);
    free(s->seg_k);
    free(s->seg_v);
    free(s->rstd_final);
    free(s->pos);
    free(s);
}
