/* The bridge: finite-difference check of the whole backward (every
 * parameter of every trainable tensor, and the input through the
 * input_norm buffers), for each variant, and the forward against a PyTorch
 * re-implementation (tests/golden/bridge). */
#include "testlib.h"
#include "bridge.h"
#include "checkpoint.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S = 12, D = 8, HEADS = 2, M = 3, DEPTH = 2, R = 10, T = 5 };

static lw_bridge_config tiny_config(lw_bridge_kind kind, lw_calibration calib)
{
    lw_bridge_config c = {0};
    c.kind = kind;
    c.soft_tokens = M;
    c.source_layer = 1;
    c.width = D;
    c.depth = DEPTH;
    c.heads = HEADS;
    c.ffn_mult = 2;
    c.calibration = calib;
    return c;
}

static void fill_normal(float *x, size_t n, double std, lw_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * lw_rng_normal(rng));
}

/* input_norm set to something far from the identity: mean ~ N(0, 0.5^2),
 * std in [0.5, 2]. */
static void random_input_norm(lw_bridge *b, lw_rng *rng)
{
    float mean[S], std[S];
    for (int c = 0; c < S; c++) {
        mean[c] = (float)(0.5 * lw_rng_normal(rng));
        std[c] = (float)(0.5 + 1.5 * lw_rng_uniform(rng));
    }
    lw_bridge_set_input_norm(b, mean, std);
}

/* Every non-trainable tensor's gradient is exactly zero. */
static void assert_buffers_have_no_grad(const lw_bridge *b)
{
    int buffers = 0;
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        if (t->trainable) continue;
        buffers++;
        for (size_t j = 0; j < t->count; j++)
            ck_assert_msg(b->grads[t->offset + j] == 0.0f, "%s[%zu] has a gradient", t->name, j);
    }
    ck_assert_int_eq(buffers, 2);
}

/* loss = sum(out * probe), accumulated in double to keep the differences
 * well above rounding. */
static double probe_loss(const lw_bridge *b, lw_bridge_acts *a, const float *x, const float *probe)
{
    float out[M * R];
    ck_assert_int_eq(lw_bridge_forward(b, a, x, T, out), LW_OK);
    double s = 0.0;
    for (int i = 0; i < M * R; i++) s += (double)out[i] * probe[i];
    return s;
}

/* The forward is fp32, so a central difference carries rounding of about
 * 1e-6 * |loss| / h ~ 5e-4: gradients larger than 0.05 are held to a
 * relative error, smaller ones to that absolute error. */
typedef struct {
    double rel, abs;
} fd_error;

static int close_enough(double analytic, double numeric, fd_error *worst)
{
    double diff = fabs(analytic - numeric), scale = fmax(fabs(analytic), fabs(numeric));
    if (scale > 0.05) {
        if (diff / scale > worst->rel) worst->rel = diff / scale;
        return diff / scale < 5e-3;
    }
    if (diff > worst->abs) worst->abs = diff;
    return diff < 1e-3;
}

static void gradient_check(lw_bridge_kind kind, lw_calibration calib)
{
    lw_bridge b;
    lw_bridge_config cfg = tiny_config(kind, calib);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.5f), LW_OK);
    lw_rng rng;
    lw_rng_seed(&rng, 7);
    /* Random everything (norm weights too), big enough that every path
     * carries a gradient well above rounding. */
    fill_normal(b.params, b.n_params, 0.4, &rng);
    if (calib == LW_CALIB_RMS) b.params[b.out_scale] = 1.5f;
    random_input_norm(&b, &rng);
    float x[T * S], probe[M * R], dx[T * S] = {0};
    fill_normal(x, T * S, 1.0, &rng);
    fill_normal(probe, M * R, 1.0, &rng);

    lw_bridge_acts *a;
    ck_assert_int_eq(lw_bridge_acts_create(&b, T, &a), LW_OK);
    lw_bridge_zero_grad(&b);
    probe_loss(&b, a, x, probe);
    lw_bridge_backward(&b, a, probe, dx);

    assert_buffers_have_no_grad(&b);
    const double h = 1e-2;
    fd_error worst = {0, 0};
    for (int ti = 0; ti < b.n_tensors; ti++) {
        const lw_bridge_tensor *t = &b.tensors[ti];
        if (!t->trainable) continue;
        int nonzero = 0;
        for (size_t j = 0; j < t->count; j++) {
            float *p = &b.params[t->offset + j];
            float keep = *p;
            *p = keep + (float)h;
            double up = probe_loss(&b, a, x, probe);
            *p = keep - (float)h;
            double down = probe_loss(&b, a, x, probe);
            *p = keep;
            double numeric = (up - down) / (2 * h), analytic = b.grads[t->offset + j];
            nonzero += fabs(analytic) > 1e-4;
            ck_assert_msg(close_enough(analytic, numeric, &worst), "%s: %s[%zu]: analytic %g, numeric %g",
                          lw_bridge_kind_name(kind), t->name, j, analytic, numeric);
        }
        ck_assert_msg(nonzero > 0, "%s: %s gets no gradient", lw_bridge_kind_name(kind), t->name);
    }
    for (int j = 0; j < T * S; j++) {
        float keep = x[j];
        x[j] = keep + (float)h;
        double up = probe_loss(&b, a, x, probe);
        x[j] = keep - (float)h;
        double down = probe_loss(&b, a, x, probe);
        x[j] = keep;
        ck_assert_msg(close_enough(dx[j], (up - down) / (2 * h), &worst), "%s: dx[%d]: analytic %g, numeric %g",
                      lw_bridge_kind_name(kind), j, dx[j], (up - down) / (2 * h));
    }
    fprintf(stderr, "bridge %s: %zu parameters, worst relative error %.1e (|g| > 0.05), worst absolute %.1e\n",
            lw_bridge_kind_name(kind), b.n_params, worst.rel, worst.abs);
    lw_bridge_acts_free(a);
    lw_bridge_free(&b);
}

