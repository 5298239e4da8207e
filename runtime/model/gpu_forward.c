/* The forward pass on the GPU, in runtime/model/forward.c's order of operations.
 *
 * One difference in form, none in arithmetic: the residual adds are fused
 * into the next norm (residual_rmsnorm_forward does x += branch, then
 * norm(x)), so a block leaves its last branch "pending" and the next block's
 * attention norm, or the final norm, adds it. The q, k and v products go
 * straight to their buffers: k and v into the cache rows at pos0, where
 * forward.c copies them after a fused product.
 *
 * With bf16 weights each product's input is first converted to bf16 (into
 * the state's xb) by f32_to_bf16: once for q, k and v, once for gate and up. */
#include "gpu_model.h"

#include <limits.h>
#include <stdio.h>

lw_status lw_gpu_matmul(lw_gpu_model *g, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                        int layer, const char *tensor)
{
    char what[256];
    snprintf(what, sizeof what, "%s layer %d %s", g->cfg.name, layer, tensor);
    lw_status st = g->bf16 ? lw_cublas_matmul_bf16(g->blas, y, x, w, T, in, out, what)
                           : lw_cublas_matmul(g->blas, y, x, w, T, in, out, what);
    if (st || !g->sync_each_launch) return st;
    snprintf(what, sizeof what, "after the product %s layer %d %s", g->cfg.name, layer, tensor);
    return lw_cuda_sync(g->cu, what);
}

lw_status lw_gpu_matmul_input(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr xb, size_t n, lw_cuda_ptr *in)
{
    *in = x;
    if (!g->bf16) return LW_OK;
    if (!xb || n == 0 || n > INT_MAX)
        return lw_fail(LW_ERR_INVALID, "GPU %s: bf16 input of %zu values (scratch %s)", g->cfg.name, n,
                       xb ? "given" : "missing");
    *in = xb;
    return lwk_f32_to_bf16(lw_gpu_launcher(g), &g->k, xb, x, (int)n);
}

lw_status lw_gpu_add_norm(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr y, lw_cuda_ptr rstd, lw_cuda_ptr pending,
                          lw_cuda_ptr w, int T)
{
    return lwk_residual_rmsnorm_forward(lw_gpu_launcher(g), &g->k, x, y, rstd, pending, w, T);
}

lw_status lw_gpu_head_norm(lw_gpu_model *g, lw_cuda_ptr y, lw_cuda_ptr rstd, lw_cuda_ptr x, lw_cuda_ptr w,
                           int rows)
{
    return lwk_qk_rmsnorm_forward(lw_gpu_launcher(g), &g->k, y, rstd, x, w, rows);
}

lw_status lw_gpu_rope(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr pos, int T, int heads, int layer, float sign)
{
    float base = lw_gpu_rope_base(&g->cfg, layer);
    int scaled = !lw_layer_is_local(&g->cfg, layer);   /* as the CPU's inv_freq_global / _local */
    return lwk_rope_apply(lw_gpu_launcher(g), &g->k, x, pos, T, heads, base, sign, scaled, g->cfg.head_dim);
}

/* The kernel applies the causal mask and the window itself. */
lw_status lw_gpu_attention(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr lse, lw_cuda_ptr q, lw_cuda_ptr keys,
                           lw_cuda_ptr values, int T, int pos0, int window)
{
    return lw_gpu_attention_sink(g, out, lse, q, keys, values, T, pos0, window, 0);
}

/* Query t sits at key n_sink + pos0 + t: q_offset counts the prefix. */
lw_status lw_gpu_attention_sink(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr lse, lw_cuda_ptr q, lw_cuda_ptr keys,
                                lw_cuda_ptr values, int T, int pos0, int window, int n_sink)
{
    int Tk = n_sink + pos0 + T, q_offset = n_sink + pos0;
    return lwk_attention_forward(lw_gpu_launcher(g), &g->k, out, lse, q, keys, values, T, Tk, q_offset, window, n_sink,
                                 g->cfg.n_heads);
}

