/* LW_OP_ATTENTION on the CPU: attention of a block's query rows over the
 * layer's KV cache, a deep prefix's keys before it (sink keys that a
 * sliding window spares; the rows' own positions unchanged), or several
 * segments after one cached head. Forward and backward side by side; the
 * arithmetic is ops.h's attention_forward_sink / attention_backward_sink,
 * this file gathers the keys each call sees.
 *
 * Backward may follow a forward that started at position C > 0 over a
 * cache that already held C positions (a prompt head every example shares):
 * its rows attended to those keys, which backward holds constant, so their
 * gradients are dropped (model_backward.c refuses that with adapters). */
#include "plan_cpu.h"

#include <string.h>

#include "ops.h"

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

static float *kv_row(float *cache, const lw_model_config *c, const lw_state *s, int l, int pos)
{
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    return cache + ((size_t)l * s->max_tokens + pos) * kvd;
}

/* A deep prefix's P keys/values of layer l, then the cache's first n
 * positions, side by side in the adapters' scratch (what attention reads). */
static void prefixed_kv(const lw_receiver_adapters *ad, const lw_model *m, lw_state *s, int l, int n,
                        const float **k, const float **v)
{
    const lw_model_config *c = &m->cfg;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, P = (size_t)ad->prefix_len;
    lw_adapter_scratch *sc = ad->scratch;
    memcpy(sc->k, ad->prefix_k + (size_t)l * P * kvd, P * kvd * sizeof(float));
    memcpy(sc->v, ad->prefix_v + (size_t)l * P * kvd, P * kvd * sizeof(float));
    memcpy(sc->k + P * kvd, kv_row(s->key_cache, c, s, l, 0), (size_t)n * kvd * sizeof(float));
    memcpy(sc->v + P * kvd, kv_row(s->value_cache, c, s, l, 0), (size_t)n * kvd * sizeof(float));
    *k = sc->k;
    *v = sc->v;
}

/* Segments (lw_forward_args.n_segments): each attends to its own deep
 * prefix (if any), the cache's first pos0 positions and its own rows, which
 * lie after the other segments' in the cache; so its keys are gathered into
 * the state's scratch first: [P prefix | pos0 cached | len own]. */
static void attend_segments(const lw_model *m, lw_state *s, int l, int pos0, const lw_forward_args *args,
                            float *out, float *att, const float *q, int window)
{
    const lw_model_config *c = &m->cfg;
    const lw_receiver_adapters *ad = args->adapters;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    int P = ad ? ad->prefix_len : 0;
    size_t np = (size_t)P * kvd, head = np + (size_t)pos0 * kvd;
    size_t per_segment = P > 0 && ad->prefix_segments ? (size_t)c->n_layers * np : 0;   /* 0: one prefix for all */
    const float *keys = kv_row(s->key_cache, c, s, l, 0), *values = kv_row(s->value_cache, c, s, l, 0);
    memcpy(s->seg_k + np, keys, (size_t)pos0 * kvd * sizeof(float));
    memcpy(s->seg_v + np, values, (size_t)pos0 * kvd * sizeof(float));
    /* saving activations, each segment's probabilities [Hq, len, P + pos0 + len]
     * follow the previous segment's (one attention call per segment); not
     * saving, none are stored (the op's online softmax) */
    for (int g = 0, r0 = 0; g < args->n_segments; r0 += args->segment_len[g++]) {
        int len = args->segment_len[g];
        float *probs = s->save_acts ? att : NULL;
        if (P > 0) {
            memcpy(s->seg_k, ad->prefix_k + g * per_segment + (size_t)l * np, np * sizeof(float));
            memcpy(s->seg_v, ad->prefix_v + g * per_segment + (size_t)l * np, np * sizeof(float));
        }
        memcpy(s->seg_k + head, keys + ((size_t)pos0 + r0) * kvd, (size_t)len * kvd * sizeof(float));
        memcpy(s->seg_v + head, values + ((size_t)pos0 + r0) * kvd, (size_t)len * kvd * sizeof(float));
        for (int t0 = 0; t0 < len; t0 += s->att_rows) {
            int rows = len - t0 < s->att_rows ? len - t0 : s->att_rows;
            lw_attention_params p = {.causal = true, .q_offset = P + pos0 + t0, .window = window,
                                     .scale = m->attn_scale};
            attention_forward_sink(out + (size_t)(r0 + t0) * qd, probs, q + (size_t)(r0 + t0) * qd, s->seg_k,
                                   s->seg_v, rows, P + pos0 + t0 + rows, c->n_heads, c->n_kv_heads, c->head_dim,
                                   &p, P);
        }
        if (s->save_acts) att += (size_t)c->n_heads * len * (P + pos0 + len);
    }
}

