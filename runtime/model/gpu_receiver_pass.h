/* The receiver's part of one training example on the GPU: the twin of
 * lw_receiver_pass (receiver_pass.h) for a receiver uploaded with
 * lw_gpu_model_upload (fp32 weights: a bf16 model is refused at alloc, since
 * the backward's dx products have no bf16 form). The caller fills the same host arrays (ids,
 * is_embed, embeds: a prompt followed by the gold verbalizer but its last
 * token, T rows) and makes the same calls:
 *
 *   loss      forward over the T rows from position 0 with every layer's
 *             activations kept on the device, the logits of the last L rows
 *             (cuBLAS), their cross-entropy on the GPU;
 *   backward  scale * d(loss)/d(input rows) into d_embeds (host), through
 *             the frozen receiver (no weight gradients);
 *   scores    a prompt of P rows, then each label's verbalizer continuing it
 *             (lw_score_verbalizers' loop).
 *
 * The model runs as its plan (plan/plan.c) through the CUDA executor
 * (plan_cuda.c, gpu_model.h), as lw_receiver_pass runs it through the CPU's: forward in
 * order with every layer's activations kept, backward walked in reverse
 * (the products' input gradients dx = dy @ w in cuBLAS, the rest in the
 * model's generated kernels).
 *
 * Adapters (adapters.h) run as forward.c and model_backward.c run them:
 *   LoRA         lora_forward right after each adapted projection (the plan's
 *                hook), with the
 *                CPU's dropout masks (one hash, same seed, layer, target and
 *                positions); in backward lora_backward_input adds to the
 *                projection's input gradient and lora_backward_weights forms
 *                dA, dB on the device, which backward then adds to the host
 *                LoRA's grads (the CPU's AdamW, adapter_set.h, steps them);
 *   deep prefix  the generator stays on the CPU (lw_adapter_set_forward);
 *                its per-layer K/V [n_layers, P, kv_dim] go up into P rows
 *                before each layer's keys/values, attention runs with
 *                n_sink = P, and backward adds d(prefix K/V) into the host's
 *                ad->d_prefix_k / d_prefix_v, where lw_adapter_set_backward
 *                reads them.
 * Every loss and scores call uploads the adapters' current parameters
 * itself (lw_gpu_receiver_pass_sync_adapters), so an optimiser step on the
 * host can never leave a stale copy on the device and the trainer needs no
 * hook; the price is one upload of the LoRA (rank 8 on q,v of a 270M
 * receiver: ~1.5 MB) and one download of its gradients per example.
 * Status: the plan-executor version is written and tested on the CPU over
 * the host twin of the launch layer (tests/check_plan_cuda_host.c), not yet
 * run on a device; tests/gpu/check_receiver_pass_gpu.c holds it to the CPU
 * pass there. */
#ifndef LW_GPU_RECEIVER_PASS_H
#define LW_GPU_RECEIVER_PASS_H

#include <stdbool.h>

#include "adapters.h"
#include "gpu_model.h"
#include "receiver_input.h"
#include "status.h"

/* Device buffers besides the layers' activations (the executor's slots, gpu_model.h). */
typedef struct {
    lw_cuda_ptr key_cache, value_cache;         /* [n_layers, n_prefix + max_T, kv dim]: prefix rows, then
                                                   positions 0.. (the K after qk-norm and RoPE) */
    lw_cuda_ptr x, xf, rstd_final;              /* the residual stream, its final norm, 1 / rms */
    lw_cuda_ptr grad[LW_GRAD_COUNT];            /* the plan's gradient slots, [max_T, width] */
    lw_cuda_ptr logits, dlogits;                /* [max_verb, vocab] */
    lw_cuda_ptr loss;                           /* [max_verb] per-row cross-entropy */
    lw_cuda_ptr targets, ids, pos;              /* int [max_verb], [max_T], [max_T] */
} lw_gpu_pass_buffers;

/* A LoRA's device copy: its flat parameters and gradients in the host's
 * layout (lw_lora_slot offsets index both), and lora_backward_input's u, du. */
