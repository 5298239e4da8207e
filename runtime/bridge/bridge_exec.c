/* The bridge's plan on the CPU (bridge_exec.h). Each op kind is one call of
 * runtime/ops; the order of the calls, and so every float sum, is the
 * plan's (plan/bridge_plan.c chose it to match the hand-written passes it
 * replaced). */
#include "bridge_exec.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "ops.h"

/* lw_bridge_block's fields in lw_bridge_weight's order (1-based: 0 = none). */
#define BLOCK_W(w, field) [w] = offsetof(lw_bridge_block, field) + 1
static const size_t BLOCK_AT[LW_BW_COUNT] = {
    BLOCK_W(LW_BW_CROSS_NORM_Q_W, cross_norm_q_w), BLOCK_W(LW_BW_CROSS_NORM_Q_B, cross_norm_q_b),
    BLOCK_W(LW_BW_CROSS_NORM_KV_W, cross_norm_kv_w), BLOCK_W(LW_BW_CROSS_NORM_KV_B, cross_norm_kv_b),
    BLOCK_W(LW_BW_CROSS_Q, cross_q), BLOCK_W(LW_BW_CROSS_K, cross_k), BLOCK_W(LW_BW_CROSS_V, cross_v),
    BLOCK_W(LW_BW_CROSS_O, cross_o), BLOCK_W(LW_BW_SELF_NORM_W, self_norm_w),
    BLOCK_W(LW_BW_SELF_NORM_B, self_norm_b), BLOCK_W(LW_BW_SELF_Q, self_q), BLOCK_W(LW_BW_SELF_K, self_k),
    BLOCK_W(LW_BW_SELF_V, self_v), BLOCK_W(LW_BW_SELF_O, self_o), BLOCK_W(LW_BW_FFN_NORM_W, ffn_norm_w),
    BLOCK_W(LW_BW_FFN_NORM_B, ffn_norm_b), BLOCK_W(LW_BW_FC1_W, ffn_fc1_w), BLOCK_W(LW_BW_FC1_B, ffn_fc1_b),
    BLOCK_W(LW_BW_FC2_W, ffn_fc2_w), BLOCK_W(LW_BW_FC2_B, ffn_fc2_b)};

float *lw_bridge_exec_slot(const lw_bridge_memory *mem, float *arena, lw_bridge_slot s, int l)
{
    const lw_plan_buffer *buf = &mem->slots[s];
    if (s == LW_BS_NONE || buf->where == LW_PLAN_MEM_NONE) return NULL;
    size_t off = buf->offset + (buf->where == LW_PLAN_MEM_LAYER ? (size_t)l * mem->layer_bytes : 0);
    return (float *)((char *)arena + off);
}

float *lw_bridge_exec_grad(const lw_bridge_memory *mem, float *arena, lw_bridge_grad g)
{
    if (g == LW_BG_NONE || !mem->grad_elems[g]) return NULL;
    return (float *)((char *)arena + mem->grad_offset[g]);
}

/* What the ops of block l (or the model level, l = -1) run on, bound once. */
typedef struct {
    const lw_bridge *b;
    const lw_bridge_plan *p;
    const lw_bridge_memory *mem;
    float *arena;
    int T;
    bool want_dx;
    float *acts[LW_BS_COUNT];
    size_t w_at[LW_BW_COUNT];   /* offset into params / grads; (size_t)-1: none */
    float *grads[LW_BG_COUNT];
} exec;

static const size_t NO_W = LW_BRIDGE_NO_WEIGHT;

void lw_bridge_weight_offsets(const lw_bridge *b, int l, size_t at[LW_BW_COUNT])
{
    for (int w = 0; w < LW_BW_COUNT; w++) at[w] = NO_W;
    if (l >= 0) {
        const lw_bridge_block *k = &b->blocks[l];
        for (int w = 0; w < LW_BW_COUNT; w++)
            if (BLOCK_AT[w]) at[w] = *(const size_t *)((const char *)k + BLOCK_AT[w] - 1);
    }
    at[LW_BW_IN_W] = b->in_w, at[LW_BW_IN_B] = b->in_b, at[LW_BW_QUERIES] = b->queries;
    at[LW_BW_FINAL_NORM_W] = b->final_norm_w, at[LW_BW_FINAL_NORM_B] = b->final_norm_b;
    at[LW_BW_OUT_W] = b->out_w, at[LW_BW_OUT_B] = b->out_b;
    at[LW_BW_IN_MEAN] = b->in_mean, at[LW_BW_IN_STD] = b->in_std, at[LW_BW_OUT_SCALE] = b->out_scale;
}

static void bind(exec *x, int l)
{
    for (int s = 0; s < LW_BS_COUNT; s++) x->acts[s] = lw_bridge_exec_slot(x->mem, x->arena, (lw_bridge_slot)s, l);
    lw_bridge_weight_offsets(x->b, l, x->w_at);
    for (int g = 0; g < LW_BG_COUNT; g++) x->grads[g] = lw_bridge_exec_grad(x->mem, x->arena, (lw_bridge_grad)g);
    if (!x->want_dx) x->grads[LW_BG_DX] = x->grads[LW_BG_DXS] = NULL;
}