START_TEST(perceiver_backward_matches_finite_differences) { gradient_check(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS); }
END_TEST

START_TEST(perceiver_without_calibration) { gradient_check(LW_BRIDGE_PERCEIVER, LW_CALIB_NONE); }
END_TEST

START_TEST(mlp_backward_matches_finite_differences) { gradient_check(LW_BRIDGE_MLP, LW_CALIB_RMS); }
END_TEST

START_TEST(linear_backward_matches_finite_differences) { gradient_check(LW_BRIDGE_LINEAR, LW_CALIB_RMS); }
END_TEST

static float *golden(const char *file, const char *name, size_t expect)
{
    char path[512];
    snprintf(path, sizeof path, "%s", tl_src(file));
    float *data;
    int64_t shape[4];
    int ndim;
    ck_assert_msg(lw_safetensors_read_f32(path, name, &data, shape, &ndim) == LW_OK, "%s", lw_last_error());
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    ck_assert_uint_eq(n, expect);
    return data;
}

static void assert_close(const float *got, const float *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs(want[i])), "%s[%zu]: got %.8g, want %.8g",
                      what, i, got[i], want[i]);
}

/* Weights written by PyTorch load by name; forward and every gradient match
 * the PyTorch re-implementation. */
static void golden_check(lw_bridge_kind kind)
{
    const char *k = lw_bridge_kind_name(kind);
    char wfile[128], iofile[128];
    snprintf(wfile, sizeof wfile, "tests/golden/bridge/%s.safetensors", k);
    snprintf(iofile, sizeof iofile, "tests/golden/bridge/%s_io.safetensors", k);
    lw_bridge b;
    lw_bridge_config cfg = tiny_config(kind, LW_CALIB_RMS);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.5f), LW_OK);
    char path[512];
    snprintf(path, sizeof path, "%s", tl_src(wfile));
    ck_assert_msg(lw_checkpoint_load_bridge(path, &b) == LW_OK, "%s", lw_last_error());

    float *x = golden(iofile, "x", T * S), *probe = golden(iofile, "probe", M * R);
    float *want = golden(iofile, "out", M * R), *want_dx = golden(iofile, "dx", T * S);
    float out[M * R], dx[T * S] = {0};
    lw_bridge_acts *a;
    ck_assert_int_eq(lw_bridge_acts_create(&b, T, &a), LW_OK);
    ck_assert_int_eq(lw_bridge_forward(&b, a, x, T, out), LW_OK);
    assert_close(out, want, M * R, 1e-5, "out");
    lw_bridge_zero_grad(&b);
    lw_bridge_backward(&b, a, probe, dx);
    assert_close(dx, want_dx, T * S, 1e-4, "dx");
    assert_buffers_have_no_grad(&b);
    for (int i = 0; i < b.n_tensors; i++) {
        if (!b.tensors[i].trainable) continue;
        char name[96];
        snprintf(name, sizeof name, "grad.%s", b.tensors[i].name);
        float *g = golden(iofile, name, b.tensors[i].count);
        assert_close(b.grads + b.tensors[i].offset, g, b.tensors[i].count, 1e-4, name);
        free(g);
    }
    free(x), free(probe), free(want), free(want_dx);
    lw_bridge_acts_free(a);
    lw_bridge_free(&b);
}

START_TEST(perceiver_matches_pytorch) { golden_check(LW_BRIDGE_PERCEIVER); }
END_TEST

START_TEST(mlp_matches_pytorch) { golden_check(LW_BRIDGE_MLP); }
END_TEST

START_TEST(linear_matches_pytorch) { golden_check(LW_BRIDGE_LINEAR); }
END_TEST

