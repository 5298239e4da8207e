/* Backward through the frozen model to its input embeddings: the gradient
 * the bridge's soft tokens receive. No weight gradients are formed (every
 * dw is NULL); only the activation gradients flow, block by block in
 * reverse, mirroring forward.c's block_forward step for step. It reads the
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
#include "lora.h"
#include "ops.h"

struct lw_backward_scratch {
    int max_tokens;
    int hidden, qd, kvd, ffn, vocab;   /* the model it was sized for */
    int *pos;     /* [max_tokens] the positions of the last forward's rows */
    int *rows;    /* [max_tokens] rows that carry a loss */
    float *dx;    /* [T, hidden] gradient of the residual stream */
    float *dxf;   /* [T, hidden] gradient of output_norm(x) */
    float *dbr;   /* [T, hidden] gradient of a branch before its post norm */
    float *dln;   /* [T, hidden] gradient of attn_norm / ffn_norm output */
    float *dao;   /* [T, qd] */
    float *dq, *dq_pre;   /* [T, qd] after / before qk-norm and RoPE */
    float *dk, *dk_pre;   /* [T, kvd] */
    float *dv;            /* [T, kvd] */
    float *dgate, *dup, *dhid;  /* [T, ffn] */
    float *seg_k, *seg_v, *seg_dk, *seg_dv;   /* [max_tokens, kvd]: one segment's keys with the head's */
};

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

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
    size_t T = (size_t)max_tokens, H = (size_t)g->hidden, qd = (size_t)g->qd, kvd = (size_t)g->kvd;
    size_t F = (size_t)g->ffn;
    bool ok = true;
    g->pos = calloc(T, sizeof *g->pos);
    g->rows = calloc(T, sizeof *g->rows);
    if (!g->pos || !g->rows) ok = false;
    g->dx = fbuf(T * H, &ok);
    g->dxf = fbuf(T * H, &ok);
    g->dbr = fbuf(T * H, &ok);
    g->dln = fbuf(T * H, &ok);
    g->dao = fbuf(T * qd, &ok);
    g->dq = fbuf(T * qd, &ok);
    g->dq_pre = fbuf(T * qd, &ok);
    g->dk = fbuf(T * kvd, &ok);
    g->dk_pre = fbuf(T * kvd, &ok);
    g->dv = fbuf(T * kvd, &ok);
    g->dgate = fbuf(T * F, &ok);
    g->dup = fbuf(T * F, &ok);
    g->dhid = fbuf(T * F, &ok);
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
    float *all[] = {g->dx,   g->dxf,  g->dbr,  g->dln,    g->dao,    g->dq,    g->dq_pre,
                    g->dk,   g->dk_pre, g->dv, g->dgate,  g->dup,    g->dhid,  g->seg_k,
                    g->seg_v, g->seg_dk, g->seg_dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(g->pos);
    free(g->rows);
    free(g);
}

/* ---- the blocks in reverse ------------------------------------------------ */

/* g->dx: d(block output) in, d(x_mid) out. LoRA (ad) adds its path
 * beside each adapted projection's. */
static void ffn_backward(const lw_model *m, const lw_layer_acts *a, int l, lw_backward_scratch *g, int T,
                         const lw_receiver_adapters *ad)
{
    const lw_layer_weights *L = &m->layers[l];
    const lw_model_config *c = &m->cfg;
    int H = c->hidden, F = c->ffn;
    size_t nH = (size_t)T * H, nF = (size_t)T * F;
    const float *dbranch = g->dx;  /* the residual passes the gradient to the branch unchanged */
    if (c->post_norms) {
        zero(g->dbr, nH);
        rmsnorm_backward(g->dbr, NULL, g->dx, a->down, L->post_ffn_norm, a->rstd_post_ffn, T, H, c->norm);
        dbranch = g->dbr;
    }
    zero(g->dhid, nF);
    matmul_backward(g->dhid, NULL, NULL, dbranch, a->hid, L->w_down, T, F, H);
    lw_lora_backward(ad, l, LW_LORA_DOWN, a->hid, dbranch, g->dhid, T, g->pos);
    zero(g->dgate, nF);
    zero(g->dup, nF);
    glu_backward(g->dgate, g->dup, g->dhid, a->gate, a->up, T * F, c->activation);
    zero(g->dln, nH);
    matmul_backward(g->dln, NULL, NULL, g->dgate, a->fn, L->w_gate, T, H, F);
    matmul_backward(g->dln, NULL, NULL, g->dup, a->fn, L->w_up, T, H, F);
    lw_lora_backward(ad, l, LW_LORA_GATE, a->fn, g->dgate, g->dln, T, g->pos);
    lw_lora_backward(ad, l, LW_LORA_UP, a->fn, g->dup, g->dln, T, g->pos);
    /* dbranch (possibly g->dx itself) is consumed: now add the norm's path to the residual's */
    rmsnorm_backward(g->dx, NULL, g->dln, a->x_mid, L->ffn_norm, a->rstd_ffn, T, H, c->norm);
}

