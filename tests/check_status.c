/* The error convention every module relies on. */
#include "testlib.h"
#include "status.h"
#include "jsonerr.h"
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

START_TEST(escape_bytes_shows_non_printable_bytes)
{
    char buf[32];
    ck_assert_str_eq(lw_escape_bytes("a\xEF\x01\\z", 5, buf, sizeof buf), "a\\xEF\\x01\\\\z");
    ck_assert_str_eq(lw_escape_bytes("ok\0x", 4, buf, sizeof buf), "ok\\x00x");
    /* Too long: cut, ending in "...", always NUL-ended within cap. */
    char small[8];
    ck_assert_str_eq(lw_escape_bytes("\xFF\xFF\xFF", 3, small, sizeof small), "\\xFF...");
    ck_assert_str_eq(lw_escape_bytes("abcdefghij", 10, small, sizeof small), "abcd...");
    json_error_t err;
    ck_assert_ptr_null(json_loads("\xEF\xBB\xBF[]", 0, &err));
    ck_assert(lw_json_error_is_bom(&err));
    ck_assert_str_eq(lw_json_error(&err), LW_BOM_MESSAGE);
    ck_assert_ptr_null(json_loads("[\xEF\xBB\xBF]", 0, &err));   /* not at the start: escaped */
    ck_assert(!lw_json_error_is_bom(&err));
    ck_assert_ptr_nonnull(strstr(lw_json_error(&err), "near '\\xEF\\xBB\\xBF'"));
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
    tcase_add_test(tc, escape_bytes_shows_non_printable_bytes);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
