#include "testlib.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TL_SLOTS = 8, TL_PATH = 4096 };

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static const char *join(const char *base, const char *rel)
{
    static char slots[TL_SLOTS][TL_PATH];
    static int next;
    char *buf = slots[next++ % TL_SLOTS];
    snprintf(buf, TL_PATH, "%s/%s", base, rel);
    return buf;
}

const char *tl_src(const char *rel) { return join(env_or("LWC_SRCDIR", "."), rel); }
const char *tl_out(const char *rel) { return join(env_or("LWC_OUT", "out"), rel); }
const char *tl_model(const char *rel) { return join(env_or("LWC_MODELS", "models"), rel); }
const char *tl_shared(const char *rel) { return join(env_or("LWC_SHARED", "../shared"), rel); }

const char *tl_tmpdir(const char *name)
{
    static char buf[TL_PATH];
    char rel[512];
    snprintf(rel, sizeof rel, "tmp/%s.%d", name, (int)getpid());
    snprintf(buf, sizeof buf, "%s", tl_out(rel));
    tl_run(NULL, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    return buf;
}

void tl_assert_close_to_scale(const float *got, const float *want, size_t n, double rel, const char *what)
{
    double scale = 0.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (fabs((double)got[i] - want[i]) > worst) worst = fabs((double)got[i] - want[i]), at = i;
    ck_assert_msg(scale > 0.0, "%s: all %zu expected values are 0", what, n);
    ck_assert_msg(worst <= rel * scale, "%s[%zu]: %g, expected %g (off by %g, allowed %g of the largest %g)", what,
                  at, (double)got[at], (double)want[at], worst, rel, scale);
}

void tl_require_file(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0,
                  "missing %s: run scripts/fetch-models.sh (models) or check LWC_SHARED (data)", path);
}

int tl_run(char **output, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8300];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2048) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) { free(buf); buf = NULL; break; }
            buf = grown; cap *= 2;
        }
    }
    int st = pclose(p);
    if (buf) buf[len] = 0;
    if (output) *output = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[n] = 0; if (len) *len = (size_t)n; }
    return buf;
}

int tl_read_train_log(const char *out_dir, int max_rows, double *loss, double *grad_norm)
{
    char path[TL_PATH + 32];
    snprintf(path, sizeof path, "%s/train_log.jsonl", out_dir);
    char *text = tl_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    int rows = 0;
    for (char *line = strtok(text, "\n"); line && rows < max_rows; line = strtok(NULL, "\n"), rows++) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        ck_assert_msg(json_is_object(o), "%s:%d: not a JSON object (%s)", path, rows + 1, err.text);
        json_t *l = json_object_get(o, "loss"), *g = json_object_get(o, "grad_norm");
        ck_assert_msg(json_is_number(l) && json_is_number(g), "%s:%d: no numeric loss and grad_norm", path, rows + 1);
        if (loss) loss[rows] = json_number_value(l);
        if (grad_norm) grad_norm[rows] = json_number_value(g);
        json_decref(o);
    }
    free(text);
    return rows;
}

void tl_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

int tl_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

int tl_run_command(int (*cmd)(const lw_pair *, int, char **), const lw_pair *pair, char **err, int argc,
                   char **argv)
{
    ck_assert_int_eq(tl_run(NULL, "mkdir -p '%s'", tl_out("tmp")), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/stderr.%ld", tl_out("tmp"), (long)getpid());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    dup2(fileno(f), 2);
    int rc = cmd(pair, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    *err = tl_read_file(path, NULL);
    ck_assert_ptr_nonnull(*err);
    unlink(path);
    return rc;
}
