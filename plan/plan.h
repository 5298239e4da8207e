/* The plan of a model: its ops in order, lowered once from its config.
 *
 * The decoder block is written here, and only here, as a list of op
 * records (lw_plan_lower in plan.c); a backend runs the list forward and
 * walks it in reverse for backward (the CPU's: plan_cpu.c). `lwc build`
 * emits each model's plan into the pair's binary (codegen/gen_plan.c), and
 * the binary refuses to start when the loaded model lowers to another plan.
 *
 * An op names its data by slot, not by pointer: activation slots are the
 * fields of lw_layer_acts (or of lw_state for the residual stream, the KV
 * cache rows and the final norm), weight slots the fields of
 * lw_layer_weights (or lw_model's), gradient slots the buffers of the
 * backward scratch. The lowering picks the gradient slots, so where two
 * values share a gradient (a residual add's branch and the stream, a copy
 * and its source) they share a buffer and backward moves nothing.
 *
 * Op kinds are backend-neutral names; what each one computes, forward and
 * backward, is written beside its enum value. A backend implements every
 * kind (a GPU one under the same names). Where a kind is one op of
 * runtime/ops/op_list.h it carries that op's name (matmul, rmsnorm, rope,
 * attention, glu, embedding, head_logsoftmax); copy, add, blocks and logits
 * are the plan's. */
#ifndef LW_PLAN_H
#define LW_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "model_config.h"
#include "status.h"

typedef enum {
    /* out[T, width] = in (a saved copy, or a write into the KV cache). No
     * backward: the lowering gives in and out the same gradient slot. */
    LW_OP_COPY,
    /* out = rmsnorm(in) * w over T * rows rows of width (rows > 1: per head,
     * in place when in == out); aux = rstd. Backward: din (+)= d rmsnorm(keep)
     * . dout, keep being the input as the forward saw it. */
    LW_OP_RMSNORM,
    /* A projection: in[T, width] @ w^T (+ b) into out[T, sum of the parts'
     * widths], then split by rows into the parts (one part: out is the part),
     * then the LoRA hook at each part that names a target. Backward: din =
     * sum over parts of dpart @ w_part, then each part's LoRA backward. */
    LW_OP_MATMUL,
    /* Rotary embedding in place on out[T, rows heads, head_dim]: the local
     * frequencies on sliding-window layers. Backward rotates dout back. */
    LW_OP_ROPE,
    /* Causal grouped-query attention: parts q, k, v (k and v: the cache
     * rows), out = attention output, aux = probabilities. The backend
     * handles the cache, a deep prefix (sink keys the window spares),
     * segments and the per-layer window. Backward: dq, dk, dv from dout. */
    LW_OP_ATTENTION,
    /* out = act(gate) * up, parts gate and up. Backward: dgate, dup. */
    LW_OP_GLU,
    /* The residual: out += in. No backward: in and out share a gradient. */
    LW_OP_ADD,
    /* Model level. EMBEDDING: out = the input rows (token embeddings scaled, or
     * the given embeddings); backward: the caller reads dout. BLOCKS: every
     * block's plan in turn (capture after each). LOGITS: in @ w^T for the
     * rows asked; backward: din from the loss rows' dlogits. */
    LW_OP_EMBEDDING,
    LW_OP_BLOCKS,
    LW_OP_LOGITS,
    /* Label scoring, the receiver's last record: for (row, token) pairs of
     * the final-normed rows in (xf), out[k] = log softmax(in[row] @ w^T)[id]
     * (w: the output head), aux = each row's log-sum-exp over the
     * vocabulary. Run on the rows and pairs a caller asks for (label
     * scoring, the label loss), not by a plain forward. Backward: din (+)=
     * sum_k dout[k] d out[k] / d in (the caller's dlogp, as LOGITS takes
     * the caller's dlogits). The CPU fuses the head with the log-softmax
     * (ops.h head_logsoftmax_*); the GPU runs it on LOGITS' rows (the
     * cross-entropy kernel, one token a row). */
    LW_OP_HEAD_LOGSOFTMAX,
    /* The bridge's (bridge_plan.h; no decoder block emits them).
     * LAYERNORM: out = (in - mean) * rstd * w + b; GELU: out = gelu_tanh(in).
     * STANDARDISE: out = (in - w) / max(b, floor) per column (the input's
     * fixed statistics; backward: din += dout / max(b, floor)). MEAN_ROWS:
     * out[1, width] = the mean of in's rows (the pooled ablations; backward:
     * din[t] += dout / rows). RMS_CALIBRATE: keep = in / rms(in) per row,
     * out = keep * w[0] (one learned scale), aux = rstd; backward: dw +=
     * sum dout * keep, din (+)= d rmsnorm . (dout * w[0]). */
    LW_OP_LAYERNORM,
    LW_OP_GELU,
    LW_OP_STANDARDISE,
    LW_OP_MEAN_ROWS,
    LW_OP_RMS_CALIBRATE,
    LW_OP_KIND_COUNT
} lw_op_kind;

