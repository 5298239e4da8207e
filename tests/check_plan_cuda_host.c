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
 * Training (gpu_receiver_pass.c): check_receiver_pass_gpu.c's checks, here
 * on the twin: loss (relative 1e-4), d_embeds after backward (1e-4 x max),
 * the first-token check, every label's score; with LoRA (q,v and all seven
 * targets, dropout 0 and 0.2), a deep prefix of 3 keys under a window of 4,
 * and both: dA, dB and d prefix K/V within 1e-3 x max of each tensor.
 *
 * Models: the tiny random Gemma-3-like (window 4 < the rows, qk-norm, post
 * norms, GeGLU, tied), Llama-like (interleaved RoPE, GQA) and Qwen3-like
 * (plain-gain qk-norm, head_dim 6 != hidden / heads, halves RoPE) of
 * tiny_models.h; the adapters and bf16 on the Gemma-like.
 *
 * Refusals: packed segments and a projection bias (Qwen2) are refused by
 * the one check with LW_ERR_UNSUPPORTED; a bf16 model by the training pass. */
#include "testlib.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "kernel_launchers.h"
#include "lora.h"
#include "model.h"
#include "random_weights.h"
#include "receiver_pass.h"
#include "tiny_models.h"
#include "twin/twin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The twin's device: nothing to open (cuda_twin.c ignores it). */
static lw_cuda g_cu;
static lw_cublas g_blas;

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

/* One receiver and its layout, with a pass on each device. */
typedef struct {
    lw_model *m;
    lw_cuda_module mod;
    lw_gpu_model *g;
    lw_receiver_layout layout;
    lw_receiver_pass cpu;
    lw_gpu_receiver_pass gpu;
    double grad_rtol;
} rig;

/* The words of one prompt: before, M soft rows, after; verbalizers {v0} and {v1a v1b}. */
typedef struct {
    const int *before, *after;
    int n_before, n_after, M;
    int v0, v1a, v1b;
} prompt_ids;

static void rig_open(rig *r, lw_model *m, const prompt_ids *w, double grad_rtol)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->grad_rtol = grad_rtol;
    int v1[2] = {w->v1a, w->v1b}, len[2] = {1, 2};
    const int *verb[2] = {&w->v0, v1};
    OK(lw_receiver_layout_from_ids(w->M, w->before, w->n_before, w->after, w->n_after, 2, verb, len, &r->layout));
    int max_T = lw_receiver_prefix_len(&r->layout) + r->layout.max_verb - 1;
    lw_twin_set_model(&m->cfg);   /* the kernels' constants */
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &r->mod, m, &r->g));
    OK(lw_receiver_pass_alloc(&r->cpu, m, &r->layout, max_T, "test"));
    OK(lw_gpu_receiver_pass_alloc(&r->gpu, r->g, &r->layout, max_T, "test"));
}

static void rig_close(rig *r)
{
    lw_gpu_receiver_pass_free(&r->gpu);
    lw_receiver_pass_free(&r->cpu);
    lw_gpu_model_free(r->g);
    lw_receiver_layout_free(&r->layout);
    lw_model_free(r->m);
}

/* The same rows into both passes: the prefix and n_verb verbalizer tokens of
 * label; soft rows get smooth values of about unit size. Returns T. */
static int fill(rig *r, int label, int n_verb)
{
    int T = lw_receiver_fill(&r->layout, label, n_verb, r->cpu.ids, r->cpu.is_embed);
    int H = r->m->cfg.hidden;
    for (int i = 0; i < T * H; i++) r->cpu.embeds[i] = (float)sin(0.37 * i + 0.1 * label);
    memcpy(r->gpu.ids, r->cpu.ids, (size_t)T * sizeof(int));
    memcpy(r->gpu.is_embed, r->cpu.is_embed, (size_t)T * sizeof(bool));
    memcpy(r->gpu.embeds, r->cpu.embeds, (size_t)T * H * sizeof(float));
    return T;
}

