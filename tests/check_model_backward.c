/* Backward through the frozen model to its input embeddings, held to central
 * finite differences of the cross-entropy loss on tiny random models: a
 * llama-like one (GQA, both RoPE layouts, untied output) and a gemma3-like
 * one (qk-norm, post norms, scaled embeddings, GeGLU, Gemma norms, two
 * sliding-window layers and a global one, tied output). Inputs mix token ids
 * and embeddings. The check itself is shown to catch a wrong gradient and a
 * wrong RoPE layout or window, so passing means something. */
#include "testlib.h"
#include "tiny_models.h"
#include "model.h"
#include "ops.h"
#include "random_weights.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 7 };

/* The rows carrying a loss (the last one, row 5, leaves row 6 without any). */
static const int targets[T] = {-1, 4, -1, -1, 7, 2, -1};
static const bool is_embed[T] = {true, false, true, true, false, true, false};

typedef struct {
    lw_model *m;
    lw_state *s;
    lw_backward_scratch *g;
    int ids[T];
    float *embeds;   /* [T, H] for the rows in is_embed */
    float *logits;   /* [T, V] */
    float *probs;    /* [T, V] */
    float *dlogits;  /* [T, V] */
} fixture;

/* Around the RMS of the token embeddings, so embedding rows look like the
 * model's own. */
static double table_rms(const lw_model *m)
{
    int rows = m->cfg.vocab < 64 ? m->cfg.vocab : 64;
    size_t n = (size_t)rows * m->cfg.hidden;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)m->token_embd[i] * m->token_embd[i];
    return sqrt(ss / (double)n);
}

