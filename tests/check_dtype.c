/* Frozen weights kept narrow (issue 19, item 1): a model loaded with
 * --dtype bf16 holds its projections and output head in bf16 (narrow_weights.h)
 * and the plan's products read them (frozen_matmul.h).
 *
 * Two references. "fp32": the same model as loaded, the project's reference
 * path; bf16 must stay within a stated tolerance of it (the weights differ
 * by bf16's rounding, ~2^-9 relative). "Rounded": an fp32 model whose big
 * matrices are rounded to bf16 values in place (so it computes exactly what
 * the bf16 model computes, up to the order of the fp32 sums); the bf16 path
 * must match it to float noise: that checks the wiring (every product reads
 * the right narrow matrix, forward and backward), not just closeness.
 *
 * Tolerances (stated once): logits within 3e-2 of the fp32 logits' largest
 * magnitude on the tiny random models and within 5e-2 on the real ones (24
 * to 30 layers of bf16 rounding); within 1e-4 of it against the rounded
 * reference. Training losses within 2% of fp32's. */
#include "testlib.h"
#include "cmd_common.h"
#include "cuda_blas.h"   /* lw_bf16_from_f32: the same rounding as bf16.c's */
#include "lw_cli.h"
#include "model.h"
#include "model_load.h"
#include "narrow_weights.h"
#include "ops.h"
#include "random_weights.h"
#include "rng.h"
#include "model_probe.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T = 9 };

static const double TOL_TINY = 3e-2, TOL_REAL = 5e-2, TOL_SAME = 1e-4;


/* bf16: 0 fp32, 1 bf16 forward only, 2 bf16 with the backward's copy. */
static lw_model *random_model(const lw_model_config *c, int bf16)
{
    lw_model *m = NULL;
    ck_assert_int_eq(lw_model_init_random(c, 5, &m), LW_OK);
    if (bf16) ck_assert_msg(lw_model_narrow_bf16(m, bf16 == 2) == LW_OK, "%s", lw_last_error());
    return m;
}

static void round_in_place(float *w, size_t n)
{
    for (size_t i = 0; i < n; i++) w[i] = lw_f32_from_bf16(lw_bf16_from_f32(w[i]));
}

/* The fp32 model whose big matrices hold bf16 values; a tied head gets its
 * own rounded copy, since the bf16 model keeps the table itself in fp32. */
static lw_model *rounded_model(const lw_model_config *c)
{
    lw_model *m = random_model(c, 0);
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t F = (size_t)c->ffn, V = (size_t)c->vocab;
    for (int l = 0; l < c->n_layers; l++) {
        lw_layer_weights *L = &m->layers[l];
        round_in_place(L->wqkv, (qd + 2 * kvd) * H);
        round_in_place(L->wo, H * qd);
        round_in_place(L->w_gate_up, 2 * F * H);
        round_in_place(L->w_down, H * F);
    }
    if (m->output == m->token_embd) {
        m->output = malloc(V * H * sizeof(float));
        ck_assert_ptr_nonnull(m->output);
        memcpy(m->output, m->token_embd, V * H * sizeof(float));
    }
    round_in_place(m->output, V * H);
    return m;
}

/* ---- the model holds bf16 and nothing else -------------------------------- */

START_TEST(bf16_model_drops_its_fp32_matrices)
{
    lw_model_config c = tl_tiny_family_config(_i);
    lw_model *f = random_model(&c, 0), *b = random_model(&c, 1), *bb2 = random_model(&c, 2);
    ck_assert(lw_model_dtype(f) == LW_WEIGHTS_F32 && lw_model_dtype(b) == LW_WEIGHTS_BF16);
    for (int l = 0; l < c.n_layers; l++) {
        const lw_layer_weights *L = &b->layers[l];
        ck_assert(!L->wqkv && !L->wq && !L->wk && !L->wv && !L->wo && !L->w_gate_up && !L->w_gate && !L->w_up &&
                  !L->w_down);
    }
    ck_assert_ptr_null(b->output);
    ck_assert_ptr_nonnull(b->token_embd);   /* the table stays fp32 */
    ck_assert_ptr_nonnull(lw_narrow_matrix(bb2, 0, LW_W_WQ));
    ck_assert_ptr_null(lw_narrow_matrix(b, 0, LW_W_ATTN_NORM));
    ck_assert_ptr_null(lw_narrow_matrix(f, 0, LW_W_WQKV));
    /* the projections: fp32 4 bytes a value; bf16 2 (forward only) or 4 (both copies on AVX-512) */
    size_t fb = lw_model_weight_bytes_held(f), bb = lw_model_weight_bytes_held(b);
    size_t bb2b = lw_model_weight_bytes_held(bb2);
    /* (rows pad to 32 values: at hidden 16 bf16 takes fp32's bytes; the real models check the half) */
    ck_assert_msg(bb <= fb && bb <= bb2b, "bf16 %zu / %zu bytes, fp32 %zu", bb, bb2b, fb);
    /* narrowing twice is refused */
    ck_assert_int_eq(lw_model_narrow_bf16(b, false), LW_ERR_INVALID);
    lw_model_free(f);
    lw_model_free(b);
    lw_model_free(bb2);
}
END_TEST

