/* The CUDA executor of a plan (declared in gpu_model.h): plan_cpu.c's walk over device
 * buffers. Each op kind calls its kernel through the typed launchers
 * (kernel_launchers.h) or cuBLAS:
 *
 *   COPY       copy_forward (a saved copy; rows into the KV cache)
 *   RMSNORM    residual_rmsnorm_forward without a residual (one row per
 *              token) or qk_rmsnorm_forward (per head); rmsnorm_backward /
 *              qk_rmsnorm_backward
 *   MATMUL     one cuBLAS product per part straight into the part (the GPU
 *              holds wq, wk, wv and w_gate, w_up apart, so there is no fused
 *              output to split), the part's slice of a bias (bias_add_forward:
 *              Qwen2's bqkv; frozen, so nothing in backward), then the part's
 *              LoRA hook (lora_forward);
 *              backward: the parts' dx products summed, then each part's
 *              lora_backward_input / lora_backward_weights
 *   ROPE       rope_apply (sign -1 in backward)
 *   ATTENTION  attention_forward / attention_backward over the layer's
 *              keys, a deep prefix as n_sink keys before position 0; packed
 *              segments (positions restarting per segment) in one launch of
 *              attention_varlen_forward / _backward, each segment over the
 *              prefix, the cache's pos0 keys and its own rows
 *   GLU        glu_forward / glu_backward
 *   ADD        add_forward
 *   model      embedding_forward (lw_gpu_embed), the blocks, the logits
 *              product (cuBLAS)
 *   HEAD_LOGSOFTMAX  label scoring on the logits rows LOGITS just made, one
 *              token a row: cross_entropy_forward_backward without a
 *              gradient gives each row's -log p (its lse minus the token's
 *              logit); backward the same kernel's gradient, the dlogits
 *              LOGITS' backward reads (lw_plan_cuda_head_logsoftmax, run
 *              on the rows a caller asks, as the CPU's frozen_matmul.c)
 *
 * Kernels that accumulate (the norms' and GLU's backward, the LoRA ones)
 * get a zeroed buffer where the op is flagged LW_PLAN_ZERO_DIN, as the CPU
 * executor zeroes before its accumulating ops. */
#include "gpu_model.h"

#include <limits.h>

#include <stddef.h>
#include <stdio.h>

/* The executor's device steps that gpu_model.h declares (products, their
 * bf16 input, RoPE, embedding rows). */
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

/* dx[T, in] (+)= dy[T, out] @ w: fp32, or with bf16 weights dy converted
 * into xb (f32_to_bf16) and a bf16 product with fp32 accumulation. */
static lw_status gpu_matmul_dx(lw_gpu_model *g, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr xb, lw_cuda_ptr w, int T,
                               int in, int out, bool accumulate, const char *what)
{
    lw_status st;
    if (g->bf16) {
        lw_cuda_ptr dyb = 0;
        st = lw_gpu_matmul_input(g, dy, xb, (size_t)T * out, &dyb);
        if (!st) st = lw_cublas_matmul_dx_bf16(g->blas, dx, dyb, w, T, in, out, accumulate, what);
    } else {
        st = lw_cublas_matmul_dx(g->blas, dx, dy, w, T, in, out, accumulate, what);
    }
    if (!st && g->sync_each_launch) st = lw_cuda_sync(g->cu, what);
    return st;
}

lw_status lw_gpu_rope(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr pos, int T, int heads, int layer, float sign)
{
    float base = lw_gpu_rope_base(&g->cfg, layer);
    int scaled = !lw_layer_is_local(&g->cfg, layer);   /* as the CPU's inv_freq_global / _local */
    return lwk_rope_apply(lw_gpu_launcher(g), &g->k, x, pos, T, heads, base, sign, scaled, g->cfg.head_dim);
}

/* The embedding kernel for every row (id 0 at rows that take an embedding),
 * then the given embeddings copied over their rows. */
lw_status lw_gpu_embed(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr ids_dev, int *ids_host, const lw_forward_args *a,
                       int r0, int T)
{
    size_t row_bytes = (size_t)g->cfg.hidden * sizeof(float);
    for (int t = 0; t < T; t++) ids_host[t] = lw_forward_row_is_embed(a, r0 + t) ? 0 : a->ids[r0 + t];
    lw_status st = lw_cuda_upload(g->cu, ids_dev, ids_host, (size_t)T * sizeof(int), "token ids");
    if (!st) st = lwk_embedding_forward(lw_gpu_launcher(g), &g->k, x, ids_dev, g->token_embd, T);
    /* Runs of consecutive embedding rows, one copy each (the copies wait for the kernel: same stream). */
    for (int t = 0; !st && t < T;) {
        if (!lw_forward_row_is_embed(a, r0 + t)) {
            t++;
            continue;
        }
        int u = t;
        while (u < T && lw_forward_row_is_embed(a, r0 + u)) u++;
        st = lw_cuda_upload(g->cu, x + (size_t)t * row_bytes, a->embeds + (size_t)(r0 + t) * g->cfg.hidden,
                            (size_t)(u - t) * row_bytes, "input embeddings");
        t = u;
    }
    return st;
}

static const size_t F32 = sizeof(float);

/* ---- slots to device pointers --------------------------------------------- */