/* Takes m; draws the inputs from seed. */
static void setup_model(fixture *f, lw_model *m, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->m = m;
    const lw_model_config *c = &m->cfg;
    ck_assert_int_eq(lw_state_alloc(f->m, T, true, &f->s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(f->m, T, &f->g), LW_OK);
    int H = c->hidden, V = c->vocab;
    lw_rng r;
    lw_rng_seed(&r, seed + 1000);
    for (int t = 0; t < T; t++) f->ids[t] = (int)lw_rng_below(&r, (uint64_t)V);
    f->embeds = calloc((size_t)T * H, sizeof(float));
    double size = f->m->embed_scale * table_rms(f->m);
    for (int i = 0; i < T * H; i++) f->embeds[i] = (float)(size * lw_rng_normal(&r));
    f->logits = calloc((size_t)T * V, sizeof(float));
    f->probs = calloc((size_t)T * V, sizeof(float));
    f->dlogits = calloc((size_t)T * V, sizeof(float));
}

static void setup(fixture *f, const lw_model_config *c, uint64_t seed)
{
    lw_model *m = NULL;
    ck_assert_int_eq(lw_model_init_random(c, seed, &m), LW_OK);
    setup_model(f, m, seed);
}

static void teardown(fixture *f)
{
    lw_backward_scratch_free(f->g);
    lw_state_free(f->s);
    lw_model_free(f->m);
    free(f->embeds);
    free(f->logits);
    free(f->probs);
    free(f->dlogits);
}

/* Forward of the mixed ids/embeds rows, then the loss's dlogits. */
static float forward_mixed(fixture *f)
{
    lw_forward_args a = {.ids = f->ids, .embeds = f->embeds, .is_embed = is_embed, .T = T,
                         .logits = f->logits, .all_logits = true, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
    int V = f->m->cfg.vocab;
    float loss = cross_entropy_forward(f->probs, f->logits, targets, T, V);
    memset(f->dlogits, 0, (size_t)T * V * sizeof(float));
    cross_entropy_backward(f->dlogits, f->probs, targets, T, V, 1.0f);
    return loss;
}

/* The loss with every row fed as an embedding x [T, H]. */
static float loss_of_embeds(fixture *f, const float *x)
{
    lw_forward_args a = {.embeds = x, .T = T, .logits = f->logits, .all_logits = true, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
    return cross_entropy_forward(f->probs, f->logits, targets, T, f->m->cfg.vocab);
}

/* The first block's input of the mixed rows, all as embeddings. */
static void first_block_input(const fixture *f, float *x)
{
    int H = f->m->cfg.hidden;
    for (int t = 0; t < T; t++) {
        float *row = x + (size_t)t * H;
        if (is_embed[t])
            memcpy(row, f->embeds + (size_t)t * H, (size_t)H * sizeof(float));
        else
            embedding_forward(row, &f->ids[t], f->m->token_embd, 1, H, f->m->embed_scale);
    }
}

/* d loss / d x by central differences, every element. */
static void finite_differences(fixture *f, float *x, float *fd)
{
    const float eps = 3e-3f;
    int n = T * f->m->cfg.hidden;
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        float up = loss_of_embeds(f, x);
        x[i] = keep - eps;
        float down = loss_of_embeds(f, x);
        x[i] = keep;
        fd[i] = (up - down) / (2.0f * eps);
    }
}

/* Elements where the two disagree beyond float finite differences' noise:
 * a tolerance relative to the element and to the gradient's overall size. */
static int mismatches(const float *an, const float *fd, int n, double *worst)
{
    double scale = 0.0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(fd[i]));
    int bad = 0;
    *worst = 0.0;
    for (int i = 0; i < n; i++) {
        double err = fabs((double)an[i] - fd[i]);
        double tol = 2e-2 * fabs(fd[i]) + 5e-3 * scale + 1e-4;
        *worst = fmax(*worst, err / tol);
        bad += err > tol;
    }
    return bad;
}

/* Analytic gradient (mixed rows) and finite differences (same rows as embeddings). */
static void gradients(fixture *f, float *an, float *fd)
{
    int H = f->m->cfg.hidden;
    float loss = forward_mixed(f);
    ck_assert(isfinite(loss) && loss > 0.0f);
    ck_assert_int_eq(lw_model_backward(f->m, f->s, f->g, f->dlogits, an), LW_OK);
    float *x = calloc((size_t)T * H, sizeof(float));
    first_block_input(f, x);
    /* feeding the id rows as their embeddings changes nothing */
    ck_assert_float_eq_tol(loss_of_embeds(f, x), loss, 1e-5f);
    finite_differences(f, x, fd);
    free(x);
}

/* Every element of d_embeds against finite differences. */
static void check_fixture(fixture *f)
{
    const lw_model_config *c = &f->m->cfg;
    int n = T * c->hidden;
    float *an = calloc((size_t)n, sizeof(float)), *fd = calloc((size_t)n, sizeof(float));
    gradients(f, an, fd);
    double worst;
    int bad = mismatches(an, fd, n, &worst);
    ck_assert_msg(bad == 0, "%s: %d of %d elements of d_embeds disagree with finite differences (worst %.2f x tol)",
                  c->name, bad, n, worst);
    /* not vacuous: the gradient reaches every row up to the last loss row */
    for (int t = 0; t <= 5; t++) {
        double norm = 0.0;
        for (int i = 0; i < c->hidden; i++) norm += fabs(an[t * c->hidden + i]);
        ck_assert_msg(norm > 1e-4, "%s: row %d got no gradient", c->name, t);
    }
    free(an);
    free(fd);
}

static void check_against_fd(const lw_model_config *c, uint64_t seed)
{
    fixture f;
    setup(&f, c, seed);
    check_fixture(&f);
    teardown(&f);
}

START_TEST(llama_interleaved_matches_finite_differences)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    check_against_fd(&c, 1);
}
END_TEST

START_TEST(llama_half_rope_matches_finite_differences)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_SAFETENSORS);
    check_against_fd(&c, 2);
}
END_TEST

START_TEST(gemma3_matches_finite_differences)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    check_against_fd(&c, 3);
}
END_TEST

