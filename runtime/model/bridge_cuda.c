/* The bridge's plan on CUDA (bridge_cuda.h): bridge_exec.c's walk, each op
 * kind one or a few launches of the typed launchers or cuBLAS products. */
#include "bridge_cuda.h"

#include <math.h>
#include <stdio.h>

#define F32 sizeof(float)

static const size_t NO_W = LW_BRIDGE_NO_WEIGHT;

lw_status lw_bridge_cuda_check(const lw_bridge_plan *p, const lw_bridge_cuda_sizes *sz)
{
    if (p->width != sz->width || p->soft_tokens != sz->soft_tokens || p->receiver_hidden != sz->receiver_hidden)
        return lw_fail(LW_ERR_UNSUPPORTED, "bridge on CUDA: the plan is width %d, %d soft tokens of %d; the bridge "
                       "kernels were built for width %d, %d of %d (rebuild the pair with lwc build)", p->width,
                       p->soft_tokens, p->receiver_hidden, sz->width, sz->soft_tokens, sz->receiver_hidden);
    for (int list = 0; list < 2; list++) {
        const lw_bridge_op *ops = list ? p->ops : p->model_ops;
        int n = list ? p->n_ops : p->n_model_ops;
        for (int i = 0; i < n; i++) {
            const lw_bridge_op *op = &ops[i];
            const char *why = NULL;
            if (op->kind == LW_OP_LAYERNORM && op->width != sz->width) why = "a LayerNorm of another width";
            if (op->kind == LW_OP_ATTENTION && (op->heads != sz->heads || op->width != sz->width))
                why = "attention of another head count or width";
            if (op->kind == LW_OP_RMS_CALIBRATE && !sz->calibrate_rms) why = "the RMS calibration";
            if (op->kind == LW_OP_COPY && op->out == LW_BS_OUT && sz->calibrate_rms)
                why = "an uncalibrated output";
            if (why)
                return lw_fail(LW_ERR_UNSUPPORTED, "bridge on CUDA: %s record %d (%s) needs %s, which the bridge "
                               "kernels were not built for", list ? "block" : "model", i, lw_op_kind_name(op->kind),
                               why);
        }
    }
    return LW_OK;
}

lw_cuda_ptr lw_bridge_cuda_slot(const lw_bridge_cuda *x, lw_bridge_slot s, int l)
{
    const lw_plan_buffer *buf = &x->mem->slots[s];
    if (s == LW_BS_NONE || buf->where == LW_PLAN_MEM_NONE) return 0;
    size_t off = buf->offset + (buf->where == LW_PLAN_MEM_LAYER ? (size_t)l * x->mem->layer_bytes : 0);
    return x->arena + off;
}

lw_cuda_ptr lw_bridge_cuda_grad(const lw_bridge_cuda *x, lw_bridge_grad g)
{
    if (g == LW_BG_NONE || !x->mem->grad_elems[g]) return 0;
    return x->arena + x->mem->grad_offset[g];
}

/* What block l's ops (or the model level's, l = -1) run on. */
typedef struct {
    const lw_bridge_cuda *c;
    int T, l;
    bool want_dx;
    lw_cuda_ptr acts[LW_BS_COUNT], grads[LW_BG_COUNT];
    const size_t *w_at;
} exec;

static void bind(exec *x, int l)
{
    x->l = l;
    for (int s = 0; s < LW_BS_COUNT; s++) x->acts[s] = lw_bridge_cuda_slot(x->c, (lw_bridge_slot)s, l);
    for (int g = 0; g < LW_BG_COUNT; g++) x->grads[g] = lw_bridge_cuda_grad(x->c, (lw_bridge_grad)g);
    if (!x->want_dx) x->grads[LW_BG_DX] = x->grads[LW_BG_DXS] = 0;
    x->w_at = x->c->w_at + (size_t)(l + 1) * LW_BW_COUNT;
}

