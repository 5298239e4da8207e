/* The equal-work benchmark (lw/bench.h): its statistics and payload
 * arithmetic on known values, and a tiny end-to-end run on synthetic
 * stories260K-sized models (random weights, the tok512 tokenizer): the
 * bridge path gives the same label scores as lw_trainer_score on the
 * sender's states (so the benchmark times the work eval does), and the
 * JSON of a 2-run bench of all four methods holds every field with every
 * stage time above zero. */
#include "testlib.h"
#include "bench.h"
#include "bridge.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "lw_cli.h"
#include "model.h"
#include "random_weights.h"
#include "tokenizer.h"
#include "train.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

START_TEST(median_min_max_of_known_arrays)
{
    double odd[] = {3.0, 1.0, 2.0, 9.0, -4.0};
    lw_bench_stats s = lw_bench_stats_of(odd, 5);
    ck_assert_double_eq(s.median, 2.0);
    ck_assert_double_eq(s.min, -4.0);
    ck_assert_double_eq(s.max, 9.0);
    ck_assert_int_eq(s.n, 5);
    ck_assert_double_eq(odd[0], 3.0);  /* input left in its order */
    ck_assert_double_eq(odd[4], -4.0);
    double even[] = {4.0, 1.0, 3.0, 2.0};
    s = lw_bench_stats_of(even, 4);
    ck_assert_double_eq(s.median, 2.5);
    ck_assert_double_eq(s.min, 1.0);
    ck_assert_double_eq(s.max, 4.0);
    double one[] = {0.125};
    s = lw_bench_stats_of(one, 1);
    ck_assert(s.median == 0.125 && s.min == 0.125 && s.max == 0.125);
    s = lw_bench_stats_of(NULL, 0);
    ck_assert(s.n == 0 && s.median == 0.0 && s.min == 0.0 && s.max == 0.0);
}
END_TEST

START_TEST(payload_arithmetic)
{
    /* the default pair: 16 soft tokens of Gemma-3-270M's 640 */
    ck_assert_uint_eq(lw_bench_soft_bytes(16, 640, 4), 40960);
    ck_assert_uint_eq(lw_bench_soft_bytes(16, 640, 2), 20480);
    ck_assert_uint_eq(lw_bench_soft_bytes(1, 1, 4), 4);
    ck_assert_uint_eq(lw_bench_soft_bytes(0, 640, 4), 0);
    ck_assert_uint_eq(lw_bench_soft_bytes(16, -1, 4), 0);
    ck_assert_uint_eq(lw_bench_soft_bytes(16, 640, 0), 0);
    if (SIZE_MAX <= UINT64_MAX)  /* 2^31 * 2^31 * 4 = 2^64 does not fit */
        ck_assert_uint_eq(lw_bench_soft_bytes(INT_MAX, INT_MAX, 5), 0);
}
END_TEST

START_TEST(method_and_stage_names)
{
    for (int m = 0; m < LW_BENCH_N_METHODS; m++) {
        ck_assert_int_eq(lw_bench_method_parse(lw_bench_method_name((lw_bench_method)m)), m);
        ck_assert(lw_bench_uses_stage((lw_bench_method)m, LW_STAGE_TOKENIZE));
    }
    ck_assert_int_eq(lw_bench_method_parse("bridges"), -1);
    ck_assert(lw_bench_uses_stage(LW_BENCH_BRIDGE, LW_STAGE_BRIDGE));
    ck_assert(!lw_bench_uses_stage(LW_BENCH_BRIDGE, LW_STAGE_GENERATE));
    ck_assert(lw_bench_uses_stage(LW_BENCH_TEXT_RELAY, LW_STAGE_GENERATE));
    ck_assert(!lw_bench_uses_stage(LW_BENCH_TEXT_RELAY, LW_STAGE_SENDER_FORWARD));
    ck_assert(!lw_bench_uses_stage(LW_BENCH_SENDER_ZEROSHOT, LW_STAGE_RECEIVER_SCORE));
    ck_assert(!lw_bench_uses_stage(LW_BENCH_RECEIVER_ZEROSHOT, LW_STAGE_SENDER_FORWARD));
}
END_TEST

