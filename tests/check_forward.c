/* The CPU forward pass against PyTorch: logits at every position, hidden
 * states at three layers and 64 greedy tokens of SmolLM2-135M, Gemma-3-270M
 * and stories260K, from tests/golden/forward/ (make_forward_goldens.py);
 * then the properties the bridge relies on: a cache continuation, input
 * embeddings, chunking and saved activations change nothing. */
#include "testlib.h"
#include "model.h"
#include "model_load.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_RECORDS = 8, MAX_HIDDEN = 4 };

typedef struct {
    int layer, D;
    double maxabs;
    int *dims;
    double *vals; /* [T, D] */
} golden_hidden;

typedef struct {
    char name[32];
    int window, T, K, n_hidden, n_greedy;
    int *ids, *argmax, *vocab, *greedy;
    double maxabs;
    double *logits; /* [T, K] */
    golden_hidden hidden[MAX_HIDDEN];
} golden_record;

typedef struct {
    golden_record rec[MAX_RECORDS];
    int n;
    int n_ref, *ref; /* greedy_ref (stories260K) */
} golden_file;

/* ---- reading the golden text ------------------------------------------ */

static char *cursor;

static char *word(void)
{
    while (*cursor == ' ' || *cursor == '\n') cursor++;
    char *w = cursor;
    while (*cursor && *cursor != ' ' && *cursor != '\n') cursor++;
    if (*cursor) *cursor++ = 0;
    return w;
}

static void expect(const char *key)
{
    const char *w = word();
    ck_assert_msg(strcmp(w, key) == 0, "golden: expected '%s', found '%s'", key, w);
}

static int num_i(void) { return (int)strtol(word(), NULL, 10); }
static double num_d(void) { return strtod(word(), NULL); }

static int *ints(int n)
{
    int *p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) p[i] = num_i();
    return p;
}

static double *doubles(size_t n)
{
    double *p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = num_d();
    return p;
}

static void read_record(golden_record *r)
{
    snprintf(r->name, sizeof r->name, "%s", word());
    expect("window");
    r->window = num_i();
    expect("ids");
    r->T = num_i();
    r->ids = ints(r->T);
    expect("argmax");
    ck_assert_int_eq(num_i(), r->T);
    r->argmax = ints(r->T);
    expect("maxabs");
    r->maxabs = num_d();
    expect("vocab");
    r->K = num_i();
    r->vocab = ints(r->K);
    expect("logits");
    r->logits = doubles((size_t)r->T * r->K);
    for (;;) {
        const char *w = word();
        if (strcmp(w, "greedy") == 0) break;
        ck_assert_str_eq(w, "hidden");
        ck_assert_int_lt(r->n_hidden, MAX_HIDDEN);
        golden_hidden *h = &r->hidden[r->n_hidden++];
        h->layer = num_i();
        h->maxabs = num_d();
        h->D = num_i();
        h->dims = ints(h->D);
        h->vals = doubles((size_t)r->T * h->D);
    }
    r->n_greedy = num_i();
    r->greedy = ints(r->n_greedy);
    expect("end");
}

static void read_golden(const char *rel, golden_file *g)
{
    char *text = tl_read_file(tl_src(rel), NULL);
    ck_assert_msg(text != NULL, "cannot read %s", rel);
    memset(g, 0, sizeof *g);
    cursor = text;
    for (;;) {
        const char *w = word();
        if (!*w) break;
        if (strcmp(w, "greedy_ref") == 0) {
            g->n_ref = num_i();
            g->ref = ints(g->n_ref);
            continue;
        }
        ck_assert_str_eq(w, "prompt");
        ck_assert_int_lt(g->n, MAX_RECORDS);
        read_record(&g->rec[g->n++]);
    }
    free(text);
}

static void free_golden(golden_file *g)
{
    for (int i = 0; i < g->n; i++) {
        golden_record *r = &g->rec[i];
        free(r->ids), free(r->argmax), free(r->vocab), free(r->greedy), free(r->logits);
        for (int j = 0; j < r->n_hidden; j++) free(r->hidden[j].dims), free(r->hidden[j].vals);
    }
    free(g->ref);
}

/* ---- the model under test, loaded once per suite (before Check forks) - */