/* Loss, backward and the first-token check of label on both devices. */
static void same_training_step_with(rig *r, int label, const lw_receiver_adapters *ad)
{
    int n_verb = r->layout.verb_len[label] - 1, H = r->m->cfg.hidden;
    int T = fill(r, label, n_verb);
    float lc = 0, lg = 0;
    OK(lw_receiver_pass_loss(&r->cpu, ad, T, label, &lc));
    OK(lw_gpu_receiver_pass_loss(&r->gpu, ad, T, label, &lg));
    ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= 1e-4 * fabs((double)lc),
                  "%s label %d: loss twin %.7g cpu %.7g", r->m->cfg.name, label, (double)lg, (double)lc);
    bool cc = false, cg = true;
    OK(lw_receiver_pass_backward(&r->cpu, ad, T, label, 0.75f, &cc));
    OK(lw_gpu_receiver_pass_backward(&r->gpu, ad, T, label, 0.75f, &cg));
    ck_assert_msg(cc == cg, "%s label %d: first token right: twin %d cpu %d", r->m->cfg.name, label, cg, cc);
    double maxabs = 0, worst = 0;
    /* rows before the CPU's cached head (token rows, last_head) it leaves at 0: nothing reads them */
    int at = 0;
    for (int i = r->cpu.last_head * H; i < T * H; i++) {
        float g = r->gpu.d_embeds[i], c = r->cpu.d_embeds[i];
        ck_assert_msg(isfinite(g), "%s: d_embeds[%d] is %g on the twin", r->m->cfg.name, i, (double)g);
        maxabs = fmax(maxabs, fabs(c));
        if (fabs((double)g - c) > worst) worst = fabs((double)g - c), at = i;
    }
    ck_assert_msg(maxabs > 0, "%s label %d: the CPU gradient is all zero", r->m->cfg.name, label);
    ck_assert_msg(worst <= r->grad_rtol * maxabs,
                  "%s label %d: d_embeds row %d col %d twin %.6g cpu %.6g, error %.3g > %g x max %.4g", r->m->cfg.name,
                  label, at / H, at % H, (double)r->gpu.d_embeds[at], (double)r->cpu.d_embeds[at], worst,
                  r->grad_rtol, maxabs);
    fprintf(stderr, "%s label %d: loss %.6f (twin %.6f), d_embeds max %.3g, worst error %.3g\n", r->m->cfg.name,
            label, (double)lc, (double)lg, maxabs, worst);
}

static void same_training_step(rig *r, int label) { same_training_step_with(r, label, NULL); }

/* Every label's score after the prompt, with and without the soft rows. */
static void same_scores_with(rig *r, const lw_receiver_adapters *ad)
{
    int P = fill(r, -1, 0);
    for (int embeds = 1; embeds >= 0; embeds--) {
        double sc[2], sg[2];
        OK(lw_receiver_pass_scores(&r->cpu, ad, P, embeds, sc));
        OK(lw_gpu_receiver_pass_scores(&r->gpu, ad, P, embeds, sg));
        for (int k = 0; k < 2; k++)
            ck_assert_msg(isfinite(sg[k]) && fabs(sg[k] - sc[k]) <= 1e-3 * fmax(1.0, fabs(sc[k])),
                          "%s label %d score (embeds %d): twin %.7g cpu %.7g", r->m->cfg.name, k, embeds, sg[k],
                          sc[k]);
    }
    /* the scores overwrote the activations: a backward now must be refused */
    ck_assert_int_eq(lw_gpu_receiver_pass_backward(&r->gpu, ad, P, 0, 1.f, NULL), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "needs their loss first"), "%s", lw_last_error());
}

static void same_scores(rig *r) { same_scores_with(r, NULL); }

static void check_model(rig *r)
{
    same_training_step(r, 1);   /* two-token verbalizer: two loss rows */
    same_training_step(r, 0);
    same_scores(r);
    same_training_step(r, 1);   /* a step after scoring starts clean */
}

/* ---- adapters ---------------------------------------------------------------- */