#define LAYER_W(w, field) [w] = offsetof(lw_gpu_layer, field) + 1   /* + 1: 0 marks "not a layer weight" */
static const size_t WEIGHT_AT[LW_W_COUNT] = {
    LAYER_W(LW_W_ATTN_NORM, attn_norm), LAYER_W(LW_W_WQ, wq), LAYER_W(LW_W_WK, wk), LAYER_W(LW_W_WV, wv),
    LAYER_W(LW_W_BQKV, bqkv), LAYER_W(LW_W_WO, wo), LAYER_W(LW_W_Q_NORM, q_norm), LAYER_W(LW_W_K_NORM, k_norm),
    LAYER_W(LW_W_POST_ATTN_NORM, post_attn_norm), LAYER_W(LW_W_FFN_NORM, ffn_norm), LAYER_W(LW_W_GATE, w_gate),
    LAYER_W(LW_W_UP, w_up), LAYER_W(LW_W_DOWN, w_down), LAYER_W(LW_W_POST_FFN_NORM, post_ffn_norm)};

/* What the ops of one layer (l >= 0) or of the model level (l = -1) run on,
 * bound once per layer as plan_cpu.c binds. */
typedef struct {
    const lw_cuda_plan_bufs *b;
    lw_gpu_model *g;
    const lw_plan *p;
    int l, T, pos0;
    lw_cuda_ptr pos;                      /* the rows' positions (device) */
    lw_cuda_ptr seg;                      /* packed segments: each row's segment's first row; 0: one sequence */
    int n_seg;                            /* and their lengths (a prefix each: b->seg_prefix_k) */
    const int *seg_len;
    lw_cuda_ptr acts[LW_SLOT_COUNT];
    lw_cuda_ptr weights[LW_W_COUNT];
    lw_cuda_ptr grads[LW_GRAD_COUNT];
    lw_cuda_ptr keys, values;             /* the layer's first key row (a prefix's, if any) */
    lw_cuda_ptr dkeys, dvalues;           /* attention's key gradients, prefix rows first */
} exec;

static size_t kvd_of(const lw_model_config *c) { return (size_t)c->n_kv_heads * c->head_dim; }

static void bind(exec *x, int l, int row, bool backward)
{
    const lw_cuda_plan_bufs *b = x->b;
    const lw_model_config *c = &x->g->cfg;
    x->l = l;
    const lw_cuda_plan_acts *A = l < 0 ? NULL : &b->layers[b->n_layer_sets == 1 ? 0 : l];
    for (int s = 0; s < LW_SLOT_COUNT; s++) {
        lw_cuda_ptr base = A ? A->at[s] : 0;
        x->acts[s] = base ? base + (size_t)row * lw_plan_cuda_slot_width(c, (lw_plan_slot)s) * F32 : 0;
    }
    /* the log-sum-exp is laid out [n_heads, T] for the call's T: kept for a pass at row 0 only */
    x->acts[LW_SLOT_ATT] = A && row == 0 ? A->at[LW_SLOT_ATT] : 0;
    const lw_plan_slot top[] = {LW_SLOT_X, LW_SLOT_XF, LW_SLOT_RSTD_FINAL};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        x->acts[top[i]] = b->top.at[top[i]] ? b->top.at[top[i]] + (size_t)row * lw_plan_cuda_slot_width(c, top[i]) * F32
                                            : 0;
    x->acts[LW_SLOT_LOGITS] = b->top.at[LW_SLOT_LOGITS];
    size_t kvd = kvd_of(c), P = (size_t)b->n_prefix;
    x->keys = x->values = 0;
    if (l >= 0) {
        size_t first = (size_t)l * b->cache_rows * kvd * F32;
        x->keys = b->key_cache + first;
        x->values = b->value_cache + first;
        x->acts[LW_SLOT_K_CACHE] = b->device_positions ? b->k_rows : x->keys + (P + x->pos0) * kvd * F32;
        x->acts[LW_SLOT_V_CACHE] = b->device_positions ? b->v_rows : x->values + (P + x->pos0) * kvd * F32;
    }
    const lw_gpu_layer *L = l >= 0 ? &x->g->layers[l] : NULL;
    for (int w = 0; w < LW_W_COUNT; w++)
        x->weights[w] = L && WEIGHT_AT[w] ? *(const lw_cuda_ptr *)((const char *)L + WEIGHT_AT[w] - 1) : 0;
    x->weights[LW_W_TOKEN_EMBD] = x->g->token_embd;
    x->weights[LW_W_OUTPUT_NORM] = x->g->output_norm;
    x->weights[LW_W_OUTPUT] = x->g->output;
    for (int i = 0; i < LW_GRAD_COUNT; i++) x->grads[i] = backward ? b->grad[i] : 0;
    x->dkeys = x->dvalues = 0;
    if (backward && l >= 0) {
        /* with a deep prefix the text's key gradients are rows n_prefix.. of the layer's own */
        x->dkeys = b->dkeys ? b->dkeys[l] : b->grad[LW_GRAD_DK];
        x->dvalues = b->dvalues ? b->dvalues[l] : b->grad[LW_GRAD_DV];
        x->grads[LW_GRAD_DK] = x->dkeys + P * kvd * F32;
        x->grads[LW_GRAD_DV] = x->dvalues + P * kvd * F32;
    }
}