/* Activation slots: lw_layer_acts fields, then lw_state's. */
typedef enum {
    LW_SLOT_NONE,
    LW_SLOT_X_IN, LW_SLOT_XN, LW_SLOT_RSTD_ATTN, LW_SLOT_QKV, LW_SLOT_Q, LW_SLOT_K, LW_SLOT_V, LW_SLOT_Q_ROPE,
    LW_SLOT_RSTD_Q, LW_SLOT_RSTD_K, LW_SLOT_ATT, LW_SLOT_AO, LW_SLOT_PROJ, LW_SLOT_PROJ_N,
    LW_SLOT_RSTD_POST_ATTN, LW_SLOT_X_MID, LW_SLOT_FN, LW_SLOT_RSTD_FFN, LW_SLOT_GATE_UP, LW_SLOT_GATE,
    LW_SLOT_UP, LW_SLOT_HID, LW_SLOT_DOWN, LW_SLOT_DOWN_N, LW_SLOT_RSTD_POST_FFN,
    LW_SLOT_X,          /* the residual stream (lw_state.x) */
    LW_SLOT_K_CACHE,    /* the layer's key cache rows of this call (after qk-norm and RoPE) */
    LW_SLOT_V_CACHE,
    LW_SLOT_XF,         /* output_norm(x) */
    LW_SLOT_RSTD_FINAL,
    LW_SLOT_LOGITS,     /* the caller's logits */
    LW_SLOT_LOGP,       /* HEAD_LOGSOFTMAX: the caller's scored pairs' log-probs */
    LW_SLOT_LSE,        /* HEAD_LOGSOFTMAX: each scored row's log-sum-exp (the caller's) */
    LW_SLOT_COUNT
} lw_plan_slot;

/* Weight slots: lw_layer_weights fields, then lw_model's. */
typedef enum {
    LW_W_NONE,
    LW_W_ATTN_NORM, LW_W_WQKV, LW_W_WQ, LW_W_WK, LW_W_WV, LW_W_BQKV, LW_W_WO, LW_W_Q_NORM, LW_W_K_NORM,
    LW_W_POST_ATTN_NORM, LW_W_FFN_NORM, LW_W_GATE_UP, LW_W_GATE, LW_W_UP, LW_W_DOWN, LW_W_POST_FFN_NORM,
    LW_W_TOKEN_EMBD, LW_W_OUTPUT_NORM, LW_W_OUTPUT,
    LW_W_COUNT
} lw_plan_weight;

/* Gradient slots: the backward scratch's buffers (model_backward.c). */
typedef enum {
    LW_GRAD_NONE,
    LW_GRAD_DX,      /* the residual stream, and every branch that adds to it */
    LW_GRAD_DXF,     /* output_norm's output */
    LW_GRAD_DBR,     /* a branch before its post norm */
    LW_GRAD_DLN,     /* attn_norm / ffn_norm output */
    LW_GRAD_DAO,
    LW_GRAD_DQ, LW_GRAD_DQ_PRE,   /* after / before qk-norm and RoPE */
    LW_GRAD_DK, LW_GRAD_DK_PRE,
    LW_GRAD_DV,
    LW_GRAD_DGATE, LW_GRAD_DUP, LW_GRAD_DHID,
    LW_GRAD_COUNT
} lw_plan_grad;

/* The LoRA hook points (lora.h's lw_lora_target, same order). */
typedef enum {
    LW_PLAN_LORA_NONE = -1,
    LW_PLAN_LORA_Q, LW_PLAN_LORA_K, LW_PLAN_LORA_V, LW_PLAN_LORA_O, LW_PLAN_LORA_GATE, LW_PLAN_LORA_UP,
    LW_PLAN_LORA_DOWN
} lw_plan_lora;

/* One output (MATMUL), input (GLU, ATTENTION) of an op. */
typedef struct {
    lw_plan_slot slot;
    lw_plan_grad grad;
    lw_plan_weight w;      /* MATMUL: this part's rows of the fused weight */
    int width;             /* per token */
    lw_plan_lora lora;     /* MATMUL: the LoRA hook after this part */
} lw_plan_part;

