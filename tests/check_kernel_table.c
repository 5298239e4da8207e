/* The kernel table (templates/kernels.def) against what it governs, without
 * a GPU: the kernel templates agree with it, and a template that drifts
 * (a parameter's type or name, a parameter too few, a kernel the table
 * lacks or one it has that is gone) is refused by the check and by the
 * kernel generation `lwc build` runs, naming the kernel and the line; the
 * launcher header the build compiled against is the one the table gives
 * today; a host call that does not fit a launcher does not compile; and no
 * kernel is launched by hand (by name, with a packed argument array) in
 * runtime/ or tests/gpu/ outside the two files that implement launching.
 * (check_kernel_templates.c compiles every kernel of the table with NVRTC.) */
#include "testlib.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "gen_launchers.h"
#include "kernel_launchers.h"
#include "kernel_table.h"
#include "manifest.h"

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_template(const char *name)
{
    char rel[128];
    snprintf(rel, sizeof rel, "templates/%s", name);
    char *text = tl_read_file(tl_src(rel), NULL);
    ck_assert_msg(text != NULL, "cannot read %s", rel);
    return text;
}

/* text with the one occurrence of from replaced by to (malloc'd); *line gets
 * the line the replacement starts on. */
static char *replace_once(const char *text, const char *from, const char *to, int *line)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the template: update this test with it", from);
    ck_assert_msg(strstr(at + 1, from) == NULL, "'%s' is in the template twice", from);
    size_t head = (size_t)(at - text), from_len = strlen(from), to_len = strlen(to);
    char *out = malloc(strlen(text) - from_len + to_len + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, text, head);
    memcpy(out + head, to, to_len);
    strcpy(out + head + to_len, at + from_len);
    if (line) {
        *line = 1;
        for (const char *c = text; c < at; c++) *line += *c == '\n';
    }
    return out;
}

static void expect_message(const char *a, const char *b, const char *c)
{
    const char *e = lw_last_error();
    ck_assert_msg(strstr(e, a) && (!b || strstr(e, b)) && (!c || strstr(e, c)), "message lacks '%s' / '%s' / '%s': %s",
                  a, b ? b : "", c ? c : "", e);
}

START_TEST(the_templates_agree_with_the_table)
{
    ck_assert_msg(lw_kernel_table_validate() == LW_OK, "%s", lw_last_error());
    char *model = read_template("model_kernels.cu.in"), *bridge = read_template("bridge_kernels.cu.in");
    ck_assert_msg(lw_kernel_table_check_template("model_kernels.cu.in", model, "model") == LW_OK, "%s",
                  lw_last_error());
    ck_assert_msg(lw_kernel_table_check_template("bridge_kernels.cu.in", bridge, "bridge") == LW_OK, "%s",
                  lw_last_error());
    /* the generated sets hold every kernel of the table, each in one unit */
    ck_assert_int_eq(LW_MODEL_KERNEL_COUNT + LW_BRIDGE_KERNEL_COUNT, lw_kernel_table_len);
    ck_assert_int_eq(sizeof(lw_model_kernels), LW_MODEL_KERNEL_COUNT * sizeof(lw_cuda_kernel));
    for (int i = 0; i < LW_MODEL_KERNEL_COUNT; i++) {
        char def[96];
        snprintf(def, sizeof def, "void %s(", lw_model_kernel_name(i));
        ck_assert_msg(strstr(model, def) != NULL, "%s is not in model_kernels.cu.in", lw_model_kernel_name(i));
    }
    ck_assert_ptr_null(lw_model_kernel_name(LW_MODEL_KERNEL_COUNT));
    ck_assert_ptr_null(lw_bridge_kernel_name(-1));
    free(model), free(bridge);
}
END_TEST