/* ---- forward ------------------------------------------------------------- */

START_TEST(tiny_logits_bf16_close_to_fp32_and_equal_to_rounded)
{
    lw_model_config c = tl_tiny_family_config(_i);
    lw_model *f = random_model(&c, 0), *b = random_model(&c, 1), *r = rounded_model(&c);
    int ids[T];
    tl_random_ids(ids, T, c.vocab, 17 + (uint64_t)_i);
    float *lf = tl_all_logits(f, ids, T), *lb = tl_all_logits(b, ids, T), *lr = tl_all_logits(r, ids, T);
    size_t n = (size_t)T * c.vocab;
    double scale, d_f = tl_max_abs_diff(lb, lf, n, &scale);
    ck_assert_msg(d_f <= TOL_TINY * scale, "%s: bf16 vs fp32 max |d| %g, scale %g", c.name, d_f, scale);
    ck_assert_msg(d_f > 0, "%s: bf16 logits equal fp32's: the narrow path was not taken", c.name);
    double d_r = tl_max_abs_diff(lb, lr, n, &scale);
    ck_assert_msg(d_r <= TOL_SAME * scale, "%s: bf16 vs rounded fp32 max |d| %g, scale %g", c.name, d_r, scale);
    fprintf(stderr, "%s: logits bf16 vs fp32 max |d| %.3g (%.2g of scale), vs rounded %.3g\n", c.name, d_f,
            d_f / scale, d_r);
    free(lf), free(lb), free(lr);
    lw_model_free(f), lw_model_free(b), lw_model_free(r);
}
END_TEST

/* ---- backward: dX wrt the input embeddings (what the bridge gets) ------- */