/* The model level's roles are in row 0 only: a block reads them there. */
static size_t w_offset(const exec *x, lw_bridge_weight w)
{
    if (w == LW_BW_NONE) return NO_W;
    return (int)w >= (int)LW_BW_FIRST_MODEL ? x->c->w_at[w] : x->w_at[w];
}

static lw_cuda_ptr param(const exec *x, lw_bridge_weight w)
{
    size_t at = w_offset(x, w);
    return at == NO_W ? 0 : x->c->params + at * F32;
}

static lw_cuda_ptr grad_of(const exec *x, lw_bridge_weight w)
{
    size_t at = w_offset(x, w);
    return at == NO_W ? 0 : x->c->grads + at * F32;
}

static int rows(const exec *x, lw_bridge_rows r)
{
    return r == LW_BRIDGE_ROWS_T ? x->T : r == LW_BRIDGE_ROWS_ONE ? 1 : x->c->p->soft_tokens;
}

static lw_launch launcher(const exec *x)
{
    return (lw_launch){.cu = x->c->cu, .owner = "bridge", .sync = x->c->sync_each_launch};
}

static lw_status zero(const exec *x, lw_cuda_ptr p, size_t n, const char *what)
{
    return p ? lw_cuda_memset0(x->c->cu, p, n * F32, what) : LW_OK;
}

/* A product's name in errors: "bridge block 1 cross_attn.q.weight". */
static const char *product(const exec *x, const lw_bridge_op *op, char *buf, size_t n)
{
    if (x->l >= 0) snprintf(buf, n, "bridge block %d %s", x->l, lw_bridge_weight_name(op->w));
    else snprintf(buf, n, "bridge %s", lw_bridge_weight_name(op->w));
    return buf;
}

static lw_status blocks_forward(const exec *top);
static lw_status blocks_backward(const exec *top);

static lw_status op_forward(const exec *x, const lw_bridge_op *op)
{
    int n = rows(x, op->rows), kv = rows(x, op->kv_rows);
    const lw_bridge_kernels *k = x->c->k;
    lw_launch L = launcher(x);
    lw_cuda_ptr out = x->acts[op->out];
    char what[160];
    switch (op->kind) {
    case LW_OP_MATMUL: {
        lw_status st = lw_cublas_matmul(x->c->blas, out, x->acts[op->in], param(x, op->w), n, op->width,
                                        op->out_width, product(x, op, what, sizeof what));
        if (!st && op->b != LW_BW_NONE) st = lwk_bridge_bias_forward(L, k, out, param(x, op->b), n, op->out_width);
        return st;
    }
    case LW_OP_LAYERNORM:
        return lwk_layernorm_forward(L, k, out, x->acts[op->aux], x->acts[op->aux2], x->acts[op->in],
                                     param(x, op->w), param(x, op->b), n);
    case LW_OP_GELU: return lwk_gelu_forward(L, k, out, x->acts[op->in], n * op->width);
    case LW_OP_ATTENTION:
        return lwk_bridge_attention_forward(L, k, out, x->acts[op->aux], x->acts[op->parts[0]],
                                            x->acts[op->parts[1]], x->acts[op->parts[2]], n, kv, op->heads);
    case LW_OP_COPY:
        return lwk_bridge_copy(L, k, out, op->w != LW_BW_NONE ? param(x, op->w) : x->acts[op->in], n * op->width);
    case LW_OP_ADD: return lwk_bridge_add(L, k, out, x->acts[op->in], n * op->width);
    case LW_OP_BLOCKS: return blocks_forward(x);
    case LW_OP_STANDARDISE:
        return lwk_standardise_forward(L, k, out, x->acts[op->in], param(x, op->w), param(x, op->b), n * op->width,
                                       op->width);
    case LW_OP_MEAN_ROWS: return lwk_mean_rows_forward(L, k, out, x->acts[op->in], kv, op->width);
    case LW_OP_RMS_CALIBRATE:
        return lwk_rms_calibrate_forward(L, k, out, x->acts[op->aux], x->acts[op->in], param(x, op->w), n);
    case LW_OP_RMSNORM: case LW_OP_ROPE: case LW_OP_GLU: case LW_OP_EMBEDDING: case LW_OP_LOGITS:
    case LW_OP_HEAD_LOGSOFTMAX:
    case LW_OP_KIND_COUNT: break;   /* the decoder's: never in a bridge plan */
    }
    return lw_fail(LW_ERR_INVALID, "bridge on CUDA: op kind %s in a bridge plan", lw_op_kind_name(op->kind));
}