/* Segments' attention backward: segment i's rows saw its own deep prefix
 * (if any), the C cached keys and its own (which the forward wrote to the
 * cache after the other segments'), with probabilities [Hq, len, P + C + len]
 * after the previous segment's. The prefix's gradients are added to the
 * segment's own d_prefix_k / d_prefix_v (adapters.h prefix_segments). */
static void segments_backward(const lw_model *m, const lw_state *s, const lw_layer_acts *a, int l,
                              lw_backward_scratch *g, const lw_receiver_adapters *ad)
{
    const lw_model_config *c = &m->cfg;
    size_t kvd = (size_t)g->kvd, qd = (size_t)g->qd, C = (size_t)s->last_pos0, P = ad ? (size_t)ad->prefix_len : 0;
    size_t np = P * kvd, head = np + C * kvd;
    size_t per_segment = P > 0 && ad->prefix_segments ? (size_t)c->n_layers * np : 0;   /* 0: one prefix for all */
    const float *keys = s->key_cache + (size_t)l * s->max_tokens * kvd;
    const float *values = s->value_cache + (size_t)l * s->max_tokens * kvd;
    const float *att = a->att;
    memcpy(g->seg_k + np, keys, C * kvd * sizeof(float));
    memcpy(g->seg_v + np, values, C * kvd * sizeof(float));
    for (int i = 0, r0 = 0; i < s->last_n_segments; r0 += s->last_segment_len[i++]) {
        size_t len = (size_t)s->last_segment_len[i], r = (size_t)r0, own = i * per_segment + (size_t)l * np;
        if (P > 0) {
            memcpy(g->seg_k, ad->prefix_k + own, np * sizeof(float));
            memcpy(g->seg_v, ad->prefix_v + own, np * sizeof(float));
        }
        memcpy(g->seg_k + head, keys + (C + r) * kvd, len * kvd * sizeof(float));
        memcpy(g->seg_v + head, values + (C + r) * kvd, len * kvd * sizeof(float));
        zero(g->seg_dk, head + len * kvd);
        zero(g->seg_dv, head + len * kvd);
        lw_attention_params p = {.causal = true, .q_offset = (int)(P + C),
                                 .window = lw_layer_is_local(c, l) ? c->sliding_window : 0, .scale = m->attn_scale};
        attention_backward_sink(g->dq + r * qd, g->seg_dk, g->seg_dv, g->dao + r * qd, att, a->q_rope + r * qd,
                                g->seg_k, g->seg_v, (int)len, (int)(P + C + len), c->n_heads, c->n_kv_heads,
                                c->head_dim, &p, (int)P);
        memcpy(g->dk + r * kvd, g->seg_dk + head, len * kvd * sizeof(float));
        memcpy(g->dv + r * kvd, g->seg_dv + head, len * kvd * sizeof(float));
        for (size_t j = 0; j < np; j++) {
            if (ad->d_prefix_k) ad->d_prefix_k[own + j] += g->seg_dk[j];
            if (ad->d_prefix_v) ad->d_prefix_v[own + j] += g->seg_dv[j];
        }
        att += (size_t)c->n_heads * len * (P + C + len);
    }
}

/* Attention's backward for layer l over keys/values k, v [P + T, kvd]: a
 * deep prefix's P (ad) then the T text rows. dk, dv get the text rows'
 * gradients; the prefix's are added to ad->d_prefix_k / d_prefix_v. */