/* ---- synthetic pair ---------------------------------------------------- */
enum { VOCAB = 512, SOFT = 4, LAYER = 3, RELAY = 6 };

static lw_model_config sender_config(void)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "synthetic-sender");
    c.family = LW_FAMILY_LLAMA;
    c.weights_format = LW_WEIGHTS_LLAMA2C;
    c.hidden = 64, c.n_layers = 5, c.n_heads = 8, c.n_kv_heads = 4, c.head_dim = 8, c.ffn = 172;
    c.activation = LW_ACT_SILU;
    c.norm = LW_NORM_RMSNORM;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.vocab = VOCAB, c.context = 512;
    c.chat_template = LW_CHAT_NONE;
    c.bos_id = 1, c.eos_id = 2, c.pad_id = -1;
    return c;
}

static lw_model_config receiver_config(void)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "synthetic-receiver");
    c.family = LW_FAMILY_GEMMA3;
    c.weights_format = LW_WEIGHTS_GGUF;
    c.hidden = 48, c.n_layers = 3, c.n_heads = 4, c.n_kv_heads = 1, c.head_dim = 16, c.ffn = 96;
    c.activation = LW_ACT_GELU_TANH;
    c.norm = LW_NORM_RMSNORM_GEMMA;
    c.norm_eps = 1e-6f;
    c.rope_base = 1000000.0f, c.rope_base_local = 10000.0f;
    c.sliding_window = 8, c.global_every = 3;
    c.qk_norm = c.post_norms = c.scale_embeddings = c.tied_embeddings = true;
    c.vocab = VOCAB, c.context = 512;
    c.embed_rms = 1.0f;
    c.chat_template = LW_CHAT_NONE;
    c.bos_id = 1, c.eos_id = 2, c.pad_id = -1;
    return c;
}

static const char TASK_JSON[] =
    "{\"name\": \"sst2\", \"primer\": \"Was the story happy?\", \"answer_prompt\": \"Answer:\","
    " \"labels\": [{\"label\": \"negative\", \"verbalizer\": \" sad and grumpy\"},"
    " {\"label\": \"positive\", \"verbalizer\": \" happy\"}]}";

static const char *const TEXTS[] = {"Lily went to the park and played with her dog.",
                                    "The little boy was sad because his toy broke.",
                                    "Once upon a time there was a big red ball."};

typedef struct {
    lw_model *sender, *receiver;
    lw_tokenizer *tok;
    lw_task task;
    lw_bridge bridge;
    lw_bench *bench;
} fixture;

static void fixture_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    lw_model_config sc = sender_config(), rc = receiver_config();
    ck_assert_int_eq(lw_model_init_random(&sc, 11, &f->sender), LW_OK);
    ck_assert_int_eq(lw_model_init_random(&rc, 12, &f->receiver), LW_OK);
    const char *tok = tl_shared("models/stories260k/tok512.bin");
    tl_require_file(tok);
    ck_assert_int_eq(lw_tokenizer_load(LW_TOKENIZER_LLAMA2C, tok, &f->tok), LW_OK);
    ck_assert_int_eq(lw_task_parse(TASK_JSON, strlen(TASK_JSON), "sst2.json", &f->task), LW_OK);
    lw_bridge_config bc = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = SOFT, .source_layer = LAYER, .width = 32,
                           .depth = 1, .heads = 4, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
    ck_assert_int_eq(lw_bridge_create(&f->bridge, &bc, sc.hidden, rc.hidden, rc.embed_rms), LW_OK);
    lw_bridge_init(&f->bridge, 5);
    lw_bench_setup setup = {.sender = f->sender, .receiver = f->receiver, .sender_tok = f->tok,
                            .receiver_tok = f->tok, .task = &f->task, .bridge = &f->bridge,
                            .source_layer = LAYER, .relay_tokens = RELAY};
    ck_assert_msg(lw_bench_open(&setup, &f->bench) == LW_OK, "%s", lw_last_error());
}