lw_status lw_gpu_glu(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr gate, lw_cuda_ptr up, int n)
{
    return lwk_glu_forward(lw_gpu_launcher(g), &g->k, out, gate, up, n);
}

/* Block l over the T rows of s->x at positions pos0..; *pending is the
 * previous block's last branch on entry and this block's on return. */
static lw_status block_forward(lw_gpu_model *g, lw_gpu_state *s, int l, int T, int pos0, lw_cuda_ptr *pending)
{
    const lw_model_config *c = &g->cfg;
    const lw_gpu_layer *L = &g->layers[l];
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    size_t layer_off = (size_t)l * s->max_tokens * kvd * sizeof(float);
    lw_cuda_ptr keys = s->key_cache + layer_off, values = s->value_cache + layer_off;
    lw_cuda_ptr k_new = keys + (size_t)pos0 * kvd * sizeof(float), v_new = values + (size_t)pos0 * kvd * sizeof(float);
    int window = lw_layer_is_local(c, l) ? c->sliding_window : 0;

    lw_cuda_ptr in = 0;   /* each product's input as the weights want it */
    lw_status st = lw_gpu_add_norm(g, s->x, s->xn, 0, *pending, L->attn_norm, T);
    if (!st) st = lw_gpu_matmul_input(g, s->xn, s->xb, (size_t)T * H, &in);
    if (!st) st = lw_gpu_matmul(g, s->q, in, L->wq, T, H, qd, l, "wq");
    if (!st) st = lw_gpu_matmul(g, k_new, in, L->wk, T, H, kvd, l, "wk");
    if (!st) st = lw_gpu_matmul(g, v_new, in, L->wv, T, H, kvd, l, "wv");
    if (!st && c->qk_norm) st = lw_gpu_head_norm(g, s->q, 0, s->q, L->q_norm, T * c->n_heads);
    if (!st && c->qk_norm) st = lw_gpu_head_norm(g, k_new, 0, k_new, L->k_norm, T * c->n_kv_heads);
    if (!st) st = lw_gpu_rope(g, s->q, s->pos, T, c->n_heads, l, 1.f);
    if (!st) st = lw_gpu_rope(g, k_new, s->pos, T, c->n_kv_heads, l, 1.f);
    if (!st) st = lw_gpu_attention(g, s->ao, 0, s->q, keys, values, T, pos0, window);
    if (!st) st = lw_gpu_matmul_input(g, s->ao, s->xb, (size_t)T * qd, &in);
    if (!st) st = lw_gpu_matmul(g, s->proj, in, L->wo, T, qd, H, l, "wo");
    lw_cuda_ptr branch = s->proj;
    if (!st && c->post_norms) {
        st = lw_gpu_add_norm(g, s->proj, s->proj_n, 0, 0, L->post_attn_norm, T);
        branch = s->proj_n;
    }
    if (!st) st = lw_gpu_add_norm(g, s->x, s->fn, 0, branch, L->ffn_norm, T);
    if (!st) st = lw_gpu_matmul_input(g, s->fn, s->xb, (size_t)T * H, &in);
    if (!st) st = lw_gpu_matmul(g, s->gate, in, L->w_gate, T, H, F, l, "w_gate");
    if (!st) st = lw_gpu_matmul(g, s->up, in, L->w_up, T, H, F, l, "w_up");
    if (!st) st = lw_gpu_glu(g, s->hid, s->gate, s->up, T * F);
    if (!st) st = lw_gpu_matmul_input(g, s->hid, s->xb, (size_t)T * F, &in);
    if (!st) st = lw_gpu_matmul(g, s->down, in, L->w_down, T, F, H, l, "w_down");
    branch = s->down;
    if (!st && c->post_norms) {
        st = lw_gpu_add_norm(g, s->down, s->down_n, 0, 0, L->post_ffn_norm, T);
        branch = s->down_n;
    }
    *pending = branch;
    return st;
}

