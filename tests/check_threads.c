/* Threads (issue 19, item 3): every result is BIT-IDENTICAL for 1, 2 and 3
 * threads (runtime/ops/cpu_threads.h says how the work is split so that it
 * can be). Held with memcmp, never a tolerance: the fp32, bf16 and q8
 * products (forward and dX/dW backward, every CPU path this machine runs,
 * one row and many), attention forward and backward by head, a tiny
 * model's logits and its gradient wrt the input embeddings (fp32 and bf16
 * weights, a grouped-query llama and a windowed gemma3 with one kv head),
 * and `lw train --threads N` on the tiny pair: the two-step training log
 * (timing fields aside) and the trained bridge's file.
 *
 * The split threshold is set to 0 (lw_cpu_split_threshold_set) so that the
 * tiny shapes here split as the real models' do, and each case checks that
 * work really went to the workers (lw_threads_parallel_jobs): a test that
 * passes because nothing was split would prove nothing. */
#include "testlib.h"
#include "thread_same.h"
#include "cmd_common.h"
#include "cpu_threads.h"
#include "lw_cli.h"
#include "model.h"
#include "narrow_weights.h"
#include "ops.h"
#include "random_weights.h"
#include "rng.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_COUNTS = 3 };
static const int COUNTS[N_COUNTS] = {1, 2, 3};

/* ---- a model: logits and the gradient wrt its input embeddings ----------- */

enum { T = 11 };

/* The tiny families, widened so that their products have blocks to split
 * (the fp32 products split outputs of 64 and more). */
static lw_model_config model_config(int i)
{
    lw_model_config c = i == 0 ? tl_tiny_llama_config(LW_WEIGHTS_GGUF) : tl_tiny_gemma3_config(4);
    c.hidden = 64;
    c.ffn = 96;
    c.vocab = 203;
    c.head_dim = 16;
    if (i == 1) c.n_kv_heads = 1; /* Gemma-3-270M's layout: every query head on one kv head */
    return c;
}

static lw_model *model_of(const lw_model_config *c, bool bf16)
{
    lw_model *m = NULL;
    ck_assert_msg(lw_model_init_random(c, 7, &m) == LW_OK, "%s", lw_last_error());
    if (bf16) ck_assert_msg(lw_model_narrow_bf16(m, true) == LW_OK, "%s", lw_last_error());
    return m;
}

