/* lwc: the driver. `lwc build MANIFEST` makes build/<pair>/lw; `lwc inspect
 * WEIGHTS` prints a model block for a new manifest; `lwc check MANIFEST`
 * validates a manifest (and its weights, when present). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build.h"
#include "family.h"
#include "gguf.h"
#include "lwc_config.h"
#include "manifest.h"
#include "manifest_weights.h"
#include "nvrtc_compile.h"
#include "weights.h"

static const char *USAGE =
    "usage: lwc <command> [options]\n"
    "\n"
    "commands:\n"
    "  build MANIFEST [-o DIR] [--force] [--quiet]\n"
    "                      generate kernels and runtime for a model pair, compile the kernels\n"
    "                      with NVRTC and link DIR/<pair>/lw (DIR defaults to ./build)\n"
    "  check MANIFEST [--weights]\n"
    "                      validate a manifest; with --weights also check it against the weights\n"
    "  inspect WEIGHTS [--format gguf|safetensors|llama2c]\n"
    "                      print a completed model block (embedding RMS included) for a manifest\n"
    "  version             print versions and what this lwc was built with\n"
    "\n"
    "Run `lwc <command> --help` for one command. docs/manifest.md describes manifests.\n";

/* The installed and the in-tree layouts are the same below a root: bin/lwc,
 * lib/lwc/liblwrt.a, include/lwc/, share/lwc/. The root is ../ from us. */
static int find_root(char *root, size_t cap)
{
    const char *env = getenv("LWC_ROOT");
    if (env && *env) { snprintf(root, cap, "%s", env); return 0; }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(root, cap, "%s", exe);
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "lwc %s: %s\n", what, lw_last_error());
    return 1;
}

static int cmd_build(int argc, char **argv)
{
    lw_build_options o = {.out_root = "build"};
    char root[PATH_MAX];
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: lwc build MANIFEST [-o DIR] [--force] [--quiet]\n\n"
                   "Writes DIR/<pair>/ (default ./build/<pair>/): kernels_{sender,receiver,bridge}.cu generated\n"
                   "from templates with the pair's constants, their CUBINs from NVRTC for each build.gpu_archs\n"
                   "target, kernels_embed.c, pair_runtime.c and the linked binary lw. Only what changed is\n"
                   "rebuilt (a stamp over manifest, templates, toolchain and runtime); --force rebuilds all.\n");
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) o.out_root = argv[++i];
        else if (!strcmp(argv[i], "--force")) o.force = true;
        else if (!strcmp(argv[i], "--quiet")) o.quiet = true;
        else if (argv[i][0] == '-') { fprintf(stderr, "lwc build: unknown option %s\n", argv[i]); return 2; }
        else if (!o.manifest_path) o.manifest_path = argv[i];
        else { fprintf(stderr, "lwc build: one manifest at a time (got %s)\n", argv[i]); return 2; }
    }
    if (!o.manifest_path) { fprintf(stderr, "usage: lwc build MANIFEST [-o DIR]\n"); return 2; }
    if (find_root(root, sizeof root) != 0) { fprintf(stderr, "lwc build: cannot locate lwc's own files\n"); return 1; }
    o.lwc_root = root;
    return lw_build_pair(&o) == LW_OK ? 0 : fail("build");
}

static int cmd_check(int argc, char **argv)
{
    const char *path = NULL;
    int with_weights = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: lwc check MANIFEST [--weights]\n\nValidates MANIFEST; every error names the file,\n"
                   "the JSON path and what was expected. --weights also compares the model blocks with\n"
                   "the values their weights files carry.\n");
            return 0;
        } else if (!strcmp(argv[i], "--weights")) with_weights = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "lwc check: unknown option %s\n", argv[i]); return 2; }
        else path = argv[i];
    }
    if (!path) { fprintf(stderr, "usage: lwc check MANIFEST [--weights]\n"); return 2; }
    lw_manifest *m = calloc(1, sizeof *m);
    if (!m) return 1;
    lw_status st = lw_manifest_load(path, m);
    if (st == LW_OK && with_weights) st = lw_manifest_check_weights(m, "sender");
    if (st == LW_OK && with_weights) st = lw_manifest_check_weights(m, "receiver");
    if (st == LW_OK) printf("%s: ok (pair %s)\n", path, m->name);
    free(m);
    return st == LW_OK ? 0 : fail("check");
}

static int parse_format(const char *s, lw_weights_format *f)
{
    if (!strcmp(s, "gguf")) *f = LW_WEIGHTS_GGUF;
    else if (!strcmp(s, "safetensors")) *f = LW_WEIGHTS_SAFETENSORS;
    else if (!strcmp(s, "llama2c")) *f = LW_WEIGHTS_LLAMA2C;
    else return -1;
    return 0;
}