static void fixture_close(fixture *f)
{
    lw_bench_close(f->bench);
    lw_bridge_free(&f->bridge);
    lw_task_free(&f->task);
    lw_tokenizer_free(f->tok);
    lw_model_free(f->sender);
    lw_model_free(f->receiver);
}

/* The bench's bridge path against eval's: the sender's layer-LAYER states
 * of the text (no template: the first row, the attention sink, dropped, as
 * the sender cache does) scored by lw_trainer_score. */
START_TEST(bridge_scores_match_the_trainer)
{
    fixture f;
    fixture_open(&f);
    const char *text = TEXTS[1];
    int *ids = NULL, n = 0;
    ck_assert_int_eq(lw_tokenizer_encode(f.tok, text, strlen(text), false, &ids, &n), LW_OK);
    ck_assert_int_gt(n, 2);
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(f.sender, 64, false, &s), LW_OK);
    float *x = malloc((size_t)n * f.sender->cfg.hidden * sizeof *x);
    lw_forward_args a = {.ids = ids, .T = n, .capture_layer = LAYER, .hidden_out = x};
    ck_assert_int_eq(lw_forward(f.sender, s, &a), LW_OK);
    lw_receiver_layout L;
    ck_assert_int_eq(lw_receiver_layout_build(&f.task, LW_CHAT_NONE, f.tok, SOFT, VOCAB, &L), LW_OK);
    ck_assert_int_eq(L.verb_len[0] > 1, 1);  /* the continuation path is exercised */
    lw_trainer tr;
    ck_assert_int_eq(lw_trainer_create(&tr, f.receiver, &L, &f.bridge, 0.0f), LW_OK);
    double want[2], got[2], t[LW_STAGE_COUNT] = {0};
    ck_assert_int_eq(lw_trainer_score(&tr, x + f.sender->cfg.hidden, n - 1, want), LW_OK);
    lw_bench_traffic traffic;
    ck_assert_int_eq(lw_bench_example(f.bench, LW_BENCH_BRIDGE, text, got, t, &traffic), LW_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert(isfinite(got[k]) && got[k] < 0.0);
        ck_assert_msg(fabs(got[k] - want[k]) < 1e-4 * (1.0 + fabs(want[k])), "label %d: bench %g, trainer %g", k,
                      got[k], want[k]);
    }
    ck_assert_double_eq(traffic.payload_bytes, SOFT * 48 * 4);
    ck_assert_double_eq(traffic.content_tokens, SOFT);
    ck_assert_double_eq(traffic.prompt_tokens, lw_receiver_prefix_len(&L));
    ck_assert_double_eq(traffic.sender_tokens, n);
    for (int st = 0; st < LW_STAGE_COUNT; st++)
        ck_assert(lw_bench_uses_stage(LW_BENCH_BRIDGE, (lw_bench_stage)st) ? t[st] > 0.0 : t[st] == 0.0);
    lw_trainer_free(&tr);
    lw_receiver_layout_free(&L);
    lw_state_free(s);
    free(x);
    free(ids);
    fixture_close(&f);
}
END_TEST

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    ck_assert_msg(v && json_is_number(v), "JSON field %s missing", key);
    return json_number_value(v);
}

static void check_stats(json_t *o, const char *key, int runs)
{
    json_t *s = json_object_get(o, key);
    ck_assert_msg(s && json_is_object(s), "JSON field %s missing", key);
    double med = num(s, "median"), lo = num(s, "min"), hi = num(s, "max");
    ck_assert_msg(lo > 0.0 && lo <= med && med <= hi, "%s: median %g min %g max %g", key, med, lo, hi);
    ck_assert_int_eq((int)num(s, "n"), runs);
}

