/* The CPU executor of a plan (plan.h): forward runs the ops in order,
 * backward walks them in reverse, each op kind calling its ops.h function
 * (LW_OP_ATTENTION: plan_attend.c). Slots become pointers here, per layer:
 * activations in the state's arena at the plan's offsets (lw_state_alloc
 * lays it out with lw_plan_memory_layout; lw_layer_acts holds layer l's
 * pointers, shared slots the same in every layer), weights in lw_layer_weights /
 * lw_model, gradients in the backward scratch. LoRA is a hook after each
 * adapted projection (a MATMUL part naming a target): forward adds its path
 * right after the projection, backward right after the projection's. */
#include "plan_cpu.h"

#include <stddef.h>
#include <string.h>

#include "frozen_matmul.h"
#include "lora.h"
#include "cpu_threads.h"
#include "narrow_store.h"
#include "ops.h"

_Static_assert((int)LW_PLAN_LORA_Q == (int)LW_LORA_Q && (int)LW_PLAN_LORA_DOWN == (int)LW_LORA_DOWN &&
                   (int)LW_PLAN_LORA_DOWN + 1 == (int)LW_LORA_N_TARGETS,
               "plan.h's LoRA points follow lora.h's targets");

static void zero(float *p, size_t n) { lw_zero_par(p, n * sizeof *p); }

/* ---- slots to pointers --------------------------------------------------- */

#define LAYER_W(w, field) [w] = offsetof(lw_layer_weights, field) + 1
static const size_t WEIGHT_AT[LW_W_COUNT] = {
    LAYER_W(LW_W_ATTN_NORM, attn_norm), LAYER_W(LW_W_WQKV, wqkv), LAYER_W(LW_W_WQ, wq), LAYER_W(LW_W_WK, wk),
    LAYER_W(LW_W_WV, wv), LAYER_W(LW_W_BQKV, bqkv), LAYER_W(LW_W_WO, wo), LAYER_W(LW_W_Q_NORM, q_norm),
    LAYER_W(LW_W_K_NORM, k_norm), LAYER_W(LW_W_POST_ATTN_NORM, post_attn_norm), LAYER_W(LW_W_FFN_NORM, ffn_norm),
    LAYER_W(LW_W_GATE_UP, w_gate_up), LAYER_W(LW_W_GATE, w_gate), LAYER_W(LW_W_UP, w_up),
    LAYER_W(LW_W_DOWN, w_down), LAYER_W(LW_W_POST_FFN_NORM, post_ffn_norm)};

#define GRAD(gs, field) [gs] = offsetof(lw_backward_scratch, field) + 1
static const size_t GRAD_AT[LW_GRAD_COUNT] = {
    GRAD(LW_GRAD_DX, dx),   GRAD(LW_GRAD_DXF, dxf), GRAD(LW_GRAD_DBR, dbr),         GRAD(LW_GRAD_DLN, dln),
    GRAD(LW_GRAD_DAO, dao), GRAD(LW_GRAD_DQ, dq),   GRAD(LW_GRAD_DQ_PRE, dq_pre),   GRAD(LW_GRAD_DK, dk),
    GRAD(LW_GRAD_DK_PRE, dk_pre), GRAD(LW_GRAD_DV, dv), GRAD(LW_GRAD_DGATE, dgate), GRAD(LW_GRAD_DUP, dup),
    GRAD(LW_GRAD_DHID, dhid)};

/* What the ops of one layer (l >= 0) or of the model level (l = -1) run on:
 * every slot's pointer, bound once per layer (bind), so an op's operands
 * are table reads. */
typedef struct {
    const lw_plan *p;
    const lw_model *m;
    const lw_state *s;
    int l, T, pos0;
    const int *pos;           /* the rows' positions */
    const lw_receiver_adapters *ad;
    lw_backward_scratch *g;   /* backward only */
    float *acts[LW_SLOT_COUNT];
    const float *weights[LW_W_COUNT];
    float *grads[LW_GRAD_COUNT];
} exec;

static float *kv_rows(float *cache, const exec *x)
{
    size_t kvd = (size_t)x->m->cfg.n_kv_heads * x->m->cfg.head_dim;
    return cache + ((size_t)x->l * x->s->max_tokens + x->pos0) * kvd;
}

