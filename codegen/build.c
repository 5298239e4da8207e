#include "build.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileutil.h"
#include "gen_kernels.h"
#include "gen_plan.h"
#include "gen_runtime.h"
#include "lwc_config.h"
#include "manifest.h"
#include "nvrtc_compile.h"

enum { MAX_ARGS = 128, PATH_CAP = 4400 };

typedef struct {
    char cc[512], cflags[4096], libs[4096];
} toolchain;

static const char *const UNITS[] = {"sender", "receiver", "bridge"};
enum { N_UNITS = 3 };

static lw_status read_toolchain(const char *path, toolchain *tc)
{
    char *text;
    lw_status st = lw_read_file(path, &text, NULL);
    if (st != LW_OK) return lw_fail_wrap(st, "reading the toolchain description");
    memset(tc, 0, sizeof *tc);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "CC=", 3)) snprintf(tc->cc, sizeof tc->cc, "%s", line + 3);
        else if (!strncmp(line, "CFLAGS=", 7)) snprintf(tc->cflags, sizeof tc->cflags, "%s", line + 7);
        else if (!strncmp(line, "LIBS=", 5)) snprintf(tc->libs, sizeof tc->libs, "%s", line + 5);
    }
    free(text);
    if (!tc->cc[0]) return lw_fail(LW_ERR_FORMAT, "%s: no CC= line", path);
    return LW_OK;
}

static uint64_t hash_file(uint64_t h, const char *path)
{
    char *data;
    size_t len;
    h = lw_fnv1a(h, path, strlen(path));
    if (lw_read_file(path, &data, &len) != LW_OK) return lw_fnv1a(h, "missing", 7);
    h = lw_fnv1a(h, data, len);
    free(data);
    return h;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Hashes every template file in sorted order, so any edit rebuilds. */
static uint64_t hash_templates(uint64_t h, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return lw_fnv1a(h, "no-templates", 12);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char path[PATH_CAP];
        lw_pathf(path, sizeof path, "%s/%s", dir, names[i]);
        h = hash_file(h, path);
        free(names[i]);
    }
    return h;
}

static void compute_stamp(const lw_build_options *o, const lw_manifest *m, char stamp[17])
{
    char path[PATH_CAP];
    uint64_t h = hash_file(LW_FNV_INIT, o->manifest_path);
    /* The resolved paths depend on the environment ($VAR), not only the file. */
    h = lw_fnv1a(h, m->sender.weights_path, strlen(m->sender.weights_path));
    h = lw_fnv1a(h, m->receiver.weights_path, strlen(m->receiver.weights_path));
    h = lw_fnv1a(h, m->sender.tokenizer_path, strlen(m->sender.tokenizer_path));
    h = lw_fnv1a(h, m->receiver.tokenizer_path, strlen(m->receiver.tokenizer_path));
    lw_pathf(path, sizeof path, "%s/share/lwc/templates", o->lwc_root);
    h = hash_templates(h, path);
    lw_pathf(path, sizeof path, "%s/share/lwc/toolchain.conf", o->lwc_root);
    h = hash_file(h, path);
    lw_pathf(path, sizeof path, "%s/lib/lwc/liblwrt.a", o->lwc_root);
    h = hash_file(h, path);
    const char *v = LWC_VERSION;
    h = lw_fnv1a(h, v, strlen(v));
    v = lw_nvrtc_version();
    h = lw_fnv1a(h, v, strlen(v));
    snprintf(stamp, 17, "%016llx", (unsigned long long)h);
}

/* Splits flags on spaces into argv (toolchain flags are ours, not a
 * manifest's); runs argv with no shell in between. */