START_TEST(two_run_bench_writes_every_field)
{
    fixture f;
    fixture_open(&f);
    enum { RUNS = 2, N_BATCH = 2 };
    const int batches[N_BATCH] = {1, 2};
    lw_bench_result res[LW_BENCH_N_METHODS * N_BATCH];
    int n = 0;
    for (int m = 0; m < LW_BENCH_N_METHODS; m++)
        for (int b = 0; b < N_BATCH; b++, n++)
            ck_assert_msg(lw_bench_measure(f.bench, (lw_bench_method)m, TEXTS, 3, batches[b], RUNS, 1, &res[n]) ==
                              LW_OK,
                          "%s", lw_last_error());
    lw_bench_report rep = {.pair = "synthetic", .task = "sst2", .split = "texts", .soft_tokens = SOFT,
                           .receiver_hidden = 48, .relay_tokens = RELAY, .source_layer = LAYER, .n_results = n,
                           .results = res};
    char *text = lw_bench_to_json(&rep);
    ck_assert_ptr_nonnull(text);
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    ck_assert_msg(o != NULL, "JSON: %s", err.text);
    ck_assert_str_eq(json_string_value(json_object_get(o, "end_point")), "label scores ready");
    ck_assert(json_is_null(json_object_get(o, "checkpoint")));
    ck_assert(json_is_false(json_object_get(o, "sender_states_cached")));
    json_t *pay = json_object_get(o, "payload");
    ck_assert_int_eq((int)num(pay, "soft_bytes_fp32"), SOFT * 48 * 4);
    ck_assert_int_eq((int)num(pay, "soft_bytes_bf16"), SOFT * 48 * 2);
    json_t *results = json_object_get(o, "results");
    ck_assert_int_eq((int)json_array_size(results), n);
    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *r = json_array_get(results, i);
        int m = lw_bench_method_parse(json_string_value(json_object_get(r, "method")));
        ck_assert_int_ge(m, 0);
        int batch = (int)num(r, "batch");
        ck_assert_int_eq(batch, batches[i % N_BATCH]);
        ck_assert_int_eq((int)num(r, "runs"), RUNS);
        check_stats(r, "run_s", RUNS);
        check_stats(r, "examples_per_s", RUNS);
        if (batch == 1) check_stats(r, "latency_s", RUNS);
        else ck_assert_ptr_null(json_object_get(r, "latency_s"));
        json_t *stages = json_object_get(r, "stages_ms_per_example");
        int used = 0;
        for (int s = 0; s < LW_STAGE_COUNT; s++) {
            bool uses = lw_bench_uses_stage((lw_bench_method)m, (lw_bench_stage)s);
            json_t *st = json_object_get(stages, lw_bench_stage_name((lw_bench_stage)s));
            ck_assert_msg(uses == (st != NULL), "%s: stage %s", lw_bench_method_name(m), lw_bench_stage_name(s));
            if (uses) check_stats(stages, lw_bench_stage_name((lw_bench_stage)s), RUNS), used++;
        }
        ck_assert_int_ge(used, 2);
        json_t *tr = json_object_get(r, "traffic");
        double bytes = num(tr, "payload_bytes"), content = num(tr, "content_tokens");
        ck_assert(num(tr, "prompt_tokens") > content);
        if (m == LW_BENCH_BRIDGE) ck_assert(bytes == SOFT * 48 * 4 && content == SOFT);
        if (m == LW_BENCH_TEXT_RELAY) ck_assert(bytes > 0 && content > 0 && content <= RELAY);
        if (m == LW_BENCH_RECEIVER_ZEROSHOT || m == LW_BENCH_SENDER_ZEROSHOT) ck_assert(bytes == 0 && content > 5);
    }
    json_decref(o);
    free(text);
    fixture_close(&f);
}
END_TEST

START_TEST(bad_setup_is_refused)
{
    fixture f;
    fixture_open(&f);
    lw_bench *b = NULL;
    lw_bench_setup s = {.sender = f.sender, .receiver = f.receiver, .sender_tok = f.tok, .receiver_tok = f.tok,
                        .task = &f.task, .bridge = &f.bridge, .source_layer = 6, .relay_tokens = RELAY};
    ck_assert_int_eq(lw_bench_open(&s, &b), LW_ERR_INVALID);  /* the sender has 5 layers */
    ck_assert_ptr_null(b);
    s.source_layer = LAYER, s.receiver = f.sender;            /* the bridge feeds a 48-wide receiver */
    ck_assert_int_eq(lw_bench_open(&s, &b), LW_ERR_INVALID);
    lw_gpu_model fake;   /* never reached: the pairing is checked before any device work */
    memset(&fake, 0, sizeof fake);
    s.receiver = f.receiver, s.gpu_sender = &fake;
    ck_assert_int_eq(lw_bench_open(&s, &b), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "both models on the GPU or neither"), "%s", lw_last_error());
    ck_assert_ptr_null(b);
    lw_bench_result r;
    ck_assert_int_eq(lw_bench_measure(f.bench, LW_BENCH_BRIDGE, TEXTS, 3, 1, 0, 0, &r), LW_ERR_INVALID);
    fixture_close(&f);
}
END_TEST