START_TEST(gemma3_other_seed_matches_finite_differences)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    check_against_fd(&c, 4);
}
END_TEST

/* q/k/v biases shift q, k and v but not what flows back to x: the
 * backward must still go through the biased activations it saved. */
START_TEST(qwen2_bias_matches_finite_differences)
{
    lw_model_config c = tl_tiny_qwen2_config();
    check_against_fd(&c, 5);
}
END_TEST

START_TEST(qwen3_matches_finite_differences)
{
    lw_model_config c = tl_tiny_qwen3_config();
    check_against_fd(&c, 6);
}
END_TEST

/* Real weights: stories260K (llama2.c: interleaved RoPE, GQA, untied). */
START_TEST(stories260k_matches_finite_differences)
{
    const char *path = tl_shared("models/stories260k/stories260K.bin");
    tl_require_file(path);
    lw_model *m = NULL;
    ck_assert_msg(lw_model_open(path, LW_WEIGHTS_LLAMA2C, &m) == LW_OK, "%s", lw_last_error());
    fixture f;
    setup_model(&f, m, 9);
    check_fixture(&f);
    teardown(&f);
}
END_TEST

/* The check catches a single wrong element of a correct gradient. */
START_TEST(check_detects_a_perturbed_gradient)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, 1);
    int n = T * c.hidden;
    float *an = calloc((size_t)n, sizeof(float)), *fd = calloc((size_t)n, sizeof(float));
    gradients(&f, an, fd);
    double worst, scale = 0.0;
    ck_assert_int_eq(mismatches(an, fd, n, &worst), 0);
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(fd[i]));
    an[3 * c.hidden + 5] += (float)(0.05 * scale);
    ck_assert_int_eq(mismatches(an, fd, n, &worst), 1);
    free(an);
    free(fd);
    teardown(&f);
}
END_TEST

/* Gradient of one model, differences of another: the check must see it. */
static int cross_mismatches(const lw_model_config *grad_cfg, const lw_model_config *fd_cfg, uint64_t seed)
{
    fixture fa, fb;
    setup(&fa, grad_cfg, seed);
    setup(&fb, fd_cfg, seed);  /* same seed: same weights and inputs */
    int n = T * grad_cfg->hidden;
    float *an = calloc((size_t)n, sizeof(float)), *fd = calloc((size_t)n, sizeof(float));
    float *unused = calloc((size_t)n, sizeof(float));
    forward_mixed(&fa);
    ck_assert_int_eq(lw_model_backward(fa.m, fa.s, fa.g, fa.dlogits, an), LW_OK);
    gradients(&fb, unused, fd);
    double worst;
    int bad = mismatches(an, fd, n, &worst);
    free(an);
    free(fd);
    free(unused);
    teardown(&fa);
    teardown(&fb);
    return bad;
}

START_TEST(check_detects_a_wrong_rope_layout)
{
    lw_model_config inter = tl_tiny_llama_config(LW_WEIGHTS_GGUF), half = tl_tiny_llama_config(LW_WEIGHTS_SAFETENSORS);
    ck_assert_int_gt(cross_mismatches(&inter, &half, 1), 0);
}
END_TEST

START_TEST(check_detects_a_wrong_window)
{
    lw_model_config windowed = tl_tiny_gemma3_config(3), full = tl_tiny_gemma3_config(6);
    ck_assert_int_gt(cross_mismatches(&windowed, &full, 3), 0);
}
END_TEST

/* The loss-rows entry point gives what the dense one does, and rows after
 * the last loss row get exactly nothing (causal attention). */