typedef struct {
    lw_lora lora;
    bool has_lora;
    lw_receiver_adapters ad;     /* one for both devices; its grads are zeroed between them */
    size_t n_prefix;             /* floats of each of the four below */
    float *pk, *pv, *dk, *dv;    /* prefix K/V [n_layers, P, kv dim] and their gradients */
} adapters;

/* LoRA (rank 4, targets; none when 0) and a deep prefix of P (none when 0). */
static void adapters_open(adapters *a, rig *r, unsigned targets, float dropout, int P)
{
    memset(a, 0, sizeof *a);
    const lw_model_config *c = &r->m->cfg;
    if (targets) {
        lw_lora_config lc = {.rank = 4, .alpha = 8.f, .dropout = dropout, .targets = targets};
        OK(lw_lora_create(&a->lora, &lc, r->m));
        lw_lora_init(&a->lora, 11);
        for (size_t i = 0; i < a->lora.p.n_params; i++)   /* B too, so every path carries a value */
            if (a->lora.p.params[i] == 0.f) a->lora.p.params[i] = 0.05f * (float)sin(0.91 * i + 0.3);
        a->has_lora = true;
    }
    OK(lw_adapters_init(&a->ad, r->m, r->cpu.max_T, a->has_lora ? &a->lora : NULL, P));
    a->ad.training = dropout > 0.f;
    a->ad.dropout_seed = 0x5eed1234ull;
    if (P) {
        a->n_prefix = (size_t)c->n_layers * P * c->n_kv_heads * c->head_dim;
        a->pk = malloc(a->n_prefix * sizeof(float));
        a->pv = malloc(a->n_prefix * sizeof(float));
        a->dk = calloc(a->n_prefix, sizeof(float));
        a->dv = calloc(a->n_prefix, sizeof(float));
        ck_assert(a->pk && a->pv && a->dk && a->dv);
        for (size_t i = 0; i < a->n_prefix; i++) {
            a->pk[i] = 0.8f * (float)sin(0.37 * i + 1.0);
            a->pv[i] = 0.8f * (float)cos(0.23 * i);
        }
        a->ad.prefix_k = a->pk, a->ad.prefix_v = a->pv, a->ad.d_prefix_k = a->dk, a->ad.d_prefix_v = a->dv;
        OK(lw_receiver_pass_grow_state(&r->cpu, P));
    }
}

static void adapters_close(adapters *a)
{
    lw_adapters_free(&a->ad);
    if (a->has_lora) lw_lora_free(&a->lora);
    free(a->pk), free(a->pv), free(a->dk), free(a->dv);
}

static void zero_grads(adapters *a)
{
    if (a->has_lora) lw_adapter_params_zero_grad(&a->lora.p);
    if (a->n_prefix) memset(a->dk, 0, a->n_prefix * sizeof(float)), memset(a->dv, 0, a->n_prefix * sizeof(float));
}

/* |gpu - cpu| <= rtol x max |cpu| over n values, which must not all be zero. */
static void expect_grads(const char *model, const char *what, const float *gpu, const float *cpu, size_t n,
                         double rtol)
{
    double maxabs = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(gpu[i]), "%s: %s[%zu] is %g on the twin", model, what, i, (double)gpu[i]);
        maxabs = fmax(maxabs, fabs(cpu[i]));
        if (fabs((double)gpu[i] - cpu[i]) > worst) worst = fabs((double)gpu[i] - cpu[i]), at = i;
    }
    ck_assert_msg(maxabs > 0, "%s: the CPU's %s is all zero", model, what);
    ck_assert_msg(worst <= rtol * maxabs, "%s: %s[%zu] twin %.6g cpu %.6g, error %.3g > %g x max %.4g", model, what,
                  at, (double)gpu[at], (double)cpu[at], worst, rtol, maxabs);
}

static float *copy_of(const float *x, size_t n)
{
    float *c = malloc((n ? n : 1) * sizeof(float));
    ck_assert(c != NULL);
    memcpy(c, x, n * sizeof(float));
    return c;
}

/* A training step of label through the adapters on both devices (loss and
 * d_embeds by same_training_step_with), then their gradients: the CPU's
 * first, kept, then the twin's into the same, zeroed, buffers. */
