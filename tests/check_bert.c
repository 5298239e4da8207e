/* The BERT encoder (runtime/model/bert.c) against transformers' BertModel: a tiny
 * random checkpoint made by tests/golden/make_bert_goldens.py (bf16 weights,
 * a WordPiece vocabulary of its own) gives the last hidden states of a
 * sentence, a sentence pair (token types 1) and a padded batch (attention
 * mask), every row and column, and their mean pool; the real
 * all-MiniLM-L6-v2 does the same from the ids the C tokenizer gives when
 * models/minilm-l6-v2 is there (scripts/fetch-models.sh; skipped with a note
 * otherwise). The exact GELU's backward is checked by finite differences;
 * bad configs, shapes and inputs are refused with messages that say which. */
#include "testlib.h"
#include "grad_check.h"
#include "bert.h"
#include "ops.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A bound relative to the largest magnitude, as check_forward.c and
 * check_families.c have it, but 100 times tighter than their 1e-3: both
 * sides here are fp32 from the same weights (no quantized or bf16 matmuls),
 * and they agree to about 3e-7 of it; the tanh form of GELU in place of the
 * exact one is off by more than this bound. */
#define REL_BOUND 1e-5

enum { MAX_CASES = 8 };

typedef struct {
    char name[32];
    int T, H, K;
    int *ids, *types, *mask, *cols;
    double maxabs;
    double *hidden;   /* [T, K] */
    double *pooled;   /* [H] */
} hcase;

static void expect_word(FILE *f, const char *key)
{
    char w[64];
    ck_assert_int_eq(fscanf(f, "%63s", w), 1);
    ck_assert_msg(strcmp(w, key) == 0, "golden: expected '%s', found '%s'", key, w);
}

static int *read_n_ints(FILE *f, const char *key, int n)
{
    expect_word(f, key);
    int *v = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) ck_assert_int_eq(fscanf(f, "%d", &v[i]), 1);
    return v;
}

static double *read_doubles(FILE *f, size_t n)
{
    double *v = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(fscanf(f, "%lf", &v[i]), 1);
    return v;
}

static int read_cases(const char *rel, hcase *c)
{
    FILE *f = fopen(tl_src(rel), "r");
    ck_assert_msg(f != NULL, "cannot open %s", tl_src(rel));
    int n = 0;
    char w[64];
    while (fscanf(f, "%63s", w) == 1) {
        ck_assert_str_eq(w, "case");
        ck_assert_int_lt(n, MAX_CASES);
        hcase *x = &c[n++];
        ck_assert_int_eq(fscanf(f, "%31s %d %d", x->name, &x->T, &x->H), 3);
        x->ids = read_n_ints(f, "ids", x->T);
        x->types = read_n_ints(f, "types", x->T);
        x->mask = read_n_ints(f, "mask", x->T);
        expect_word(f, "maxabs");
        ck_assert_int_eq(fscanf(f, "%lf", &x->maxabs), 1);
        expect_word(f, "cols");
        ck_assert_int_eq(fscanf(f, "%d", &x->K), 1);
        x->cols = malloc(sizeof(int) * (size_t)x->K);
        for (int i = 0; i < x->K; i++) ck_assert_int_eq(fscanf(f, "%d", &x->cols[i]), 1);
        expect_word(f, "hidden");
        x->hidden = read_doubles(f, (size_t)x->T * x->K);
        expect_word(f, "pooled");
        x->pooled = read_doubles(f, (size_t)x->H);
        expect_word(f, "end");
    }
    fclose(f);
    ck_assert_int_gt(n, 0);
    return n;
}

static void free_cases(hcase *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].ids);
        free(c[i].types);
        free(c[i].mask);
        free(c[i].cols);
        free(c[i].hidden);
        free(c[i].pooled);
    }
}

static lw_bert *open_model(const char *path)
{
    lw_bert *m = NULL;
    ck_assert_msg(lw_bert_open(path, &m) == LW_OK, "%s", lw_last_error());
    return m;
}

