/* Mean-calibrated label scores (score_calibration.h) on hand-made cases:
 * a prior shared by every example hides the input's signal from the argmax
 * until it is removed; offsets, zero column means, order invariance. */
#include "testlib.h"
#include "score_calibration.h"

#include <math.h>
#include <string.h>

#include "score_line.h"

enum { N = 4, L = 3 };

/* Example i's signal favours label i % 3 by 1.0; label 0 also gets a prior
 * of +5 in every example (what a bridge at chance adds: docs/results.md). */
static void make(double *s)
{
    for (int i = 0; i < N; i++)
        for (int l = 0; l < L; l++) s[i * L + l] = (l == i % L ? 1.0 : 0.0) + (l == 0 ? 5.0 : 0.0) - 0.25 * l;
}

START_TEST(the_prior_is_removed_and_the_signal_decides)
{
    double s[N * L], off[L];
    make(s);
    for (int i = 0; i < N; i++) ck_assert_int_eq(lw_scores_argmax(s + i * L, L), 0);   /* the prior wins */
    lw_scores_calibrate_mean(s, N, L, off);
    /* label 0's mean: 5 + 2/4 (examples 0 and 3 favour it); label 1: -0.25 + 1/4; label 2: -0.5 + 1/4 */
    ck_assert_double_eq_tol(off[0], 5.5, 1e-12);
    ck_assert_double_eq_tol(off[1], 0.0, 1e-12);
    ck_assert_double_eq_tol(off[2], -0.25, 1e-12);
    for (int l = 0; l < L; l++) {
        double m = 0;
        for (int i = 0; i < N; i++) m += s[i * L + l];
        ck_assert_double_eq_tol(m, 0.0, 1e-12);
    }
    ck_assert_int_eq(lw_scores_argmax(s + 1 * L, L), 1);
    ck_assert_int_eq(lw_scores_argmax(s + 2 * L, L), 2);
}
END_TEST

START_TEST(order_does_not_matter_and_nothing_is_left_alone)
{
    double a[N * L], b[N * L];
    make(a);
    for (int i = 0; i < N; i++) memcpy(b + i * L, a + (N - 1 - i) * L, L * sizeof *b);   /* reversed */
    lw_scores_calibrate_mean(a, N, L, NULL);
    lw_scores_calibrate_mean(b, N, L, NULL);
    for (int i = 0; i < N; i++)
        for (int l = 0; l < L; l++) ck_assert_double_eq_tol(a[i * L + l], b[(N - 1 - i) * L + l], 1e-12);
    double c[L] = {1, 2, 3};
    lw_scores_calibrate_mean(c, 0, L, NULL);   /* no examples: untouched */
    ck_assert(c[0] == 1 && c[1] == 2 && c[2] == 3);
    lw_scores_calibrate_mean(c, 1, L, NULL);   /* one example: nothing left to tell labels apart */
    ck_assert(c[0] == 0 && c[1] == 0 && c[2] == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("score_calibration");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, the_prior_is_removed_and_the_signal_decides);
    tcase_add_test(tc, order_does_not_matter_and_nothing_is_left_alone);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
