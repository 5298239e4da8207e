/* The model families (manifest/family.c): tiny Qwen2 and Qwen3 checkpoints
 * made by transformers (tests/golden/make_family_goldens.py) load through
 * the safetensors reader with the config the table implies and give
 * transformers' logits and `tokenizers`' ids; every Hugging Face family
 * written out as a checkpoint and read back (config.json as the loaders
 * see it, or the manifest's view of the same family) gives the logits of
 * the model written, Gemma's 1 + w norms included; the look-ups name every
 * family, and the CUDA backend's one check takes Qwen2's q/k/v bias
 * (bias_add_forward; tests/check_plan_cuda_host.c runs it on the host twin). */
#include "testlib.h"
#include "tiny_models.h"
#include "golden_text.h"
#include "family.h"
#include "gpu_model.h"
#include "model.h"
#include "random_weights.h"
#include "safetensors_write.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- forward.txt (make_forward_goldens.py's records, no hidden states) -- */

enum { MAX_RECORDS = 4 };

typedef struct {
    char name[32];
    int T, K;
    int *ids, *argmax, *vocab;
    double maxabs;
    double *logits; /* [T, K] */
} record;

static FILE *golden_in;

static void expect_word(const char *key)
{
    char w[64];
    ck_assert_int_eq(fscanf(golden_in, "%63s", w), 1);
    ck_assert_msg(strcmp(w, key) == 0, "golden: expected '%s', found '%s'", key, w);
}

static int *read_ints(int *n)
{
    ck_assert_int_eq(fscanf(golden_in, "%d", n), 1);
    int *v = malloc(sizeof(int) * (size_t)(*n > 0 ? *n : 1));
    for (int i = 0; i < *n; i++) ck_assert_int_eq(fscanf(golden_in, "%d", &v[i]), 1);
    return v;
}

static int read_records(const char *rel, record *r)
{
    golden_in = fopen(tl_src(rel), "r");
    ck_assert_msg(golden_in != NULL, "cannot open %s", tl_src(rel));
    int n = 0, window, T2, n_greedy;
    char w[64];
    while (fscanf(golden_in, "%63s", w) == 1) {
        ck_assert_str_eq(w, "prompt");
        ck_assert_int_lt(n, MAX_RECORDS);
        record *x = &r[n++];
        ck_assert_int_eq(fscanf(golden_in, "%31s window %d", x->name, &window), 2);
        expect_word("ids");
        x->ids = read_ints(&x->T);
        expect_word("argmax");
        x->argmax = read_ints(&T2);
        ck_assert_int_eq(T2, x->T);
        expect_word("maxabs");
        ck_assert_int_eq(fscanf(golden_in, "%lf", &x->maxabs), 1);
        expect_word("vocab");
        x->vocab = read_ints(&x->K);
        expect_word("logits");
        x->logits = malloc(sizeof(double) * (size_t)x->T * x->K);
        for (int i = 0; i < x->T * x->K; i++) ck_assert_int_eq(fscanf(golden_in, "%lf", &x->logits[i]), 1);
        expect_word("greedy");
        free(read_ints(&n_greedy));
        expect_word("end");
    }
    fclose(golden_in);
    ck_assert_int_gt(n, 0);
    return n;
}

static void free_records(record *r, int n)
{
    for (int i = 0; i < n; i++) {
        free(r[i].ids);
        free(r[i].argmax);
        free(r[i].vocab);
        free(r[i].logits);
    }
}

/* ---- helpers -------------------------------------------------------------- */