/* Layer l's slots (a: its activations), or the model level's (l = -1, a NULL). */
static void bind(exec *x, int l, const lw_layer_acts *a)
{
    x->l = l;
    for (int i = 0; i < LW_SLOT_COUNT; i++) {
        /* the layer's pointers into the state's arena (lw_state_alloc laid it out by the plan) */
        float **field = a ? lw_layer_acts_slot((lw_layer_acts *)a, (lw_plan_slot)i) : NULL;
        x->acts[i] = field ? *field : NULL;
    }
    x->acts[LW_SLOT_X] = x->s->x;
    x->acts[LW_SLOT_K_CACHE] = l >= 0 ? kv_rows(x->s->key_cache, x) : NULL;
    x->acts[LW_SLOT_V_CACHE] = l >= 0 ? kv_rows(x->s->value_cache, x) : NULL;
    x->acts[LW_SLOT_XF] = x->s->xf;
    x->acts[LW_SLOT_RSTD_FINAL] = x->s->rstd_final;
    const lw_layer_weights *L = l >= 0 ? &x->m->layers[l] : NULL;
    for (int i = 0; i < LW_W_COUNT; i++)
        x->weights[i] = L && WEIGHT_AT[i] ? *(float *const *)((const char *)L + WEIGHT_AT[i] - 1) : NULL;
    x->weights[LW_W_TOKEN_EMBD] = x->m->token_embd;
    x->weights[LW_W_OUTPUT_NORM] = x->m->output_norm;
    x->weights[LW_W_OUTPUT] = x->m->output;
    for (int i = 0; i < LW_GRAD_COUNT; i++)
        x->grads[i] = x->g && GRAD_AT[i] ? *(float *const *)((const char *)x->g + GRAD_AT[i] - 1) : NULL;
}

static inline float *act(const exec *x, lw_plan_slot slot) { return x->acts[slot]; }
static inline const float *weight(const exec *x, lw_plan_weight w) { return x->weights[w]; }
static inline float *grad(const exec *x, lw_plan_grad gs) { return x->grads[gs]; }

static const float *inv_freq(const exec *x)
{
    return lw_plan_layer_local(x->p, x->l) ? x->m->inv_freq_local : x->m->inv_freq_global;
}

static int window(const exec *x)
{
    return lw_plan_layer_local(x->p, x->l) ? x->p->sliding_window : 0;
}

/* ---- one op forward ------------------------------------------------------- */

/* Rows of a fused projection [T, sum widths] into its parts: copies, split
 * over the pool by rows when there are enough to pay for a fork-join. */
typedef struct {
    const exec *x;
    const float *fused;
    const lw_plan_op *op;
    int pieces;
} split_job;

static void split_piece(void *ctx, int k)
{
    const split_job *j = ctx;
    const lw_plan_op *op = j->op;
    int t0 = lw_range_start(j->x->T, k, j->pieces), t1 = lw_range_start(j->x->T, k + 1, j->pieces), all = 0;
    for (int i = 0; i < op->n_parts; i++) all += op->parts[i].width;
    const float *fused = j->fused + (size_t)t0 * all;
    for (int t = t0; t < t1; t++)
        for (int i = 0; i < op->n_parts; i++) {
            int w = op->parts[i].width;
            memcpy(act(j->x, op->parts[i].slot) + (size_t)t * w, fused, (size_t)w * sizeof *fused);
            fused += w;
        }
}

static void split_rows(const exec *x, const float *fused, const lw_plan_op *op)
{
    split_job j = {x, fused, op, 1};
    int all = 0;
    for (int i = 0; i < op->n_parts; i++) all += op->parts[i].width;
    /* a copied float weighed as 8 flops: a memory move, not arithmetic */
    j.pieces = lw_row_split(8.0 * x->T * all, x->T);
    if (j.pieces == 1) split_piece(&j, 0);
    else lw_parallel_for(j.pieces, split_piece, &j);
}

/* A frozen matrix of this layer, in whatever dtype the model holds it
 * (frozen_matmul.h decides the product). */
static lw_weight_ref frozen(const exec *x, lw_plan_weight w) { return lw_model_weight(x->m, x->l, w); }

static lw_status matmul_op_forward(const exec *x, const lw_plan_op *op)
{
    int out = 0;
    for (int i = 0; i < op->n_parts; i++) out += op->parts[i].width;
    float *y = act(x, op->out);
    const float *in = act(x, op->in);
    lw_status st = lw_weight_forward(y, in, frozen(x, op->w), weight(x, op->b), x->T, op->width, out);
    if (st) return st;
    if (op->n_parts > 1) split_rows(x, y, op);
    for (int i = 0; i < op->n_parts; i++)
        if (op->parts[i].lora != LW_PLAN_LORA_NONE)
            lw_lora_forward(x->ad, x->l, (lw_lora_target)op->parts[i].lora, in, act(x, op->parts[i].slot), x->T,
                            x->pos);
    return LW_OK;
}

