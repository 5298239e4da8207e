/* The forward pass of a decoder block stack over T new positions, reading
 * and extending the KV cache. Order of operations follows Hugging Face's
 * LlamaDecoderLayer / Gemma3DecoderLayer so the two agree to rounding. */
#include "model.h"

#include <string.h>

#include "adapters.h"
#include "lora.h"
#include "ops.h"

static float *kv_row(float *cache, const lw_model_config *c, const lw_state *s, int l, int pos)
{
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    return cache + ((size_t)l * s->max_tokens + pos) * kvd;
}

/* Per-head RMSNorm of q or k rows, in place ([T * heads] rows of head_dim). */
static void head_norm(float *x, float *rstd, const float *w, int rows, const lw_model *m)
{
    rmsnorm_forward(x, rstd, x, w, rows, m->cfg.head_dim, m->cfg.norm_eps, m->cfg.norm);
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
static void attend_segments(const lw_model *m, lw_state *s, lw_layer_acts *a, int l, int pos0,
                            const lw_forward_args *args)
{
    const lw_model_config *c = &m->cfg;
    const lw_receiver_adapters *ad = args->adapters;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    int window = lw_layer_is_local(c, l) ? c->sliding_window : 0, P = ad ? ad->prefix_len : 0;
    size_t np = (size_t)P * kvd, head = np + (size_t)pos0 * kvd;
    size_t per_segment = P > 0 && ad->prefix_segments ? (size_t)c->n_layers * np : 0;   /* 0: one prefix for all */
    const float *keys = kv_row(s->key_cache, c, s, l, 0), *values = kv_row(s->value_cache, c, s, l, 0);
    memcpy(s->seg_k + np, keys, (size_t)pos0 * kvd * sizeof(float));
    memcpy(s->seg_v + np, values, (size_t)pos0 * kvd * sizeof(float));
    /* saving activations, each segment's probabilities [Hq, len, P + pos0 + len]
     * follow the previous segment's (one attention call per segment) */
    float *att = a->att;
    for (int g = 0, r0 = 0; g < args->n_segments; r0 += args->segment_len[g++]) {
        int len = args->segment_len[g];
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
            attention_forward_sink(a->ao + (size_t)(r0 + t0) * qd, att, a->q_rope + (size_t)(r0 + t0) * qd,
                                   s->seg_k, s->seg_v, rows, P + pos0 + t0 + rows, c->n_heads, c->n_kv_heads,
                                   c->head_dim, &p, P);
        }
        if (s->save_acts) att += (size_t)c->n_heads * len * (P + pos0 + len);
    }
}

/* Causal (optionally windowed) attention of T rows at positions pos0.. over
 * the cache, a few query rows at a time unless everything is being saved.
 * A deep prefix of P keys comes first, visible to every row (n_sink: the
 * window spares it); the rows' own positions are unchanged. */
static void attend(const lw_model *m, lw_state *s, lw_layer_acts *a, int l, int T, int pos0,
                   const lw_receiver_adapters *ad)
{
    const lw_model_config *c = &m->cfg;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    int window = lw_layer_is_local(c, l) ? c->sliding_window : 0;
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
        attention_forward_sink(a->ao + (size_t)t0 * qd, a->att, a->q_rope + (size_t)t0 * qd,
                               keys + (size_t)k0 * kvd, values + (size_t)k0 * kvd, rows, P + k1 - k0, c->n_heads,
                               c->n_kv_heads, c->head_dim, &p, P);
    }
}

/* Rows of a fused projection [T, sum widths] into k separate [T, width] arrays. */
static void split_rows(const float *fused, int T, float *const *parts, const int *widths, int k)
{
    for (int t = 0; t < T; t++)
        for (int i = 0; i < k; i++) {
            memcpy(parts[i] + (size_t)t * widths[i], fused, (size_t)widths[i] * sizeof *fused);
            fused += widths[i];
        }
}

/* x[T, hidden] is updated in place: x += attn(x); x += ffn(x). LoRA (ad)
 * adds to each adapted projection's output right after the projection. */
