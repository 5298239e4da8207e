/* The CUDA executor of the plan (runtime/model/plan_cuda.c) run on the CPU
 * over the host twin of the launch layer (tests/twin/twin.h: each typed
 * launcher lwk_<kernel> calls a C implementation of its kernel on host
 * memory, cuBLAS is a CPU sgemm), against the CPU executor (plan_cpu.c) on
 * the same tiny random models. What this holds is the executor's
 * orchestration: op order, row offsets and strides, the KV cache's layout,
 * which kernel runs for which op and with which flags; the kernels
 * themselves are held to their CPU twins on a device (tests/gpu/
 * check_kernels_gpu.c, check_backend_ops_gpu.c).
 *
 * Inference (gpu_forward.c): every row's logits of a 9-row prompt with a
 * run of input-embedding rows, then 3 one-row decodes over the KV cache,
 * then a 300-row prompt (two chunks of 256 and 44), then capture of every
 * layer 0..n without logits; |twin - cpu| <= 1e-4 x max(1, max |cpu|).
 * bf16 weights (the f32_to_bf16 inputs and bf16 products) against the fp32
 * CPU within 3e-2 x max |cpu| (bf16 keeps 8 bits of mantissa).
 *
 * Training (gpu_receiver_pass.c): check_receiver_pass_gpu.c's checks (the
 * same code, tests/testlib/receiver_rig.c), here on the twin: loss
 * (relative 1e-4), d_embeds after backward (1e-4 x max), the first-token check, every label's score; with LoRA (q,v and all seven
 * targets, dropout 0 and 0.2), a deep prefix of 3 keys under a window of 4,
 * and both: dA, dB and d prefix K/V within 1e-3 x max of each tensor.
 *
 * Models: the tiny random Gemma-3-like (window 4 < the rows, qk-norm, post
 * norms, GeGLU, tied), Llama-like (interleaved RoPE, GQA), Qwen3-like
 * (plain-gain qk-norm, head_dim 6 != hidden / heads, halves RoPE) and
 * Qwen2-like (q/k/v bias) of tiny_models.h; the adapters and bf16 on the
 * Gemma-like.
 *
 * Packed training (issue 20): a micro-batch as one GPU pass against the
 * CPU's packed pass, without adapters, with LoRA, and with a deep prefix
 * per example; training through bf16 weights against the fp32 CPU.
 *
 * Refusals: a bias other than q/k/v's is refused by the one check with
 * LW_ERR_UNSUPPORTED; packed segments with a deep prefix each and a bf16
 * backward pass it since the second round. */
#include "testlib.h"
#include "adapters.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "kernel_launchers.h"
#include "lora.h"
#include "model.h"
#include "random_weights.h"
#include "receiver_rig.h"
#include "receiver_pass.h"
#include "tiny_models.h"
#include "twin/twin.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The twin's device: nothing to open (cuda_twin.c ignores it). */
static lw_cuda g_cu;
static lw_cublas g_blas;

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

/* The twin's kernels are its C functions: only the model's constants to set. */
static void set_twin_model(const lw_model *m, lw_cuda_module *mod)
{
    (void)mod;
    lw_twin_set_model(&m->cfg);
}

static const tl_rig_device g_dev = {&g_cu, &g_blas, "twin", set_twin_model, NULL, false};

/* ---- the plan's memory on the device: dead bytes poisoned -------------------
 *
 * The GPU state and training pass carve their slots from one arena at the
 * memory plan's offsets, so two slots share bytes where the plan says their
 * lives do not meet. Were the executor to read a slot after the plan ends
 * its life (a forward read past its last reader, a backward read of a slot
 * the plan does not keep, a gradient read before its write), another slot's
 * values would be there on a device. Here the bytes are made NaN the moment
 * the plan ends a life (g->after_op), so such a read makes the results NaN
 * and the comparisons with the CPU fail. The fields are read at each call:
 * the training pass lays its arena out again when it grows. */
typedef struct {
    const lw_plan *plan;
    const lw_plan_memory *mem;         /* the activations' layout and first byte */
    const lw_cuda_ptr *acts;
    const lw_plan_grad_memory *gmem;   /* the gradients' (NULL: forward only) */
    const lw_cuda_ptr *grads;
    bool early;                        /* mutant: a life ends one op before its last reader */
    lw_plan_slot unkept;               /* mutant: a slot backward reads, poisoned as if the plan did not keep it */
    long poisoned;
} poison_ctx;

static void nan_fill(lw_cuda_ptr at, uint64_t elems)
{
    float *f = (float *)(uintptr_t)at;
    for (uint64_t i = 0; i < elems; i++) f[i] = NAN;
}

static void poison_slot(poison_ctx *c, const lw_plan_buffer *b)
{
    int copies = b->where == LW_PLAN_MEM_LAYER ? c->mem->n_layer_copies : 1;
    for (int i = 0; i < copies; i++) nan_fill(*c->acts + b->offset + (uint64_t)i * c->mem->layer_bytes, b->elems);
    c->poisoned++;
}

