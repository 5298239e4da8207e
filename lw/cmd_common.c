#include "cmd_common.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cpu_threads.h"
#include "fileutil.h"
#include "narrow_weights.h"
#include "random_weights.h"
#include "jsonerr.h"
#include "train_rules.h"

bool lw_opt_str(int argc, char **argv, int *i, const char **value)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "lw: %s needs a value\n", argv[*i]);
        return false;
    }
    *value = argv[++*i];
    return true;
}

bool lw_opt_subset(int argc, char **argv, int *i, bool *stratified)
{
    const char *s;
    if (!lw_opt_str(argc, argv, i, &s)) return false;
    if (strcmp(s, "first") && strcmp(s, "stratified")) {
        fprintf(stderr, "lw: %s is first or stratified, not '%s'\n", argv[*i - 1], s);
        return false;
    }
    *stratified = !strcmp(s, "stratified");
    return true;
}

bool lw_opt_int(int argc, char **argv, int *i, long lo, long hi, int *value)
{
    const char *s;
    if (!lw_opt_str(argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "lw: %s expects an integer in %ld..%ld, got '%s'\n", argv[*i - 1], lo, hi, s);
        return false;
    }
    *value = (int)v;
    return true;
}

bool lw_opt_float(int argc, char **argv, int *i, float *value)
{
    const char *s;
    if (!lw_opt_str(argc, argv, i, &s)) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || v != v) {
        fprintf(stderr, "lw: %s expects a number, got '%s'\n", argv[*i - 1], s);
        return false;
    }
    *value = v;
    return true;
}

bool lw_opt_train_rule(int argc, char **argv, int *i, const char *key, double *value)
{
    const lw_train_rule *r = lw_train_rule_find(key);
    const char *s;
    if (!r || !lw_opt_str(argc, argv, i, &s)) return false;
    char *end, expect[96], why[160];
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || v != v) {
        lw_train_rule_expect(r, expect, sizeof expect);
        fprintf(stderr, "lw: %s expects %s, got '%s'\n", argv[*i - 1], expect, s);
        return false;
    }
    if (!lw_train_rule_allows(r, v)) {
        lw_train_rule_refusal(r, v, why, sizeof why);
        fprintf(stderr, "lw: %s: %s (the manifest's train.%s takes the same)\n", argv[*i - 1], why, key);
        return false;
    }
    *value = v;
    return true;
}

lw_status lw_task_file(const lw_manifest *m, const char *tasks_dir, const char *task, char *out, size_t cap)
{
    for (const char *c = task; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
              *c == '-'))
            return lw_fail(LW_ERR_INVALID, "task name '%s': only letters, digits, '_' and '-'", task);
    if (!*task) return lw_fail(LW_ERR_INVALID, "task name is empty");
    bool fits;
    if (tasks_dir) {
        fits = lw_pathf(out, cap, "%s/%s.json", tasks_dir, task);
    } else {
        const char *slash = strrchr(m->path, '/');
        int dir_len = slash ? (int)(slash - m->path) : 1;
        fits = lw_pathf(out, cap, "%.*s/../tasks/%s.json", dir_len, slash ? m->path : ".", task);
    }
    return fits ? LW_OK : lw_fail(LW_ERR_INVALID, "task file path too long");
}

bool lw_named_task_peek(const lw_pair *pair, int argc, char **argv, lw_task *task)
{
    const char *name = NULL, *dir = NULL;
    for (int i = 0; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--task")) name = argv[++i];
        else if (!strcmp(argv[i], "--tasks-dir")) dir = argv[++i];
    }
    char path[4096];
    if (!name || lw_task_file(&pair->manifest, dir, name, path, sizeof path) || lw_task_load(path, task)) return false;
    return true;
}

lw_status lw_cache_dir(const char *given, char *out, size_t cap)
{
    const char *env = getenv("LWC_CACHE_DIR");
    if (given) return lw_pathf(out, cap, "%s", given) ? LW_OK : lw_fail(LW_ERR_INVALID, "cache dir too long");
    if (env && *env) return lw_pathf(out, cap, "%s", env) ? LW_OK : lw_fail(LW_ERR_INVALID, "LWC_CACHE_DIR too long");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return lw_pathf(out, cap, ".lwc-cache") ? LW_OK : LW_ERR_INVALID;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    return lw_pathf(out, cap, "%s/.lwc-cache", exe) ? LW_OK : lw_fail(LW_ERR_INVALID, "cache dir too long");
}