START_TEST(parameter_lists_parse_to_one_spelling)
{
    lw_kernel_param p[LW_KERNEL_MAX_PARAMS];
    int n;
    ck_assert_int_eq(lw_kernel_parse_params(" ( const float* x ,unsigned  long long seed,\n int T ) ", "t", p,
                                            LW_KERNEL_MAX_PARAMS, &n), LW_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(p[0].type, "const float *");
    ck_assert_str_eq(p[0].name, "x");
    ck_assert_str_eq(p[1].type, "unsigned long long");
    ck_assert_str_eq(p[2].type, "int");
    ck_assert_str_eq(p[2].name, "T");
    ck_assert_int_eq(lw_kernel_parse_params("()", "t", p, LW_KERNEL_MAX_PARAMS, &n), LW_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_str_eq(lw_kernel_host_type("const float *"), "lw_cuda_ptr");
    ck_assert_str_eq(lw_kernel_host_type("unsigned long long"), "unsigned long long");
    ck_assert_ptr_null(lw_kernel_host_type("double"));
    static const char *const bad[] = {"(float)", "(int (*f)(void))", "float *x", "(float x[4])", "(int a,)", NULL};
    for (const char *const *b = bad; *b; b++) {
        ck_assert_msg(lw_kernel_parse_params(*b, "list", p, LW_KERNEL_MAX_PARAMS, &n) == LW_ERR_FORMAT,
                      "'%s' parsed", *b);
        expect_message("list", NULL, NULL);
    }
    ck_assert_int_eq(lw_kernel_parse_params("(int a, int b, int c)", "short", p, 2, &n), LW_ERR_FORMAT);
}
END_TEST

/* Each drift of the model template from the table, alone. */
START_TEST(a_template_that_differs_from_the_table_is_refused)
{
    char *model = read_template("model_kernels.cu.in");
    const char *glu = "extern \"C\" __global__ void glu_forward(float *out, const float *gate, const float *up, int n)";
    char line_text[16];
    int line;

    /* a parameter's type */
    char *t = replace_once(model, glu, "extern \"C\" __global__ void glu_forward(float *out, const float *gate, "
                           "const float *up, float n)", &line);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    snprintf(line_text, sizeof line_text, ".in:%d:", line);
    expect_message(line_text, "glu_forward's parameter 4 is 'float n' here but 'int n'", "kernels.def");
    free(t);

    /* a constness: the host would pass the right pointer, but the table must say what the kernel does */
    t = replace_once(model, glu, "extern \"C\" __global__ void glu_forward(float *out, float *gate, const float *up, "
                     "int n)", NULL);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("parameter 2 is 'float *gate' here but 'const float *gate'", NULL, NULL);
    free(t);

    /* two parameters swapped: same types, so only the names tell */
    t = replace_once(model, "void glu_backward(float *dgate, float *dup,", "void glu_backward(float *dup, float *dgate,",
                     NULL);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("glu_backward's parameter 1 is 'float *dup' here but 'float *dgate'", NULL, NULL);
    free(t);

    /* a parameter too few */
    t = replace_once(model, "f32_to_bf16(unsigned short *y, const float *x, int n)",
                     "f32_to_bf16(unsigned short *y, const float *x)", NULL);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("f32_to_bf16 takes 2 parameters here but 3", NULL, NULL);
    free(t);

    /* a kernel the table lacks (the same words in a comment are prose, not a kernel) */
    size_t len = strlen(model);
    t = malloc(len + 256);
    ck_assert_ptr_nonnull(t);
    snprintf(t, len + 256, "%s// as extern \"C\" __global__ void glu_forward(int) once was\n", model);
    ck_assert_msg(lw_kernel_table_check_template("model_kernels.cu.in", t, "model") == LW_OK, "%s", lw_last_error());
    snprintf(t, len + 256, "%sextern \"C\" __global__ void scale_rows(float *x, int n) {}\n", model);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("kernel scale_rows is not in templates/kernels.def", NULL, NULL);
    free(t);

    /* a kernel of the table that is gone (a plain device function now) */
    t = replace_once(model, "extern \"C\" __global__ void glu_backward(", "__device__ void glu_backward(", NULL);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("kernel glu_backward of templates/kernels.def (unit model) is not defined", NULL, NULL);
    free(t);

    /* one kernel twice */
    t = malloc(len + 256);
    ck_assert_ptr_nonnull(t);
    snprintf(t, len + 256, "%s%s {}\n", model, glu);
    ck_assert_int_eq(lw_kernel_table_check_template("model_kernels.cu.in", t, "model"), LW_ERR_FORMAT);
    expect_message("glu_forward is defined twice", NULL, NULL);
    free(t);

    /* the bridge's kernels are not the model unit's */
    char *bridge = read_template("bridge_kernels.cu.in");
    ck_assert_int_eq(lw_kernel_table_check_template("bridge_kernels.cu.in", bridge, "model"), LW_ERR_FORMAT);
    expect_message("in the model unit's template but templates/kernels.def gives it to the bridge unit", NULL, NULL);
    free(bridge), free(model);
}
END_TEST

/* The same refusal through lw_gen_model_kernels, which `lwc build` calls: a
 * copy of the templates builds, the copy with one wrong signature does not. */
START_TEST(kernel_generation_refuses_a_wrong_signature)
{
    lw_manifest *man = calloc(1, sizeof *man);
    ck_assert_ptr_nonnull(man);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), man) == LW_OK, "%s",
                  lw_last_error());
    const char *dir = tl_tmpdir("kernel_table_templates");
    static const char *const files[] = {"model_constants.cuh.in", "common.cuh", "model_kernels.cu.in",
                                        "bridge_constants.cuh.in", "bridge_kernels.cu.in"};
    char path[4300];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = read_template(files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        tl_write_file(path, text);
        free(text);
    }
    lw_strbuf sb = {0};
    ck_assert_msg(lw_gen_model_kernels(dir, &man->receiver, man->bridge.soft_tokens, &sb) == LW_OK, "%s",
                  lw_last_error());
    lw_sb_free(&sb);
    char *model = read_template("model_kernels.cu.in");
    int line;
    char *t = replace_once(model, "rope_apply(float *x, const int *pos, int T, int n_heads, float base, float sign,",
                           "rope_apply(float *x, const int *pos, int T, int n_heads, float sign, float base,", &line);
    snprintf(path, sizeof path, "%s/model_kernels.cu.in", dir);
    tl_write_file(path, t);
    ck_assert_int_eq(lw_gen_model_kernels(dir, &man->receiver, man->bridge.soft_tokens, &sb), LW_ERR_FORMAT);
    lw_sb_free(&sb);
    char where[64];
    snprintf(where, sizeof where, "model_kernels.cu.in:%d:", line);
    expect_message(where, "rope_apply's parameter 5 is 'float sign' here but 'float base'", NULL);
    /* the bridge unit is checked as well */
    char *bridge = read_template("bridge_kernels.cu.in");
    char *b = replace_once(bridge, "gelu_forward(float *y, const float *x, int n)",
                           "gelu_forward(float *y, const float *x, unsigned n)", NULL);
    snprintf(path, sizeof path, "%s/bridge_kernels.cu.in", dir);
    tl_write_file(path, b);
    ck_assert_int_eq(lw_gen_bridge_kernels(dir, man, &sb), LW_ERR_FORMAT);
    lw_sb_free(&sb);
    expect_message("gelu_forward's parameter 3 is 'unsigned n' here but 'int n'", NULL, NULL);
    free(b), free(bridge), free(t), free(model), free(man);
}
END_TEST

