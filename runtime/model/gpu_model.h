/* One model's forward pass on the GPU: runtime/model/forward.c operation by
 * operation, with the matrix products in cuBLAS (cuda_blas.h) and the rest
 * in the model's generated kernels (templates/model_kernels.cu.in).
 *
 *   lw_cuda cu; lw_cublas blas; lw_cuda_module mod;
 *   lw_cuda_init(&cu, 0); lw_cublas_init(&blas, &cu);
 *   lw_cuda_load_unit(&cu, pair, "receiver", &mod);       // kernels built for this model
 *   lw_gpu_model_upload(&cu, &blas, &mod, cpu_model, &g);  // its fp32 weights
 *   lw_gpu_state_alloc(g, 512, &s);
 *   lw_gpu_forward(g, s, &(lw_forward_args){.ids = ids, .T = n, .logits = out, .capture_layer = -1});
 *
 * The kernels bake the model's dimensions in as constants, so the module
 * must have been generated from the same lw_model_config as the weights
 * (the pair's manifest for both, or lw_gen_model_kernels(&model->cfg)).
 *
 * Supported: token ids and input embeddings, a cache continuation at pos0,
 * the logits of the last row or of all rows, and capture_layer/hidden_out
 * (as lw_forward: without logits it stops after the captured layer). Not
 * here: adapters (LoRA, deep prefix), which fail with LW_ERR_UNSUPPORTED.
 * The receiver's training pass (forward with saved activations, backward to
 * the input rows, with LoRA and a deep prefix) is gpu_receiver_pass.h,
 * built on the launch helpers below.
 *
 * Weights are fp32 (lw_gpu_model_upload) or bf16 (lw_gpu_model_upload_dtype
 * with LW_DTYPE_BF16): then the seven projections of every layer and the
 * output head are bf16 on the device, their products read bf16 activations
 * (converted by the f32_to_bf16 kernel into the state's xb) and accumulate
 * and write fp32; norms, the embedding table and everything between the
 * products stay fp32.
 * lw_gpu_forward runs on the legacy default stream and returns after the
 * logits (and captured rows) are on the host; a decode step can run as a
 * CUDA graph on a stream of its own (lw_gpu_decoder, below). */
#ifndef LW_GPU_MODEL_H
#define LW_GPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "cuda_memplan.h"
#include "kernel_launchers.h"   /* generated from templates/kernels.def */
#include "lora.h"
#include "model.h"
#include "plan.h"

/* Device pointers into the weight allocation; 0 where the family has none. */
typedef struct {
    lw_cuda_ptr attn_norm, wq, wk, wv, bqkv, wo, q_norm, k_norm, post_attn_norm;   /* bqkv: fp32, qkv_bias */
    lw_cuda_ptr ffn_norm, w_gate, w_up, w_down, post_ffn_norm;
} lw_gpu_layer;

typedef struct {
    lw_model_config cfg;
    lw_cuda *cu;               /* borrowed: outlive the model */
    lw_cublas *blas;
    lw_model_kernels k;        /* the module's kernels, launched by lwk_<kernel> (cuda_launch.h) */
    lw_cuda_ptr weights;       /* one allocation holds every tensor */
    size_t weight_bytes;
    lw_cuda_ptr token_embd, output_norm, output;   /* output == token_embd when tied (fp32 only) */
    bool bf16;                 /* projections and output head in bf16 (norms, embedding table fp32) */
    lw_gpu_layer *layers;      /* [n_layers] */
    bool sync_each_launch;     /* wait after every launch, so a fault names its kernel (tests) */
    lw_plan plan;              /* cfg lowered: what the CUDA executor (plan_cuda.c) runs */
    /* Tests: called by the executor after each block op of a walk (layer l,
     * op j of plan.ops; backward: after op j's backward), and with l = j = -1
     * as a backward walk starts; tests/check_plan_cuda_host.c poisons there
     * the bytes whose life the memory plan ends. NULL: nothing. */
    void (*after_op)(void *user, int layer, int op, bool backward);
    void *after_op_user;
} lw_gpu_model;