static lw_model *model;
static golden_file gold;

static void load(const char *path, lw_weights_format fmt, const char *golden)
{
    tl_require_file(path);
    lw_status st = lw_model_open(path, fmt, &model);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    read_golden(golden, &gold);
}

static void setup_smollm2(void) { load(tl_model("SmolLM2-135M-Instruct.Q4_1.gguf"), LW_WEIGHTS_GGUF, "tests/golden/forward/smollm2.txt"); }
static void setup_gemma3(void) { load(tl_model("gemma-3-270m-q4_k_m.gguf"), LW_WEIGHTS_GGUF, "tests/golden/forward/gemma3.txt"); }
static void setup_stories(void)
{
    load(tl_shared("models/stories260k/stories260K.bin"), LW_WEIGHTS_LLAMA2C, "tests/golden/forward/stories260k.txt");
}

static void teardown(void)
{
    lw_model_free(model);
    model = NULL;
    free_golden(&gold);
}

static lw_state *new_state(int max_tokens, bool save)
{
    lw_state *s = NULL;
    lw_status st = lw_state_alloc(model, max_tokens, save, &s);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    return s;
}

/* Logits [T, vocab] of a golden prompt, with that prompt's window. */
static float *run_logits(const golden_record *r, lw_state *s)
{
    int saved_window = model->cfg.sliding_window;
    if (r->window) model->cfg.sliding_window = r->window;
    float *logits = malloc(sizeof(float) * (size_t)r->T * model->cfg.vocab);
    lw_forward_args a = {.ids = r->ids, .T = r->T, .logits = logits, .all_logits = true, .capture_layer = -1};
    lw_status st = lw_forward(model, s, &a);
    model->cfg.sliding_window = saved_window;
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    return logits;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* ---- parity with PyTorch ---------------------------------------------- */

START_TEST(logits_match_pytorch)
{
    ck_assert_int_lt(_i, gold.n);
    const golden_record *r = &gold.rec[_i];
    lw_state *s = new_state(r->T, false);
    float *logits = run_logits(r, s);
    int V = model->cfg.vocab;
    double worst = 0, maxabs = 0;
    for (int t = 0; t < r->T; t++) {
        const float *row = logits + (size_t)t * V;
        ck_assert_msg(argmax(row, V) == r->argmax[t], "%s: argmax at position %d is %d, PyTorch %d", r->name, t,
                      argmax(row, V), r->argmax[t]);
        for (int v = 0; v < V; v++) maxabs = fmax(maxabs, fabs(row[v]));
        for (int k = 0; k < r->K; k++) worst = fmax(worst, fabs(row[r->vocab[k]] - r->logits[(size_t)t * r->K + k]));
    }
    fprintf(stderr, "%s/%s: max |logit diff| %.3g (bound %.3g), max |logit| %.4g vs %.4g\n", model->cfg.name,
            r->name, worst, 1e-3 * r->maxabs, maxabs, r->maxabs);
    ck_assert_msg(worst <= 1e-3 * r->maxabs, "%s: logits differ by %g > 1e-3 * %g", r->name, worst, r->maxabs);
    ck_assert_msg(fabs(maxabs - r->maxabs) <= 1e-3 * r->maxabs, "%s: max |logit| %g vs %g", r->name, maxabs,
                  r->maxabs);
    free(logits);
    lw_state_free(s);
}
END_TEST

START_TEST(hidden_states_match_pytorch)
{
    ck_assert_int_lt(_i, gold.n);
    const golden_record *r = &gold.rec[_i];
    int H = model->cfg.hidden;
    lw_state *s = new_state(r->T, false);
    float *h = malloc(sizeof(float) * (size_t)r->T * H);
    for (int j = 0; j < r->n_hidden; j++) {
        const golden_hidden *g = &r->hidden[j];
        int saved_window = model->cfg.sliding_window;
        if (r->window) model->cfg.sliding_window = r->window;
        lw_forward_args a = {.ids = r->ids, .T = r->T, .capture_layer = g->layer, .hidden_out = h};
        lw_status st = lw_forward(model, s, &a);
        model->cfg.sliding_window = saved_window;
        ck_assert_msg(st == LW_OK, "%s", lw_last_error());
        double worst = 0;
        for (int t = 0; t < r->T; t++)
            for (int d = 0; d < g->D; d++)
                worst = fmax(worst, fabs(h[(size_t)t * H + g->dims[d]] - g->vals[(size_t)t * g->D + d]));
        ck_assert_msg(worst <= 1e-3 * g->maxabs, "%s: hidden state %d differs by %g > 1e-3 * %g", r->name,
                      g->layer, worst, g->maxabs);
    }
    free(h);
    lw_state_free(s);
}
END_TEST

/* Greedy decoding yields PyTorch's 64 tokens iff, with those tokens fed
 * back, the argmax at every step is the next one: checked for every prompt
 * in one teacher-forced call (a decode step of Gemma reads 1 GB of fp32
 * weights, ~0.1 s), and by a real lw_generate for the first prompt. */
START_TEST(greedy_tokens_match_pytorch)
{
    ck_assert_int_lt(_i, gold.n);
    const golden_record *r = &gold.rec[_i];
    int T = r->T + r->n_greedy - 1, V = model->cfg.vocab;
    golden_record forced = *r;
    forced.T = T;
    forced.ids = malloc(sizeof(int) * (size_t)T);
    memcpy(forced.ids, r->ids, sizeof(int) * (size_t)r->T);
    memcpy(forced.ids + r->T, r->greedy, sizeof(int) * (size_t)(r->n_greedy - 1));
    lw_state *s = new_state(T + 1, false);
    float *logits = run_logits(&forced, s);
    for (int i = 0; i < r->n_greedy; i++) {
        int got = argmax(logits + (size_t)(r->T - 1 + i) * V, V);
        ck_assert_msg(got == r->greedy[i], "%s: greedy token %d is %d, PyTorch %d", r->name, i, got, r->greedy[i]);
    }
    free(logits);
    free(forced.ids);

    if (_i == 0) {
        /* all 64 on stories260K; 16 on the big models keep the suite fast */
        int n_gen = model->cfg.vocab > 4096 ? 16 : r->n_greedy;
        int *out = calloc((size_t)n_gen, sizeof *out), n = 0;
        lw_generate_args g = {.max_new = n_gen};
        lw_status st = lw_generate(model, s, r->ids, r->T, &g, out, &n);
        ck_assert_msg(st == LW_OK, "%s", lw_last_error());
        ck_assert_int_eq(n, n_gen);
        for (int i = 0; i < n; i++)
            ck_assert_msg(out[i] == r->greedy[i], "%s: generated token %d is %d, PyTorch %d", r->name, i, out[i],
                          r->greedy[i]);
        free(out);
    }
    lw_state_free(s);
}
END_TEST

/* greedy_ref.txt: 60 greedy steps from BOS, the ids the golden script
 * decoded to the file's text, and the text itself through the C tokenizer. */
START_TEST(stories_reproduces_greedy_ref)
{
    ck_assert_int_eq(gold.n_ref, 60);
    lw_state *s = new_state(64, false);
    int out[60], n = 0, bos = 1;
    lw_generate_args g = {.max_new = 60};
    ck_assert(lw_generate(model, s, &bos, 1, &g, out, &n) == LW_OK);
    ck_assert_int_eq(n, 60);
    for (int i = 0; i < n; i++) ck_assert_int_eq(out[i], gold.ref[i]);
    lw_state_free(s);

    lw_tokenizer *tok = NULL;
    ck_assert(lw_tokenizer_load(LW_TOKENIZER_LLAMA2C, tl_shared("models/stories260k/tok512.bin"), &tok) == LW_OK);
    int ids[61] = {bos};
    memcpy(ids + 1, out, sizeof out);
    char *bos_text = NULL, *text = NULL;
    ck_assert(lw_tokenizer_decode(tok, ids, 1, &bos_text) == LW_OK);
    ck_assert(lw_tokenizer_decode(tok, ids, 61, &text) == LW_OK);
    char *ref = tl_read_file(tl_shared("models/stories260k/greedy_ref.txt"), NULL);
    ck_assert_ptr_nonnull(ref);
    const char *ref_text = strchr(ref, '\n') + 1;    /* after the config line */
    size_t skip = strlen(bos_text), len = strlen(ref_text);
    while (len > 0 && ref_text[len - 1] == '\n') len--;
    ck_assert_msg(strlen(text) == skip + len && memcmp(text + skip, ref_text, len) == 0,
                  "decoded: '%s'\nexpected: '%.*s'", text + skip, (int)len, ref_text);
    free(bos_text);
    free(text);
    free(ref);
    lw_tokenizer_free(tok);
}
END_TEST

/* ---- the same numbers by other routes --------------------------------- */

static double max_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

/* The final hidden state (what the logits are computed from) of the
 * longest golden prompt in one plain call. */
static float *final_hidden(const golden_record *r, lw_state *s, const lw_forward_args *how)
{
    int H = model->cfg.hidden;
    float *h = malloc(sizeof(float) * (size_t)r->T * H);
    lw_forward_args a = *how;
    a.capture_layer = model->cfg.n_layers;
    a.hidden_out = h;
    lw_status st = lw_forward(model, s, &a);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    return h;
}

/* Feeding the longest golden prompt in pieces over the cache, in small
 * chunks and attention blocks, with activations saved, or with embeddings in
 * place of some ids gives the numbers of one plain call. */
START_TEST(other_routes_give_the_same_numbers)
{
    const golden_record *r = &gold.rec[0];
    for (int i = 1; i < gold.n; i++)
        if (gold.rec[i].T > r->T && !gold.rec[i].window) r = &gold.rec[i];
    int T = r->T, V = model->cfg.vocab, H = model->cfg.hidden;
    size_t n = (size_t)T * H;
    lw_state *s = new_state(T, false);
    lw_forward_args plain = {.ids = r->ids, .T = T, .capture_layer = -1};
    float *ref = final_hidden(r, s, &plain), *got;
    double maxabs = 0;
    for (size_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(ref[i]));
    double tol = 1e-5 * maxabs;

    /* two pieces: rows [0, cut) then [cut, T) over the cache */
    int cut = T / 2;
    got = malloc(sizeof(float) * n);
    lw_forward_args a = {.ids = r->ids, .T = cut, .capture_layer = model->cfg.n_layers, .hidden_out = got};
    ck_assert(lw_forward(model, s, &a) == LW_OK);
    a = (lw_forward_args){.ids = r->ids + cut, .T = T - cut, .pos0 = cut, .capture_layer = model->cfg.n_layers,
                          .hidden_out = got + (size_t)cut * H};
    ck_assert(lw_forward(model, s, &a) == LW_OK);
    ck_assert_int_eq(lw_state_cached(s), T);
    ck_assert_double_le(max_diff(ref, got, n), tol);
    free(got);

    /* chunks of 3 rows, attention 2 query rows at a time */
    s->chunk = 3;
    s->att_rows = 2;
    got = final_hidden(r, s, &plain);
    ck_assert_double_le(max_diff(ref, got, n), tol);
    free(got);
    lw_state_free(s);

    /* saved activations */
    s = new_state(T, true);
    got = final_hidden(r, s, &plain);
    ck_assert_double_le(max_diff(ref, got, n), tol);
    free(got);
    lw_state_free(s);

    /* odd rows as input embeddings (what the bridge feeds): the scaled table
     * rows; in chunks of 5 rows so rows past the first chunk are placed right */
    s = new_state(T, false);
    s->chunk = 5;
    float *emb = calloc((size_t)T * H, sizeof *emb);
    bool *is_embed = calloc((size_t)T, sizeof *is_embed);
    for (int t = 1; t < T; t += 2) {
        is_embed[t] = true;
        for (int d = 0; d < H; d++)
            emb[(size_t)t * H + d] = model->token_embd[(size_t)r->ids[t] * H + d] * model->embed_scale;
    }
    lw_forward_args mixed = {.ids = r->ids, .embeds = emb, .is_embed = is_embed, .T = T, .capture_layer = -1};
    got = final_hidden(r, s, &mixed);
    ck_assert_double_le(max_diff(ref, got, n), tol);
    free(got);

    /* last-row logits alone equal that row of all the logits */
    float *all = run_logits(r, s), *last = malloc(sizeof(float) * (size_t)V);
    mixed.logits = last;
    ck_assert(lw_forward(model, s, &mixed) == LW_OK);
    ck_assert_double_le(max_diff(all + (size_t)(T - 1) * V, last, (size_t)V), 1e-5 * r->maxabs);
    free(all);
    free(last);
    free(emb);
    free(is_embed);
    free(ref);
    lw_state_free(s);
}
END_TEST

/* Segments (label scoring's one pass): three continuations of the same
 * prefix in one call give the rows each gives alone, and leave the cache at
 * the prefix. */
START_TEST(segments_continue_the_prefix_independently)
{
    const golden_record *r = &gold.rec[0];
    for (int i = 1; i < gold.n; i++)
        if (gold.rec[i].T > r->T) r = &gold.rec[i];
    int H = model->cfg.hidden, P = r->T / 2, len[3] = {1, 3, 2}, T = 6;
    ck_assert_int_ge(r->T, P + T);
    const int *cont = r->ids + P;   /* segment g: its ids from the record's tail */
    lw_state *s = new_state(P + T, false);
    float *alone = malloc(sizeof(float) * (size_t)T * H), *together = malloc(sizeof(float) * (size_t)T * H);
    float *last = malloc(sizeof(float) * (size_t)model->cfg.vocab);
    lw_forward_args pre = {.ids = r->ids, .T = P, .capture_layer = -1, .logits = last};
    ck_assert(lw_forward(model, s, &pre) == LW_OK);
    for (int g = 0, r0 = 0; g < 3; r0 += len[g++]) {
        lw_forward_args a = {.ids = cont + r0, .T = len[g], .pos0 = P, .capture_layer = model->cfg.n_layers,
                             .hidden_out = alone + (size_t)r0 * H};
        ck_assert(lw_forward(model, s, &a) == LW_OK);
    }
    lw_forward_args seg = {.ids = cont, .T = T, .pos0 = P, .capture_layer = model->cfg.n_layers,
                           .hidden_out = together, .n_segments = 3, .segment_len = len};
    ck_assert_msg(lw_forward(model, s, &seg) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_state_cached(s), P);
    double maxabs = 0;
    for (size_t i = 0; i < (size_t)T * H; i++) maxabs = fmax(maxabs, fabs(alone[i]));
    ck_assert_double_le(max_diff(alone, together, (size_t)T * H), 1e-5 * maxabs);
    int bad[3] = {1, 3, 1};   /* sums to 5, not 6 */
    seg.segment_len = bad;
    ck_assert_int_eq(lw_forward(model, s, &seg), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "segments") != NULL);
    free(alone), free(together), free(last);
    lw_state_free(s);
}
END_TEST

