/* The term against the message collapse (spread_term.h): its gradient
 * against central differences, the step's bookkeeping (the first message of
 * a step gets nothing, later ones are compared with the mean of the earlier
 * ones, a reset forgets them, weight 0 is a no-op), bad settings refused,
 * and that descending it spreads a set of collapsed messages apart. */
#include "testlib.h"
#include "message_spread.h"
#include "spread_term.h"

#include <math.h>
#include <string.h>

#include "rng.h"

enum { M = 3, W = 5, N = M * W };

static void fill_random(float *x, int n, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) x[i] = (float)lw_rng_normal(&r);
}

START_TEST(cosine_gradient_matches_finite_differences)
{
    float z[N], dz[N] = {0}, mf[N];
    double mbar[N];
    fill_random(z, N, 11);
    fill_random(mf, N, 12);
    for (int i = 0; i < N; i++) mbar[i] = mf[i] + 0.5 * z[i];   /* a cosine well away from 0 */
    double v = lw_spread_cos(z, mbar, M, W, dz, 0.7f);
    ck_assert(v > 0.1 && v < 1.0);
    double biggest = 0;
    for (int i = 0; i < N; i++) {
        float keep = z[i], eps = 1e-2f;
        z[i] = keep + eps;
        double p = lw_spread_cos(z, mbar, M, W, NULL, 0.0f);
        z[i] = keep - eps;
        double q = lw_spread_cos(z, mbar, M, W, NULL, 0.0f);
        z[i] = keep;
        double fd = 0.7 * (p - q) / (2.0 * eps);
        ck_assert_msg(fabs(fd - dz[i]) <= 1e-4 + 1e-2 * fabs(fd), "dz[%d]: analytic %g, finite difference %g", i,
                      (double)dz[i], fd);
        biggest = fabs(fd) > biggest ? fabs(fd) : biggest;
    }
    ck_assert_msg(biggest > 1e-2, "every gradient entry is ~0: nothing was checked");
    /* a zero token has no direction: cos 0 and no gradient for it */
    float dz0[N] = {0};
    for (int k = 0; k < W; k++) z[k] = 0.0f;
    double v0 = lw_spread_cos(z, mbar, M, W, dz0, 1.0f);
    for (int k = 0; k < W; k++) ck_assert(dz0[k] == 0.0f);
    ck_assert(isfinite(v0));
}
END_TEST

START_TEST(a_step_compares_each_message_with_the_earlier_ones)
{
    lw_spread_term s;
    ck_assert_int_eq(lw_spread_term_init(&s, 2.0f, M, W), LW_OK);
    float a[N], b[N], c[N], dz[N] = {0}, want[N] = {0};
    fill_random(a, N, 1);
    fill_random(b, N, 2);
    fill_random(c, N, 3);
    /* the first message of a step: no term, dz untouched */
    ck_assert_double_eq(lw_spread_term_step(&s, a, dz, 0.5f), 0.0);
    for (int i = 0; i < N; i++) ck_assert(dz[i] == 0.0f);
    /* the second against the first: weight * cos, dz += scale * weight * dcos */
    double ma[N];
    for (int i = 0; i < N; i++) ma[i] = a[i];
    double expect = 2.0 * lw_spread_cos(b, ma, M, W, want, 0.5f * 2.0f);
    ck_assert_double_eq_tol(lw_spread_term_step(&s, b, dz, 0.5f), expect, 1e-12);
    for (int i = 0; i < N; i++) ck_assert_float_eq_tol(dz[i], want[i], 1e-7f);
    /* the third against the mean of the first two */
    double mab[N];
    for (int i = 0; i < N; i++) mab[i] = 0.5 * ((double)a[i] + b[i]);
    expect = 2.0 * lw_spread_cos(c, mab, M, W, NULL, 0.0f);
    ck_assert_double_eq_tol(lw_spread_term_step(&s, c, NULL, 0.5f), expect, 1e-12);
    /* a new step forgets them */
    lw_spread_term_reset(&s);
    memset(dz, 0, sizeof dz);
    ck_assert_double_eq(lw_spread_term_step(&s, c, dz, 1.0f), 0.0);
    for (int i = 0; i < N; i++) ck_assert(dz[i] == 0.0f);
    lw_spread_term_free(&s);
    /* weight 0: off, nothing held, nothing added */
    ck_assert_int_eq(lw_spread_term_init(&s, 0.0f, M, W), LW_OK);
    ck_assert_ptr_null(s.sum);
    lw_spread_term_step(&s, a, dz, 1.0f);
    ck_assert_double_eq(lw_spread_term_step(&s, b, dz, 1.0f), 0.0);
    for (int i = 0; i < N; i++) ck_assert(dz[i] == 0.0f);
    lw_spread_term_free(&s);
}
END_TEST