START_TEST(loss_rows_entry_matches_dense)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f;
    setup(&f, &c, 5);
    int n = T * c.hidden, V = c.vocab;
    float *dense = calloc((size_t)n, sizeof(float)), *sparse = calloc((size_t)n, sizeof(float));
    forward_mixed(&f);
    ck_assert_int_eq(lw_model_backward(f.m, f.s, f.g, f.dlogits, dense), LW_OK);
    int rows[T], n_rows = 0;
    float *dl_rows = calloc((size_t)T * V, sizeof(float));
    for (int t = 0; t < T; t++)
        if (targets[t] >= 0) {
            memcpy(dl_rows + (size_t)n_rows * V, f.dlogits + (size_t)t * V, (size_t)V * sizeof(float));
            rows[n_rows++] = t;
        }
    memset(sparse, 0xff, (size_t)n * sizeof(float));  /* NaNs: every element must be written */
    ck_assert_int_eq(lw_model_backward_rows(f.m, f.s, f.g, rows, n_rows, dl_rows, sparse), LW_OK);
    double scale = 0.0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(dense[i]));
    ck_assert(scale > 0.0);
    for (int i = 0; i < n; i++) ck_assert_float_eq_tol(sparse[i], dense[i], 1e-6 * scale);
    for (int i = 6 * c.hidden; i < n; i++) ck_assert_float_eq(dense[i], 0.0f);
    /* no loss rows: zero gradient */
    ck_assert_int_eq(lw_model_backward_rows(f.m, f.s, f.g, rows, 0, dl_rows, sparse), LW_OK);
    for (int i = 0; i < n; i++) ck_assert_float_eq(sparse[i], 0.0f);
    free(dense);
    free(sparse);
    free(dl_rows);
    teardown(&f);
}
END_TEST

/* A forward that continues after C cached positions (a shared prompt head
 * run once) gives its rows the gradient the whole forward gives them, the
 * cached positions held constant; loss rows lie after the head. */
static void continuation_matches_full(const lw_model_config *c, uint64_t seed)
{
    enum { C = 2 };
    fixture f;
    setup(&f, c, seed);
    int H = c->hidden, V = c->vocab, rows[2] = {4, 5};
    float *full = calloc((size_t)T * H, sizeof(float)), *cont = calloc((size_t)T * H, sizeof(float));
    float *dl = calloc((size_t)2 * V, sizeof(float)), *logits = calloc((size_t)T * V, sizeof(float));
    forward_mixed(&f);
    for (int i = 0; i < 2; i++) memcpy(dl + (size_t)i * V, f.dlogits + (size_t)rows[i] * V, (size_t)V * sizeof(float));
    ck_assert_int_eq(lw_model_backward_rows(f.m, f.s, f.g, rows, 2, dl, full), LW_OK);

    lw_forward_args head = {.ids = f.ids, .embeds = f.embeds, .is_embed = is_embed, .T = C, .capture_layer = -1,
                            .logits = logits};
    ck_assert_int_eq(lw_forward(f.m, f.s, &head), LW_OK);
    lw_forward_args tail = {.ids = f.ids + C, .embeds = f.embeds + (size_t)C * H, .is_embed = is_embed + C,
                            .T = T - C, .pos0 = C, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f.m, f.s, &tail), LW_OK);
    int tail_rows[2] = {rows[0] - C, rows[1] - C};
    ck_assert_int_eq(lw_model_backward_rows(f.m, f.s, f.g, tail_rows, 2, dl, cont), LW_OK);

    double lscale = 0.0, scale = 0.0;
    for (size_t i = 0; i < (size_t)(T - C) * V; i++) lscale = fmax(lscale, fabs(f.logits[(size_t)C * V + i]));
    for (size_t i = 0; i < (size_t)(T - C) * V; i++)
        ck_assert_float_eq_tol(logits[i], f.logits[(size_t)C * V + i], 1e-5 * lscale);
    for (size_t i = 0; i < (size_t)(T - C) * H; i++) scale = fmax(scale, fabs(full[(size_t)C * H + i]));
    ck_assert(scale > 0.0);
    for (size_t i = 0; i < (size_t)(T - C) * H; i++)
        ck_assert_msg(fabs(cont[i] - full[(size_t)C * H + i]) <= 1e-5 * scale, "%s: d_embeds[%zu] %g, full %g",
                      c->name, i, (double)cont[i], (double)full[(size_t)C * H + i]);
    free(full), free(cont), free(dl), free(logits);
    teardown(&f);
}