static lw_launch launcher(const exec *x) { return lw_gpu_launcher(x->g); }

/* The tests' hook after each block op of a walk (gpu_model.h, after_op). */
static void after_op(const exec *x, int j, bool backward)
{
    if (x->g->after_op) x->g->after_op(x->g->after_op_user, x->l, j, backward);
}

static lw_status zero(const exec *x, lw_cuda_ptr buf, size_t n)
{
    return lw_cuda_memset0(x->g->cu, buf, n * F32, "a gradient buffer of the CUDA plan");
}

static int window(const exec *x) { return lw_plan_layer_local(x->p, x->l) ? x->p->sliding_window : 0; }

/* ---- LoRA, the hook after an adapted projection ---------------------------- */

static const lw_lora_slot *lora_slot(const exec *x, lw_plan_lora t)
{
    const lw_lora *lo = x->b->lora.lora;
    if (!lo || lo->merged || t == LW_PLAN_LORA_NONE || x->l < 0) return NULL;
    const lw_lora_slot *s = lw_lora_slot_at(lo, x->l, (lw_lora_target)t);
    return s->on ? s : NULL;
}

/* y[T, out] += s B A dropout(in[T, in]) */
static lw_status lora_forward(const exec *x, lw_plan_lora t, lw_cuda_ptr in, lw_cuda_ptr y)
{
    const lw_lora_slot *s = lora_slot(x, t);
    if (!s) return LW_OK;
    const lw_cuda_plan_lora *lo = &x->b->lora;
    return lwk_lora_forward(launcher(x), &x->g->k, y, in, lo->params + s->a * F32, lo->params + s->b * F32, x->pos,
                            x->T, lo->lora->cfg.rank, (int)t, lo->lora->scale, lo->dropout, lo->seed, x->l);
}

/* din[T, in] += its input gradient; dA, dB added into the device gradients */
static lw_status lora_backward(const exec *x, lw_plan_lora t, lw_cuda_ptr in, lw_cuda_ptr dy, lw_cuda_ptr din)
{
    const lw_lora_slot *s = lora_slot(x, t);
    if (!s) return LW_OK;
    const lw_cuda_plan_lora *lo = &x->b->lora;
    lw_cuda_ptr A = lo->params + s->a * F32, B = lo->params + s->b * F32;
    int rank = lo->lora->cfg.rank;
    lw_status st = lwk_lora_backward_input(launcher(x), &x->g->k, din, lo->u, lo->du, in, dy, A, B, x->pos, x->T,
                                           rank, (int)t, lo->lora->scale, lo->dropout, lo->seed, x->l);
    if (!st)
        st = lwk_lora_backward_weights(launcher(x), &x->g->k, lo->grads + s->a * F32, lo->grads + s->b * F32, lo->u,
                                       lo->du, in, dy, x->pos, x->T, rank, (int)t, lo->dropout, lo->seed, x->l,
                                       s->in, s->out);
    return st;
}

/* ---- packed segments that each have their own deep prefix ------------------ */

/* Segment g's keys (or values) of this layer as [its prefix | its len rows] into dst. */
static lw_status gather_segment(const exec *x, lw_cuda_ptr dst, lw_cuda_ptr prefixes, lw_cuda_ptr rows, int g,
                                int r0, int len)
{
    const lw_model_config *c = &x->g->cfg;
    size_t kvd = kvd_of(c), np = (size_t)x->b->n_prefix * kvd;
    lw_status st = lwk_copy_forward(launcher(x), &x->g->k, dst, prefixes + ((size_t)g * c->n_layers + x->l) * np * F32,
                                    (int)np);
    if (!st)
        st = lwk_copy_forward(launcher(x), &x->g->k, dst + np * F32, rows + (np + (size_t)r0 * kvd) * F32,
                              len * (int)kvd);
    return st;
}

/* plan_attend.c's attend_segments with prefix_segments: one attention_forward a segment over its gathered keys,
 * the prefix's P as sink keys; the log-sum-exp of segment g at [n_heads, len] from n_heads x r0. */
static lw_status own_prefix_forward(const exec *x, const lw_plan_op *op)
{
    const lw_cuda_plan_bufs *b = x->b;
    int P = b->n_prefix;
    size_t qd = (size_t)x->g->cfg.n_heads * x->g->cfg.head_dim;
    lw_status st = LW_OK;
    for (int g = 0, r0 = 0; !st && g < x->n_seg; r0 += x->seg_len[g++]) {
        int len = x->seg_len[g];
        lw_cuda_ptr lse = x->acts[op->aux] ? x->acts[op->aux] + (size_t)op->rows * r0 * F32 : 0;
        st = gather_segment(x, b->seg_keys, b->seg_prefix_k, x->keys, g, r0, len);
        if (!st) st = gather_segment(x, b->seg_values, b->seg_prefix_v, x->values, g, r0, len);
        if (!st)
            st = lwk_attention_forward(launcher(x), &x->g->k, x->acts[op->out] + r0 * qd * F32, lse,
                                       x->acts[op->parts[0].slot] + r0 * qd * F32, b->seg_keys, b->seg_values, len,
                                       P + len, P, window(x), P, op->rows);
    }
    return st;
}