/* The header liblwrt was compiled against is what the table gives now. */
START_TEST(the_built_launchers_are_the_tables)
{
    lw_strbuf sb = {0};
    ck_assert_msg(lw_gen_kernel_launchers(&sb) == LW_OK, "%s", lw_last_error());
    char *built = tl_read_file(tl_out("gen/kernel_launchers.h"), NULL);
    ck_assert_msg(built != NULL, "no %s", tl_out("gen/kernel_launchers.h"));
    ck_assert_msg(strcmp(built, sb.data) == 0, "out/gen/kernel_launchers.h differs from what the table generates");
    /* one launcher per kernel, taking its unit's set */
    for (int i = 0; i < lw_kernel_table_len; i++) {
        char sig[160];
        snprintf(sig, sizeof sig, "lw_status lwk_%s(lw_launch L, const lw_%s_kernels *ks", lw_kernel_table[i].name,
                 lw_kernel_table[i].unit);
        ck_assert_msg(strstr(sb.data, sig) != NULL, "no launcher '%s'", sig);
    }
    free(built);
    lw_sb_free(&sb);
}
END_TEST

/* Compiles body against the launchers (-Werror, as the project builds);
 * returns the compiler's status, its output in *log. */
static int compile_call(const char *dir, const char *name, const char *body, char **log)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.c", dir, name);
    lw_strbuf src = {0};
    lw_sb_printf(&src, "#include \"kernel_launchers.h\"\n"
                       "lw_status call(lw_cuda *cu, const lw_model_kernels *mk, const lw_bridge_kernels *bk,\n"
                       "               lw_cuda_ptr a, lw_cuda_ptr b, lw_cuda_ptr c, float *host);\n"
                       "lw_status call(lw_cuda *cu, const lw_model_kernels *mk, const lw_bridge_kernels *bk,\n"
                       "               lw_cuda_ptr a, lw_cuda_ptr b, lw_cuda_ptr c, float *host)\n"
                       "{\n    lw_launch L = {.cu = cu};\n    (void)mk, (void)bk, (void)host;\n    return %s;\n}\n",
                 body);
    tl_write_file(path, src.data);
    lw_sb_free(&src);
    /* the folders of the runtime that the launchers' header and what it
     * includes live in */
    static const char *const header_dirs[] = {"runtime/device", "plan", "manifest", "base", NULL};
    lw_strbuf incs = {0};
    lw_sb_printf(&incs, "-I'%s'", tl_out("gen"));
    for (const char *const *d = header_dirs; *d; d++) lw_sb_printf(&incs, " -I'%s'", tl_src(*d));
    int rc = tl_run(log, "cc -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -fsyntax-only %s '%s'", incs.data, path);
    lw_sb_free(&incs);
    return rc;
}