START_TEST(continuation_over_a_cached_head_matches_the_full_backward)
{
    lw_model_config g = tl_tiny_gemma3_config(3);   /* sliding window 3: the head leaves it */
    continuation_matches_full(&g, 11);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    continuation_matches_full(&l, 12);
}
END_TEST

/* Packed: a head of C tokens run once, then NS segments (examples) after
 * it in one forward with saved activations and one backward. Each segment's
 * final states and input gradients must be what running that segment alone
 * after the head gives. */
static void segments_match_alone(const lw_model_config *c, uint64_t seed)
{
    enum { C = 2, NS = 3, ROWS = 9, CAP = 16 };
    const int len[NS] = {3, 2, 4};
    lw_model *m = NULL;
    ck_assert_int_eq(lw_model_init_random(c, seed, &m), LW_OK);
    int H = c->hidden, n = c->n_layers;
    lw_rng r;
    lw_rng_seed(&r, seed + 5);
    int head[C], ids[ROWS];
    bool emb[ROWS];
    float *x = calloc((size_t)ROWS * H, sizeof(float)), *dy = calloc((size_t)ROWS * H, sizeof(float));
    for (int t = 0; t < C; t++) head[t] = (int)lw_rng_below(&r, (uint64_t)c->vocab);
    for (int t = 0; t < ROWS; t++) ids[t] = (int)lw_rng_below(&r, (uint64_t)c->vocab), emb[t] = t % 3 != 1;
    double size = m->embed_scale * table_rms(m);
    for (int i = 0; i < ROWS * H; i++) x[i] = (float)(size * lw_rng_normal(&r));
    /* loss rows: the last two of each segment; a random upstream gradient on their logits */
    int rows[2 * NS], n_rows = 0;
    for (int i = 0, r0 = 0; i < NS; r0 += len[i++]) rows[n_rows++] = r0 + len[i] - 2, rows[n_rows++] = r0 + len[i] - 1;
    float *dl = calloc((size_t)n_rows * c->vocab, sizeof(float));
    for (int i = 0; i < n_rows * c->vocab; i++) dl[i] = (float)lw_rng_normal(&r) / (float)c->vocab;

    lw_state *s;
    lw_backward_scratch *g;
    float *fin = calloc((size_t)ROWS * H, sizeof(float)), *one = calloc((size_t)ROWS * H, sizeof(float));
    float *dx1 = calloc((size_t)ROWS * H, sizeof(float));
    ck_assert_int_eq(lw_state_alloc(m, CAP, true, &s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(m, CAP, &g), LW_OK);
    float head_out[C * 64];
    ck_assert_int_le(H, 64);
    lw_forward_args a = {.ids = head, .T = C, .capture_layer = n, .hidden_out = head_out};
    ck_assert_int_eq(lw_forward(m, s, &a), LW_OK);
    lw_forward_args p = {.ids = ids, .embeds = x, .is_embed = emb, .T = ROWS, .pos0 = C, .capture_layer = n,
                         .hidden_out = fin, .n_segments = NS, .segment_len = len};
    ck_assert_int_eq(lw_forward(m, s, &p), LW_OK);
    ck_assert_int_eq(lw_model_backward_rows(m, s, g, rows, n_rows, dl, dy), LW_OK);

    for (int i = 0, r0 = 0, k = 0; i < NS; r0 += len[i++]) {
        size_t o = (size_t)r0 * H;
        ck_assert_int_eq(lw_forward(m, s, &a), LW_OK);
        lw_forward_args alone = {.ids = ids + r0, .embeds = x + o, .is_embed = emb + r0, .T = len[i], .pos0 = C,
                                 .capture_layer = n, .hidden_out = one};
        ck_assert_int_eq(lw_forward(m, s, &alone), LW_OK);
        int mine[2] = {len[i] - 2, len[i] - 1};
        ck_assert_int_eq(lw_model_backward_rows(m, s, g, mine, 2, dl + (size_t)k * c->vocab, dx1), LW_OK);
        k += 2;
        double fs = 0.0, ds = 0.0;
        for (size_t j = 0; j < (size_t)len[i] * H; j++) fs = fmax(fs, fabs(one[j])), ds = fmax(ds, fabs(dx1[j]));
        ck_assert(ds > 0.0);
        for (size_t j = 0; j < (size_t)len[i] * H; j++) {
            ck_assert_msg(fabs(fin[o + j] - one[j]) <= 1e-5 * fs, "%s segment %d: state %zu %g alone %g", c->name, i,
                          j, (double)fin[o + j], (double)one[j]);
            ck_assert_msg(fabs(dy[o + j] - dx1[j]) <= 1e-5 * ds, "%s segment %d: d_embeds %zu %g alone %g", c->name,
                          i, j, (double)dy[o + j], (double)dx1[j]);
        }
    }
    lw_backward_scratch_free(g);
    lw_state_free(s);
    lw_model_free(m);
    free(x), free(dy), free(dl), free(fin), free(one), free(dx1);
}

START_TEST(segments_after_a_cached_head_match_each_alone)
{
    lw_model_config g = tl_tiny_gemma3_config(3);
    segments_match_alone(&g, 21);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    segments_match_alone(&l, 22);
}
END_TEST

static void expect_invalid(lw_status st, const char *words)
{
    ck_assert_int_eq(st, LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), words) != NULL, "message '%s' lacks '%s'", lw_last_error(), words);
}

