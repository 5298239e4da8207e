/* The plan of the Perceiver bridge: its ops in order, lowered once from the
 * bridge config (bridge_plan.c), and its memory plan.
 *
 * The same idea as the decoder's plan (plan.h), with the bridge's own
 * vocabulary of slots: the model level (in_proj, the latents from the
 * learned queries, the blocks, the final LayerNorm, out_proj) and one
 * block's list, run for every block. Op kinds are plan.h's (matmul,
 * layernorm, attention, gelu, copy, add, blocks), so a backend names the
 * same ops for both. What differs from the decoder's records:
 *   - weights are trainable: a MATMUL or LAYERNORM names a tensor of the
 *     bridge's flat parameter buffer by role (lw_bridge_weight; per block
 *     for a block's ops), and backward accumulates dW and db into the flat
 *     gradient beside it;
 *   - rows are M (the latents) or T (the sender's context rows);
 *   - ATTENTION is non-causal, without a cache, its keys and values in
 *     parts 1 and 2 over kv_rows (T: cross-attention to the context).
 *
 * The whole bridge is here: standardising the input (STANDARDISE, with the
 * fixed input_norm buffers as its w and b) first, the output calibration
 * (RMS_CALIBRATE, or a COPY without one) last, so a backend that runs the
 * plan runs all of it. The mlp and linear ablations are lowered too (no
 * blocks: MEAN_ROWS over the context, then products over one row); a
 * caller puts the input rows in X and reads OUT, and hands backward dOUT
 * and reads dX. */
#ifndef LW_BRIDGE_PLAN_H
#define LW_BRIDGE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"
#include "plan.h"

/* Activation slots. Model level: XS .. Z; a block's: LAT_IN .. FPROJ. */
typedef enum {
    LW_BS_NONE,
    LW_BS_X,         /* the input rows as the caller gave them [T, S] */
    LW_BS_XS,        /* the standardised input [T, S] */
    LW_BS_POOLED, LW_BS_PH, LW_BS_PG,   /* the pooled ablations: mean of xs [1, S], hidden pre/post GELU [1, d] */
    LW_BS_CTX,       /* in_proj(xs) [T, d] */
    LW_BS_LAT,       /* the latents, the residual stream [M, d] */
    LW_BS_FN, LW_BS_FN_MEAN, LW_BS_FN_RSTD,   /* final LayerNorm */
    LW_BS_Z,         /* out_proj's output [M, R] */
    LW_BS_ZN, LW_BS_Z_RSTD,   /* the calibration: z / rms(z) [M, R], rstd [M] */
    LW_BS_OUT,       /* the soft tokens [M, R] */
    /* one block */
    LW_BS_LAT_IN,    /* lat as the block got it (cross-attention's LayerNorm input) */
    LW_BS_NQ, LW_BS_NQ_MEAN, LW_BS_NQ_RSTD, LW_BS_NKV, LW_BS_NKV_MEAN, LW_BS_NKV_RSTD,
    LW_BS_Q, LW_BS_K, LW_BS_V, LW_BS_ATT, LW_BS_AO, LW_BS_PROJ,
    LW_BS_LAT1,      /* lat after cross-attention (self-attention's LayerNorm input) */
    LW_BS_NS, LW_BS_NS_MEAN, LW_BS_NS_RSTD, LW_BS_SQ, LW_BS_SK, LW_BS_SV, LW_BS_SATT, LW_BS_SAO, LW_BS_SPROJ,
    LW_BS_LAT2,      /* lat after self-attention (the feed-forward's LayerNorm input) */
    LW_BS_NF, LW_BS_NF_MEAN, LW_BS_NF_RSTD, LW_BS_H, LW_BS_G, LW_BS_FPROJ,
    LW_BS_COUNT
} lw_bridge_slot;

enum { LW_BS_FIRST_BLOCK = LW_BS_LAT_IN };

/* Weight roles: one block's tensors (lw_bridge_block's fields, same order),
 * then the model level's. */
typedef enum {
    LW_BW_NONE,
    LW_BW_CROSS_NORM_Q_W, LW_BW_CROSS_NORM_Q_B, LW_BW_CROSS_NORM_KV_W, LW_BW_CROSS_NORM_KV_B,
    LW_BW_CROSS_Q, LW_BW_CROSS_K, LW_BW_CROSS_V, LW_BW_CROSS_O,
    LW_BW_SELF_NORM_W, LW_BW_SELF_NORM_B, LW_BW_SELF_Q, LW_BW_SELF_K, LW_BW_SELF_V, LW_BW_SELF_O,
    LW_BW_FFN_NORM_W, LW_BW_FFN_NORM_B, LW_BW_FC1_W, LW_BW_FC1_B, LW_BW_FC2_W, LW_BW_FC2_B,
    LW_BW_IN_W, LW_BW_IN_B, LW_BW_QUERIES, LW_BW_FINAL_NORM_W, LW_BW_FINAL_NORM_B, LW_BW_OUT_W, LW_BW_OUT_B,
    LW_BW_IN_MEAN, LW_BW_IN_STD,   /* input_norm's buffers: no gradient */
    LW_BW_OUT_SCALE,
    LW_BW_COUNT
} lw_bridge_weight;

enum { LW_BW_FIRST_MODEL = LW_BW_IN_W };