static void poison_dead(void *user, int layer, int j, bool backward)
{
    poison_ctx *c = user;
    if (!backward) {
        /* block op j ran: every shared slot whose last reader it was */
        for (int s = 1; s < LW_SLOT_COUNT; s++) {
            const lw_plan_buffer *b = &c->mem->slots[s];
            if (b->where != LW_PLAN_MEM_SHARED || !b->elems) continue;
            int death = c->early && b->last > b->first ? b->last - 1 : b->last;
            if (death == j) poison_slot(c, b);
        }
        return;
    }
    if (j < 0) {
        /* the walk back starts: no shared activation lives on, no gradient slot but dx, dxf holds anything yet */
        for (int s = 1; s < LW_SLOT_COUNT; s++) {
            const lw_plan_buffer *b = &c->mem->slots[s];
            if ((b->where == LW_PLAN_MEM_SHARED || s == (int)c->unkept) && b->elems) poison_slot(c, b);
        }
        for (int g = 1; c->gmem && g < LW_GRAD_COUNT; g++) {
            const lw_plan_buffer *b = &c->gmem->grads[g];
            if (b->where == LW_PLAN_MEM_SHARED && b->elems) nan_fill(*c->grads + b->offset, b->elems), c->poisoned++;
        }
        return;
    }
    /* block op j's backward ran, step 1 + (n_ops - 1 - j) of one layer's walk (plan_grad_memory.c) */
    int step = 1 + (c->plan->n_ops - 1 - j);
    for (int g = 1; c->gmem && g < LW_GRAD_COUNT; g++) {
        const lw_plan_buffer *b = &c->gmem->grads[g];
        if (b->where == LW_PLAN_MEM_SHARED && b->elems && b->last == step)
            nan_fill(*c->grads + b->offset, b->elems), c->poisoned++;
    }
    (void)layer;
}

static void poison_state(poison_ctx *c, lw_gpu_model *g, lw_gpu_state *s)
{
    *c = (poison_ctx){.plan = &g->plan, .mem = &s->memory, .acts = &s->acts};
    g->after_op = poison_dead, g->after_op_user = c;
}

static void poison_pass(poison_ctx *c, lw_gpu_model *g, lw_gpu_receiver_pass *p)
{
    *c = (poison_ctx){.plan = &g->plan, .mem = &p->mem, .acts = &p->acts, .gmem = &p->gmem, .grads = &p->grads};
    g->after_op = poison_dead, g->after_op_user = c;
}

/* ---- training: tiny random models ------------------------------------------ */

/* _i: the model (tiny_models.h); 3, Qwen2, adds its q/k/v bias (bias_add_forward) */
static lw_model_config tiny(int i)
{
    return i == 0   ? tl_tiny_gemma3_config(4)
           : i == 1 ? tl_tiny_llama_config(LW_WEIGHTS_GGUF)
           : i == 2 ? tl_tiny_qwen3_config()
                    : tl_tiny_qwen2_config();
}


START_TEST(training_pass_matches_the_cpu)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tiny(_i), 31 + (uint64_t)_i);
    poison_ctx pc;
    poison_pass(&pc, r.g, &r.gpu);
    lw_twin_count = (lw_twin_counts){0};
    tl_rig_check_model(&r);
    ck_assert_int_gt(pc.poisoned, 0);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("bias_add_forward")] > 0, r.m->cfg.qkv_bias);
    /* the walk ran through the twin launchers and the twin cuBLAS, backward included */
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("rmsnorm_backward")], 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("add_forward")], 0);
    ck_assert_int_gt(lw_twin_count.products, 0);
    tl_rig_close(&r);
}
END_TEST

START_TEST(training_with_adapters_matches_the_cpu)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tl_tiny_gemma3_config(4), 31);
    poison_ctx pc;
    poison_pass(&pc, r.g, &r.gpu);
    tl_rig_check_adapter_series(&r, 1e-3);
    tl_rig_check_adapters(&r, TL_LORA_QV, 0.f, 2, 1e-3);    /* a shorter prefix than the pass has room for */
    tl_rig_check_model(&r);   /* and without, on the pass that now holds prefix rows */
    tl_rig_close(&r);
}
END_TEST

/* A micro-batch as one packed GPU pass (issue 20): every example's loss,
 * first-token check and input gradient equal the CPU's packed pass's (loss
 * relative 1e-4, d_embeds 1e-4 x max; with LoRA on every target 1e-3 x max
 * of each tensor), and the pass was one: one varlen attention launch a
 * layer forward and one backward, one output-head product for every loss
 * row. A deep prefix does not pack on the device (a prefix per example). */
START_TEST(packed_training_matches_the_cpu)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tiny(_i), 71 + (uint64_t)_i);
    poison_ctx pc;
    poison_pass(&pc, r.g, &r.gpu);
    lw_twin_count = (lw_twin_counts){0};
    tl_rig_check_pack(&r, 3, 0, 0, 1e-4);
    int n = r.m->cfg.n_layers;
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_varlen_forward")], n);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_varlen_backward")], n);
    /* the pack's copies: 3 loss runs gathered forward and put back in backward */
    ck_assert_int_ge(lw_twin_count.by_kernel[lw_twin_kernel_index("copy_forward")], 6);
    /* each example with its own deep prefix of 3 (the Gemma-like's window 4 spares it): one
     * attention_forward / _backward a segment over its gathered keys, no varlen launch */
    lw_twin_count = (lw_twin_counts){0};
    tl_rig_check_pack(&r, 3, 0, 3, 1e-4);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_varlen_forward")], 0);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 3 * n);
    if (_i == 0) {
        tl_rig_check_pack(&r, 3, TL_LORA_ALL, 0, 1e-3);
        tl_rig_check_pack(&r, 3, TL_LORA_QV, 2, 1e-3);   /* a shorter prefix than the pass has room for */
    }
    tl_rig_close(&r);
}
END_TEST