static void block_forward(const lw_model *m, lw_state *s, lw_layer_acts *a, int l, float *x, int T, int pos0,
                          const lw_forward_args *args)
{
    const lw_receiver_adapters *ad = args->adapters;
    const lw_model_config *c = &m->cfg;
    const lw_layer_weights *L = &m->layers[l];
    int H = c->hidden, D = c->head_dim, qd = c->n_heads * D, kvd = c->n_kv_heads * D, F = c->ffn;
    size_t nH = (size_t)T * H;
    const float *inv_freq = lw_layer_is_local(c, l) ? m->inv_freq_local : m->inv_freq_global;
    bool interleaved = lw_rope_interleaved(c);

    if (a->x_in) memcpy(a->x_in, x, nH * sizeof *x);
    rmsnorm_forward(a->xn, a->rstd_attn, x, L->attn_norm, T, H, c->norm_eps, c->norm);
    matmul_forward(a->qkv, a->xn, L->wqkv, L->bqkv, T, H, qd + 2 * kvd);
    split_rows(a->qkv, T, (float *[]){a->q, a->k, a->v}, (int[]){qd, kvd, kvd}, 3);
    lw_lora_forward(ad, l, LW_LORA_Q, a->xn, a->q, T, s->pos);
    lw_lora_forward(ad, l, LW_LORA_K, a->xn, a->k, T, s->pos);
    lw_lora_forward(ad, l, LW_LORA_V, a->xn, a->v, T, s->pos);

    /* q_rope and the cache rows get the normed, rotated copies; q, k keep the projections. */
    float *k_out = kv_row(s->key_cache, c, s, l, pos0);
    memcpy(a->q_rope, a->q, (size_t)T * qd * sizeof(float));
    memcpy(k_out, a->k, (size_t)T * kvd * sizeof(float));
    memcpy(kv_row(s->value_cache, c, s, l, pos0), a->v, (size_t)T * kvd * sizeof(float));
    if (c->qk_norm) {
        head_norm(a->q_rope, a->rstd_q, L->q_norm, T * c->n_heads, m);
        head_norm(k_out, a->rstd_k, L->k_norm, T * c->n_kv_heads, m);
    }
    rope_forward(a->q_rope, s->pos, inv_freq, T, c->n_heads, D, interleaved);
    rope_forward(k_out, s->pos, inv_freq, T, c->n_kv_heads, D, interleaved);

    if (args->n_segments > 0) attend_segments(m, s, a, l, pos0, args);
    else attend(m, s, a, l, T, pos0, ad);
    matmul_forward(a->proj, a->ao, L->wo, NULL, T, qd, H);
    lw_lora_forward(ad, l, LW_LORA_O, a->ao, a->proj, T, s->pos);
    const float *branch = a->proj;
    if (c->post_norms) {
        rmsnorm_forward(a->proj_n, a->rstd_post_attn, a->proj, L->post_attn_norm, T, H, c->norm_eps, c->norm);
        branch = a->proj_n;
    }
    for (size_t i = 0; i < nH; i++) x[i] += branch[i];
    if (a->x_mid) memcpy(a->x_mid, x, nH * sizeof *x);

    rmsnorm_forward(a->fn, a->rstd_ffn, x, L->ffn_norm, T, H, c->norm_eps, c->norm);
    matmul_forward(a->gate_up, a->fn, L->w_gate_up, NULL, T, H, 2 * F);
    split_rows(a->gate_up, T, (float *[]){a->gate, a->up}, (int[]){F, F}, 2);
    lw_lora_forward(ad, l, LW_LORA_GATE, a->fn, a->gate, T, s->pos);
    lw_lora_forward(ad, l, LW_LORA_UP, a->fn, a->up, T, s->pos);
    glu_forward(a->hid, a->gate, a->up, T * F, c->activation);
    matmul_forward(a->down, a->hid, L->w_down, NULL, T, F, H);
    lw_lora_forward(ad, l, LW_LORA_DOWN, a->hid, a->down, T, s->pos);
    branch = a->down;
    if (c->post_norms) {
        rmsnorm_forward(a->down_n, a->rstd_post_ffn, a->down, L->post_ffn_norm, T, H, c->norm_eps, c->norm);
        branch = a->down_n;
    }
    for (size_t i = 0; i < nH; i++) x[i] += branch[i];
}

/* The first block's input for rows [r0, r0 + T) of the call. */
static void embed_rows(const lw_model *m, const lw_forward_args *a, int r0, int T, float *x)
{
    int H = m->cfg.hidden;
    for (int t = 0; t < T; t++) {
        int r = r0 + t;
        float *row = x + (size_t)t * H;
        bool use_embed = a->embeds && (!a->is_embed || a->is_embed[r]);
        if (use_embed)
            memcpy(row, a->embeds + (size_t)r * H, (size_t)H * sizeof(float));
        else
            embedding_forward(row, &a->ids[r], m->token_embd, 1, H, m->embed_scale);
    }
}