/* Causal (optionally windowed) attention of T rows at positions pos0.. over
 * the cache, a few query rows at a time unless everything is being saved
 * (then the probabilities go to att for backward; otherwise the op's online
 * softmax stores none).
 * A deep prefix of P keys comes first, visible to every row (n_sink: the
 * window spares it); the rows' own positions are unchanged. */
static void attend(const lw_model *m, lw_state *s, int l, int T, int pos0, const lw_receiver_adapters *ad,
                   float *out, float *att, const float *q, int window)
{
    const lw_model_config *c = &m->cfg;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int step = s->save_acts ? T : s->att_rows;
    int P = ad ? ad->prefix_len : 0;
    const float *keys = kv_row(s->key_cache, c, s, l, 0), *values = kv_row(s->value_cache, c, s, l, 0);
    if (P > 0) prefixed_kv(ad, m, s, l, pos0 + T, &keys, &values);
    for (int t0 = 0; t0 < T; t0 += step) {
        int rows = T - t0 < step ? T - t0 : step;
        int first = pos0 + t0;                 /* position of the first query row */
        int k0 = window > 0 && first - window + 1 > 0 ? first - window + 1 : 0;
        int k1 = first + rows;                 /* keys [k0, k1) can be visible */
        if (s->save_acts || P > 0) k0 = 0;     /* backward expects att over all keys; a prefix precedes all */
        lw_attention_params p = {.causal = true, .q_offset = P + first - k0, .window = window,
                                 .scale = m->attn_scale};
        attention_forward_sink(out + (size_t)t0 * qd, s->save_acts ? att : NULL, q + (size_t)t0 * qd,
                               keys + (size_t)k0 * kvd,
                               values + (size_t)k0 * kvd, rows, P + k1 - k0, c->n_heads, c->n_kv_heads,
                               c->head_dim, &p, P);
    }
}

void lw_cpu_attention_forward(const lw_model *m, lw_state *s, int l, int T, int pos0, const lw_forward_args *args,
                              float *out, float *att, const float *q, int window)
{
    if (args->n_segments > 0) attend_segments(m, s, l, pos0, args, out, att, q, window);
    else attend(m, s, l, T, pos0, args->adapters, out, att, q, window);
}

/* Segments' backward: segment i's rows saw its own deep prefix (if any),
 * the C cached keys and its own (which the forward wrote to the cache after
 * the other segments'), with probabilities [Hq, len, P + C + len] after the
 * previous segment's. The prefix's gradients are added to the segment's own
 * d_prefix_k / d_prefix_v (adapters.h prefix_segments). */