static lw_status op_forward(const exec *x, const lw_plan_op *op, const lw_forward_args *args, lw_state *s)
{
    const lw_plan *p = x->p;
    int T = x->T;
    switch (op->kind) {
    case LW_OP_COPY: {
        float *out = act(x, op->out);
        if (out || !(op->flags & LW_PLAN_OPTIONAL)) memcpy(out, act(x, op->in), (size_t)T * op->width * sizeof *out);
        break;
    }
    case LW_OP_RMSNORM:
        rmsnorm_forward_par(act(x, op->out), act(x, op->aux), act(x, op->in), weight(x, op->w), T * op->rows,
                            op->width, p->norm_eps, p->norm);
        break;
    case LW_OP_MATMUL: return matmul_op_forward(x, op);
    case LW_OP_ROPE:
        rope_forward_par(act(x, op->out), x->pos, inv_freq(x), T, op->rows, op->head_dim, p->rope_interleaved);
        break;
    case LW_OP_ATTENTION:
        lw_cpu_attention_forward(x->m, s, x->l, T, x->pos0, args, act(x, op->out), act(x, op->aux),
                                 act(x, op->parts[0].slot), window(x));
        break;
    case LW_OP_GLU:
        glu_forward_par(act(x, op->out), act(x, op->parts[0].slot), act(x, op->parts[1].slot), T * op->width,
                        p->activation);
        break;
    case LW_OP_ADD: {
        float *y = act(x, op->out);
        const float *b = act(x, op->in);
        for (size_t i = 0, n = (size_t)T * op->width; i < n; i++) y[i] += b[i];
        break;
    }
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: case LW_OP_LOGITS: case LW_OP_HEAD_LOGSOFTMAX: case LW_OP_LAYERNORM:
    case LW_OP_GELU: case LW_OP_STANDARDISE: case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE:
    case LW_OP_KIND_COUNT: break;   /* model level; layernorm .. rms_calibrate: the bridge's */
    }
    return LW_OK;
}

/* ---- one op backward ------------------------------------------------------ */

static lw_status matmul_op_backward(const exec *x, const lw_plan_op *op)
{
    float *din = grad(x, op->din);
    const float *in = act(x, op->keep);
    if (op->flags & LW_PLAN_ZERO_DIN) zero(din, (size_t)x->T * op->width);
    for (int i = 0; i < op->n_parts; i++) {
        lw_status st = lw_weight_backward_x(din, grad(x, op->parts[i].grad), frozen(x, op->parts[i].w), x->T,
                                            op->width, op->parts[i].width);
        if (st) return st;
    }
    for (int i = 0; i < op->n_parts; i++)
        if (op->parts[i].lora != LW_PLAN_LORA_NONE)
            lw_lora_backward(x->ad, x->l, (lw_lora_target)op->parts[i].lora, in, grad(x, op->parts[i].grad), din,
                             x->T, x->pos);
    return LW_OK;
}

