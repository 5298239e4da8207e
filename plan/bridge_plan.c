/* The lowering of the Perceiver bridge (bridge_plan.h): the one place that
 * says what a bridge block computes and in which order, and its memory
 * plan. The order follows the design (bridge.h) and, within a block, is
 * chosen so that the reversed walk accumulates each gradient in the order
 * the hand-written backward did (so training is bit for bit the same):
 * the projections read off one LayerNorm are listed v, k, q, so backward
 * adds q's, then k's, then v's input gradient. */
#include "bridge_plan.h"
#include "record_compare.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static const float LN_EPS = 1e-5f;
static const float CALIB_EPS = 1e-6f;      /* the calibration's RMS (and rms_calibrate_forward's) */

typedef struct {
    lw_bridge_op *ops;
    int *n;
    int cap;
} op_list;

static lw_bridge_op *add(op_list *l, lw_op_kind kind, lw_bridge_rows rows)
{
    assert(*l->n < l->cap);   /* the lists below are fixed: at most 7 model ops, 29 block ops */
    lw_bridge_op *op = &l->ops[(*l->n)++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->rows = op->kv_rows = rows;
    return op;
}

static void layernorm(op_list *l, lw_bridge_slot in, lw_bridge_slot keep, lw_bridge_slot out, lw_bridge_slot mean,
                      lw_bridge_slot rstd, lw_bridge_weight w, lw_bridge_weight b, lw_bridge_rows rows, int width,
                      lw_bridge_grad din, lw_bridge_grad dout, unsigned flags)
{
    lw_bridge_op *op = add(l, LW_OP_LAYERNORM, rows);
    op->in = in, op->keep = keep, op->out = out, op->aux = mean, op->aux2 = rstd, op->w = w, op->b = b;
    op->width = op->out_width = width, op->din = din, op->dout = dout, op->flags = flags;
}

static void matmul(op_list *l, lw_bridge_slot in, lw_bridge_slot out, lw_bridge_weight w, lw_bridge_weight b,
                   lw_bridge_rows rows, int width, int out_width, lw_bridge_grad din, lw_bridge_grad dout,
                   unsigned flags)
{
    lw_bridge_op *op = add(l, LW_OP_MATMUL, rows);
    op->in = op->keep = in, op->out = out, op->w = w, op->b = b;
    op->width = width, op->out_width = out_width, op->din = din, op->dout = dout, op->flags = flags;
}

static void copy(op_list *l, lw_bridge_slot in, lw_bridge_weight w, lw_bridge_slot out, int width,
                 lw_bridge_grad grad)
{
    lw_bridge_op *op = add(l, LW_OP_COPY, LW_BRIDGE_ROWS_M);
    op->in = in, op->w = w, op->out = out, op->width = op->out_width = width, op->din = op->dout = grad;
}

static void attention(op_list *l, const lw_bridge_slot qkv[3], lw_bridge_slot out, lw_bridge_slot att,
                      lw_bridge_rows kv_rows, int heads, int width)
{
    lw_bridge_op *op = add(l, LW_OP_ATTENTION, LW_BRIDGE_ROWS_M);
    static const lw_bridge_grad dqkv[3] = {LW_BG_DQ, LW_BG_DK, LW_BG_DV};
    for (int i = 0; i < 3; i++) op->parts[i] = qkv[i], op->dparts[i] = dqkv[i];
    op->out = out, op->aux = att, op->kv_rows = kv_rows, op->heads = heads, op->head_dim = width / heads;
    op->width = op->out_width = width, op->dout = LW_BG_DAO, op->flags = LW_PLAN_ZERO_DIN;
}

static void residual_add(op_list *l, lw_bridge_slot branch, int width)
{
    lw_bridge_op *op = add(l, LW_OP_ADD, LW_BRIDGE_ROWS_M);
    op->in = branch, op->out = LW_BS_LAT, op->width = op->out_width = width, op->din = op->dout = LW_BG_DLAT;
}

/* One block: lat += cross_attn(LN(lat) -> LN(ctx)); lat += self_attn(LN(lat));
 * lat += fc2(gelu(fc1(LN(lat)))). */
static void lower_block(const lw_bridge_config *c, op_list *l)
{
    int d = c->width, H = c->heads, F = c->ffn_mult * c->width;
    const lw_bridge_rows M = LW_BRIDGE_ROWS_M, T = LW_BRIDGE_ROWS_T;
    const unsigned Z = LW_PLAN_ZERO_DIN;

    /* ---- cross-attention: queries from the latents, keys and values from the context ---- */
    copy(l, LW_BS_LAT, LW_BW_NONE, LW_BS_LAT_IN, d, LW_BG_DLAT);
    layernorm(l, LW_BS_LAT, LW_BS_LAT_IN, LW_BS_NQ, LW_BS_NQ_MEAN, LW_BS_NQ_RSTD, LW_BW_CROSS_NORM_Q_W,
              LW_BW_CROSS_NORM_Q_B, M, d, LW_BG_DLAT, LW_BG_DN, 0);
    layernorm(l, LW_BS_CTX, LW_BS_CTX, LW_BS_NKV, LW_BS_NKV_MEAN, LW_BS_NKV_RSTD, LW_BW_CROSS_NORM_KV_W,
              LW_BW_CROSS_NORM_KV_B, T, d, LW_BG_DCTX, LW_BG_DNKV, 0);
    matmul(l, LW_BS_NKV, LW_BS_V, LW_BW_CROSS_V, LW_BW_NONE, T, d, d, LW_BG_DNKV, LW_BG_DV, 0);
    matmul(l, LW_BS_NKV, LW_BS_K, LW_BW_CROSS_K, LW_BW_NONE, T, d, d, LW_BG_DNKV, LW_BG_DK, Z);
    matmul(l, LW_BS_NQ, LW_BS_Q, LW_BW_CROSS_Q, LW_BW_NONE, M, d, d, LW_BG_DN, LW_BG_DQ, Z);
    attention(l, (lw_bridge_slot[]){LW_BS_Q, LW_BS_K, LW_BS_V}, LW_BS_AO, LW_BS_ATT, T, H, d);
    matmul(l, LW_BS_AO, LW_BS_PROJ, LW_BW_CROSS_O, LW_BW_NONE, M, d, d, LW_BG_DAO, LW_BG_DLAT, Z);
    residual_add(l, LW_BS_PROJ, d);

    /* ---- self-attention over the latents ---- */
    copy(l, LW_BS_LAT, LW_BW_NONE, LW_BS_LAT1, d, LW_BG_DLAT);
    layernorm(l, LW_BS_LAT, LW_BS_LAT1, LW_BS_NS, LW_BS_NS_MEAN, LW_BS_NS_RSTD, LW_BW_SELF_NORM_W,
              LW_BW_SELF_NORM_B, M, d, LW_BG_DLAT, LW_BG_DN, 0);
    matmul(l, LW_BS_NS, LW_BS_SV, LW_BW_SELF_V, LW_BW_NONE, M, d, d, LW_BG_DN, LW_BG_DV, 0);
    matmul(l, LW_BS_NS, LW_BS_SK, LW_BW_SELF_K, LW_BW_NONE, M, d, d, LW_BG_DN, LW_BG_DK, 0);
    matmul(l, LW_BS_NS, LW_BS_SQ, LW_BW_SELF_Q, LW_BW_NONE, M, d, d, LW_BG_DN, LW_BG_DQ, Z);
    attention(l, (lw_bridge_slot[]){LW_BS_SQ, LW_BS_SK, LW_BS_SV}, LW_BS_SAO, LW_BS_SATT, M, H, d);
    matmul(l, LW_BS_SAO, LW_BS_SPROJ, LW_BW_SELF_O, LW_BW_NONE, M, d, d, LW_BG_DAO, LW_BG_DLAT, Z);
    residual_add(l, LW_BS_SPROJ, d);

    /* ---- feed-forward ---- */
    copy(l, LW_BS_LAT, LW_BW_NONE, LW_BS_LAT2, d, LW_BG_DLAT);
    layernorm(l, LW_BS_LAT, LW_BS_LAT2, LW_BS_NF, LW_BS_NF_MEAN, LW_BS_NF_RSTD, LW_BW_FFN_NORM_W, LW_BW_FFN_NORM_B,
              M, d, LW_BG_DLAT, LW_BG_DN, 0);
    matmul(l, LW_BS_NF, LW_BS_H, LW_BW_FC1_W, LW_BW_FC1_B, M, d, F, LW_BG_DN, LW_BG_DH, Z);
    lw_bridge_op *op = add(l, LW_OP_GELU, M);
    op->in = op->keep = LW_BS_H, op->out = LW_BS_G, op->width = op->out_width = F;
    op->din = LW_BG_DH, op->dout = LW_BG_DG, op->flags = Z;
    matmul(l, LW_BS_G, LW_BS_FPROJ, LW_BW_FC2_W, LW_BW_FC2_B, M, F, d, LW_BG_DG, LW_BG_DLAT, Z);
    residual_add(l, LW_BS_FPROJ, d);
}

/* xs = (x - input_norm.mean) / input_norm.std: the first record of every kind. */
static void standardise(op_list *l, int S)
{
    lw_bridge_op *op = add(l, LW_OP_STANDARDISE, LW_BRIDGE_ROWS_T);
    op->in = LW_BS_X, op->out = LW_BS_XS, op->w = LW_BW_IN_MEAN, op->b = LW_BW_IN_STD;
    op->width = op->out_width = S, op->din = LW_BG_DX, op->dout = LW_BG_DXS, op->flags = LW_PLAN_ZERO_DIN;
}

/* out = z / rms(z) * out_scale per soft token, or out = z (one gradient):
 * the last record. dz is the gradient out_proj's backward reads. */
static lw_bridge_grad calibration(const lw_bridge_config *c, op_list *l, int R)
{
    if (c->calibration != LW_CALIB_RMS) {
        copy(l, LW_BS_Z, LW_BW_NONE, LW_BS_OUT, R, LW_BG_DOUT);
        return LW_BG_DOUT;
    }
    lw_bridge_op *op = add(l, LW_OP_RMS_CALIBRATE, LW_BRIDGE_ROWS_M);
    op->in = LW_BS_Z, op->keep = LW_BS_ZN, op->out = LW_BS_OUT, op->aux = LW_BS_Z_RSTD, op->w = LW_BW_OUT_SCALE;
    op->width = op->out_width = R, op->din = LW_BG_DZ, op->dout = LW_BG_DOUT;
    op->dparts[0] = LW_BG_DZN;   /* backward's scratch: dout * out_scale */
    op->flags = LW_PLAN_ZERO_DIN;
    return LW_BG_DZ;
}

/* ctx = in_proj(xs); lat = queries; the blocks; z = out_proj(LN(lat)). The
 * out_proj record is lowered before the calibration's, which names its dz. */
static void lower_model(const lw_bridge_config *c, int S, int R, op_list *l)
{
    int d = c->width;
    standardise(l, S);
    matmul(l, LW_BS_XS, LW_BS_CTX, LW_BW_IN_W, LW_BW_IN_B, LW_BRIDGE_ROWS_T, S, d, LW_BG_DXS, LW_BG_DCTX,
           LW_PLAN_ZERO_DIN);
    copy(l, LW_BS_NONE, LW_BW_QUERIES, LW_BS_LAT, d, LW_BG_DLAT);
    lw_bridge_op *op = add(l, LW_OP_BLOCKS, LW_BRIDGE_ROWS_M);
    op->in = LW_BS_CTX, op->out = LW_BS_LAT, op->kv_rows = LW_BRIDGE_ROWS_T, op->width = op->out_width = d;
    op->din = LW_BG_DCTX, op->dout = LW_BG_DLAT, op->flags = LW_PLAN_ZERO_DIN;
    layernorm(l, LW_BS_LAT, LW_BS_LAT, LW_BS_FN, LW_BS_FN_MEAN, LW_BS_FN_RSTD, LW_BW_FINAL_NORM_W,
              LW_BW_FINAL_NORM_B, LW_BRIDGE_ROWS_M, d, LW_BG_DLAT, LW_BG_DN, LW_PLAN_ZERO_DIN);
    lw_bridge_op *out = add(l, LW_OP_MATMUL, LW_BRIDGE_ROWS_M);
    lw_bridge_grad dz = calibration(c, l, R);
    out->in = out->keep = LW_BS_FN, out->out = LW_BS_Z, out->w = LW_BW_OUT_W, out->b = LW_BW_OUT_B;
    out->width = d, out->out_width = R, out->din = LW_BG_DN, out->dout = dz, out->flags = LW_PLAN_ZERO_DIN;
}

/* The ablations, over the mean of the context rows (one row):
 * linear: z = out_proj(pooled); mlp: z = out_proj(gelu(in_proj(pooled))),
 * z [1, M x R] read as [M, R]. */
static void lower_pooled(const lw_bridge_config *c, int S, int R, op_list *l)
{
    int d = c->width, MR = c->soft_tokens * R;
    const lw_bridge_rows ONE = LW_BRIDGE_ROWS_ONE;
    const unsigned Z = LW_PLAN_ZERO_DIN;
    standardise(l, S);
    lw_bridge_op *op = add(l, LW_OP_MEAN_ROWS, ONE);
    op->in = LW_BS_XS, op->out = LW_BS_POOLED, op->kv_rows = LW_BRIDGE_ROWS_T, op->width = op->out_width = S;
    op->din = LW_BG_DXS, op->dout = LW_BG_DPOOLED, op->flags = Z;
    lw_bridge_op *out;
    if (c->kind == LW_BRIDGE_LINEAR) {
        out = add(l, LW_OP_MATMUL, ONE);
        out->in = out->keep = LW_BS_POOLED, out->width = S, out->din = LW_BG_DPOOLED;
    } else {
        matmul(l, LW_BS_POOLED, LW_BS_PH, LW_BW_IN_W, LW_BW_IN_B, ONE, S, d, LW_BG_DPOOLED, LW_BG_DH, Z);
        op = add(l, LW_OP_GELU, ONE);
        op->in = op->keep = LW_BS_PH, op->out = LW_BS_PG, op->width = op->out_width = d;
        op->din = LW_BG_DH, op->dout = LW_BG_DG, op->flags = Z;
        out = add(l, LW_OP_MATMUL, ONE);
        out->in = out->keep = LW_BS_PG, out->width = d, out->din = LW_BG_DG;
    }
    lw_bridge_grad dz = calibration(c, l, R);
    out->out = LW_BS_Z, out->w = LW_BW_OUT_W, out->b = LW_BW_OUT_B, out->out_width = MR, out->dout = dz;
    out->flags = Z;
}

lw_status lw_bridge_plan_lower(const lw_bridge_config *c, int S, int R, lw_bridge_plan *p)
{
    memset(p, 0, sizeof *p);
    lw_status st = lw_bridge_config_check(c, S, R);
    if (st) return lw_fail_wrap(st, "bridge plan");
    op_list model = {p->model_ops, &p->n_model_ops, LW_BRIDGE_MAX_MODEL_OPS};
    switch (c->kind) {
    case LW_BRIDGE_PERCEIVER:
        lower_model(c, S, R, &model);
        lower_block(c, &(op_list){p->ops, &p->n_ops, LW_BRIDGE_MAX_OPS});
        p->depth = c->depth;
        break;
    case LW_BRIDGE_MLP: case LW_BRIDGE_LINEAR: lower_pooled(c, S, R, &model); break;
    default: return lw_fail(LW_ERR_INVALID, "bridge plan: unknown bridge kind %d", (int)c->kind);
    }
    p->soft_tokens = c->soft_tokens;
    p->sender_hidden = S;
    p->width = c->width;
    p->receiver_hidden = R;
    p->norm_eps = LN_EPS;
    p->calib_eps = CALIB_EPS;
    p->min_std = LW_BRIDGE_MIN_INPUT_STD;
    return LW_OK;
}

/* ---- names and comparison ------------------------------------------------ */

const char *lw_bridge_slot_name(lw_bridge_slot s)
{
    static const char *const names[LW_BS_COUNT] = {
        [LW_BS_NONE] = "-", [LW_BS_X] = "x", [LW_BS_XS] = "xs", [LW_BS_POOLED] = "pooled",
        [LW_BS_PH] = "ph", [LW_BS_PG] = "pg", [LW_BS_ZN] = "zn", [LW_BS_Z_RSTD] = "z_rstd", [LW_BS_OUT] = "out", [LW_BS_CTX] = "ctx", [LW_BS_LAT] = "lat", [LW_BS_FN] = "fn",
        [LW_BS_FN_MEAN] = "fn_mean", [LW_BS_FN_RSTD] = "fn_rstd", [LW_BS_Z] = "z", [LW_BS_LAT_IN] = "lat_in",
        [LW_BS_NQ] = "nq", [LW_BS_NQ_MEAN] = "nq_mean", [LW_BS_NQ_RSTD] = "nq_rstd", [LW_BS_NKV] = "nkv",
        [LW_BS_NKV_MEAN] = "nkv_mean", [LW_BS_NKV_RSTD] = "nkv_rstd", [LW_BS_Q] = "q", [LW_BS_K] = "k",
        [LW_BS_V] = "v", [LW_BS_ATT] = "att", [LW_BS_AO] = "ao", [LW_BS_PROJ] = "proj", [LW_BS_LAT1] = "lat1",
        [LW_BS_NS] = "ns", [LW_BS_NS_MEAN] = "ns_mean", [LW_BS_NS_RSTD] = "ns_rstd", [LW_BS_SQ] = "sq",
        [LW_BS_SK] = "sk", [LW_BS_SV] = "sv", [LW_BS_SATT] = "satt", [LW_BS_SAO] = "sao", [LW_BS_SPROJ] = "sproj",
        [LW_BS_LAT2] = "lat2", [LW_BS_NF] = "nf", [LW_BS_NF_MEAN] = "nf_mean", [LW_BS_NF_RSTD] = "nf_rstd",
        [LW_BS_H] = "h", [LW_BS_G] = "g", [LW_BS_FPROJ] = "fproj"};
    return (unsigned)s < LW_BS_COUNT ? names[s] : "?";
}

/* The checkpoint's tensor names (bridge.c's table), blocks.<l>. left off. */
const char *lw_bridge_weight_name(lw_bridge_weight w)
{
    static const char *const names[LW_BW_COUNT] = {
        [LW_BW_NONE] = "-", [LW_BW_CROSS_NORM_Q_W] = "cross_attn.norm_q.weight",
        [LW_BW_CROSS_NORM_Q_B] = "cross_attn.norm_q.bias", [LW_BW_CROSS_NORM_KV_W] = "cross_attn.norm_kv.weight",
        [LW_BW_CROSS_NORM_KV_B] = "cross_attn.norm_kv.bias", [LW_BW_CROSS_Q] = "cross_attn.q.weight",
        [LW_BW_CROSS_K] = "cross_attn.k.weight", [LW_BW_CROSS_V] = "cross_attn.v.weight",
        [LW_BW_CROSS_O] = "cross_attn.o.weight", [LW_BW_SELF_NORM_W] = "self_attn.norm.weight",
        [LW_BW_SELF_NORM_B] = "self_attn.norm.bias", [LW_BW_SELF_Q] = "self_attn.q.weight",
        [LW_BW_SELF_K] = "self_attn.k.weight", [LW_BW_SELF_V] = "self_attn.v.weight",
        [LW_BW_SELF_O] = "self_attn.o.weight", [LW_BW_FFN_NORM_W] = "ffn.norm.weight",
        [LW_BW_FFN_NORM_B] = "ffn.norm.bias", [LW_BW_FC1_W] = "ffn.fc1.weight", [LW_BW_FC1_B] = "ffn.fc1.bias",
        [LW_BW_FC2_W] = "ffn.fc2.weight", [LW_BW_FC2_B] = "ffn.fc2.bias", [LW_BW_IN_W] = "in_proj.weight",
        [LW_BW_IN_B] = "in_proj.bias", [LW_BW_QUERIES] = "queries", [LW_BW_FINAL_NORM_W] = "final_norm.weight",
        [LW_BW_FINAL_NORM_B] = "final_norm.bias", [LW_BW_OUT_W] = "out_proj.weight",
        [LW_BW_OUT_B] = "out_proj.bias", [LW_BW_IN_MEAN] = "input_norm.mean", [LW_BW_IN_STD] = "input_norm.std",
        [LW_BW_OUT_SCALE] = "out_scale"};
    return (unsigned)w < LW_BW_COUNT ? names[w] : "?";
}

const char *lw_bridge_grad_name(lw_bridge_grad g)
{
    static const char *const names[LW_BG_COUNT] = {
        [LW_BG_NONE] = "-", [LW_BG_DX] = "dx", [LW_BG_DXS] = "dxs", [LW_BG_DPOOLED] = "dpooled", [LW_BG_DCTX] = "dctx", [LW_BG_DNKV] = "dnkv",
        [LW_BG_DLAT] = "dlat", [LW_BG_DN] = "dn", [LW_BG_DAO] = "dao", [LW_BG_DQ] = "dq", [LW_BG_DK] = "dk",
        [LW_BG_DV] = "dv", [LW_BG_DH] = "dh", [LW_BG_DG] = "dg", [LW_BG_DZ] = "dz", [LW_BG_DZN] = "dzn",
        [LW_BG_DOUT] = "dout"};
    return (unsigned)g < LW_BG_COUNT ? names[g] : "?";
}

static lw_status compare_op(const void *pa, const void *pb, const char *what)
{
    const lw_bridge_op *a = pa, *b = pb;
    DIFF_AS("kind", "%s", lw_op_kind_name, a->kind, b->kind);
    DIFF_AS("in", "%s", lw_bridge_slot_name, a->in, b->in);
    DIFF_AS("keep", "%s", lw_bridge_slot_name, a->keep, b->keep);
    DIFF_AS("out", "%s", lw_bridge_slot_name, a->out, b->out);
    DIFF_AS("aux", "%s", lw_bridge_slot_name, a->aux, b->aux);
    DIFF_AS("aux2", "%s", lw_bridge_slot_name, a->aux2, b->aux2);
    for (int i = 0; i < 3; i++) {
        DIFF_AS("part", "%s", lw_bridge_slot_name, a->parts[i], b->parts[i]);
        DIFF_AS("part gradient", "%s", lw_bridge_grad_name, a->dparts[i], b->dparts[i]);
    }
    DIFF_AS("weight", "%s", lw_bridge_weight_name, a->w, b->w);
    DIFF_AS("bias", "%s", lw_bridge_weight_name, a->b, b->b);
    DIFF_AS("din", "%s", lw_bridge_grad_name, a->din, b->din);
    DIFF_AS("dout", "%s", lw_bridge_grad_name, a->dout, b->dout);
    DIFF("rows", "%d", (int)a->rows, (int)b->rows);
    DIFF("key rows", "%d", (int)a->kv_rows, (int)b->kv_rows);
    DIFF("width", "%d", a->width, b->width);
    DIFF("out width", "%d", a->out_width, b->out_width);
    DIFF("heads", "%d", a->heads, b->heads);
    DIFF("head_dim", "%d", a->head_dim, b->head_dim);
    DIFF("flags", "%u", a->flags, b->flags);
    return LW_OK;
}

static const char *op_kind(const void *op) { return lw_op_kind_name(((const lw_bridge_op *)op)->kind); }

lw_status lw_bridge_plan_compare(const lw_bridge_plan *a, const lw_bridge_plan *b, const char *what)
{
    DIFF("depth", "%d", a->depth, b->depth);
    DIFF("soft tokens", "%d", a->soft_tokens, b->soft_tokens);
    DIFF("sender hidden", "%d", a->sender_hidden, b->sender_hidden);
    DIFF("width", "%d", a->width, b->width);
    DIFF("receiver hidden", "%d", a->receiver_hidden, b->receiver_hidden);
    DIFF("norm_eps", "%.9g", (double)a->norm_eps, (double)b->norm_eps);
    DIFF("calib_eps", "%.9g", (double)a->calib_eps, (double)b->calib_eps);
    DIFF("min_std", "%.9g", (double)a->min_std, (double)b->min_std);
    lw_status st = lw_compare_records(a->model_ops, a->n_model_ops, b->model_ops, b->n_model_ops,
                                      sizeof *a->model_ops, "bridge model", what, op_kind, compare_op);
    if (!st)
        st = lw_compare_records(a->ops, a->n_ops, b->ops, b->n_ops, sizeof *a->ops, "bridge block", what, op_kind, compare_op);
    return st;
}

/* ---- the memory plan ------------------------------------------------------- */

typedef struct {
    const lw_bridge_plan *p;
    uint64_t T;
    uint64_t elems[LW_BS_COUNT], gelems[LW_BG_COUNT];
    int first[LW_BS_COUNT], last[LW_BS_COUNT];
    bool bwd_read[LW_BS_COUNT];
} usage;

static uint64_t rows_of(const usage *u, lw_bridge_rows r)
{
    return r == LW_BRIDGE_ROWS_T ? u->T : r == LW_BRIDGE_ROWS_ONE ? 1 : (uint64_t)u->p->soft_tokens;
}

/* Sizes are at most 2^20 x 2^20 x 64 (T, S or F, heads): no overflow in 64 bits. */
static void size_of(usage *u, lw_bridge_slot s, uint64_t n)
{
    if (s != LW_BS_NONE && n > u->elems[s]) u->elems[s] = n;
}

static void gsize_of(usage *u, lw_bridge_grad g, uint64_t n)
{
    if (g != LW_BG_NONE && n > u->gelems[g]) u->gelems[g] = n;
}

static void writes(usage *u, lw_bridge_slot s, int i)
{
    if (s != LW_BS_NONE && u->first[s] < 0) u->first[s] = i;
}

static void reads(usage *u, lw_bridge_slot s, int i)
{
    if (s != LW_BS_NONE && i > u->last[s]) u->last[s] = i;
}

static void saves(usage *u, lw_bridge_slot s)
{
    if (s != LW_BS_NONE) u->bwd_read[s] = true;
}

/* What op i reads and writes, forward and backward: the executor's
 * (runtime/bridge/bridge_exec.c) op_forward / op_backward. */
static void use_op(usage *u, const lw_bridge_op *op, int i)
{
    uint64_t rows = rows_of(u, op->rows), kv = rows_of(u, op->kv_rows);
    uint64_t w = (uint64_t)op->width, ow = (uint64_t)op->out_width;
    switch (op->kind) {
    case LW_OP_MEAN_ROWS:   /* in and din over kv_rows (the context), out and dout one row */
        size_of(u, op->in, kv * w), size_of(u, op->out, w), gsize_of(u, op->din, kv * w), gsize_of(u, op->dout, w);
        break;
    case LW_OP_MATMUL: case LW_OP_GELU: case LW_OP_COPY: case LW_OP_ADD: case LW_OP_LAYERNORM:
    case LW_OP_STANDARDISE: case LW_OP_RMS_CALIBRATE:
        if (op->kind == LW_OP_RMS_CALIBRATE) gsize_of(u, op->dparts[0], rows * w);
        size_of(u, op->in, rows * w), size_of(u, op->keep, rows * w), size_of(u, op->out, rows * ow);
        size_of(u, op->aux, rows), size_of(u, op->aux2, rows);
        gsize_of(u, op->din, rows * w), gsize_of(u, op->dout, rows * ow);
        reads(u, op->in, i);
        if (op->kind == LW_OP_ADD) reads(u, op->out, i);
        writes(u, op->out, i), writes(u, op->aux, i), writes(u, op->aux2, i);
        if (op->kind != LW_OP_COPY && op->kind != LW_OP_ADD) saves(u, op->keep), saves(u, op->aux), saves(u, op->aux2);
        break;
    case LW_OP_ATTENTION:
        for (int j = 0; j < 3; j++) {
            uint64_t n = (j == 0 ? rows : kv) * w;
            size_of(u, op->parts[j], n), gsize_of(u, op->dparts[j], n);
            reads(u, op->parts[j], i), saves(u, op->parts[j]);
        }
        size_of(u, op->out, rows * w), gsize_of(u, op->dout, rows * w);
        size_of(u, op->aux, (uint64_t)op->heads * rows * kv);
        writes(u, op->out, i), writes(u, op->aux, i), saves(u, op->aux);
        break;
    case LW_OP_BLOCKS:
        size_of(u, op->out, rows * w), gsize_of(u, op->din, kv * w), gsize_of(u, op->dout, rows * w);
        break;
    case LW_OP_RMSNORM: case LW_OP_ROPE: case LW_OP_GLU: case LW_OP_EMBEDDING: case LW_OP_LOGITS:
    case LW_OP_HEAD_LOGSOFTMAX:
    case LW_OP_KIND_COUNT: break;   /* the decoder's */
    }
}

static uint64_t align_up(uint64_t n) { return (n + LW_PLAN_ALIGN - 1) / LW_PLAN_ALIGN * LW_PLAN_ALIGN; }

lw_status lw_bridge_memory_layout(const lw_bridge_plan *p, int max_T, bool training, lw_bridge_memory *out)
{
    if (max_T < 1 || max_T > 65536)
        return lw_fail(LW_ERR_INVALID, "bridge memory plan: max_T is %d, expected 1..65536", max_T);
    usage u;
    memset(&u, 0, sizeof u);
    u.p = p, u.T = (uint64_t)max_T;
    for (int s = 0; s < LW_BS_COUNT; s++) u.first[s] = u.last[s] = -1;
    for (int i = 0; i < p->n_ops; i++) use_op(&u, &p->ops[i], i);
    /* the model level: sizes only (its slots are pinned) */
    usage mu = u;
    for (int i = 0; i < p->n_model_ops; i++) use_op(&mu, &p->model_ops[i], i);
    for (int s = 0; s < LW_BS_COUNT; s++) u.elems[s] = mu.elems[s];
    for (int g = 0; g < LW_BG_COUNT; g++) u.gelems[g] = mu.gelems[g];

    lw_bridge_memory m;
    memset(&m, 0, sizeof m);
    m.max_T = max_T, m.training = training;
    uint64_t bytes[LW_BS_COUNT] = {0}, off[LW_BS_COUNT] = {0};
    bool shared[LW_BS_COUNT] = {false};
    uint64_t at = 0;
    for (int s = 1; s < LW_BS_COUNT; s++) {
        lw_plan_buffer *b = &m.slots[s];
        b->dtype = LW_PLAN_F32;
        b->first = u.first[s], b->last = u.last[s];
        b->elems = u.elems[s];
        bytes[s] = b->elems * sizeof(float);
        if (!b->elems) continue;
        if (s < LW_BS_FIRST_BLOCK) {
            b->where = LW_PLAN_MEM_PINNED, b->offset = at, at += align_up(bytes[s]);
            continue;
        }
        if (training && u.bwd_read[s]) {
            b->where = LW_PLAN_MEM_LAYER;
            continue;
        }
        b->where = LW_PLAN_MEM_SHARED, shared[s] = true;
        /* written, never read forward (a saved copy without training): live at its writer only */
        if (b->last < b->first) b->last = b->first;
    }
    m.pinned_bytes = at;
    int first[LW_BS_COUNT], last[LW_BS_COUNT];
    for (int s = 0; s < LW_BS_COUNT; s++) first[s] = m.slots[s].first, last[s] = m.slots[s].last;
    uint64_t end = lw_plan_place_shared(LW_BS_COUNT, bytes, first, last, shared, at, off);
    for (int s = 1; s < LW_BS_COUNT; s++)
        if (shared[s]) m.slots[s].offset = off[s];
    m.shared_bytes = end - m.pinned_bytes;
    for (int s = 1; s < LW_BS_COUNT; s++)
        if (m.slots[s].where == LW_PLAN_MEM_LAYER) {
            m.slots[s].offset = end + m.layer_bytes;
            m.layer_bytes += align_up(bytes[s]);
        }
    m.n_layer_copies = training ? p->depth : 0;
    at = end + m.layer_bytes * (uint64_t)m.n_layer_copies;
    uint64_t g0 = at;
    for (int g = 1; g < LW_BG_COUNT; g++) {
        m.grad_elems[g] = u.gelems[g];
        m.grad_offset[g] = at;
        at += align_up(m.grad_elems[g] * sizeof(float));
    }
    m.grad_bytes = at - g0;
    m.bytes = at;
    *out = m;
    return LW_OK;
}

_Static_assert(LW_BS_COUNT <= 64, "lw_plan_place_shared places at most 64 buffers");

lw_status lw_bridge_memory_compare(const lw_bridge_memory *a, const lw_bridge_memory *b, const char *what)
{
    if (a->max_T != b->max_T || a->training != b->training || a->bytes != b->bytes ||
        a->layer_bytes != b->layer_bytes || a->grad_bytes != b->grad_bytes)
        return lw_fail(LW_ERR_INVALID, "%s: bridge arena differs: T %d training %d, %llu bytes (%llu per block, %llu "
                       "of gradients) here, T %d training %d, %llu (%llu, %llu) in the other", what, a->max_T,
                       (int)a->training, (unsigned long long)a->bytes, (unsigned long long)a->layer_bytes,
                       (unsigned long long)a->grad_bytes, b->max_T, (int)b->training, (unsigned long long)b->bytes,
                       (unsigned long long)b->layer_bytes, (unsigned long long)b->grad_bytes);
    for (int s = 1; s < LW_BS_COUNT; s++) {
        const lw_plan_buffer *x = &a->slots[s], *y = &b->slots[s];
        if (x->where != y->where || x->elems != y->elems || x->offset != y->offset)
            return lw_fail(LW_ERR_INVALID, "%s: bridge slot %s differs: %s %llu values at %llu here, %s %llu at %llu "
                           "in the other", what, lw_bridge_slot_name((lw_bridge_slot)s),
                           lw_plan_mem_where_name(x->where), (unsigned long long)x->elems,
                           (unsigned long long)x->offset, lw_plan_mem_where_name(y->where),
                           (unsigned long long)y->elems, (unsigned long long)y->offset);
    }
    for (int g = 1; g < LW_BG_COUNT; g++)
        if (a->grad_elems[g] != b->grad_elems[g] || a->grad_offset[g] != b->grad_offset[g])
            return lw_fail(LW_ERR_INVALID, "%s: bridge gradient %s differs", what,
                           lw_bridge_grad_name((lw_bridge_grad)g));
    return LW_OK;
}
