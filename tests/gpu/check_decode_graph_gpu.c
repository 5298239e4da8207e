/* A decode step captured once as a CUDA graph and replayed (gpu_decode.c)
 * against the same step without a graph and against today's decode
 * (lw_gpu_forward of one row at pos0). Needs a GPU: run by `make
 * check-gpu` and scripts/device-checks.sh; without one it stops with "no
 * CUDA device". Host side: tests/check_plan_cuda_host.c runs the
 * graph-ready step over the kernels' twins (where it falls back: the twin
 * has no graphs).
 *
 * Each model runs a 7-row prompt with lw_gpu_forward on three states, then
 * STEPS decode steps on each: today's decode, a decoder without a graph
 * (the launches issued every step: the fallback), and a decoder with one
 * (captured at its first step, replayed at every step). Held:
 *   - the graph was captured (d->why says why not) and replayed every step;
 *   - its logits are bit for bit the fallback's (the same launches, the
 *     same cuBLAS calls, recorded once);
 *   - and today's within 1e-5 x max |logit| (the attention kernel with the
 *     offset read off the device is held bit for bit to attention_forward
 *     in check_kernels_gpu; this allows cuBLAS a different algorithm on
 *     another stream), with the same greedy tokens;
 *   - the caches the steps wrote: the graph's and the fallback's identical.
 * Models: the tiny Gemma-3-like (window 4, so the steps pass it) and
 * Llama-like, the Gemma-like with bf16 weights, and Gemma-3-270M (or random
 * weights of its shape), where the step's time with and without the graph
 * is printed (wall clock, device synced: a note, not a result). */
#include "testlib.h"
#include "gpu_suite.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "model.h"
#include "random_weights.h"
#include "real_models.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static lw_cuda g_cu;
static lw_cublas g_blas;

enum { PROMPT = 7, STEPS = 24 };

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void check_model(lw_model *m, lw_weight_dtype dtype)
{
    const lw_model_config *c = &m->cfg;
    int V = c->vocab, max_tokens = PROMPT + STEPS + 1;
    lw_cuda_module mod;
    tl_gpu_model_kernels(&g_cu, c, 8, "model", &mod);
    lw_gpu_model *g;
    OK(lw_gpu_model_upload_dtype(&g_cu, &g_blas, &mod, m, dtype, &g));
    lw_gpu_state *s[3];
    for (int i = 0; i < 3; i++) OK(lw_gpu_state_alloc(g, max_tokens, &s[i]));
    int ids[PROMPT + STEPS];
    for (int t = 0; t < PROMPT + STEPS; t++) ids[t] = (7 * t + 3) % V;
    float *lg[3];
    for (int i = 0; i < 3; i++) ck_assert_ptr_nonnull(lg[i] = calloc((size_t)V, sizeof(float)));
    for (int i = 0; i < 3; i++) {
        lw_forward_args p = {.ids = ids, .T = PROMPT, .logits = lg[i], .capture_layer = -1};
        OK(lw_gpu_forward(g, s[i], &p));
    }
    lw_gpu_decoder *plain, *graph;
    OK(lw_gpu_decoder_open(g, s[1], false, &plain));
    OK(lw_gpu_decoder_open(g, s[2], true, &graph));
    double us[2] = {0, 0};
    for (int k = 0; k < STEPS; k++) {
        int id = ids[PROMPT + k];
        lw_forward_args step = {.ids = &ids[PROMPT + k], .T = 1, .pos0 = PROMPT + k, .logits = lg[0],
                                .capture_layer = -1};
        OK(lw_gpu_forward(g, s[0], &step));
        double t0 = now_us();
        OK(lw_gpu_decoder_step(plain, id, lg[1]));
        double t1 = now_us();
        OK(lw_gpu_decoder_step(graph, id, lg[2]));
        double t2 = now_us();
        if (k > 0) us[0] += t1 - t0, us[1] += t2 - t1;   /* the first step captures */
        ck_assert_msg(graph->graphed, "%s: no graph was captured: %s", c->name, graph->why);
        ck_assert_msg(!memcmp(lg[1], lg[2], (size_t)V * sizeof(float)),
                      "%s step %d: the graph's logits differ from the same launches issued", c->name, k);
        double maxabs = 0, worst = 0;
        for (int v = 0; v < V; v++) {
            ck_assert_msg(isfinite(lg[2][v]), "%s step %d: logit %d is %g", c->name, k, v, (double)lg[2][v]);
            maxabs = fmax(maxabs, fabs(lg[0][v]));
            worst = fmax(worst, fabs((double)lg[2][v] - lg[0][v]));
        }
        ck_assert_msg(worst <= 1e-5 * maxabs, "%s step %d: graph vs today's decode: error %.3g of max %.4g", c->name,
                      k, worst, maxabs);
        ck_assert_int_eq(argmax(lg[2], V), argmax(lg[0], V));
        ck_assert_int_eq(s[2]->n_cached, s[0]->n_cached);
    }
    ck_assert_int_eq(graph->replays, STEPS);
    ck_assert_int_eq(plain->issued, STEPS);
    size_t cache = (size_t)c->n_layers * max_tokens * c->n_kv_heads * c->head_dim * sizeof(float);
    float *kc[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(kc[i] = malloc(cache));
        OK(lw_cuda_download(&g_cu, kc[i], s[1 + i]->key_cache, cache, "keys"));
    }
    ck_assert_msg(!memcmp(kc[0], kc[1], cache), "%s: the graph's cache rows differ from the issued steps'", c->name);
    fprintf(stderr, "%s (%s): %d decode steps, graph replayed; per step %.1f us issued, %.1f us replayed\n", c->name,
            lw_gpu_dtype_name(dtype), STEPS, us[0] / (STEPS - 1), us[1] / (STEPS - 1));
    free(kc[0]), free(kc[1]);
    lw_gpu_decoder_close(plain);
    lw_gpu_decoder_close(graph);
    for (int i = 0; i < 3; i++) lw_gpu_state_free(s[i]), free(lg[i]);
    lw_gpu_model_free(g);
    lw_cuda_unload(&g_cu, &mod);
    lw_model_free(m);
}

static lw_model *tiny(int i)
{
    lw_model_config c = i == 0 ? tl_tiny_gemma3_config(4) : tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, 17 + (uint64_t)i, &m));
    return m;
}

START_TEST(tiny_graph_replays_the_step) { check_model(tiny(_i), LW_DTYPE_F32); }
END_TEST

START_TEST(tiny_bf16_graph_replays_the_step) { check_model(tiny(0), LW_DTYPE_BF16); }
END_TEST

START_TEST(gemma3_graph_replays_the_step)
{
    check_model(tl_real_or_random_model("gemma-3-270m-q4_k_m.gguf", NULL), LW_DTYPE_F32);
}
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_decode_graph_gpu", &g_cu, &g_blas)) return 1;
    fprintf(stderr, "GPU: %s, sm_%d; %s\n", g_cu.name, lw_cuda_arch(&g_cu), g_blas.lib_name);
    Suite *s = suite_create("decode_graph_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, tiny_graph_replays_the_step, 0, 2);
    tcase_add_test(tc, tiny_bf16_graph_replays_the_step);
    tcase_add_test(tc, gemma3_graph_replays_the_step);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