/* Row 0 of each activation slot's buffer ([rows, the slot's width]); 0 where
 * the caller keeps none (an optional copy is then skipped; ATT, the
 * attention's log-sum-exp [n_heads, T], is then not kept). */
typedef struct {
    lw_cuda_ptr at[LW_SLOT_COUNT];
} lw_cuda_plan_acts;

/* The KV cache and one chunk of activations, in one allocation: the
 * activations at the offsets of the plan's memory plan (lw_plan_memory_layout
 * for chunk rows, forward only, a log-sum-exp per head and row), so slots
 * whose lives in the block do not meet share bytes, as the CPU state's do. */
typedef struct {
    lw_cuda *cu;
    int max_tokens;            /* KV cache positions */
    int chunk;                 /* rows per pass through the blocks */
    int n_cached;              /* positions [0, n_cached) hold valid K/V */
    lw_cuda_ptr arena;
    size_t bytes;
    lw_plan_memory memory;     /* the plan's layout of the activations */
    lw_cuda_ptr acts;          /* its first byte (in arena) */
    lw_cuda_plan_acts slots, top;   /* the block's slots (every layer the same) and X, XF, RSTD_FINAL */
    lw_cuda_ptr key_cache, value_cache;   /* [n_layers, max_tokens, n_kv * head_dim], k after qk-norm and RoPE */
    lw_cuda_ptr logits;        /* [chunk, vocab] */
    lw_cuda_ptr xb;            /* bf16 weights: a product's input in bf16, [chunk, max(hidden, q, ffn)] */
    lw_cuda_ptr ids, pos, seg; /* [chunk] int (seg: each row's segment's first row, packed segments) */
    int *ids_host, *pos_host, *seg_host;   /* [chunk] staging */
} lw_gpu_state;

/* Uploads m's weights (fp32, as the CPU loader holds them) after checking
 * they fit in the device's free memory, and finds the kernels in mod. */
lw_status lw_gpu_model_upload(lw_cuda *cu, lw_cublas *blas, const lw_cuda_module *mod, const lw_model *m,
                              lw_gpu_model **out);
/* The same with the weights' dtype: LW_DTYPE_F32 is lw_gpu_model_upload;
 * LW_DTYPE_BF16 converts the projections and the output head to bf16 on
 * the host as they go up (a tied head gets its own bf16 copy of the table;
 * the fp32 table stays for the embedding kernel). */
lw_status lw_gpu_model_upload_dtype(lw_cuda *cu, lw_cublas *blas, const lw_cuda_module *mod, const lw_model *m,
                                    lw_weight_dtype dtype, lw_gpu_model **out);
/* Device bytes the weights of m take at dtype (with the arena's alignment):
 * what the upload checks against free memory. Pure: no device needed. */
size_t lw_gpu_model_weight_bytes(const lw_model *m, lw_weight_dtype dtype);
/* "fp32" or "bf16", for messages. */
const char *lw_gpu_dtype_name(lw_weight_dtype dtype);
/* Parses "fp32" / "bf16" (the --dtype option); false for anything else. */
bool lw_gpu_dtype_parse(const char *s, lw_weight_dtype *out);
void lw_gpu_model_free(lw_gpu_model *g);

/* KV cache for max_tokens positions (1..2^20, at most the context) and the
 * activations of min(max_tokens, LW_CHUNK_ROWS) rows, checked against free
 * memory first ("needs X MiB, device has Y MiB free"). */
lw_status lw_gpu_state_alloc(lw_gpu_model *g, int max_tokens, lw_gpu_state **out);
void lw_gpu_state_free(lw_gpu_state *s);
static inline void lw_gpu_state_reset(lw_gpu_state *s) { s->n_cached = 0; }