/* A pack that cannot grow (its host staging out of memory) is refused and
 * leaves the pass as it was, at its old room: a pack of that size then runs
 * and matches the CPU. (The restore once allocated the old staging again,
 * unchecked: out of memory it left the pass with none.) */
START_TEST(a_pack_that_cannot_grow_leaves_the_pass_usable)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tiny(0), 91);
    tl_rig_check_pack(&r, 2, 0, 0, 1e-4);
    lw_twin_fail_staging = true;
    lw_status st = lw_gpu_receiver_pass_pack_begin(&r.gpu, NULL, 3);
    lw_twin_fail_staging = false;
    ck_assert_int_eq(st, LW_ERR_NOMEM);
    ck_assert_msg(strstr(lw_last_error(), "room for a pack"), "%s", lw_last_error());
    tl_rig_check_pack(&r, 2, 0, 0, 1e-4);
    tl_rig_close(&r);
}
END_TEST

/* Training through bf16 weights (issue 20): the bf16 input-gradient
 * products (f32_to_bf16 of dy, fp32 accumulation) against the fp32 CPU
 * pass: loss 3e-2 relative, d_embeds 3e-2 x max (bf16 keeps 8 bits of
 * mantissa; the forward's own tolerance). */
START_TEST(bf16_training_is_close)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tiny(_i), 81 + (uint64_t)_i);
    lw_twin_count = (lw_twin_counts){0};
    tl_rig_check_bf16(&r, 6e-2);
    ck_assert_int_gt(lw_twin_count.bf16_dx_products, 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("f32_to_bf16")], 0);
    tl_rig_close(&r);
}
END_TEST

/* Label scoring on the device (issue 20): every label's score equals the
 * CPU's, and what comes back from the device is a few floats a label, not
 * rows of V logits (the twin counts every download's bytes). */
START_TEST(label_scores_stay_on_the_device)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tiny(_i), 53 + (uint64_t)_i);
    int T = lw_receiver_fill(&r.layout, -1, 0, r.cpu.ids, r.cpu.is_embed), H = r.m->cfg.hidden, V = r.m->cfg.vocab;
    for (int i = 0; i < T * H; i++) r.cpu.embeds[i] = (float)cos(0.29 * i);
    memcpy(r.gpu.ids, r.cpu.ids, (size_t)T * sizeof(int));
    memcpy(r.gpu.is_embed, r.cpu.is_embed, (size_t)T * sizeof(bool));
    memcpy(r.gpu.embeds, r.cpu.embeds, (size_t)T * H * sizeof(float));
    double sc[2], sg[2];
    OK(tl_cpu_pass_scores(&r.cpu, NULL, T, true, sc));
    lw_twin_count = (lw_twin_counts){0};
    OK(lw_gpu_receiver_pass_scores(&r.gpu, NULL, T, true, sg));
    long verb_rows = 0;
    for (int k = 0; k < r.layout.n_labels; k++) verb_rows += r.layout.verb_len[k];
    ck_assert_msg(lw_twin_count.download_bytes <= verb_rows * (long)sizeof(float),
                  "scoring downloaded %ld bytes; %ld label tokens' log-probs are %ld (one row of logits: %ld)",
                  lw_twin_count.download_bytes, verb_rows, verb_rows * (long)sizeof(float), (long)V * 4);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("cross_entropy_forward_backward")], 0);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(fabs(sg[k] - sc[k]) <= 1e-4 * fmax(1.0, fabs(sc[k])), "%s label %d: twin %.7g cpu %.7g",
                      r.m->cfg.name, k, sg[k], sc[k]);
    tl_rig_close(&r);
}
END_TEST

/* ---- inference ------------------------------------------------------------- */

/* |twin - cpu| <= rtol x max(1, max |cpu|) over n values. */
static void expect_close(const char *what, const float *twin, const float *cpu, size_t n, double rtol)
{
    double maxabs = 1, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(cpu[i]));
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(twin[i]), "%s[%zu] is %g on the twin", what, i, (double)twin[i]);
        if (fabs((double)twin[i] - cpu[i]) > worst) worst = fabs((double)twin[i] - cpu[i]), at = i;
    }
    ck_assert_msg(worst <= rtol * maxabs, "%s[%zu]: twin %.7g cpu %.7g, error %.3g > %g x %.4g", what, at,
                  (double)twin[at], (double)cpu[at], worst, rtol, maxabs);
}

/* A's rows through both forwards (each state already holding the same
 * cache), compared: the logits (of the last row or, all_logits, of every
 * row) and the captured rows. a.logits and a.hidden_out only say whether
 * they are wanted (non-NULL); the buffers are this function's. */
