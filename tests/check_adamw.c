/* AdamW against torch.optim.AdamW, the learning-rate schedule, clipping. */
#include "testlib.h"
#include "adamw.h"
#include "checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float *golden(const char *name, int64_t shape[4])
{
    char path[512];
    snprintf(path, sizeof path, "%s", tl_src("tests/golden/bridge/adamw.safetensors"));
    float *data;
    int ndim;
    ck_assert_msg(lw_safetensors_read_f32(path, name, &data, shape, &ndim) == LW_OK, "%s", lw_last_error());
    return data;
}

START_TEST(matches_torch_adamw)
{
    int64_t s_init[4], s_grads[4], s_after[4];
    float *init = golden("init", s_init), *grads = golden("grads", s_grads), *after = golden("after", s_after);
    int n = (int)s_init[0], steps = (int)s_grads[0];
    ck_assert_int_eq(s_after[0], steps);
    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, (size_t)n, lw_adamw_defaults()), LW_OK);
    float *p = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) p[i] = init[i];
    for (int s = 0; s < steps; s++) {
        lw_adamw_step(&opt, p, grads + (size_t)s * n, 1e-2f, 0.1f);
        for (int i = 0; i < n; i++) {
            float want = after[(size_t)s * n + i];
            ck_assert_msg(fabsf(p[i] - want) <= 1e-6f * (1 + fabsf(want)), "step %d p[%d]: %.9g vs torch %.9g",
                          s + 1, i, p[i], want);
        }
    }
    ck_assert_int_eq(opt.step, steps);
    free(p), free(init), free(grads), free(after);
    lw_adamw_free(&opt);
}
END_TEST

START_TEST(update_by_spans_equals_one_step)
{
    enum { N = 10 };
    float p1[N], p2[N], g[N];
    for (int i = 0; i < N; i++) p1[i] = p2[i] = 0.1f * i - 0.3f, g[i] = 0.05f * (i % 3) - 0.04f;
    lw_adamw a, b;
    ck_assert_int_eq(lw_adamw_init(&a, N, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_adamw_init(&b, N, lw_adamw_defaults()), LW_OK);
    for (int s = 0; s < 3; s++) {
        lw_adamw_step(&a, p1, g, 1e-3f, 0.0f);
        lw_adamw_begin_step(&b);
        lw_adamw_update(&b, p2, g, 0, 4, 1e-3f, 0.0f);
        lw_adamw_update(&b, p2, g, 4, N - 4, 1e-3f, 0.0f);
    }
    for (int i = 0; i < N; i++) ck_assert_float_eq(p1[i], p2[i]);
    /* Weight decay only where asked: with g = 0 and decay, p shrinks by lr*wd. */
    float q[2] = {1.0f, 1.0f}, zero[2] = {0, 0};
    lw_adamw c;
    ck_assert_int_eq(lw_adamw_init(&c, 2, lw_adamw_defaults()), LW_OK);
    lw_adamw_begin_step(&c);
    lw_adamw_update(&c, q, zero, 0, 1, 0.1f, 0.5f);
    lw_adamw_update(&c, q, zero, 1, 1, 0.1f, 0.0f);
    ck_assert_float_eq_tol(q[0], 0.95f, 1e-7f);
    ck_assert_float_eq(q[1], 1.0f);
    lw_adamw_free(&a), lw_adamw_free(&b), lw_adamw_free(&c);
}
END_TEST

START_TEST(schedule_warms_up_then_decays)
{
    /* warmup 10, total 110, peak 1e-3, floor 10%. */
    ck_assert_float_eq_tol(lw_lr_at(0, 10, 110, 1e-3f, 0.1f), 1e-4f, 1e-10f);
    ck_assert_float_eq_tol(lw_lr_at(4, 10, 110, 1e-3f, 0.1f), 5e-4f, 1e-10f);
    ck_assert_float_eq_tol(lw_lr_at(9, 10, 110, 1e-3f, 0.1f), 1e-3f, 1e-10f);
    ck_assert_float_eq_tol(lw_lr_at(10, 10, 110, 1e-3f, 0.1f), 1e-3f, 1e-10f);
    /* Half way through the decay: the mean of peak and floor. */
    ck_assert_float_eq_tol(lw_lr_at(60, 10, 110, 1e-3f, 0.1f), 0.55e-3f, 1e-9f);
    /* A quarter: floor + (peak - floor) * (1 + cos(pi/4)) / 2. */
    float q = (float)(1e-4 + 0.9e-3 * (1 + cos(M_PI / 4)) / 2);
    ck_assert_float_eq_tol(lw_lr_at(35, 10, 110, 1e-3f, 0.1f), q, 1e-9f);
    ck_assert_float_eq_tol(lw_lr_at(110, 10, 110, 1e-3f, 0.1f), 1e-4f, 1e-10f);
    ck_assert_float_eq_tol(lw_lr_at(500, 10, 110, 1e-3f, 0.1f), 1e-4f, 1e-10f);
    /* Monotone after warmup. */
    for (long s = 10; s < 110; s++) ck_assert(lw_lr_at(s + 1, 10, 110, 1e-3f, 0.1f) <= lw_lr_at(s, 10, 110, 1e-3f, 0.1f));
    ck_assert_float_eq(lw_lr_at(0, 0, 0, 2e-3f, 0.0f), 2e-3f);
}
END_TEST

START_TEST(clipping_scales_to_the_max_norm)
{
    float g[4] = {3, 0, 4, 0}; /* norm 5 */
    ck_assert_double_eq_tol(lw_grad_norm(g, 4), 5.0, 1e-12);
    double before = lw_clip_grad_norm(g, 4, 1.0f);
    ck_assert_double_eq_tol(before, 5.0, 1e-12);
    ck_assert_double_eq_tol(lw_grad_norm(g, 4), 1.0, 1e-6);
    ck_assert_float_eq_tol(g[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(g[2], 0.8f, 1e-6f);
    float h[2] = {0.3f, 0.4f};
    lw_clip_grad_norm(h, 2, 1.0f); /* within: untouched */
    ck_assert_float_eq(h[0], 0.3f);
    lw_clip_grad_norm(h, 2, 0.0f); /* 0 = off */
    ck_assert_float_eq(h[1], 0.4f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adamw");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, matches_torch_adamw);
    tcase_add_test(tc, update_by_spans_equals_one_step);
    tcase_add_test(tc, schedule_warms_up_then_decays);
    tcase_add_test(tc, clipping_scales_to_the_max_norm);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