static void segments_backward(const lw_model *m, const lw_state *s, int l, lw_backward_scratch *g,
                              const lw_receiver_adapters *ad, float *dq, float *dk, float *dv, const float *dout,
                              const float *att, const float *q, int window)
{
    const lw_model_config *c = &m->cfg;
    size_t kvd = (size_t)g->kvd, qd = (size_t)g->qd, C = (size_t)s->last_pos0, P = ad ? (size_t)ad->prefix_len : 0;
    size_t np = P * kvd, head = np + C * kvd;
    size_t per_segment = P > 0 && ad->prefix_segments ? (size_t)c->n_layers * np : 0;   /* 0: one prefix for all */
    const float *keys = s->key_cache + (size_t)l * s->max_tokens * kvd;
    const float *values = s->value_cache + (size_t)l * s->max_tokens * kvd;
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
        lw_attention_params p = {.causal = true, .q_offset = (int)(P + C), .window = window, .scale = m->attn_scale};
        attention_backward_sink(dq + r * qd, g->seg_dk, g->seg_dv, dout + r * qd, att, q + r * qd, g->seg_k,
                                g->seg_v, (int)len, (int)(P + C + len), c->n_heads, c->n_kv_heads, c->head_dim, &p,
                                (int)P);
        memcpy(dk + r * kvd, g->seg_dk + head, len * kvd * sizeof(float));
        memcpy(dv + r * kvd, g->seg_dv + head, len * kvd * sizeof(float));
        for (size_t j = 0; j < np; j++) {
            if (ad->d_prefix_k) ad->d_prefix_k[own + j] += g->seg_dk[j];
            if (ad->d_prefix_v) ad->d_prefix_v[own + j] += g->seg_dv[j];
        }
        att += (size_t)c->n_heads * len * (P + C + len);
    }
}

/* One sequence over keys/values [P + C + T, kvd]: a deep prefix's P (ad)
 * or the C cached positions, then the T rows. The forward ran with
 * save_acts: all keys from position 0, att laid out [Hq, T, P + C + T]. */
void lw_cpu_attention_backward(const lw_model *m, const lw_state *s, int l, int T, lw_backward_scratch *g,
                               const lw_receiver_adapters *ad, float *dq, float *dk, float *dv, const float *dout,
                               const float *att, const float *q, const float *v, int window)
{
    const lw_model_config *c = &m->cfg;
    int kvd = g->kvd, P = ad ? ad->prefix_len : 0, C = s->last_pos0;
    zero(dq, (size_t)T * g->qd);
    if (s->last_n_segments > 0) {
        segments_backward(m, s, l, g, ad, dq, dk, dv, dout, att, q, window);
        return;
    }
    lw_attention_params p = {.causal = true, .q_offset = P + C, .window = window, .scale = m->attn_scale};
    const float *k_rope = s->key_cache + (size_t)l * s->max_tokens * kvd;
    size_t nt = (size_t)T * kvd;
    if (P == 0) {
        /* keys and values of the cached C positions and the T rows; the
         * cached ones' gradients are computed and then dropped */
        const float *values = C ? s->value_cache + (size_t)l * s->max_tokens * kvd : v;
        zero(dk, nt + (size_t)C * kvd);
        zero(dv, nt + (size_t)C * kvd);
        attention_backward(dq, dk, dv, dout, att, q, k_rope, values, T, C + T, c->n_heads, c->n_kv_heads,
                           c->head_dim, &p);
        if (C) {
            memmove(dk, dk + (size_t)C * kvd, nt * sizeof(float));
            memmove(dv, dv + (size_t)C * kvd, nt * sizeof(float));
        }
        return;
    }
    zero(dk, nt);
    zero(dv, nt);
    lw_adapter_scratch *sc = ad->scratch;
    size_t np = (size_t)P * kvd, off = (size_t)l * np;
    memcpy(sc->k, ad->prefix_k + off, np * sizeof(float));
    memcpy(sc->v, ad->prefix_v + off, np * sizeof(float));
    memcpy(sc->k + np, k_rope, nt * sizeof(float));
    memcpy(sc->v + np, v, nt * sizeof(float));
    zero(sc->dk, np + nt);
    zero(sc->dv, np + nt);
    attention_backward_sink(dq, sc->dk, sc->dv, dout, att, q, sc->k, sc->v, T, P + T, c->n_heads, c->n_kv_heads,
                            c->head_dim, &p, P);
    memcpy(dk, sc->dk + np, nt * sizeof(float));
    memcpy(dv, sc->dv + np, nt * sizeof(float));
    for (size_t i = 0; i < np; i++) {
        if (ad->d_prefix_k) ad->d_prefix_k[off + i] += sc->dk[i];
        if (ad->d_prefix_v) ad->d_prefix_v[off + i] += sc->dv[i];
    }
}