static const int targets[T] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static float loss_of(const lw_model *m, lw_state *s, const float *x, float *logits, float *probs)
{
    lw_forward_args a = {.embeds = x, .T = T, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_msg(lw_forward(m, s, &a) == LW_OK, "%s", lw_last_error());
    return cross_entropy_forward(probs, logits, targets, T, m->cfg.vocab);
}

/* d loss / d x analytically (lw_model_backward) into an. */
static void grad_embeds(const lw_model *m, const float *x, float *an)
{
    int V = m->cfg.vocab;
    lw_state *s = NULL;
    lw_backward_scratch *g = NULL;
    ck_assert_int_eq(lw_state_alloc(m, T, true, &s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(m, T, &g), LW_OK);
    float *logits = calloc((size_t)T * V, sizeof(float)), *probs = calloc((size_t)T * V, sizeof(float));
    float *dl = calloc((size_t)T * V, sizeof(float));
    float loss = loss_of(m, s, x, logits, probs);
    ck_assert(isfinite(loss) && loss > 0);
    cross_entropy_backward(dl, probs, targets, T, V, 1.0f);
    ck_assert_msg(lw_model_backward(m, s, g, dl, an) == LW_OK, "%s", lw_last_error());
    free(logits), free(probs), free(dl);
    lw_backward_scratch_free(g);
    lw_state_free(s);
}

START_TEST(tiny_backward_through_bf16_by_finite_differences)
{
    lw_model_config c = tl_tiny_family_config(_i);
    lw_model *b = random_model(&c, 2), *r = rounded_model(&c);
    int H = c.hidden, V = c.vocab, n = T * H;
    float *x = malloc((size_t)n * sizeof(float)), *an = calloc((size_t)n, sizeof(float));
    float *an_r = calloc((size_t)n, sizeof(float)), *fd = calloc((size_t)n, sizeof(float));
    lw_rng rng;
    lw_rng_seed(&rng, 23);
    for (int i = 0; i < n; i++) x[i] = (float)lw_rng_normal(&rng);
    grad_embeds(b, x, an);
    grad_embeds(r, x, an_r);
    /* central differences of the bf16 model's own loss */
    lw_state *s = NULL;
    ck_assert_int_eq(lw_state_alloc(b, T, false, &s), LW_OK);
    float *logits = calloc((size_t)T * V, sizeof(float)), *probs = calloc((size_t)T * V, sizeof(float));
    const float eps = 3e-3f;
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        float up = loss_of(b, s, x, logits, probs);
        x[i] = keep - eps;
        float down = loss_of(b, s, x, logits, probs);
        x[i] = keep;
        fd[i] = (up - down) / (2.0f * eps);
    }
    double scale = 0, worst = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(fd[i]));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double err = fabs((double)an[i] - fd[i]), tol = 2e-2 * fabs(fd[i]) + 5e-3 * scale + 1e-4;
        worst = fmax(worst, err / tol);
        bad += err > tol;
    }
    ck_assert_msg(scale > 1e-3, "%s: a vanishing gradient checks nothing (max |fd| %g)", c.name, scale);
    ck_assert_msg(bad == 0, "%s: %d of %d dX elements off their finite differences (worst %.2f x tol)", c.name, bad,
                  n, worst);
    double sc, d_r = tl_max_abs_diff(an, an_r, (size_t)n, &sc);
    ck_assert_msg(d_r <= TOL_SAME * sc, "%s: bf16 dX vs rounded fp32 dX max |d| %g, scale %g", c.name, d_r, sc);
    /* a forward-only bf16 model (no row-major copy on AVX-512) refuses a
     * backward with words, never reads a NULL */
    lw_model *fo = random_model(&c, 1);
    lw_state *s2 = NULL;
    lw_backward_scratch *g2 = NULL;
    ck_assert_int_eq(lw_state_alloc(fo, T, true, &s2), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(fo, T, &g2), LW_OK);
    float *dl = calloc((size_t)T * V, sizeof(float));
    loss_of(fo, s2, x, logits, probs);
    cross_entropy_backward(dl, probs, targets, T, V, 1.0f);
    lw_status st = lw_model_backward(fo, s2, g2, dl, an);
    ck_assert_msg(st == LW_OK || (st == LW_ERR_INVALID && strstr(lw_last_error(), "no weights") &&
                                  strstr(lw_last_error(), "backward")),
                  "%s: forward-only bf16 backward: %s", c.name, lw_last_error());
    free(dl);
    lw_backward_scratch_free(g2);
    lw_state_free(s2);
    lw_model_free(fo);
    free(x), free(an), free(an_r), free(fd), free(logits), free(probs);
    lw_state_free(s);
    lw_model_free(b), lw_model_free(r);
}
END_TEST

/* ---- greedy generation ----------------------------------------------------- */

/* bf16 greedy equals fp32's, or the first divergence is shown and explained:
 * fp32's top-2 gap there is within the logits' stated tolerance. Returns
 * the number of equal tokens. */
static int compare_greedy(const lw_model *f, const lw_model *b, const int *prompt, int n_prompt, int n, double tol)
{
    int *tf = malloc((size_t)n * sizeof(int)), *tb = malloc((size_t)n * sizeof(int));
    float *gf = malloc((size_t)n * sizeof(float)), *gb = malloc((size_t)n * sizeof(float));
    tl_greedy(f, prompt, n_prompt, n, tf, gf);
    tl_greedy(b, prompt, n_prompt, n, tb, gb);
    int k = 0;
    while (k < n && tf[k] == tb[k]) k++;
    if (k < n) {
        fprintf(stderr, "%s: greedy bf16 diverges from fp32 at token %d of %d (fp32 %d, bf16 %d); fp32's top-2 gap "
                "there %.4g, bf16's %.4g\n", f->cfg.name, k, n, tf[k], tb[k], gf[k], gb[k]);
        ck_assert_msg(gf[k] <= tol, "%s: divergence at token %d with a clear fp32 margin %g (> %g)", f->cfg.name, k,
                      gf[k], tol);
    } else {
        fprintf(stderr, "%s: greedy %d tokens identical in bf16 and fp32\n", f->cfg.name, n);
    }
    free(tf), free(tb), free(gf), free(gb);
    return k;
}

