/* The error convention every module relies on. */
#include "testlib.h"
#include "status.h"
#include "model_config.h"

#include <string.h>

static lw_status open_thing(const char *path)
{
    return lw_fail(LW_ERR_IO, "cannot open %s", path);
}

START_TEST(fail_records_message_and_returns_code)
{
    ck_assert_int_eq(open_thing("x.gguf"), LW_ERR_IO);
    ck_assert_str_eq(lw_last_error(), "cannot open x.gguf");
}
END_TEST

START_TEST(wrap_prefixes_context)
{
    open_thing("x.gguf");
    ck_assert_int_eq(lw_fail_wrap(LW_ERR_IO, "loading sender"), LW_ERR_IO);
    ck_assert_str_eq(lw_last_error(), "loading sender: cannot open x.gguf");
}
END_TEST

START_TEST(local_layers_follow_the_pattern)
{
    lw_model_config m;
    memset(&m, 0, sizeof m);
    m.sliding_window = 512;
    m.global_every = 6;
    ck_assert(lw_layer_is_local(&m, 0));
    ck_assert(!lw_layer_is_local(&m, 5));
    ck_assert(lw_layer_is_local(&m, 6));
    ck_assert(!lw_layer_is_local(&m, 11));
    m.sliding_window = 0;
    ck_assert(!lw_layer_is_local(&m, 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fail_records_message_and_returns_code);
    tcase_add_test(tc, wrap_prefixes_context);
    tcase_add_test(tc, local_layers_follow_the_pattern);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