/* lw_forward on the GPU: the same arguments and the same meaning (adapters
 * must be NULL). Without logits a capture_layer >= 0 is required; the
 * forward then stops after that layer and leaves n_cached at pos0, as the
 * CPU does. */
lw_status lw_gpu_forward(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a);

/* LW_ERR_UNSUPPORTED, naming the model and what is missing, for what the
 * CUDA backend has no kernel for: a bias on any op but the q/k/v projection
 * (bias_add_forward adds Qwen2's bqkv), and ops whose widths the kernels
 * built for c do not take. It reads the plan alone: packed segments with a
 * deep prefix each (one attention launch a segment over its gathered keys)
 * and backward through bf16 weights (lw_cublas_matmul_dx_bf16) run, so
 * neither the call's rows, its weights' dtype nor a backward after it can
 * be refused. The one place such refusals are made: the upload and the
 * executor (plan_cuda.c) call it. */
lw_status lw_gpu_check_plan(const lw_plan *p, const lw_model_config *c);

/* A bump allocator over one device allocation, 256-byte aligned: with base
 * 0 it only measures, so the same placing code sizes and then lays out. */
typedef struct {
    lw_cuda_ptr base;
    size_t used;
} lw_gpu_arena;
lw_cuda_ptr lw_gpu_take(lw_gpu_arena *a, size_t bytes);

/* "Does not fit" before allocating: fails with LW_ERR_NOMEM, naming what
 * (of model) needs how many MiB and what the device has free, unless need
 * plus a margin for cuBLAS and the module fits in free memory. */
lw_status lw_gpu_check_fits(lw_cuda *cu, size_t need, const char *what, const char *model);

/* ---- launch helpers of the CUDA executor (plan_cuda.c) ---------------------
 * Each issues its work on the default stream and, with sync_each_launch,
 * waits for it so a fault names the kernel. Pointers are device addresses. */

/* How g's kernels launch: on its device, named after its model, waiting
 * after each one with sync_each_launch. lwk_glu_forward(lw_gpu_launcher(g),
 * &g->k, ...) and so on (kernel_launchers.h). */
static inline lw_launch lw_gpu_launcher(const lw_gpu_model *g)
{
    return (lw_launch){.cu = g->cu, .owner = g->cfg.name, .sync = g->sync_each_launch};
}
/* y[T, out] (fp32) = x[T, in] @ w^T; layer and tensor name the weight in
 * errors. x is the product's input as the weights want it: fp32 with fp32
 * weights, bf16 with bf16 weights (what lw_gpu_matmul_input gives). */
lw_status lw_gpu_matmul(lw_gpu_model *g, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                        int layer, const char *tensor);
/* The input of a product from fp32 rows x[n]: x itself with fp32 weights;
 * with bf16 weights x converted into xb (n bf16 values, f32_to_bf16) and xb
 * returned. One conversion serves every product of the same input (q, k, v). */
lw_status lw_gpu_matmul_input(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr xb, size_t n, lw_cuda_ptr *in);
/* Rotates [T, heads, head_dim] in place by the positions pos[T]; sign -1
 * rotates back, which is RoPE's backward (the transpose of a rotation). */
lw_status lw_gpu_rope(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr pos, int T, int heads, int layer, float sign);
/* Rows [r0, r0 + T) of a's input into x[T, hidden]: the embedding kernel
 * over the ids (staged through ids_host[T] into ids_dev[T]), then a's input
 * embeddings copied over the rows that take one. */
lw_status lw_gpu_embed(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr ids_dev, int *ids_host, const lw_forward_args *a,
                       int r0, int T);