START_TEST(tiny_greedy_matches_or_divergence_is_explained)
{
    lw_model_config c = tl_tiny_family_config(_i);
    lw_model *f = random_model(&c, 0), *b = random_model(&c, 1);
    for (uint64_t p = 0; p < 3; p++) {
        int prompt[5];
        tl_random_ids(prompt, 5, c.vocab, 100 + p);
        /* the logits' own tolerance, measured on this prompt */
        float *lf = tl_all_logits(f, prompt, 5), *lb = tl_all_logits(b, prompt, 5);
        double scale, d = tl_max_abs_diff(lb, lf, (size_t)5 * c.vocab, &scale);
        compare_greedy(f, b, prompt, 5, 16, 2 * fmax(d, TOL_TINY * scale));
        free(lf), free(lb);
    }
    lw_model_free(f), lw_model_free(b);
}
END_TEST

/* ---- the real models ------------------------------------------------------ */

static const char *const REAL[] = {"SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"};

START_TEST(real_model_bf16_logits_and_greedy)
{
    const char *path = tl_model(REAL[_i]);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "note: %s absent: the real-model bf16 check is skipped\n", path);
        return;
    }
    lw_model *f = NULL, *b = NULL;
    ck_assert_msg(lw_model_open(path, LW_WEIGHTS_GGUF, &f) == LW_OK, "%s", lw_last_error());
    ck_assert_msg(lw_model_open(path, LW_WEIGHTS_GGUF, &b) == LW_OK, "%s", lw_last_error());
    ck_assert_msg(lw_model_narrow_bf16(b, false) == LW_OK, "%s", lw_last_error());
    /* forward only: the projections and head at 2 bytes a value, the fp32 table as before */
    size_t fb = lw_model_weight_bytes_held(f), bb = lw_model_weight_bytes_held(b);
    size_t table = (size_t)f->cfg.vocab * f->cfg.hidden * sizeof(float);
    fprintf(stderr, "%s: weights %.1f MB fp32, %.1f MB bf16 (of which the fp32 table %.1f MB)\n", f->cfg.name,
            fb / 1e6, bb / 1e6, table / 1e6);
    ck_assert_msg(bb - table <= 0.55 * (fb - table) + (f->output == f->token_embd ? 0.55 * table : 0),
                  "%s: bf16 holds %zu bytes besides the table, fp32 %zu", f->cfg.name, bb - table, fb - table);
    int ids[12];
    for (int i = 0; i < 12; i++) ids[i] = 100 + 37 * i;   /* ordinary tokens of both vocabularies */
    int V = f->cfg.vocab;
    float *lf = tl_all_logits(f, ids, 12), *lb = tl_all_logits(b, ids, 12);
    double scale, d = tl_max_abs_diff(lb, lf, (size_t)12 * V, &scale);
    int agree = 0;
    for (int t = 0; t < 12; t++) {
        int af = 0, ab = 0;
        for (int v = 1; v < V; v++) {
            if (lf[(size_t)t * V + v] > lf[(size_t)t * V + af]) af = v;
            if (lb[(size_t)t * V + v] > lb[(size_t)t * V + ab]) ab = v;
        }
        agree += af == ab;
    }
    fprintf(stderr, "%s: logits bf16 vs fp32 max |d| %.3g of scale %.3g (%.2g); argmax agrees at %d of 12 rows\n",
            f->cfg.name, d, scale, d / scale, agree);
    ck_assert_msg(d <= TOL_REAL * scale, "%s: max |d| %g > %g x %g", f->cfg.name, d, TOL_REAL, scale);
    compare_greedy(f, b, ids, 6, 24, 2 * d);
    free(lf), free(lb);
    lw_model_free(f), lw_model_free(b);
}
END_TEST

/* ---- lw train --dtype bf16 on the tiny pair -------------------------------- */

static lw_pair tiny_pair(void)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/tiny-qwen2_to_tiny-qwen3.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    return pair;
}

