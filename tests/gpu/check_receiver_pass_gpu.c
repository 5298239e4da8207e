/* The receiver's training pass on the GPU (runtime/model/gpu_receiver_pass.h)
 * against the CPU pass (runtime/model/receiver_pass.h) on the same rows: token
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
 * With adapters (the same ad on both devices): LoRA of rank 4 on q,v and on
 * all seven targets, dropout 0 and 0.2 (training: the masks must be the
 * CPU's), B drawn nonzero so every path carries a value; a deep prefix of
 * P = 3 keys per layer (window 4 < the rows: the prefix must be exempt from
 * the window); and both together. Checked: the loss (relative 1e-4), then
 * d_embeds and each of the LoRA's dA, dB and d prefix K/V, |gpu - cpu| <=
 * rtol x max |cpu| of the tensor (rtol 1e-3 tiny, 2e-3 Gemma-3-270M: sums
 * over rows in other orders), and the scores through the adapters.
 *
 * Packed steps (issue 20): a micro-batch of 3 (Gemma-3-270M: 4) examples as
 * one packed GPU pass (lw_gpu_receiver_pass_pack_*) against the CPU's packed
 * pass: each example's loss (relative 1e-4), first-token check and input
 * gradient (rtol as above), and LoRA on all targets (dropout 0) on the tiny
 * Gemma-like: dA, dB within 1e-3 x max.
 *
 * bf16 weights (issue 20): the tiny models uploaded again in bf16 and
 * trained through them (cublasGemmEx with CUDA_R_16BF operands and fp32
 * accumulation backward) against the fp32 CPU pass: loss 6e-2 relative,
 * d_embeds 6e-2 x max and a cosine of at least 0.999 to the CPU's gradient.
 *
 * Models: the tiny random Gemma-3-like (window 4 < the rows, qk-norm,
 * post-norms, GeGLU, tied output) and Llama-like (interleaved RoPE) of
 * tiny_models.h, kernels generated from their configs and compiled with
 * NVRTC; then Gemma-3-270M from models/ when present, else random weights
 * of its shapes (real_models.h: the files do not travel to a device
 * machine), GPU against CPU all the same. The checks themselves are shared
 * with the host twin's tests/check_plan_cuda_host.c (tests/testlib/receiver_rig.h). */
#include "testlib.h"
#include "gpu_suite.h"
#include "real_models.h"
#include "receiver_rig.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "lora.h"
#include "model.h"
#include "nvrtc_compile.h"
#include "random_weights.h"
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

/* Kernels generated from m's own config, compiled for this device. */
static void load_kernels(const lw_model *m, lw_cuda_module *mod)
{
    tl_gpu_model_kernels(&g_cu, &m->cfg, 8, "model", mod);
}

static void unload_kernels(lw_cuda_module *mod) { lw_cuda_unload(&g_cu, mod); }

static const tl_rig_device g_dev = {&g_cu, &g_blas, "gpu", load_kernels, unload_kernels, true};

/* ---- tiny random models ------------------------------------------------ */

START_TEST(tiny_models_match_the_cpu)
{
    lw_model_config c = _i == 0 ? tl_tiny_gemma3_config(4) : tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, c, 31 + (uint64_t)_i);
    tl_rig_check_model(&r);
    tl_rig_check_pack(&r, 3, 0, 0, 1e-4);   /* a micro-batch of 3 as one packed pass */
    tl_rig_check_pack(&r, 3, 0, 3, 1e-4);   /* each with its own deep prefix of 3 */
    tl_rig_check_bf16(&r, 6e-2);         /* training through bf16 weights, against the fp32 CPU */
    tl_rig_close(&r);
}
END_TEST

START_TEST(tiny_gemma_with_adapters_matches_the_cpu)
{
    tl_rig r;
    tl_rig_open_tiny(&r, &g_dev, tl_tiny_gemma3_config(4), 31);
    tl_rig_check_adapter_series(&r, 1e-3);
    tl_rig_check_pack(&r, 3, TL_LORA_ALL, 0, 1e-3);   /* packed, with LoRA on every target */
    tl_rig_check_pack(&r, 3, TL_LORA_QV, 2, 1e-3);    /* and LoRA with a prefix of 2 each */
    tl_rig_check_model(&r);   /* and without, on the pass that now holds prefix rows */
    tl_rig_close(&r);
}
END_TEST

/* ---- the bf16 input-gradient product ------------------------------------------ */

