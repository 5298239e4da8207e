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

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

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

float **lw_layer_acts_slot(lw_layer_acts *a, lw_plan_slot s)
{
    switch (s) {
    case LW_SLOT_X_IN: return &a->x_in;
    case LW_SLOT_XN: return &a->xn;
    case LW_SLOT_RSTD_ATTN: return &a->rstd_attn;
    case LW_SLOT_QKV: return &a->qkv;
    case LW_SLOT_Q: return &a->q;
    case LW_SLOT_K: return &a->k;
    case LW_SLOT_V: return &a->v;
    case LW_SLOT_Q_ROPE: return &a->q_rope;
    case LW_SLOT_RSTD_Q: return &a->rstd_q;
    case LW_SLOT_RSTD_K: return &a->rstd_k;
    case LW_SLOT_ATT: return &a->att;
    case LW_SLOT_AO: return &a->ao;
    case LW_SLOT_PROJ: return &a->proj;
    case LW_SLOT_PROJ_N: return &a->proj_n;
    case LW_SLOT_RSTD_POST_ATTN: return &a->rstd_post_attn;
    case LW_SLOT_X_MID: return &a->x_mid;
    case LW_SLOT_FN: return &a->fn;
    case LW_SLOT_RSTD_FFN: return &a->rstd_ffn;
    case LW_SLOT_GATE_UP: return &a->gate_up;
    case LW_SLOT_GATE: return &a->gate;
    case LW_SLOT_UP: return &a->up;
    case LW_SLOT_HID: return &a->hid;
    case LW_SLOT_DOWN: return &a->down;
    case LW_SLOT_DOWN_N: return &a->down_n;
    case LW_SLOT_RSTD_POST_FFN: return &a->rstd_post_ffn;
    default: return NULL;
    }
}

/* Slot s of layer copy i in the arena, or NULL where the plan stores none
 * (a slot the config does not use; x_in and x_mid without save_acts). */
static float *in_arena(float *arena, const lw_plan_memory *mem, lw_plan_slot s, int i)
{
    const lw_plan_buffer *b = &mem->slots[s];
    if (!b->elems || (b->where != LW_PLAN_MEM_PINNED && b->where != LW_PLAN_MEM_SHARED &&
                      b->where != LW_PLAN_MEM_LAYER))
        return NULL;
    uint64_t off = b->offset + (b->where == LW_PLAN_MEM_LAYER ? (uint64_t)i * mem->layer_bytes : 0);
    return (float *)((char *)arena + off);
}

/* Under ASan the arena is one allocation, so an op that ran past its slot
 * would land in a neighbour unseen; poisoning all but the stored slots' own
 * bytes (every layer copy) keeps the padding and the unused gaps fenced, as
 * separate allocations were. */
#if defined(__SANITIZE_ADDRESS__)
static void fence_arena(float *arena, const lw_plan_memory *mem)
{
    ASAN_POISON_MEMORY_REGION(arena, (size_t)mem->bytes + LW_PLAN_ALIGN);
    for (int s = 1; s < LW_SLOT_COUNT; s++) {
        const lw_plan_buffer *b = &mem->slots[s];
        int copies = b->where == LW_PLAN_MEM_LAYER ? mem->n_layer_copies : 1;
        for (int i = 0; i < copies; i++) {
            float *p = in_arena(arena, mem, (lw_plan_slot)s, i);
            if (p) ASAN_UNPOISON_MEMORY_REGION(p, (size_t)b->elems * sizeof(float));
        }
    }
}
#else
static void fence_arena(float *arena, const lw_plan_memory *mem) { (void)arena, (void)mem; }
#endif

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
    size_t T = (size_t)s->chunk;
    size_t kv = (size_t)c->n_layers * max_tokens * c->n_kv_heads * c->head_dim;
    s->att_rows = save_acts || s->chunk < LW_ATT_ROWS ? s->chunk : LW_ATT_ROWS;
    size_t att_rows = (size_t)s->att_rows;
    bool ok = true;
    /* The activations: one arena laid out by the plan (plan.h), the
     * probabilities sized for att_rows queries over max_tokens keys. */
    lw_plan plan;
    lw_plan_lower(c, &plan);
    lw_plan_shape shape = {.rows = (int)T, .att_rows = (int)att_rows, .kv_len = max_tokens, .training = save_acts};
    lw_status st = lw_plan_memory_layout(&plan, &shape, &s->memory);
    if (st) {
        free(s);
        return lw_fail_wrap(st, "model %s: state of %d tokens", c->name, max_tokens);
    }
    if (s->memory.bytes > SIZE_MAX - LW_PLAN_ALIGN ||
        !(s->arena = aligned_alloc(LW_PLAN_ALIGN, (size_t)s->memory.bytes + LW_PLAN_ALIGN)))
        ok = false;
    else
        memset(s->arena, 0, (size_t)s->memory.bytes), fence_arena(s->arena, &s->memory);
    s->key_cache = fbuf(kv, &ok);
    s->value_cache = fbuf(kv, &ok);
    if (ok) {
        s->x = in_arena(s->arena, &s->memory, LW_SLOT_X, 0);
        s->xf = in_arena(s->arena, &s->memory, LW_SLOT_XF, 0);
        s->rstd_final = in_arena(s->arena, &s->memory, LW_SLOT_RSTD_FINAL, 0);
    }
    s->pos = calloc(T, sizeof(int));
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    s->seg_k = fbuf((size_t)max_tokens * kvd, &ok);
    s->seg_v = fbuf((size_t)max_tokens * kvd, &ok);
    if (save_acts && !(s->last_segment_len = calloc((size_t)max_tokens, sizeof(int)))) ok = false;
    s->acts = calloc((size_t)n_acts, sizeof *s->acts);
    if (!s->pos || !s->acts) ok = false;
    else s->acts_count = n_acts;
    for (int i = 0; ok && i < n_acts; i++)
        for (int slot = 0; slot < LW_SLOT_COUNT; slot++) {
            float **field = lw_layer_acts_slot(&s->acts[i], (lw_plan_slot)slot);
            if (field) *field = in_arena(s->arena, &s->memory, (lw_plan_slot)slot, i);
        }
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
    free(s->last_segment_len);
    free(s->acts);
    free(s->key_cache);
    free(s->value_cache);
#if defined(__SANITIZE_ADDRESS__)
    if (s->arena) ASAN_UNPOISON_MEMORY_REGION(s->arena, (size_t)s->memory.bytes + LW_PLAN_ALIGN);
#endif
    free(s->arena);
    free(s->seg_k);
    free(s->seg_v);
    free(s->pos);
    free(s);
}
