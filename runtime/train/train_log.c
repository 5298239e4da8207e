#include "train_log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"

/* Keeps the lines of steps <= last (a line that does not parse, as a line
 * torn by a kill, is dropped with everything after it). */
static lw_status cut_log(const char *path, long last)
{
    if (!lw_file_exists(path)) return LW_OK;
    char *text;
    size_t len;
    lw_status st = lw_read_file(path, &text, &len);
    if (st) return lw_fail_wrap(st, "train: resuming the log");
    size_t keep = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break;   /* no newline: torn */
        json_t *o = json_loadb(text + at, (size_t)(nl - (text + at)), 0, NULL);
        json_t *s = json_object_get(o, "step");
        bool ok = json_is_integer(s) && json_integer_value(s) <= last;
        json_decref(o);
        if (!ok) break;
        at = keep = (size_t)(nl - text) + 1;
    }
    if (keep < len) st = lw_write_file_atomic(path, text, keep, NULL);
    free(text);
    return st;
}

FILE *lw_train_log_open(const char *out_dir, long resume_step, lw_status *st)
{
    return lw_jsonl_open(out_dir, "train_log.jsonl", resume_step, st);
}

FILE *lw_jsonl_open(const char *out_dir, const char *name, long resume_step, lw_status *st)
{
    char path[4096];
    if ((*st = lw_mkdir_p(out_dir))) return NULL;
    if (!lw_pathf(path, sizeof path, "%s/%s", out_dir, name)) {
        *st = lw_fail(LW_ERR_INVALID, "train: log path too long under %s", out_dir);
        return NULL;
    }
    if (resume_step >= 0 && (*st = cut_log(path, resume_step))) return NULL;
    FILE *f = fopen(path, resume_step >= 0 ? "a" : "w");
    if (!f) *st = lw_fail(LW_ERR_IO, "train: cannot open %s: %s", path, strerror(errno));
    return f;
}

/* A JSON number, or null for NaN and infinities (which JSON lacks). */
static void json_num(FILE *f, const char *key, const char *fmt, double v)
{
    fprintf(f, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("null", f);
}

void lw_train_log_write(FILE *f, const lw_train_log_line *l) { lw_train_log_write_groups(f, l, 0, NULL, NULL); }

void lw_train_log_write_groups(FILE *f, const lw_train_log_line *l, int n, const char *const *names,
                               const double *norms)
{
    fprintf(f, "{\"step\": %ld", l->step);
    json_num(f, "loss", "%.6f", l->loss);
    json_num(f, "lr", "%.6e", l->lr);
    json_num(f, "grad_norm", "%.6f", l->grad_norm);
    json_num(f, "train_acc", "%.4f", l->train_acc);
    json_num(f, "examples_per_s", "%.3f", l->examples_per_s);
    json_num(f, "elapsed_s", "%.3f", l->elapsed_s);
    if (l->nonfinite) fputs(", \"nonfinite\": true", f);
    if (n > 0) {
        fputs(", \"grad_groups\": {", f);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s\"%s\": ", i ? ", " : "", names[i]);
            if (isfinite(norms[i])) fprintf(f, "%.6g", norms[i]);
            else fputs("null", f);
        }
        fputs("}", f);
    }
    fputs("}\n", f);
    fflush(f);
}

lw_status lw_train_write_run_json(const char *out_dir, const char *text)
{
    char path[4200];
    if (!lw_pathf(path, sizeof path, "%s/run.json", out_dir))
        return lw_fail(LW_ERR_INVALID, "train: path too long under %s", out_dir);
    lw_status st = lw_mkdir_p(out_dir);
    return st ? st : lw_write_file_atomic(path, text, strlen(text), NULL);
}

/* "NaN", "inf", "-inf" or the number. */
static const char *show(double v, char *buf, size_t cap)
{
    if (isnan(v)) return "NaN";
    snprintf(buf, cap, "%g", v);
    return buf;
}

lw_status lw_train_nonfinite_stop(long step, double loss, double grad_norm, const char *last_checkpoint,
                                  int skip_limit)
{
    char skipped[96] = "", a[32], b[32];
    if (skip_limit > 0) snprintf(skipped, sizeof skipped, " (the %d steps --skip-nonfinite allows were skipped)",
                                 skip_limit);
    return lw_fail(LW_ERR_INVALID, "train: step %ld: the loss is %s and the gradient norm %s (non-finite)%s: "
                   "stopped before updating the parameters; %s%s%s. Try a lower --lr, or --skip-nonfinite N to "
                   "skip such steps", step, show(loss, a, sizeof a), show(grad_norm, b, sizeof b), skipped,
                   *last_checkpoint ? "the last checkpoint, " : "no checkpoint was written in this run",
                   last_checkpoint, *last_checkpoint ? ", is as it was" : "");
}
