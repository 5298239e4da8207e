/* The whole forward pass on the GPU (runtime/model/gpu_model.h) against the CPU
 * forward (runtime/model/forward.c): all logits of a prefill, then 8 decode steps
 * (last-row logits and greedy tokens). Needs a GPU: run by `make check-gpu`,
 * not by `make check`; without one it stops with "no CUDA device".
 *
 * Models: two tiny random ones (tiny_models.h: Gemma-3-like with a sliding
 * window of 4, qk-norm, post-norms, GeGLU, tied output; Llama-like with the
 * interleaved RoPE of GGUF), where prompts run past the window, across the
 * 256-row chunks and through input embeddings; then SmolLM2-135M and
 * Gemma-3-270M from models/, on the "story" prompt of
 * tests/golden/forward/{smollm2,gemma3}.txt; where models/ lacks them (a
 * device machine: the files do not travel), random weights of their
 * shapes (real_models.h), GPU against CPU all the same. Each model's kernels are
 * generated from its own config and compiled with NVRTC for the device, so
 * no `lwc build` is needed.
 *
 * Tolerance: per row, |gpu - cpu| <= rtol * max_v |cpu[v]|, rtol 1e-3 for
 * the real models (fp32 products whose summation order differs between
 * cuBLAS and OpenBLAS, through 30 and 18 layers) and 1e-4 for the tiny ones.
 * Greedy tokens must agree unless the CPU's top two logits are closer than
 * that tolerance (a tie that rounding may break either way).
 *
 * Hidden-state capture (capture_layer / hidden_out) at layer 0, the middle
 * layer and n_layers, with and without logits (without, both devices stop
 * after the layer and leave n_cached at 0): per row |gpu - cpu| <= rtol *
 * max |cpu| of the row, the same rtol as the logits (1e-4 tiny, 1e-3 real).
 *
 * bf16 weights (lw_gpu_model_upload_dtype, LW_DTYPE_BF16) against the fp32
 * CPU forward: logits within 3e-2 * max |cpu| per row (a first guess, not
 * yet measured: bf16 keeps 8 bits of mantissa, so each weight and product
 * input is off by up to 2^-9 relative, summed with fp32 accumulation through
 * every layer). Each decode step's greedy token must agree unless the CPU's
 * top two logits are within that tolerance, and for the real models at
 * least 6 of the 8 steps must agree exactly (not for random weights of
 * their shapes, whose flat logits make near-ties common). */
#include "testlib.h"
#include "gpu_suite.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "gpu_model.h"
#include "model.h"
#include "nvrtc_compile.h"
#include "random_weights.h"
#include "real_models.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CUDA context does not survive fork(): CK_NOFORK, set up once in main. */
static lw_cuda g_cu;
static lw_cublas g_blas;

enum { DECODE_STEPS = 8 };

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

/* One model on both devices. */
typedef struct {
    lw_model *m;
    lw_cuda_module mod;
    lw_gpu_model *g;
    lw_gpu_state *gs;
    lw_state *cs;
} rig;

/* Kernels generated from m's own config, compiled for this device. */
static void load_kernels(const lw_model *m, lw_cuda_module *mod)
{
    tl_gpu_model_kernels(&g_cu, &m->cfg, 8, "model", mod);
}

static void rig_open_dtype(rig *r, lw_model *m, int max_tokens, lw_weight_dtype dtype)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    load_kernels(m, &r->mod);
    OK(lw_gpu_model_upload_dtype(&g_cu, &g_blas, &r->mod, m, dtype, &r->g));
    ck_assert_int_eq(r->g->bf16, dtype == LW_DTYPE_BF16);
    ck_assert_uint_eq(r->g->weight_bytes, lw_gpu_model_weight_bytes(m, dtype));
    r->g->sync_each_launch = true;   /* a fault names its kernel */
    OK(lw_gpu_state_alloc(r->g, max_tokens, &r->gs));
    OK(lw_state_alloc(m, max_tokens, false, &r->cs));
    fprintf(stderr, "%s: %.1f MiB of weights, %.1f MiB of state on the GPU\n", m->cfg.name,
            r->g->weight_bytes / 1048576.0, r->gs->bytes / 1048576.0);
}