/* Its backward: each segment's key gradients back to its rows, its prefix's to seg_dprefix_k / _v (written). */
static lw_status own_prefix_backward(const exec *x, const lw_plan_op *op)
{
    const lw_cuda_plan_bufs *b = x->b;
    const lw_model_config *c = &x->g->cfg;
    int P = b->n_prefix;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = kvd_of(c), np = (size_t)P * kvd;
    lw_cuda_ptr dq = x->grads[op->parts[0].grad];
    lw_status st = zero(x, dq, (size_t)x->T * qd);
    for (int g = 0, r0 = 0; !st && g < x->n_seg; r0 += x->seg_len[g++]) {
        int len = x->seg_len[g];
        size_t own = ((size_t)g * c->n_layers + x->l) * np * F32, at = (size_t)r0 * qd * F32;
        lw_cuda_ptr lse = x->acts[op->aux] + (size_t)op->rows * r0 * F32;
        st = gather_segment(x, b->seg_keys, b->seg_prefix_k, x->keys, g, r0, len);
        if (!st) st = gather_segment(x, b->seg_values, b->seg_prefix_v, x->values, g, r0, len);
        if (!st) st = zero(x, b->seg_dkeys, np + (size_t)len * kvd);
        if (!st) st = zero(x, b->seg_dvalues, np + (size_t)len * kvd);
        if (!st)
            st = lwk_attention_backward(launcher(x), &x->g->k, dq + at, b->seg_dkeys, b->seg_dvalues,
                                        x->grads[op->dout] + at, x->acts[op->out] + at, lse,
                                        x->acts[op->parts[0].slot] + at, b->seg_keys, b->seg_values, len, P + len, P,
                                        window(x), P, op->rows);
        const lw_cuda_ptr from[4] = {b->seg_dkeys + np * F32, b->seg_dvalues + np * F32, b->seg_dkeys,
                                     b->seg_dvalues};
        const lw_cuda_ptr to[4] = {x->grads[LW_GRAD_DK] + (size_t)r0 * kvd * F32,
                                   x->grads[LW_GRAD_DV] + (size_t)r0 * kvd * F32, b->seg_dprefix_k + own,
                                   b->seg_dprefix_v + own};
        for (int i = 0; !st && i < 4; i++)
            st = lwk_copy_forward(launcher(x), &x->g->k, to[i], from[i], i < 2 ? len * (int)kvd : (int)np);
    }
    return st;
}

/* ---- one op forward ------------------------------------------------------- */

static lw_status matmul_op_forward(const exec *x, const lw_plan_op *op)
{
    lw_cuda_ptr in = x->acts[op->in], prod = 0;
    lw_status st = lw_gpu_matmul_input(x->g, in, x->b->xb, (size_t)x->T * op->width, &prod);
    /* a bias (op->b) is fused over the parts, [sum of widths]: part i's is the slice after the parts before it */
    for (int i = 0, off = 0; !st && i < op->n_parts; off += op->parts[i++].width) {
        const lw_plan_part *pt = &op->parts[i];
        st = lw_gpu_matmul(x->g, x->acts[pt->slot], prod, x->weights[pt->w], x->T, op->width, pt->width, x->l,
                           lw_plan_weight_name(pt->w));
        if (!st && op->b != LW_W_NONE)
            st = lwk_bias_add_forward(launcher(x), &x->g->k, x->acts[pt->slot], x->weights[op->b] + (size_t)off * F32,
                                      x->T, pt->width);
    }
    for (int i = 0; !st && i < op->n_parts; i++)
        st = lora_forward(x, op->parts[i].lora, in, x->acts[op->parts[i].slot]);
    return st;
}

