/* LWC_RANDOM_WEIGHTS (runtime/model/random_weights.h): random weights of the
 * manifest's shapes and a byte tokenizer, so the GPU machine can time the
 * real shapes without the model files. Checks the one reader of the
 * environment (lw_load_options_from_env), the loaders under the options it
 * gives, that 30 layers of SmolLM2-shaped random weights give finite
 * logits, and lw info / eval / bench end to end on the stories260K ->
 * SmolLM2-135M pair. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lw_cli.h"
#include "manifest.h"
#include "model.h"
#include "random_weights.h"
#include "tokenizer.h"

/* The load options the command layer would set for LWC_RANDOM_WEIGHTS=seed
 * (NULL: unset), read from the environment as lw_main reads it. */
static lw_load_options random_mode(const char *seed)
{
    if (seed) setenv("LWC_RANDOM_WEIGHTS", seed, 1);
    else unsetenv("LWC_RANDOM_WEIGHTS");
    unsetenv("LWC_IGNORE_STOP");
    lw_load_options o;
    ck_assert_msg(lw_load_options_from_env(&o) == LW_OK, "%s", lw_last_error());
    unsetenv("LWC_RANDOM_WEIGHTS");
    return o;
}

/* A config that names files that are not there. */
static lw_model_config nowhere(lw_load_options load)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    c.tokenizer_kind = LW_TOKENIZER_GGUF;
    snprintf(c.tokenizer_path, sizeof c.tokenizer_path, "/nonexistent/tok.gguf");
    c.load = load;
    return c;
}

static lw_manifest stories_pair(void)
{
    lw_manifest m;
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &m) == LW_OK, "%s",
                  lw_last_error());
    return m;
}

START_TEST(byte_tokenizer_maps_bytes)
{
    lw_model_config c = nowhere(random_mode("5"));
    lw_tokenizer *t;
    ck_assert_int_eq(lw_config_load_tokenizer(&c, &t), LW_OK);
    int *ids, n;
    ck_assert_int_eq(lw_tokenizer_encode(t, "Hi\n\xff", 4, true, &ids, &n), LW_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(ids[0], 'H' + LW_BYTE_TOKEN_OFFSET);
    ck_assert_int_eq(ids[2], '\n' + LW_BYTE_TOKEN_OFFSET);
    ck_assert_int_eq(ids[3], 255 + LW_BYTE_TOKEN_OFFSET);
    ck_assert_int_lt(ids[3], lw_tokenizer_vocab_size(t));
    /* one character per id, whatever the id: a relay is as long as its tokens */
    int more[] = {ids[0], ids[1], ids[2], ids[3], 0, 40000};
    char *text;
    ck_assert_int_eq(lw_tokenizer_decode(t, more, 6, &text), LW_OK);
    ck_assert_str_eq(text, "Hi\n???");
    ck_assert_int_eq(lw_tokenizer_piece_id(t, "a"), 'a' + LW_BYTE_TOKEN_OFFSET);
    ck_assert_int_eq(lw_tokenizer_piece_id(t, "<|im_end|>"), -1);
    ck_assert_int_eq(lw_tokenizer_bos_id(t), -1);
    free(ids), free(text);
    lw_tokenizer_free(t);
}
END_TEST

START_TEST(off_unless_set_and_bad_seed_refused)
{
    lw_load_options o = random_mode(NULL);
    ck_assert(!o.random_weights && !o.ignore_stop);
    setenv("LWC_RANDOM_WEIGHTS", "", 1);   /* empty is unset */
    ck_assert_int_eq(lw_load_options_from_env(&o), LW_OK);
    ck_assert(!o.random_weights);
    lw_model_config c = nowhere(o);
    lw_tokenizer *t;
    ck_assert_int_ne(lw_config_load_tokenizer(&c, &t), LW_OK);
    ck_assert_ptr_null(t);
    const char *bad[] = {"12x", "-1", "+3", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("LWC_RANDOM_WEIGHTS", bad[i], 1);
        ck_assert_msg(lw_load_options_from_env(&o) == LW_ERR_INVALID, "%s accepted", bad[i]);
        ck_assert_msg(strstr(lw_last_error(), "LWC_RANDOM_WEIGHTS") != NULL, "%s", lw_last_error());
    }
    /* a config the files' loader refuses is refused in random mode too */
    lw_manifest m = stories_pair();
    lw_model_config r = m.receiver;
    r.load = random_mode("2");
    r.n_kv_heads = 7;
    lw_model *model;
    ck_assert_int_eq(lw_config_load_model(&r, &model), LW_ERR_INVALID);
    ck_assert_ptr_null(model);
    ck_assert_msg(strstr(lw_last_error(), "kv heads") != NULL, "%s", lw_last_error());
    random_mode(NULL);
}
END_TEST

/* The stories260K sender: both models of a pair differ; a seed repeats. */
START_TEST(seeded_shapes_and_no_stop_tokens)
{
    lw_manifest m = stories_pair();
    lw_model_config c = m.sender;
    snprintf(c.weights_path, sizeof c.weights_path, "/nonexistent/weights.bin");
    c.load = random_mode("3");
    ck_assert(c.load.random_weights && c.load.seed == 3 && c.load.ignore_stop);
    lw_model *a, *b, *d, *other;
    ck_assert_int_eq(lw_config_load_model(&c, &a), LW_OK);
    ck_assert_int_eq(lw_config_load_model(&c, &b), LW_OK);
    ck_assert_int_eq(a->cfg.hidden, m.sender.hidden);
    ck_assert_int_eq(a->cfg.n_layers, m.sender.n_layers);
    ck_assert_int_eq(a->cfg.vocab, m.sender.vocab);
    ck_assert_int_eq(a->cfg.eos_id, -1);
    ck_assert_int_eq(a->cfg.n_stop_ids, 0);
    size_t n = (size_t)c.vocab * c.hidden;
    ck_assert(memcmp(a->token_embd, b->token_embd, n * sizeof(float)) == 0);
    c.load = random_mode("4");
    ck_assert_int_eq(lw_config_load_model(&c, &d), LW_OK);
    ck_assert(memcmp(a->token_embd, d->token_embd, n * sizeof(float)) != 0);
    c.load = random_mode("3");
    snprintf(c.name, sizeof c.name, "another");
    ck_assert_int_eq(lw_config_load_model(&c, &other), LW_OK);
    ck_assert(memcmp(a->token_embd, other->token_embd, n * sizeof(float)) != 0);
    /* embeddings at the manifest's RMS (no embedding scale in llama2.c) */
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)a->token_embd[i] * a->token_embd[i];
    ck_assert_double_eq_tol(sqrt(ss / (double)n), c.embed_rms, 0.02 * c.embed_rms);
    lw_model_free(a), lw_model_free(b), lw_model_free(d), lw_model_free(other);
    random_mode(NULL);
}
END_TEST