/* ---- the CUDA executor of the plan (plan_cuda.c) -------------------------
 *
 * The CUDA backend of the plan (plan.h): the executor that runs a model's
 * plan on the device, as plan_cpu.c runs it on the CPU. Forward runs the
 * op records in order, each op kind through its typed kernel launcher
 * (lwk_<kernel>, generated from templates/kernels.def) or cuBLAS
 * (cuda_blas.h); backward walks them in reverse. Slots become device
 * pointers here, per layer, from the buffers the caller lays out:
 *
 *   gpu_forward.c        inference: one set of chunk-sized activations that
 *                        every layer shares, the KV cache, capture, logits
 *                        of the last or of every row, bf16 weights;
 *   gpu_receiver_pass.c  training: every layer's activations kept (rows at
 *                        their positions, so a continuation appends), a deep
 *                        prefix's rows before each layer's keys, LoRA, and
 *                        the backward to the input rows.
 *
 * What no kernel exists for is refused in one place (lw_gpu_check_plan,
 * above): a bias other than the q/k/v projection's, packed segments with
 * a deep prefix per segment. Backward through bf16 weights converts each
 * product's dy with f32_to_bf16 into xb and multiplies in bf16 with fp32
 * accumulation (lw_cublas_matmul_dx_bf16). Declared here, as gpu_forward.c's lw_gpu_forward
 * is: the executor is part of the GPU model code, not a floor above it. */


/* A LoRA's device copy (the host's layout: lw_lora_slot offsets index
 * params and grads) and lora_backward_input's scratch u, du [rows, rank]. */
typedef struct {
    const lw_lora *lora;            /* NULL: no LoRA in this call */
    lw_cuda_ptr params, grads, u, du;
    float dropout;                  /* p while training, else 0 */
    unsigned long long seed;
} lw_cuda_plan_lora;

typedef struct {
    lw_gpu_model *g;
    const lw_plan *plan;            /* g's model lowered (lw_plan_lower(&g->cfg)) */
    /* Layer l's activations: layers[l], or layers[0] for every layer when
     * n_layer_sets is 1 (inference: nothing is kept for a backward). */
    const lw_cuda_plan_acts *layers;
    int n_layer_sets;
    lw_cuda_plan_acts top;          /* the model level: X, XF, RSTD_FINAL, LOGITS ([rows, vocab]) */
    /* Layer l's keys: key_cache + (l * cache_rows + n_prefix + position) rows of
     * kv dim; rows [0, n_prefix) before position 0 hold a deep prefix. */
    lw_cuda_ptr key_cache, value_cache;
    int cache_rows, n_prefix;
    lw_cuda_ptr pos, ids;           /* int device rows, and their host staging */
    int *pos_host, *ids_host;
    /* Packed segments: seg [rows] int (each row's segment's first row) and
     * its staging; backward walks the segments of n_segments / segment_len
     * (those of the forward it follows; 0: one sequence). */
    lw_cuda_ptr seg;
    int *seg_host;
    int n_segments;
    const int *segment_len;
    /* Packed segments that each have their own deep prefix (adapters'
     * prefix_segments): seg_prefix_k / _v [n_segments, n_layers, n_prefix,
     * kv dim] (device; the CPU's layout), backward's gradients of them
     * written into seg_dprefix_k / _v alike, and the gather buffers
     * seg_keys, seg_values, seg_dkeys, seg_dvalues [n_prefix + the longest
     * segment, kv dim] where each segment's keys are laid out [its prefix |
     * its rows] for one attention_forward / _backward a segment. 0: every
     * segment reads the one prefix in key_cache's rows. */
    lw_cuda_ptr seg_prefix_k, seg_prefix_v, seg_dprefix_k, seg_dprefix_v;
    lw_cuda_ptr seg_keys, seg_values, seg_dkeys, seg_dvalues;
    lw_cuda_ptr xb;                 /* bf16 weights: a product's input in bf16 */
    /* A graph-ready step (gpu_decode.c): the rows' ids and positions are
     * already on the device in ids / pos (nothing is uploaded, no input
     * embeddings, no segments); k and v are made in the fixed rows k_rows /
     * v_rows [T, kv dim] and kv_cache_store puts them in the layer's cache at
     * the device-held positions; attention reads its offset off pos
     * (attention_decode_forward). No launch argument then moves with the
     * position, so a CUDA graph captured once replays every step. */
    bool device_positions;
    lw_cuda_ptr k_rows, v_rows;
    lw_cuda_plan_lora lora;
    /* backward: the gradient slots ([rows, width]), and with a deep prefix
     * each layer's key and value gradients [n_prefix + rows, kv dim], prefix
     * rows first (read by the caller after the walk); NULL without one. */
    lw_cuda_ptr grad[LW_GRAD_COUNT];
    const lw_cuda_ptr *dkeys, *dvalues;
} lw_cuda_plan_bufs;