static void same_forward(const char *what, lw_model *m, lw_state *cs, lw_gpu_model *g, lw_gpu_state *gs,
                         lw_forward_args a, double rtol)
{
    size_t V = (size_t)m->cfg.vocab, H = (size_t)m->cfg.hidden, rows = a.all_logits ? (size_t)a.T : 1;
    float *lc = calloc(rows * V, sizeof(float)), *lt = calloc(rows * V, sizeof(float));
    float *hc = calloc((size_t)a.T * H, sizeof(float)), *ht = calloc((size_t)a.T * H, sizeof(float));
    ck_assert(lc && lt && hc && ht);
    lw_forward_args b = a;
    a.logits = a.logits ? lc : NULL, a.hidden_out = a.capture_layer >= 0 ? hc : NULL;
    b.logits = b.logits ? lt : NULL, b.hidden_out = b.capture_layer >= 0 ? ht : NULL;
    OK(lw_forward(m, cs, &a));
    OK(lw_gpu_forward(g, gs, &b));
    ck_assert_int_eq(cs->n_cached, gs->n_cached);
    char name[160];
    if (a.logits) {
        snprintf(name, sizeof name, "%s %s logits", m->cfg.name, what);
        expect_close(name, lt, lc, rows * V, rtol);
    }
    if (a.capture_layer >= 0) {
        snprintf(name, sizeof name, "%s %s hidden (layer %d)", m->cfg.name, what, a.capture_layer);
        expect_close(name, ht, hc, (size_t)a.T * H, rtol);
    }
    free(lc), free(lt), free(hc), free(ht);
}

static void check_inference(lw_model *m, lw_weight_dtype dtype, double rtol)
{
    const lw_model_config *c = &m->cfg;
    int H = c->hidden, n = c->n_layers;
    lw_cuda_module mod = {0};
    lw_gpu_model *g = NULL;
    lw_gpu_state *gs = NULL;
    lw_state *cs = NULL;
    lw_twin_set_model(&m->cfg);
    OK(lw_gpu_model_upload_dtype(&g_cu, &g_blas, &mod, m, dtype, &g));
    OK(lw_gpu_state_alloc(g, 320, &gs));
    OK(lw_state_alloc(m, 320, false, &cs));
    poison_ctx pc;
    poison_state(&pc, g, gs);
    int ids[300];
    bool is_embed[300];
    float *embeds = calloc((size_t)300 * H, sizeof(float));
    ck_assert_ptr_nonnull(embeds);
    for (int t = 0; t < 300; t++) ids[t] = (t * 7 + 3) % c->vocab, is_embed[t] = t >= 2 && t < 5;
    for (int i = 0; i < 300 * H; i++) embeds[i] = (float)sin(0.37 * i);

    /* a prompt with input-embedding rows, every row's logits; then decodes over the cache */
    lw_forward_args a = {.ids = ids, .embeds = embeds, .is_embed = is_embed, .T = 9, .logits = (float *)1,
                         .all_logits = true, .capture_layer = -1};
    same_forward("prompt", m, cs, g, gs, a, rtol);
    for (int k = 0; k < 3; k++) {
        lw_forward_args d = {.ids = &ids[9 + k], .T = 1, .pos0 = 9 + k, .logits = (float *)1, .capture_layer = -1};
        same_forward("decode", m, cs, g, gs, d, rtol);
    }
    /* two chunks (256 + 44 rows), the last row's logits, from a fresh cache */
    lw_state_reset(cs), lw_gpu_state_reset(gs);
    lw_forward_args longer = {.ids = ids, .T = 300, .logits = (float *)1, .capture_layer = -1};
    same_forward("300-row prompt", m, cs, g, gs, longer, rtol);
    lw_forward_args all = longer;
    all.all_logits = true;
    lw_state_reset(cs), lw_gpu_state_reset(gs);
    same_forward("300-row prompt, every row", m, cs, g, gs, all, rtol);
    /* packed segments (variable-length attention), from position 0 and after a cached head of 5
     * (longer than Gemma's window 4, so the window cuts into the head and into the segments) */
    int seg[] = {4, 1, 6, 3};
    for (int head = 0; head <= 5; head += 5) {
        lw_state_reset(cs), lw_gpu_state_reset(gs);
        if (head) {
            lw_forward_args h = {.ids = ids, .T = head, .logits = (float *)1, .capture_layer = -1};
            same_forward("head", m, cs, g, gs, h, rtol);
        }
        lw_forward_args pk = {.ids = ids + 20, .embeds = embeds, .is_embed = is_embed, .T = 14, .pos0 = head,
                              .logits = (float *)1, .all_logits = true, .capture_layer = -1, .n_segments = 4,
                              .segment_len = seg};
        same_forward("packed segments, every row", m, cs, g, gs, pk, rtol);
        ck_assert_int_eq(gs->n_cached, head);   /* the cache keeps only the head (forward.c's rule) */
        for (int l = 0; l <= n; l += n) {
            pk.logits = NULL, pk.all_logits = false, pk.capture_layer = l;
            same_forward("packed segments, capture", m, cs, g, gs, pk, rtol);
        }
    }
    /* capture of every layer without logits (the forward stops there), then with */
    for (int l = 0; l <= n; l++) {
        lw_state_reset(cs), lw_gpu_state_reset(gs);
        lw_forward_args h = {.ids = ids, .embeds = embeds, .is_embed = is_embed, .T = 9, .capture_layer = l};
        same_forward("capture", m, cs, g, gs, h, rtol);
        h.logits = (float *)1;
        lw_state_reset(cs), lw_gpu_state_reset(gs);
        same_forward("capture with logits", m, cs, g, gs, h, rtol);
    }
    ck_assert_int_gt(pc.poisoned, 0);
    free(embeds);
    lw_state_free(cs);
    lw_gpu_state_free(gs);
    lw_gpu_model_free(g);
}