enum { LW_PLAN_MAX_PARTS = 3, LW_PLAN_MAX_OPS = 40, LW_PLAN_MAX_MODEL_OPS = 8 };

/* Flags of an op. */
enum {
    LW_PLAN_ZERO_DIN = 1,   /* backward sets din to 0 before accumulating (else adds to it) */
    LW_PLAN_OPTIONAL = 2,   /* forward skips it when out is absent (x_in, x_mid without saved activations) */
    LW_PLAN_PER_LAYER = 4   /* depends on the layer's kind (sliding window or global) */
};

typedef struct {
    lw_op_kind kind;
    lw_plan_slot in, out, aux;
    lw_plan_slot keep;        /* backward's view of in (a saved copy where in is overwritten later) */
    lw_plan_weight w, b;
    lw_plan_grad din, dout;
    int width;                /* per row: in for MATMUL, the normed width for RMSNORM, per token for COPY/ADD/GLU */
    int rows;                 /* rows per token: heads for per-head norms, RoPE and attention (query heads) */
    int kv_heads, head_dim;   /* ROPE, ATTENTION */
    int n_parts;
    lw_plan_part parts[LW_PLAN_MAX_PARTS];
    unsigned flags;
} lw_plan_op;

/* A model's plan: the model-level steps, the block's ops (one list for every
 * layer), and what the ops read off the config. */
typedef struct {
    int n_model_ops;
    lw_plan_op model_ops[LW_PLAN_MAX_MODEL_OPS];
    int n_ops;
    lw_plan_op ops[LW_PLAN_MAX_OPS];
    int n_layers;
    int sliding_window, global_every;   /* which layers are local: lw_plan_layer_local */
    lw_norm_kind norm;
    float norm_eps;
    lw_activation activation;
    bool rope_interleaved;
} lw_plan;

/* The single lowering: config -> plan. Cannot fail (the op count is fixed
 * by the config's flags and fits LW_PLAN_MAX_OPS). */
void lw_plan_lower(const lw_model_config *c, lw_plan *out);

/* Is layer l a sliding-window layer (local RoPE base and the window)? The
 * same rule as lw_layer_is_local, on the plan's copy of the config. */
static inline bool lw_plan_layer_local(const lw_plan *p, int l)
{
    return p->sliding_window > 0 && p->global_every > 0 && (l + 1) % p->global_every != 0;
}

/* Names for messages and dumps. */
const char *lw_op_kind_name(lw_op_kind k);
const char *lw_plan_slot_name(lw_plan_slot s);
const char *lw_plan_weight_name(lw_plan_weight w);
const char *lw_plan_grad_name(lw_plan_grad g);

/* ---- dtypes and the memory plan (plan_memory.c) --------------------------
 *
 * Every slot has a dtype, and every activation slot a byte offset in one
 * arena, laid out from the slots' lifetimes in the block for a given shape:
 * a slot's space is reused once its last forward reader has run, except
 * that a training layout keeps, per layer, what backward reads (the slots
 * op_backward of plan_cpu.c reads: keep, aux, attention's q and v, GLU's
 * gate and up). The CPU state (lw_state_alloc) carves its activations from
 * this layout; the GPU memory plan (cuda_memplan.c) counts the same slots,
 * with the attention aux as the log-sum-exp its kernels keep. */

typedef enum { LW_PLAN_F32, LW_PLAN_BF16, LW_PLAN_Q8, LW_PLAN_DTYPE_COUNT } lw_plan_dtype;

/* Where a slot's storage lives. */
typedef enum {
    LW_PLAN_MEM_NONE,     /* not stored: unused by this plan, or only read by backward and not training */
    LW_PLAN_MEM_PINNED,   /* model level (x, xf, rstd_final): live for the whole pass, never shared */
    LW_PLAN_MEM_SHARED,   /* a block slot in the reused region: live from its first write to its last read */
    LW_PLAN_MEM_LAYER,    /* training: one copy per layer at offset + l * layer_bytes (backward reads it) */
    LW_PLAN_MEM_CACHE     /* the KV cache rows (k_cache, v_cache): the state's cache, not the arena */
} lw_plan_mem_where;

typedef struct {
    int rows;       /* T: rows per pass through the blocks (batch x tokens, packed) */
    int att_rows;   /* query rows per attention call (the probabilities' capacity) */
    int kv_len;     /* key positions (the cache's capacity) */
    bool training;  /* keep what backward reads, per layer */
    bool lse;       /* attention keeps one log-sum-exp per head and row (the GPU kernels), not probabilities */
} lw_plan_shape;

