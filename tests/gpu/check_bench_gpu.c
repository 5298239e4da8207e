/* `lw bench --device cuda`'s model work (lw/bench_gpu.h) against the
 * CPU's, on the default pair's real models (SmolLM2-135M -> Gemma-3-270M):
 * the sender's hidden states at layer 0 (the scaled embeddings), the
 * bridge's source layer and the last layer (final-normed) over 300 rows, past one 256-row chunk, and every
 * method's label scores for the same texts through lw_bench_example with
 * the forwards on the GPU and on the CPU. Needs a GPU: run by
 * `make check-gpu`, not by `make check`.
 *
 * Tolerances: hidden states |gpu - cpu| <= 1e-3 * max |cpu| of the row
 * (fp32 products summed in another order through 20 layers, as
 * check_model_gpu); label scores (summed log-probs) within 1e-2 absolute.
 * text-relay's scores are compared only when both wrote the same text
 * (greedy ties may break either way); its scores must be finite.
 *
 * Without the model files in models/ (a device machine: they do not
 * travel) the suite runs on random weights of the pair's shapes and the
 * byte tokenizer (the load options LWC_RANDOM_WEIGHTS=1 gives, set on the
 * manifest's configs as lw_main sets them: runtime/model/random_weights.h). There a
 * relay's text is as long as its tokens whatever they are, so its scores
 * are only held finite. */
#include "testlib.h"
#include "gpu_suite.h"
#include "bench.h"
#include "bench_gpu.h"
#include "cmd_common.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "manifest.h"
#include "nvrtc_compile.h"
#include "random_weights.h"
#include "real_models.h"
#include "task.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static lw_cuda g_cu;
static lw_cublas g_blas;
static bool g_random;   /* random weights of the pair's shapes */
static lw_load_options g_load;   /* what lw_main would set: random weights, seed 1, when g_random */

static void load_kernels(const lw_model *m, int soft_tokens, lw_cuda_module *mod)
{
    tl_gpu_model_kernels(&g_cu, &m->cfg, soft_tokens, "model", mod);
}

typedef struct {
    lw_manifest man;
    lw_task task;
    lw_bridge_side side;
    lw_model *sender;
    lw_tokenizer *sender_tok;
    lw_cuda_module mod[2];
    lw_gpu_model *g[2];
} pair_rig;

static void rig_open(pair_rig *r)
{
    memset(r, 0, sizeof *r);
    OK(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), &r->man));
    r->man.sender.load = r->man.receiver.load = g_load;
    char path[4200];
    OK(lw_task_file(&r->man, NULL, "sst2", path, sizeof path));
    OK(lw_task_load(path, &r->task));
    OK(lw_bridge_side_open(&r->side, &r->man, &r->task, r->man.bridge.soft_tokens));
    lw_bridge_init(&r->side.bridge, 1);
    OK(lw_config_load_model(&r->man.sender, &r->sender));
    OK(lw_config_load_tokenizer(&r->man.sender, &r->sender_tok));
    const lw_model *m[2] = {r->sender, r->side.receiver};
    for (int i = 0; i < 2; i++) {
        load_kernels(m[i], r->man.bridge.soft_tokens, &r->mod[i]);
        OK(lw_gpu_model_upload(&g_cu, &g_blas, &r->mod[i], m[i], &r->g[i]));
    }
}

static void rig_close(pair_rig *r)
{
    for (int i = 0; i < 2; i++) {
        lw_gpu_model_free(r->g[i]);
        lw_cuda_unload(&g_cu, &r->mod[i]);
    }
    lw_tokenizer_free(r->sender_tok);
    lw_model_free(r->sender);
    lw_bridge_side_close(&r->side);
    lw_task_free(&r->task);
}

static void expect_rows_close(const char *what, const float *gpu, const float *cpu, int T, int H)
{
    for (int t = 0; t < T; t++) {
        double maxabs = 0, worst = 0;
        for (int i = 0; i < H; i++) maxabs = fmax(maxabs, fabs(cpu[(size_t)t * H + i]));
        for (int i = 0; i < H; i++) worst = fmax(worst, fabs((double)gpu[(size_t)t * H + i] - cpu[(size_t)t * H + i]));
        ck_assert_msg(worst <= 1e-3 * maxabs, "%s row %d: |gpu - cpu| %g > 1e-3 x %g", what, t, worst, maxabs);
    }
}