START_TEST(inference_matches_the_cpu)
{
    lw_model_config c = tiny(_i);
    c.context = 512;
    lw_model *m;
    OK(lw_model_init_random(&c, 41 + (uint64_t)_i, &m));
    lw_twin_count = (lw_twin_counts){0};
    check_inference(m, LW_DTYPE_F32, 1e-4);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_forward")], 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_varlen_forward")], 0);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 0);
    /* the bias ran where the model has one, and only there */
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("bias_add_forward")] > 0, c.qkv_bias);
    lw_model_free(m);
}
END_TEST

/* bf16 weights and inputs on the twin against the fp32 CPU: only bf16's rounding apart. */
START_TEST(bf16_inference_is_close)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    c.context = 512;
    lw_model *m;
    OK(lw_model_init_random(&c, 43, &m));
    lw_twin_count = (lw_twin_counts){0};
    check_inference(m, LW_DTYPE_BF16, 3e-2);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("f32_to_bf16")], 0);
    lw_model_free(m);
}
END_TEST

/* ---- graph-ready decode (gpu_decode.c) --------------------------------------
 *
 * A decode step in its graph-ready form (ids and positions read off device
 * buffers, k and v through fixed rows and kv_cache_store, attention's
 * offset off the positions: attention_decode_forward) against today's
 * decode (lw_gpu_forward of one row at pos0), step by step from the same
 * prompt, bit for bit: the same kernels' twins on the same values. The
 * twin has no graphs, so the decoder says why once and issues the step's
 * launches itself every step: the fallback, exactly what a device without
 * graphs runs. Then lw_gpu_generate (the prompt through lw_gpu_forward, the
 * steps through the decoder) gives lw_generate's greedy tokens on the CPU.
 * _i: the four families, then bf16 on the Gemma-like (window 4, so the
 * steps pass it). */
START_TEST(graph_ready_decode_matches_todays)
{
    lw_model_config c = tiny(_i % 4);
    c.context = 64;
    lw_weight_dtype dtype = _i >= 4 ? LW_DTYPE_BF16 : LW_DTYPE_F32;
    lw_model *m;
    OK(lw_model_init_random(&c, 91 + (uint64_t)_i, &m));
    lw_twin_set_model(&m->cfg);
    lw_cuda_module mod = {0};
    lw_gpu_model *g;
    lw_gpu_state *today, *ready;
    OK(lw_gpu_model_upload_dtype(&g_cu, &g_blas, &mod, m, dtype, &g));
    OK(lw_gpu_state_alloc(g, 40, &today));
    OK(lw_gpu_state_alloc(g, 40, &ready));
    poison_ctx pc;
    poison_state(&pc, g, ready);
    int V = c.vocab, ids[32];
    for (int t = 0; t < 32; t++) ids[t] = (5 * t + 2) % V;
    float *lt = calloc((size_t)V, sizeof(float)), *lr = calloc((size_t)V, sizeof(float));
    ck_assert(lt && lr);
    lw_forward_args p = {.ids = ids, .T = 7, .logits = lt, .capture_layer = -1};
    OK(lw_gpu_forward(g, today, &p));
    OK(lw_gpu_forward(g, ready, &p));
    lw_gpu_decoder *d;
    OK(lw_gpu_decoder_open(g, ready, true, &d));
    lw_twin_count = (lw_twin_counts){0};
    for (int k = 0; k < 12; k++) {
        lw_forward_args step = {.ids = &ids[7 + k], .T = 1, .pos0 = 7 + k, .logits = lt, .capture_layer = -1};
        OK(lw_gpu_forward(g, today, &step));
        OK(lw_gpu_decoder_step(d, ids[7 + k], lr));
        ck_assert_int_eq(ready->n_cached, today->n_cached);
        for (int v = 0; v < V; v++)
            ck_assert_msg(lr[v] == lt[v] || (isnan(lr[v]) && isnan(lt[v])), "%s step %d: logit %d %.9g, today %.9g",
                          c.name, k, v, (double)lr[v], (double)lt[v]);
    }
    /* the twin refused the capture: said once, and every step issued its launches */
    ck_assert(d->tried && !d->graphed);
    ck_assert_msg(strstr(d->why, "no CUDA graphs"), "%s", d->why);
    ck_assert_int_eq(d->issued, 12);
    ck_assert_int_eq(d->replays, 0);
    int n = c.n_layers;
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_decode_forward")], 12 * n);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("kv_cache_store")], 2 * 12 * n);
    /* the cache rows the steps stored are today's */
    size_t cache = (size_t)n * 40 * c.n_kv_heads * c.head_dim * sizeof(float);
    ck_assert(!memcmp((void *)(uintptr_t)ready->key_cache, (void *)(uintptr_t)today->key_cache, cache));
    ck_assert(!memcmp((void *)(uintptr_t)ready->value_cache, (void *)(uintptr_t)today->value_cache, cache));
    /* a full cache and a bad id are refused before anything runs */
    ck_assert_int_eq(lw_gpu_decoder_step(d, V, lr), LW_ERR_INVALID);
    ready->n_cached = ready->max_tokens;
    ck_assert_int_eq(lw_gpu_decoder_step(d, 1, lr), LW_ERR_INVALID);
    lw_gpu_decoder_close(d);

    /* generation: greedy tokens as the CPU's */
    lw_state *cs;
    OK(lw_state_alloc(m, 40, false, &cs));
    int out_c[16], out_g[16], nc = 0, ng = 0;
    lw_generate_args ga = {.max_new = 16, .seed = 5};
    OK(lw_generate(m, cs, ids, 7, &ga, out_c, &nc));
    lw_gpu_state_reset(ready);
    OK(lw_gpu_generate(g, ready, ids, 7, &ga, out_g, &ng));
    ck_assert_int_eq(nc, ng);
    if (dtype == LW_DTYPE_F32)   /* bf16 weights may move a near tie */
        for (int i = 0; i < nc; i++) ck_assert_int_eq(out_c[i], out_g[i]);
    lw_state_free(cs);
    free(lt), free(lr);
    lw_gpu_state_free(today);
    lw_gpu_state_free(ready);
    lw_gpu_model_free(g);
    lw_model_free(m);
}
END_TEST