/* lw_cublas_matmul_dx_bf16 alone: dx[T, in] (+)= dy[T, out] @ w[out, in]
 * with dy and w uploaded as bf16, against the same product in double over
 * the bf16-rounded values (only the order of the fp32 sums differs): within
 * 1e-5 x max(1, max |cpu|), written (accumulate 0) and added to a random dx
 * (accumulate 1). Odd sizes, so no tile fits exactly. */
START_TEST(bf16_input_gradient_product)
{
    enum { T = 7, IN = 37, OUT = 53 };
    float dy[T * OUT], w[OUT * IN], dx0[T * IN], got[T * IN];
    double want[T * IN];
    for (int i = 0; i < T * OUT; i++) dy[i] = (float)sin(0.37 * i + 0.2) * 1.3f;
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)cos(0.11 * i) * 0.7f;
    for (int i = 0; i < T * IN; i++) dx0[i] = (float)sin(0.05 * i);
    lw_cuda_ptr d_dy, d_w, d_dx;
    OK(lw_cuda_alloc(&g_cu, sizeof dy / 2, "dy (bf16)", &d_dy));
    OK(lw_cuda_alloc(&g_cu, sizeof w / 2, "w (bf16)", &d_w));
    OK(lw_cuda_alloc(&g_cu, sizeof dx0, "dx", &d_dx));
    OK(lw_cuda_upload_bf16(&g_cu, d_dy, dy, T * OUT, "dy"));
    OK(lw_cuda_upload_bf16(&g_cu, d_w, w, OUT * IN, "w"));
    for (int accumulate = 0; accumulate <= 1; accumulate++) {
        OK(lw_cuda_upload(&g_cu, d_dx, dx0, sizeof dx0, "dx"));
        OK(lw_cublas_matmul_dx_bf16(&g_blas, d_dx, d_dy, d_w, T, IN, OUT, accumulate, "test product"));
        OK(lw_cuda_download(&g_cu, got, d_dx, sizeof got, "dx"));
        double maxabs = 1, worst = 0;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < IN; i++) {
                double sum = accumulate ? dx0[t * IN + i] : 0;
                for (int o = 0; o < OUT; o++)
                    sum += (double)lw_f32_from_bf16(lw_bf16_from_f32(dy[t * OUT + o])) *
                           lw_f32_from_bf16(lw_bf16_from_f32(w[o * IN + i]));
                want[t * IN + i] = sum;
                maxabs = fmax(maxabs, fabs(sum));
            }
        for (int i = 0; i < T * IN; i++) worst = fmax(worst, fabs(got[i] - want[i]));
        ck_assert_msg(worst <= 1e-5 * maxabs, "bf16 dx product (accumulate %d): error %.3g > 1e-5 x %.4g", accumulate,
                      worst, maxabs);
    }
    lw_cuda_free(&g_cu, d_dy), lw_cuda_free(&g_cu, d_w), lw_cuda_free(&g_cu, d_dx);
}
END_TEST

/* ---- the real receiver ------------------------------------------------------ */

START_TEST(gemma3_matches_the_cpu)
{
    lw_model *m = tl_real_or_random_model("gemma-3-270m-q4_k_m.gguf", NULL);
    /* the story prompt's head (tests/golden/forward/gemma3.txt) around 6 soft rows */
    static const int before[] = {2, 14946, 3324, 496, 990}, after[] = {236764, 528, 496};
    tl_prompt_ids w = {before, after, 5, 3, 6, 1944, 9744, 684};
    tl_rig r;
    tl_rig_open(&r, &g_dev, m, &w, 1e-3);
    tl_rig_check_model(&r);
    tl_rig_check_adapters(&r, TL_LORA_ALL, 0.2f, 3, 2e-3);
    tl_rig_check_pack(&r, 4, 0, 0, 1e-3);
    tl_rig_check_pack(&r, 4, 0, 3, 2e-3);
    tl_rig_close(&r);
}
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_receiver_pass_gpu", &g_cu, &g_blas)) return 1;
    fprintf(stderr, "GPU: %s, sm_%d; %s; NVRTC %s\n", g_cu.name, lw_cuda_arch(&g_cu), g_blas.lib_name,
            lw_nvrtc_version());
    Suite *s = suite_create("receiver_pass_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, tiny_models_match_the_cpu, 0, 2);   /* _i: 0 Gemma-like, 1 Llama-like */
    tcase_add_test(tc, tiny_gemma_with_adapters_matches_the_cpu);
    tcase_add_test(tc, bf16_input_gradient_product);
    tcase_add_test(tc, gemma3_matches_the_cpu);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