static void attention_rows_backward(const lw_model *m, const lw_state *s, const lw_layer_acts *a, int l,
                                    lw_backward_scratch *g, int T, const lw_receiver_adapters *ad)
{
    const lw_model_config *c = &m->cfg;
    int kvd = g->kvd, P = ad ? ad->prefix_len : 0, C = s->last_pos0;
    lw_attention_params p = {.causal = true, .q_offset = P + C,
                             .window = lw_layer_is_local(c, l) ? c->sliding_window : 0, .scale = m->attn_scale};
    const float *k_rope = s->key_cache + (size_t)l * s->max_tokens * kvd;
    size_t nt = (size_t)T * kvd;
    if (s->last_n_segments > 0) {
        segments_backward(m, s, a, l, g, ad);
        return;
    }
    if (P == 0) {
        /* keys and values of the cached C positions and the T rows; the
         * cached ones' gradients are computed and then dropped */
        const float *v = C ? s->value_cache + (size_t)l * s->max_tokens * kvd : a->v;
        zero(g->dk, nt + (size_t)C * kvd);
        zero(g->dv, nt + (size_t)C * kvd);
        attention_backward(g->dq, g->dk, g->dv, g->dao, a->att, a->q_rope, k_rope, v, T, C + T, c->n_heads,
                           c->n_kv_heads, c->head_dim, &p);
        if (C) {
            memmove(g->dk, g->dk + (size_t)C * kvd, nt * sizeof(float));
            memmove(g->dv, g->dv + (size_t)C * kvd, nt * sizeof(float));
        }
        return;
    }
    zero(g->dk, nt);
    zero(g->dv, nt);
    lw_adapter_scratch *sc = ad->scratch;
    size_t np = (size_t)P * kvd, off = (size_t)l * np;
    memcpy(sc->k, ad->prefix_k + off, np * sizeof(float));
    memcpy(sc->v, ad->prefix_v + off, np * sizeof(float));
    memcpy(sc->k + np, k_rope, nt * sizeof(float));
    memcpy(sc->v + np, a->v, nt * sizeof(float));
    zero(sc->dk, np + nt);
    zero(sc->dv, np + nt);
    attention_backward_sink(g->dq, sc->dk, sc->dv, g->dao, a->att, a->q_rope, sc->k, sc->v, T, P + T, c->n_heads,
                            c->n_kv_heads, c->head_dim, &p, P);
    memcpy(g->dk, sc->dk + np, nt * sizeof(float));
    memcpy(g->dv, sc->dv + np, nt * sizeof(float));
    for (size_t i = 0; i < np; i++) {
        if (ad->d_prefix_k) ad->d_prefix_k[off + i] += sc->dk[i];
        if (ad->d_prefix_v) ad->d_prefix_v[off + i] += sc->dv[i];
    }
}

/* g->dx: d(x_mid) in, d(x_in) out. */
static void attn_backward(const lw_model *m, const lw_state *s, const lw_layer_acts *a, int l,
                          lw_backward_scratch *g, int T, const lw_receiver_adapters *ad)
{
    const lw_model_config *c = &m->cfg;
    const lw_layer_weights *L = &m->layers[l];
    int H = c->hidden, D = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads, qd = g->qd, kvd = g->kvd;
    size_t nH = (size_t)T * H;
    bool local = lw_layer_is_local(c, l);
    const float *inv_freq = local ? m->inv_freq_local : m->inv_freq_global;
    bool interleaved = lw_rope_interleaved(c);

    const float *dbranch = g->dx;
    if (c->post_norms) {
        zero(g->dbr, nH);
        rmsnorm_backward(g->dbr, NULL, g->dx, a->proj, L->post_attn_norm, a->rstd_post_attn, T, H, c->norm);
        dbranch = g->dbr;
    }
    zero(g->dao, (size_t)T * qd);
    matmul_backward(g->dao, NULL, NULL, dbranch, a->ao, L->wo, T, qd, H);

    lw_lora_backward(ad, l, LW_LORA_O, a->ao, dbranch, g->dao, T, g->pos);

    /* The same attention forward's attend() ran with save_acts: all T keys
     * (after any prefix) from position 0, att laid out [Hq, T, P + T]. */
    zero(g->dq, (size_t)T * qd);
    attention_rows_backward(m, s, a, l, g, T, ad);
    rope_backward(g->dq, g->pos, inv_freq, T, Hq, D, interleaved);
    rope_backward(g->dk, g->pos, inv_freq, T, Hkv, D, interleaved);

    const float *dq = g->dq, *dk = g->dk;
    if (c->qk_norm) {
        zero(g->dq_pre, (size_t)T * qd);
        zero(g->dk_pre, (size_t)T * kvd);
        rmsnorm_backward(g->dq_pre, NULL, g->dq, a->q, L->q_norm, a->rstd_q, T * Hq, D, c->norm);
        rmsnorm_backward(g->dk_pre, NULL, g->dk, a->k, L->k_norm, a->rstd_k, T * Hkv, D, c->norm);
        dq = g->dq_pre;
        dk = g->dk_pre;
    }
    zero(g->dln, nH);
    matmul_backward(g->dln, NULL, NULL, dq, a->xn, L->wq, T, H, qd);
    matmul_backward(g->dln, NULL, NULL, dk, a->xn, L->wk, T, H, kvd);
    matmul_backward(g->dln, NULL, NULL, g->dv, a->xn, L->wv, T, H, kvd);
    lw_lora_backward(ad, l, LW_LORA_Q, a->xn, dq, g->dln, T, g->pos);
    lw_lora_backward(ad, l, LW_LORA_K, a->xn, dk, g->dln, T, g->pos);
    lw_lora_backward(ad, l, LW_LORA_V, a->xn, g->dv, g->dln, T, g->pos);
    rmsnorm_backward(g->dx, NULL, g->dln, a->x_in, L->attn_norm, a->rstd_attn, T, H, c->norm);
}