typedef struct {
    int rank;
    size_t n;                            /* floats of params (and of grads) */
    lw_cuda_ptr arena;                   /* 0: none attached */
    size_t bytes;
    lw_cuda_ptr params, grads;           /* [n] */
    lw_cuda_ptr u, du;                   /* [max_T, rank] */
    float *grads_host;                   /* [n] staging on the way back */
} lw_gpu_pass_lora;

typedef struct {
    lw_gpu_model *g;                     /* frozen; borrowed */
    const lw_receiver_layout *layout;    /* the verbalizers */
    int max_T;                           /* rows of the longest prompt + verbalizer */
    lw_cuda_ptr arena;                   /* one device allocation holds everything below */
    size_t bytes;
    lw_cuda_plan_acts *slots;            /* [n_layers]: every layer's activations, rows at their positions */
    lw_cuda_ptr *dkeys, *dvalues;        /* [n_layers]: [n_prefix + max_T, kv dim] attention's key gradients
                                            with a deep prefix (0 without) */
    lw_gpu_pass_buffers dev;
    int *pos_stage;                      /* [max_T] */
    /* host, as lw_receiver_pass has them */
    float *embeds, *d_embeds;            /* [max_T, hidden] */
    float *logits;                       /* [max_verb, vocab] */
    float *loss_rows;                    /* [max_verb] */
    int *ids, *targets, *ids_stage;      /* [max_T] */
    bool *is_embed;                      /* [max_T] */
    int loss_T, loss_label;              /* what the last loss ran; backward must match (0: none) */
    /* adapters */
    int n_prefix;                        /* rows reserved before every layer's keys and values */
    lw_gpu_pass_lora lora;
    float *prefix_stage;                 /* [n_prefix, kv dim] d prefix K/V on the way back */
    const lw_receiver_adapters *ad;      /* those of the call in progress (NULL: none) */
    int prefix;                          /* its prefix length, 0..n_prefix */
    const lw_receiver_adapters *loss_ad; /* what the last loss ran with */
    int loss_prefix;
} lw_gpu_receiver_pass;

/* Room for max_T rows, checked against the device's free memory first
 * ("needs X MiB, device has Y MiB free"). who names the caller in errors.
 * g must hold fp32 weights (LW_ERR_UNSUPPORTED for bf16). */
lw_status lw_gpu_receiver_pass_alloc(lw_gpu_receiver_pass *p, lw_gpu_model *g, const lw_receiver_layout *layout,
                                     int max_T, const char *who);
void lw_gpu_receiver_pass_free(lw_gpu_receiver_pass *p);

/* Device room for ad's adapters: P = ad->prefix_len rows before every
 * layer's keys and values (the activations are reallocated when P grows:
 * lw_receiver_pass_grow_state's twin) and a LoRA's parameters, gradients and
 * scratch. Checks ad against the model first. Loss and scores call it, so
 * calling it is optional; the trainer does, to fail at setup rather than at
 * the first example. NULL ad, or one without adapters, needs nothing. On
 * failure p keeps what it had. */
lw_status lw_gpu_receiver_pass_attach(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad);
/* Uploads ad's current LoRA parameters and prefix K/V (after attach). */
lw_status lw_gpu_receiver_pass_sync_adapters(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad);

/* lw_receiver_pass_loss: forward of the T filled rows; *loss = the mean
 * cross-entropy of label's verbalizer tokens predicted by its last rows. */
lw_status lw_gpu_receiver_pass_loss(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label,
                                    float *loss);
/* lw_receiver_pass_backward: after the loss of the same T, label and ad,
 * d_embeds[T, hidden] = scale * d(loss)/d(input row); *correct (may be
 * NULL) the first-token check on the logits. The LoRA's dA, dB are added to
 * ad->lora's grads, d prefix K/V to ad->d_prefix_k / d_prefix_v. */
lw_status lw_gpu_receiver_pass_backward(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label,
                                        float scale, bool *correct);
/* lw_receiver_pass_scores: scores[n_labels], each label's summed verbalizer
 * log-probs after the P filled prompt rows; embeds: whether is_embed /
 * embeds are used. Overwrites the activations a backward would read. */
lw_status lw_gpu_receiver_pass_scores(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds,
                                      double *scores);

#endif