static void same_adapter_step(rig *r, adapters *a, int label, double rtol)
{
    const char *name = r->m->cfg.name;
    int n_verb = r->layout.verb_len[label] - 1, H = r->m->cfg.hidden;
    int T = fill(r, label, n_verb);
    zero_grads(a);
    float lc = 0, lg = 0;
    OK(lw_receiver_pass_loss(&r->cpu, &a->ad, T, label, &lc));
    OK(lw_receiver_pass_backward(&r->cpu, &a->ad, T, label, 0.75f, NULL));
    size_t nl = a->has_lora ? a->lora.p.n_params : 0;
    float *lora_cpu = a->has_lora ? copy_of(a->lora.p.grads, nl) : NULL;
    float *dk_cpu = a->n_prefix ? copy_of(a->dk, a->n_prefix) : NULL;
    float *dv_cpu = a->n_prefix ? copy_of(a->dv, a->n_prefix) : NULL;
    zero_grads(a);
    OK(lw_gpu_receiver_pass_loss(&r->gpu, &a->ad, T, label, &lg));
    ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= 1e-4 * fabs((double)lc),
                  "%s label %d with adapters: loss twin %.7g cpu %.7g", name, label, (double)lg, (double)lc);
    OK(lw_gpu_receiver_pass_backward(&r->gpu, &a->ad, T, label, 0.75f, NULL));
    double maxabs = 0, worst = 0;
    for (int i = r->cpu.last_head * H; i < T * H; i++) {   /* from the CPU's cached head on, as above */
        maxabs = fmax(maxabs, fabs(r->cpu.d_embeds[i]));
        worst = fmax(worst, fabs((double)r->gpu.d_embeds[i] - r->cpu.d_embeds[i]));
    }
    ck_assert_msg(maxabs > 0 && worst <= rtol * maxabs,
                  "%s label %d with adapters: d_embeds error %.3g, max %.3g", name, label, worst, maxabs);
    if (a->has_lora) {
        for (int t = 0; t < a->lora.p.n_tensors; t++) {
            const lw_adapter_tensor *x = &a->lora.p.tensors[t];
            expect_grads(name, x->name, a->lora.p.grads + x->offset, lora_cpu + x->offset, x->count, rtol);
        }
    }
    if (a->n_prefix) {
        expect_grads(name, "d prefix keys", a->dk, dk_cpu, a->n_prefix, rtol);
        expect_grads(name, "d prefix values", a->dv, dv_cpu, a->n_prefix, rtol);
    }
    fprintf(stderr, "%s label %d, LoRA %s, dropout %g, prefix %d: loss %.6f (twin %.6f), d_embeds error %.3g of %.3g\n",
            name, label, a->has_lora ? "on" : "off", a->has_lora ? (double)a->lora.cfg.dropout : 0.0,
            a->ad.prefix_len, (double)lc, (double)lg, worst, maxabs);
    free(lora_cpu), free(dk_cpu), free(dv_cpu);
}

/* Steps of both labels and the scores, through one set of adapters. */
static void check_adapters(rig *r, unsigned targets, float dropout, int P, double rtol)
{
    adapters a;
    adapters_open(&a, r, targets, dropout, P);
    same_adapter_step(r, &a, 1, rtol);
    same_adapter_step(r, &a, 0, rtol);
    a.ad.training = false;   /* scoring draws no dropout, as the trainer's */
    same_scores_with(r, &a.ad);
    a.ad.training = dropout > 0.f;
    same_adapter_step(r, &a, 1, rtol);
    adapters_close(&a);
}

enum { QV = (1u << LW_LORA_Q) | (1u << LW_LORA_V), ALL = (1u << LW_LORA_N_TARGETS) - 1 };

/* ---- training: tiny random models ------------------------------------------ */

/* _i: the model (tiny_models.h) */
static lw_model_config tiny(int i)
{
    return i == 0 ? tl_tiny_gemma3_config(4) : i == 1 ? tl_tiny_llama_config(LW_WEIGHTS_GGUF) : tl_tiny_qwen3_config();
}