START_TEST(refuses_what_it_cannot_go_back_through)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, 6);
    int n = T * c.hidden;
    float *d = calloc((size_t)n, sizeof(float));

    /* no forward yet */
    expect_invalid(lw_model_backward(f.m, f.s, f.g, f.dlogits, d), "all blocks");

    /* a state that keeps no activations */
    lw_state *plain = NULL;
    ck_assert_int_eq(lw_state_alloc(f.m, T, false, &plain), LW_OK);
    lw_forward_args a = {.ids = f.ids, .T = T, .logits = f.logits, .all_logits = true, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f.m, plain, &a), LW_OK);
    expect_invalid(lw_model_backward(f.m, plain, f.g, f.dlogits, d), "save_acts");
    lw_state_free(plain);

    /* a continuation whose cache was cut back below its start */
    lw_forward_args head = {.ids = f.ids, .T = 3, .logits = f.logits, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f.m, f.s, &head), LW_OK);
    lw_forward_args tail = {.ids = f.ids + 3, .T = 4, .pos0 = 3, .logits = f.logits, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(f.m, f.s, &tail), LW_OK);
    lw_state_rewind(f.s, 2);
    expect_invalid(lw_model_backward(f.m, f.s, f.g, f.dlogits, d), "all blocks");

    /* a forward that stopped after a captured layer */
    float *hidden = calloc((size_t)n, sizeof(float));
    lw_forward_args cap = {.ids = f.ids, .T = T, .capture_layer = 1, .hidden_out = hidden};
    ck_assert_int_eq(lw_forward(f.m, f.s, &cap), LW_OK);
    expect_invalid(lw_model_backward(f.m, f.s, f.g, f.dlogits, d), "all blocks");
    free(hidden);

    /* a good forward, then bad loss rows and a bad scratch */
    forward_mixed(&f);
    ck_assert_int_eq(lw_model_backward(f.m, f.s, f.g, f.dlogits, d), LW_OK);
    int unordered[2] = {4, 1}, outside[1] = {T};
    expect_invalid(lw_model_backward_rows(f.m, f.s, f.g, unordered, 2, f.dlogits, d), "rows must increase");
    expect_invalid(lw_model_backward_rows(f.m, f.s, f.g, outside, 1, f.dlogits, d), "rows must increase");
    expect_invalid(lw_model_backward_rows(f.m, f.s, f.g, outside, -1, f.dlogits, d), "loss rows");
    expect_invalid(lw_model_backward(f.m, f.s, NULL, f.dlogits, d), "no scratch");
    lw_backward_scratch *small = NULL;
    ck_assert_int_eq(lw_backward_scratch_alloc(f.m, T - 1, &small), LW_OK);
    expect_invalid(lw_model_backward(f.m, f.s, small, f.dlogits, d), "exceed");
    lw_backward_scratch_free(small);
    lw_model_config other_cfg = tl_tiny_gemma3_config(3);
    lw_model *other = NULL;
    lw_backward_scratch *foreign = NULL;
    ck_assert_int_eq(lw_model_init_random(&other_cfg, 1, &other), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(other, T, &foreign), LW_OK);
    expect_invalid(lw_model_backward(f.m, f.s, foreign, f.dlogits, d), "another model");
    lw_backward_scratch_free(foreign);
    lw_model_free(other);
    expect_invalid(lw_backward_scratch_alloc(f.m, 0, &small), "scratch");
    ck_assert_ptr_null(small);

    free(d);
    teardown(&f);
}
END_TEST

