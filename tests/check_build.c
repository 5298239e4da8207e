/* `lwc build` end to end: every manifest in pairs/ builds (NVRTC included
 * where this lwc has it), rebuilds only what changed, and a hostile manifest
 * cannot inject anything into the generated code. */
#include "testlib.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvrtc_compile.h"

static const char *lwc(void) { return tl_out("bin/lwc"); }

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

START_TEST(every_pair_builds_and_reports)
{
    char pairs_dir[4200];
    snprintf(pairs_dir, sizeof pairs_dir, "%s", tl_src("pairs"));
    DIR *d = opendir(pairs_dir);
    ck_assert_msg(d != NULL, "no pairs/ folder at %s", pairs_dir);
    char out_root[4200];
    snprintf(out_root, sizeof out_root, "%s", tl_tmpdir("pairs"));
    int built = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json")) continue;
        char *log = NULL;
        int rc = tl_run(&log, "'%s' build '%s/%s' -o '%s'", lwc(), pairs_dir, e->d_name, out_root);
        ck_assert_msg(rc == 0, "lwc build %s failed:\n%s", e->d_name, log);
        if (lw_nvrtc_available())
            ck_assert_msg(strstr(log, "nvrtc") != NULL, "%s: no NVRTC compile in:\n%s", e->d_name, log);
        free(log);
        built++;
    }
    closedir(d);
    ck_assert_msg(built >= 5, "expected at least 5 manifests in pairs/, built %d", built);
    /* Each built binary runs and tells what it holds. */
    char *log = NULL;
    int rc = tl_run(&log, "for b in '%s'/*/lw; do \"$b\" info || exit 1; done", out_root);
    ck_assert_msg(rc == 0, "lw info failed:\n%s", log);
    if (lw_nvrtc_available()) {
        /* 3 units (sender, receiver, bridge) x the default 2 archs, per pair */
        ck_assert_msg(count_lines_with(log, " sm_90 ") >= 3 * built, "missing sm_90 CUBINs:\n%s", log);
        ck_assert_msg(count_lines_with(log, " sm_80 ") >= 3 * built, "missing sm_80 CUBINs:\n%s", log);
    } else {
        ck_assert_msg(strstr(log, "CPU only") != NULL, "%s", log);
    }
    free(log);
}
END_TEST

static const char *TINY_MODEL =
    "{\"name\": %s, \"family\": \"llama\", \"hidden\": 64, \"n_layers\": 2, \"n_heads\": 4, \"n_kv_heads\": 2,"
    " \"ffn\": 128, \"activation\": \"silu\", \"norm\": \"rmsnorm\", \"norm_eps\": 1e-5, \"rope_theta\": 10000,"
    " \"vocab\": 512, \"context\": 256, \"tied_embeddings\": true, \"embed_rms\": 0.5,"
    " \"weights\": {\"path\": %s, \"format\": \"gguf\"},"
    " \"tokenizer\": {\"path\": %s, \"kind\": \"gguf\"}, \"chat_template\": \"none\","
    " \"special_tokens\": {\"bos\": 1, \"eos\": 2, \"pad\": null, \"stop\": [2]}}";

static void write_manifest(const char *path, const char *name, const char *model_name, const char *weights,
                           const char *tokenizer, int soft_tokens)
{
    char sender[4096], receiver[4096], text[10000];
    snprintf(sender, sizeof sender, TINY_MODEL, model_name, weights, tokenizer);
    snprintf(receiver, sizeof receiver, TINY_MODEL, "\"receiver\"", weights, tokenizer);
    snprintf(text, sizeof text,
             "{\"lwc_manifest\": 1, \"name\": \"%s\", \"sender\": %s, \"receiver\": %s,\n"
             " \"bridge\": {\"soft_tokens\": %d, \"source_layer\": 1, \"width\": 32, \"heads\": 4},\n"
             " \"build\": {\"gpu_archs\": [\"sm_90\"]}}\n",
             name, sender, receiver, soft_tokens);
    tl_write_file(path, text);
}