/* logits [T, V] and dX [T, hidden] of the cross-entropy over fixed targets */
static void logits_and_grad(const lw_model *m, const float *x, float *logits, float *dx)
{
    int V = m->cfg.vocab;
    lw_state *s = NULL;
    lw_backward_scratch *g = NULL;
    ck_assert_int_eq(lw_state_alloc(m, T, true, &s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(m, T, &g), LW_OK);
    float *probs = calloc((size_t)T * V, sizeof(float)), *dl = calloc((size_t)T * V, sizeof(float));
    int targets[T];
    for (int t = 0; t < T; t++) targets[t] = (7 * t + 3) % V;
    lw_forward_args a = {.embeds = x, .T = T, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_msg(lw_forward(m, s, &a) == LW_OK, "%s", lw_last_error());
    cross_entropy_forward(probs, logits, targets, T, V);
    cross_entropy_backward(dl, probs, targets, T, V, 1.0f);
    ck_assert_msg(lw_model_backward(m, s, g, dl, dx) == LW_OK, "%s", lw_last_error());
    free(probs), free(dl);
    lw_backward_scratch_free(g);
    lw_state_free(s);
}

START_TEST(model_logits_and_gradient_identical)
{
    lw_cpu_split_threshold_set(0);
    lw_model_config c = model_config(_i / 2);
    bool bf16 = _i % 2;
    lw_model *m = model_of(&c, bf16);
    size_t nl = (size_t)T * c.vocab, nx = (size_t)T * c.hidden;
    float *x = tl_rand_floats(nx, 41);
    float *logits[N_COUNTS], *dx[N_COUNTS];
    long jobs = lw_threads_parallel_jobs();
    for (int k = 0; k < N_COUNTS; k++) {
        tl_use_threads(COUNTS[k]);
        logits[k] = calloc(nl, sizeof(float));
        dx[k] = calloc(nx, sizeof(float));
        logits_and_grad(m, x, logits[k], dx[k]);
        char what[96];
        snprintf(what, sizeof what, "%s %s logits", c.name, bf16 ? "bf16" : "fp32");
        if (k > 0) tl_assert_same(logits[k], logits[0], nl, what, COUNTS[k]);
        snprintf(what, sizeof what, "%s %s dX", c.name, bf16 ? "bf16" : "fp32");
        if (k > 0) tl_assert_same(dx[k], dx[0], nx, what, COUNTS[k]);
    }
    double norm = 0;
    for (size_t i = 0; i < nx; i++) norm += (double)dx[0][i] * dx[0][i];
    ck_assert_msg(norm > 0 && isfinite(norm), "%s: the gradient is zero or not finite", c.name);
    ck_assert_msg(lw_threads_parallel_jobs() > jobs, "%s: nothing was split", c.name);
    for (int k = 0; k < N_COUNTS; k++) free(logits[k]), free(dx[k]);
    free(x);
    lw_model_free(m);
    lw_threads_shutdown();
}
END_TEST

/* ---- lw train --threads N ------------------------------------------------- */

/* The training log without its clock fields ("examples_per_s", "elapsed_s"). */
static char *log_without_times(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    char *text = tl_read_file(path, NULL);
    ck_assert_msg(text != NULL, "no %s", path);
    const char *keys[] = {"\"examples_per_s\"", "\"elapsed_s\""};
    for (int k = 0; k < 2; k++)
        for (char *p = strstr(text, keys[k]); p; p = strstr(p, keys[k])) {
            char *end = p + strlen(keys[k]);
            while (*end && *end != ',' && *end != '}') end++;
            memmove(p, end, strlen(end) + 1);
        }
    return text;
}

START_TEST(train_identical_for_any_thread_count)
{
    lw_cpu_split_threshold_set(0);
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/tiny-qwen2_to_tiny-qwen3.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    const char *dir = tl_tmpdir("threads_train");
    char train[600], cache[700];
    snprintf(train, sizeof train, "%s/train.jsonl", tl_shared("data/sst2"));
    tl_require_file(train);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    char *logs[N_COUNTS], *bridges[N_COUNTS];
    size_t bridge_len[N_COUNTS];
    long jobs = lw_threads_parallel_jobs();
    for (int k = 0; k < N_COUNTS; k++) {
        char out[700], threads[8], path[1024];
        snprintf(out, sizeof out, "%s/run-%d", dir, COUNTS[k]);
        snprintf(threads, sizeof threads, "%d", COUNTS[k]);
        char *argv[] = {"--task", "sst2", "--train", train, "--limit-train", "8", "--steps", "2", "--batch", "4",
                        "--lr", "1e-3", "--warmup", "1", "--quiet", "--force", "--out", out, "--cache-dir", cache,
                        "--threads", threads};
        char *err = NULL;
        int rc = tl_run_command(lw_cmd_train, &pair, &err, (int)(sizeof argv / sizeof argv[0]), argv);
        ck_assert_msg(rc == 0, "lw train --threads %d: rc %d\n%s", COUNTS[k], rc, err);
        free(err);
        ck_assert_int_eq(lw_threads_get(), COUNTS[k]);
        logs[k] = log_without_times(out);
        snprintf(path, sizeof path, "%s/final/bridge.safetensors", out);
        bridges[k] = tl_read_file(path, &bridge_len[k]);
        ck_assert_msg(bridges[k] != NULL, "no %s", path);
        if (k > 0) {
            ck_assert_msg(!strcmp(logs[k], logs[0]), "training log, %d threads:\n%s\n1 thread:\n%s", COUNTS[k],
                          logs[k], logs[0]);
            ck_assert_msg(bridge_len[k] == bridge_len[0] && !memcmp(bridges[k], bridges[0], bridge_len[0]),
                          "the bridge trained on %d threads differs from 1 thread's", COUNTS[k]);
        }
    }
    ck_assert_msg(strstr(logs[0], "\"loss\"") && strchr(strchr(logs[0], '\n') + 1, '\n'), "two steps logged:\n%s",
                  logs[0]);
    ck_assert_msg(lw_threads_parallel_jobs() > jobs, "lw train: nothing was split");
    for (int k = 0; k < N_COUNTS; k++) free(logs[k]), free(bridges[k]);
    lw_threads_shutdown();
}
END_TEST

START_TEST(bad_thread_counts_are_refused)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/tiny-qwen2_to_tiny-qwen3.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    char *argv[] = {"--threads", "0", "--task", "sst2", "--data", "d"};
    char *err = NULL;
    ck_assert_int_eq(tl_run_command(lw_cmd_train, &pair, &err, 6, argv), 2);
    ck_assert_msg(err && strstr(err, "--threads") && strstr(err, "1..64"), "%s", err);
    free(err);
    setenv("LWC_THREADS", "two", 1);
    ck_assert(!lw_threads_apply("eval", 0));
    setenv("LWC_THREADS", "3", 1);
    ck_assert(lw_threads_apply("eval", 0));
    ck_assert_int_eq(lw_threads_get(), 3);
    ck_assert(lw_threads_apply("eval", 2)); /* the option wins over the variable */
    ck_assert_int_eq(lw_threads_get(), 2);
    unsetenv("LWC_THREADS");
    ck_assert(lw_threads_apply("eval", 0));
    ck_assert_int_eq(lw_threads_get(), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, model_logits_and_gradient_identical, 0, 4);
    tcase_add_test(tc, train_identical_for_any_thread_count);
    tcase_add_test(tc, bad_thread_counts_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