START_TEST(bad_calls_fail_cleanly)
{
    lw_state *s = new_state(8, false);
    int ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float h[1];
    lw_forward_args a = {.ids = ids, .T = 9, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(model, s, &a), LW_ERR_INVALID);      /* beyond max_tokens */
    a.T = 2;
    a.pos0 = 1;
    ck_assert_int_eq(lw_forward(model, s, &a), LW_ERR_INVALID);      /* past the cached positions */
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "cache holds 0"));
    a.pos0 = 0;
    ids[1] = model->cfg.vocab;
    ck_assert_int_eq(lw_forward(model, s, &a), LW_ERR_INVALID);      /* id outside the vocab */
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "outside vocab"));
    ids[1] = 2;
    a.capture_layer = model->cfg.n_layers + 1;
    a.hidden_out = h;
    ck_assert_int_eq(lw_forward(model, s, &a), LW_ERR_INVALID);      /* no such layer */
    lw_state_free(s);

    /* a config that does not fit the file names the tensor */
    lw_model_config c = model->cfg;
    c.ffn += 1;
    lw_model *m = NULL;
    ck_assert_int_ne(lw_model_load(&c, &m), LW_OK);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "ffn_gate"));
    c = model->cfg;
    c.n_kv_heads = 5;
    ck_assert_int_eq(lw_model_load(&c, &m), LW_ERR_INVALID);
}
END_TEST

