/* The forward pass on the GPU: argument checks, then the model's plan run by
 * the CUDA executor (plan_cuda.c) a chunk of rows at a time over the
 * state's buffers (gpu_model.h), as forward.c runs it on the CPU.
 *
 * With bf16 weights each product's input is first converted to bf16 (into
 * the state's xb) by f32_to_bf16: once per projection op (q, k and v share
 * one, gate and up another). */
#include "gpu_model.h"

#include <stdio.h>


/* forward.c's check_args, less what the GPU path does not do (the one
 * check, lw_gpu_check_plan, says why). Packed segments leave the cache at
 * pos0 afterwards, as forward.c does: their rows are no one sequence. */
static lw_status check_args(const lw_gpu_model *g, const lw_gpu_state *s, const lw_forward_args *a)
{
    const lw_model_config *c = &g->cfg;
    lw_status st = lw_gpu_check_plan(&g->plan, c);
    if (st) return st;
    if (a->T <= 0 || a->pos0 < 0 || a->pos0 > s->n_cached || a->T > s->max_tokens - a->pos0)
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: %d rows at position %d (cache holds %d of %d)", c->name,
                       a->T, a->pos0, s->n_cached, s->max_tokens);
    if (a->capture_layer < -1 || a->capture_layer > c->n_layers || (a->capture_layer >= 0 && !a->hidden_out))
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: capture layer %d (model has %d; hidden_out %s)", c->name,
                       a->capture_layer, c->n_layers, a->hidden_out ? "given" : "missing");
    if (!a->logits && a->capture_layer < 0)
        return lw_fail(LW_ERR_INVALID, "GPU forward %s: logits is required unless a layer is captured", c->name);
    if (a->adapters)
        return lw_fail(LW_ERR_UNSUPPORTED, "GPU forward %s: the inference forward keeps no device copy of adapters "
                       "yet; use the CPU forward (or the GPU training pass, which runs them)", c->name);
    if (a->n_segments) {
        /* forward.c's rule: positive lengths summing to T, in one chunk */
        long sum = 0;
        bool bad = a->n_segments < 0 || !a->segment_len || a->T > s->chunk;
        for (int i = 0; !bad && i < a->n_segments; i++) bad = a->segment_len[i] < 1, sum += a->segment_len[i];
        if (bad || sum != a->T)
            return lw_fail(LW_ERR_INVALID, "GPU forward %s: %d segments of %ld rows in all (need positive lengths "
                           "summing to T = %d, at most %d rows)", c->name, a->n_segments, sum, a->T, s->chunk);
    }
    if (!a->ids && !a->embeds) return lw_fail(LW_ERR_INVALID, "GPU forward %s: neither ids nor embeds", c->name);
    for (int t = 0; t < a->T; t++) {
        if (lw_forward_row_is_embed(a, t)) continue;
        if (!a->ids)
            return lw_fail(LW_ERR_INVALID, "GPU forward %s: row %d needs a token id, ids is NULL", c->name, t);
        if (a->ids[t] < 0 || a->ids[t] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "GPU forward %s: token id %d at row %d outside vocab %d", c->name,
                           a->ids[t], t, c->vocab);
    }
    return LW_OK;
}

/* The state's buffers as the executor's slots: one set of chunk rows that
 * every layer shares (nothing is kept for a backward), carved at the plan's
 * offsets (lw_gpu_state_alloc), the KV cache, no prefix. The optional
 * copies (x_in, x_mid) have no bytes in a forward-only plan, so the
 * executor skips them. */
static void state_slots(lw_gpu_model *g, lw_gpu_state *s, lw_cuda_plan_bufs *b)
{
    *b = (lw_cuda_plan_bufs){.g = g, .plan = &g->plan, .layers = &s->slots, .n_layer_sets = 1, .top = s->top,
                             .key_cache = s->key_cache, .value_cache = s->value_cache, .cache_rows = s->max_tokens,
                             .pos = s->pos, .ids = s->ids, .pos_host = s->pos_host, .ids_host = s->ids_host,
                             .seg = s->seg, .seg_host = s->seg_host, .xb = s->xb};
    b->top.at[LW_SLOT_LOGITS] = s->logits;
}

lw_status lw_gpu_forward(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a)
{
    lw_status st = check_args(g, s, a);
    if (st) return st;
    int H = g->cfg.hidden, V = g->cfg.vocab;
    lw_cuda_plan_bufs bufs;
    state_slots(g, s, &bufs);
    bool complete = true;
    /* every chunk, also after an early stop: each captures its own rows */
    for (int r0 = 0; !st && r0 < a->T; r0 += s->chunk) {
        int T = a->T - r0 < s->chunk ? a->T - r0 : s->chunk;
        bool last = r0 + T == a->T, all = a->logits && a->all_logits;
        lw_cuda_plan_call c = {.a = a, .r0 = r0, .T = T, .pos0 = a->pos0 + r0, .row = 0,
                               .capture_layer = a->capture_layer,
                               .hidden_out = a->capture_layer >= 0 ? a->hidden_out + (size_t)r0 * H : NULL,
                               .logits_from = all ? 0 : T - 1,
                               .logits_rows = all ? T : a->logits && last ? 1 : 0,
                               .logits_host = !a->logits ? NULL : all ? a->logits + (size_t)r0 * V : a->logits};
        st = lw_plan_cuda_forward(&bufs, &c, &complete);
    }
    char what[256];
    snprintf(what, sizeof what, "after the forward of %s (%d rows at %d)", g->cfg.name, a->T, a->pos0);
    if (!st) st = lw_cuda_sync(g->cu, what);
    /* After a failure the cache past pos0 is in an unknown state; after an
     * early stop the upper layers' rows were never written. */
    s->n_cached = st || !complete || a->n_segments ? a->pos0 : a->pos0 + a->T;   /* segments: forward.c's rule */
    return st;
}