static const float *param(const exec *x, lw_bridge_weight w)
{
    return w != LW_BW_NONE && x->w_at[w] != NO_W ? x->b->params + x->w_at[w] : NULL;
}

static float *grad_of(const exec *x, lw_bridge_weight w)
{
    return w != LW_BW_NONE && x->w_at[w] != NO_W ? x->b->grads + x->w_at[w] : NULL;
}

static int rows(const exec *x, lw_bridge_rows r)
{
    return r == LW_BRIDGE_ROWS_T ? x->T : r == LW_BRIDGE_ROWS_ONE ? 1 : x->p->soft_tokens;
}

/* The standardisation's 1 / std of column c, the std floored. */
static float inv_std(const exec *x, const float *std, int c)
{
    float sd = std[c] > x->p->min_std ? std[c] : x->p->min_std;
    return 1.0f / sd;
}

static lw_attention_params attn_params(const lw_bridge_op *op)
{
    /* every key visible: no causal mask, no window, no cache */
    lw_attention_params ap = {false, 0, 0, 1.0f / sqrtf((float)op->head_dim)};
    return ap;
}

static void zero(float *p, size_t n)
{
    if (p) memset(p, 0, n * sizeof *p);
}

static void blocks_forward(const exec *top);
static void blocks_backward(const exec *top);

static void op_forward(const exec *x, const lw_bridge_op *op)
{
    int n = rows(x, op->rows), kv = rows(x, op->kv_rows);
    float *out = x->acts[op->out];
    switch (op->kind) {
    case LW_OP_MATMUL:
        matmul_forward(out, x->acts[op->in], param(x, op->w), param(x, op->b), n, op->width, op->out_width);
        break;
    case LW_OP_LAYERNORM:
        layernorm_forward(out, x->acts[op->aux], x->acts[op->aux2], x->acts[op->in], param(x, op->w),
                          param(x, op->b), n, op->width, x->p->norm_eps);
        break;
    case LW_OP_GELU: gelu_tanh_forward(out, x->acts[op->in], n * op->width); break;
    case LW_OP_ATTENTION: {
        lw_attention_params ap = attn_params(op);
        attention_forward(out, x->acts[op->aux], x->acts[op->parts[0]], x->acts[op->parts[1]], x->acts[op->parts[2]],
                          n, kv, op->heads, op->heads, op->head_dim, &ap);
        break;
    }
    case LW_OP_COPY: {
        const float *src = op->w != LW_BW_NONE ? param(x, op->w) : x->acts[op->in];
        memcpy(out, src, (size_t)n * op->width * sizeof *out);
        break;
    }
    case LW_OP_ADD: {
        const float *in = x->acts[op->in];
        for (size_t i = 0, N = (size_t)n * op->width; i < N; i++) out[i] += in[i];
        break;
    }
    case LW_OP_BLOCKS: blocks_forward(x); break;
    case LW_OP_STANDARDISE: {
        const float *in = x->acts[op->in], *mean = param(x, op->w), *std = param(x, op->b);
        size_t C = (size_t)op->width;
        for (size_t c = 0; c < C; c++) {
            float inv = inv_std(x, std, (int)c);
            for (size_t t = 0; t < (size_t)n; t++) out[t * C + c] = (in[t * C + c] - mean[c]) * inv;
        }
        break;
    }
    case LW_OP_MEAN_ROWS: {
        const float *in = x->acts[op->in];
        memset(out, 0, (size_t)op->width * sizeof *out);
        for (int t = 0; t < kv; t++)
            for (int c = 0; c < op->width; c++) out[c] += in[(size_t)t * op->width + c];
        for (int c = 0; c < op->width; c++) out[c] /= (float)kv;
        break;
    }
    case LW_OP_RMS_CALIBRATE: {
        float *zn = x->acts[op->keep], s = *param(x, op->w);
        rmsnorm_forward(zn, x->acts[op->aux], x->acts[op->in], NULL, n, op->width, x->p->calib_eps, LW_NORM_RMSNORM);
        for (size_t i = 0, N = (size_t)n * op->width; i < N; i++) out[i] = zn[i] * s;
        break;
    }
    case LW_OP_RMSNORM: case LW_OP_ROPE: case LW_OP_GLU: case LW_OP_EMBEDDING: case LW_OP_LOGITS:
    case LW_OP_HEAD_LOGSOFTMAX:
    case LW_OP_KIND_COUNT: break;   /* the decoder's: never in a bridge plan */
    }
}