/* The real stories260K file, with LWC_IGNORE_STOP=1 and without. */
START_TEST(ignore_stop_with_real_weights)
{
    lw_manifest m = stories_pair();
    tl_require_file(m.sender.weights_path);
    m.sender.load = random_mode(NULL);
    lw_model *a, *b;
    ck_assert_msg(lw_config_load_model(&m.sender, &a) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(a->cfg.eos_id, m.sender.eos_id);
    ck_assert_int_ge(a->cfg.eos_id, 0);
    setenv("LWC_IGNORE_STOP", "1", 1);
    ck_assert_int_eq(lw_load_options_from_env(&m.sender.load), LW_OK);
    unsetenv("LWC_IGNORE_STOP");
    ck_assert(m.sender.load.ignore_stop && !m.sender.load.random_weights);
    ck_assert_int_eq(lw_config_load_model(&m.sender, &b), LW_OK);
    ck_assert_int_eq(b->cfg.eos_id, -1);
    ck_assert_int_eq(b->cfg.n_stop_ids, 0);
    ck_assert(memcmp(a->token_embd, b->token_embd, sizeof(float) * (size_t)m.sender.vocab * m.sender.hidden) == 0);
    lw_model_free(a), lw_model_free(b);
    random_mode(NULL);
}
END_TEST

/* SmolLM2-135M's shapes (30 layers): a forward of 24 rows gives finite
 * logits of a sane spread, the last row as the decode step would see it. */
START_TEST(smollm2_shapes_give_finite_logits)
{
    lw_manifest m = stories_pair();
    m.receiver.load = random_mode("1");
    lw_model *model;
    lw_state *s;
    ck_assert_msg(lw_config_load_model(&m.receiver, &model) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(model->cfg.n_layers, 30);
    ck_assert_int_eq(lw_state_alloc(model, 32, false, &s), LW_OK);
    int T = 24, V = model->cfg.vocab, ids[24];
    for (int t = 0; t < T; t++) ids[t] = LW_BYTE_TOKEN_OFFSET + "The movie was fine, ok!!"[t];
    float *logits = malloc((size_t)V * sizeof *logits);
    ck_assert_int_eq(lw_forward(model, s, &(lw_forward_args){.ids = ids, .T = T, .logits = logits,
                                                           .capture_layer = -1}), LW_OK);
    double ss = 0;
    for (int v = 0; v < V; v++) {
        ck_assert_msg(isfinite(logits[v]), "logit %d is %g", v, (double)logits[v]);
        ss += (double)logits[v] * logits[v];
    }
    double rms = sqrt(ss / V);
    ck_assert_msg(rms > 1e-3 && rms < 100, "logit RMS %g", rms);
    free(logits);
    lw_state_free(s);
    lw_model_free(model);
    random_mode(NULL);
}
END_TEST

/* lw info, a 2-example eval and a 2-run bench through the binary: the relay
 * writes its full --relay-tokens, as no stop token ends it. */
START_TEST(lw_runs_on_random_weights)
{
    const char *dir = tl_tmpdir("random_weights");
    char *log;
    int rc = tl_run(&log, "'%s' build --quiet '%s' -o '%s/b'", tl_out("bin/lwc"),
                    tl_src("pairs/stories260k_to_smollm2-135m.json"), dir);
    ck_assert_msg(rc == 0, "lwc build:\n%s", log);
    free(log);
    const char *data = tl_shared("data/sst2/dev.jsonl");
    tl_require_file(data);
    char env[512];
    snprintf(env, sizeof env, "cd '%s' && LWC_RANDOM_WEIGHTS=9 LWC_CACHE_DIR='%s/cache' OPENBLAS_NUM_THREADS=1 "
             "LWC_MODELS=/nonexistent b/stories260k_to_smollm2-135m/lw", dir, dir);
    rc = tl_run(&log, "%s info", env);
    ck_assert_msg(rc == 0 && strstr(log, "pair: stories260k_to_smollm2-135m"), "lw info:\n%s", log);
    free(log);
    /* a bad seed is refused before the command runs, naming the variable */
    rc = tl_run(&log, "cd '%s' && LWC_RANDOM_WEIGHTS=12x LWC_MODELS=/nonexistent b/stories260k_to_smollm2-135m/lw "
                "eval --method receiver-zeroshot --task sst2 --split '%s' --limit 2 --quiet", dir, data);
    ck_assert_msg(rc != 0 && strstr(log, "LWC_RANDOM_WEIGHTS='12x'"), "a bad seed ran (%d):\n%s", rc, log);
    free(log);
    rc = tl_run(&log, "%s eval --method receiver-zeroshot --task sst2 --split '%s' --limit 2 --quiet --json e.json",
                env, data);
    ck_assert_msg(rc == 0, "lw eval:\n%s", log);
    ck_assert_msg(strstr(log, "for timing only") != NULL, "no warning:\n%s", log);
    free(log);
    char path[512];
    snprintf(path, sizeof path, "%s/e.json", dir);
    char *json = tl_read_file(path, NULL);
    ck_assert_msg(json && strstr(json, "\"n\": 2,"), "%s", json ? json : "no e.json");
    free(json);
    rc = tl_run(&log, "%s bench --task sst2 --split '%s' --limit 2 --runs 2 --warmup 0 --batch 1 --relay-tokens 5 "
                "--methods bridge,text-relay "
                "--quiet --json b.json", env, data);
    ck_assert_msg(rc == 0, "lw bench:\n%s", log);
    free(log);
    snprintf(path, sizeof path, "%s/b.json", dir);
    json = tl_read_file(path, NULL);
    ck_assert_msg(json != NULL, "no b.json");
    const char *relay = strstr(json, "\"method\": \"text-relay\"");
    ck_assert_msg(relay != NULL, "%s", json);
    const char *ct = strstr(relay, "\"content_tokens\":");
    ck_assert_msg(ct && atof(ct + strlen("\"content_tokens\":")) == 5.0, "relay did not write 5 tokens: %.300s",
                  ct ? ct : relay);
    free(json);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("random_weights");
    TCase *tc = tcase_create("core");
    /* lw_runs_on_random_weights builds a pair (NVRTC included) and runs eval and
     * bench on a random 135M model: about 30 s of CPU, which a loaded 2-core
     * machine stretched past 60 s of wall time. */
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, byte_tokenizer_maps_bytes);
    tcase_add_test(tc, off_unless_set_and_bad_seed_refused);
    tcase_add_test(tc, seeded_shapes_and_no_stop_tokens);
    tcase_add_test(tc, ignore_stop_with_real_weights);
    tcase_add_test(tc, smollm2_shapes_give_finite_logits);
    tcase_add_test(tc, lw_runs_on_random_weights);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