START_TEST(a_call_that_does_not_fit_its_launcher_does_not_compile)
{
    const char *dir = tl_tmpdir("kernel_table_calls");
    char *log = NULL;
    ck_assert_msg(compile_call(dir, "fits", "lwk_glu_forward(L, mk, a, b, c, 5)", &log) == 0,
                  "a fitting call did not compile:\n%s", log);
    free(log);
    ck_assert_msg(compile_call(dir, "fits_bridge", "lwk_rms_calibrate_forward(L, bk, a, b, c, a, 16)", &log) == 0,
                  "a fitting call did not compile:\n%s", log);
    free(log);
    static const struct {
        const char *name, *call, *why;
    } bad[] = {
        {"too_few", "lwk_glu_forward(L, mk, a, b, c)", "too few arguments"},
        {"too_many", "lwk_f32_to_bf16(L, mk, a, b, 5, 6)", "too many arguments"},
        {"size_missing", "lwk_attention_forward(L, mk, a, b, c, a, b, 4, 4, 0, 0, 0)", "too few arguments"},
        {"other_unit", "lwk_layernorm_forward(L, mk, a, b, c, a, b, c, 4)", "lw_bridge_kernels"},
        {"host_pointer", "lwk_glu_forward(L, mk, a, host, c, 5)", "integer from pointer"},
        {"no_such_kernel", "lwk_glu_forwards(L, mk, a, b, c, 5)", "lwk_glu_forwards"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(compile_call(dir, bad[i].name, bad[i].call, &log) != 0, "%s compiled: %s", bad[i].name,
                      bad[i].call);
        ck_assert_msg(strstr(log, bad[i].why) != NULL, "%s: the compiler did not say '%s':\n%s", bad[i].name,
                      bad[i].why, log);
        free(log);
    }
}
END_TEST

/* ---- no kernel launched by hand ------------------------------------------ */

/* The C code of text, comments and string and character literals blanked
 * (newlines kept, so offsets give lines), malloc'd. */
static char *code_only(const char *text)
{
    char *c = strdup(text);
    ck_assert_ptr_nonnull(c);
    for (char *p = c; *p;) {
        if (p[0] == '/' && p[1] == '*') {
            char *end = strstr(p + 2, "*/");
            end = end ? end + 2 : p + strlen(p);
            for (; p < end; p++)
                if (*p != '\n') *p = ' ';
        } else if (p[0] == '/' && p[1] == '/') {
            for (; *p && *p != '\n'; p++) *p = ' ';
        } else if (*p == '"' || *p == '\'') {
            char q = *p++;
            for (; *p && *p != q && *p != '\n'; p++) {
                if (*p == '\\' && p[1] && p[1] != '\n') *p++ = ' ';
                *p = ' ';
            }
            if (*p == q) p++;
        } else {
            p++;
        }
    }
    return c;
}

static bool ident_char(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

/* The first hand launch in code (already through code_only): a call of the
 * launch functions under the generated launchers, or an argument pack
 * `void *name[] = {&...`. Returns its offset, or -1; *what says which. */
static long first_hand_launch(const char *code, const char **what)
{
    static const char *const calls[] = {"lw_cuda_launch", "lw_launch_kernel", "cuLaunchKernel"};
    long best = -1;
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        size_t n = strlen(calls[i]);
        for (const char *at = strstr(code, calls[i]); at; at = strstr(at + 1, calls[i])) {
            const char *q = at + n;
            while (isspace((unsigned char)*q)) q++;
            if ((at > code && ident_char(at[-1])) || ident_char(at[n]) || *q != '(') continue;
            if (best < 0 || at - code < best) best = at - code, *what = calls[i];
            break;
        }
    }
    for (const char *at = strstr(code, "void"); at; at = strstr(at + 1, "void")) {
        if ((at > code && ident_char(at[-1])) || ident_char(at[4])) continue;
        const char *q = at + 4;
        while (isspace((unsigned char)*q)) q++;
        if (*q++ != '*') continue;
        while (isspace((unsigned char)*q)) q++;
        if (!ident_char(*q)) continue;
        while (ident_char(*q)) q++;
        static const char *const tail[] = {"[", "]", "=", "{", "&"};
        bool pack = true;
        for (size_t t = 0; t < 5 && pack; t++) {
            while (isspace((unsigned char)*q)) q++;
            pack = *q++ == tail[t][0];
        }
        if (pack && (best < 0 || at - code < best)) best = at - code, *what = "an argument pack void *[] = {&...}";
        if (pack) break;
    }
    return best;
}

/* Every .c and .h of dir (relative to the source tree) but the exempt ones;
 * the first hand launch fails, naming file, line and what. Returns the
 * number of files read. */
/* Scans dir (relative to the tree) and every folder below it. */
static int scan_for_hand_launches(const char *dir, const char *const *exempt)
{
    char path[4300];
    snprintf(path, sizeof path, "%s", tl_src(dir));
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot list %s", path);
    int files = 0;
    for (struct dirent *ent; (ent = readdir(d));) {
        if (ent->d_name[0] == '.') continue;
        char rel[600];
        snprintf(rel, sizeof rel, "%s/%s", dir, ent->d_name);
        struct stat st;
        ck_assert_msg(stat(tl_src(rel), &st) == 0, "cannot stat %s", rel);
        if (S_ISDIR(st.st_mode)) {
            files += scan_for_hand_launches(rel, exempt);
            continue;
        }
        size_t n = strlen(ent->d_name);
        if (n < 3 || ent->d_name[n - 2] != '.' || (ent->d_name[n - 1] != 'c' && ent->d_name[n - 1] != 'h')) continue;
        bool skip = false;
        for (const char *const *e = exempt; *e; e++) skip |= strcmp(*e, ent->d_name) == 0;
        if (skip) continue;
        char *text = tl_read_file(tl_src(rel), NULL);
        ck_assert_msg(text != NULL, "cannot read %s", rel);
        char *code = code_only(text);
        const char *what = NULL;
        long at = first_hand_launch(code, &what);
        int line = 1;
        for (long i = 0; i < at; i++) line += code[i] == '\n';
        ck_assert_msg(at < 0, "%s:%d: a kernel launched by hand (%s): launch it through its generated lwk_<kernel> "
                      "launcher (templates/kernels.def, runtime/device/cuda_launch.h)", rel, line, what);
        free(code), free(text);
        files++;
    }
    closedir(d);
    return files;
}

/* The detector itself: it finds each form of hand launch, and not the same
 * words in comments, strings or longer names. */
START_TEST(the_hand_launch_detector_finds_them)
{
    static const struct {
        const char *src;
        bool hand;
    } cases[] = {
        {"void *args[] = {&y, &x, &n};\n", true},
        {"void*a [ ]={ &y};", true},
        {"x = lw_cuda_launch(&cu, &k, 1, 1, 1, 32, 1, 1, 0, args);", true},
        {"st = lw_launch_kernel (L, &k, \"f\", 1, 1, 32, args);", true},
        {"cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, 0, a, 0);", true},
        {"/* void *args[] = {&y}; lw_cuda_launch(&cu) */ int x;", false},
        {"// lw_launch_kernel(L, &k)\nint y;", false},
        {"puts(\"void *args[] = {&y}; lw_cuda_launch(\");", false},
        {"my_lw_cuda_launch(x); lw_cuda_launch_count(y);", false},
        {"void *all[] = {k->ids, k->embeds};", false},
        {"void *p = &x; lw_status lwk_glu_forward(lw_launch L);", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *code = code_only(cases[i].src);
        const char *what = NULL;
        long at = first_hand_launch(code, &what);
        ck_assert_msg((at >= 0) == cases[i].hand, "detector says %s for: %s", at >= 0 ? what : "none", cases[i].src);
        free(code);
    }
}
END_TEST

/* Kernels are launched through the generated launchers only: the library's
 * folders and tests/gpu/ have no hand launch outside cuda_driver.c (the driver calls)
 * and cuda_launch.c (the launchers' one funnel), whose headers declare
 * them. (tests/check_cuda_driver.c calls lw_cuda_launch on purpose: it
 * tests the driver's errors.) */
START_TEST(no_kernel_is_launched_by_hand)
{
    static const char *const runtime_exempt[] = {"cuda_driver.c", "cuda_driver.h", "cuda_launch.c", "cuda_launch.h",
                                                 NULL};
    static const char *const none[] = {NULL};
    /* the library's folders, each scanned with every folder below it */
    static const char *const runtime_roots[] = {"base", "manifest", "plan", "runtime", "lw", NULL};
    int rt = 0, gpu = scan_for_hand_launches("tests/gpu", none);
    for (const char *const *r = runtime_roots; *r; r++) rt += scan_for_hand_launches(*r, runtime_exempt);
    /* the scan read the trees it is about (gpu_forward.c and the GPU suites launch kernels) */
    ck_assert_int_gt(rt, 20);
    ck_assert_int_ge(gpu, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernel_table");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, the_templates_agree_with_the_table);
    tcase_add_test(tc, parameter_lists_parse_to_one_spelling);
    tcase_add_test(tc, a_template_that_differs_from_the_table_is_refused);
    tcase_add_test(tc, kernel_generation_refuses_a_wrong_signature);
    tcase_add_test(tc, the_built_launchers_are_the_tables);
    tcase_add_test(tc, a_call_that_does_not_fit_its_launcher_does_not_compile);
    tcase_add_test(tc, the_hand_launch_detector_finds_them);
    tcase_add_test(tc, no_kernel_is_launched_by_hand);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