static lw_status op_backward(const exec *x, const lw_bridge_op *op)
{
    int n = rows(x, op->rows), kv = rows(x, op->kv_rows);
    const lw_bridge_kernels *k = x->c->k;
    lw_launch L = launcher(x);
    lw_cuda_ptr din = x->grads[op->din], dout = x->grads[op->dout];
    bool zero_din = op->flags & LW_PLAN_ZERO_DIN;
    char what[160];
    lw_status st = LW_OK;
    switch (op->kind) {
    case LW_OP_MATMUL: {
        const char *name = product(x, op, what, sizeof what);
        if (din)
            st = lw_cublas_matmul_dx(x->c->blas, din, dout, param(x, op->w), n, op->width, op->out_width, !zero_din,
                                     name);
        if (!st && grad_of(x, op->w))
            st = lw_cublas_matmul_dw(x->c->blas, grad_of(x, op->w), dout, x->acts[op->keep], n, op->width,
                                     op->out_width, true, name);
        if (!st && grad_of(x, op->b)) st = lwk_bridge_bias_backward(L, k, grad_of(x, op->b), dout, n, op->out_width);
        return st;
    }
    case LW_OP_LAYERNORM:
        if (zero_din) st = zero(x, din, (size_t)n * op->width, "bridge LayerNorm din");
        if (!st)
            st = lwk_layernorm_backward(L, k, din, grad_of(x, op->w), grad_of(x, op->b), dout, x->acts[op->keep],
                                        param(x, op->w), x->acts[op->aux], x->acts[op->aux2], n);
        return st;
    case LW_OP_GELU:
        if (zero_din) st = zero(x, din, (size_t)n * op->width, "bridge GELU din");
        return st ? st : lwk_gelu_backward(L, k, din, dout, x->acts[op->keep], n * op->width);
    case LW_OP_ATTENTION: {
        lw_cuda_ptr dq = x->grads[op->dparts[0]], dk = x->grads[op->dparts[1]], dv = x->grads[op->dparts[2]];
        if (zero_din) {
            st = zero(x, dq, (size_t)n * op->width, "bridge attention dq");
            if (!st) st = zero(x, dk, (size_t)kv * op->width, "bridge attention dk");
            if (!st) st = zero(x, dv, (size_t)kv * op->width, "bridge attention dv");
        }
        if (!st)
            st = lwk_bridge_attention_backward(L, k, dq, dk, dv, dout, x->acts[op->out], x->acts[op->aux],
                                               x->acts[op->parts[0]], x->acts[op->parts[1]], x->acts[op->parts[2]],
                                               n, kv, op->heads);
        return st;
    }
    case LW_OP_COPY:   /* a copy of a slot shares its gradient; a copy of a tensor (the queries) hands dout to it */
        return op->w != LW_BW_NONE ? lwk_bridge_add(L, k, grad_of(x, op->w), dout, n * op->width) : LW_OK;
    case LW_OP_ADD: return LW_OK;   /* in and out share a gradient */
    case LW_OP_BLOCKS:
        if (zero_din) st = zero(x, din, (size_t)kv * op->width, "bridge dctx");
        return st ? st : blocks_backward(x);
    case LW_OP_STANDARDISE:   /* the statistics are constants: din only, and only when asked */
        if (!din) return LW_OK;
        if (zero_din) st = zero(x, din, (size_t)n * op->width, "bridge dx");
        return st ? st : lwk_standardise_backward(L, k, din, dout, param(x, op->b), n * op->width, op->width);
    case LW_OP_MEAN_ROWS:
        if (!din) return LW_OK;
        if (zero_din) st = zero(x, din, (size_t)kv * op->width, "bridge dxs");
        return st ? st : lwk_mean_rows_backward(L, k, din, dout, kv, op->width);
    case LW_OP_RMS_CALIBRATE:
        if (zero_din) st = zero(x, din, (size_t)n * op->width, "bridge dz");
        return st ? st
                  : lwk_rms_calibrate_backward(L, k, din, grad_of(x, op->w), dout, x->acts[op->in], x->acts[op->aux],
                                               param(x, op->w), n);
    case LW_OP_RMSNORM: case LW_OP_ROPE: case LW_OP_GLU: case LW_OP_EMBEDDING: case LW_OP_LOGITS:
    case LW_OP_HEAD_LOGSOFTMAX:
    case LW_OP_KIND_COUNT: break;
    }
    return lw_fail(LW_ERR_INVALID, "bridge on CUDA: op kind %s in a bridge plan", lw_op_kind_name(op->kind));
}

