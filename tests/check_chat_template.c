/* Chat templates, byte for byte against transformers' rendering of each
 * model's Jinja template (tests/golden/tokenizer_spm/chat.txt, made by
 * tests/golden/make_spm_goldens.py chat). */
#include "testlib.h"
#include "golden_text.h"
#include "chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_chat_template kind_named(const char *name)
{
    if (!strcmp(name, "chatml")) return LW_CHAT_CHATML;
    if (!strcmp(name, "gemma")) return LW_CHAT_GEMMA;
    if (!strcmp(name, "llama3")) return LW_CHAT_LLAMA3;
    if (!strcmp(name, "mistral")) return LW_CHAT_MISTRAL;
    ck_abort_msg("chat.txt: unknown template %s", name);
    return LW_CHAT_NONE;
}

START_TEST(templates_match_transformers)
{
    size_t n;
    char *text = tl_read_file(tl_src("tests/golden/tokenizer_spm/chat.txt"), &n);
    ck_assert_msg(text != NULL, "missing chat.txt (run tests/golden/make_spm_goldens.py chat)");
    char *line[6], *save = NULL;
    int cases = 0, seen[5] = {0};
    for (char *p = strtok_r(text, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
        line[0] = p;
        for (int k = 1; k < 6; k++) {
            line[k] = strtok_r(NULL, "\n", &save);
            ck_assert_msg(line[k] != NULL, "chat.txt: record %d is cut short", cases + 1);
            tl_unescape(line[k]);
        }
        lw_chat_template kind = kind_named(line[0]);
        const char *system = line[1][0] == '!' ? NULL : line[1] + 1;
        const char *before = line[2] + 1, *after = line[3] + 1;
        size_t nb = strlen(before), na = strlen(after);
        char *user = malloc(nb + na + 1);
        memcpy(user, before, nb);
        memcpy(user + nb, after, na + 1);

        char *out = NULL;
        ck_assert_int_eq(lw_chat_render(kind, system, user, &out), LW_OK);
        ck_assert_msg(strcmp(out, line[4]) == 0, "%s, user \"%s\":\n got  \"%s\"\n want \"%s\"", line[0], user, out,
                      line[4]);
        char *b = NULL, *a = NULL;
        ck_assert_int_eq(lw_chat_render_split(kind, system, before, after, &b, &a), LW_OK);
        size_t len = strlen(b) + strlen("<<SOFT>>") + strlen(a) + 1;
        char *joined = malloc(len);
        snprintf(joined, len, "%s<<SOFT>>%s", b, a);
        ck_assert_msg(strcmp(joined, line[5]) == 0, "%s split \"%s\" | \"%s\":\n got  \"%s\"\n want \"%s\"", line[0],
                      before, after, joined, line[5]);
        free(joined);
        free(b);
        free(a);
        free(out);
        free(user);
        seen[kind]++;
        cases++;
    }
    free(text);
    ck_assert_int_ge(cases, 40);
    for (int k = LW_CHAT_CHATML; k <= LW_CHAT_MISTRAL; k++)
        ck_assert_int_ge(seen[k], 10);
}
END_TEST

START_TEST(none_passes_text_and_refuses_system)
{
    char *out = NULL;
    ck_assert_int_eq(lw_chat_render(LW_CHAT_NONE, NULL, "  raw text ", &out), LW_OK);
    ck_assert_str_eq(out, "  raw text ");
    free(out);
    ck_assert_int_eq(lw_chat_render(LW_CHAT_NONE, "sys", "x", &out), LW_ERR_INVALID);
    ck_assert_int_eq(lw_chat_render((lw_chat_template)42, NULL, "x", &out), LW_ERR_INVALID);
    ck_assert_int_eq(lw_chat_render(LW_CHAT_GEMMA, NULL, NULL, &out), LW_ERR_INVALID);
}
END_TEST

/* Invalid UTF-8 passes through; a lone continuation byte is not white space. */
START_TEST(trim_leaves_invalid_bytes)
{
    char *out = NULL;
    ck_assert_int_eq(lw_chat_render(LW_CHAT_GEMMA, NULL, " \x80 x \xe3\x80", &out), LW_OK);
    ck_assert_str_eq(out, "<bos><start_of_turn>user\n\x80 x \xe3\x80<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    ck_assert_int_eq(lw_chat_render(LW_CHAT_LLAMA3, NULL, "\xe3\x80\x80hi\xe3\x80\x80", &out), LW_OK);
    ck_assert(strstr(out, "<|end_header_id|>\n\nhi<|eot_id|>") != NULL);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chat_template");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, templates_match_transformers);
    tcase_add_test(tc, none_passes_text_and_refuses_system);
    tcase_add_test(tc, trim_leaves_invalid_bytes);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