START_TEST(random_model_is_seeded_and_checked)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    lw_model *a = NULL, *b = NULL, *d = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 7, &a), LW_OK);
    ck_assert_int_eq(lw_model_init_random(&c, 7, &b), LW_OK);
    ck_assert_int_eq(lw_model_init_random(&c, 8, &d), LW_OK);
    size_t n = (size_t)c.ffn * c.hidden;
    ck_assert_mem_eq(a->layers[2].w_down, b->layers[2].w_down, n * sizeof(float));
    ck_assert(memcmp(a->layers[2].w_down, d->layers[2].w_down, n * sizeof(float)) != 0);
    ck_assert_ptr_eq(a->output, a->token_embd);  /* tied */
    ck_assert_ptr_nonnull(a->layers[0].q_norm);
    ck_assert_ptr_nonnull(a->layers[0].post_ffn_norm);
    ck_assert_float_eq_tol(a->embed_scale, 4.0f, 1e-6f);
    ck_assert_float_eq(a->attn_scale, 0.3f);
    lw_model_free(a);
    lw_model_free(b);
    lw_model_free(d);

    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    ck_assert_int_eq(lw_model_init_random(&l, 7, &a), LW_OK);
    ck_assert_ptr_ne(a->output, a->token_embd);
    ck_assert_ptr_null(a->layers[1].q_norm);
    ck_assert_float_eq(a->embed_scale, 1.0f);
    lw_model_free(a);

    l.n_kv_heads = 3;
    expect_invalid(lw_model_init_random(&l, 7, &a), "kv heads");
    ck_assert_ptr_null(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_backward");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, llama_interleaved_matches_finite_differences);
    tcase_add_test(tc, llama_half_rope_matches_finite_differences);
    tcase_add_test(tc, gemma3_matches_finite_differences);
    tcase_add_test(tc, gemma3_other_seed_matches_finite_differences);
    tcase_add_test(tc, qwen2_bias_matches_finite_differences);
    tcase_add_test(tc, qwen3_matches_finite_differences);
    tcase_add_test(tc, stories260k_matches_finite_differences);
    tcase_add_test(tc, check_detects_a_perturbed_gradient);
    tcase_add_test(tc, check_detects_a_wrong_rope_layout);
    tcase_add_test(tc, check_detects_a_wrong_window);
    tcase_add_test(tc, loss_rows_entry_matches_dense);
    tcase_add_test(tc, continuation_over_a_cached_head_matches_the_full_backward);
    tcase_add_test(tc, segments_after_a_cached_head_match_each_alone);
    tcase_add_test(tc, refuses_what_it_cannot_go_back_through);
    tcase_add_test(tc, random_model_is_seeded_and_checked);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