/* JSON-escaped hostile strings: quotes, newlines, comment closers, a
 * preprocessor line, a format string and a shell injection. */
static const char *HOSTILE_NAME = "\"evil\\\" */ #include <stdlib.h>\\n#define main x\\n%s%n ?" "?/\"";
static const char *HOSTILE_PATH = "\"/tmp/a\\\"b/*c*/\\n#include \\\"x.h\\\"\\n$$(touch /tmp/lwc-pwned)`id`.gguf\"";

START_TEST(hostile_manifest_text_stays_data)
{
    const char *dir = tl_tmpdir("hostile");
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/hostile.json", dir);
    write_manifest(manifest, "hostile", HOSTILE_NAME, HOSTILE_PATH, HOSTILE_PATH, 4);
    remove("/tmp/lwc-pwned");
    char *log = NULL;
    int rc = tl_run(&log, "cd '%s' && '%s' build hostile.json -o out", dir, lwc());
    ck_assert_msg(rc == 0, "build failed:\n%s", log);
    free(log);
    ck_assert_msg(fopen("/tmp/lwc-pwned", "r") == NULL, "a manifest path was run by a shell");
    rc = tl_run(&log, "'%s/out/hostile/lw' info", dir);
    ck_assert_msg(rc == 0, "lw info failed:\n%s", log);
    /* The strings come back exactly as the JSON said. */
    ck_assert_msg(strstr(log, "evil\" */ #include <stdlib.h>\n#define main x\n%s%n ?" "?/") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "/tmp/a\"b/*c*/\n#include \"x.h\"\n$(touch /tmp/lwc-pwned)`id`.gguf") != NULL,
                  "%s", log);
    free(log);
    /* Nothing of it appears outside string literals: no line of generated C
     * starts with the injected directive. */
    char path[4300];
    snprintf(path, sizeof path, "%s/out/hostile/pair_runtime.c", dir);
    char *src = tl_read_file(path, NULL);
    ck_assert_ptr_nonnull(src);
    ck_assert_msg(strstr(src, "\n#include <stdlib.h>") == NULL && strstr(src, "\n#define main") == NULL, "%s", src);
    free(src);
}
END_TEST

START_TEST(rebuilds_only_what_changed)
{
    const char *dir = tl_tmpdir("rebuild");
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/p.json", dir);
    write_manifest(manifest, "p", "\"s\"", "\"w.gguf\"", "\"w.gguf\"", 4);
    char *log = NULL;
    int rc = tl_run(&log, "cd '%s' && '%s' build p.json -o out", dir, lwc());
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    rc = tl_run(&log, "cd '%s' && '%s' build p.json -o out", dir, lwc());
    ck_assert_msg(rc == 0 && strstr(log, "up to date"), "second build was not a no-op:\n%s", log);
    free(log);
    /* Same kernels, other model name: relinks without NVRTC. */
    write_manifest(manifest, "p", "\"renamed\"", "\"w.gguf\"", "\"w.gguf\"", 4);
    rc = tl_run(&log, "cd '%s' && '%s' build p.json -o out", dir, lwc());
    ck_assert_msg(rc == 0 && !strstr(log, "up to date") && !strstr(log, "nvrtc"), "%s", log);
    free(log);
    /* M changes the kernels: NVRTC reruns for those whose text changed. */
    write_manifest(manifest, "p", "\"renamed\"", "\"w.gguf\"", "\"w.gguf\"", 8);
    rc = tl_run(&log, "cd '%s' && '%s' build p.json -o out", dir, lwc());
    ck_assert_msg(rc == 0, "%s", log);
    if (lw_nvrtc_available()) ck_assert_msg(strstr(log, "nvrtc") != NULL, "%s", log);
    free(log);
    rc = tl_run(&log, "cd '%s' && grep -c 'LW_SOFT_TOKENS   8' out/p/kernels_receiver.cu", dir);
    ck_assert_msg(rc == 0, "M not baked into the kernels: %s", log);
    free(log);
}
END_TEST

