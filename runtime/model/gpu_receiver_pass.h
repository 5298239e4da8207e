/* The receiver's part of one training example on the GPU: the twin of
 * lw_receiver_pass (receiver_pass.h) for a receiver uploaded with
 * lw_gpu_model_upload (fp32 weights) or lw_gpu_model_upload_dtype with bf16
 * (the products forward and the input-gradient products backward then read
 * bf16 weights and bf16 inputs, fp32 accumulation). The caller fills the same host arrays (ids,
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
    lw_cuda_ptr seg;                            /* int [max_T]: a pack's segment starts (the executor's) */
    lw_cuda_ptr gather;                         /* [max_verb, hidden]: a pack's loss rows, gathered */
    lw_cuda_ptr xb;                             /* bf16 weights: a product's input or dy in bf16 (0: fp32) */
} lw_gpu_pass_buffers;

/* A packed step's examples on the host (lw_gpu_receiver_pass_pack_*): each
 * example's whole rows (from position 0: no head is cached on the GPU) one
 * after another, its loss rows its last verb_len rows. */
typedef struct {
    int cap, n;                          /* examples: room for, added */
    int rows, n_loss;                    /* packed rows, loss rows so far */
    int *ids;                            /* [cap * max_T] */
    bool *is_embed;
    float *embeds, *d_embeds;            /* [cap * max_T, hidden] */
    int *seg_len, *label, *row0, *loss0; /* [cap]: rows, label, first row, first loss row */
    int *run_from, *run_rows;            /* [cap]: each example's loss rows (lw_cuda_plan_rows) */
    int *targets;                        /* [cap * max_verb] */
    /* a deep prefix per example (P > 0): each example's keys and values as
     * the generator left them at add, and their gradients after backward,
     * [cap, n_layers, P, kv dim] on the host (prefix_n floats each); on the
     * device the same four, then the executor's gather buffers
     * (lw_cuda_plan_bufs.seg_*), in one allocation */
    int P;
    size_t prefix_n;
    float *prefix_k, *prefix_v, *d_prefix_k, *d_prefix_v;
    lw_cuda_ptr dev_arena;
    size_t dev_floats;                   /* of each of the four device prefix buffers */
    lw_cuda_ptr dev_prefix[4];           /* k, v, dk, dv */
    lw_cuda_ptr gather[4];               /* keys, values, dkeys, dvalues [P + max_T, kv dim] */
    const lw_receiver_adapters *ad;      /* those of begin */
    bool loss_done;                      /* the loss of exactly these examples ran last */
} lw_gpu_pass_pack;

/* A LoRA's device copy: its flat parameters and gradients in the host's
 * layout (lw_lora_slot offsets index both), and lora_backward_input's u, du. */
typedef struct {
    int rank, rows;                      /* rows: of u and du */
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
    /* rows the device buffers (and the executor's staging) hold: max_T, or a
     * pack's cap x max_T; loss rows alike (max_verb, or cap x max_verb).
     * Below, "[max_T]" and "[max_verb]" of a device buffer mean these. */
    int rows, loss_cap;
    lw_cuda_ptr arena;                   /* one device allocation holds everything below */
    size_t bytes;
    lw_plan_memory mem;                  /* the plan's layout of the activations for rows rows (training) */
    lw_plan_grad_memory gmem;            /* and of the gradient slots */
    lw_cuda_ptr acts, grads;             /* their first bytes, in arena */
    lw_cuda_plan_acts *slots;            /* [n_layers]: every layer's activations at mem's offsets, rows at
                                            their positions */
    lw_cuda_ptr *dkeys, *dvalues;        /* [n_layers]: [n_prefix + max_T, kv dim] attention's key gradients
                                            with a deep prefix (0 without) */
    lw_gpu_pass_buffers dev;
    int *pos_stage, *seg_stage;          /* [rows] */
    lw_gpu_pass_pack pack;
    /* host, as lw_receiver_pass has them */
    float *embeds, *d_embeds;            /* [max_T, hidden] */
    float *logits;                       /* [max_verb, vocab] */
    float *loss_rows;                    /* [loss_cap] */
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
 * g holds fp32 or bf16 weights. */
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
/* As the CPU trainers score: scores[n_labels], each label's summed verbalizer
 * log-probs after the P filled prompt rows; embeds: whether is_embed /
 * embeds are used. Overwrites the activations a backward would read. */
lw_status lw_gpu_receiver_pass_scores(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds,
                                      double *scores);

/* Packed steps, lw_receiver_pass_pack_*'s twins (receiver_pass.h): a
 * step's examples as segments of one forward (attention_varlen_*, positions
 * restarting per segment), one product with the output head over every
 * loss row (gathered), and one backward. Each segment is a whole example
 * from position 0 (the CPU caches the layout's head without adapters; the
 * results agree to float rounding). A deep prefix comes per example (as
 * the CPU packs it): each segment attends to its own prefix (the executor's
 * seg_prefix_*), whose gradient comes back per example (pack_d_prefix), not
 * into ad->d_prefix_k / _v. can_pack: a LoRA, if any, without dropout and
 * not merged (its masks are drawn per example), as the CPU's rule. room: examples of
 * max_T rows one pack holds. begin: room for n (the device buffers grow to
 * n x max_T rows, checked against free memory). add: the filled T rows of
 * one example (p->ids, is_embed, embeds, as for loss) with its label.
 * loss: losses[i] the mean cross-entropy of each. backward: scale x the
 * gradient of each example's loss; correct[i] (may be NULL) the first-token
 * checks; LoRA's dA, dB added to ad->lora's grads. d_embeds: example i's
 * input gradient from rows n_before.. of its own (the soft tokens first),
 * as lw_receiver_pass_pack_d_embeds. */
bool lw_gpu_receiver_pass_can_pack(const lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad);
int lw_gpu_receiver_pass_pack_room(const lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad);
lw_status lw_gpu_receiver_pass_pack_begin(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int n);
lw_status lw_gpu_receiver_pass_pack_add(lw_gpu_receiver_pass *p, int T, int label);
lw_status lw_gpu_receiver_pass_pack_loss(lw_gpu_receiver_pass *p, float *losses);
lw_status lw_gpu_receiver_pass_pack_backward(lw_gpu_receiver_pass *p, float scale, bool *correct);
const float *lw_gpu_receiver_pass_pack_d_embeds(const lw_gpu_receiver_pass *p, int i);
/* Example i's deep prefix gradient [n_layers, P, kv dim], keys and values
 * (NULL without a prefix), as lw_receiver_pass_pack_d_prefix. */
void lw_gpu_receiver_pass_pack_d_prefix(const lw_gpu_receiver_pass *p, int i, const float **dk, const float **dv);

#endif
