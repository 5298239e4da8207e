/* SQuAD EM/F1 against the official evaluate-v1.1.py on a stored sample
 * (tests/golden/make_squad_metric_goldens.py), GSM8K's final number, and the
 * bootstrap of a mean. */
#include "testlib.h"
#include "answer_metrics.h"
#include "metrics.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

START_TEST(squad_matches_official_script)
{
    json_error_t err;
    json_t *root = json_load_file(tl_src("tests/golden/answers/squad_metric.json"), 0, &err);
    ck_assert_msg(root != NULL, "squad_metric.json: %s", err.text);
    json_t *cases = json_object_get(root, "cases");
    ck_assert_int_ge((int)json_array_size(cases), 50);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *pred = json_string_value(json_object_get(c, "prediction"));
        const char *want_norm = json_string_value(json_object_get(c, "normalized"));
        json_t *g = json_object_get(c, "golds");
        const char *golds[8];
        int ng = (int)json_array_size(g);
        ck_assert(ng >= 1 && ng <= 8);
        for (int k = 0; k < ng; k++) golds[k] = json_string_value(json_array_get(g, (size_t)k));
        char *norm;
        ck_assert_int_eq(lw_squad_normalize(pred, &norm), LW_OK);
        ck_assert_msg(!strcmp(norm, want_norm), "case %zu: normalize(\"%s\") = \"%s\", official \"%s\"", i, pred,
                      norm, want_norm);
        free(norm);
        double em, f1;
        ck_assert_int_eq(lw_squad_score(pred, golds, ng, &em, &f1), LW_OK);
        double want_em = json_real_value(json_object_get(c, "em")), want_f1 = json_real_value(json_object_get(c, "f1"));
        ck_assert_msg(em == want_em && fabs(f1 - want_f1) < 1e-12, "case %zu \"%s\": EM %g F1 %.15g, official %g %.15g",
                      i, pred, em, f1, want_em, want_f1);
    }
    json_decref(root);
}
END_TEST

START_TEST(squad_hand_cases)
{
    double em, f1;
    const char *g[] = {"Denver Broncos"};
    ck_assert_int_eq(lw_squad_score("Broncos of Denver", g, 1, &em, &f1), LW_OK);
    /* pred {broncos, of, denver}, gold {denver, broncos}: P 2/3, R 1 -> 0.8 */
    ck_assert(em == 0 && fabs(f1 - 0.8) < 1e-12);
    ck_assert_int_eq(lw_squad_score("x", g, 0, &em, &f1), LW_ERR_INVALID);
    /* invalid UTF-8 reads as U+FFFD and does not crash */
    char *n;
    ck_assert_int_eq(lw_squad_normalize("The \xff\xfe cat", &n), LW_OK);
    ck_assert_str_eq(n, "\xef\xbf\xbd\xef\xbf\xbd cat");
    free(n);
}
END_TEST

START_TEST(gsm8k_last_number)
{
    char b[64];
    ck_assert(lw_last_number("so 3 + 4 = 7. The answer is 1,234.", b, sizeof b));
    ck_assert_str_eq(b, "1234");
    ck_assert(lw_last_number("-5 degrees", b, sizeof b));
    ck_assert_str_eq(b, "-5");
    ck_assert(lw_last_number("costs $12.50 each", b, sizeof b));
    ck_assert_str_eq(b, "12.50");
    ck_assert(lw_last_number("#### 18\n", b, sizeof b));
    ck_assert_str_eq(b, "18");
    ck_assert(!lw_last_number("no numbers here.", b, sizeof b));
    ck_assert(!lw_last_number("12345678901234567890", b, 8));
    double ok;
    ck_assert_int_eq(lw_gsm8k_score("She pays 3 * 6 = 18 dollars. The answer is 18.", "18", &ok), LW_OK);
    ck_assert(ok == 1);
    ck_assert_int_eq(lw_gsm8k_score("The answer is 18.0", "18", &ok), LW_OK);
    ck_assert(ok == 1);
    ck_assert_int_eq(lw_gsm8k_score("1,000 or 999", "1,000", &ok), LW_OK);
    ck_assert(ok == 0);   /* the last number counts */
    ck_assert_int_eq(lw_gsm8k_score("I do not know", "7", &ok), LW_OK);
    ck_assert(ok == 0);
    ck_assert_int_eq(lw_gsm8k_score("7", "seven", &ok), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "seven"));
}
END_TEST

START_TEST(bootstrap_mean)
{
    enum { N = 1000 };
    static double v[N];
    for (int i = 0; i < N; i++) v[i] = i % 5 == 0 ? 0.0 : 1.0;   /* mean 0.8 */
    double lo, hi;
    ck_assert_int_eq(lw_bootstrap_mean_ci(v, N, 1000, 3, &lo, &hi), LW_OK);
    ck_assert(lo < 0.8 && 0.8 < hi);
    ck_assert_msg(fabs((hi - lo) / 2 - 0.0248) < 0.005, "interval [%g, %g]", lo, hi);
    for (int i = 0; i < N; i++) v[i] = 0.5;
    ck_assert_int_eq(lw_bootstrap_mean_ci(v, N, 50, 3, &lo, &hi), LW_OK);
    ck_assert(lo == 0.5 && hi == 0.5);
    ck_assert_int_eq(lw_bootstrap_mean_ci(v, 0, 50, 3, &lo, &hi), LW_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("answer_metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, squad_matches_official_script);
    tcase_add_test(tc, squad_hand_cases);
    tcase_add_test(tc, gsm8k_last_number);
    tcase_add_test(tc, bootstrap_mean);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
