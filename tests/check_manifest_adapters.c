/* The manifest's optional "lora" and "deep_prefix" blocks: absent means
 * off, empty means the defaults, every field lands where it should, and each
 * class of error names the file, the JSON path and what was expected. */
#include "testlib.h"
#include "manifest.h"
#include "manifest_text.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The smallest manifest (tests/testlib/manifest_text.h) plus `extra`
 * top-level members (", \"lora\": {...}"), read as d/m.json. */
static lw_status parse_with(const char *extra, lw_manifest *m)
{
    return tl_manifest_parse_with(extra, "d/m.json", m);
}

static void expect_error(const char *extra, lw_status code, const char *message)
{
    tl_manifest_expect_error(extra, "d/m.json", code, message);
}

START_TEST(absent_blocks_are_off)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(parse_with("", m), LW_OK);
    ck_assert(!m->has_lora && !m->has_deep_prefix);
    free(m);
}
END_TEST

START_TEST(empty_blocks_give_the_defaults)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(parse_with(", \"lora\": {}, \"deep_prefix\": {}", m), LW_OK);
    ck_assert(m->has_lora && m->has_deep_prefix);
    ck_assert_int_eq(m->lora.rank, 8);
    ck_assert_float_eq(m->lora.alpha, 16.0f);
    ck_assert_float_eq(m->lora.dropout, 0.0f);
    ck_assert_uint_eq(m->lora.targets, (1u << 0) | (1u << 2));   /* q, v */
    ck_assert(m->lora.first_layers == 0 && m->lora.n_layer_list == 0);   /* every layer */
    ck_assert_int_eq(m->deep_prefix.length, 8);
    ck_assert_int_eq(m->deep_prefix.hidden, 128);
    ck_assert_float_eq(m->deep_prefix.dropout, 0.0f);
    free(m);
}
END_TEST

START_TEST(fields_are_read)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(parse_with(", \"lora\": {\"rank\": 4, \"alpha\": 32, \"dropout\": 0.1, \"targets\": [\"q\", "
                                "\"k\", \"v\", \"o\", \"gate\", \"up\", \"down\"], \"layers\": 6},"
                                " \"deep_prefix\": {\"length\": 16, \"dropout\": 0.2, \"hidden\": 128}", m), LW_OK);
    ck_assert_int_eq(m->lora.rank, 4);
    ck_assert_float_eq(m->lora.alpha, 32.0f);
    ck_assert_float_eq_tol(m->lora.dropout, 0.1f, 1e-7f);
    ck_assert_uint_eq(m->lora.targets, 127u);
    ck_assert_int_eq(m->lora.first_layers, 6);
    ck_assert(m->deep_prefix.length == 16 && m->deep_prefix.hidden == 128);
    ck_assert_float_eq_tol(m->deep_prefix.dropout, 0.2f, 1e-7f);
    ck_assert_int_eq(parse_with(", \"lora\": {\"rank\": 2, \"layers\": [0, 5, 17]}", m), LW_OK);
    ck_assert_float_eq(m->lora.alpha, 4.0f);   /* alpha defaults to 2 rank */
    ck_assert(m->lora.first_layers == 0 && m->lora.n_layer_list == 3 && m->lora.layer_list[2] == 17);
    free(m);
}
END_TEST

START_TEST(lora_errors)
{
    expect_error(", \"lora\": [1]", LW_ERR_FORMAT, "d/m.json: lora: got an array; expected an object");
    expect_error(", \"lora\": {\"ranks\": 4}", LW_ERR_FORMAT,
                 "d/m.json: lora.ranks: unknown key (did you mean \"rank\"?); expected one of: rank, alpha, dropout, "
                 "targets, layers");
    expect_error(", \"lora\": {\"rank\": 0}", LW_ERR_INVALID,
                 "d/m.json: lora.rank: 0 is out of range; expected an integer from 1 to 1024");
    expect_error(", \"lora\": {\"rank\": \"8\"}", LW_ERR_FORMAT,
                 "d/m.json: lora.rank: got a string; expected an integer from 1 to 1024");
    expect_error(", \"lora\": {\"alpha\": 0}", LW_ERR_INVALID,
                 "d/m.json: lora.alpha: 0 is out of range; expected a number in (0, 1e+06]");
    expect_error(", \"lora\": {\"dropout\": 1}", LW_ERR_INVALID,
                 "d/m.json: lora.dropout: 1 is out of range; expected a number in [0, 0.99]");
}
END_TEST