static bool row_is_embed(const lw_forward_args *a, int r) { return a->embeds && (!a->is_embed || a->is_embed[r]); }

/* The embedding kernel for every row (id 0 at rows that take an embedding),
 * then the given embeddings copied over their rows. */
lw_status lw_gpu_embed(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr ids_dev, int *ids_host, const lw_forward_args *a,
                       int r0, int T)
{
    size_t row_bytes = (size_t)g->cfg.hidden * sizeof(float);
    for (int t = 0; t < T; t++) ids_host[t] = row_is_embed(a, r0 + t) ? 0 : a->ids[r0 + t];
    lw_status st = lw_cuda_upload(g->cu, ids_dev, ids_host, (size_t)T * sizeof(int), "token ids");
    if (!st) st = lwk_embedding_forward(lw_gpu_launcher(g), &g->k, x, ids_dev, g->token_embd, T);
    /* Runs of consecutive embedding rows, one copy each (the copies wait for the kernel: same stream). */
    for (int t = 0; !st && t < T;) {
        if (!row_is_embed(a, r0 + t)) {
            t++;
            continue;
        }
        int u = t;
        while (u < T && row_is_embed(a, r0 + u)) u++;
        st = lw_cuda_upload(g->cu, x + (size_t)t * row_bytes, a->embeds + (size_t)(r0 + t) * g->cfg.hidden,
                            (size_t)(u - t) * row_bytes, "input embeddings");
        t = u;
    }
    return st;
}

/* T rows of the device buffer rows into a->hidden_out from row r0 (the
 * download waits for the work before it: same stream). */
static lw_status capture_rows(lw_gpu_model *g, const lw_forward_args *a, lw_cuda_ptr rows, int r0, int T)
{
    size_t row_bytes = (size_t)g->cfg.hidden * sizeof(float);
    return lw_cuda_download(g->cu, a->hidden_out + (size_t)r0 * g->cfg.hidden, rows, (size_t)T * row_bytes,
                            "captured hidden states");
}

/* The logits of the final-normed rows s->xf: all T rows or the last. */
static lw_status head_logits(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a, int r0, int T)
{
    const lw_model_config *c = &g->cfg;
    int H = c->hidden, V = c->vocab, rows = a->all_logits ? T : 1;
    lw_cuda_ptr xf = s->xf + (a->all_logits ? 0 : (size_t)(T - 1) * H * sizeof(float)), in = 0;
    float *dst = a->all_logits ? a->logits + (size_t)r0 * V : a->logits;
    lw_status st = lw_gpu_matmul_input(g, xf, s->xb, (size_t)rows * H, &in);
    if (!st) st = lw_gpu_matmul(g, s->logits, in, g->output, rows, H, V, c->n_layers, "output");
    if (!st) st = lw_cuda_download(g->cu, dst, s->logits, (size_t)rows * V * sizeof(float), "logits");
    return st;
}

/* Rows [r0, r0 + T) of the call through the blocks, then capture and
 * logits, as forward.c's chunk_forward. *complete is false when it stopped
 * early after the captured layer (no logits wanted). */