static lw_status op_forward(const exec *x, const lw_plan_op *op)
{
    lw_launch L = launcher(x);
    const lw_model_kernels *k = &x->g->k;
    int T = x->T;
    switch (op->kind) {
    case LW_OP_COPY:
        if (!x->acts[op->out] && (op->flags & LW_PLAN_OPTIONAL)) return LW_OK;
        return lwk_copy_forward(L, k, x->acts[op->out], x->acts[op->in], T * op->width);
    case LW_OP_RMSNORM:
        if (op->rows == 1)
            return lwk_residual_rmsnorm_forward(L, k, x->acts[op->in], x->acts[op->out], x->acts[op->aux], 0,
                                                x->weights[op->w], T);
        return lwk_qk_rmsnorm_forward(L, k, x->acts[op->out], x->acts[op->aux], x->acts[op->in], x->weights[op->w],
                                      T * op->rows);
    case LW_OP_MATMUL: return matmul_op_forward(x, op);
    case LW_OP_ROPE: return lw_gpu_rope(x->g, x->acts[op->out], x->pos, T, op->rows, x->l, 1.f);
    case LW_OP_ATTENTION: {
        int P = x->b->n_prefix;
        if (x->b->device_positions) {
            /* the step's k and v rows into the cache at the device-held positions, then attention over them */
            lw_status st = lwk_kv_cache_store(L, k, x->keys, x->acts[op->parts[1].slot], x->pos, T, P,
                                              op->parts[1].width);
            if (!st)
                st = lwk_kv_cache_store(L, k, x->values, x->acts[op->parts[2].slot], x->pos, T, P,
                                        op->parts[2].width);
            if (!st)
                st = lwk_attention_decode_forward(L, k, x->acts[op->out], x->acts[op->aux], x->acts[op->parts[0].slot],
                                                  x->keys, x->values, x->pos, T, window(x), P, op->rows);
            return st;
        }
        if (x->seg && x->b->seg_prefix_k) return own_prefix_forward(x, op);
        if (x->seg)   /* packed segments: each over the P + pos0 head keys and its own rows */
            return lwk_attention_varlen_forward(L, k, x->acts[op->out], x->acts[op->aux], x->acts[op->parts[0].slot],
                                                x->keys, x->values, x->seg, T, P + x->pos0, window(x), P, op->rows);
        return lwk_attention_forward(L, k, x->acts[op->out], x->acts[op->aux], x->acts[op->parts[0].slot], x->keys,
                                     x->values, T, P + x->pos0 + T, P + x->pos0, window(x), P, op->rows);
    }
    case LW_OP_GLU:
        return lwk_glu_forward(L, k, x->acts[op->out], x->acts[op->parts[0].slot], x->acts[op->parts[1].slot],
                               T * op->width);
    case LW_OP_ADD: return lwk_add_forward(L, k, x->acts[op->out], x->acts[op->in], T * op->width);
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: case LW_OP_LOGITS: case LW_OP_HEAD_LOGSOFTMAX: case LW_OP_LAYERNORM:
    case LW_OP_GELU: case LW_OP_STANDARDISE: case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE:
    case LW_OP_KIND_COUNT: break;   /* model level; layernorm .. rms_calibrate: the bridge's */
    }
    return LW_OK;
}

/* ---- one op backward ------------------------------------------------------ */

static lw_status matmul_op_backward(const exec *x, const lw_plan_op *op)
{
    lw_cuda_ptr din = x->grads[op->din], in = x->acts[op->keep];
    lw_status st = LW_OK;
    for (int i = 0; !st && i < op->n_parts; i++) {
        const lw_plan_part *pt = &op->parts[i];
        bool accumulate = i > 0 || !(op->flags & LW_PLAN_ZERO_DIN);
        char what[96];
        snprintf(what, sizeof what, "%s layer %d %s backward", x->g->cfg.name, x->l, lw_plan_weight_name(pt->w));
        st = gpu_matmul_dx(x->g, din, x->grads[pt->grad], x->b->xb, x->weights[pt->w], x->T, op->width, pt->width,
                           accumulate, what);
    }
    for (int i = 0; !st && i < op->n_parts; i++)
        st = lora_backward(x, op->parts[i].lora, in, x->grads[op->parts[i].grad], din);
    return st;
}

static lw_status op_backward(const exec *x, const lw_plan_op *op)
{
    lw_launch L = launcher(x);
    const lw_model_kernels *k = &x->g->k;
    int T = x->T;
    lw_status st = LW_OK;
    switch (op->kind) {
    case LW_OP_RMSNORM: {
        lw_cuda_ptr din = x->grads[op->din];
        size_t rows = (size_t)T * op->rows;
        if (op->flags & LW_PLAN_ZERO_DIN) st = zero(x, din, rows * op->width);
        if (st) return st;
        /* dw 0: the gains are frozen */
        if (op->rows == 1)
            return lwk_rmsnorm_backward(L, k, din, 0, x->grads[op->dout], x->acts[op->keep], x->weights[op->w],
                                        x->acts[op->aux], T);
        return lwk_qk_rmsnorm_backward(L, k, din, 0, x->grads[op->dout], x->acts[op->keep], x->weights[op->w],
                                       x->acts[op->aux], (int)rows);
    }
    case LW_OP_MATMUL: return matmul_op_backward(x, op);
    case LW_OP_ROPE: return lw_gpu_rope(x->g, x->grads[op->dout], x->pos, T, op->rows, x->l, -1.f);
    case LW_OP_ATTENTION: {
        /* dq, dk, dv written, not accumulated: over the prefix's keys and the T rows' */
        if (x->seg && x->b->seg_prefix_k) return own_prefix_backward(x, op);
        int P = x->b->n_prefix;
        size_t kvd = kvd_of(&x->g->cfg);
        lw_cuda_ptr dq = x->grads[op->parts[0].grad];
        st = zero(x, dq, (size_t)T * op->parts[0].width);
        if (!st) st = zero(x, x->dkeys, ((size_t)P + T) * kvd);
        if (!st) st = zero(x, x->dvalues, ((size_t)P + T) * kvd);
        if (!st && x->seg)
            return lwk_attention_varlen_backward(L, k, dq, x->dkeys, x->dvalues, x->grads[op->dout], x->acts[op->out],
                                                 x->acts[op->aux], x->acts[op->parts[0].slot], x->keys, x->values,
                                                 x->seg, T, P, window(x), P, op->rows);
        if (!st)
            st = lwk_attention_backward(L, k, dq, x->dkeys, x->dvalues, x->grads[op->dout], x->acts[op->out],
                                        x->acts[op->aux], x->acts[op->parts[0].slot], x->keys, x->values, T, P + T, P,
                                        window(x), P, op->rows);
        return st;
    }
    case LW_OP_GLU: {
        lw_cuda_ptr dgate = x->grads[op->parts[0].grad], dup = x->grads[op->parts[1].grad];
        size_t n = (size_t)T * op->width;
        if (op->flags & LW_PLAN_ZERO_DIN) {
            st = zero(x, dgate, n);
            if (!st) st = zero(x, dup, n);
        }
        if (!st)
            st = lwk_glu_backward(L, k, dgate, dup, x->grads[op->dout], x->acts[op->parts[0].slot],
                                  x->acts[op->parts[1].slot], (int)n);
        return st;
    }
    /* a copy's and a residual add's input share their output's gradient slot (plan.c) */
    case LW_OP_COPY: case LW_OP_ADD: break;
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: case LW_OP_LOGITS: case LW_OP_HEAD_LOGSOFTMAX: case LW_OP_LAYERNORM:
    case LW_OP_GELU: case LW_OP_STANDARDISE: case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE:
    case LW_OP_KIND_COUNT: break;   /* model level; layernorm .. rms_calibrate: the bridge's */
    }
    return st;
}

