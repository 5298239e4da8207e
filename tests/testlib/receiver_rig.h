/* The receiver's training pass on a device (runtime/model/gpu_receiver_pass.h)
 * held to the CPU pass (runtime/model/receiver_pass.h) on the same rows, with
 * and without adapters: the checks shared by tests/gpu/check_receiver_pass_gpu.c
 * (a real GPU) and tests/check_plan_cuda_host.c (the host twin of the launch
 * layer, tests/twin/twin.h). What differs between them is only how the
 * kernels are readied, which tl_rig_device says; the checks and their
 * tolerances are the same code. */
#ifndef LW_TL_RECEIVER_RIG_H
#define LW_TL_RECEIVER_RIG_H

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "lora.h"
#include "model.h"
#include "receiver_pass.h"

#include <stdbool.h>
#include <stdint.h>

/* The device side of a rig: the open driver and cuBLAS (or their twins). */
typedef struct {
    lw_cuda *cu;
    lw_cublas *blas;
    const char *name;   /* what the messages call the device side: "gpu", "twin" */
    /* Readies the kernels of m's config in mod, before the model is uploaded. */
    void (*load_kernels)(const lw_model *m, lw_cuda_module *mod);
    /* Releases them after the model is freed; NULL when there is nothing to release. */
    void (*unload_kernels)(lw_cuda_module *mod);
    bool sync_each_launch;   /* each launch synchronised, so that a fault names its kernel */
} tl_rig_device;

/* One receiver and its layout, with a pass on each side. */
typedef struct {
    const tl_rig_device *dev;
    lw_model *m;
    lw_cuda_module mod;
    lw_gpu_model *g;
    lw_receiver_layout layout;
    lw_receiver_pass cpu;
    lw_gpu_receiver_pass gpu;
    double grad_rtol;   /* d_embeds: |device - cpu| <= grad_rtol x max |cpu| */
} tl_rig;

/* The words of one prompt: before, M soft rows, after; verbalizers {v0} and {v1a v1b}. */
typedef struct {
    const int *before, *after;
    int n_before, n_after, M;
    int v0, v1a, v1b;
} tl_prompt_ids;

/* LoRA target sets of the adapter checks. */
enum { TL_LORA_QV = (1u << LW_LORA_Q) | (1u << LW_LORA_V), TL_LORA_ALL = (1u << LW_LORA_N_TARGETS) - 1 };

/* The rig of m (owned by it from here) on dev: the layout of w, the model
 * uploaded, both passes allocated for the longest row of the layout. Fails
 * the test on error. */
void tl_rig_open(tl_rig *r, const tl_rig_device *dev, lw_model *m, const tl_prompt_ids *w, double grad_rtol);
void tl_rig_close(tl_rig *r);
/* The CPU pass's label scores after its P filled rows, as the trainers take
 * them: lw_receiver_pass_prompt, then lw_score_verbalizers. */
lw_status tl_cpu_pass_scores(lw_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds,
                             double *scores);

/* The rig of a tiny random model (tiny_models.h) of config c (context set
 * to 64), weights drawn with seed, on the prompt both suites use: vocab-11
 * ids, 13 rows before the verbalizer (past a window of 4); grad_rtol 1e-4. */
void tl_rig_open_tiny(tl_rig *r, const tl_rig_device *dev, lw_model_config c, uint64_t seed);

/* Without adapters: a training step of each label (loss relative 1e-4,
 * d_embeds after a backward of scale 0.75 within grad_rtol, the first-token
 * check), every label's score after the prompt with and without the soft
 * rows (1e-3 x max(1, |cpu|)), a backward after the scores refused, and a
 * step after scoring. */
void tl_rig_check_model(tl_rig *r);

/* Through one set of adapters, the same on both sides: LoRA of rank 4 on
 * targets (none when 0) with dropout (B drawn nonzero), a deep prefix of P
 * keys (none when 0). Steps of both labels (loss relative 1e-4, d_embeds,
 * each LoRA tensor's and the prefix K/V's gradients within rtol x max |cpu|
 * of the tensor) and the scores. */
void tl_rig_check_adapters(tl_rig *r, unsigned targets, float dropout, int P, double rtol);

/* The adapter series both suites run on the tiny Gemma-like: LoRA on q,v
 * and on all targets, dropout 0 and 0.2; a deep prefix of 3 alone; LoRA
 * (all, dropout 0.2) with the prefix; each within rtol. */
void tl_rig_check_adapter_series(tl_rig *r, double rtol);

/* A packed step of n examples (labels 1, 0, 1, ..., each its own soft rows)
 * on both sides (lw_receiver_pass_pack_* and lw_gpu_receiver_pass_pack_*),
 * with LoRA (rank 4, dropout 0) on targets (none when 0) and a deep prefix
 * of P keys per example (each its own values; none when 0): every example's
 * loss (relative 1e-4) and first-token check, its input gradient from the
 * soft rows on, its prefix K/V gradients and each LoRA tensor's gradient
 * within rtol x max |cpu|; then a single example's loss, after which the
 * pack's backward is refused. */
void tl_rig_check_pack(tl_rig *r, int n, unsigned targets, int P, double rtol);

/* The training pass through bf16 weights (the model uploaded again with
 * LW_DTYPE_BF16: bf16 products forward, bf16 input-gradient products with
 * fp32 accumulation backward) against the fp32 CPU pass: a step of each
 * label, the loss within rtol relative, d_embeds within rtol x max |cpu|. */
void tl_rig_check_bf16(tl_rig *r, double rtol);

#endif
