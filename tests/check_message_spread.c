/* The message spread (message_spread.h): 0 for messages that do not depend
 * on the input, 1 for messages that average to zero, the between-example
 * share of the second moment in between; undefined (NaN) with fewer than
 * two messages or only zeros; bad sizes refused. */
#include "testlib.h"
#include "message_spread.h"

#include <math.h>

enum { LEN = 6 };

START_TEST(the_same_message_for_every_input_spreads_nothing)
{
    lw_msg_spread s;
    ck_assert_int_eq(lw_msg_spread_init(&s, LEN), LW_OK);
    const float z[LEN] = {0.3f, -1.7f, 2.5f, 0.0f, 11.0f, -4.25f};
    for (int i = 0; i < 5; i++) lw_msg_spread_add(&s, z);
    ck_assert_double_le(lw_msg_spread_value(&s), 1e-12);
    lw_msg_spread_free(&s);
}
END_TEST

START_TEST(the_between_example_share_of_the_second_moment)
{
    lw_msg_spread s;
    ck_assert_int_eq(lw_msg_spread_init(&s, LEN), LW_OK);
    /* +v and -v: mean 0, all of the moment between the examples */
    float a[LEN] = {1, 2, 3, 4, 5, 6}, b[LEN];
    for (int k = 0; k < LEN; k++) b[k] = -a[k];
    lw_msg_spread_add(&s, a);
    lw_msg_spread_add(&s, b);
    ck_assert_double_eq_tol(lw_msg_spread_value(&s), 1.0, 1e-12);
    lw_msg_spread_free(&s);
    /* a common part c = (3, 0, ...) and an input part +-d = (0, 1, 0, ...):
     * sum |z|^2 = 2 (9 + 1) = 20, sum |z - mean|^2 = 2; spread 0.1 */
    ck_assert_int_eq(lw_msg_spread_init(&s, LEN), LW_OK);
    float p[LEN] = {3, 1, 0, 0, 0, 0}, q[LEN] = {3, -1, 0, 0, 0, 0};
    lw_msg_spread_add(&s, p);
    lw_msg_spread_add(&s, q);
    ck_assert_double_eq_tol(lw_msg_spread_value(&s), 0.1, 1e-12);
    lw_msg_spread_free(&s);
}
END_TEST

START_TEST(too_little_to_measure_and_bad_sizes)
{
    lw_msg_spread s;
    ck_assert_int_eq(lw_msg_spread_init(&s, LEN), LW_OK);
    ck_assert(isnan(lw_msg_spread_value(&s)));   /* no message */
    const float z[LEN] = {1, 0, 0, 0, 0, 0}, zero[LEN] = {0};
    lw_msg_spread_add(&s, z);
    ck_assert(isnan(lw_msg_spread_value(&s)));   /* one message: nothing to compare */
    lw_msg_spread_free(&s);
    ck_assert_int_eq(lw_msg_spread_init(&s, LEN), LW_OK);
    lw_msg_spread_add(&s, zero);
    lw_msg_spread_add(&s, zero);
    ck_assert(isnan(lw_msg_spread_value(&s)));   /* only zeros */
    lw_msg_spread_free(&s);
    ck_assert_int_eq(lw_msg_spread_init(&s, 0), LW_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("message_spread");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, the_same_message_for_every_input_spreads_nothing);
    tcase_add_test(tc, the_between_example_share_of_the_second_moment);
    tcase_add_test(tc, too_little_to_measure_and_bad_sizes);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