/* ---- the model level -------------------------------------------------------- */

/* The T rows' positions from pos0 (device pos), restarting at pos0 in each
 * packed segment as plan_cpu.c's; with segments also each row's segment's
 * first row (b->seg, which attention_varlen_* reads; *seg set to it). */
static lw_status positions(const lw_cuda_plan_bufs *b, lw_cuda_ptr pos, int pos0, int T, int n_segments,
                           const int *segment_len, lw_cuda_ptr *seg)
{
    *seg = 0;
    for (int t = 0; t < T; t++) b->pos_host[t] = pos0 + t;
    if (n_segments > 0) {
        if (!b->seg || !b->seg_host)
            return lw_fail(LW_ERR_UNSUPPORTED, "CUDA backend, %s: %d packed segments, but this caller laid out no "
                           "segment table (lw_cuda_plan_bufs.seg)", b->g->cfg.name, n_segments);
        int r0 = 0;
        for (int i = 0; i < n_segments; r0 += segment_len[i++])
            for (int t = 0; t < segment_len[i] && r0 + t < T; t++) {
                b->pos_host[r0 + t] = pos0 + t;
                b->seg_host[r0 + t] = r0;
            }
        if (r0 != T)
            return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: %d segments of %d rows in all for %d rows",
                           b->g->cfg.name, n_segments, r0, T);
        lw_status st = lw_cuda_upload(b->g->cu, b->seg, b->seg_host, (size_t)T * sizeof(int), "segment starts");
        if (st) return st;
        *seg = b->seg;
    }
    return lw_cuda_upload(b->g->cu, pos, b->pos_host, (size_t)T * sizeof(int), "positions");
}

static lw_status capture(const exec *x, const lw_cuda_plan_call *c, lw_cuda_ptr rows)
{
    size_t H = (size_t)x->g->cfg.hidden;
    return lw_cuda_download(x->g->cu, c->hidden_out, rows, (size_t)c->T * H * F32, "captured hidden states");
}

/* Rows of a run list in all; 0 if one is negative or outside T. */
static int run_rows(const lw_cuda_plan_rows *r, int T)
{
    long total = 0;
    for (int i = 0; i < r->n_runs; i++) {
        if (r->rows[i] < 1 || r->from[i] < 0 || r->from[i] + r->rows[i] > T) return 0;
        total += r->rows[i];
    }
    return total > INT_MAX ? 0 : (int)total;
}

/* logits [rows, vocab] of the final-normed rows from.. (or of c->runs' rows, gathered) (device), then to the
 * host if asked */
static lw_status logits_forward(const exec *x, const lw_plan_op *op, const lw_cuda_plan_call *c)
{
    int H = op->width, V = op->parts[0].width, rows = c->logits_rows;
    lw_cuda_ptr xf = x->acts[op->in] + (size_t)c->logits_from * H * F32, in = 0, out = x->acts[LW_SLOT_LOGITS];
    lw_status st = LW_OK;
    if (c->runs) {
        const lw_cuda_plan_rows *r = c->runs;
        if (!(rows = run_rows(r, c->T)) || !r->scratch)
            return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: %d runs of scored rows outside the call's %d rows or "
                           "without a gather buffer", x->g->cfg.name, r->n_runs, c->T);
        for (int i = 0, at = 0; !st && i < r->n_runs; at += r->rows[i++])
            st = lwk_copy_forward(launcher(x), &x->g->k, r->scratch + (size_t)at * H * F32,
                                  x->acts[op->in] + (size_t)r->from[i] * H * F32, r->rows[i] * H);
        xf = r->scratch;
    }
    if (!st) st = lw_gpu_matmul_input(x->g, xf, x->b->xb, (size_t)rows * H, &in);
    if (!st) st = lw_gpu_matmul(x->g, out, in, x->weights[op->w], rows, H, V, x->g->cfg.n_layers, "output");
    if (!st && c->logits_host)
        st = lw_cuda_download(x->g->cu, c->logits_host, out, (size_t)rows * V * F32, "logits");
    return st;
}