static lw_status op_backward(const exec *x, const lw_plan_op *op)
{
    const lw_plan *p = x->p;
    int T = x->T;
    switch (op->kind) {
    case LW_OP_RMSNORM: {
        float *din = grad(x, op->din);
        size_t rows = (size_t)T * op->rows;
        if (op->flags & LW_PLAN_ZERO_DIN) zero(din, rows * op->width);
        rmsnorm_backward_par(din, grad(x, op->dout), act(x, op->keep), weight(x, op->w), act(x, op->aux), (int)rows,
                             op->width, p->norm);
        break;
    }
    case LW_OP_MATMUL: return matmul_op_backward(x, op);
    case LW_OP_ROPE: rope_backward_par(grad(x, op->dout), x->pos, inv_freq(x), T, op->rows, op->head_dim,
                                       p->rope_interleaved);
        break;
    case LW_OP_ATTENTION:
        lw_cpu_attention_backward(x->m, x->s, x->l, T, x->g, x->ad, grad(x, op->parts[0].grad),
                                  grad(x, op->parts[1].grad), grad(x, op->parts[2].grad), grad(x, op->dout),
                                  act(x, op->aux), act(x, op->parts[0].slot), act(x, op->parts[2].slot), window(x));
        break;
    case LW_OP_GLU: {
        float *dgate = grad(x, op->parts[0].grad), *dup = grad(x, op->parts[1].grad);
        size_t n = (size_t)T * op->width;
        if (op->flags & LW_PLAN_ZERO_DIN) zero(dgate, n), zero(dup, n);
        glu_backward_par(dgate, dup, grad(x, op->dout), act(x, op->parts[0].slot), act(x, op->parts[1].slot), (int)n,
                         p->activation);
        break;
    }
    /* a copy's and a residual add's input share their output's gradient slot
     * (plan.c), so nothing moves */
    case LW_OP_COPY: case LW_OP_ADD: break;
    case LW_OP_EMBEDDING: case LW_OP_BLOCKS: case LW_OP_LOGITS: case LW_OP_HEAD_LOGSOFTMAX: case LW_OP_LAYERNORM:
    case LW_OP_GELU: case LW_OP_STANDARDISE: case LW_OP_MEAN_ROWS: case LW_OP_RMS_CALIBRATE:
    case LW_OP_KIND_COUNT: break;   /* model level; layernorm .. rms_calibrate: the bridge's */
    }
    return LW_OK;
}

/* ---- the model level forward ---------------------------------------------- */

/* The first block's input for rows [r0, r0 + T) of the call. A q8 or
 * native model with a tied head has no fp32 table: its rows come from the
 * head's blocks (narrow_weights.h), scaled as embedding_forward scales. */
static lw_status embed_rows(const lw_model *m, const lw_forward_args *a, int r0, int T, float *x)
{
    int H = m->cfg.hidden;
    for (int t = 0; t < T; t++) {
        int r = r0 + t;
        float *row = x + (size_t)t * H;
        bool use_embed = lw_forward_row_is_embed(a, r);
        if (use_embed) {
            memcpy(row, a->embeds + (size_t)r * H, (size_t)H * sizeof(float));
        } else if (m->token_embd) {
            embedding_forward(row, &a->ids[r], m->token_embd, 1, H, m->embed_scale);
        } else if (a->ids[r] < 0) {
            memset(row, 0, (size_t)H * sizeof(float));   /* as embedding_forward */
        } else {
            lw_status st = lw_model_embed_row(m, a->ids[r], row);
            if (st) return st;
            for (int i = 0; i < H; i++) row[i] *= m->embed_scale;
        }
    }
    return LW_OK;
}

lw_status lw_plan_cpu_forward_chunk(const lw_plan *p, const lw_model *m, lw_state *s, const lw_forward_args *a,
                                    int r0, int T, bool *complete)
{
    lw_status st = LW_OK;
    *complete = true;
    int n = p->n_layers;
    int pos0 = a->pos0 + r0;
    size_t row_bytes = (size_t)m->cfg.hidden * sizeof(float);
    float *hidden_out = a->capture_layer >= 0 ? a->hidden_out + (size_t)r0 * m->cfg.hidden : NULL;
    int last_layer = a->logits ? n : a->capture_layer;   /* blocks needed: [0, last_layer) */

    for (int t = 0; t < T; t++) s->pos[t] = pos0 + t;
    for (int g = 0, r0 = 0; g < a->n_segments; r0 += a->segment_len[g++])   /* each segment restarts at pos0 */
        for (int t = 0; t < a->segment_len[g]; t++) s->pos[r0 + t] = pos0 + t;
    exec x = {.p = p, .m = m, .s = s, .T = T, .pos0 = pos0, .pos = s->pos, .ad = a->adapters}, b = x;
    bind(&x, -1, NULL);
    for (int i = 0; i < p->n_model_ops; i++) {
        const lw_plan_op *op = &p->model_ops[i];
        switch (op->kind) {
        case LW_OP_EMBEDDING:
            if ((st = embed_rows(m, a, r0, T, act(&x, op->out)))) return st;
            if (a->capture_layer == 0) memcpy(hidden_out, act(&x, op->out), (size_t)T * row_bytes);
            break;
        case LW_OP_BLOCKS:
            for (int l = 0; l < n && l < last_layer; l++) {
                bind(&b, l, &s->acts[s->save_acts ? l : 0]);
                for (int j = 0; j < p->n_ops; j++)
                    if ((st = op_forward(&b, &p->ops[j], a, s))) return st;
                if (a->capture_layer == l + 1 && l + 1 < n) memcpy(hidden_out, s->x, (size_t)T * row_bytes);
            }
            if (last_layer < n) {
                *complete = false;
                return LW_OK;
            }
            break;
        case LW_OP_LOGITS: {
            /* capture n: the final-normed rows the logits are made from */
            const float *xf = act(&x, op->in);
            int H = op->width, V = op->parts[0].width;
            if (a->capture_layer == n) memcpy(hidden_out, xf, (size_t)T * row_bytes);
            if (a->logits && a->all_logits)
                st = lw_weight_forward(a->logits + (size_t)r0 * V, xf, frozen(&x, op->w), NULL, T, H, V);
            else if (a->logits && r0 + T == a->T)
                st = lw_weight_forward(a->logits, xf + (size_t)(T - 1) * H, frozen(&x, op->w), NULL, 1, H, V);
            break;
        }
        default: st = op_forward(&x, op, a, s); break;
        }
        if (st) return st;
    }
    return LW_OK;
}