/* ---- packed segments through forward and backward ------------------------- */

typedef struct {
    void *p[LW_SLOT_COUNT * 8 + LW_GRAD_COUNT + 64];
    int n;
} twin_mem;

/* "device" memory of the twin: host memory, its address the pointer */
static lw_cuda_ptr twin_alloc(twin_mem *t, size_t bytes)
{
    ck_assert_int_lt(t->n, (int)(sizeof t->p / sizeof t->p[0]));
    void *p = calloc(1, bytes ? bytes : 1);
    ck_assert_ptr_nonnull(p);
    t->p[t->n++] = p;
    return (lw_cuda_ptr)(uintptr_t)p;
}

/* The executor's backward over packed segments {4, 1, 6, 3}, with every
 * row's logits scored (random dlogits), against lw_forward + lw_model_backward
 * on the CPU: every row's logits and every input row's gradient, so each
 * segment's gradient stays in its segment, positions restart, and Gemma's
 * window 4 cuts the 6-row segment. The buffers are laid out here as a caller
 * of lw_plan_cuda_forward / _backward would (gpu_receiver_pass.c's shape,
 * every slot kept). */
START_TEST(packed_backward_matches_the_cpu)
{
    /* _i: the family (_i % 4); from 4 on, a deep prefix of 3 keys that every segment reads */
    lw_model_config c = tiny(_i % 4);
    int P = _i >= 4 ? 3 : 0;
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 61 + (uint64_t)_i, &m));
    lw_twin_set_model(&m->cfg);
    int T = 14, seg[] = {4, 1, 6, 3}, ids[14], H = c.hidden, V = c.vocab, n = c.n_layers;
    bool is_embed[14];
    float *embeds = calloc((size_t)T * H, sizeof(float));
    ck_assert_ptr_nonnull(embeds);
    for (int t = 0; t < T; t++) ids[t] = (5 * t + 1) % V, is_embed[t] = t == 5 || t == 9;
    for (int i = 0; i < T * H; i++) embeds[i] = (float)sin(0.41 * i);
    lw_forward_args a = {.ids = ids, .embeds = embeds, .is_embed = is_embed, .T = T, .capture_layer = -1,
                         .all_logits = true, .n_segments = 4, .segment_len = seg};
    size_t nl = (size_t)T * V, ne = (size_t)T * H;
    float *lc = calloc(nl, 4), *lt = calloc(nl, 4), *dl = calloc(nl, 4), *dc = calloc(ne, 4), *dt = calloc(ne, 4);
    ck_assert(lc && lt && dl && dc && dt);
    for (size_t i = 0; i < nl; i++) dl[i] = (float)cos(0.13 * (double)i) / (float)T;

    /* the CPU, with the prefix (if any) as adapters */
    size_t kvd = (size_t)c.n_kv_heads * c.head_dim, qd = (size_t)c.n_heads * c.head_dim, np = (size_t)n * P * kvd;
    float *pk = calloc(np + 1, 4), *pv = calloc(np + 1, 4), *dpk = calloc(np + 1, 4), *dpv = calloc(np + 1, 4);
    ck_assert(pk && pv && dpk && dpv);
    for (size_t i = 0; i < np; i++) pk[i] = (float)sin(0.7 * (double)i), pv[i] = (float)cos(0.3 * (double)i);
    lw_receiver_adapters ad = {0};
    OK(lw_adapters_init(&ad, m, 32, NULL, P));
    ad.prefix_k = pk, ad.prefix_v = pv, ad.d_prefix_k = dpk, ad.d_prefix_v = dpv;
    a.adapters = P ? &ad : NULL;
    lw_state *cs;
    lw_backward_scratch *bs;
    OK(lw_state_alloc(m, 32, true, &cs));
    OK(lw_backward_scratch_alloc(m, 32, &bs));
    a.logits = lc;
    OK(lw_forward(m, cs, &a));
    int rows[14];
    for (int t = 0; t < T; t++) rows[t] = t;
    OK(lw_model_backward_adapted(m, cs, bs, a.adapters, rows, T, dl, dc));

    /* the executor over the twin */
    lw_cuda_module mod = {0};
    lw_gpu_model *g;
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &mod, m, &g));
    twin_mem tm = {0};
    lw_cuda_plan_acts *layers = calloc((size_t)n, sizeof *layers);
    ck_assert_ptr_nonnull(layers);
    for (int l = 0; l < n; l++)
        for (int sl = 0; sl < LW_SLOT_COUNT; sl++) {
            int w = lw_plan_cuda_slot_width(&c, (lw_plan_slot)sl);
            layers[l].at[sl] = w > 0 ? twin_alloc(&tm, (size_t)T * w * 4) : 0;
        }
    size_t widest = (size_t)H > qd + 2 * kvd ? (size_t)H : qd + 2 * kvd;
    if ((size_t)2 * c.ffn > widest) widest = (size_t)2 * c.ffn;
    int pos_host[14], ids_host[14], seg_host[14];
    /* each layer's keys: the prefix's P rows, then the T rows' */
    int rows_kv = P + T;
    lw_cuda_ptr dkeys[8] = {0}, dvalues[8] = {0};
    ck_assert_int_le(n, 8);
    lw_cuda_plan_bufs b = {.g = g, .plan = &g->plan, .layers = layers, .n_layer_sets = n,
                           .key_cache = twin_alloc(&tm, (size_t)n * rows_kv * kvd * 4),
                           .value_cache = twin_alloc(&tm, (size_t)n * rows_kv * kvd * 4), .cache_rows = rows_kv,
                           .n_prefix = P, .dkeys = P ? dkeys : NULL, .dvalues = P ? dvalues : NULL,
                           .pos = twin_alloc(&tm, sizeof pos_host), .ids = twin_alloc(&tm, sizeof ids_host),
                           .pos_host = pos_host, .ids_host = ids_host, .seg = twin_alloc(&tm, sizeof seg_host),
                           .seg_host = seg_host, .n_segments = 4, .segment_len = seg};
    b.top.at[LW_SLOT_X] = twin_alloc(&tm, ne * 4), b.top.at[LW_SLOT_XF] = twin_alloc(&tm, ne * 4);
    b.top.at[LW_SLOT_RSTD_FINAL] = twin_alloc(&tm, (size_t)T * 4), b.top.at[LW_SLOT_LOGITS] = twin_alloc(&tm, nl * 4);
    for (int i = 0; i < LW_GRAD_COUNT; i++) b.grad[i] = twin_alloc(&tm, (size_t)T * widest * 4);
    for (int l = 0; l < n && P; l++) {
        dkeys[l] = twin_alloc(&tm, (size_t)rows_kv * kvd * 4), dvalues[l] = twin_alloc(&tm, (size_t)rows_kv * kvd * 4);
        size_t at = (size_t)l * rows_kv * kvd * 4, bytes = (size_t)P * kvd * 4;
        memcpy((char *)(uintptr_t)b.key_cache + at, pk + (size_t)l * P * kvd, bytes);
        memcpy((char *)(uintptr_t)b.value_cache + at, pv + (size_t)l * P * kvd, bytes);
    }
    lw_cuda_plan_call call = {.a = &a, .T = T, .capture_layer = -1, .logits_rows = T, .logits_host = lt};
    bool complete = false;
    lw_twin_count = (lw_twin_counts){0};
    OK(lw_plan_cuda_forward(&b, &call, &complete));
    ck_assert(complete);
    OK(lw_plan_cuda_backward(&b, T, 0, T, (lw_cuda_ptr)(uintptr_t)dl, dt));
    char what[160];   /* a family name (up to 63) and a label */
    snprintf(what, sizeof what, "%s packed logits", c.name);
    expect_close(what, lt, lc, nl, 1e-4);
    snprintf(what, sizeof what, "%s packed d_embeds", c.name);
    double mx = 0;
    for (size_t i = 0; i < ne; i++) mx = fmax(mx, fabs(dc[i]));
    ck_assert(mx > 0);
    for (size_t i = 0; i < ne; i++) dc[i] /= (float)mx, dt[i] /= (float)mx;   /* 1e-4 x max |cpu| */
    expect_close(what, dt, dc, ne, 1e-4);
    /* the shared prefix's key and value gradients: every segment's share, summed */
    for (int l = 0; l < n && P; l++) {
        const float *gk = (const float *)(uintptr_t)dkeys[l], *gv = (const float *)(uintptr_t)dvalues[l];
        snprintf(what, sizeof what, "%s packed d prefix K layer %d", c.name, l);
        expect_close(what, gk, dpk + (size_t)l * P * kvd, (size_t)P * kvd, 1e-4);
        snprintf(what, sizeof what, "%s packed d prefix V layer %d", c.name, l);
        expect_close(what, gv, dpv + (size_t)l * P * kvd, (size_t)P * kvd, 1e-4);
    }
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_varlen_backward")], 0);
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 0);
    for (int i = 0; i < tm.n; i++) free(tm.p[i]);
    free(layers), free(embeds), free(lc), free(lt), free(dl), free(dc), free(dt);
    free(pk), free(pv), free(dpk), free(dpv);
    lw_adapters_free(&ad);
    lw_backward_scratch_free(bs);
    lw_state_free(cs);
    lw_gpu_model_free(g);
    lw_model_free(m);
}
END_TEST