lw_status lw_plan_cuda_forward(const lw_cuda_plan_bufs *b, const lw_cuda_plan_call *c, bool *complete)
{
    const lw_plan *p = b->plan;
    lw_gpu_model *g = b->g;
    int n = p->n_layers, T = c->T;
    /* blocks [0, last_layer): all of them unless a capture without logits stops early (lw_forward's rule) */
    int last_layer = c->a->logits || c->capture_layer < 0 ? n : c->capture_layer;
    *complete = true;
    lw_status st = lw_gpu_check_plan(p, &g->cfg);
    if (st) return st;
    if (b->device_positions && (c->a->n_segments || c->a->embeds || b->n_prefix || b->n_layer_sets != 1 ||
                                c->capture_layer >= 0 || c->row || !b->k_rows || !b->v_rows))
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: a graph-ready step takes token ids only, one set of "
                       "activations at row 0, no segments, prefix or capture, and its k / v rows", g->cfg.name);
    lw_cuda_ptr pos = b->pos + (size_t)c->row * sizeof(int);
    exec x = {.b = b, .g = g, .p = p, .T = T, .pos0 = c->pos0, .pos = pos}, blk = x;
    bind(&x, -1, c->row, false);
    for (int i = 0; !st && i < p->n_model_ops; i++) {
        const lw_plan_op *op = &p->model_ops[i];
        switch (op->kind) {
        case LW_OP_EMBEDDING:
            if (b->device_positions)   /* the ids are on the device already */
                st = lwk_embedding_forward(lw_gpu_launcher(g), &g->k, x.acts[op->out], b->ids, g->token_embd, T);
            else
                st = lw_gpu_embed(g, x.acts[op->out], b->ids, b->ids_host, c->a, c->r0, T);
            if (!st && c->capture_layer == 0) st = capture(&x, c, x.acts[op->out]);
            break;
        case LW_OP_BLOCKS:
            /* the rows' positions, which RoPE, LoRA's dropout and nothing before the blocks read */
            if (c->a->n_segments > 0 && (c->r0 != 0 || T != c->a->T))
                return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: packed segments come in one call (rows %d..%d of "
                               "%d)", g->cfg.name, c->r0, c->r0 + T, c->a->T);
            if (b->seg_prefix_k && (c->a->n_segments < 1 || c->pos0 != 0 || b->n_prefix < 1 || !b->seg_keys ||
                                    !b->seg_values))
                return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: a deep prefix per segment needs packed segments "
                               "from position 0 (%d segments at %d), a prefix (%d) and the gather buffers",
                               g->cfg.name, c->a->n_segments, c->pos0, b->n_prefix);
            if (c->a->adapters && c->a->adapters->prefix_len > 0 && c->a->adapters->prefix_segments &&
                !b->seg_prefix_k)
                return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: %d segments with a deep prefix each, but this "
                               "caller laid out no per-segment prefixes (lw_cuda_plan_bufs.seg_prefix_k)",
                               g->cfg.name, c->a->n_segments);
            if (!b->device_positions) st = positions(b, pos, c->pos0, T, c->a->n_segments, c->a->segment_len, &blk.seg);
            blk.n_seg = c->a->n_segments, blk.seg_len = c->a->segment_len;
            for (int l = 0; !st && l < last_layer; l++) {
                bind(&blk, l, c->row, false);
                for (int j = 0; !st && j < p->n_ops; j++) {
                    st = op_forward(&blk, &p->ops[j]);
                    if (!st) after_op(&blk, j, false);
                }
                if (!st && c->capture_layer == l + 1 && l + 1 < n) st = capture(&x, c, x.acts[LW_SLOT_X]);
            }
            if (!st && last_layer < n) {
                *complete = false;
                return LW_OK;
            }
            break;
        case LW_OP_LOGITS:
            /* capture n: the final-normed rows the logits are made from */
            if (c->capture_layer == n) st = capture(&x, c, x.acts[op->in]);
            if (!st && (c->logits_rows > 0 || c->runs)) st = logits_forward(&x, op, c);
            break;
        case LW_OP_HEAD_LOGSOFTMAX: break;   /* on the rows a caller asks: lw_plan_cuda_head_logsoftmax */
        default:
            /* output_norm: only where its rows are read (the cache already holds this chunk's keys) */
            if (op->out == LW_SLOT_XF && c->logits_rows == 0 && !c->runs && c->capture_layer != n) break;
            st = op_forward(&x, op);
            break;
        }
    }
    return st;
}

/* The output product's input gradient: dlogits' rows into their rows of din [T, hidden] (zeroed first): one
 * product straight into one run, or into the gather buffer and each run copied back. */
static lw_status logits_backward(const exec *x, const lw_plan_op *op, int T, const lw_cuda_plan_rows *r,
                                 lw_cuda_ptr dlogits)
{
    int H = op->width, V = op->parts[0].width, rows = run_rows(r, T);
    lw_cuda_ptr din = x->grads[op->din];
    if (!rows || (r->n_runs > 1 && !r->scratch))
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: backward from %d runs of scored rows outside %d rows or "
                       "without a gather buffer", x->g->cfg.name, r->n_runs, T);
    lw_status st = zero(x, din, (size_t)T * H);
    lw_cuda_ptr into = r->n_runs == 1 ? din + (size_t)r->from[0] * H * F32 : r->scratch;
    if (!st) st = gpu_matmul_dx(x->g, into, dlogits, x->b->xb, x->weights[op->w], rows, H, V, false, "output backward");
    for (int i = 0, at = 0; !st && r->n_runs > 1 && i < r->n_runs; at += r->rows[i++])
        st = lwk_copy_forward(launcher(x), &x->g->k, din + (size_t)r->from[i] * H * F32,
                              r->scratch + (size_t)at * H * F32, r->rows[i] * H);
    return st;
}

