/* Metrics against hand-computed values on small cases. */
#include "testlib.h"
#include "metrics.h"

#include <math.h>
#include <string.h>

#define NEAR(a, b) ck_assert_double_eq_tol((a), (b), 1e-12)

START_TEST(hand_computed_three_classes)
{
    /* gold 0 0 0 1 1 2, pred 0 0 1 1 2 2:
     * class 0: tp 2 fp 0 fn 1 -> P 1, R 2/3, F1 0.8
     * class 1: tp 1 fp 1 fn 1 -> P 1/2, R 1/2, F1 1/2
     * class 2: tp 1 fp 1 fn 0 -> P 1/2, R 1, F1 2/3
     * class 3 occurs nowhere: scored 0 and left out of the macro mean. */
    int gold[] = {0, 0, 0, 1, 1, 2}, pred[] = {0, 0, 1, 1, 2, 2};
    lw_metrics m;
    ck_assert_int_eq(lw_metrics_compute(gold, pred, 6, 4, &m), LW_OK);
    NEAR(m.accuracy, 4.0 / 6);
    NEAR(m.precision[0], 1.0); NEAR(m.recall[0], 2.0 / 3); NEAR(m.f1[0], 0.8);
    NEAR(m.precision[1], 0.5); NEAR(m.recall[1], 0.5); NEAR(m.f1[1], 0.5);
    NEAR(m.precision[2], 0.5); NEAR(m.recall[2], 1.0); NEAR(m.f1[2], 2.0 / 3);
    NEAR(m.f1[3], 0.0);
    NEAR(m.macro_f1, (0.8 + 0.5 + 2.0 / 3) / 3);
    long want[16] = {2, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    ck_assert_int_eq(memcmp(m.confusion, want, sizeof want), 0);
    lw_metrics_free(&m);
}
END_TEST

START_TEST(never_predicted_class_scores_zero)
{
    /* Always predicting 0 on a 3:1 split: class 1 has P = R = F1 = 0. */
    int gold[] = {0, 0, 0, 1}, pred[] = {0, 0, 0, 0};
    lw_metrics m;
    ck_assert_int_eq(lw_metrics_compute(gold, pred, 4, 2, &m), LW_OK);
    NEAR(m.accuracy, 0.75);
    NEAR(m.precision[0], 0.75); NEAR(m.recall[0], 1.0); NEAR(m.f1[0], 2 * 0.75 / 1.75);
    NEAR(m.precision[1], 0.0); NEAR(m.recall[1], 0.0); NEAR(m.f1[1], 0.0);
    NEAR(m.macro_f1, 0.75 / 1.75);
    lw_metrics_free(&m);
}
END_TEST

START_TEST(bad_inputs_are_refused)
{
    int gold[] = {0, 2}, pred[] = {0, 1};
    lw_metrics m;
    ck_assert_int_eq(lw_metrics_compute(gold, pred, 2, 2, &m), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "example 1 has gold 2"));
    ck_assert_int_eq(lw_metrics_compute(gold, pred, 0, 2, &m), LW_ERR_INVALID);
}
END_TEST

START_TEST(bootstrap_interval)
{
    enum { N = 1000 };
    static int gold[N], pred[N];
    for (int i = 0; i < N; i++) gold[i] = i % 2, pred[i] = i % 5 == 0 ? 1 - gold[i] : gold[i]; /* 80% right */
    double lo, hi, lo2, hi2;
    ck_assert_int_eq(lw_bootstrap_ci(gold, pred, N, 2, LW_METRIC_ACCURACY, 1000, 7, &lo, &hi), LW_OK);
    ck_assert(lo < 0.8 && 0.8 < hi);
    /* The normal approximation: half-width 1.96 * sqrt(0.8 * 0.2 / 1000) = 0.0248. */
    ck_assert_msg(fabs((hi - lo) / 2 - 0.0248) < 0.005, "interval [%g, %g]", lo, hi);
    ck_assert_int_eq(lw_bootstrap_ci(gold, pred, N, 2, LW_METRIC_ACCURACY, 1000, 7, &lo2, &hi2), LW_OK);
    ck_assert(lo == lo2 && hi == hi2);
    ck_assert_int_eq(lw_bootstrap_ci(gold, pred, N, 2, LW_METRIC_MACRO_F1, 500, 7, &lo, &hi), LW_OK);
    lw_metrics m;
    ck_assert_int_eq(lw_metrics_compute(gold, pred, N, 2, &m), LW_OK);
    ck_assert(lo < m.macro_f1 && m.macro_f1 < hi && hi - lo < 0.1);
    lw_metrics_free(&m);
    /* All correct: every resample scores 1. */
    ck_assert_int_eq(lw_bootstrap_ci(gold, gold, N, 2, LW_METRIC_MACRO_F1, 50, 1, &lo, &hi), LW_OK);
    NEAR(lo, 1.0); NEAR(hi, 1.0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, hand_computed_three_classes);
    tcase_add_test(tc, never_predicted_class_scores_zero);
    tcase_add_test(tc, bad_inputs_are_refused);
    tcase_add_test(tc, bootstrap_interval);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