START_TEST(bad_manifest_fails_without_output)
{
    const char *dir = tl_tmpdir("badbuild");
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/bad.json", dir);
    write_manifest(manifest, "bad", "\"s\"", "\"w.gguf\"", "\"w.gguf\"", 0);
    char *log = NULL;
    int rc = tl_run(&log, "cd '%s' && '%s' build bad.json -o out", dir, lwc());
    ck_assert_msg(rc != 0, "M = 0 was accepted:\n%s", log);
    ck_assert_msg(strstr(log, "bad.json") && strstr(log, "bridge.soft_tokens"), "%s", log);
    free(log);
    rc = tl_run(&log, "test ! -e '%s/out/bad/lw'", dir);
    ck_assert_int_eq(rc, 0);
    free(log);
}
END_TEST

START_TEST(subcommands_have_help)
{
    const char *dir = tl_tmpdir("help");
    char manifest[4200];
    snprintf(manifest, sizeof manifest, "%s/h.json", dir);
    write_manifest(manifest, "h", "\"s\"", "\"w.gguf\"", "\"w.gguf\"", 4);
    char *log = NULL;
    int rc = tl_run(&log, "cd '%s' && '%s' build --quiet h.json -o out && for c in info train eval bench; do "
                          "out/h/lw $c --help | grep -q \"usage: lw $c\" || { echo \"no help for $c\"; exit 1; }; done"
                          " && out/h/lw --help | grep -q info && ! out/h/lw nonsense", dir, lwc());
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    rc = tl_run(&log, "'%s' --help && '%s' build --help && '%s' inspect --help && '%s' check --help", lwc(), lwc(),
                lwc(), lwc());
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
}
END_TEST

/* What `lwc inspect` prints pastes into a manifest that validates against
 * the same weights; the embedding RMS matches the one in pairs/. */
START_TEST(inspect_output_makes_a_valid_manifest)
{
    const char *smol = tl_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    char smol_path[4200], gemma_path[4200];
    snprintf(smol_path, sizeof smol_path, "%s", smol);
    snprintf(gemma_path, sizeof gemma_path, "%s", tl_model("gemma-3-270m-q4_k_m.gguf"));
    tl_require_file(smol_path);
    tl_require_file(gemma_path);
    const char *dir = tl_tmpdir("inspect");
    char *log = NULL;
    int rc = tl_run(&log, "cd '%s' && '%s' inspect '%s' > s.json && '%s' inspect '%s' > r.json && "
                          "{ printf '{\"lwc_manifest\": 1, \"name\": \"inspected\", \"sender\": '; cat s.json; "
                          "printf ', \"receiver\": '; cat r.json; printf ', \"bridge\": {\"source_layer\": 20}}'; } "
                          "> m.json && '%s' check --weights m.json && grep -q '\"embed_rms\": 0.1355' s.json && "
                          "grep -q '\"embed_rms\": 1.031' r.json && grep -q '\"chat_template\": \"gemma\"' r.json",
                    dir, lwc(), smol_path, lwc(), gemma_path, lwc());
    ck_assert_msg(rc == 0, "%s", log);
    free(log);
    rc = tl_run(&log, "'%s' inspect /nonexistent.gguf", lwc());
    ck_assert_msg(rc != 0 && strstr(log, "/nonexistent.gguf"), "%s", log);
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("build");
    TCase *tc = tcase_create("lwc build");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, every_pair_builds_and_reports);
    tcase_add_test(tc, hostile_manifest_text_stays_data);
    tcase_add_test(tc, rebuilds_only_what_changed);
    tcase_add_test(tc, bad_manifest_fails_without_output);
    tcase_add_test(tc, subcommands_have_help);
    tcase_add_test(tc, inspect_output_makes_a_valid_manifest);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
