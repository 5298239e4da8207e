/* The lowering: a model config to its plan (plan.h). This is the one place
 * that says what a decoder block computes and in which order; the order
 * follows Hugging Face's LlamaDecoderLayer / Gemma3DecoderLayer /
 * Qwen2/Qwen3DecoderLayer, so the CPU forward agrees with them to rounding.
 * The gradient slots chosen here are what the backward walk reads and
 * writes: a value and the in-place ops over it keep one gradient buffer. */
#include "plan.h"

#include <assert.h>
#include <string.h>

typedef struct {
    lw_plan_op *ops;
    int *n;
    int cap;
} op_list;

static lw_plan_op *add(op_list *l, lw_op_kind kind)
{
    assert(*l->n < l->cap);   /* the op counts below fit LW_PLAN_MAX_OPS by construction */
    lw_plan_op *op = &l->ops[(*l->n)++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->rows = 1;
    for (int i = 0; i < LW_PLAN_MAX_PARTS; i++) op->parts[i].lora = LW_PLAN_LORA_NONE;
    return op;
}

static void copy(op_list *l, lw_plan_slot in, lw_plan_slot out, int width, lw_plan_grad grad, unsigned flags)
{
    lw_plan_op *op = add(l, LW_OP_COPY);
    op->in = in, op->out = out, op->width = width, op->din = op->dout = grad, op->flags = flags;
}

/* rows per token of width each; keep: where backward reads the input. */
static void rmsnorm(op_list *l, lw_plan_slot in, lw_plan_slot keep, lw_plan_slot out, lw_plan_slot rstd,
                    lw_plan_weight w, int rows, int width, lw_plan_grad din, lw_plan_grad dout, unsigned flags)
{
    lw_plan_op *op = add(l, LW_OP_RMSNORM);
    op->in = in, op->keep = keep, op->out = out, op->aux = rstd, op->w = w;
    op->rows = rows, op->width = width, op->din = din, op->dout = dout, op->flags = flags;
}

static lw_plan_part part(lw_plan_slot slot, lw_plan_grad grad, lw_plan_weight w, int width, lw_plan_lora lora)
{
    return (lw_plan_part){.slot = slot, .grad = grad, .w = w, .width = width, .lora = lora};
}

/* A projection of in[T, width] (gradient din, zeroed first) into n parts;
 * fused: the [T, sum] product before the split (LW_SLOT_NONE for one part). */
static void matmul(op_list *l, lw_plan_slot in, lw_plan_grad din, int width, lw_plan_slot fused,
                   lw_plan_weight w, lw_plan_weight b, int n, const lw_plan_part *parts)
{
    lw_plan_op *op = add(l, LW_OP_MATMUL);
    op->in = op->keep = in, op->out = n == 1 ? parts[0].slot : fused, op->w = w, op->b = b;
    op->width = width, op->din = din, op->flags = LW_PLAN_ZERO_DIN, op->n_parts = n;
    for (int i = 0; i < n; i++) op->parts[i] = parts[i];
}

static void residual_add(op_list *l, lw_plan_slot branch, int width)
{
    lw_plan_op *op = add(l, LW_OP_ADD);
    op->in = branch, op->out = LW_SLOT_X, op->width = width, op->din = op->dout = LW_GRAD_DX;
}

/* The decoder block: x += attn(attn_norm(x)); x += ffn(ffn_norm(x)). */
static void lower_block(const lw_model_config *c, op_list *l)
{
    int H = c->hidden, D = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads, F = c->ffn;
    int qd = Hq * D, kvd = Hkv * D;
    /* gradients of q and k before qk-norm: their own buffers when the norm sits between */
    lw_plan_grad dq_pre = c->qk_norm ? LW_GRAD_DQ_PRE : LW_GRAD_DQ;
    lw_plan_grad dk_pre = c->qk_norm ? LW_GRAD_DK_PRE : LW_GRAD_DK;
    /* the branch before its post norm: its own gradient buffer only with the norm */
    lw_plan_grad dbranch = c->post_norms ? LW_GRAD_DBR : LW_GRAD_DX;

    /* ---- attention ---- */
    copy(l, LW_SLOT_X, LW_SLOT_X_IN, H, LW_GRAD_NONE, LW_PLAN_OPTIONAL);
    rmsnorm(l, LW_SLOT_X, LW_SLOT_X_IN, LW_SLOT_XN, LW_SLOT_RSTD_ATTN, LW_W_ATTN_NORM, 1, H, LW_GRAD_DX,
            LW_GRAD_DLN, 0);
    matmul(l, LW_SLOT_XN, LW_GRAD_DLN, H, LW_SLOT_QKV, LW_W_WQKV, c->qkv_bias ? LW_W_BQKV : LW_W_NONE, 3,
           (lw_plan_part[]){part(LW_SLOT_Q, dq_pre, LW_W_WQ, qd, LW_PLAN_LORA_Q),
                            part(LW_SLOT_K, dk_pre, LW_W_WK, kvd, LW_PLAN_LORA_K),
                            part(LW_SLOT_V, LW_GRAD_DV, LW_W_WV, kvd, LW_PLAN_LORA_V)});
    /* q_rope and the cache rows get the normed, rotated copies; q, k keep the projections */
    copy(l, LW_SLOT_Q, LW_SLOT_Q_ROPE, qd, dq_pre, 0);
    copy(l, LW_SLOT_K, LW_SLOT_K_CACHE, kvd, dk_pre, 0);
    copy(l, LW_SLOT_V, LW_SLOT_V_CACHE, kvd, LW_GRAD_DV, 0);
    if (c->qk_norm) {
        rmsnorm(l, LW_SLOT_Q_ROPE, LW_SLOT_Q, LW_SLOT_Q_ROPE, LW_SLOT_RSTD_Q, LW_W_Q_NORM, Hq, D, LW_GRAD_DQ_PRE,
                LW_GRAD_DQ, LW_PLAN_ZERO_DIN);
        rmsnorm(l, LW_SLOT_K_CACHE, LW_SLOT_K, LW_SLOT_K_CACHE, LW_SLOT_RSTD_K, LW_W_K_NORM, Hkv, D,
                LW_GRAD_DK_PRE, LW_GRAD_DK, LW_PLAN_ZERO_DIN);
    }
    lw_plan_op *op = add(l, LW_OP_ROPE);
    op->out = LW_SLOT_Q_ROPE, op->rows = Hq, op->head_dim = D, op->din = op->dout = LW_GRAD_DQ;
    op->flags = LW_PLAN_PER_LAYER;
    op = add(l, LW_OP_ROPE);
    op->out = LW_SLOT_K_CACHE, op->rows = Hkv, op->head_dim = D, op->din = op->dout = LW_GRAD_DK;
    op->flags = LW_PLAN_PER_LAYER;
    op = add(l, LW_OP_ATTENTION);
    op->out = LW_SLOT_AO, op->aux = LW_SLOT_ATT, op->rows = Hq, op->kv_heads = Hkv, op->head_dim = D;
    op->dout = LW_GRAD_DAO, op->flags = LW_PLAN_PER_LAYER, op->n_parts = 3;
    op->parts[0] = part(LW_SLOT_Q_ROPE, LW_GRAD_DQ, LW_W_NONE, qd, LW_PLAN_LORA_NONE);
    op->parts[1] = part(LW_SLOT_K_CACHE, LW_GRAD_DK, LW_W_NONE, kvd, LW_PLAN_LORA_NONE);
    op->parts[2] = part(LW_SLOT_V_CACHE, LW_GRAD_DV, LW_W_NONE, kvd, LW_PLAN_LORA_NONE);
    matmul(l, LW_SLOT_AO, LW_GRAD_DAO, qd, LW_SLOT_NONE, LW_W_WO, LW_W_NONE, 1,
           (lw_plan_part[]){part(LW_SLOT_PROJ, dbranch, LW_W_WO, H, LW_PLAN_LORA_O)});
    lw_plan_slot branch = LW_SLOT_PROJ;
    if (c->post_norms) {
        rmsnorm(l, LW_SLOT_PROJ, LW_SLOT_PROJ, LW_SLOT_PROJ_N, LW_SLOT_RSTD_POST_ATTN, LW_W_POST_ATTN_NORM, 1, H,
                LW_GRAD_DBR, LW_GRAD_DX, LW_PLAN_ZERO_DIN);
        branch = LW_SLOT_PROJ_N;
    }
    residual_add(l, branch, H);

    /* ---- feed-forward ---- */
    copy(l, LW_SLOT_X, LW_SLOT_X_MID, H, LW_GRAD_NONE, LW_PLAN_OPTIONAL);
    rmsnorm(l, LW_SLOT_X, LW_SLOT_X_MID, LW_SLOT_FN, LW_SLOT_RSTD_FFN, LW_W_FFN_NORM, 1, H, LW_GRAD_DX, LW_GRAD_DLN,
            0);
    matmul(l, LW_SLOT_FN, LW_GRAD_DLN, H, LW_SLOT_GATE_UP, LW_W_GATE_UP, LW_W_NONE, 2,
           (lw_plan_part[]){part(LW_SLOT_GATE, LW_GRAD_DGATE, LW_W_GATE, F, LW_PLAN_LORA_GATE),
                            part(LW_SLOT_UP, LW_GRAD_DUP, LW_W_UP, F, LW_PLAN_LORA_UP)});
    op = add(l, LW_OP_GLU);
    op->out = LW_SLOT_HID, op->width = F, op->dout = LW_GRAD_DHID, op->flags = LW_PLAN_ZERO_DIN, op->n_parts = 2;
    op->parts[0] = part(LW_SLOT_GATE, LW_GRAD_DGATE, LW_W_NONE, F, LW_PLAN_LORA_NONE);
    op->parts[1] = part(LW_SLOT_UP, LW_GRAD_DUP, LW_W_NONE, F, LW_PLAN_LORA_NONE);
    matmul(l, LW_SLOT_HID, LW_GRAD_DHID, F, LW_SLOT_NONE, LW_W_DOWN, LW_W_NONE, 1,
           (lw_plan_part[]){part(LW_SLOT_DOWN, dbranch, LW_W_DOWN, H, LW_PLAN_LORA_DOWN)});
    branch = LW_SLOT_DOWN;
    if (c->post_norms) {
        rmsnorm(l, LW_SLOT_DOWN, LW_SLOT_DOWN, LW_SLOT_DOWN_N, LW_SLOT_RSTD_POST_FFN, LW_W_POST_FFN_NORM, 1, H,
                LW_GRAD_DBR, LW_GRAD_DX, LW_PLAN_ZERO_DIN);
        branch = LW_SLOT_DOWN_N;
    }
    residual_add(l, branch, H);
}

/* Embed, the blocks, output_norm, logits, label scoring. */
static void lower_model(const lw_model_config *c, op_list *l)
{
    int H = c->hidden;
    lw_plan_op *op = add(l, LW_OP_EMBEDDING);
    op->out = LW_SLOT_X, op->w = LW_W_TOKEN_EMBD, op->width = H, op->dout = LW_GRAD_DX;
    op = add(l, LW_OP_BLOCKS);
    op->out = LW_SLOT_X, op->width = H, op->din = op->dout = LW_GRAD_DX;
    rmsnorm(l, LW_SLOT_X, LW_SLOT_X, LW_SLOT_XF, LW_SLOT_RSTD_FINAL, LW_W_OUTPUT_NORM, 1, H, LW_GRAD_DX,
            LW_GRAD_DXF, LW_PLAN_ZERO_DIN);
    op = add(l, LW_OP_LOGITS);
    op->in = op->keep = LW_SLOT_XF, op->out = LW_SLOT_LOGITS, op->w = LW_W_OUTPUT, op->width = H;
    op->din = LW_GRAD_DXF, op->flags = LW_PLAN_ZERO_DIN, op->n_parts = 1;
    op->parts[0] = part(LW_SLOT_LOGITS, LW_GRAD_NONE, LW_W_OUTPUT, c->vocab, LW_PLAN_LORA_NONE);
    /* label scoring: the head again, fused with the log-softmax, for the pairs asked */
    op = add(l, LW_OP_HEAD_LOGSOFTMAX);
    op->in = op->keep = LW_SLOT_XF, op->out = LW_SLOT_LOGP, op->aux = LW_SLOT_LSE, op->w = LW_W_OUTPUT;
    op->width = H, op->din = LW_GRAD_DXF, op->flags = LW_PLAN_ZERO_DIN, op->n_parts = 1;
    op->parts[0] = part(LW_SLOT_LOGP, LW_GRAD_NONE, LW_W_OUTPUT, c->vocab, LW_PLAN_LORA_NONE);
}

void lw_plan_lower(const lw_model_config *c, lw_plan *p)
{
    memset(p, 0, sizeof *p);
    lower_model(c, &(op_list){p->model_ops, &p->n_model_ops, LW_PLAN_MAX_MODEL_OPS});
    lower_block(c, &(op_list){p->ops, &p->n_ops, LW_PLAN_MAX_OPS});
    p->n_layers = c->n_layers;
    p->sliding_window = c->sliding_window;
    p->global_every = c->global_every;
    p->norm = c->norm;
    p->norm_eps = c->norm_eps;
    p->activation = c->activation;
    p->rope_interleaved = lw_rope_interleaved(c);
}

/* ---- names and comparison ------------------------------------------------ */

const char *lw_op_kind_name(lw_op_kind k)
{
    static const char *const names[LW_OP_KIND_COUNT] = {
        [LW_OP_COPY] = "copy", [LW_OP_RMSNORM] = "rmsnorm", [LW_OP_MATMUL] = "matmul", [LW_OP_ROPE] = "rope",
        [LW_OP_ATTENTION] = "attention", [LW_OP_GLU] = "glu", [LW_OP_ADD] = "add", [LW_OP_EMBEDDING] = "embedding",
        [LW_OP_BLOCKS] = "blocks", [LW_OP_LOGITS] = "logits", [LW_OP_HEAD_LOGSOFTMAX] = "head_logsoftmax",
        [LW_OP_LAYERNORM] = "layernorm", [LW_OP_GELU] = "gelu", [LW_OP_STANDARDISE] = "standardise",
        [LW_OP_MEAN_ROWS] = "mean_rows", [LW_OP_RMS_CALIBRATE] = "rms_calibrate"};
    return (unsigned)k < LW_OP_KIND_COUNT ? names[k] : "?";
}

const char *lw_plan_slot_name(lw_plan_slot s)
{
    static const char *const names[LW_SLOT_COUNT] = {
        [LW_SLOT_NONE] = "-", [LW_SLOT_X_IN] = "x_in", [LW_SLOT_XN] = "xn", [LW_SLOT_RSTD_ATTN] = "rstd_attn",
        [LW_SLOT_QKV] = "qkv", [LW_SLOT_Q] = "q", [LW_SLOT_K] = "k", [LW_SLOT_V] = "v", [LW_SLOT_Q_ROPE] = "q_rope",
        [LW_SLOT_RSTD_Q] = "rstd_q", [LW_SLOT_RSTD_K] = "rstd_k", [LW_SLOT_ATT] = "att", [LW_SLOT_AO] = "ao",
        [LW_SLOT_PROJ] = "proj", [LW_SLOT_PROJ_N] = "proj_n", [LW_SLOT_RSTD_POST_ATTN] = "rstd_post_attn",
        [LW_SLOT_X_MID] = "x_mid", [LW_SLOT_FN] = "fn", [LW_SLOT_RSTD_FFN] = "rstd_ffn",
        [LW_SLOT_GATE_UP] = "gate_up", [LW_SLOT_GATE] = "gate", [LW_SLOT_UP] = "up", [LW_SLOT_HID] = "hid",
        [LW_SLOT_DOWN] = "down", [LW_SLOT_DOWN_N] = "down_n", [LW_SLOT_RSTD_POST_FFN] = "rstd_post_ffn",
        [LW_SLOT_X] = "x", [LW_SLOT_K_CACHE] = "k_cache", [LW_SLOT_V_CACHE] = "v_cache", [LW_SLOT_XF] = "xf",
        [LW_SLOT_RSTD_FINAL] = "rstd_final", [LW_SLOT_LOGITS] = "logits", [LW_SLOT_LOGP] = "logp",
        [LW_SLOT_LSE] = "lse"};
    return (unsigned)s < LW_SLOT_COUNT ? names[s] : "?";
}

const char *lw_plan_weight_name(lw_plan_weight w)
{
    static const char *const names[LW_W_COUNT] = {
        [LW_W_NONE] = "-", [LW_W_ATTN_NORM] = "attn_norm", [LW_W_WQKV] = "wqkv", [LW_W_WQ] = "wq",
        [LW_W_WK] = "wk", [LW_W_WV] = "wv", [LW_W_BQKV] = "bqkv", [LW_W_WO] = "wo", [LW_W_Q_NORM] = "q_norm",
        [LW_W_K_NORM] = "k_norm", [LW_W_POST_ATTN_NORM] = "post_attn_norm", [LW_W_FFN_NORM] = "ffn_norm",
        [LW_W_GATE_UP] = "w_gate_up", [LW_W_GATE] = "w_gate", [LW_W_UP] = "w_up", [LW_W_DOWN] = "w_down",
        [LW_W_POST_FFN_NORM] = "post_ffn_norm", [LW_W_TOKEN_EMBD] = "token_embd",
        [LW_W_OUTPUT_NORM] = "output_norm", [LW_W_OUTPUT] = "output"};
    return (unsigned)w < LW_W_COUNT ? names[w] : "?";
}

const char *lw_plan_grad_name(lw_plan_grad g)
{
    static const char *const names[LW_GRAD_COUNT] = {
        [LW_GRAD_NONE] = "-", [LW_GRAD_DX] = "dx", [LW_GRAD_DXF] = "dxf", [LW_GRAD_DBR] = "dbr",
        [LW_GRAD_DLN] = "dln", [LW_GRAD_DAO] = "dao", [LW_GRAD_DQ] = "dq", [LW_GRAD_DQ_PRE] = "dq_pre",
        [LW_GRAD_DK] = "dk", [LW_GRAD_DK_PRE] = "dk_pre", [LW_GRAD_DV] = "dv", [LW_GRAD_DGATE] = "dgate",
        [LW_GRAD_DUP] = "dup", [LW_GRAD_DHID] = "dhid"};
    return (unsigned)g < LW_GRAD_COUNT ? names[g] : "?";
}