START_TEST(training_pass_matches_the_cpu)
{
    lw_model_config c = tiny(_i);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 31 + (uint64_t)_i, &m));
    /* vocab 11: ids below it; 13 rows before the verbalizer, past the window of 4 */
    static const int before[] = {1, 5, 6, 3, 4}, after[] = {7, 8, 2, 1};
    prompt_ids w = {before, after, 5, 4, 4, 9, 10, 3};
    rig r;
    rig_open(&r, m, &w, 1e-4);
    lw_twin_count = (lw_twin_counts){0};
    check_model(&r);
    /* the walk ran through the twin launchers and the twin cuBLAS, backward included */
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("rmsnorm_backward")], 0);
    ck_assert_int_gt(lw_twin_count.by_kernel[lw_twin_kernel_index("add_forward")], 0);
    ck_assert_int_gt(lw_twin_count.products, 0);
    rig_close(&r);
}
END_TEST

START_TEST(training_with_adapters_matches_the_cpu)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 31, &m));
    static const int before[] = {1, 5, 6, 3, 4}, after[] = {7, 8, 2, 1};
    prompt_ids w = {before, after, 5, 4, 4, 9, 10, 3};
    rig r;
    rig_open(&r, m, &w, 1e-4);
    check_adapters(&r, QV, 0.f, 0, 1e-3);
    check_adapters(&r, ALL, 0.f, 0, 1e-3);
    check_adapters(&r, QV, 0.2f, 0, 1e-3);
    check_adapters(&r, ALL, 0.2f, 0, 1e-3);
    check_adapters(&r, 0, 0.f, 3, 1e-3);        /* the deep prefix alone */
    check_adapters(&r, ALL, 0.2f, 3, 1e-3);     /* both */
    check_adapters(&r, QV, 0.f, 2, 1e-3);       /* a shorter prefix than the pass has room for */
    check_model(&r);                            /* and without, on the pass that now holds prefix rows */
    rig_close(&r);
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
    /* capture of every layer without logits (the forward stops there), then with */
    for (int l = 0; l <= n; l++) {
        lw_state_reset(cs), lw_gpu_state_reset(gs);
        lw_forward_args h = {.ids = ids, .embeds = embeds, .is_embed = is_embed, .T = 9, .capture_layer = l};
        same_forward("capture", m, cs, g, gs, h, rtol);
        h.logits = (float *)1;
        lw_state_reset(cs), lw_gpu_state_reset(gs);
        same_forward("capture with logits", m, cs, g, gs, h, rtol);
    }
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
    ck_assert_int_eq(lw_twin_count.by_kernel[lw_twin_kernel_index("attention_backward")], 0);
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
    ck_assert_int_eq(lw_gpu_forward(g, gs, &a), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "packed segments") && strstr(lw_last_error(), m->cfg.name), "%s",
                  lw_last_error());
    ck_assert_int_eq(gs->n_cached, 0);
    /* the same check refuses a projection bias (before any upload) and a backward through bf16 */
    lw_plan p;
    lw_model_config q = tl_tiny_qwen2_config();
    lw_plan_lower(&q, &p);
    ck_assert_int_eq(lw_gpu_check_plan(&p, &q, false, NULL, false), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "qkv_bias"), "%s", lw_last_error());
    ck_assert_int_eq(lw_gpu_check_plan(&g->plan, &g->cfg, true, NULL, true), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "bf16"), "%s", lw_last_error());
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
    /* _i: 0 Gemma-3-like, 1 Llama-like, 2 Qwen3-like (plain-gain qk-norm, head_dim 6, halves RoPE) */
    tcase_add_loop_test(tc, inference_matches_the_cpu, 0, 3);
    tcase_add_test(tc, bf16_inference_is_close);
    tcase_add_loop_test(tc, training_pass_matches_the_cpu, 0, 3);
    tcase_add_test(tc, training_with_adapters_matches_the_cpu);
    tcase_add_test(tc, what_has_no_kernel_is_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