/* ---- the model level backward --------------------------------------------- */

/* din = d(xf) from the loss rows' dlogits. Packed rows (not dense) go
 * through the output projection in one product, whatever their gaps (the
 * projection's weights are read once: 671 MB for Gemma-3-270M), into the
 * scratch's dbr and then to their rows; dense ones by runs of consecutive rows. */
static lw_status logits_backward(const exec *x, const lw_plan_op *op, const int *rows, int n_rows, const float *dl,
                                 bool dense)
{
    int H = op->width, V = op->parts[0].width;
    float *din = grad(x, op->din);
    lw_weight_ref w = frozen(x, op->w);
    zero(din, (size_t)x->T * H);
    if (!dense && n_rows > 0) {
        float *packed = x->g->dbr;
        zero(packed, (size_t)n_rows * H);
        lw_status st = lw_weight_backward_x(packed, dl, w, n_rows, H, V);
        if (st) return st;
        for (int i = 0; i < n_rows; i++)
            memcpy(din + (size_t)rows[i] * H, packed + (size_t)i * H, (size_t)H * sizeof(float));
        n_rows = 0;   /* done: skip the runs below */
    }
    for (int i = 0; i < n_rows;) {
        int j = i + 1;
        while (j < n_rows && rows[j] == rows[j - 1] + 1) j++;
        const float *d = dl + (size_t)(dense ? rows[i] : i) * V;
        lw_status st = lw_weight_backward_x(din + (size_t)rows[i] * H, d, w, j - i, H, V);
        if (st) return st;
        i = j;
    }
    return LW_OK;
}

lw_status lw_plan_cpu_backward(const lw_plan *p, const lw_model *m, const lw_state *s, lw_backward_scratch *g,
                          const int *rows, int n_rows, const float *dl, bool dense, float *d_embeds,
                          const lw_receiver_adapters *ad)
{
    lw_status st = LW_OK;
    int T = s->last_T;
    for (int t = 0; t < T; t++) g->pos[t] = s->last_pos0 + t;
    for (int i = 0, r0 = 0; i < s->last_n_segments; r0 += s->last_segment_len[i++])   /* each restarts */
        for (int t = 0; t < s->last_segment_len[i]; t++) g->pos[r0 + t] = s->last_pos0 + t;
    exec x = {.p = p, .m = m, .s = s, .T = T, .pos0 = s->last_pos0, .pos = g->pos, .ad = ad, .g = g}, b = x;
    bind(&x, -1, NULL);
    for (int i = p->n_model_ops - 1; i >= 0; i--) {
        const lw_plan_op *op = &p->model_ops[i];
        switch (op->kind) {
        case LW_OP_LOGITS: st = logits_backward(&x, op, rows, n_rows, dl, dense); break;
        case LW_OP_BLOCKS:
            for (int l = p->n_layers - 1; l >= 0; l--) {
                bind(&b, l, &s->acts[l]);
                for (int j = p->n_ops - 1; j >= 0; j--)
                    if ((st = op_backward(&b, &p->ops[j]))) return st;
            }
            break;
        case LW_OP_EMBEDDING: memcpy(d_embeds, grad(&x, op->dout), (size_t)T * op->width * sizeof *d_embeds); break;
        default: st = op_backward(&x, op); break;
        }
        if (st) return st;
    }
    return LW_OK;
}