START_TEST(capture_matches_the_cpu_across_a_chunk)
{
    pair_rig r;
    rig_open(&r);
    enum { T = 300 };
    const lw_model_config *c = &r.sender->cfg;
    int ids[T], H = c->hidden;
    for (int t = 0; t < T; t++) ids[t] = (t * 7919 + 13) % c->vocab;
    float *gpu = malloc((size_t)T * H * sizeof(float)), *cpu = malloc((size_t)T * H * sizeof(float));
    lw_gpu_state *gs;
    lw_state *cs;
    OK(lw_gpu_state_alloc(r.g[0], 512, &gs));
    OK(lw_state_alloc(r.sender, 512, false, &cs));
    int layers[3] = {0, r.man.bridge.source_layer, c->n_layers};
    for (int i = 0; i < 3; i++) {
        OK(lw_bench_gpu_capture(r.g[0], gs, ids, T, layers[i], gpu));
        lw_state_reset(cs);
        lw_forward_args a = {.ids = ids, .T = T, .capture_layer = layers[i], .hidden_out = cpu};
        OK(lw_forward(r.sender, cs, &a));
        char what[64];
        snprintf(what, sizeof what, "layer %d", layers[i]);
        expect_rows_close(what, gpu, cpu, T, H);
    }
    ck_assert_int_ne(lw_bench_gpu_capture(r.g[0], gs, ids, T, c->n_layers + 1, gpu), LW_OK);   /* 0..n */
    lw_gpu_state_free(gs);
    lw_state_free(cs);
    free(gpu), free(cpu);
    rig_close(&r);
}
END_TEST

static const char *const TEXTS[] = {"a gripping, funny and moving film that never loses its nerve.",
                                    "the plot is thin and the jokes fall flat for two long hours."};

START_TEST(every_method_scores_as_on_the_cpu)
{
    pair_rig r;
    rig_open(&r);
    lw_bench_setup setup = {.sender = r.sender, .receiver = r.side.receiver, .sender_tok = r.sender_tok,
                            .receiver_tok = r.side.tok, .task = &r.task, .bridge = &r.side.bridge,
                            .source_layer = r.man.bridge.source_layer, .relay_tokens = 16};
    lw_bench *cpu, *gpu;
    OK(lw_bench_open(&setup, &cpu));
    setup.gpu_sender = r.g[0], setup.gpu_receiver = r.g[1];
    OK(lw_bench_open(&setup, &gpu));
    int nl = r.task.n_labels;
    double sc[8], sg[8], tc[LW_STAGE_COUNT] = {0}, tg[LW_STAGE_COUNT] = {0};
    ck_assert_int_le(nl, 8);
    for (int m = 0; m < LW_BENCH_N_METHODS; m++)
        for (int i = 0; i < 2; i++) {
            lw_bench_traffic trc, trg;
            OK(lw_bench_example(cpu, (lw_bench_method)m, TEXTS[i], sc, tc, &trc));
            OK(lw_bench_example(gpu, (lw_bench_method)m, TEXTS[i], sg, tg, &trg));
            bool same_text = !g_random && trc.payload_bytes == trg.payload_bytes &&
                             trc.content_tokens == trg.content_tokens;
            for (int k = 0; k < nl; k++) {
                ck_assert_msg(isfinite(sg[k]), "%s label %d: %g", lw_bench_method_name(m), k, sg[k]);
                if (m == LW_BENCH_TEXT_RELAY && !same_text) continue;
                ck_assert_msg(fabs(sg[k] - sc[k]) <= 1e-2, "%s text %d label %d: gpu %g, cpu %g",
                              lw_bench_method_name(m), i, k, sg[k], sc[k]);
            }
            ck_assert(trc.prompt_tokens == trg.prompt_tokens || m == LW_BENCH_TEXT_RELAY);
        }
    for (int s = 0; s < LW_STAGE_COUNT; s++) ck_assert(tg[s] > 0);
    lw_bench_close(cpu);
    lw_bench_close(gpu);
    rig_close(&r);
}
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_bench_gpu", &g_cu, &g_blas)) return 1;
    if ((g_random = !tl_default_pair_present())) {
        fprintf(stderr, "check_bench_gpu: the model files are not in models/: random weights of their shapes\n");
        g_load = (lw_load_options){.random_weights = true, .seed = 1, .ignore_stop = true};
    }
    Suite *s = suite_create("bench_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, capture_matches_the_cpu_across_a_chunk);
    tcase_add_test(tc, every_method_scores_as_on_the_cpu);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