static lw_status run_compiler(const toolchain *tc, const char *const *files, int n_files, const char *include_dir,
                              const char *lib, const char *output)
{
    char flags[sizeof tc->cflags + sizeof tc->libs + 2];
    char *argv[MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)tc->cc;
    lw_pathf(flags, sizeof flags, "%s", tc->cflags);
    for (char *f = strtok(flags, " "); f && argc < MAX_ARGS - 16; f = strtok(NULL, " ")) argv[argc++] = f;
    char inc[PATH_CAP];
    lw_pathf(inc, sizeof inc, "-I%s", include_dir);
    argv[argc++] = inc;
    argv[argc++] = "-o";
    argv[argc++] = (char *)output;
    for (int i = 0; i < n_files; i++) argv[argc++] = (char *)files[i];
    argv[argc++] = (char *)lib;
    char libs[sizeof tc->libs];
    lw_pathf(libs, sizeof libs, "%s", tc->libs);
    for (char *f = strtok(libs, " "); f && argc < MAX_ARGS - 1; f = strtok(NULL, " ")) argv[argc++] = f;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return lw_fail(LW_ERR_EXTERNAL, "cannot start %s: %s", tc->cc, strerror(errno));
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "lwc: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return lw_fail(LW_ERR_EXTERNAL, "%s failed building %s (compiler output above)", tc->cc, output);
    return LW_OK;
}

static lw_status write_strbuf(const char *path, lw_strbuf *sb, bool *changed)
{
    lw_status st = lw_write_file_atomic(path, sb->data ? sb->data : "", sb->len, changed);
    lw_sb_free(sb);
    return st;
}

/* Generates kernels_<unit>.cu and, where its text changed or a CUBIN is
 * missing, compiles it with NVRTC for every target; fills refs with the
 * CUBINs (malloc'd, freed by the caller). */
static lw_status build_kernels(const lw_build_options *o, const lw_manifest *m, const char *dir,
                               lw_cubin_ref *refs, int *n_refs)
{
    char templates[PATH_CAP];
    lw_pathf(templates, sizeof templates, "%s/share/lwc/templates", o->lwc_root);
    lw_status st = LW_OK;
    for (int u = 0; u < N_UNITS && st == LW_OK; u++) {
        lw_strbuf src = {0};
        if (u == 2) st = lw_gen_bridge_kernels(templates, m, &src);
        else st = lw_gen_model_kernels(templates, u == 0 ? &m->sender : &m->receiver, m->bridge.soft_tokens, &src);
        char cu[PATH_CAP];
        lw_pathf(cu, sizeof cu, "%s/kernels_%s.cu", dir, UNITS[u]);
        bool changed = false;
        char *text = src.data ? strdup(src.data) : NULL;
        if (st == LW_OK) st = write_strbuf(cu, &src, &changed);
        else lw_sb_free(&src);
        for (int a = 0; st == LW_OK && lw_nvrtc_available() && a < m->n_archs; a++) {
            char bin[PATH_CAP];
            lw_pathf(bin, sizeof bin, "%s/kernels_%s.sm_%d.cubin", dir, UNITS[u], m->gpu_archs[a]);
            lw_cubin_ref *r = &refs[(*n_refs)++];
            r->unit = UNITS[u];
            r->arch = m->gpu_archs[a];
            char *data = NULL;
            size_t size = 0;
            if (!changed && lw_file_exists(bin) && lw_read_file(bin, &data, &size) == LW_OK) {
                r->cubin = (unsigned char *)data;
                r->size = size;
                continue;
            }
            if (!o->quiet) printf("  nvrtc  %s -> sm_%d\n", cu, m->gpu_archs[a]);
            unsigned char *image;
            st = lw_nvrtc_compile(text, cu, m->gpu_archs[a], &image, &size);
            if (st != LW_OK) { (*n_refs)--; break; }
            r->cubin = image;
            r->size = size;
            st = lw_write_file_atomic(bin, image, size, NULL);
        }
        free(text);
    }
    return st;
}