static float *all_logits(const lw_model *m, const int *ids, int T)
{
    lw_state *s = NULL;
    ck_assert_msg(lw_state_alloc(m, T, false, &s) == LW_OK, "%s", lw_last_error());
    float *logits = malloc(sizeof(float) * (size_t)T * m->cfg.vocab);
    lw_forward_args a = {.ids = ids, .T = T, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_msg(lw_forward(m, s, &a) == LW_OK, "%s", lw_last_error());
    lw_state_free(s);
    return logits;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static lw_model *open_golden(const char *family)
{
    char rel[64];
    snprintf(rel, sizeof rel, "tests/golden/%s", family);
    lw_model *m = NULL;
    ck_assert_msg(lw_model_open(tl_src(rel), LW_WEIGHTS_SAFETENSORS, &m) == LW_OK, "%s", lw_last_error());
    return m;
}

/* ---- the transformers checkpoints ---------------------------------------- */

static const char *const golden_families[] = {"qwen2", "qwen3"};

/* What config.json and the family table make of each checkpoint. */
START_TEST(config_comes_from_the_family_table)
{
    lw_model *q2 = open_golden("qwen2"), *q3 = open_golden("qwen3");
    const lw_model_config *a = &q2->cfg, *b = &q3->cfg;
    ck_assert_int_eq(a->family, LW_FAMILY_QWEN2);
    ck_assert(a->qkv_bias && !a->qk_norm && !a->post_norms && !a->scale_embeddings && a->tied_embeddings);
    ck_assert_int_eq(a->head_dim, 8);
    ck_assert_float_eq(a->rope_base, 50000.0f);   /* from transformers 5's rope_parameters */
    ck_assert_int_eq(b->family, LW_FAMILY_QWEN3);
    ck_assert(!b->qkv_bias && b->qk_norm && !b->post_norms && !b->scale_embeddings && !b->tied_embeddings);
    ck_assert_int_eq(b->head_dim, 16);             /* config.json's, not hidden / heads = 8 */
    ck_assert_float_eq(b->rope_base, 1000000.0f);
    for (int i = 0; i < 2; i++) {
        const lw_model_config *c = i ? b : a;
        ck_assert_int_eq(c->activation, LW_ACT_SILU);
        ck_assert_int_eq(c->norm, LW_NORM_RMSNORM);
        ck_assert_int_eq(c->sliding_window, 0);
        ck_assert(!lw_rope_interleaved(c));
        ck_assert_int_eq(c->vocab, 300);
        ck_assert_int_eq(c->eos_id, 0);
    }
    ck_assert_ptr_nonnull(q2->layers[1].bqkv);
    ck_assert_ptr_null(q3->layers[1].bqkv);
    lw_model_free(q2);
    lw_model_free(q3);
}
END_TEST

/* Logits at every position against transformers, with check_forward's bound. */
START_TEST(logits_match_transformers)
{
    const char *family = golden_families[_i];
    char rel[64];
    snprintf(rel, sizeof rel, "tests/golden/%s/forward.txt", family);
    record r[MAX_RECORDS];
    int n = read_records(rel, r);
    lw_model *m = open_golden(family);
    int V = m->cfg.vocab;
    for (int k = 0; k < n; k++) {
        float *logits = all_logits(m, r[k].ids, r[k].T);
        double worst = 0, maxabs = 0;
        for (int t = 0; t < r[k].T; t++) {
            const float *row = logits + (size_t)t * V;
            ck_assert_msg(argmax(row, V) == r[k].argmax[t], "%s/%s: argmax at %d is %d, transformers %d", family,
                          r[k].name, t, argmax(row, V), r[k].argmax[t]);
            for (int v = 0; v < V; v++) maxabs = fmax(maxabs, fabs(row[v]));
            for (int j = 0; j < r[k].K; j++)
                worst = fmax(worst, fabs(row[r[k].vocab[j]] - r[k].logits[(size_t)t * r[k].K + j]));
        }
        fprintf(stderr, "%s/%s: max |logit diff| %.3g (bound %.3g)\n", family, r[k].name, worst,
                1e-3 * r[k].maxabs);
        ck_assert_msg(worst <= 1e-3 * r[k].maxabs, "%s/%s: logits differ by %g > 1e-3 * %g", family, r[k].name,
                      worst, r[k].maxabs);
        ck_assert_msg(fabs(maxabs - r[k].maxabs) <= 1e-3 * r[k].maxabs, "%s/%s: max |logit| %g vs %g", family,
                      r[k].name, maxabs, r[k].maxabs);
        free(logits);
    }
    free_records(r, n);
    lw_model_free(m);
}
END_TEST

/* Without the q/k/v biases the Qwen2 checkpoint gives other logits: the
 * parity above depends on them. */
START_TEST(qwen2_biases_matter)
{
    record r[MAX_RECORDS];
    int n = read_records("tests/golden/qwen2/forward.txt", r);
    lw_model *m = open_golden("qwen2");
    float *with = all_logits(m, r[0].ids, r[0].T);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        free(m->layers[l].bqkv);
        m->layers[l].bqkv = NULL;
    }
    float *without = all_logits(m, r[0].ids, r[0].T);
    double diff = 0;
    for (size_t i = 0; i < (size_t)r[0].T * m->cfg.vocab; i++) diff = fmax(diff, fabs(with[i] - without[i]));
    ck_assert_msg(diff > 100 * 1e-3 * r[0].maxabs, "biases moved the logits by only %g", diff);
    free(with);
    free(without);
    free_records(r, n);
    lw_model_free(m);
}
END_TEST

/* tokens.txt: an escaped string, then the ids `tokenizers` gave it. */
START_TEST(tokenizer_matches_tokenizers)
{
    const char *family = golden_families[_i];
    char rel[96];
    snprintf(rel, sizeof rel, "tests/golden/%s/tokenizer.json", family);
    lw_tokenizer *tok = NULL;
    ck_assert_msg(lw_tokenizer_load(LW_TOKENIZER_BPE_JSON, tl_src(rel), &tok) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_tokenizer_vocab_size(tok), 300);
    snprintf(rel, sizeof rel, "tests/golden/%s/tokens.txt", family);
    char *text = tl_read_file(tl_src(rel), NULL);
    int checked = 0;
    for (char *line = text; line && *line;) {
        char *ids_line = strchr(line, '\n');
        ck_assert_ptr_nonnull(ids_line);
        *ids_line++ = 0;
        char *next = strchr(ids_line, '\n');
        ck_assert_ptr_nonnull(next);
        *next++ = 0;
        size_t len = tl_unescape(line);
        int *ids = NULL, n = 0;
        ck_assert_msg(lw_tokenizer_encode(tok, line, len, false, &ids, &n) == LW_OK, "%s", lw_last_error());
        char *p = ids_line;
        for (int i = 0; i < n; i++) {
            char *end;
            long want = strtol(p, &end, 10);
            ck_assert_msg(end != p, "%s: string %d: lw gives more ids (%d) than tokenizers", family, checked, n);
            ck_assert_msg(ids[i] == want, "%s: string %d id %d: lw %d, tokenizers %ld", family, checked, i, ids[i],
                          want);
            p = end;
        }
        while (*p == ' ') p++;
        ck_assert_msg(*p == 0, "%s: string %d: tokenizers gives more ids than lw's %d", family, checked, n);
        free(ids);
        checked++;
        line = next;
    }
    ck_assert_int_ge(checked, 6);
    free(text);
    lw_tokenizer_free(tok);
}
END_TEST

/* ---- every HF family, written and read back ------------------------------ */

typedef struct {
    char names[64][96];
    lw_st_tensor t[64];
    int n;
} tensor_list;

static void put(tensor_list *l, const float *data, int64_t d0, int64_t d1, const char *fmt, int layer)
{
    ck_assert_int_lt(l->n, 64);
    snprintf(l->names[l->n], sizeof l->names[l->n], fmt, layer);
    l->t[l->n] = (lw_st_tensor){.name = l->names[l->n], .data = data, .ndim = d1 ? 2 : 1, .shape = {d0, d1}};
    l->n++;
}

/* m's weights under Hugging Face's names, and a config.json, into dir. The
 * model's norm arrays are in its config's convention, which for a config
 * the family table wrote as a manifest would (AS_WRITTEN) is HF's own. */
static void write_hf(const lw_model *m, const char *dir)
{
    const lw_model_config *c = &m->cfg;
    const lw_family_info *f = lw_family_get(c->family);
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    static tensor_list l;
    l.n = 0;
    put(&l, m->token_embd, c->vocab, H, "model.embed_tokens.weight", 0);
    put(&l, m->output_norm, H, 0, "model.norm.weight", 0);
    if (!c->tied_embeddings) put(&l, m->output, c->vocab, H, "lm_head.weight", 0);
    for (int i = 0; i < c->n_layers; i++) {
        const lw_layer_weights *L = &m->layers[i];
        put(&l, L->attn_norm, H, 0, "model.layers.%d.input_layernorm.weight", i);
        put(&l, L->wq, qd, H, "model.layers.%d.self_attn.q_proj.weight", i);
        put(&l, L->wk, kvd, H, "model.layers.%d.self_attn.k_proj.weight", i);
        put(&l, L->wv, kvd, H, "model.layers.%d.self_attn.v_proj.weight", i);
        put(&l, L->wo, H, qd, "model.layers.%d.self_attn.o_proj.weight", i);
        if (c->qkv_bias) {
            put(&l, L->bqkv, qd, 0, "model.layers.%d.self_attn.q_proj.bias", i);
            put(&l, L->bqkv + qd, kvd, 0, "model.layers.%d.self_attn.k_proj.bias", i);
            put(&l, L->bqkv + qd + kvd, kvd, 0, "model.layers.%d.self_attn.v_proj.bias", i);
        }
        if (c->qk_norm) {
            put(&l, L->q_norm, c->head_dim, 0, "model.layers.%d.self_attn.q_norm.weight", i);
            put(&l, L->k_norm, c->head_dim, 0, "model.layers.%d.self_attn.k_norm.weight", i);
        }
        if (c->post_norms) {
            put(&l, L->post_attn_norm, H, 0, "model.layers.%d.post_attention_layernorm.weight", i);
            put(&l, L->ffn_norm, H, 0, "model.layers.%d.pre_feedforward_layernorm.weight", i);
            put(&l, L->post_ffn_norm, H, 0, "model.layers.%d.post_feedforward_layernorm.weight", i);
        } else {
            put(&l, L->ffn_norm, H, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        }
        put(&l, L->w_gate, F, H, "model.layers.%d.mlp.gate_proj.weight", i);
        put(&l, L->w_up, F, H, "model.layers.%d.mlp.up_proj.weight", i);
        put(&l, L->w_down, H, F, "model.layers.%d.mlp.down_proj.weight", i);
    }
    char path[4200], json[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(lw_safetensors_write(path, l.t, l.n, NULL, 0) == LW_OK, "%s", lw_last_error());
    int n = snprintf(json, sizeof json,
                     "{\"model_type\": \"%s\", \"hidden_size\": %d, \"num_hidden_layers\": %d, "
                     "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, "
                     "\"intermediate_size\": %d, \"vocab_size\": %d, \"rms_norm_eps\": %g, \"rope_theta\": %.1f",
                     f->hf_model_types[0], H, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, F, c->vocab,
                     (double)c->norm_eps, (double)c->rope_base);
    if (c->global_every)
        n += snprintf(json + n, sizeof json - (size_t)n,
                      ", \"sliding_window\": %d, \"sliding_window_pattern\": %d, \"rope_local_base_freq\": %.1f",
                      c->sliding_window, c->global_every, (double)c->rope_base_local);
    snprintf(json + n, sizeof json - (size_t)n, "}");
    snprintf(path, sizeof path, "%s/config.json", dir);
    tl_write_file(path, json);
}

static lw_model_config family_config(lw_family family)
{
    lw_model_config c;
    switch (family) {
    case LW_FAMILY_QWEN2: c = tl_tiny_qwen2_config(); break;
    case LW_FAMILY_QWEN3: c = tl_tiny_qwen3_config(); break;
    default:
        c = tl_tiny_gemma3_config(3);
        /* the table's view: HF writes no query scale of 0.3 as an integer */
        c.query_scale = 0;
        ck_assert_int_eq(c.norm, LW_NORM_RMSNORM_GEMMA);
    }
    c.weights_format = LW_WEIGHTS_SAFETENSORS;
    return c;
}

static const lw_family hf_families[] = {LW_FAMILY_GEMMA3, LW_FAMILY_QWEN2, LW_FAMILY_QWEN3};

/* Read back as config.json says (plain rmsnorm over gains 1 + w) and as a
 * manifest says (rmsnorm_gemma over w): the same logits as the model that
 * was written. A norm given its 1 twice, or not at all, fails here. */
START_TEST(hf_checkpoint_round_trip)
{
    lw_model_config c = family_config(hf_families[_i]);
    lw_model *ref = NULL, *opened = NULL, *loaded = NULL;
    ck_assert_msg(lw_model_init_random(&c, 40 + (uint64_t)_i, &ref) == LW_OK, "%s", lw_last_error());
    const char *dir = tl_tmpdir(lw_family_name(c.family));
    write_hf(ref, dir);
    ck_assert_msg(lw_model_open(dir, LW_WEIGHTS_SAFETENSORS, &opened) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(opened->cfg.family, c.family);
    ck_assert_int_eq(opened->cfg.qkv_bias, c.qkv_bias);
    ck_assert_int_eq(opened->cfg.qk_norm, c.qk_norm);
    ck_assert_int_eq(opened->cfg.norm, LW_NORM_RMSNORM);
    snprintf(c.weights_path, sizeof c.weights_path, "%s", dir);
    ck_assert_msg(lw_model_load(&c, &loaded) == LW_OK, "%s", lw_last_error());
    int ids[] = {1, 5, 2, 9, 3, 7, 10, 0};
    int T = 8;
    float *want = all_logits(ref, ids, T), *a = all_logits(opened, ids, T), *b = all_logits(loaded, ids, T);
    tl_assert_close_to_scale(a, want, (size_t)T * c.vocab, 1e-4, "config.json view");
    tl_assert_close_to_scale(b, want, (size_t)T * c.vocab, 1e-4, "manifest view");
    free(want);
    free(a);
    free(b);
    lw_model_free(ref);
    lw_model_free(opened);
    lw_model_free(loaded);
}
END_TEST

/* ---- the table itself ---------------------------------------------------- */

/* Every family is found by each of its names, and the manifest's defaults
 * and a loader's differ in nothing but the norm convention. */
START_TEST(every_family_is_found_by_its_names)
{
    for (int f = 0; f < LW_FAMILY_COUNT; f++) {
        const lw_family_info *i = lw_family_get((lw_family)f);
        ck_assert_ptr_nonnull(i);
        ck_assert_int_eq(i->id, f);
        ck_assert_ptr_eq(lw_family_by_name(i->name), i);
        ck_assert_str_eq(lw_family_name((lw_family)f), i->name);
        for (int k = 0; k < LW_FAMILY_MAX_ALIASES && i->hf_model_types[k]; k++)
            ck_assert_ptr_eq(lw_family_by_hf_type(i->hf_model_types[k]), i);
        for (int k = 0; k < LW_FAMILY_MAX_ALIASES && i->gguf_archs[k]; k++)
            ck_assert_ptr_eq(lw_family_by_gguf_arch(i->gguf_archs[k]), i);
        lw_model_config written, loaded;
        memset(&written, 0, sizeof written);
        memset(&loaded, 0, sizeof loaded);
        lw_family_defaults(&written, i, LW_FAMILY_AS_WRITTEN);
        lw_family_defaults(&loaded, i, LW_FAMILY_AS_LOADED);
        ck_assert_int_eq(written.norm, i->norm_adds_one ? LW_NORM_RMSNORM_GEMMA : LW_NORM_RMSNORM);
        ck_assert_int_eq(loaded.norm, LW_NORM_RMSNORM);
        loaded.norm = written.norm;
        ck_assert(memcmp(&written, &loaded, sizeof written) == 0);
    }
    ck_assert_ptr_eq(lw_family_by_hf_type("mistral"), lw_family_get(LW_FAMILY_LLAMA));
    ck_assert_ptr_eq(lw_family_by_hf_type("gemma3_text"), lw_family_get(LW_FAMILY_GEMMA3));
    ck_assert_ptr_null(lw_family_by_hf_type("gemma3n"));
    ck_assert_ptr_null(lw_family_by_gguf_arch("llama2c"));
    ck_assert_ptr_null(lw_family_by_name("qwen"));
    char list[256];
    lw_family_list(LW_FAMILY_NAMES_HF, list, sizeof list);
    ck_assert_str_eq(list, "llama, mistral, gemma3, gemma3_text, qwen2, qwen3");
}
END_TEST

/* A config.json the table has no family for, and Qwen features it cannot
 * run, are refused with the file and field named. */
START_TEST(unsupported_configs_are_refused)
{
    lw_model_config c = tl_tiny_qwen3_config();
    lw_model *ref = NULL, *m = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 7, &ref), LW_OK);
    const char *dir = tl_tmpdir("qwen3_refused");
    write_hf(ref, dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *bad[][2] = {
        {"{\"model_type\": \"phi3\", \"hidden_size\": 16}", "model_type phi3 is not supported (llama, mistral"},
        {"{\"model_type\": \"qwen3\", \"attention_bias\": true}", "attention_bias is true"},
        {"{\"model_type\": \"qwen2\", \"use_sliding_window\": true}", "use_sliding_window is true"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_write_file(path, bad[i][0]);
        ck_assert_int_eq(lw_model_open(dir, LW_WEIGHTS_SAFETENSORS, &m), LW_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(lw_last_error(), bad[i][1]) && strstr(lw_last_error(), "config.json"), "%s",
                      lw_last_error());
    }
    lw_model_free(ref);
}
END_TEST

/* The CUDA executor adds the q/k/v bias (bias_add_forward after each
 * part's product): the one check (lw_gpu_check_plan) passes Qwen2's plan,
 * forward and backward; its numbers are held to the CPU on the host twin
 * (tests/check_plan_cuda_host.c). */
START_TEST(gpu_takes_qkv_bias)
{
    lw_model_config c = tl_tiny_qwen2_config();
    lw_plan p;
    lw_plan_lower(&c, &p);
    bool biased = false;
    for (int i = 0; i < p.n_ops; i++) biased |= p.ops[i].b == LW_W_BQKV;
    ck_assert(biased);
    ck_assert_msg(lw_gpu_check_plan(&p, &c) == LW_OK, "%s", lw_last_error());
}
END_TEST

/* ---- the pair of the two ----------------------------------------------- */

/* pairs/tiny-qwen2_to_tiny-qwen3.json: lwc check --weights accepts it, lwc
 * build builds it, and its lw trains a bridge for 4 steps (finite losses,
 * a checkpoint) that lw eval then reads. A few seconds. */
START_TEST(qwen_pair_builds_and_trains)
{
    const char *dir = tl_tmpdir("qwen_pair");
    const char *manifest = tl_src("pairs/tiny-qwen2_to_tiny-qwen3.json");
    const char *data = tl_shared("data/sst2");
    char train[512];
    snprintf(train, sizeof train, "%s/train.jsonl", data);
    tl_require_file(train);
    char *log;
    int rc = tl_run(&log, "'%s' check --weights '%s'", tl_out("bin/lwc"), manifest);
    ck_assert_msg(rc == 0, "lwc check:\n%s", log);
    free(log);
    rc = tl_run(&log, "'%s' build --quiet '%s' -o '%s/b'", tl_out("bin/lwc"), manifest, dir);
    ck_assert_msg(rc == 0, "lwc build:\n%s", log);
    free(log);
    char lw[600];
    snprintf(lw, sizeof lw, "cd '%s' && LWC_CACHE_DIR='%s/cache' OPENBLAS_NUM_THREADS=1 b/tiny-qwen2_to_tiny-qwen3/lw",
             dir, dir);
    rc = tl_run(&log, "%s train --task sst2 --data '%s' --limit-train 8 --steps 4 --batch 2 --lr 1e-3 --warmup 1 "
                "--quiet --out run", lw, data);
    ck_assert_msg(rc == 0, "lw train:\n%s", log);
    free(log);
    char path[600];
    snprintf(path, sizeof path, "%s/run/train_log.jsonl", dir);
    char *train_log = tl_read_file(path, NULL);
    int steps = 0;
    for (char *p = train_log; (p = strstr(p, "\"loss\": ")); p++, steps++) {
        double loss = strtod(p + 8, NULL);
        ck_assert_msg(isfinite(loss) && loss > 0, "step %d: loss %g", steps + 1, loss);
    }
    ck_assert_msg(steps == 4, "train_log.jsonl has %d losses:\n%s", steps, train_log);
    free(train_log);
    snprintf(path, sizeof path, "%s/run/final/bridge.safetensors", dir);
    tl_require_file(path);
    rc = tl_run(&log, "%s eval --task sst2 --split '%s/dev.jsonl' --limit 4 --quiet --checkpoint run/final "
                "--json e.json && grep -q '\"accuracy\"' e.json", lw, data);
    ck_assert_msg(rc == 0, "lw eval:\n%s", log);
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("families");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, config_comes_from_the_family_table);
    tcase_add_loop_test(tc, logits_match_transformers, 0, 2);
    tcase_add_test(tc, qwen2_biases_matter);
    tcase_add_loop_test(tc, tokenizer_matches_tokenizers, 0, 2);
    tcase_add_loop_test(tc, hf_checkpoint_round_trip, 0, 3);
    tcase_add_test(tc, every_family_is_found_by_its_names);
    tcase_add_test(tc, unsupported_configs_are_refused);
    tcase_add_test(tc, gpu_takes_qkv_bias);
    tcase_add_test(tc, qwen_pair_builds_and_trains);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