lw_status lw_bridge_side_open(lw_bridge_side *b, const lw_manifest *m, const lw_task *task, int M)
{
    memset(b, 0, sizeof *b);
    const lw_model_config *rc = &m->receiver;
    lw_bridge_config bc = m->bridge;
    bc.soft_tokens = M;
    lw_status st = lw_config_load_tokenizer(rc, &b->tok);
    if (!st) st = lw_receiver_layout_build(task, rc->chat_template, b->tok, M, rc->vocab, &b->layout);
    if (!st) st = lw_bridge_create(&b->bridge, &bc, m->sender.hidden, rc->hidden, rc->embed_rms);
    if (!st) b->bridge_made = true;
    if (!st) st = lw_config_load_model(rc, &b->receiver);
    if (st) {
        lw_bridge_side_close(b);
        return lw_fail_wrap(st, "receiver %s", rc->name);
    }
    return LW_OK;
}

void lw_bridge_side_close(lw_bridge_side *b)
{
    lw_model_free(b->receiver);
    lw_tokenizer_free(b->tok);
    lw_receiver_layout_free(&b->layout);
    if (b->bridge_made) lw_bridge_free(&b->bridge);
    memset(b, 0, sizeof *b);
}

/* dir's parent folder in place ("." for a bare name). */
static void up_one(char *dir, size_t cap)
{
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else lw_pathf(dir, cap, ".");
}

lw_status lw_run_json_read(const char *ck, int *seed_out, bool *has_seed, int *M_out, bool *has_M)
{
    char dir[4096], path[4200];
    size_t n = strlen(ck);
    while (n > 1 && ck[n - 1] == '/') n--;
    bool is_file = n > 12 && !strncmp(ck + n - 12, ".safetensors", 12);
    if (!lw_pathf(dir, sizeof dir, "%.*s", (int)n, ck)) return LW_OK;
    if (is_file) up_one(dir, sizeof dir);   /* the checkpoint folder */
    /* its own run.json (lw train writes one into each checkpoint), else the run's beside it */
    FILE *f = NULL;
    for (int up = 0; up < 2 && !f; up++) {
        if (up) up_one(dir, sizeof dir);
        if (lw_pathf(path, sizeof path, "%s/run.json", dir)) f = fopen(path, "r");
    }
    if (!f) return LW_OK;
    fclose(f);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o) return lw_fail(LW_ERR_FORMAT, "%s:%d: malformed JSON: %s", path, err.line, lw_json_file_error(path, &err));
    json_t *seed = json_object_get(o, "seed"), *M = json_object_get(o, "soft_tokens");
    json_int_t sv = json_integer_value(seed), mv = json_integer_value(M);
    lw_status st = LW_OK;
    if (json_is_null(M)) M = NULL;   /* methods without soft tokens */
    if ((seed && (!json_is_integer(seed) || sv < 0 || sv > 2147483647)) ||
        (M && (!json_is_integer(M) || mv < 1 || mv > 64)))
        st = lw_fail(LW_ERR_FORMAT, "%s: \"seed\" must be an integer 0..2^31-1 and \"soft_tokens\" 1..64", path);
    if (!st && seed && !*has_seed) *seed_out = (int)sv, *has_seed = true;
    if (!st && M && !*has_M) *M_out = (int)mv, *has_M = true;
    json_decref(o);
    return st;
}

bool lw_opt_dtype(const char *cmd, const char *value, lw_weights_dtype *out)
{
    if (lw_weights_dtype_parse(value, out)) return true;
    fprintf(stderr, "lw %s: --dtype takes fp32, bf16, q8 or native, not %s\n", cmd, value ? value : "(nothing)");
    return false;
}

void lw_pair_with_dtype(lw_pair *run, const lw_pair *pair, lw_weights_dtype d)
{
    *run = *pair;
    run->manifest.sender.load.dtype = run->manifest.receiver.load.dtype = d;
}

bool lw_threads_apply(const char *cmd, int given)
{
    int n = given;
    const char *env = getenv("LWC_THREADS");
    if (n <= 0 && env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (errno || end == env || *end || v < 1 || v > LW_THREADS_MAX) {
            fprintf(stderr, "lw %s: LWC_THREADS='%.32s': expected an integer in 1..%d\n", cmd, env, LW_THREADS_MAX);
            return false;
        }
        n = (int)v;
    }
    if (n <= 0) n = 1;
    if (lw_cpu_threads_set(n)) {
        fprintf(stderr, "lw %s: %s\n", cmd, lw_last_error());
        return false;
    }
    return true;
}

lw_status lw_json_write_atomic(const char *path, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (!text) return lw_fail(LW_ERR_NOMEM, "%s: building the JSON", path);
    lw_status st = lw_write_file_atomic(path, text, strlen(text), NULL);
    free(text);
    return st;
}