/* g->dx = d(final residual) from the loss rows' dlogits. Row rows[i]'s
 * dlogits are at dl + (dense ? rows[i] : i) * vocab. Packed rows (not
 * dense) go through the output projection in one product, whatever their
 * gaps (the projection's weights are read once: 671 MB for Gemma-3-270M),
 * into g->dbr and then to their rows; dense ones by runs of consecutive rows. */
static void head_backward(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const int *rows,
                          int n_rows, const float *dl, bool dense, int T)
{
    const lw_model_config *c = &m->cfg;
    int H = c->hidden, V = c->vocab;
    zero(g->dxf, (size_t)T * H);
    if (!dense && n_rows > 0) {
        zero(g->dbr, (size_t)n_rows * H);
        matmul_backward(g->dbr, NULL, NULL, dl, NULL, m->output, n_rows, H, V);
        for (int i = 0; i < n_rows; i++)
            memcpy(g->dxf + (size_t)rows[i] * H, g->dbr + (size_t)i * H, (size_t)H * sizeof(float));
        n_rows = 0;   /* done: skip the runs below */
    }
    for (int i = 0; i < n_rows;) {
        int j = i + 1;
        while (j < n_rows && rows[j] == rows[j - 1] + 1) j++;
        const float *d = dl + (size_t)(dense ? rows[i] : i) * V;
        size_t at = (size_t)rows[i] * H;
        matmul_backward(g->dxf + at, NULL, NULL, d, s->xf + at, m->output, j - i, H, V);
        i = j;
    }
    zero(g->dx, (size_t)T * H);
    rmsnorm_backward(g->dx, NULL, g->dxf, s->x, m->output_norm, s->rstd_final, T, H, c->norm);
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

static void backward(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const int *rows, int n_rows,
                     const float *dl, bool dense, float *d_embeds, const lw_receiver_adapters *ad)
{
    int T = s->last_T;
    for (int t = 0; t < T; t++) g->pos[t] = s->last_pos0 + t;
    for (int i = 0, r0 = 0; i < s->last_n_segments; r0 += s->last_segment_len[i++])   /* each restarts */
        for (int t = 0; t < s->last_segment_len[i]; t++) g->pos[r0 + t] = s->last_pos0 + t;
    head_backward(m, s, g, rows, n_rows, dl, dense, T);
    for (int l = m->cfg.n_layers - 1; l >= 0; l--) {
        const lw_layer_acts *a = &s->acts[l];
        ffn_backward(m, a, l, g, T, ad);
        attn_backward(m, s, a, l, g, T, ad);
    }
    memcpy(d_embeds, g->dx, (size_t)T * m->cfg.hidden * sizeof *d_embeds);
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
    backward(m, s, g, g->rows, n_rows, dlogits, true, d_embeds, NULL);
    return LW_OK;
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
    backward(m, s, g, rows, n_rows, dlogits_rows, false, d_embeds, ad);
    return LW_OK;
}