static void train_losses(const lw_pair *pair, const char *dtype, const char *dir, double *loss, int steps)
{
    const char *data = tl_shared("data/sst2");
    char train[600], out[600], cache[600], n_steps[16];
    snprintf(train, sizeof train, "%s/train.jsonl", data);
    tl_require_file(train);
    snprintf(out, sizeof out, "%s/run-%s", dir, dtype);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(n_steps, sizeof n_steps, "%d", steps);
    char *argv[] = {"--task", "sst2", "--train", train, "--limit-train", "8", "--steps", n_steps, "--batch", "2",
                    "--lr", "1e-3", "--warmup", "1", "--quiet", "--force", "--out", out, "--cache-dir", cache,
                    "--dtype", (char *)dtype};
    char *err = NULL;
    int rc = tl_run_command(lw_cmd_train, pair, &err, (int)(sizeof argv / sizeof argv[0]), argv);
    ck_assert_msg(rc == 0, "lw train --dtype %s: rc %d\n%s", dtype, rc, err);
    free(err);
    ck_assert_int_eq(tl_read_train_log(out, steps, loss, NULL), steps);
}

START_TEST(train_bf16_tracks_fp32)
{
    lw_pair pair = tiny_pair();
    const char *dir = tl_tmpdir("dtype_train");
    enum { STEPS = 4 };
    double lf[STEPS], lb[STEPS];
    train_losses(&pair, "fp32", dir, lf, STEPS);
    train_losses(&pair, "bf16", dir, lb, STEPS);
    bool differs = false;
    for (int i = 0; i < STEPS; i++) {
        fprintf(stderr, "train step %d: loss fp32 %.6f bf16 %.6f\n", i + 1, lf[i], lb[i]);
        ck_assert_msg(isfinite(lb[i]) && fabs(lb[i] - lf[i]) <= 0.02 * fabs(lf[i]),
                      "step %d: bf16 loss %g, fp32 %g", i + 1, lb[i], lf[i]);
        differs |= lb[i] != lf[i];
    }
    /* the losses are logged to 6 decimals, which one-thread OpenBLAS (what
     * lw commands run since the thread pool) can leave equal on the tiny
     * pair: the trained bridges differ if the dtype reached the models */
    char pf[700], pb[700];
    snprintf(pf, sizeof pf, "%s/run-fp32/final/bridge.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/run-bf16/final/bridge.safetensors", dir);
    size_t nf = 0, nb = 0;
    char *bf = tl_read_file(pf, &nf), *bb = tl_read_file(pb, &nb);
    ck_assert_msg(bf && bb, "no %s or %s", pf, pb);
    differs |= nf != nb || memcmp(bf, bb, nf) != 0;
    free(bf), free(bb);
    ck_assert_msg(differs, "bf16 losses and bridge equal fp32's exactly: --dtype did not reach the models");
}
END_TEST

/* ---- bad values ----------------------------------------------------------- */

START_TEST(bad_dtype_is_refused_by_every_command)
{
    lw_pair pair = tiny_pair();
    int (*cmds[])(const lw_pair *, int, char **) = {lw_cmd_train, lw_cmd_eval, lw_cmd_bench, lw_cmd_generate};
    const char *names[] = {"train", "eval", "bench", "generate"};
    for (int i = 0; i < 4; i++) {
        /* --dtype first: the other options' own checks come after it */
        char *train[] = {"--dtype", "fp16", "--task", "sst2", "--data", "d"};
        char *split[] = {"--dtype", "fp16", "--task", "sst2", "--split", "x.jsonl"};
        char *gen[] = {"--dtype", "fp16", "--prompt", "hi"};
        char **argv = i == 0 ? train : i == 3 ? gen : split;
        char *err = NULL;
        int rc = tl_run_command(cmds[i], &pair, &err, i == 3 ? 4 : 6, argv);
        ck_assert_msg(rc == 2, "lw %s --dtype fp16: rc %d\n%s", names[i], rc, err);
        ck_assert_msg(err && strstr(err, "--dtype") && strstr(err, "fp32, bf16, q8 or native") && strstr(err, "fp16"),
                      "lw %s: %s", names[i], err);
        free(err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, bf16_model_drops_its_fp32_matrices, 0, TL_N_TINY);
    tcase_add_loop_test(tc, tiny_logits_bf16_close_to_fp32_and_equal_to_rounded, 0, TL_N_TINY);
    tcase_add_loop_test(tc, tiny_backward_through_bf16_by_finite_differences, 0, TL_N_TINY);
    tcase_add_loop_test(tc, tiny_greedy_matches_or_divergence_is_explained, 0, TL_N_TINY);
    tcase_add_loop_test(tc, real_model_bf16_logits_and_greedy, 0, 2);
    tcase_add_test(tc, train_bf16_tracks_fp32);
    tcase_add_test(tc, bad_dtype_is_refused_by_every_command);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