lw_status lw_plan_cuda_head_logsoftmax(const lw_cuda_plan_bufs *b, int r0, lw_cuda_ptr ids, int n_rows,
                                       lw_cuda_ptr loss, lw_cuda_ptr dlogits, float dloss)
{
    const lw_plan *p = b->plan;
    lw_gpu_model *g = b->g;
    const lw_plan_op *op = NULL;
    for (int i = 0; i < p->n_model_ops; i++)
        if (p->model_ops[i].kind == LW_OP_HEAD_LOGSOFTMAX) op = &p->model_ops[i];
    if (!op || op->parts[0].width != g->cfg.vocab)
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: the plan has no head_logsoftmax record over its vocab %d",
                       g->cfg.name, g->cfg.vocab);
    if (r0 < 0) return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: scored rows from row %d", g->cfg.name, r0);
    size_t V = (size_t)op->parts[0].width;
    if (dlogits) dlogits += (size_t)r0 * V * F32;
    lw_status st = LW_OK;
    /* the kernel adds into dlogits: cleared first, as the record's ZERO_DIN asks of its input gradient */
    if (dlogits && (op->flags & LW_PLAN_ZERO_DIN))
        st = lw_cuda_memset0(g->cu, dlogits, (size_t)n_rows * V * F32, "dlogits");
    if (!st)
        st = lwk_cross_entropy_forward_backward(lw_gpu_launcher(g), &g->k, dlogits, loss + (size_t)r0 * F32,
                                                b->top.at[LW_SLOT_LOGITS] + (size_t)r0 * V * F32,
                                                ids + (size_t)r0 * sizeof(int), n_rows, dloss);
    return st;
}

lw_status lw_plan_cuda_backward(const lw_cuda_plan_bufs *b, int T, int first, int n_rows, lw_cuda_ptr dlogits,
                                float *d_embeds)
{
    lw_cuda_plan_rows one = {.n_runs = 1, .from = &first, .rows = &n_rows};
    return lw_plan_cuda_backward_rows(b, T, &one, dlogits, d_embeds);
}

lw_status lw_plan_cuda_backward_rows(const lw_cuda_plan_bufs *b, int T, const lw_cuda_plan_rows *r,
                                     lw_cuda_ptr dlogits, float *d_embeds)
{
    const lw_plan *p = b->plan;
    lw_gpu_model *g = b->g;
    lw_status st = lw_gpu_check_plan(p, &g->cfg);
    if (st) return st;
    if (b->n_layer_sets != p->n_layers)
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: backward needs every layer's activations (%d sets for %d "
                       "layers)", g->cfg.name, b->n_layer_sets, p->n_layers);
    exec x = {.b = b, .g = g, .p = p, .T = T, .pos0 = 0, .pos = b->pos}, blk = x;
    if (b->seg_prefix_k && (b->n_segments < 1 || b->n_prefix < 1 || !b->seg_keys || !b->seg_values ||
                            !b->seg_dkeys || !b->seg_dvalues || !b->seg_dprefix_k || !b->seg_dprefix_v))
        return lw_fail(LW_ERR_INVALID, "CUDA backend, %s: backward with a deep prefix per segment needs the "
                       "segments (%d), a prefix (%d), the gather buffers and the prefix gradients", g->cfg.name,
                       b->n_segments, b->n_prefix);
    st = positions(b, b->pos, 0, T, b->n_segments, b->segment_len, &blk.seg);
    if (st) return st;
    blk.n_seg = b->n_segments, blk.seg_len = b->segment_len;
    bind(&x, -1, 0, true);
    after_op(&x, -1, true);
    for (int i = p->n_model_ops - 1; !st && i >= 0; i--) {
        const lw_plan_op *op = &p->model_ops[i];
        switch (op->kind) {
        case LW_OP_LOGITS: st = logits_backward(&x, op, T, r, dlogits); break;
        case LW_OP_HEAD_LOGSOFTMAX: break;   /* the caller's lw_plan_cuda_head_logsoftmax made dlogits */
        case LW_OP_BLOCKS:
            for (int l = p->n_layers - 1; !st && l >= 0; l--) {
                bind(&blk, l, 0, true);
                for (int j = p->n_ops - 1; !st && j >= 0; j--) {
                    st = op_backward(&blk, &p->ops[j]);
                    if (!st) after_op(&blk, j, true);
                }
            }
            break;
        case LW_OP_EMBEDDING:
            if (d_embeds)
                st = lw_cuda_download(g->cu, d_embeds, x.grads[op->dout], (size_t)T * op->width * F32,
                                      "input-row gradients");
            break;
        default: st = op_backward(&x, op); break;
        }
    }
    return st;
}