static lw_weights_format guess_format(const char *path)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf")) return LW_WEIGHTS_GGUF;
    if (n >= 4 && !strcmp(path + n - 4, ".bin")) return LW_WEIGHTS_LLAMA2C;
    return LW_WEIGHTS_SAFETENSORS;
}

/* What the weights do not say outright: a name, where the tokenizer is, and
 * which chat template the model was trained with (read off the GGUF's own
 * Jinja template where there is one). */
static void fill_inspect_defaults(const char *path, lw_model_config *c)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(c->name, sizeof c->name, "%.*s", (int)strcspn(base, "."), base);
    c->chat_template = lw_family_get(c->family)->chat_template;
    if (c->weights_format == LW_WEIGHTS_GGUF) {
        c->tokenizer_kind = LW_TOKENIZER_GGUF;
        snprintf(c->tokenizer_path, sizeof c->tokenizer_path, "%s", path);
        lw_gguf *g = NULL;
        const char *tpl;
        size_t len;
        if (lw_gguf_open(path, &g) == LW_OK && lw_gguf_get_string(g, "tokenizer.chat_template", &tpl, &len) == LW_OK) {
            if (memmem(tpl, len, "<|im_start|>", 12)) c->chat_template = LW_CHAT_CHATML;
            else if (memmem(tpl, len, "<|start_header_id|>", 19)) c->chat_template = LW_CHAT_LLAMA3;
            else if (memmem(tpl, len, "[INST]", 6)) c->chat_template = LW_CHAT_MISTRAL;
            else if (memmem(tpl, len, "<start_of_turn>", 15)) c->chat_template = LW_CHAT_GEMMA;
        }
        lw_gguf_close(g);
    } else if (c->weights_format == LW_WEIGHTS_LLAMA2C) {
        c->tokenizer_kind = LW_TOKENIZER_LLAMA2C;
        snprintf(c->tokenizer_path, sizeof c->tokenizer_path, "tokenizer.bin");
    } else {
        c->tokenizer_kind = LW_TOKENIZER_BPE_JSON;
        snprintf(c->tokenizer_path, sizeof c->tokenizer_path, "%s/tokenizer.json", path);
    }
}

static int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int have_format = 0;
    lw_weights_format fmt = LW_WEIGHTS_GGUF;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: lwc inspect WEIGHTS [--format gguf|safetensors|llama2c]\n\nReads the model's own\n"
                   "metadata (GGUF keys, config.json or the llama2.c header), computes the RMS of the\n"
                   "embedding matrix as the first layer sees it, and prints a model block to paste into\n"
                   "a manifest's \"sender\" or \"receiver\".\n");
            return 0;
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            if (parse_format(argv[++i], &fmt) != 0) {
                fprintf(stderr, "lwc inspect: --format takes gguf, safetensors or llama2c, not %s\n", argv[i]);
                return 2;
            }
            have_format = 1;
        } else if (argv[i][0] == '-') { fprintf(stderr, "lwc inspect: unknown option %s\n", argv[i]); return 2; }
        else path = argv[i];
    }
    if (!path) { fprintf(stderr, "usage: lwc inspect WEIGHTS [--format F]\n"); return 2; }
    if (!have_format) fmt = guess_format(path);
    lw_weights *w = NULL;
    lw_model_config c;
    memset(&c, 0, sizeof c);
    c.weights_format = fmt;
    snprintf(c.weights_path, sizeof c.weights_path, "%s", path);
    lw_status st = lw_weights_open(path, fmt, &w);
    if (st == LW_OK) st = lw_weights_read_config(w, &c);
    if (st == LW_OK) fill_inspect_defaults(path, &c);
    if (st == LW_OK) st = lw_weights_embed_rms(w, &c, &c.embed_rms);
    if (st == LW_OK) {
        char *json = lw_model_config_to_json(&c);
        if (json) printf("%s\n", json);
        else st = lw_fail(LW_ERR_NOMEM, "out of memory");
        free(json);
    }
    lw_weights_close(w);
    return st == LW_OK ? 0 : fail("inspect");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "build")) return cmd_build(argc - 2, argv + 2);
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("lwc %s\nNVRTC: %s\nBLAS: %s\n", LWC_VERSION, lw_nvrtc_version(), LWC_HAVE_BLAS ? "yes" : "no");
        return 0;
    }
    fprintf(stderr, "lwc: unknown command '%s'\n\n%s", argv[1], USAGE);
    return 2;
}