/* Gradient buffers of the backward walk. */
typedef enum {
    LW_BG_NONE,
    LW_BG_DX,     /* the caller's input's (only when the caller asks for dx) */
    LW_BG_DXS,    /* the standardised input's (likewise) */
    LW_BG_DPOOLED,   /* the pooled ablations' mean row */
    LW_BG_DCTX, LW_BG_DNKV,
    LW_BG_DLAT,   /* the latents, and every branch that adds to them */
    LW_BG_DN,     /* a LayerNorm's output over M rows */
    LW_BG_DAO, LW_BG_DQ, LW_BG_DK, LW_BG_DV,   /* dk, dv: M or T rows */
    LW_BG_DH, LW_BG_DG,
    LW_BG_DZ,     /* out_proj's output */
    LW_BG_DZN,    /* the calibration's normalised output */
    LW_BG_DOUT,   /* the soft tokens': the caller's */
    LW_BG_COUNT
} lw_bridge_grad;

/* Which row count an op runs over. */
typedef enum { LW_BRIDGE_ROWS_M, LW_BRIDGE_ROWS_T, LW_BRIDGE_ROWS_ONE } lw_bridge_rows;

/* One op. MATMUL: out[rows, out_width] = in[rows, width] @ w^T (+ b);
 * backward din (+)= dout @ w, dW += dout^T in, db += sum dout.
 * LAYERNORM: out = (in - mean) * rstd * w + b, aux = mean, aux2 = rstd;
 * backward reads keep (in as forward saw it) and accumulates din, dW, db.
 * GELU (tanh form): out = gelu(in). ATTENTION: parts q, k, v (keys over
 * kv_rows), out, aux = probabilities, no mask; backward dq, dk, dv.
 * COPY: out = in, or out = w when w names a tensor (the queries; backward
 * adds dout into its gradient); ADD: out += in (shared gradient).
 * BLOCKS (model level): every block's list in turn; in = ctx, which every
 * block reads (backward zeroes its gradient din first, as ZERO_DIN).
 * STANDARDISE, MEAN_ROWS, RMS_CALIBRATE: plan.h's (model level only). */
typedef struct {
    lw_op_kind kind;
    lw_bridge_slot in, keep, out, aux, aux2;
    lw_bridge_slot parts[3];
    lw_bridge_weight w, b;
    lw_bridge_grad din, dout, dparts[3];
    lw_bridge_rows rows, kv_rows;
    int width, out_width;       /* per row: in and out for MATMUL; the row's width otherwise */
    int heads, head_dim;        /* ATTENTION */
    unsigned flags;             /* LW_PLAN_ZERO_DIN (plan.h) */
} lw_bridge_op;

enum { LW_BRIDGE_MAX_OPS = 32, LW_BRIDGE_MAX_MODEL_OPS = 10 };

/* STANDARDISE's floor on input_norm.std (lw_bridge_set_input_norm stores it
 * floored; the op floors again what a checkpoint may hold: zero, negative, NaN). */
#define LW_BRIDGE_MIN_INPUT_STD 1e-6f

/* A weight role a level of the bridge does not have (lw_bridge_weight_offsets). */
#define LW_BRIDGE_NO_WEIGHT ((size_t)-1)

typedef struct {
    int n_model_ops;
    lw_bridge_op model_ops[LW_BRIDGE_MAX_MODEL_OPS];
    int n_ops;
    lw_bridge_op ops[LW_BRIDGE_MAX_OPS];
    int depth;
    int soft_tokens;   /* M */
    int sender_hidden, width, receiver_hidden;   /* S, d, R */
    float norm_eps;    /* LayerNorm's */
    float calib_eps;   /* RMS_CALIBRATE's */
    float min_std;     /* STANDARDISE's floor on the std (a checkpoint's zero, negative or NaN std) */
} lw_bridge_plan;

/* The lowering of a bridge: the perceiver, or the mlp and linear ablations
 * (depth 0, no block list). An error for a config out of range (the
 * bridge's own limits). */
lw_status lw_bridge_plan_lower(const lw_bridge_config *cfg, int sender_hidden, int receiver_hidden,
                               lw_bridge_plan *out);

/* LW_OK when a and b are the same plan; otherwise the first difference. */
lw_status lw_bridge_plan_compare(const lw_bridge_plan *a, const lw_bridge_plan *b, const char *what);

const char *lw_bridge_slot_name(lw_bridge_slot s);
const char *lw_bridge_weight_name(lw_bridge_weight w);
const char *lw_bridge_grad_name(lw_bridge_grad g);

/* ---- the memory plan --------------------------------------------------------
 * One arena for the activations at max_T context rows, laid out as the
 * decoder's (lw_plan_memory_layout's rules and its first fit,
 * lw_plan_place_shared): the model-level slots pinned; with training what
 * backward reads one copy per block, the rest shared by live range in the
 * block's list. The gradient buffers follow in a region of their own. */
typedef struct {
    int max_T;
    bool training;
    lw_plan_buffer slots[LW_BS_COUNT];     /* where: PINNED, SHARED, LAYER (one copy per block), NONE */
    uint64_t grad_elems[LW_BG_COUNT], grad_offset[LW_BG_COUNT];   /* bytes from the arena's start */
    uint64_t pinned_bytes, shared_bytes, layer_bytes;
    int n_layer_copies;
    uint64_t grad_bytes;
    uint64_t bytes;   /* pinned + shared + copies x layer + gradients */
} lw_bridge_memory;

/* Slot sizes: rows (M, or max_T for context rows) x width; attention
 * probabilities heads x M x key rows. An error for max_T outside 1..65536. */
lw_status lw_bridge_memory_layout(const lw_bridge_plan *p, int max_T, bool training, lw_bridge_memory *out);

/* LW_OK when a and b are the same layout; else the first difference. */
lw_status lw_bridge_memory_compare(const lw_bridge_memory *a, const lw_bridge_memory *b, const char *what);

#endif