static lw_status build_in(const lw_build_options *o, const lw_manifest *m, const char *dir, const char *stamp)
{
    toolchain tc;
    char path[PATH_CAP], lw[PATH_CAP], lw_tmp[PATH_CAP];
    lw_pathf(path, sizeof path, "%s/share/lwc/toolchain.conf", o->lwc_root);
    lw_status st = read_toolchain(path, &tc);
    lw_cubin_ref refs[N_UNITS * LW_MAX_ARCHS];
    int n_refs = 0;
    if (st == LW_OK) st = build_kernels(o, m, dir, refs, &n_refs);
    lw_strbuf sb = {0};
    char embed_c[PATH_CAP], runtime_c[PATH_CAP], plan_c[PATH_CAP];
    lw_pathf(embed_c, sizeof embed_c, "%s/kernels_embed.c", dir);
    lw_pathf(runtime_c, sizeof runtime_c, "%s/pair_runtime.c", dir);
    lw_pathf(plan_c, sizeof plan_c, "%s/plan_tables.c", dir);
    if (st == LW_OK) st = lw_gen_kernels_embed(refs, n_refs, &sb);
    if (st == LW_OK) st = write_strbuf(embed_c, &sb, NULL);
    for (int i = 0; i < n_refs; i++) free((void *)refs[i].cubin);
    lw_sb_free(&sb);
    if (st == LW_OK) st = lw_gen_pair_runtime(m, stamp, lw_nvrtc_version(), &sb);
    if (st == LW_OK) st = write_strbuf(runtime_c, &sb, NULL);
    lw_sb_free(&sb);
    if (st == LW_OK) st = lw_gen_plan_tables(m, &sb);
    if (st == LW_OK) st = write_strbuf(plan_c, &sb, NULL);
    lw_sb_free(&sb);
    lw_pathf(lw, sizeof lw, "%s/lw", dir);
    lw_pathf(lw_tmp, sizeof lw_tmp, "%s/lw.tmp", dir);
    char inc[PATH_CAP], lib[PATH_CAP];
    lw_pathf(inc, sizeof inc, "%s/include/lwc", o->lwc_root);
    lw_pathf(lib, sizeof lib, "%s/lib/lwc/liblwrt.a", o->lwc_root);
    const char *files[] = {runtime_c, embed_c, plan_c};
    if (st == LW_OK && !o->quiet) printf("  cc     %s\n", lw);
    if (st == LW_OK) st = run_compiler(&tc, files, 3, inc, lib, lw_tmp);
    if (st == LW_OK && rename(lw_tmp, lw) != 0) st = lw_fail(LW_ERR_IO, "%s: cannot rename: %s", lw, strerror(errno));
    if (st != LW_OK) unlink(lw_tmp);
    char stamp_path[PATH_CAP];
    lw_pathf(stamp_path, sizeof stamp_path, "%s/stamp", dir);
    if (st == LW_OK) st = lw_write_file_atomic(stamp_path, stamp, strlen(stamp), NULL);
    return st;
}

static bool up_to_date(const char *dir, const char *stamp)
{
    char path[PATH_CAP], *old;
    lw_pathf(path, sizeof path, "%s/lw", dir);
    if (!lw_file_exists(path)) return false;
    lw_pathf(path, sizeof path, "%s/stamp", dir);
    if (lw_read_file(path, &old, NULL) != LW_OK) return false;
    bool same = strcmp(old, stamp) == 0;
    free(old);
    return same;
}

lw_status lw_build_pair(const lw_build_options *o)
{
    lw_manifest *m = calloc(1, sizeof *m);
    if (!m) return lw_fail(LW_ERR_NOMEM, "out of memory");
    lw_status st = lw_manifest_load(o->manifest_path, m);
    /* The binary may run from anywhere: keep the manifest's absolute path. */
    char *abs = realpath(o->manifest_path, NULL);
    if (st == LW_OK && abs && strlen(abs) < sizeof m->path) snprintf(m->path, sizeof m->path, "%s", abs);
    free(abs);
    char dir[PATH_CAP], stamp[17];
    /* Bounded here so that no path built below can be truncated. */
    if (st == LW_OK && (strlen(o->out_root) > 2048 || strlen(o->lwc_root) > 2048))
        st = lw_fail(LW_ERR_INVALID, "output or installation folder path longer than 2048 bytes");
    if (st == LW_OK) {
        lw_pathf(dir, sizeof dir, "%s/%s", o->out_root, m->name);
        st = lw_mkdir_p(dir);
    }
    if (st == LW_OK) {
        compute_stamp(o, m, stamp);
        if (!o->force && up_to_date(dir, stamp)) {
            if (!o->quiet) printf("lwc: %s/lw is up to date\n", dir);
        } else {
            if (!o->quiet) printf("lwc: building %s (%s)\n", dir,
                                  lw_nvrtc_available() ? "CPU + CUDA kernels via NVRTC" : "CPU only: no NVRTC");
            st = build_in(o, m, dir, stamp);
            if (st == LW_OK && !o->quiet) printf("lwc: built %s/lw\n", dir);
        }
    }
    free(m);
    return st;
}