/* Rows whose logits are scored when they are not one run (a pack's
 * examples, each its own last rows): n_runs runs, run i rows [from[i],
 * from[i] + rows[i]) of the call's T; their logits stack in run order.
 * Forward gathers their final-normed rows into scratch [sum of rows,
 * hidden] (copy_forward a run) for one product with the output head;
 * backward makes their input gradient there with one product and puts each
 * run back at its rows. */
typedef struct {
    int n_runs;
    const int *from, *rows;
    lw_cuda_ptr scratch;
} lw_cuda_plan_rows;

/* One forward call: T rows at positions pos0.., their input rows r0.. of a
 * (ids, embeds, is_embed), written at row `row` of the activation buffers
 * (0 for chunk-sized buffers; pos0 where each position has its row). */
typedef struct {
    const lw_forward_args *a;
    int r0, T, pos0, row;
    int capture_layer;              /* -1: none; else hidden_out gets the T rows after that many blocks */
    float *hidden_out;
    int logits_from, logits_rows;   /* the rows (of the T) whose logits are wanted; 0 rows: none */
    float *logits_host;             /* NULL: they stay on the device in top.at[LW_SLOT_LOGITS] */
    const lw_cuda_plan_rows *runs;  /* non-NULL: these rows' logits instead of logits_from / _rows */
} lw_cuda_plan_call;

/* The model-level ops (embed, the blocks, output_norm, logits) over the
 * call's rows, with capture. *complete is false when it stopped early after
 * the captured layer (no logits wanted). Issued on the default stream; the
 * copies to the host wait for the work before them. */
lw_status lw_plan_cuda_forward(const lw_cuda_plan_bufs *b, const lw_cuda_plan_call *c, bool *complete);

/* The reverse walk after a forward of T rows from position 0 at row 0 with
 * every layer's activations kept: from dlogits [n_rows, vocab] (device) of
 * rows first.. to d_embeds [T, hidden] (host; NULL: left in grad[DX]).
 * LoRA's dA, dB are added to b->lora.grads; a deep prefix's key and value
 * gradients are left in rows [0, n_prefix) of dkeys / dvalues. */
lw_status lw_plan_cuda_backward(const lw_cuda_plan_bufs *b, int T, int first, int n_rows, lw_cuda_ptr dlogits,
                                float *d_embeds);
/* The same from the logits of several runs of rows (lw_cuda_plan_rows, as
 * the forward scored them): dlogits [sum of rows, vocab] in run order. */
lw_status lw_plan_cuda_backward_rows(const lw_cuda_plan_bufs *b, int T, const lw_cuda_plan_rows *r,
                                     lw_cuda_ptr dlogits, float *d_embeds);

/* The plan's head_logsoftmax record (label scoring) over the n_rows logits
 * rows of top.at[LW_SLOT_LOGITS] (a forward's logits_rows), one token a
 * row, from row r0 (of the logits, ids, loss and dlogits alike): loss[i]
 * = -log p(ids[i] | row i) (device); with dlogits (not 0)
 * also its backward, dlogits [n_rows, vocab] = dloss x d loss[i] / d
 * logits (written), the seed lw_plan_cuda_backward takes. */
lw_status lw_plan_cuda_head_logsoftmax(const lw_cuda_plan_bufs *b, int r0, lw_cuda_ptr ids, int n_rows,
                                       lw_cuda_ptr loss, lw_cuda_ptr dlogits, float dloss);

