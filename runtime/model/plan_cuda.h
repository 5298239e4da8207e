/* The CUDA backend of the plan (plan.h): the executor that runs a model's
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
 * gpu_model.h): a projection's bias (Qwen2's q/k/v), packed segments,
 * backward through bf16 weights. */
#ifndef LW_PLAN_CUDA_H
#define LW_PLAN_CUDA_H

#include <stdbool.h>

#include "gpu_model.h"
#include "lora.h"
#include "plan.h"

/* Row 0 of each activation slot's buffer ([rows, the slot's width]); 0 where
 * the caller keeps none (an optional copy is then skipped; ATT, the
 * attention's log-sum-exp [n_heads, T], is then not kept). */
typedef struct {
    lw_cuda_ptr at[LW_SLOT_COUNT];
} lw_cuda_plan_acts;

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
    lw_cuda_ptr xb;                 /* bf16 weights: a product's input in bf16 */
    lw_cuda_plan_lora lora;
    /* backward: the gradient slots ([rows, width]), and with a deep prefix
     * each layer's key and value gradients [n_prefix + rows, kv dim], prefix
     * rows first (read by the caller after the walk); NULL without one. */
    lw_cuda_ptr grad[LW_GRAD_COUNT];
    const lw_cuda_ptr *dkeys, *dvalues;
} lw_cuda_plan_bufs;

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

/* The width per row of an activation slot for config c (ATT: n_heads, the
 * log-sum-exp's rows per query row). For laying out buffers. */
int lw_plan_cuda_slot_width(const lw_model_config *c, lw_plan_slot s);

#endif