START_TEST(bad_settings_are_refused)
{
    lw_spread_term s;
    ck_assert_int_eq(lw_spread_term_init(&s, -1.0f, M, W), LW_ERR_INVALID);
    ck_assert_int_eq(lw_spread_term_init(&s, NAN, M, W), LW_ERR_INVALID);
    ck_assert_int_eq(lw_spread_term_init(&s, INFINITY, M, W), LW_ERR_INVALID);
    ck_assert_int_eq(lw_spread_term_init(&s, 1.0f, 0, W), LW_ERR_INVALID);
    ck_assert_int_eq(lw_spread_term_init(&s, 1.0f, M, 0), LW_ERR_INVALID);
}
END_TEST

/* Each token scaled to RMS 1, as the bridge's calibration leaves it. */
static void rms_normalise(float *z)
{
    for (int m = 0; m < M; m++) {
        double sq = 0;
        for (int k = 0; k < W; k++) sq += (double)z[m * W + k] * z[m * W + k];
        float inv = (float)(1.0 / sqrt(sq / W));
        for (int k = 0; k < W; k++) z[m * W + k] *= inv;
    }
}

static double spread_of(float z[][N], int n)
{
    lw_msg_spread sp;
    ck_assert_int_eq(lw_msg_spread_init(&sp, N), LW_OK);
    for (int i = 0; i < n; i++) lw_msg_spread_add(&sp, z[i]);
    double v = lw_msg_spread_value(&sp);
    lw_msg_spread_free(&sp);
    return v;
}

/* Eight messages that are mostly one common message (spread about 0.04),
 * each token kept at RMS 1: steps down the term alone spread them apart,
 * while they stay what they were made of (the input parts' directions). */
START_TEST(descending_the_term_spreads_collapsed_messages)
{
    enum { K = 8 };
    float z[K][N], common[N], dz[N];
    fill_random(common, N, 40);
    for (int i = 0; i < K; i++) {
        fill_random(z[i], N, 50 + (uint64_t)i);
        for (int j = 0; j < N; j++) z[i][j] = 5.0f * common[j] + z[i][j];
        rms_normalise(z[i]);
    }
    double before = spread_of(z, K);
    ck_assert_msg(before < 0.1, "the messages start collapsed: spread %g", before);
    lw_spread_term s;
    ck_assert_int_eq(lw_spread_term_init(&s, 1.0f, M, W), LW_OK);
    for (int it = 0; it < 200; it++) {
        lw_spread_term_reset(&s);
        for (int i = 0; i < K; i++) {
            memset(dz, 0, sizeof dz);
            lw_spread_term_step(&s, z[i], dz, 1.0f);
            for (int j = 0; j < N; j++) z[i][j] -= 0.5f * dz[j];
            rms_normalise(z[i]);
        }
    }
    lw_spread_term_free(&s);
    double after = spread_of(z, K);
    ck_assert_msg(after > 0.5 && after > 5 * before, "spread %g before, %g after", before, after);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spread_term");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cosine_gradient_matches_finite_differences);
    tcase_add_test(tc, a_step_compares_each_message_with_the_earlier_ones);
    tcase_add_test(tc, bad_settings_are_refused);
    tcase_add_test(tc, descending_the_term_spreads_collapsed_messages);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
