/* The receiver's training pass on the GPU (runtime/gpu_receiver_pass.h)
 * against the CPU pass (runtime/receiver_pass.h) on the same rows: token
 * ids, a run of input-embedding rows (soft tokens) and more ids, then the
 * gold verbalizer but its last token; for both labels (verbalizers of one
 * and two tokens). Needs a GPU: run by `make check-gpu`; without one it
 * stops with "no CUDA device".
 *
 * Checked: the loss (relative 1e-4), d_embeds after backward with scale
 * 0.75 (|gpu - cpu| <= rtol x max |cpu|, rtol 1e-4 on the tiny models, 1e-3
 * on Gemma-3-270M: cuBLAS and OpenBLAS sum in other orders, attention's
 * dk/dv are atomics), the first-token check, every label's score after the
 * prompt (within 1e-3 x max(1, |cpu|)), with and without the embedding
 * rows, and that a backward after scores is refused (its activations were
 * overwritten).
 *
 * Models: the tiny random Gemma-3-like (window 4 < the rows, qk-norm,
 * post-norms, GeGLU, tied output) and Llama-like (interleaved RoPE) of
 * tiny_models.h, kernels generated from their configs and compiled with
 * NVRTC; then Gemma-3-270M from models/ when present. */
#include "testlib.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "model.h"
#include "nvrtc_compile.h"
#include "receiver_pass.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CUDA context does not survive fork(): CK_NOFORK, set up once in main. */
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

/* Kernels generated from m's own config, compiled for this device. */
static void load_kernels(const lw_model *m, lw_cuda_module *mod)
{
    lw_strbuf sb = {0};
    OK(lw_gen_model_kernels(tl_src("templates"), &m->cfg, 8, &sb));
    ck_assert_msg(!sb.failed, "out of memory generating the kernels of %s", m->cfg.name);
    unsigned char *image = NULL;
    size_t size = 0;
    lw_status st = lw_nvrtc_compile(sb.data, "kernels_model.cu", lw_cuda_arch(&g_cu), &image, &size);
    lw_sb_free(&sb);
    OK(st);
    st = lw_cuda_load_image(&g_cu, "model", lw_cuda_arch(&g_cu), image, mod);
    free(image);
    OK(st);
}

static void rig_open(rig *r, lw_model *m, const prompt_ids *w, double grad_rtol)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->grad_rtol = grad_rtol;
    int v1[2] = {w->v1a, w->v1b}, len[2] = {1, 2};
    const int *verb[2] = {&w->v0, v1};
    OK(lw_receiver_layout_from_ids(w->M, w->before, w->n_before, w->after, w->n_after, 2, verb, len, &r->layout));
    int max_T = lw_receiver_prefix_len(&r->layout) + r->layout.max_verb - 1;
    load_kernels(m, &r->mod);
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &r->mod, m, &r->g));
    r->g->sync_each_launch = true;   /* a fault names its kernel */
    OK(lw_receiver_pass_alloc(&r->cpu, m, &r->layout, max_T, "test"));
    OK(lw_gpu_receiver_pass_alloc(&r->gpu, r->g, &r->layout, max_T, "test"));
    fprintf(stderr, "%s: %d rows, %.1f MiB of weights, %.1f MiB for the training pass on the GPU\n", m->cfg.name,
            max_T, r->g->weight_bytes / 1048576.0, r->gpu.bytes / 1048576.0);
}

static void rig_close(rig *r)
{
    lw_gpu_receiver_pass_free(&r->gpu);
    lw_receiver_pass_free(&r->cpu);
    lw_gpu_model_free(r->g);
    lw_cuda_unload(&g_cu, &r->mod);
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
static void same_training_step(rig *r, int label)
{
    int n_verb = r->layout.verb_len[label] - 1, H = r->m->cfg.hidden;
    int T = fill(r, label, n_verb);
    float lc = 0, lg = 0;
    OK(lw_receiver_pass_loss(&r->cpu, NULL, T, label, &lc));
    OK(lw_gpu_receiver_pass_loss(&r->gpu, NULL, T, label, &lg));
    ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= 1e-4 * fabs((double)lc),
                  "%s label %d: loss gpu %.7g cpu %.7g", r->m->cfg.name, label, (double)lg, (double)lc);
    bool cc = false, cg = true;
    OK(lw_receiver_pass_backward(&r->cpu, NULL, T, label, 0.75f, &cc));
    OK(lw_gpu_receiver_pass_backward(&r->gpu, NULL, T, label, 0.75f, &cg));
    ck_assert_msg(cc == cg, "%s label %d: first token right: gpu %d cpu %d", r->m->cfg.name, label, cg, cc);
    double maxabs = 0, worst = 0;
    int at = 0;
    for (int i = 0; i < T * H; i++) {
        float g = r->gpu.d_embeds[i], c = r->cpu.d_embeds[i];
        ck_assert_msg(isfinite(g), "%s: d_embeds[%d] is %g on the GPU", r->m->cfg.name, i, (double)g);
        maxabs = fmax(maxabs, fabs(c));
        if (fabs((double)g - c) > worst) worst = fabs((double)g - c), at = i;
    }
    ck_assert_msg(maxabs > 0, "%s label %d: the CPU gradient is all zero", r->m->cfg.name, label);
    ck_assert_msg(worst <= r->grad_rtol * maxabs,
                  "%s label %d: d_embeds row %d col %d gpu %.6g cpu %.6g, error %.3g > %g x max %.4g", r->m->cfg.name,
                  label, at / H, at % H, (double)r->gpu.d_embeds[at], (double)r->cpu.d_embeds[at], worst,
                  r->grad_rtol, maxabs);
    fprintf(stderr, "%s label %d: loss %.6f (gpu %.6f), d_embeds max %.3g, worst error %.3g\n", r->m->cfg.name,
            label, (double)lc, (double)lg, maxabs, worst);
}