/* ---- the plan's memory plans on the device (plan_cuda_memory.c) ----------
 * The executor's slots carved from one device arena at the plan's offsets,
 * as the CPU carves its state and backward scratch. */

/* LW_OK when mem (laid out with shape.lse) gives every slot the executor
 * binds at least rows x lw_plan_cuda_slot_width f32 values. */
lw_status lw_cuda_plan_memory_check(const lw_model_config *c, const lw_plan_memory *mem);
/* Layer copy `layer`'s block slots into acts (shared slots the same for
 * every layer) and the pinned model-level slots (X, XF, RSTD_FINAL) into top
 * (either may be NULL), for the arena whose first byte is base. Slots the plan
 * does not store, the KV cache's and the logits are left as they were. */
void lw_cuda_plan_carve_acts(const lw_plan_memory *mem, lw_cuda_ptr base, int layer, lw_cuda_plan_acts *acts,
                             lw_cuda_plan_acts *top);
/* The gradient slots at the offsets of lw_plan_grad_layout (0 where absent). */
void lw_cuda_plan_carve_grads(const lw_plan_grad_memory *mem, lw_cuda_ptr base, lw_cuda_ptr grad[LW_GRAD_COUNT]);

/* The width per row of an activation slot for config c (ATT: n_heads, the
 * log-sum-exp's rows per query row). For laying out buffers. */
int lw_plan_cuda_slot_width(const lw_model_config *c, lw_plan_slot s);

/* The RoPE base of layer l, as the CPU's inv_freq_local / _global pick it. */
static inline float lw_gpu_rope_base(const lw_model_config *c, int l)
{
    return lw_layer_is_local(c, l) && c->rope_base_local > 0 ? c->rope_base_local : c->rope_base;
}

/* ---- a decode step captured once and replayed (gpu_decode.c) -------------
 * One token at the state's next position (n_cached), run by the executor
 * in its graph-ready form (lw_cuda_plan_bufs.device_positions) on a stream
 * of the decoder's own: the id and position go up by async copies from
 * pinned memory, the step's launches run as one CUDA graph captured at the
 * first step (use_graph), and the last row's logits come down by an async
 * copy. Where the capture fails the decoder says why once (stderr, and
 * `why`) and issues the launches itself: the same results. The prompt is
 * run before with lw_gpu_forward on the same state; the state and model
 * must outlive the decoder. */
typedef struct {
    lw_gpu_model *g;
    lw_gpu_state *s;
    void *stream;
    lw_cuda_graph graph;
    bool use_graph;         /* asked for */
    bool tried, graphed;    /* the capture was tried; it gave a graph, which the steps replay */
    char why[256];          /* why steps issue their launches ("" while nothing failed) */
    int *host_io;           /* pinned: [0] the step's id, [1] its position */
    float *host_logits;     /* pinned: [vocab] */
    lw_cuda_ptr dev;        /* one allocation: ids, pos, k_rows, v_rows */
    lw_cuda_ptr ids, pos;   /* int [1] */
    lw_cuda_ptr k_rows, v_rows;   /* [1, kv dim]: the step's k and v before kv_cache_store */
    long replays, issued;   /* steps run by the graph, by issued launches */
} lw_gpu_decoder;

lw_status lw_gpu_decoder_open(lw_gpu_model *g, lw_gpu_state *s, bool use_graph, lw_gpu_decoder **out);
/* Token id at position s->n_cached: logits [vocab] (host) of that row; n_cached + 1 after. */
lw_status lw_gpu_decoder_step(lw_gpu_decoder *d, int id, float *logits);
void lw_gpu_decoder_close(lw_gpu_decoder *d);

/* lw_generate over lw_gpu_forward (gpu_generate.c): the prompt from
 * position 0, then up to max_new tokens sampled on the host. */
lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out);

#endif
