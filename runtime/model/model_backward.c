/* Backward through the frozen model to its input embeddings: the gradient
 * the bridge's soft tokens receive. No weight gradients are formed (every
 * dw is NULL); only the activation gradients flow, block by block in
 * reverse: the model's plan (plan.h) walked backward (plan_cpu.c). It reads the
 * activations lw_forward kept with save_acts and the K cache (keys after
 * qk-norm and RoPE, as attention saw them).
 *
 * The forward may have started at position C > 0 over a cache that already
 * held C positions (a prompt head that every example shares, computed
 * once): its rows attended to those keys, which backward holds constant, so
 * their gradients are dropped. That is exact only when nothing trained lies
 * upstream of the cached rows, so it is refused with adapters. The forward
 * may also have run segments (several examples after one cached head, each
 * seeing the head and its own rows): each segment's attention goes back on
 * its own.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapters.h"
#include "backward_scratch.h"
#include "lora.h"
#include "ops.h"
#include "plan_cpu.h"


/* ---- scratch -------------------------------------------------------------- */

static float *fbuf(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

lw_status lw_backward_scratch_alloc(const lw_model *m, int max_tokens, lw_backward_scratch **out)
{
    *out = NULL;
    const lw_model_config *c = &m->cfg;
    if (max_tokens <= 0 || max_tokens > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "model %s: backward scratch for %d tokens (expected 1..%d)", c->name,
                       max_tokens, 1 << 20);
    lw_backward_scratch *g = calloc(1, sizeof *g);
    if (!g) return lw_fail(LW_ERR_NOMEM, "model %s: out of memory for backward scratch", c->name);
    g->max_tokens = max_tokens;
    g->hidden = c->hidden;
    g->qd = c->n_heads * c->head_dim;
    g->kvd = c->n_kv_heads * c->head_dim;
    g->ffn = c->ffn;
    g->vocab = c->vocab;
    size_t T = (size_t)max_tokens, kvd = (size_t)g->kvd;
    bool ok = true;
    g->pos = calloc(T, sizeof *g->pos);
    g->rows = calloc(T, sizeof *g->rows);
    if (!g->pos || !g->rows) ok = false;
    /* the gradient slots: one arena at the plan's offsets (slots whose lifetimes in the reverse walk
     * do not meet share bytes) */
    lw_plan plan;
    lw_plan_lower(c, &plan);
    lw_status st = lw_plan_grad_layout(&plan, max_tokens, &g->memory);
    if (st) {
        lw_backward_scratch_free(g);
        return lw_fail_wrap(st, "model %s: backward scratch", c->name);
    }
    g->arena = ok ? calloc(g->memory.bytes ? g->memory.bytes : 1, 1) : NULL;
    if (!g->arena) ok = false;
    float **field[LW_GRAD_COUNT] = {[LW_GRAD_DX] = &g->dx, [LW_GRAD_DXF] = &g->dxf, [LW_GRAD_DBR] = &g->dbr,
                                    [LW_GRAD_DLN] = &g->dln, [LW_GRAD_DAO] = &g->dao, [LW_GRAD_DQ] = &g->dq,
                                    [LW_GRAD_DQ_PRE] = &g->dq_pre, [LW_GRAD_DK] = &g->dk,
                                    [LW_GRAD_DK_PRE] = &g->dk_pre, [LW_GRAD_DV] = &g->dv,
                                    [LW_GRAD_DGATE] = &g->dgate, [LW_GRAD_DUP] = &g->dup, [LW_GRAD_DHID] = &g->dhid};
    for (int i = 1; ok && i < LW_GRAD_COUNT; i++) {
        const lw_plan_buffer *b = &g->memory.grads[i];
        *field[i] = b->where == LW_PLAN_MEM_NONE ? NULL : (float *)(void *)((char *)g->arena + b->offset);
    }
    g->seg_k = fbuf(T * kvd, &ok);
    g->seg_v = fbuf(T * kvd, &ok);
    g->seg_dk = fbuf(T * kvd, &ok);
    g->seg_dv = fbuf(T * kvd, &ok);
    if (!ok) {
        lw_backward_scratch_free(g);
        return lw_fail(LW_ERR_NOMEM, "model %s: out of memory for backward scratch of %d tokens", c->name,
                       max_tokens);
    }
    *out = g;
    return LW_OK;
}

void lw_backward_scratch_free(lw_backward_scratch *g)
{
    if (!g) return;
    float *all[] = {g->arena, g->seg_k, g->seg_v, g->seg_dk, g->seg_dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(g->pos);
    free(g->rows);
    free(g);
}

/* What backward needs of the last forward and of the scratch. */
static lw_status check_ready(const lw_model *m, const lw_state *s, const lw_backward_scratch *g)
{
    const lw_model_config *c = &m->cfg;
    if (!s->save_acts || s->acts_count != c->n_layers)
        return lw_fail(LW_ERR_INVALID,
                       "backward %s: the state keeps no activations (allocate it with save_acts = true)", c->name);
    int cached = s->last_n_segments ? s->last_pos0 : s->last_pos0 + s->last_T;   /* segments' K/V are scratch */
    if (s->last_T <= 0 || !s->last_complete || s->n_cached != cached)
        return lw_fail(LW_ERR_INVALID,
                       "backward %s: the last forward must run all blocks over its rows "
                       "(last call: %d rows at position %d, %d positions cached; logits requested?)",
                       c->name, s->last_T, s->last_pos0, s->n_cached);
    if (!g)
        return lw_fail(LW_ERR_INVALID, "backward %s: no scratch (lw_backward_scratch_alloc)", c->name);
    if (g->hidden != c->hidden || g->qd != c->n_heads * c->head_dim || g->kvd != c->n_kv_heads * c->head_dim ||
        g->ffn != c->ffn || g->vocab != c->vocab)
        return lw_fail(LW_ERR_INVALID, "backward %s: scratch was allocated for another model (hidden %d, ffn %d)",
                       c->name, g->hidden, g->ffn);
    if (s->last_pos0 + s->last_T > g->max_tokens)
        return lw_fail(LW_ERR_INVALID, "backward %s: %d rows after %d cached positions exceed the scratch's %d",
                       c->name, s->last_T, s->last_pos0, g->max_tokens);
    return LW_OK;
}

/* The model's plan (plan.h) walked in reverse by the CPU executor. */
static lw_status backward(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const int *rows, int n_rows,
                          const float *dl, bool dense, float *d_embeds, const lw_receiver_adapters *ad)
{
    lw_plan plan;
    lw_plan_lower(&m->cfg, &plan);
    lw_status st = lw_plan_cpu_backward(&plan, m, s, g, rows, n_rows, dl, dense, d_embeds, ad);
    return st ? lw_fail_wrap(st, "backward %s", m->cfg.name) : LW_OK;
}

lw_status lw_model_backward(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const float *dlogits,
                            float *d_embeds)
{
    lw_status st = check_ready(m, s, g);
    if (st) return st;
    int V = m->cfg.vocab, n_rows = 0;
    for (int t = 0; t < s->last_T; t++) {
        const float *row = dlogits + (size_t)t * V;
        int i = 0;
        while (i < V && row[i] == 0.0f) i++;
        if (i < V) g->rows[n_rows++] = t;
    }
    return backward(m, s, g, g->rows, n_rows, dlogits, true, d_embeds, NULL);
}

lw_status lw_model_backward_rows(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const int *rows,
                                 int n_rows, const float *dlogits_rows, float *d_embeds)
{
    return lw_model_backward_adapted(m, s, g, NULL, rows, n_rows, dlogits_rows, d_embeds);
}

lw_status lw_model_backward_adapted(const lw_model *m, const lw_state *s, lw_backward_scratch *g,
                                    const lw_receiver_adapters *ad, const int *rows, int n_rows,
                                    const float *dlogits_rows, float *d_embeds)
{
    lw_status st = check_ready(m, s, g);
    if (st) return st;
    if (n_rows < 0 || n_rows > s->last_T)
        return lw_fail(LW_ERR_INVALID, "backward %s: %d loss rows for %d rows", m->cfg.name, n_rows, s->last_T);
    for (int i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= s->last_T || (i > 0 && rows[i] <= rows[i - 1]))
            return lw_fail(LW_ERR_INVALID,
                           "backward %s: loss row %d at index %d (rows must increase, within 0..%d)",
                           m->cfg.name, rows[i], i, s->last_T - 1);
    if (ad && (st = lw_adapters_check(ad, m, s->last_T, s->last_T, s->max_tokens))) return st;
    if (ad && ad->prefix_len > 0 && s->last_n_segments > 0 &&
        ((ad->prefix_segments && ad->prefix_segments < s->last_n_segments) ||
         ad->prefix_len + s->last_pos0 + s->last_T > g->max_tokens))
        return lw_fail(LW_ERR_INVALID, "backward %s: %d segments after a deep prefix of %d (a prefix per segment "
                       "or one for all needed, have %d; %d positions, the scratch holds %d)", m->cfg.name,
                       s->last_n_segments, ad->prefix_len, ad->prefix_segments,
                       ad->prefix_len + s->last_pos0 + s->last_T, g->max_tokens);
    if (s->last_pos0 > 0 && lw_adapters_active(ad))
        return lw_fail(LW_ERR_INVALID, "backward %s: the forward started after %d cached positions, which "
                       "adapters would need gradients for (run from position 0)", m->cfg.name, s->last_pos0);
    if (ad && ad->lora && ad->lora->merged)
        return lw_fail(LW_ERR_INVALID, "backward %s: the LoRA is merged into the weights (unmerge to train it)",
                       m->cfg.name);
    return backward(m, s, g, rows, n_rows, dlogits_rows, false, d_embeds, ad);
}