static float *forward(const lw_bert *m, const int *ids, const int *types, const int *mask, int T)
{
    float *h = malloc(sizeof(float) * (size_t)T * m->cfg.hidden);
    ck_assert_msg(lw_bert_forward(m, ids, types, mask, T, h) == LW_OK, "%s", lw_last_error());
    return h;
}

/* Every stored row and column, and the mean pool, within REL_BOUND * maxabs;
 * maxabs itself (over the unmasked rows) agrees too. */
static void check_case(const lw_bert *m, const hcase *c, const char *model)
{
    ck_assert_int_eq(c->H, m->cfg.hidden);
    float *h = forward(m, c->ids, c->types, c->mask, c->T);
    double worst = 0, maxabs = 0, bound = REL_BOUND * c->maxabs;
    for (int t = 0; t < c->T; t++) {
        for (int j = 0; j < c->K; j++)
            worst = fmax(worst, fabs(h[(size_t)t * c->H + c->cols[j]] - c->hidden[(size_t)t * c->K + j]));
        if (c->mask[t])
            for (int i = 0; i < c->H; i++) maxabs = fmax(maxabs, fabs(h[(size_t)t * c->H + i]));
    }
    float *pooled = malloc(sizeof(float) * (size_t)c->H);
    ck_assert_int_eq(lw_bert_mean_pool(h, c->mask, c->T, c->H, pooled), LW_OK);
    double worst_pool = 0;
    for (int i = 0; i < c->H; i++) worst_pool = fmax(worst_pool, fabs(pooled[i] - c->pooled[i]));
    fprintf(stderr, "%s/%s (T %d): max |hidden diff| %.3g, |pooled diff| %.3g (bound %.3g = %g x %.4g)\n", model,
            c->name, c->T, worst, worst_pool, bound, REL_BOUND, c->maxabs);
    ck_assert_msg(worst <= bound, "%s/%s: hidden states differ by %g > %g", model, c->name, worst, bound);
    ck_assert_msg(worst_pool <= bound, "%s/%s: mean pool differs by %g > %g", model, c->name, worst_pool, bound);
    ck_assert_msg(fabs(maxabs - c->maxabs) <= bound, "%s/%s: max |hidden| %g vs %g", model, c->name, maxabs,
                  c->maxabs);
    free(pooled);
    free(h);
}

#define TINY "tests/golden/bert/tiny"

START_TEST(tiny_config_is_read)
{
    lw_bert *m = open_model(tl_src(TINY));
    const lw_bert_config *c = &m->cfg;
    ck_assert_int_eq(c->vocab, 160);
    ck_assert_int_eq(c->hidden, 32);
    ck_assert_int_eq(c->n_layers, 2);
    ck_assert_int_eq(c->n_heads, 4);
    ck_assert_int_eq(c->head_dim, 8);
    ck_assert_int_eq(c->ffn, 64);
    ck_assert_int_eq(c->max_positions, 64);
    ck_assert_int_eq(c->n_types, 2);
    ck_assert_float_eq(c->eps, 1e-12f);
    lw_bert_free(m);
}
END_TEST

START_TEST(tiny_hidden_states_match_transformers)
{
    hcase c[MAX_CASES];
    int n = read_cases(TINY "/hidden.txt", c);
    ck_assert_int_eq(n, 4);
    lw_bert *m = open_model(tl_src(TINY));
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(c[k].K, 32);   /* every column */
        check_case(m, &c[k], "tiny");
    }
    lw_bert_free(m);
    free_cases(c, n);
}
END_TEST

/* The parity above depends on the mask and the token types: without them
 * the same inputs give other hidden states (so the goldens can tell). */