START_TEST(names_and_layout)
{
    lw_bridge b;
    lw_bridge_config cfg = tiny_config(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 0.7f), LW_OK);
    const lw_bridge_tensor *t = lw_bridge_find(&b, "blocks.1.cross_attn.q.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[0], D);
    ck_assert_int_eq(t->shape[1], D);
    t = lw_bridge_find(&b, "out_proj.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[0], R);
    ck_assert_int_eq(t->shape[1], D);
    ck_assert_ptr_null(lw_bridge_find(&b, "blocks.2.ffn.fc1.weight"));
    /* The tensors tile the buffer exactly, in order. */
    size_t next = 0;
    for (int i = 0; i < b.n_tensors; i++) {
        ck_assert_uint_eq(b.tensors[i].offset, next);
        next += b.tensors[i].count;
    }
    ck_assert_uint_eq(next, b.n_params);
    lw_bridge_init(&b, 1);
    ck_assert_float_eq(b.params[lw_bridge_find(&b, "out_scale")->offset], 0.7f);
    ck_assert_float_eq(b.params[lw_bridge_find(&b, "final_norm.weight")->offset], 1.0f);
    ck_assert_float_eq(b.params[lw_bridge_find(&b, "in_proj.bias")->offset], 0.0f);
    const lw_bridge_tensor *mean = lw_bridge_find(&b, "input_norm.mean"), *std = lw_bridge_find(&b, "input_norm.std");
    ck_assert_ptr_nonnull(mean);
    ck_assert_ptr_nonnull(std);
    ck_assert(!mean->trainable && !std->trainable && !mean->decay);
    ck_assert(lw_bridge_find(&b, "queries")->trainable);
    ck_assert_int_eq(mean->shape[0], S);
    for (int c = 0; c < S; c++) {
        ck_assert_float_eq(b.params[mean->offset + c], 0.0f);
        ck_assert_float_eq(b.params[std->offset + c], 1.0f);
    }
    /* Seeded: the same seed gives the same weights, another seed others. */
    float *first = malloc(b.n_params * sizeof(float));
    memcpy(first, b.params, b.n_params * sizeof(float));
    lw_bridge_init(&b, 1);
    ck_assert_int_eq(memcmp(first, b.params, b.n_params * sizeof(float)), 0);
    lw_bridge_init(&b, 2);
    ck_assert_int_ne(memcmp(first, b.params, b.n_params * sizeof(float)), 0);
    free(first);
    lw_bridge_free(&b);
}
END_TEST

/* Standardising inside the bridge is the same as feeding it standardised
 * states; a zero std is floored rather than dividing by zero; the
 * optimiser leaves the buffers alone. */
START_TEST(input_norm_standardises)
{
    lw_bridge a, b;
    lw_bridge_config cfg = tiny_config(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS);
    ck_assert_int_eq(lw_bridge_create(&a, &cfg, S, R, 1.0f), LW_OK);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.0f), LW_OK);
    lw_bridge_init(&a, 3);
    lw_bridge_init(&b, 3);
    lw_rng rng;
    lw_rng_seed(&rng, 11);
    float mean[S], std[S], x[T * S], xs[T * S], out_a[M * R], out_b[M * R];
    for (int c = 0; c < S; c++) mean[c] = (float)(30.0 * lw_rng_normal(&rng)), std[c] = (float)(1.0 + c);
    std[0] = 0.0f;
    lw_bridge_set_input_norm(&a, mean, std);
    ck_assert_float_eq(a.params[a.in_std], 1e-6f);
    std[0] = 1e-6f;
    for (int i = 0; i < T * S; i++) {
        int c = i % S;
        x[i] = c == 0 ? mean[0] : mean[c] + std[c] * (float)lw_rng_normal(&rng);
        xs[i] = (x[i] - mean[c]) / std[c];
    }
    lw_bridge_acts *acts;
    ck_assert_int_eq(lw_bridge_acts_create(&a, T, &acts), LW_OK);
    ck_assert_int_eq(lw_bridge_forward(&a, acts, x, T, out_a), LW_OK);
    ck_assert_int_eq(lw_bridge_forward(&b, acts, xs, T, out_b), LW_OK);
    for (int i = 0; i < M * R; i++) ck_assert_float_eq_tol(out_a[i], out_b[i], 1e-4f);

    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, a.n_params, lw_adamw_defaults()), LW_OK);
    for (size_t i = 0; i < a.n_params; i++) a.grads[i] = 1.0f;
    float keep_mean = a.params[a.in_mean + 3], keep_std = a.params[a.in_std + 3], keep_q = a.params[a.queries];
    lw_bridge_adamw_step(&a, &opt, 0.1f, 0.1f);
    ck_assert_float_eq(a.params[a.in_mean + 3], keep_mean);
    ck_assert_float_eq(a.params[a.in_std + 3], keep_std);
    ck_assert_float_ne(a.params[a.queries], keep_q);
    lw_adamw_free(&opt);
    lw_bridge_acts_free(acts);
    lw_bridge_free(&a);
    lw_bridge_free(&b);
}
END_TEST