/* Every label's score after the prompt, with and without the soft rows. */
static void same_scores(rig *r)
{
    int P = fill(r, -1, 0);
    for (int embeds = 1; embeds >= 0; embeds--) {
        double sc[2], sg[2];
        OK(lw_receiver_pass_scores(&r->cpu, NULL, P, embeds, sc));
        OK(lw_gpu_receiver_pass_scores(&r->gpu, NULL, P, embeds, sg));
        for (int k = 0; k < 2; k++)
            ck_assert_msg(isfinite(sg[k]) && fabs(sg[k] - sc[k]) <= 1e-3 * fmax(1.0, fabs(sc[k])),
                          "%s label %d score (embeds %d): gpu %.7g cpu %.7g", r->m->cfg.name, k, embeds, sg[k],
                          sc[k]);
    }
    /* the scores overwrote the activations: a backward now must be refused */
    ck_assert_int_eq(lw_gpu_receiver_pass_backward(&r->gpu, NULL, P, 0, 1.f, NULL), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "needs their loss first"), "%s", lw_last_error());
}

static void check_model(rig *r)
{
    same_training_step(r, 1);   /* two-token verbalizer: two loss rows */
    same_training_step(r, 0);
    same_scores(r);
    same_training_step(r, 1);   /* a step after scoring starts clean */
}

/* ---- tiny random models ------------------------------------------------ */

START_TEST(tiny_models_match_the_cpu)
{
    lw_model_config c = _i == 0 ? tl_tiny_gemma3_config(4) : tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 31 + (uint64_t)_i, &m));
    /* vocab 11: ids below it; 13 rows before the verbalizer, past the window of 4 */
    static const int before[] = {1, 5, 6, 3, 4}, after[] = {7, 8, 2, 1};
    prompt_ids w = {before, after, 5, 4, 4, 9, 10, 3};
    rig r;
    rig_open(&r, m, &w, 1e-4);
    check_model(&r);
    rig_close(&r);
}
END_TEST

/* ---- the real receiver ------------------------------------------------------ */

START_TEST(gemma3_matches_the_cpu)
{
    const char *path = tl_model("gemma-3-270m-q4_k_m.gguf");
    tl_require_file(path);
    lw_model *m;
    OK(lw_model_open(path, LW_WEIGHTS_GGUF, &m));
    /* the story prompt's head (tests/golden/forward/gemma3.txt) around 6 soft rows */
    static const int before[] = {2, 14946, 3324, 496, 990}, after[] = {236764, 528, 496};
    prompt_ids w = {before, after, 5, 3, 6, 1944, 9744, 684};
    rig r;
    rig_open(&r, m, &w, 1e-3);
    check_model(&r);
    rig_close(&r);
}
END_TEST

int main(void)
{
    lw_status st = lw_cuda_init(&g_cu, 0);
    if (st) {
        fprintf(stderr, "check_receiver_pass_gpu: no CUDA device: %s\n", lw_last_error());
        return 1;
    }
    if ((st = lw_cublas_init(&g_blas, &g_cu))) {
        fprintf(stderr, "check_receiver_pass_gpu: cannot run: %s\n", lw_last_error());
        lw_cuda_close(&g_cu);
        return 1;
    }
    fprintf(stderr, "GPU: %s, sm_%d; %s; NVRTC %s\n", g_cu.name, lw_cuda_arch(&g_cu), g_blas.lib_name,
            lw_nvrtc_version());
    Suite *s = suite_create("receiver_pass_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, tiny_models_match_the_cpu, 0, 2);   /* _i: 0 Gemma-like, 1 Llama-like */
    tcase_add_test(tc, gemma3_matches_the_cpu);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lw_cublas_close(&g_blas);
    lw_cuda_close(&g_cu);
    return failed == 0 ? 0 : 1;
}