static lw_status chunk_forward(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a, int r0, int T,
                               bool *complete)
{
    const lw_model_config *c = &g->cfg;
    int n = c->n_layers, pos0 = a->pos0 + r0;
    bool need_logits = a->logits && (a->all_logits || r0 + T == a->T);
    int last_layer = a->logits ? n : a->capture_layer;   /* blocks needed: [0, last_layer) */
    for (int t = 0; t < T; t++) s->pos_host[t] = pos0 + t;
    lw_status st = lw_cuda_upload(g->cu, s->pos, s->pos_host, (size_t)T * sizeof(int), "positions");
    if (!st) st = lw_gpu_embed(g, s->x, s->ids, s->ids_host, a, r0, T);
    if (!st && a->capture_layer == 0) st = capture_rows(g, a, s->x, r0, T);
    lw_cuda_ptr pending = 0;
    for (int l = 0; !st && l < n && l < last_layer; l++) {
        st = block_forward(g, s, l, T, pos0, &pending);
        if (st || a->capture_layer != l + 1 || l + 1 == n) continue;
        /* The residual stream after block l still lacks its last branch
         * (fused into the next norm): add it now with that same norm, whose
         * output the next block recomputes, so x gets the same arithmetic. */
        st = lw_gpu_add_norm(g, s->x, s->xn, 0, pending, g->layers[l + 1].attn_norm, T);
        pending = 0;
        if (!st) st = capture_rows(g, a, s->x, r0, T);
    }
    *complete = last_layer >= n;
    if (st || !*complete || (!need_logits && a->capture_layer != n)) return st;   /* the cache holds the rest */

    st = lw_gpu_add_norm(g, s->x, s->xf, 0, pending, g->output_norm, T);
    if (!st && a->capture_layer == n) st = capture_rows(g, a, s->xf, r0, T);
    if (!st && need_logits) st = head_logits(g, s, a, r0, T);
    return st;
}

/* forward.c's check_args, less what the GPU path does not do yet. */
static lw_status check_args(const lw_gpu_model *g, const lw_gpu_state *s, const lw_forward_args *a)
{
    const lw_model_config *c = &g->cfg;
    if (a->n_segments)
        return lw_fail(LW_ERR_UNSUPPORTED, "GPU forward %s: segments (one pass over several continuations) are "
                       "CPU-only so far; run them one by one", c->name);
    if (a->T <= 0 || a->pos0 < 0 || a->pos0 > s->n_cached || a->T > s->max_tokens - a->pos0)
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: %d rows at position %d (cache holds %d of %d)", c->name,
                       a->T, a->pos0, s->n_cached, s->max_tokens);
    if (a->capture_layer < -1 || a->capture_layer > c->n_layers || (a->capture_layer >= 0 && !a->hidden_out))
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: capture layer %d (model has %d; hidden_out %s)", c->name,
                       a->capture_layer, c->n_layers, a->hidden_out ? "given" : "missing");
    if (!a->logits && a->capture_layer < 0)
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: logits is required unless a layer is captured", c->name);
    if (a->adapters)
        return lw_fail(LW_ERR_UNSUPPORTED, "GPU forward %s: adapters are not supported by the GPU forward yet; "
                       "use the CPU forward (or the GPU training pass)", c->name);
    if (!a->ids && !a->embeds) return lw_fail(LW_ERR_INVALID, "GPU forward %s: neither ids nor embeds", c->name);
    for (int t = 0; t < a->T; t++) {
        if (row_is_embed(a, t)) continue;
        if (!a->ids)
            return lw_fail(LW_ERR_INVALID, "GPU forward %s: row %d needs a token id, ids is NULL", c->name, t);
        if (a->ids[t] < 0 || a->ids[t] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "GPU forward %s: token id %d at row %d outside vocab %d", c->name,
                           a->ids[t], t, c->vocab);
    }
    return LW_OK;
}

lw_status lw_gpu_forward(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a)
{
    lw_status st = check_args(g, s, a);
    if (st) return st;
    bool complete = true;
    for (int r0 = 0; !st && r0 < a->T; r0 += s->chunk) {
        int T = a->T - r0 < s->chunk ? a->T - r0 : s->chunk;
        st = chunk_forward(g, s, a, r0, T, &complete);
    }
    char what[256];
    snprintf(what, sizeof what, "after the forward of %s (%d rows at %d)", g->cfg.name, a->T, a->pos0);
    if (!st) st = lw_cuda_sync(g->cu, what);
    /* After a failure the cache past pos0 is in an unknown state; after an
     * early stop the upper layers' rows were never written. */
    s->n_cached = st || !complete ? a->pos0 : a->pos0 + a->T;
    return st;
}