static lw_status blocks_forward(const exec *top)
{
    exec x = *top;
    for (int l = 0; l < top->c->p->depth; l++) {
        bind(&x, l);
        for (int i = 0; i < top->c->p->n_ops; i++) {
            lw_status st = op_forward(&x, &top->c->p->ops[i]);
            if (st) return lw_fail_wrap(st, "bridge block %d op %d (%s)", l, i,
                                        lw_op_kind_name(top->c->p->ops[i].kind));
        }
    }
    return LW_OK;
}

static lw_status blocks_backward(const exec *top)
{
    exec x = *top;
    for (int l = top->c->p->depth - 1; l >= 0; l--) {
        bind(&x, l);
        for (int i = top->c->p->n_ops - 1; i >= 0; i--) {
            lw_status st = op_backward(&x, &top->c->p->ops[i]);
            if (st) return lw_fail_wrap(st, "bridge block %d op %d (%s) backward", l, i,
                                        lw_op_kind_name(top->c->p->ops[i].kind));
        }
    }
    return LW_OK;
}

static lw_status check_rows(const lw_bridge_cuda *c, int T)
{
    if (T < 1 || T > c->mem->max_T)
        return lw_fail(LW_ERR_INVALID, "bridge on CUDA: %d context rows, expected 1..%d (the arena's max_T)", T,
                       c->mem->max_T);
    if (!c->mem->training) return lw_fail(LW_ERR_INVALID, "bridge on CUDA: the arena is not laid out for training");
    return LW_OK;
}

lw_status lw_bridge_cuda_forward(const lw_bridge_cuda *c, int T)
{
    lw_status st = check_rows(c, T);
    if (st) return st;
    exec x = {.c = c, .T = T};
    bind(&x, -1);
    for (int i = 0; i < c->p->n_model_ops; i++) {
        st = op_forward(&x, &c->p->model_ops[i]);
        if (st) return lw_fail_wrap(st, "bridge model op %d (%s)", i, lw_op_kind_name(c->p->model_ops[i].kind));
    }
    return LW_OK;
}

lw_status lw_bridge_cuda_backward(const lw_bridge_cuda *c, int T, bool want_dx)
{
    lw_status st = check_rows(c, T);
    if (st) return st;
    exec x = {.c = c, .T = T, .want_dx = want_dx};
    bind(&x, -1);
    for (int i = c->p->n_model_ops - 1; i >= 0; i--) {
        st = op_backward(&x, &c->p->model_ops[i]);
        if (st)
            return lw_fail_wrap(st, "bridge model op %d (%s) backward", i, lw_op_kind_name(c->p->model_ops[i].kind));
    }
    return LW_OK;
}
