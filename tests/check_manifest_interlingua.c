/* The manifest's optional "interlingua" block: absent means off, empty
 * needs its encoder, every field lands where it should, the encoder path
 * is resolved like the weights', each class of error names the file, the
 * JSON path and what was expected; and lwc build bakes the block into the
 * pair's runtime only when it is there. */
#include "testlib.h"
#include "gen_runtime.h"
#include "fileutil.h"
#include "manifest.h"
#include "manifest_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The smallest manifest (tests/testlib/manifest_text.h) plus `extra`
 * top-level members (", \"lora\": {...}"), read as /d/m.json. */
static lw_status parse_with(const char *extra, lw_manifest *m)
{
    return tl_manifest_parse_with(extra, "/d/m.json", m);
}

static void expect_error(const char *extra, lw_status code, const char *message)
{
    tl_manifest_expect_error(extra, "/d/m.json", code, message);
}

START_TEST(absent_is_off_and_fields_are_read)
{
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(parse_with("", m), LW_OK);
    ck_assert(!m->has_interlingua);
    ck_assert_int_eq(parse_with(", \"interlingua\": {\"encoder\": \"enc/minilm\"}", m), LW_OK);
    ck_assert(m->has_interlingua);
    ck_assert_str_eq(m->interlingua.encoder, "/d/enc/minilm");   /* against the manifest's folder */
    ck_assert_int_eq(m->interlingua.latents, 16);
    ck_assert_int_eq(m->interlingua.d_z, 256);
    ck_assert_int_eq(m->interlingua.adapter_ffn, 1024);
    ck_assert_int_eq(m->interlingua.max_encoder_tokens, 256);
    ck_assert_float_eq(m->interlingua.first_token_weight, 0.0f);
    ck_assert_int_eq(parse_with(", \"interlingua\": {\"encoder\": \"/e\", \"latents\": 8, \"d_z\": 64, \"width\": 96,"
                                " \"depth\": 1, \"heads\": 3, \"ffn_mult\": 2, \"adapter_ffn\": 128,"
                                " \"max_encoder_tokens\": 128, \"first_token_weight\": 0.5}",
                                m),
                     LW_OK);
    const lw_interlingua_manifest *il = &m->interlingua;
    ck_assert(il->latents == 8 && il->d_z == 64 && il->width == 96 && il->depth == 1 && il->heads == 3 &&
              il->ffn_mult == 2 && il->adapter_ffn == 128 && il->max_encoder_tokens == 128);
    ck_assert_float_eq(il->first_token_weight, 0.5f);
    free(m);
}
END_TEST

START_TEST(errors_name_the_field)
{
    expect_error(", \"interlingua\": {}", LW_ERR_FORMAT,
                 "/d/m.json: interlingua.encoder: missing required field; expected a string");
    expect_error(", \"interlingua\": {\"encoder\": \"/e\", \"latents\": 0}", LW_ERR_INVALID,
                 "/d/m.json: interlingua.latents: 0 is out of range; expected an integer from 1 to 256");
    expect_error(", \"interlingua\": {\"encoder\": \"/e\", \"width\": 100, \"heads\": 3}", LW_ERR_INVALID,
                 "/d/m.json: interlingua.heads: 3 does not divide width 100; expected a divisor of width");
    expect_error(", \"interlingua\": {\"encoder\": \"/e\", \"first_token_weight\": -1}", LW_ERR_INVALID,
                 "/d/m.json: interlingua.first_token_weight: -1 is out of range; expected a number in [0, 100]");
    expect_error(", \"interlingua\": {\"encoder\": \"/e\", \"max_encoder_tokens\": 1}", LW_ERR_INVALID,
                 "/d/m.json: interlingua.max_encoder_tokens: 1 is out of range; expected an integer from 2 to 512");
    lw_manifest *m = malloc(sizeof *m);
    ck_assert_int_eq(parse_with(", \"interlingua\": {\"encoder\": \"/e\", \"readers\": 2}", m), LW_ERR_FORMAT);
    ck_assert(strstr(lw_last_error(), "interlingua.readers: unknown key") != NULL);
    free(m);
}
END_TEST

START_TEST(build_bakes_the_block_only_when_present)
{
    lw_manifest *m = malloc(sizeof *m);
    for (int with = 0; with < 2; with++) {
        ck_assert_int_eq(parse_with(with ? ", \"interlingua\": {\"encoder\": \"/e\", \"latents\": 8}" : "", m), LW_OK);
        lw_strbuf sb = {0};
        ck_assert_int_eq(lw_gen_pair_runtime(m, "stamp", "none", &sb), LW_OK);
        ck_assert(!sb.failed && sb.data != NULL);
        const char *c = sb.data;
        ck_assert_int_eq(strstr(c, ".has_interlingua = 1") != NULL, with);
        ck_assert_int_eq(strstr(c, ".latents = 8,") != NULL, with);
        ck_assert_int_eq(strstr(c, ".encoder = \"/e\"") != NULL, with);
        lw_sb_free(&sb);
    }
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manifest_interlingua");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, absent_is_off_and_fields_are_read);
    tcase_add_test(tc, errors_name_the_field);
    tcase_add_test(tc, build_bakes_the_block_only_when_present);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