START_TEST(lora_target_errors)
{
    expect_error(", \"lora\": {\"targets\": \"q,v\"}", LW_ERR_FORMAT,
                 "d/m.json: lora.targets: got a string; expected a non-empty array of distinct \"q\", \"k\", \"v\", "
                 "\"o\", \"gate\", \"up\", \"down\"");
    expect_error(", \"lora\": {\"targets\": []}", LW_ERR_INVALID,
                 "d/m.json: lora.targets: empty; expected a non-empty array of distinct \"q\", \"k\", \"v\", "
                 "\"o\", \"gate\", \"up\", \"down\"");
    expect_error(", \"lora\": {\"targets\": [\"q\", \"q_proj\"]}", LW_ERR_INVALID,
                 "d/m.json: lora.targets[1]: \"q_proj\" is not a target; expected one of \"q\", \"k\", \"v\", "
                 "\"o\", \"gate\", \"up\", \"down\"");
    expect_error(", \"lora\": {\"targets\": [\"v\", \"v\"]}", LW_ERR_INVALID,
                 "d/m.json: lora.targets[1]: \"v\" listed twice; expected each target once");
    expect_error(", \"lora\": {\"targets\": [3]}", LW_ERR_FORMAT,
                 "d/m.json: lora.targets[0]: got an integer; expected a target name");
}
END_TEST

START_TEST(lora_layer_errors)
{
    expect_error(", \"lora\": {\"layers\": \"all\"}", LW_ERR_FORMAT,
                 "d/m.json: lora.layers: got a string; expected a count of first layers or an array of layer "
                 "indices");
    expect_error(", \"lora\": {\"layers\": 19}", LW_ERR_INVALID,
                 "d/m.json: lora.layers: 19 is out of range; expected an integer from 1 to 18");
    expect_error(", \"lora\": {\"layers\": []}", LW_ERR_INVALID, "d/m.json: lora.layers: 0 entries; expected 1 to 18");
    expect_error(", \"lora\": {\"layers\": [0, 18]}", LW_ERR_INVALID,
                 "d/m.json: lora.layers[1]: 18 is out of range; expected a layer index from 0 to 17");
    expect_error(", \"lora\": {\"layers\": [3, 3]}", LW_ERR_INVALID,
                 "d/m.json: lora.layers[1]: layer 3 listed twice; expected each layer once");
    expect_error(", \"lora\": {\"layers\": [1.5]}", LW_ERR_FORMAT,
                 "d/m.json: lora.layers[0]: got a fractional number; expected a layer index");
}
END_TEST

START_TEST(deep_prefix_errors)
{
    expect_error(", \"deep_prefix\": 8", LW_ERR_FORMAT, "d/m.json: deep_prefix: got an integer; expected an object");
    expect_error(", \"deep_prefix\": {\"lenght\": 8}", LW_ERR_FORMAT,
                 "d/m.json: deep_prefix.lenght: unknown key (did you mean \"length\"?); expected one of: length, "
                 "dropout, hidden");
    expect_error(", \"deep_prefix\": {\"length\": 0}", LW_ERR_INVALID,
                 "d/m.json: deep_prefix.length: 0 is out of range; expected an integer from 1 to 256");
    expect_error(", \"deep_prefix\": {\"hidden\": 70000}", LW_ERR_INVALID,
                 "d/m.json: deep_prefix.hidden: 70000 is out of range; expected an integer from 1 to 65536");
    expect_error(", \"deep_prefix\": {\"dropout\": -0.1}", LW_ERR_INVALID,
                 "d/m.json: deep_prefix.dropout: -0.1 is out of range; expected a number in [0, 0.99]");
    expect_error(", \"deep_prfix\": {}", LW_ERR_FORMAT,
                 "d/m.json: deep_prfix: unknown key (did you mean \"deep_prefix\"?); expected one of: lwc_manifest, "
                 "name, sender, receiver, bridge, train, build, lora, deep_prefix, interlingua");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manifest_adapters");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, absent_blocks_are_off);
    tcase_add_test(tc, empty_blocks_give_the_defaults);
    tcase_add_test(tc, fields_are_read);
    tcase_add_test(tc, lora_errors);
    tcase_add_test(tc, lora_target_errors);
    tcase_add_test(tc, lora_layer_errors);
    tcase_add_test(tc, deep_prefix_errors);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