static lw_status check_args(const lw_model *m, const lw_state *s, const lw_forward_args *a)
{
    const lw_model_config *c = &m->cfg;
    if (a->T <= 0 || a->pos0 < 0 || a->pos0 > s->n_cached || a->T > s->max_tokens - a->pos0)
        return lw_fail(LW_ERR_INVALID, "forward %s: %d rows at position %d (cache holds %d of %d)", c->name, a->T,
                       a->pos0, s->n_cached, s->max_tokens);
    if (s->save_acts && a->T > s->chunk)
        return lw_fail(LW_ERR_INVALID, "forward %s: %d rows exceed the saved-activation state's %d", c->name,
                       a->T, s->chunk);
    if (a->capture_layer < -1 || a->capture_layer > c->n_layers || (a->capture_layer >= 0 && !a->hidden_out))
        return lw_fail(LW_ERR_INVALID, "forward %s: capture layer %d (model has %d; hidden_out %s)", c->name,
                       a->capture_layer, c->n_layers, a->hidden_out ? "given" : "missing");
    if (!a->ids && !a->embeds) return lw_fail(LW_ERR_INVALID, "forward %s: neither ids nor embeds", c->name);
    if (a->n_segments) {
        long sum = 0;
        bool bad = a->n_segments < 0 || !a->segment_len;
        for (int g = 0; !bad && g < a->n_segments; g++) {
            bad = a->segment_len[g] < 1;
            sum += a->segment_len[g];
        }
        const lw_receiver_adapters *ad = a->adapters;
        int P = ad ? ad->prefix_len : 0;
        if (bad || sum != a->T || a->T > s->chunk)
            return lw_fail(LW_ERR_INVALID, "forward %s: %d segments of %d rows in all (need positive lengths summing "
                           "to T = %d, at most %d rows)", c->name, a->n_segments, (int)sum, a->T, s->chunk);
        if (P > 0 && ((ad->prefix_segments && ad->prefix_segments < a->n_segments) ||
                      (long)P + a->pos0 + a->T > s->max_tokens))
            return lw_fail(LW_ERR_INVALID, "forward %s: %d segments after a deep prefix of %d (need a prefix per "
                           "segment or one for all, have %d; %d positions, the state holds %d)", c->name,
                           a->n_segments, P, ad->prefix_segments, P + a->pos0 + a->T, s->max_tokens);
    }
    if (a->adapters) {
        int rows = s->save_acts || a->T < s->chunk ? a->T : s->chunk;   /* per pass through the blocks */
        lw_status st = lw_adapters_check(a->adapters, m, rows, a->pos0 + a->T, s->max_tokens);
        if (st) return st;
    }
    for (int t = 0; t < a->T; t++) {
        bool use_embed = a->embeds && (!a->is_embed || a->is_embed[t]);
        if (use_embed) continue;
        if (!a->ids) return lw_fail(LW_ERR_INVALID, "forward %s: row %d needs a token id, ids is NULL", c->name, t);
        if (a->ids[t] < 0 || a->ids[t] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "forward %s: token id %d at row %d outside vocab %d", c->name,
                           a->ids[t], t, c->vocab);
    }
    return LW_OK;
}

/* Rows [r0, r0 + T): through the blocks, then capture and logits. Returns
 * false when it stopped early after the captured layer. */
static bool chunk_forward(const lw_model *m, lw_state *s, const lw_forward_args *a, int r0, int T)
{
    const lw_model_config *c = &m->cfg;
    int H = c->hidden, n = c->n_layers;
    size_t row_bytes = (size_t)H * sizeof(float);
    int pos0 = a->pos0 + r0;
    bool need_logits = a->logits && (a->all_logits || r0 + T == a->T);
    int last_layer = a->logits ? n : a->capture_layer;   /* blocks needed: [0, last_layer) */

    for (int t = 0; t < T; t++) s->pos[t] = pos0 + t;
    for (int g = 0, r0 = 0; g < a->n_segments; r0 += a->segment_len[g++])   /* each segment restarts at pos0 */
        for (int t = 0; t < a->segment_len[g]; t++) s->pos[r0 + t] = pos0 + t;
    embed_rows(m, a, r0, T, s->x);
    if (a->capture_layer == 0) memcpy(a->hidden_out + (size_t)r0 * H, s->x, (size_t)T * row_bytes);
    for (int l = 0; l < n && l < last_layer; l++) {
        lw_layer_acts *acts = &s->acts[s->save_acts ? l : 0];
        block_forward(m, s, acts, l, s->x, T, pos0, a);
        if (a->capture_layer == l + 1 && l + 1 < n)
            memcpy(a->hidden_out + (size_t)r0 * H, s->x, (size_t)T * row_bytes);
    }
    if (last_layer < n) return false;

    rmsnorm_forward(s->xf, s->rstd_final, s->x, m->output_norm, T, H, c->norm_eps, c->norm);
    if (a->capture_layer == n) memcpy(a->hidden_out + (size_t)r0 * H, s->xf, (size_t)T * row_bytes);
    if (need_logits) {
        if (a->all_logits)
            matmul_forward(a->logits + (size_t)r0 * c->vocab, s->xf, m->output, NULL, T, H, c->vocab);
        else
            matmul_forward(a->logits, s->xf + (size_t)(T - 1) * H, m->output, NULL, 1, H, c->vocab);
    }
    return true;
}

lw_status lw_forward(const lw_model *m, lw_state *s, const lw_forward_args *a)
{
    lw_status st = check_args(m, s, a);
    if (st) return st;
    bool complete = true;
    for (int r0 = 0; r0 < a->T; r0 += s->chunk) {
        int T = a->T - r0 < s->chunk ? a->T - r0 : s->chunk;
        complete = chunk_forward(m, s, a, r0, T);
    }
    s->n_cached = complete && !a->n_segments ? a->pos0 + a->T : a->pos0;
    s->last_pos0 = a->pos0;
    s->last_T = a->T;
    s->last_complete = complete;
    s->last_n_segments = s->last_segment_len ? a->n_segments : 0;
    for (int g = 0; g < s->last_n_segments; g++) s->last_segment_len[g] = a->segment_len[g];
    return LW_OK;
}
