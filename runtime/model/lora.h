/* LoRA on the receiver's projections (Hu et al. 2021, as PEFT does it):
 *
 *   y = W x + scale * B A dropout(x),   scale = alpha / rank,
 *   A [rank, in] ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)),
 *   B [out, rank] = 0,
 *
 * so a fresh adapter leaves the model exactly as it was. Targets are any of
 * q, k, v, o (attention) and gate, up, down (FFN), on a chosen set of layers.
 * Dropout masks (training only) come from a counter-based hash of (seed,
 * layer, target, position, column), so backward recomputes them instead of
 * storing them, and a GPU kernel can draw the same ones.
 *
 * Merged: W += scale B A in the model's own weights (inference speed; the
 * forward then skips the adapter); unmerge subtracts it again (to rounding).
 *
 * Saved (lora_file.h) as safetensors under PEFT's names,
 *   base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight  [rank, in]
 *   base_model.model.model.layers.{i}.mlp.gate_proj.lora_B.weight     [out, rank]
 * with metadata "adapter_config": the JSON PEFT keeps in adapter_config.json
 * (peft_type, r, lora_alpha, lora_dropout, target_modules,
 * layers_to_transform). Rows of q_proj/k_proj are in the receiver's row
 * order: for llama weights read from GGUF (interleaved RoPE) that is
 * llama.cpp's permutation of Hugging Face's (tests/load_lora_peft.py undoes it). */
#ifndef LW_LORA_H
#define LW_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "adapter_params.h"
#include "adapter_view.h"
#include "manifest.h"
#include "model.h"
#include "status.h"

typedef enum {
    LW_LORA_Q, LW_LORA_K, LW_LORA_V, LW_LORA_O, LW_LORA_GATE, LW_LORA_UP, LW_LORA_DOWN, LW_LORA_N_TARGETS
} lw_lora_target;

/* lw_lora_config (rank, alpha, dropout, targets, layers) is in manifest.h,
 * beside the manifest's "lora" block that fills it. */

/* One adapted projection: offsets of A and B in params / grads. */
typedef struct {
    bool on;
    int in, out;
    size_t a, b;
} lw_lora_slot;

struct lw_lora {
    lw_lora_config cfg;
    int n_layers;
    float scale;                 /* alpha / rank */
    lw_adapter_params p;
    lw_lora_slot *slots;         /* [n_layers * LW_LORA_N_TARGETS] */
    bool merged;
};

/* "q", "k", "v", "o", "gate", "up", "down"; PEFT's module names ("q_proj" ...). */
const char *lw_lora_target_name(lw_lora_target t);
const char *lw_lora_target_module(lw_lora_target t);
/* -1 for an unknown name. */
int lw_lora_target_parse(const char *name);
/* A config from "q,v" style text and a layer spec ("all", "N" first N, or
 * "0,3,5"); what --lora on the command line gives. */
lw_status lw_lora_config_parse(lw_lora_config *cfg, int rank, float alpha, float dropout, const char *targets,
                               const char *layers);

/* Does cfg put adapters on layer l (first_layers, else layer_list, else all)? */
bool lw_lora_layer_on(const lw_lora_config *cfg, int l);
/* Builds the tensor table for the receiver m (checks the config against it)
 * and allocates; B = 0 and A = 0 until lw_lora_init. */
lw_status lw_lora_create(lw_lora *lo, const lw_lora_config *cfg, const lw_model *m);
void lw_lora_free(lw_lora *lo);
/* A kaiming-uniform from lw_rng_seed(seed), tensor by tensor; B = 0. */
void lw_lora_init(lw_lora *lo, uint64_t seed);

static inline const lw_lora_slot *lw_lora_slot_at(const lw_lora *lo, int layer, lw_lora_target t)
{
    return &lo->slots[(size_t)layer * LW_LORA_N_TARGETS + t];
}

/* The hooks forward.c and model_backward.c call (no-ops when ad has no
 * LoRA, the slot is off, or the adapter is merged):
 * y[T, out] += scale * B A dropout(x[T, in]); pos[T] are the rows' positions. */
void lw_lora_forward(const lw_receiver_adapters *ad, int layer, lw_lora_target t, const float *x, float *y, int T,
                     const int *pos);
/* dx[T, in] += d/dx of the same; dA, dB accumulate into lora->p.grads. */
void lw_lora_backward(const lw_receiver_adapters *ad, int layer, lw_lora_target t, const float *x,
                      const float *dy, float *dx, int T, const int *pos);

/* W += scale B A (merge) or W -= scale B A (unmerge) in m's weights. */
lw_status lw_lora_merge(lw_lora *lo, lw_model *m);
lw_status lw_lora_unmerge(lw_lora *lo, lw_model *m);

#endif