/* ---- sampling ---------------------------------------------------------- */

START_TEST(sampling_is_seeded_and_follows_the_distribution)
{
    lw_rng rng;
    lw_rng_seed(&rng, 42);
    int counts[3] = {0, 0, 0}, first[50];
    for (int i = 0; i < 4000; i++) {
        float logits[3] = {0.0f, logf(3.0f), -INFINITY};
        int t = lw_sample(logits, 3, 1.0f, 0.0f, &rng);
        if (i < 50) first[i] = t;
        counts[t]++;
    }
    ck_assert_int_eq(counts[2], 0);
    ck_assert_msg(abs(counts[1] - 3000) < 150, "p=0.75 token drawn %d of 4000", counts[1]);
    lw_rng_seed(&rng, 42);
    for (int i = 0; i < 50; i++) {
        float logits[3] = {0.0f, logf(3.0f), -INFINITY};
        ck_assert_int_eq(lw_sample(logits, 3, 1.0f, 0.0f, &rng), first[i]);
    }
    /* top_p 0.5 keeps only the 0.6 token; temperature 0 is the argmax */
    for (int i = 0; i < 200; i++) {
        float logits[3] = {logf(0.3f), logf(0.6f), logf(0.1f)};
        ck_assert_int_eq(lw_sample(logits, 3, 1.0f, 0.5f, &rng), 1);
    }
    float logits[3] = {1.0f, 5.0f, 2.0f};
    ck_assert_int_eq(lw_sample(logits, 3, 0.0f, 0.0f, &rng), 1);
}
END_TEST