/* The poisoning has teeth: a life ended one op before its last reader (a
 * forward read that a layout sharing those bytes would break), or a slot
 * that backward reads treated as not kept (attention's backward reads its
 * output, ao, which the plan keeps as wo's input), makes the results NaN. */
static bool any_nan(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i])) return true;
    return false;
}

START_TEST(poisoned_memory_catches_a_broken_layout)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 45, &m));
    lw_cuda_module mod = {0};
    lw_gpu_model *g;
    lw_gpu_state *gs;
    lw_twin_set_model(&m->cfg);
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &mod, m, &g));
    OK(lw_gpu_state_alloc(g, 32, &gs));
    int ids[9];
    for (int t = 0; t < 9; t++) ids[t] = (3 * t + 1) % c.vocab;
    size_t nl = (size_t)9 * c.vocab;
    float *lg = calloc(nl, sizeof(float));
    ck_assert_ptr_nonnull(lg);
    poison_ctx pc;
    poison_state(&pc, g, gs);
    lw_forward_args a = {.ids = ids, .T = 9, .logits = lg, .all_logits = true, .capture_layer = -1};
    OK(lw_gpu_forward(g, gs, &a));
    ck_assert(!any_nan(lg, nl));
    ck_assert_int_gt(pc.poisoned, 0);
    lw_gpu_state_reset(gs);
    pc.early = true;
    OK(lw_gpu_forward(g, gs, &a));
    ck_assert_msg(any_nan(lg, nl), "a slot's life ended early went unseen");
    free(lg);
    lw_gpu_state_free(gs);
    lw_gpu_model_free(g);
    lw_model_free(m);

    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tl_tiny_gemma3_config(4), 31);
    poison_pass(&pc, r.g, &r.gpu);
    int H = r.m->cfg.hidden;
    for (int round = 0; round < 2; round++) {
        int T = lw_receiver_fill(&r.layout, 0, r.layout.verb_len[0] - 1, r.gpu.ids, r.gpu.is_embed);
        for (int i = 0; i < T * H; i++) r.gpu.embeds[i] = (float)sin(0.37 * i);
        float loss = 0;
        bool correct = false;
        pc.unkept = round ? LW_SLOT_AO : LW_SLOT_NONE;
        OK(lw_gpu_receiver_pass_loss(&r.gpu, NULL, T, 0, &loss));
        OK(lw_gpu_receiver_pass_backward(&r.gpu, NULL, T, 0, 1.f, &correct));
        ck_assert_msg(any_nan(r.gpu.d_embeds, (size_t)T * H) == (round == 1),
                      "round %d: d_embeds %s NaN", round, round ? "without a" : "with a");
    }
    tl_rig_close(&r);
}
END_TEST