START_TEST(mask_and_token_types_matter)
{
    hcase c[MAX_CASES];
    int n = read_cases(TINY "/hidden.txt", c);
    lw_bert *m = open_model(tl_src(TINY));
    const hcase *pair = &c[1], *padded = &c[3];
    ck_assert_str_eq(pair->name, "pair");
    ck_assert_str_eq(padded->name, "batch1");
    int ones = 0;
    for (int t = 0; t < pair->T; t++) ones += pair->types[t];
    ck_assert_int_gt(ones, 0);
    int zeros = 0;
    for (int t = 0; t < padded->T; t++) zeros += !padded->mask[t];
    ck_assert_int_gt(zeros, 0);
    float *a = forward(m, pair->ids, NULL, NULL, pair->T);
    float *b = forward(m, padded->ids, padded->types, NULL, padded->T);
    double da = 0, db = 0;
    for (int i = 0; i < 32; i++) da = fmax(da, fabs(a[i] - pair->hidden[i]));   /* row 0 */
    for (int i = 0; i < 32; i++) db = fmax(db, fabs(b[i] - padded->hidden[i]));
    ck_assert_double_gt(da, 10 * REL_BOUND * pair->maxabs);
    ck_assert_double_gt(db, 10 * REL_BOUND * padded->maxabs);
    free(a);
    free(b);
    lw_bert_free(m);
    free_cases(c, n);
}
END_TEST

/* all-MiniLM-L6-v2 itself, from the text: the C tokenizer's ids, then the
 * hidden states (every 12th column) and the mean pool of transformers. */
START_TEST(minilm_hidden_states_match_transformers)
{
    const char *dir = tl_model("minilm-l6-v2");
    char weights[4200];
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    if (access(weights, R_OK) != 0) {
        fprintf(stderr, "SKIP minilm_hidden_states_match_transformers: %s is not there "
                        "(scripts/fetch-models.sh fetches it); the tiny checkpoint's checks ran\n", weights);
        return;
    }
    hcase c[MAX_CASES];
    int n = read_cases("tests/golden/bert/minilm_hidden.txt", c);
    lw_tokenizer *tok = NULL;
    ck_assert_msg(lw_tokenizer_load(LW_TOKENIZER_WORDPIECE_JSON, tl_shared("models/minilm-l6-v2/tokenizer.json"),
                                    &tok) == LW_OK, "%s", lw_last_error());
    const char *text = "The quick brown fox jumps over the lazy dog.";   /* SENTENCES[0] of the script */
    int *ids, T;
    ck_assert_int_eq(lw_tokenizer_encode(tok, text, strlen(text), true, &ids, &T), LW_OK);
    ck_assert_str_eq(c[0].name, "single");
    ck_assert_int_eq(T, c[0].T);
    for (int t = 0; t < T; t++) ck_assert_int_eq(ids[t], c[0].ids[t]);
    free(ids);
    lw_tokenizer_free(tok);
    lw_bert *m = open_model(dir);
    ck_assert_int_eq(m->cfg.hidden, 384);
    ck_assert_int_eq(m->cfg.n_layers, 6);
    ck_assert_int_eq(m->cfg.n_heads, 12);
    for (int k = 0; k < n; k++) check_case(m, &c[k], "minilm");
    lw_bert_free(m);
    free_cases(c, n);
}
END_TEST

/* torch.nn.functional.gelu (approximate='none') at a few points, and the
 * backward against central differences. */
static double gelu_loss(const float *x, const float *r, int n)
{
    float *y = malloc(sizeof(float) * (size_t)n);
    gelu_erf_forward(y, x, n);
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)y[i] * r[i];
    free(y);
    return s;
}

