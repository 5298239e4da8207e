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
 * the logits of the last row or of all rows. Not yet here: capture_layer,
 * adapters (LoRA, deep prefix); those fail with LW_ERR_UNSUPPORTED. The
 * receiver's training pass (forward with saved activations, backward to the
 * input rows, with LoRA and a deep prefix) is gpu_receiver_pass.h, built on
 * the launch helpers below.
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
    /* backward, for gpu_receiver_pass.c */
    lw_cuda_kernel norm_backward, head_norm_backward, glu_backward, attention_backward, cross_entropy;
    /* LoRA on the projections, for gpu_receiver_pass.c's adapters */
    lw_cuda_kernel lora_forward, lora_backward_input, lora_backward_weights;
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

/* ---- launch helpers, shared by gpu_forward.c and gpu_receiver_pass.c -----
 * Each issues its work on the default stream and, with sync_each_launch,
 * waits for it so a fault names the kernel. Pointers are device addresses;
 * 0 means "none" where a kernel allows it (rstd, lse, pending). */

lw_status lw_gpu_launch(lw_gpu_model *g, const lw_cuda_kernel *k, unsigned gx, unsigned gy, unsigned bx,
                        void **args);
/* y[T, out] = x[T, in] @ w^T; layer and tensor name the weight in errors. */
lw_status lw_gpu_matmul(lw_gpu_model *g, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                        int layer, const char *tensor);
/* x += pending (0: nothing), then y = norm(x) with gains w over [T, hidden];
 * rstd[T] (may be 0) keeps 1 / rms for the backward pass. */
lw_status lw_gpu_add_norm(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr y, lw_cuda_ptr rstd, lw_cuda_ptr pending,
                          lw_cuda_ptr w, int T);
/* Per-head RMSNorm over rows of head_dim; y may be x (in place). */
lw_status lw_gpu_head_norm(lw_gpu_model *g, lw_cuda_ptr y, lw_cuda_ptr rstd, lw_cuda_ptr x, lw_cuda_ptr w,
                           int rows);
/* Rotates [T, heads, head_dim] in place by the positions pos[T]; sign -1
 * rotates back, which is RoPE's backward (the transpose of a rotation). */
lw_status lw_gpu_rope(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr pos, int T, int heads, int layer, float sign);
/* T query rows at positions pos0.. over keys/values [0, pos0 + T); lse
 * [n_heads, T] (may be 0) is kept for attention_backward. */
lw_status lw_gpu_attention(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr lse, lw_cuda_ptr q, lw_cuda_ptr keys,
                           lw_cuda_ptr values, int T, int pos0, int window);
/* The same with a deep prefix: keys/values hold n_sink prefix rows, then
 * positions [0, pos0 + T); every query sees the prefix (the window spares
 * it), as forward.c's attend with ad->prefix_len = n_sink. */
lw_status lw_gpu_attention_sink(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr lse, lw_cuda_ptr q, lw_cuda_ptr keys,
                                lw_cuda_ptr values, int T, int pos0, int window, int n_sink);
lw_status lw_gpu_glu(lw_gpu_model *g, lw_cuda_ptr out, lw_cuda_ptr gate, lw_cuda_ptr up, int n);
/* Rows [r0, r0 + T) of a's input into x[T, hidden]: the embedding kernel
 * over the ids (staged through ids_host[T] into ids_dev[T]), then a's input
 * embeddings copied over the rows that take one. */
lw_status lw_gpu_embed(lw_gpu_model *g, lw_cuda_ptr x, lw_cuda_ptr ids_dev, int *ids_host, const lw_forward_args *a,
                       int r0, int T);

/* The RoPE base of layer l, as the CPU's inv_freq_local / _global pick it. */
static inline float lw_gpu_rope_base(const lw_model_config *c, int l)
{
    return lw_layer_is_local(c, l) && c->rope_base_local > 0 ? c->rope_base_local : c->rope_base;
}

static inline unsigned lw_gpu_blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

/* lw_generate over lw_gpu_forward (gpu_generate.c): the prompt from
 * position 0, then up to max_new tokens sampled on the host. */
lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out);

#endif