/* ---- refusals, in their one place ----------------------------------------- */

START_TEST(what_has_no_kernel_is_refused)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 47, &m));
    lw_cuda_module mod = {0};
    lw_gpu_model *g = NULL;
    lw_gpu_state *gs = NULL;
    lw_twin_set_model(&m->cfg);
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &mod, m, &g));
    OK(lw_gpu_state_alloc(g, 32, &gs));
    int ids[6] = {1, 2, 3, 4, 5, 6}, seg[2] = {3, 3};
    float logits[11 * 6];
    lw_forward_args a = {.ids = ids, .T = 6, .logits = logits, .capture_layer = -1, .n_segments = 2,
                         .segment_len = seg};
    /* the plan passes; packed segments (with a deep prefix per segment too: the executor's seg_prefix_*,
     * the training pass's pack) and bf16 weights, forward or backward, are not the check's to refuse */
    OK(lw_gpu_check_plan(&g->plan, &g->cfg));
    /* segments whose lengths do not sum to T: refused before anything runs */
    seg[1] = 2;
    ck_assert_int_eq(lw_gpu_forward(g, gs, &a), LW_ERR_INVALID);
    ck_assert_int_eq(gs->n_cached, 0);
    /* the same check passes the q/k/v bias (Qwen2: bias_add_forward) and refuses a bias elsewhere */
    lw_plan p;
    lw_model_config q = tl_tiny_qwen2_config();
    lw_plan_lower(&q, &p);
    OK(lw_gpu_check_plan(&p, &q));
    for (int i = 0; i < p.n_ops; i++)
        if (p.ops[i].kind == LW_OP_MATMUL && p.ops[i].b == LW_W_NONE) {
            p.ops[i].b = LW_W_BQKV;   /* a bias the executor has no slot for (wo's, w_down's) */
            break;
        }
    ck_assert_int_eq(lw_gpu_check_plan(&p, &q), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "bias"), "%s", lw_last_error());
    lw_gpu_state_free(gs);
    lw_gpu_model_free(g);
    lw_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan_cuda_host");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    /* _i: 0 Gemma-3-like, 1 Llama-like, 2 Qwen3-like (plain-gain qk-norm, head_dim 6, halves RoPE),
     * 3 Qwen2-like (q/k/v bias) */
    tcase_add_loop_test(tc, inference_matches_the_cpu, 0, 4);
    tcase_add_test(tc, bf16_inference_is_close);
    tcase_add_loop_test(tc, training_pass_matches_the_cpu, 0, 4);
    tcase_add_test(tc, training_with_adapters_matches_the_cpu);
    tcase_add_loop_test(tc, label_scores_stay_on_the_device, 0, 4);
    tcase_add_loop_test(tc, packed_training_matches_the_cpu, 0, 4);
    tcase_add_test(tc, a_pack_that_cannot_grow_leaves_the_pass_usable);
    tcase_add_loop_test(tc, bf16_training_is_close, 0, 4);
    tcase_add_loop_test(tc, packed_backward_matches_the_cpu, 0, 8);
    tcase_add_test(tc, what_has_no_kernel_is_refused);
    tcase_add_test(tc, poisoned_memory_catches_a_broken_layout);
    tcase_add_loop_test(tc, graph_ready_decode_matches_todays, 0, 5);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