/* Weight decay only where a tensor's decay flag says: with zero gradients
 * one AdamW step moves nothing but decay, so every tensor without it
 * (biases, LayerNorm weights, out_scale, the input_norm buffers) keeps its
 * bits and every tensor with it (the matrices and queries) shrinks, entry
 * by entry. The flags themselves: decay exactly on the 2-D tensors. */
static void decay_only_where_flagged(lw_bridge_kind kind)
{
    lw_bridge b;
    lw_bridge_config cfg = tiny_config(kind, LW_CALIB_RMS);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.5f), LW_OK);
    lw_rng rng;
    lw_rng_seed(&rng, 21);
    fill_normal(b.params, b.n_params, 0.5, &rng);
    for (size_t i = 0; i < b.n_params; i++)   /* no zeros: decay must show on every entry */
        if (fabsf(b.params[i]) < 1e-3f) b.params[i] = 0.25f;
    float *before = malloc(b.n_params * sizeof(float));
    ck_assert_ptr_nonnull(before);
    memcpy(before, b.params, b.n_params * sizeof(float));
    lw_bridge_zero_grad(&b);
    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, b.n_params, lw_adamw_defaults()), LW_OK);
    lw_bridge_adamw_step(&b, &opt, 0.1f, 0.5f);
    int decayed = 0, kept = 0;
    for (int i = 0; i < b.n_tensors; i++) {
        const lw_bridge_tensor *t = &b.tensors[i];
        ck_assert_msg(t->decay == (t->ndim == 2), "%s: decay %d on a %d-D tensor", t->name, t->decay, t->ndim);
        const float *p = b.params + t->offset, *p0 = before + t->offset;
        if (!t->decay || !t->trainable) {
            ck_assert_msg(memcmp(p, p0, t->count * sizeof(float)) == 0, "%s changed without decay", t->name);
            kept++;
            continue;
        }
        for (size_t j = 0; j < t->count; j++)
            ck_assert_msg(fabsf(p[j] - 0.95f * p0[j]) <= 1e-6f * fabsf(p0[j]), "%s[%zu]: %g after %g, want x0.95",
                          t->name, j, (double)p[j], (double)p0[j]);
        decayed++;
    }
    ck_assert_int_ge(decayed, 1);
    ck_assert_int_ge(kept, 4);   /* the buffers, a bias, out_scale at least */
    ck_assert_ptr_nonnull(lw_bridge_find(&b, "out_scale"));
    lw_adamw_free(&opt);
    free(before);
    lw_bridge_free(&b);
}

START_TEST(weight_decay_skips_biases_norms_and_scale)
{
    decay_only_where_flagged(LW_BRIDGE_PERCEIVER);
    decay_only_where_flagged(LW_BRIDGE_MLP);
    decay_only_where_flagged(LW_BRIDGE_LINEAR);
}
END_TEST

START_TEST(bad_configs_are_refused)
{
    lw_bridge b;
    lw_bridge_config cfg = tiny_config(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS);
    cfg.heads = 3;
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.0f), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "heads"));
    cfg = tiny_config(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS);
    cfg.soft_tokens = 0;
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.0f), LW_ERR_INVALID);
    cfg = tiny_config(LW_BRIDGE_PERCEIVER, LW_CALIB_RMS);
    ck_assert_int_eq(lw_bridge_create(&b, &cfg, S, R, 1.0f), LW_OK);
    lw_bridge_acts *a;
    ck_assert_int_eq(lw_bridge_acts_create(&b, 4, &a), LW_OK);
    float x[5 * S] = {0}, out[M * R];
    ck_assert_int_eq(lw_bridge_forward(&b, a, x, 5, out), LW_ERR_INVALID);
    ck_assert_int_eq(lw_bridge_forward(&b, a, x, 0, out), LW_ERR_INVALID);
    lw_bridge_acts_free(a);
    lw_bridge_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bridge");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, perceiver_backward_matches_finite_differences);
    tcase_add_test(tc, perceiver_without_calibration);
    tcase_add_test(tc, mlp_backward_matches_finite_differences);
    tcase_add_test(tc, linear_backward_matches_finite_differences);
    tcase_add_test(tc, perceiver_matches_pytorch);
    tcase_add_test(tc, mlp_matches_pytorch);
    tcase_add_test(tc, linear_matches_pytorch);
    tcase_add_test(tc, names_and_layout);
    tcase_add_test(tc, input_norm_standardises);
    tcase_add_test(tc, weight_decay_skips_biases_norms_and_scale);
    tcase_add_test(tc, bad_configs_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