typedef struct {
    lw_plan_dtype dtype;
    lw_plan_mem_where where;
    uint64_t elems;     /* values of this slot (for one layer) */
    uint64_t offset;    /* bytes from the arena's start (LAYER: layer 0's copy) */
    int first, last;    /* block op indices: first writer, last forward reader (-1: none) */
} lw_plan_buffer;

enum { LW_PLAN_ALIGN = 64 };   /* bytes: every buffer starts on a cache line */

typedef struct {
    lw_plan_shape shape;
    lw_plan_buffer slots[LW_SLOT_COUNT];
    uint64_t pinned_bytes;   /* [0, pinned_bytes): the model-level slots */
    uint64_t shared_bytes;   /* then the reused block region */
    uint64_t layer_bytes;    /* then n_layer_copies regions of this many bytes (training) */
    int n_layer_copies;
    uint64_t bytes;          /* the arena: pinned + shared + copies x layer */
} lw_plan_memory;

/* The dtype weight w is held in when its model was loaded with --dtype d:
 * the rule narrow_weights.c's lw_narrow_matrix applies and frozen_matmul.c
 * reads (the projections, their views wq wk wv w_gate w_up, and the output
 * head narrow; the embedding table, the norms and the biases stay fp32).
 * check_plan holds the two to each other on a narrowed model. */
lw_plan_dtype lw_plan_weight_dtype(lw_plan_weight w, lw_weights_dtype d);

/* Bytes of one value (Q8: the value byte; its block scales are not counted). */
unsigned lw_plan_dtype_bytes(lw_plan_dtype d);
const char *lw_plan_dtype_name(lw_plan_dtype d);
const char *lw_plan_mem_where_name(lw_plan_mem_where w);

/* The memory plan of p for shape (rows, att_rows, kv_len 1..2^20, att_rows
 * <= rows); an error for a shape out of range or byte counts that overflow. */
lw_status lw_plan_memory_layout(const lw_plan *p, const lw_plan_shape *shape, lw_plan_memory *out);

/* Values per layer that a training pass keeps for backward (LAYER and CACHE
 * slots), per row of the shape it was laid out for: what the GPU memory plan
 * prices per token. */
uint64_t lw_plan_memory_saved_elems(const lw_plan_memory *mem);

/* The shared region's first fit, for any slot vocabulary (the decoder's
 * layout above, the bridge's in bridge_plan.c): buffers i < n with
 * shared[i] are placed in order of first write (then index) at the lowest
 * 64-byte-aligned offset from base where they meet no placed buffer whose
 * live range [first, last] meets theirs. Writes offset[i]; returns the
 * region's end. */
uint64_t lw_plan_place_shared(int n, const uint64_t *bytes, const int *first, const int *last, const bool *shared,
                              uint64_t base, uint64_t *offset);

/* ---- the backward's gradient buffers (plan_grad_memory.c) ----------------
 *
 * The gradient slots (lw_plan_grad) laid out in one arena of their own for
 * a backward over `rows` rows, from their lifetimes in the reverse walk
 * (what op_backward of plan_cpu.c reads and writes): step 0 is the model
 * level (the logits' and output_norm's backward), step 1 + (n_ops - 1 - j)
 * block op j's backward. dx (the residual stream, carried across layers)
 * and dxf are pinned; every other slot is live from its first write to its
 * last read in one layer's walk (dbr also at step 0, where the logits'
 * backward packs its rows in it) and shares bytes with slots whose ranges do
 * not meet (lw_plan_place_shared). Every slot but dx is written before it
 * is read within its range, so sharing changes no result. The CPU
 * backward scratch carves its buffers from this layout
 * (lw_backward_scratch_alloc); the GPU memory plan counts it. */
typedef struct {
    int rows;
    lw_plan_buffer grads[LW_GRAD_COUNT];   /* where: PINNED, SHARED or NONE (unused by the plan) */
    uint64_t pinned_bytes;                 /* [0, pinned_bytes): dx, dxf */
    uint64_t bytes;                        /* the arena */
} lw_plan_grad_memory;

/* The gradient layout of p for a backward over rows (1..2^20) rows. */
lw_status lw_plan_grad_layout(const lw_plan *p, int rows, lw_plan_grad_memory *out);

/* Values of the slots the layout stores, each counted apart (no sharing):
 * what a backend that gives every gradient slot its own buffer allocates. */
uint64_t lw_plan_grad_elems(const lw_plan_grad_memory *mem);

/* LW_OK when a and b are the same layout; else the first difference. */
lw_status lw_plan_memory_compare(const lw_plan_memory *a, const lw_plan_memory *b, const char *what);

#endif