static void rig_open(rig *r, lw_model *m, int max_tokens) { rig_open_dtype(r, m, max_tokens, LW_DTYPE_F32); }

static void rig_close(rig *r)
{
    lw_state_free(r->cs);
    lw_gpu_state_free(r->gs);
    lw_gpu_model_free(r->g);
    lw_cuda_unload(&g_cu, &r->mod);
    lw_model_free(r->m);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* rows of [V] logits, each held to rtol times its own largest |value|. */
static void expect_logits_close(const char *what, const float *gpu, const float *cpu, int rows, int V, double rtol)
{
    for (int t = 0; t < rows; t++) {
        const float *g = gpu + (size_t)t * V, *c = cpu + (size_t)t * V;
        double maxabs = 0, worst = 0;
        int at = 0;
        for (int v = 0; v < V; v++) {
            ck_assert_msg(isfinite(g[v]), "%s row %d: logit %d is %g on the GPU", what, t, v, (double)g[v]);
            maxabs = fmax(maxabs, fabs(c[v]));
            double err = fabs((double)g[v] - c[v]);
            if (err > worst) worst = err, at = v;
        }
        ck_assert_msg(worst <= rtol * maxabs, "%s row %d: logit %d gpu %.6g cpu %.6g, error %.3g > %g x max %.4g",
                      what, t, at, (double)g[at], (double)c[at], worst, rtol, maxabs);
    }
}

/* The greedy token agrees, unless the CPU's best two are within tolerance. */
static void expect_same_token(const char *what, int step, const float *gpu, const float *cpu, int V, double rtol)
{
    int tg = argmax(gpu, V), tc = argmax(cpu, V);
    if (tg == tc) return;
    double maxabs = 0;
    for (int v = 0; v < V; v++) maxabs = fmax(maxabs, fabs(cpu[v]));
    ck_assert_msg(fabs((double)cpu[tc] - cpu[tg]) <= rtol * maxabs,
                  "%s step %d: greedy token gpu %d cpu %d (cpu logits %.6g vs %.6g)", what, step, tg, tc,
                  (double)cpu[tg], (double)cpu[tc]);
}

/* T rows from position 0 on both, all logits compared. */
static void prefill(rig *r, const lw_forward_args *a, double rtol)
{
    int V = r->m->cfg.vocab;
    float *cpu = malloc((size_t)a->T * V * sizeof(float)), *gpu = malloc((size_t)a->T * V * sizeof(float));
    ck_assert(cpu && gpu);
    lw_forward_args ca = *a, ga = *a;
    ca.logits = cpu, ga.logits = gpu;
    ca.all_logits = ga.all_logits = true;
    lw_state_reset(r->cs);
    lw_gpu_state_reset(r->gs);
    OK(lw_forward(r->m, r->cs, &ca));
    OK(lw_gpu_forward(r->g, r->gs, &ga));
    ck_assert_int_eq(r->gs->n_cached, r->cs->n_cached);
    expect_logits_close(r->m->cfg.name, gpu, cpu, a->T, V, rtol);
    free(cpu), free(gpu);
}

/* `steps` single-row calls after the cache; both are fed the CPU's greedy
 * token so they stay in step, starting from first. */
static int decode(rig *r, int first, int steps, double rtol)
{
    int agree = 0;
    int V = r->m->cfg.vocab, token = first;
    float *cpu = malloc((size_t)V * sizeof(float)), *gpu = malloc((size_t)V * sizeof(float));
    ck_assert(cpu && gpu);
    for (int i = 0; i < steps; i++) {
        int pos = r->cs->n_cached;
        lw_forward_args a = {.ids = &token, .T = 1, .pos0 = pos, .logits = cpu, .capture_layer = -1};
        OK(lw_forward(r->m, r->cs, &a));
        a.logits = gpu;
        OK(lw_gpu_forward(r->g, r->gs, &a));
        char what[96];
        snprintf(what, sizeof what, "%s decode at position %d", r->m->cfg.name, pos);
        expect_logits_close(what, gpu, cpu, 1, V, rtol);
        expect_same_token(r->m->cfg.name, i, gpu, cpu, V, rtol);
        agree += argmax(gpu, V) == argmax(cpu, V);
        token = argmax(cpu, V);
    }
    free(cpu), free(gpu);
    return agree;
}

/* rows of [H] hidden states, each held to rtol times its own largest |value|. */
static void expect_rows_close(const char *what, const float *gpu, const float *cpu, int T, int H, double rtol)
{
    for (int t = 0; t < T; t++) {
        const float *g = gpu + (size_t)t * H, *c = cpu + (size_t)t * H;
        double maxabs = 0, worst = 0;
        int at = 0;
        for (int i = 0; i < H; i++) {
            ck_assert_msg(isfinite(g[i]), "%s row %d: value %d is %g on the GPU", what, t, i, (double)g[i]);
            maxabs = fmax(maxabs, fabs(c[i]));
            double err = fabs((double)g[i] - c[i]);
            if (err > worst) worst = err, at = i;
        }
        ck_assert_msg(worst <= rtol * maxabs, "%s row %d: value %d gpu %.6g cpu %.6g, error %.3g > %g x max %.4g",
                      what, t, at, (double)g[at], (double)c[at], worst, rtol, maxabs);
    }
}

/* The T rows from position 0 captured at layer 0, the middle layer and
 * n_layers on both devices, without logits (an early stop: n_cached stays 0
 * on both) and with all logits (every layer runs; the logits still match). */
static void capture(rig *r, const int *ids, int T, double rtol)
{
    const lw_model_config *c = &r->m->cfg;
    int H = c->hidden, V = c->vocab, layers[3] = {0, c->n_layers / 2, c->n_layers};
    float *ch = malloc((size_t)T * H * sizeof(float)), *gh = malloc((size_t)T * H * sizeof(float));
    float *cl = malloc((size_t)T * V * sizeof(float)), *gl = malloc((size_t)T * V * sizeof(float));
    ck_assert(ch && gh && cl && gl);
    for (int i = 0; i < 3; i++)
        for (int with_logits = 0; with_logits < 2; with_logits++) {
            lw_forward_args a = {.ids = ids, .T = T, .capture_layer = layers[i], .all_logits = with_logits};
            lw_forward_args ca = a, ga = a;
            ca.hidden_out = ch, ga.hidden_out = gh;
            ca.logits = with_logits ? cl : NULL, ga.logits = with_logits ? gl : NULL;
            memset(gh, 0xff, (size_t)T * H * sizeof(float));   /* NaN: a row never written fails */
            lw_state_reset(r->cs);
            lw_gpu_state_reset(r->gs);
            OK(lw_forward(r->m, r->cs, &ca));
            OK(lw_gpu_forward(r->g, r->gs, &ga));
            ck_assert_int_eq(r->gs->n_cached, r->cs->n_cached);
            ck_assert_int_eq(r->gs->n_cached, with_logits || layers[i] == c->n_layers ? T : 0);
            char what[128];
            snprintf(what, sizeof what, "%s captured at layer %d%s", c->name, layers[i],
                     with_logits ? " with logits" : "");
            expect_rows_close(what, gh, ch, T, H, rtol);
            if (with_logits) expect_logits_close(what, gl, cl, T, V, rtol);
        }
    free(ch), free(gh), free(cl), free(gl);
}

/* ---- tiny random models ------------------------------------------------ */

static lw_model *tiny(int which, int context)
{
    lw_model_config c = which == 0 ? tl_tiny_gemma3_config(4) : tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    c.context = context;
    /* scaled RoPE on the global layers only, the local ones plain (as Gemma 3) */
    if (which == 0) c.rope_scaling = (lw_rope_scaling){.kind = LW_ROPE_SCALING_LINEAR, .factor = 8.f};
    lw_model *m;
    OK(lw_model_init_random(&c, 21 + (uint64_t)which, &m));
    return m;
}

/* 300 rows: past the window of 4, over two 256-row chunks, then decoding. */
START_TEST(tiny_prefill_and_decode)
{
    int T = 300;
    rig r;
    rig_open(&r, tiny(_i, 512), T + DECODE_STEPS);
    int *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (t * 7 + 3) % r.m->cfg.vocab;
    prefill(&r, &(lw_forward_args){.ids = ids, .T = T, .capture_layer = -1}, 1e-4);
    decode(&r, ids[T - 1], DECODE_STEPS, 1e-4);
    free(ids);
    rig_close(&r);
}
END_TEST

/* Capture over 300 rows: across the two 256-row chunks. */
START_TEST(tiny_capture)
{
    int T = 300;
    rig r;
    rig_open(&r, tiny(_i, 512), T);
    int *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (t * 5 + 1) % r.m->cfg.vocab;
    capture(&r, ids, T, 1e-4);
    free(ids);
    rig_close(&r);
}
END_TEST

enum { BF16_MIN_AGREE = 6 };          /* of DECODE_STEPS, real models */
static const double BF16_RTOL = 3e-2;

/* bf16 weights: the Gemma-like model's tied head gets its own bf16 copy. */
START_TEST(tiny_bf16)
{
    int T = 300;
    rig r;
    rig_open_dtype(&r, tiny(_i, 512), T + DECODE_STEPS, LW_DTYPE_BF16);
    ck_assert_uint_lt(r.g->weight_bytes, lw_gpu_model_weight_bytes(r.m, LW_DTYPE_F32));
    int *ids = malloc((size_t)T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (t * 7 + 3) % r.m->cfg.vocab;
    prefill(&r, &(lw_forward_args){.ids = ids, .T = T, .capture_layer = -1}, BF16_RTOL);
    decode(&r, ids[T - 1], DECODE_STEPS, BF16_RTOL);
    free(ids);
    rig_close(&r);
}
END_TEST

/* Input embeddings at some rows (a run and a single row), and the prompt fed
 * in two calls on the GPU (a continuation at pos0 = 7) against one on the CPU. */
START_TEST(tiny_embeddings_and_continuation)
{
    int T = 12, H;
    rig r;
    rig_open(&r, tiny(_i, 64), T);
    H = r.m->cfg.hidden;
    int V = r.m->cfg.vocab, ids[12] = {1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 7, 8};
    bool is_embed[12] = {0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0};
    float *embeds = malloc((size_t)T * H * sizeof(float));
    for (int i = 0; i < T * H; i++) embeds[i] = (float)sin(0.37 * i);
    float *cpu = malloc((size_t)T * V * sizeof(float)), *gpu = malloc((size_t)T * V * sizeof(float));
    lw_forward_args a = {.ids = ids, .embeds = embeds, .is_embed = is_embed, .T = T, .logits = cpu,
                         .all_logits = true, .capture_layer = -1};
    OK(lw_forward(r.m, r.cs, &a));
    lw_forward_args first = a, second = a;
    first.T = 7, first.logits = gpu;
    OK(lw_gpu_forward(r.g, r.gs, &first));
    /* the second call's arrays start at its own row 0 */
    second.ids = ids + 7, second.embeds = embeds + (size_t)7 * H, second.is_embed = is_embed + 7;
    second.T = 5, second.pos0 = 7, second.logits = gpu + (size_t)7 * V;
    OK(lw_gpu_forward(r.g, r.gs, &second));
    ck_assert_int_eq(r.gs->n_cached, T);
    expect_logits_close("tiny with embeddings, in two calls", gpu, cpu, T, V, 1e-4);
    free(embeds), free(cpu), free(gpu);
    rig_close(&r);
}
END_TEST

/* ---- the real models ------------------------------------------------------ */

static const int smollm2_story[] = {6403, 1980, 253, 655, 28, 281, 253, 1165, 6560, 411, 260, 3426, 28, 665, 4161};
static const int gemma3_story[] = {2,   14946, 3324, 496,  990, 236764, 528, 496,
                                   1944, 9744, 684,  506, 5442, 236764, 993, 11742};

static void real_model(const char *file, const int *ids, int T)
{
    rig r;
    rig_open(&r, tl_real_or_random_model(file, NULL), T + DECODE_STEPS);
    prefill(&r, &(lw_forward_args){.ids = ids, .T = T, .capture_layer = -1}, 1e-3);
    decode(&r, ids[T - 1], DECODE_STEPS, 1e-3);
    capture(&r, ids, T, 1e-3);
    rig_close(&r);
}

static void real_model_bf16(const char *file, const int *ids, int T)
{
    rig r;
    bool is_random;
    rig_open_dtype(&r, tl_real_or_random_model(file, &is_random), T + DECODE_STEPS, LW_DTYPE_BF16);
    prefill(&r, &(lw_forward_args){.ids = ids, .T = T, .capture_layer = -1}, BF16_RTOL);
    int agree = decode(&r, ids[T - 1], DECODE_STEPS, BF16_RTOL);
    fprintf(stderr, "%s bf16: %d of %d greedy decode tokens as the fp32 CPU's%s\n", r.m->cfg.name, agree,
            DECODE_STEPS, is_random ? " (random weights: not held to a count)" : "");
    /* random weights have no confident next token: near-ties everywhere */
    if (!is_random) ck_assert_msg(agree >= BF16_MIN_AGREE, "%s bf16: only %d of %d greedy tokens agree", r.m->cfg.name, agree,
                  DECODE_STEPS);
    rig_close(&r);
}

#define SMOLLM2 "SmolLM2-135M-Instruct.Q4_1.gguf", smollm2_story, (int)(sizeof smollm2_story / sizeof(int))
#define GEMMA3 "gemma-3-270m-q4_k_m.gguf", gemma3_story, (int)(sizeof gemma3_story / sizeof(int))

START_TEST(smollm2_matches_the_cpu) { real_model(SMOLLM2); }
END_TEST

START_TEST(gemma3_matches_the_cpu) { real_model(GEMMA3); }
END_TEST

START_TEST(smollm2_bf16_near_the_cpu) { real_model_bf16(SMOLLM2); }
END_TEST

START_TEST(gemma3_bf16_near_the_cpu) { real_model_bf16(GEMMA3); }
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_model_gpu", &g_cu, &g_blas)) return 1;
    fprintf(stderr, "GPU: %s, sm_%d; %s; NVRTC %s\n", g_cu.name, lw_cuda_arch(&g_cu), g_blas.lib_name,
            lw_nvrtc_version());
    Suite *s = suite_create("model_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, tiny_prefill_and_decode, 0, 2);          /* _i: 0 Gemma-like, 1 Llama-like */
    tcase_add_loop_test(tc, tiny_embeddings_and_continuation, 0, 2);
    tcase_add_loop_test(tc, tiny_capture, 0, 2);
    tcase_add_loop_test(tc, tiny_bf16, 0, 2);
    tcase_add_test(tc, smollm2_matches_the_cpu);
    tcase_add_test(tc, gemma3_matches_the_cpu);
    tcase_add_test(tc, smollm2_bf16_near_the_cpu);
    tcase_add_test(tc, gemma3_bf16_near_the_cpu);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
