/* One model's forward pass on the GPU: runtime/forward.c operation by
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
 * the logits of the last row or of all rows. Not yet: capture_layer,
 * adapters (LoRA, deep prefix), backward; those fail with LW_ERR_UNSUPPORTED.
 * Everything runs on the default stream; lw_gpu_forward returns after the
 * logits are on the host. */
#ifndef LW_GPU_MODEL_H
#define LW_GPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "model.h"

/* Device pointers into the weight allocation; 0 where the family has none. */
typedef struct {
    lw_cuda_ptr attn_norm, wq, wk, wv, wo, q_norm, k_norm, post_attn_norm;
    lw_cuda_ptr ffn_norm, w_gate, w_up, w_down, post_ffn_norm;
} lw_gpu_layer;

typedef struct {
    lw_cuda_kernel embedding, add_norm, head_norm, rope, glu, attention;
} lw_gpu_kernels;

typedef struct {
    lw_model_config cfg;
    lw_cuda *cu;               /* borrowed: outlive the model */
    lw_cublas *blas;
    lw_gpu_kernels k;
    lw_cuda_ptr weights;       /* one allocation holds every tensor */
    size_t weight_bytes;
    lw_cuda_ptr token_embd, output_norm, output;   /* output == token_embd when tied */
    lw_gpu_layer *layers;      /* [n_layers] */
    bool sync_each_launch;     /* wait after every launch, so a fault names its kernel (tests) */
} lw_gpu_model;

/* The KV cache and one chunk of activations, in one allocation. */
typedef struct {
    lw_cuda *cu;
    int max_tokens;            /* KV cache positions */
    int chunk;                 /* rows per pass through the blocks */
    int n_cached;              /* positions [0, n_cached) hold valid K/V */
    lw_cuda_ptr arena;
    size_t bytes;
    lw_cuda_ptr key_cache, value_cache;   /* [n_layers, max_tokens, n_kv * head_dim], k after qk-norm and RoPE */
    lw_cuda_ptr x, xn, q, ao, proj, proj_n, fn, gate, up, hid, down, down_n, xf;   /* [chunk, width] */
    lw_cuda_ptr logits;        /* [chunk, vocab] */
    lw_cuda_ptr ids, pos;      /* [chunk] int */
    int *ids_host, *pos_host;  /* [chunk] staging */
} lw_gpu_state;

/* Uploads m's weights (fp32, as the CPU loader holds them) after checking
 * they fit in the device's free memory, and finds the kernels in mod. */
lw_status lw_gpu_model_upload(lw_cuda *cu, lw_cublas *blas, const lw_cuda_module *mod, const lw_model *m,
                              lw_gpu_model **out);
void lw_gpu_model_free(lw_gpu_model *g);

/* KV cache for max_tokens positions (1..2^20, at most the context) and the
 * activations of min(max_tokens, LW_CHUNK_ROWS) rows, checked against free
 * memory first ("needs X MiB, device has Y MiB free"). */
lw_status lw_gpu_state_alloc(lw_gpu_model *g, int max_tokens, lw_gpu_state **out);
void lw_gpu_state_free(lw_gpu_state *s);
static inline void lw_gpu_state_reset(lw_gpu_state *s) { s->n_cached = 0; }

/* lw_forward on the GPU: the same arguments and the same meaning; logits
 * is required, capture_layer must be -1 and adapters NULL. */
lw_status lw_gpu_forward(lw_gpu_model *g, lw_gpu_state *s, const lw_forward_args *a);

/* lw_generate over lw_gpu_forward (gpu_generate.c): the prompt from
 * position 0, then up to max_new tokens sampled on the host. */
lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out);

#endif