START_TEST(gelu_erf_values_and_backward)
{
    const float x[5] = {0, 1, -1, 3, -0.5f};
    const float want[5] = {0, 0.84134475f, -0.15865525f, 2.99595031f, -0.15426877f};
    float y[5];
    gelu_erf_forward(y, x, 5);
    for (int i = 0; i < 5; i++) ck_assert_float_eq_tol(y[i], want[i], 1e-6f);
    enum { N = 64 };
    float xs[N], r[N], dx[N];
    double fd[N];
    for (int i = 0; i < N; i++) {
        xs[i] = -4.0f + 8.0f * (float)i / (N - 1);
        r[i] = 0.5f + 0.01f * (float)(i % 7);
        dx[i] = 0.25f;   /* backward accumulates: start from something */
    }
    gelu_erf_backward(dx, r, xs, N);
    for (int i = 0; i < N; i++) {
        dx[i] -= 0.25f;
        float keep = xs[i], h = 1e-2f;
        xs[i] = keep + h;
        double up = gelu_loss(xs, r, N);
        xs[i] = keep - h;
        double down = gelu_loss(xs, r, N);
        xs[i] = keep;
        fd[i] = (up - down) / (2.0 * h);
    }
    double worst = 0;
    ck_assert_int_eq(tl_grad_mismatches(dx, fd, N, &worst), 0);
}
END_TEST

static const char *copy_tiny(const char *name, const char *config_from, const char *config_to)
{
    const char *dir = tl_tmpdir(name);
    ck_assert_int_eq(tl_run(NULL, "cp '%s/model.safetensors' '%s/'", tl_src(TINY), dir), 0);
    size_t len;
    char *cfg = tl_read_file(tl_src(TINY "/config.json"), &len);
    ck_assert_ptr_nonnull(cfg);
    char *at = config_from ? strstr(cfg, config_from) : NULL;
    ck_assert(!config_from || at);
    char *out = malloc(len + 256);
    if (at)
        snprintf(out, len + 256, "%.*s%s%s", (int)(at - cfg), cfg, config_to, at + strlen(config_from));
    else
        snprintf(out, len + 256, "%s", cfg);
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    tl_write_file(path, out);
    free(out);
    free(cfg);
    return dir;
}

static void expect_open_refused(const char *dir, const char *needle)
{
    lw_bert *m = NULL;
    ck_assert_int_ne(lw_bert_open(dir, &m), LW_OK);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(lw_last_error(), needle), "error '%s' does not say '%s'", lw_last_error(), needle);
}

START_TEST(bad_checkpoints_and_inputs_are_refused)
{
    expect_open_refused("/nonexistent/bert", "config.json");
    expect_open_refused(copy_tiny("bert_act", "\"gelu\"", "\"gelu_new\""), "hidden_act is gelu_new");
    expect_open_refused(copy_tiny("bert_type", "\"bert\"", "\"roberta\""), "model_type is roberta");
    expect_open_refused(copy_tiny("bert_ffn", "\"intermediate_size\": 64", "\"intermediate_size\": 65"),
                        "encoder.layer.0.intermediate.dense.weight has shape [64, 32], config.json implies [65, 32]");
    expect_open_refused(copy_tiny("bert_layers", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
                        "encoder.layer.2.attention.self.query.weight is missing");
    expect_open_refused(copy_tiny("bert_heads", "\"num_attention_heads\": 4", "\"num_attention_heads\": 5"),
                        "not a multiple");
    lw_bert *m = open_model(tl_src(TINY));
    int ids[65] = {0}, mask[3] = {0, 0, 0}, types[3] = {0, 2, 0};
    float *h = malloc(sizeof(float) * 65 * 32);
    ck_assert_int_ne(lw_bert_forward(m, ids, NULL, NULL, 65, h), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "1 to 64"));
    ck_assert_int_ne(lw_bert_forward(m, ids, NULL, mask, 3, h), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "masked"));
    ck_assert_int_ne(lw_bert_forward(m, ids, types, NULL, 3, h), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "type 2"));
    ids[1] = 160;
    ck_assert_int_ne(lw_bert_forward(m, ids, NULL, NULL, 3, h), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "id 160"));
    free(h);
    lw_bert_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bert");
    TCase *tc = tcase_create("bert");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tiny_config_is_read);
    tcase_add_test(tc, tiny_hidden_states_match_transformers);
    tcase_add_test(tc, mask_and_token_types_matter);
    tcase_add_test(tc, minilm_hidden_states_match_transformers);
    tcase_add_test(tc, gelu_erf_values_and_backward);
    tcase_add_test(tc, bad_checkpoints_and_inputs_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
