/* Code generation: escaping of manifest text, template rendering, NVRTC
 * diagnostics pointing at the generated file and line. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "nvrtc_compile.h"
#include "template.h"

static const char *HOSTILE[] = {
    "plain",
    "quote \" and backslash \\ end",
    "newline\nand\r\ncarriage",
    "comment */ close and /* open",
    "#include <stdio.h>\n#define X 1",
    "trigraph ?\?/ and ?\?=",
    "tab\tbell\a utf8 caf\xc3\xa9 \xf0\x9f\x98\x80",
    "\");system(\"rm -rf /\");//",
    "digits after octal \x01" "7 stays",
};

/* Each hostile string, written as a C literal by lw_sb_c_string, must
 * compile and print back byte for byte. */
START_TEST(c_string_literals_round_trip_through_a_compiler)
{
    const char *dir = tl_tmpdir("escape");
    lw_strbuf src = {0};
    lw_sb_printf(&src, "#include <stdio.h>\nstatic const char *s[] = {\n");
    int n = (int)(sizeof HOSTILE / sizeof HOSTILE[0]);
    for (int i = 0; i < n; i++) {
        lw_sb_c_string(&src, HOSTILE[i]);
        lw_sb_append(&src, ",\n", 2);
    }
    lw_sb_printf(&src, "};\nint main(void){for(int i=0;i<%d;i++){fputs(s[i],stdout);putchar(0);}return 0;}\n", n);
    char c_path[4200], exe[4200], out_path[4200];
    snprintf(c_path, sizeof c_path, "%s/t.c", dir);
    snprintf(exe, sizeof exe, "%s/t", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    tl_write_file(c_path, src.data);
    lw_sb_free(&src);
    char *log = NULL;
    int rc = tl_run(&log, "cc -std=c11 -Wall -Wextra -Werror -trigraphs -o '%s' '%s' && '%s' > '%s'", exe, c_path,
                    exe, out_path);
    ck_assert_msg(rc == 0, "generated literals did not compile:\n%s", log);
    free(log);
    size_t len;
    char *got = tl_read_file(out_path, &len);
    ck_assert_ptr_nonnull(got);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(off < len && strcmp(got + off, HOSTILE[i]) == 0, "string %d did not round-trip", i);
        off += strlen(HOSTILE[i]) + 1;
    }
    free(got);
}
END_TEST

START_TEST(floats_are_floating_literals)
{
    lw_strbuf sb = {0};
    lw_sb_c_float(&sb, 100000.f);
    ck_assert_str_eq(sb.data, "100000.0");
    lw_sb_free(&sb);
    lw_sb_c_float(&sb, 1e-6f);
    ck_assert_str_eq(sb.data, "9.99999997e-07");
    lw_sb_free(&sb);
}
END_TEST

START_TEST(template_substitutes_bound_names)
{
    lw_template_vars tv = {0};
    lw_tv_int(&tv, "HIDDEN", 576);
    lw_tv_float(&tv, "EPS", 1e-5f);
    lw_strbuf sb = {0};
    ck_assert_int_eq(lw_template_render("t.in", "#define H @@HIDDEN@@\n#define E @@EPS@@f\n", &tv, &sb), LW_OK);
    ck_assert_str_eq(sb.data, "#define H 576\n#define E 9.99999975e-06f\n");
    lw_sb_free(&sb);
}
END_TEST

START_TEST(template_unbound_name_is_an_error_with_line)
{
    lw_template_vars tv = {0};
    lw_tv_int(&tv, "HIDDEN", 576);
    lw_strbuf sb = {0};
    ck_assert_int_eq(lw_template_render("model.cu.in", "a\nb @@HIDDEN@@\nc @@HEADS@@\n", &tv, &sb), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "model.cu.in:3") && strstr(lw_last_error(), "@@HEADS@@"), "%s",
                  lw_last_error());
    lw_sb_free(&sb);
    ck_assert_int_eq(lw_template_render("x.in", "a @@OPEN\n@@", &tv, &sb), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "x.in:1: unterminated"), "%s", lw_last_error());
    lw_sb_free(&sb);
}
END_TEST

START_TEST(nvrtc_errors_name_the_generated_file_and_line)
{
    if (!lw_nvrtc_available()) {
        unsigned char *img;
        size_t n;
        ck_assert_int_eq(lw_nvrtc_compile("", "x.cu", 90, &img, &n), LW_ERR_UNSUPPORTED);
        return;
    }
    const char *src = "extern \"C\" __global__ void k(float *x)\n{\n    x[0] = undefined_name;\n}\n";
    unsigned char *img = NULL;
    size_t n = 0;
    ck_assert_int_eq(lw_nvrtc_compile(src, "build/p/kernels_receiver.cu", 90, &img, &n), LW_ERR_EXTERNAL);
    ck_assert_msg(strstr(lw_last_error(), "build/p/kernels_receiver.cu(3)"), "%s", lw_last_error());
    ck_assert_msg(strstr(lw_last_error(), "undefined_name"), "%s", lw_last_error());
    ck_assert_int_eq(lw_nvrtc_compile("extern \"C\" __global__ void k(float *x){x[0]=1.f;}", "ok.cu", 80, &img, &n),
                     LW_OK);
    ck_assert(n > 100 && img[0] == 0x7f && img[1] == 'E'); /* an ELF CUBIN */
    free(img);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("codegen");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, c_string_literals_round_trip_through_a_compiler);
    tcase_add_test(tc, floats_are_floating_literals);
    tcase_add_test(tc, template_substitutes_bound_names);
    tcase_add_test(tc, template_unbound_name_is_an_error_with_line);
    tcase_add_test(tc, nvrtc_errors_name_the_generated_file_and_line);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
