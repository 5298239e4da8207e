/* The GPU memory a pair needs, computed from the manifest before anything is
 * allocated, so that "does not fit" is one clear message up front instead of
 * an out-of-memory error halfway through loading 16 GB of weights.
 *
 * What is counted (training the bridge, the heaviest mode):
 *   weights    both models, every tensor (no biases in these families):
 *              embeddings, output head unless tied, per layer q/k/v/o,
 *              gate/up/down, the norms (2, or 4 with post-norms, plus q/k
 *              norms with QK-norm), the final norm. Priced at bf16 and fp32.
 *   activations, fp32, for batch examples of seq tokens:
 *              sender: forward only (it is frozen and gets no gradient), so
 *              one layer's working set, reused layer after layer;
 *              receiver: seq + soft_tokens positions per example, every
 *              layer's saved activations (the gradient flows back through it
 *              to the soft tokens) + the backward's gradient slots + logits
 *              and their gradient. A layer's saved values are the plan's
 *              (plan.h, lw_plan_memory_layout in training): what the
 *              executor's backward reads, and the layer's K/V rows; the
 *              gradient slots too (lw_plan_grad_layout: those the plan's
 *              backward touches, each its own buffer, as the GPU pass
 *              allocates them).
 *   bridge     parameters, gradients and AdamW's two moments, fp32.
 *   adapters   the receiver's, when the manifest has their blocks ("lora",
 *              "deep_prefix"; lw_memplan_adapters for the ones lw train's
 *              flags make): LoRA's A and B of every adapted projection and
 *              the deep prefix's generator (its LayerNorm, in_proj,
 *              positions, residual MLP, every layer's key and value
 *              projections), each with gradients and AdamW's moments;
 *              LoRA's backward scratch u, du [rows, rank] over the pass's
 *              rows; the prefix's keys and values [layers, P, kv dim] and
 *              their gradients, per example.
 * and for generation: the weights, the KV cache (fp32 k and v of every layer
 * of both models for batch x positions; full length even for sliding-window
 * layers, as the attention kernels index the whole cache), one layer's
 * working set and one row of logits per example, the adapters' parameters
 * and each example's prefix keys and values. The plan's total is the
 * larger of the two modes.
 * The counts are exact for those tensors; the bridge's own activations (a
 * few hundred MB at most), cuBLAS workspaces and the allocator's rounding
 * are not included, hence a margin in the fit check. */
#ifndef LW_CUDA_MEMPLAN_H
#define LW_CUDA_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "manifest.h"
#include "plan.h"
#include "status.h"

typedef enum { LW_DTYPE_BF16, LW_DTYPE_F32 } lw_weight_dtype;

typedef struct {
    uint64_t embed;         /* parameters of the input embedding */
    uint64_t output;        /* of the output head (0 when tied) */
    uint64_t per_layer;     /* of one transformer layer */
    uint64_t final_norm;
    uint64_t total;         /* all parameters */
    uint64_t bytes_bf16, bytes_f32;
} lw_weights_plan;

/* The receiver's adapters (counts; lw_memplan_adapters). */
typedef struct {
    uint64_t lora_params;         /* A [rank, in] and B [out, rank] of every adapted projection */
    uint64_t lora_rank;           /* 0 without LoRA */
    uint64_t prefix_params;       /* the deep prefix's generator and per-layer key/value projections */
    uint64_t prefix_kv;           /* floats per example: keys and values [n_layers, P, kv dim] */
} lw_adapters_plan;

typedef struct {
    int batch, seq;               /* as asked; the receiver sees seq + soft tokens */
    lw_weight_dtype weights_dtype;
    lw_weights_plan sender, receiver;
    uint64_t weights;             /* bytes of both models at weights_dtype */
    uint64_t sender_acts;         /* bytes, training */
    uint64_t receiver_acts;
    uint64_t bridge_params;       /* count */
    uint64_t bridge_bytes;        /* params + grads + AdamW m and v, fp32 */
    lw_adapters_plan adapters;    /* the manifest's "lora" and "deep_prefix" blocks (zero without) */
    uint64_t adapter_bytes;       /* training: params + grads + m + v, LoRA's u and du, prefix K/V and their
                                   * gradients, fp32 */
    uint64_t adapter_generate;    /* generation: params and every example's prefix K/V */
    uint64_t kv_cache;            /* bytes, generation, both models */
    uint64_t generate_acts;       /* bytes, generation working set */
    uint64_t total_train;         /* weights + acts + bridge + adapters */
    uint64_t total_generate;      /* weights + KV cache + working set + bridge params + adapters */
    uint64_t total;               /* the larger of the two */
} lw_memplan;

/* Parameters of one model (pure arithmetic over the config). */
lw_status lw_memplan_weights(const lw_model_config *c, lw_weights_plan *out);
/* Parameters of the bridge; the same table as lw_bridge_create builds. */
lw_status lw_memplan_bridge_params(const lw_bridge_config *b, int sender_hidden, int receiver_hidden,
                                   uint64_t *out);
/* The receiver r's adapters: LoRA of lora (NULL: none), a deep prefix of
 * dp (NULL: none); the same tables as lw_lora_create and
 * lw_deep_prefix_create build (runtime/model). An error for a config those
 * refuse by size (rank, layers, length, width). */
lw_status lw_memplan_adapters(const lw_model_config *r, const lw_lora_config *lora,
                              const lw_deep_prefix_config *dp, lw_adapters_plan *out);

/* fp32 values one layer keeps per token for its backward pass: the plan's
 * training layout (lw_plan_memory_saved_elems, attention as log-sum-exp). */
uint64_t lw_memplan_layer_floats(const lw_model_config *c);

/* The plan's gradient slots per token (lw_plan_grad_layout for one row,
 * lw_plan_grad_elems): the training pass's gradient buffers. */
uint64_t lw_memplan_grad_floats(const lw_model_config *c);

/* The whole plan; batch and seq in 1..2^20, overflow checked. */
lw_status lw_memplan_compute(const lw_manifest *m, int batch, int seq, lw_weight_dtype weights_dtype,
                             lw_memplan *out);

/* LW_OK if total plus a 5% (at least 256 MiB) margin fits in free_bytes;
 * otherwise an error that lists the big items and what to shrink. */
lw_status lw_memplan_check_fits(const lw_memplan *p, uint64_t free_bytes);

/* The plan at bf16 and at fp32 weights, one item a line (`lw info`). */
lw_status lw_memplan_print(const lw_manifest *m, int batch, int seq, FILE *out);

#endif