static void op_backward(const exec *x, const lw_bridge_op *op)
{
    int n = rows(x, op->rows), kv = rows(x, op->kv_rows);
    float *din = x->grads[op->din], *dout = x->grads[op->dout];
    bool zero_din = op->flags & LW_PLAN_ZERO_DIN;
    switch (op->kind) {
    case LW_OP_MATMUL:
        if (zero_din) zero(din, (size_t)n * op->width);
        matmul_backward(din, grad_of(x, op->w), grad_of(x, op->b), dout, x->acts[op->keep], param(x, op->w), n,
                        op->width, op->out_width);
        break;
    case LW_OP_LAYERNORM:
        if (zero_din) zero(din, (size_t)n * op->width);
        layernorm_backward(din, grad_of(x, op->w), grad_of(x, op->b), dout, x->acts[op->keep], param(x, op->w),
                           x->acts[op->aux], x->acts[op->aux2], n, op->width);
        break;
    case LW_OP_GELU:
        if (zero_din) zero(din, (size_t)n * op->width);
        gelu_tanh_backward(din, dout, x->acts[op->keep], n * op->width);
        break;
    case LW_OP_ATTENTION: {
        float *dq = x->grads[op->dparts[0]], *dk = x->grads[op->dparts[1]], *dv = x->grads[op->dparts[2]];
        if (zero_din) {
            zero(dq, (size_t)n * op->width), zero(dk, (size_t)kv * op->width), zero(dv, (size_t)kv * op->width);
        }
        lw_attention_params ap = attn_params(op);
        attention_backward(dq, dk, dv, dout, x->acts[op->aux], x->acts[op->parts[0]], x->acts[op->parts[1]],
                           x->acts[op->parts[2]], n, kv, op->heads, op->heads, op->head_dim, &ap);
        break;
    }
    case LW_OP_COPY: {
        /* a copy of a slot shares its gradient; a copy of a tensor (the queries) hands dout to it */
        float *dw = op->w != LW_BW_NONE ? grad_of(x, op->w) : NULL;
        if (dw)
            for (size_t i = 0, N = (size_t)n * op->width; i < N; i++) dw[i] += dout[i];
        break;
    }
    case LW_OP_ADD: break;   /* in and out share a gradient */
    case LW_OP_BLOCKS:
        if (zero_din) zero(din, (size_t)kv * op->width);
        blocks_backward(x);
        break;
    case LW_OP_STANDARDISE: {   /* the statistics are constants: din only, and only when asked */
        if (!din) break;
        if (zero_din) zero(din, (size_t)n * op->width);
        const float *std = param(x, op->b);
        for (int c = 0; c < op->width; c++) {
            float inv = inv_std(x, std, c);
            for (int t = 0; t < n; t++) din[(size_t)t * op->width + c] += dout[(size_t)t * op->width + c] * inv;
        }
        break;
    }
    case LW_OP_MEAN_ROWS:
        if (!din) break;
        if (zero_din) zero(din, (size_t)kv * op->width);
        for (int t = 0; t < kv; t++)
            for (int c = 0; c < op->width; c++) din[(size_t)t * op->width + c] += dout[c] / (float)kv;
        break;
    case LW_OP_RMS_CALIBRATE: {
        /* d out_scale = sum dout . zn (in double, over M x R terms); dzn = dout x out_scale */
        float s = *param(x, op->w), *dzn = x->grads[op->dparts[0]];
        const float *zn = x->acts[op->keep];
        double ds = 0.0;
        for (size_t i = 0, N = (size_t)n * op->width; i < N; i++) {
            ds += (double)dout[i] * zn[i];
            dzn[i] = dout[i] * s;
        }
        *grad_of(x, op->w) += (float)ds;
        if (zero_din) zero(din, (size_t)n * op->width);
        rmsnorm_backward(din, NULL, dzn, x->acts[op->in], NULL, x->acts[op->aux], n, op->width, LW_NORM_RMSNORM);
        break;
    }
    case LW_OP_RMSNORM: case LW_OP_ROPE: case LW_OP_GLU: case LW_OP_EMBEDDING: case LW_OP_LOGITS:
    case LW_OP_HEAD_LOGSOFTMAX:
    case LW_OP_KIND_COUNT: break;
    }
}

static void blocks_forward(const exec *top)
{
    exec x = *top;
    for (int l = 0; l < top->p->depth; l++) {
        bind(&x, l);
        for (int i = 0; i < top->p->n_ops; i++) op_forward(&x, &top->p->ops[i]);
    }
}

static void blocks_backward(const exec *top)
{
    exec x = *top;
    for (int l = top->p->depth - 1; l >= 0; l--) {
        bind(&x, l);
        for (int i = top->p->n_ops - 1; i >= 0; i--) op_backward(&x, &top->p->ops[i]);
    }
}

void lw_bridge_exec_forward(const lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                            int T)
{
    exec x = {.b = b, .p = p, .mem = mem, .arena = arena, .T = T};
    bind(&x, -1);
    for (int i = 0; i < p->n_model_ops; i++) op_forward(&x, &p->model_ops[i]);
}

void lw_bridge_exec_backward(lw_bridge *b, const lw_bridge_plan *p, const lw_bridge_memory *mem, float *arena,
                             int T, bool want_dx)
{
    exec x = {.b = b, .p = p, .mem = mem, .arena = arena, .T = T, .want_dx = want_dx};
    bind(&x, -1);
    for (int i = p->n_model_ops - 1; i >= 0; i--) op_backward(&x, &p->model_ops[i]);
}