static bool stop_after_three(void *user, int token)
{
    return ++*(int *)user < 3;
}

START_TEST(generation_stops_at_stop_ids_and_callback)
{
    const golden_record *r = &gold.rec[0];
    lw_state *s = new_state(r->T + 64, false);
    int out[64], n = 0, calls = 0;
    /* the 5th greedy token as a stop id ends generation right after it */
    lw_generate_args g = {.max_new = 64, .stop_ids = &r->greedy[4], .n_stop = 1};
    ck_assert(lw_generate(model, s, r->ids, r->T, &g, out, &n) == LW_OK);
    int first = 0;
    while (r->greedy[first] != r->greedy[4]) first++;
    ck_assert_int_eq(n, first + 1);
    g = (lw_generate_args){.max_new = 64, .on_token = stop_after_three, .user = &calls};
    ck_assert(lw_generate(model, s, r->ids, r->T, &g, out, &n) == LW_OK);
    ck_assert_int_eq(n, 3);
    /* sampled generation is reproducible from its seed */
    int a[16], b[16], na, nb;
    g = (lw_generate_args){.max_new = 16, .temperature = 0.9f, .top_p = 0.95f, .seed = 7};
    ck_assert(lw_generate(model, s, r->ids, r->T, &g, a, &na) == LW_OK);
    ck_assert(lw_generate(model, s, r->ids, r->T, &g, b, &nb) == LW_OK);
    ck_assert_int_eq(na, nb);
    for (int i = 0; i < na; i++) ck_assert_int_eq(a[i], b[i]);
    lw_state_free(s);
}
END_TEST

static TCase *model_case(const char *name, void (*setup)(void), int n_records, bool stories)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, logits_match_pytorch, 0, n_records);
    tcase_add_loop_test(tc, hidden_states_match_pytorch, 0, n_records);
    tcase_add_loop_test(tc, greedy_tokens_match_pytorch, 0, n_records);
    tcase_add_test(tc, other_routes_give_the_same_numbers);
    tcase_add_test(tc, segments_continue_the_prefix_independently);
    tcase_add_test(tc, bad_calls_fail_cleanly);
    if (stories) {  /* generation logic; the small model keeps it fast */
        tcase_add_test(tc, generation_stops_at_stop_ids_and_callback);
        tcase_add_test(tc, stories_reproduces_greedy_ref);
    }
    return tc;
}

int main(void)
{
    Suite *s = suite_create("forward");
    suite_add_tcase(s, model_case("stories260k", setup_stories, 3, true));
    suite_add_tcase(s, model_case("smollm2", setup_smollm2, 3, false));
    suite_add_tcase(s, model_case("gemma3", setup_gemma3, 4, false));
    TCase *tc = tcase_create("sampling");
    tcase_add_test(tc, sampling_is_seeded_and_follows_the_distribution);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