/* Runs lw_cmd_bench in-process with stderr captured. */
static int run_bench(const lw_pair *pair, char **err, int argc, char **argv)
{
    return tl_run_command(lw_cmd_bench, pair, err, argc, argv);
}

/* Without a GPU, `lw bench --device cuda` stops before reading any model,
 * with exit 1 and the driver loader's own message; a device it does not
 * know is a usage error. */
START_TEST(bench_on_cuda_without_a_gpu_says_why)
{
    lw_cuda cu;
    if (lw_cuda_init(&cu, 0) == LW_OK) {
        lw_cuda_close(&cu);
        fprintf(stderr, "note: a CUDA device is present; the no-GPU message is not exercised\n");
        return;
    }
    char expected[512];
    snprintf(expected, sizeof expected, "%s", lw_last_error());
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    /* the split does not exist: reading it would be a different error */
    char *argv[] = {"--task", "sst2", "--split", "/nonexistent/dev.jsonl", "--device", "cuda", "--quiet"};
    char *err = NULL;
    ck_assert_int_eq(run_bench(&pair, &err, 7, argv), 1);
    ck_assert_msg(strstr(err, "lw bench: ") && strstr(err, expected), "stderr: %s\nexpected: %s", err, expected);
    ck_assert_msg(!strstr(err, "dev.jsonl"), "the split was read before the driver: %s", err);
    free(err);
    char *bad[] = {"--task", "sst2", "--split", "x.jsonl", "--device", "tpu"};
    ck_assert_int_eq(run_bench(&pair, &err, 6, bad), 2);
    ck_assert_msg(strstr(err, "--device takes cpu or cuda, not tpu"), "%s", err);
    free(err);
    /* bf16 weights go the same way: the driver's message, before any model */
    char *bf16[] = {"--task", "sst2", "--split", "/nonexistent/dev.jsonl", "--device", "cuda", "--dtype", "bf16",
                    "--quiet"};
    ck_assert_int_eq(run_bench(&pair, &err, 9, bf16), 1);
    ck_assert_msg(strstr(err, "lw bench: ") && strstr(err, expected), "stderr: %s\nexpected: %s", err, expected);
    free(err);
}
END_TEST

/* --dtype: fp32 or bf16 (usage errors, exit 2, before any device or file
 * is touched). bf16 is a CPU option too now (the frozen models' matrices,
 * narrow_weights.h; tests/check_dtype.c). */
START_TEST(dtype_option_is_checked)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    struct {
        char *argv[8];
        int argc;
        const char *says;
    } cases[] = {
        {{"--task", "sst2", "--split", "x.jsonl", "--device", "cuda", "--dtype", "fp16"}, 8,
         "--dtype takes fp32 or bf16, not fp16"},
        {{"--task", "sst2", "--split", "x.jsonl", "--dtype"}, 5, "--dtype"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        ck_assert_int_eq(run_bench(&pair, &err, cases[i].argc, cases[i].argv), 2);
        ck_assert_msg(strstr(err, cases[i].says), "case %zu: %s", i, err);
        free(err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, median_min_max_of_known_arrays);
    tcase_add_test(tc, payload_arithmetic);
    tcase_add_test(tc, method_and_stage_names);
    tcase_add_test(tc, bridge_scores_match_the_trainer);
    tcase_add_test(tc, two_run_bench_writes_every_field);
    tcase_add_test(tc, bad_setup_is_refused);
    tcase_add_test(tc, bench_on_cuda_without_a_gpu_says_why);
    tcase_add_test(tc, dtype_option_is_checked);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
