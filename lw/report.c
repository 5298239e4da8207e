/* Eval results in, aggregated tables out (see report.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report.h"
#include "jsonerr.h"

/* ---- loading ---- */

static lw_status get_number(const char *path, json_t *o, const char *key, double lo, double hi, double *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_number(j)) return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
    *v = json_number_value(j);
    if (!(*v >= lo && *v <= hi))
        return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" is %g, expected %g..%g", path, key, *v, lo, hi);
    return LW_OK;
}

static lw_status get_interval(const char *path, json_t *o, const char *key, double *lo, double *hi)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_number(json_array_get(j, 0)) ||
        !json_is_number(json_array_get(j, 1)))
        return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" must be [lo, hi]", path, key);
    *lo = json_number_value(json_array_get(j, 0));
    *hi = json_number_value(json_array_get(j, 1));
    if (!(*lo >= 0 && *lo <= *hi && *hi <= 1))
        return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" is [%g, %g], expected 0 <= lo <= hi <= 1", path, key, *lo, *hi);
    return LW_OK;
}

static lw_status get_string(const char *path, json_t *o, const char *key, char **out)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || !*s) return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" must be a non-empty string", path, key);
    if (!(*out = strdup(s))) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    return LW_OK;
}

/* Optional integer field in [lo, hi]; *present says whether it was there. */
static lw_status get_opt_int(const char *path, json_t *o, const char *key, long lo, long hi, long *v, bool *present)
{
    json_t *j = json_object_get(o, key);
    *present = j && !json_is_null(j);
    if (!*present) return LW_OK;
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" must be an integer in %ld..%ld", path, key, lo, hi);
    *v = (long)json_integer_value(j);
    return LW_OK;
}

static lw_status fill_result(const char *path, json_t *o, lw_eval_result *r)
{
    double n;
    long M = -1;
    bool has_M;
    lw_status st = get_string(path, o, "method", &r->method);
    if (!st) st = get_string(path, o, "task", &r->task);
    if (!st) st = get_string(path, o, "split", &r->split);
    if (!st) st = get_number(path, o, "n", 0, 1e15, &n);
    if (!st) st = get_number(path, o, "accuracy", 0, 1, &r->acc);
    if (!st) st = get_interval(path, o, "accuracy_ci95", &r->acc_lo, &r->acc_hi);
    if (!st) st = get_number(path, o, "macro_f1", 0, 1, &r->f1);
    if (!st) st = get_interval(path, o, "macro_f1_ci95", &r->f1_lo, &r->f1_hi);
    if (!st) st = get_opt_int(path, o, "soft_tokens", 1, 1 << 20, &M, &has_M);
    if (!st) st = get_opt_int(path, o, "seed", -(1L << 62), 1L << 62, &r->seed, &r->has_seed);
    if (!st && n != floor(n)) st = lw_fail(LW_ERR_FORMAT, "%s: \"n\" must be a whole number", path);
    r->n = (long)n;
    r->M = has_M ? (int)M : -1;
    return st;
}

lw_status lw_eval_result_load(const char *path, lw_eval_result *r, bool *is_result)
{
    memset(r, 0, sizeof *r);
    *is_result = false;
    json_error_t err;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!o) return lw_fail(LW_ERR_FORMAT, "%s:%d:%d: malformed JSON: %s", path, err.line, err.column,
                           lw_json_file_error(path, &err));
    lw_status st = LW_OK;
    if (json_is_object(o) && json_object_get(o, "task") && json_object_get(o, "method") &&
        json_object_get(o, "accuracy")) {
        *is_result = true;
        if (!(r->path = strdup(path))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
        if (!st) st = fill_result(path, o, r);
        if (st) lw_eval_result_free(r);
    }
    json_decref(o);
    return st;
}

void lw_eval_result_free(lw_eval_result *r)
{
    free(r->path);
    free(r->method);
    free(r->task);
    free(r->split);
    memset(r, 0, sizeof *r);
    r->M = -1;
}

void lw_split_name(const char *split, char *out, size_t cap)
{
    const char *base = strrchr(split, '/');
    base = base ? base + 1 : split;
    const char *dot = strchr(base, '.');
    size_t n = dot ? (size_t)(dot - base) : strlen(base);
    if (n >= cap) n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* ---- aggregation ---- */

static int key_cmp(const char *m1, const char *t1, int M1, const char *m2, const char *t2, int M2)
{
    int c = strcmp(m1, m2);
    if (!c) c = strcmp(t1, t2);
    if (!c) c = (M1 > M2) - (M1 < M2);
    return c;
}

static int result_cmp(const void *a, const void *b)
{
    const lw_eval_result *x = *(const lw_eval_result *const *)a, *y = *(const lw_eval_result *const *)b;
    int c = key_cmp(x->method, x->task, x->M, y->method, y->task, y->M);
    if (!c) c = (x->has_seed > y->has_seed) - (x->has_seed < y->has_seed);   /* seedless first */
    if (!c && x->has_seed) c = (x->seed > y->seed) - (x->seed < y->seed);
    return c ? c : strcmp(x->path, y->path);
}

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *std = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

static void warn_group(const lw_eval_result *const *run, int n)
{
    for (int i = 0; i < n; i++) {
        if (run[i]->n != run[0]->n)
            fprintf(stderr, "lw report: warning: %s has %ld examples but %s has %ld (same method, task, M)\n",
                    run[i]->path, run[i]->n, run[0]->path, run[0]->n);
        for (int j = 0; j < i; j++)
            if (run[i]->has_seed && run[j]->has_seed && run[i]->seed == run[j]->seed)
                fprintf(stderr, "lw report: warning: %s and %s are both seed %ld of the same method, task, M\n",
                        run[j]->path, run[i]->path, run[i]->seed);
    }
}

/* One group from its n runs (n >= 1); v is scratch for n values. */
static lw_report_group make_group(const lw_eval_result *const *run, int n, double *v)
{
    lw_report_group g = {.method = run[0]->method, .task = run[0]->task, .M = run[0]->M, .n_runs = n,
                         .n_examples = run[0]->n};
    for (int i = 0; i < n; i++) v[i] = run[i]->acc;
    mean_std(v, n, &g.acc_mean, &g.acc_std);
    for (int i = 0; i < n && i < LW_REPORT_LISTED_RUNS; i++)
        g.seed[i] = run[i]->seed, g.has_seed[i] = run[i]->has_seed, g.acc[i] = run[i]->acc;
    for (int i = 0; i < n; i++) v[i] = run[i]->f1;
    mean_std(v, n, &g.f1_mean, &g.f1_std);
    if (n == 1) {
        g.acc_lo = run[0]->acc_lo, g.acc_hi = run[0]->acc_hi;
        g.f1_lo = run[0]->f1_lo, g.f1_hi = run[0]->f1_hi;
    } else {
        g.acc_lo = g.acc_mean - g.acc_std, g.acc_hi = g.acc_mean + g.acc_std;
        g.f1_lo = g.f1_mean - g.f1_std, g.f1_hi = g.f1_mean + g.f1_std;
    }
    warn_group(run, n);
    return g;
}

lw_status lw_report_aggregate(const lw_eval_result *r, int n, lw_report_group **groups, int *n_groups)
{
    *groups = NULL;
    *n_groups = 0;
    if (n <= 0) return LW_OK;
    const lw_eval_result **sorted = malloc((size_t)n * sizeof *sorted);
    double *v = malloc((size_t)n * sizeof *v);
    lw_report_group *g = malloc((size_t)n * sizeof *g);
    if (!sorted || !v || !g) {
        free(sorted), free(v), free(g);
        return lw_fail(LW_ERR_NOMEM, "report: out of memory for %d results", n);
    }
    for (int i = 0; i < n; i++) sorted[i] = &r[i];
    qsort(sorted, (size_t)n, sizeof *sorted, result_cmp);
    int ng = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && !key_cmp(sorted[i]->method, sorted[i]->task, sorted[i]->M, sorted[j]->method,
                                 sorted[j]->task, sorted[j]->M))
            j++;
        g[ng++] = make_group(sorted + i, j - i, v);
        i = j;
    }
    free(sorted);
    free(v);
    *groups = g;
    *n_groups = ng;
    return LW_OK;
}

/* ---- tables ---- */

void lw_report_cell(char *out, size_t cap, double mean, double std, int n_runs)
{
    if (n_runs > 1) snprintf(out, cap, "%.1f ± %.1f (%d seeds)", 100 * mean, 100 * std, n_runs);
    else snprintf(out, cap, "%.1f (1 seed)", 100 * mean);
}

/* Names go into table cells: Markdown needs | < > ` \ escaped and no line
 * breaks; plain text only loses its line breaks. */
static void name(lw_strbuf *out, const char *s, bool md)
{
    for (; *s; s++) {
        if (*s == '\n' || *s == '\r') { lw_sb_append(out, " ", 1); continue; }
        if (md && strchr("|<>`\\*", *s)) lw_sb_append(out, "\\", 1);
        lw_sb_append(out, s, 1);
    }
}

static void row_label(lw_strbuf *out, const lw_report_group *g, bool md)
{
    name(out, g->method, md);
    if (g->M >= 0) lw_sb_printf(out, " (M=%d)", g->M);
}

static bool same_row(const lw_report_group *a, const lw_report_group *b)
{
    return !strcmp(a->method, b->method) && a->M == b->M;
}

/* Distinct tasks in first-seen order of a sorted-by-task list. */
static int tasks_of(const lw_report_group *g, int n, const char **tasks)
{
    int nt = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < nt && strcmp(tasks[k], g[i].task)) k++;
        if (k == nt) tasks[nt++] = g[i].task;
    }
    for (int i = 1; i < nt; i++)  /* insertion sort: few tasks */
        for (int k = i; k > 0 && strcmp(tasks[k - 1], tasks[k]) > 0; k--) {
            const char *t = tasks[k];
            tasks[k] = tasks[k - 1], tasks[k - 1] = t;
        }
    return nt;
}

static int row_cmp(const void *a, const void *b)
{
    const lw_report_group *x = *(const lw_report_group *const *)a, *y = *(const lw_report_group *const *)b;
    int c = strcmp(x->method, y->method);
    return c ? c : (x->M > y->M) - (x->M < y->M);
}

static void overview_row(const lw_report_group *g, int n, const lw_report_group *row, const char **tasks, int nt,
                         bool f1, bool md, lw_strbuf *out)
{
    lw_sb_printf(out, "| ");
    row_label(out, row, md);
    lw_sb_printf(out, " |");
    for (int t = 0; t < nt; t++) {
        const lw_report_group *c = NULL;
        for (int k = 0; k < n && !c; k++)
            if (same_row(&g[k], row) && !strcmp(g[k].task, tasks[t])) c = &g[k];
        char cell[96] = "–";
        if (c) lw_report_cell(cell, sizeof cell, f1 ? c->f1_mean : c->acc_mean, f1 ? c->f1_std : c->acc_std, c->n_runs);
        lw_sb_printf(out, " %s |", cell);
    }
    lw_sb_printf(out, "\n");
}

/* Rows: the distinct (method, M), by method then M; columns: tasks. */
static void overview_table(const lw_report_group *g, int n, const char **tasks, int nt, bool f1, bool md,
                           lw_strbuf *out)
{
    const lw_report_group **rows = malloc((size_t)(n > 0 ? n : 1) * sizeof *rows);
    if (!rows) { out->failed = true; return; }
    int nr = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int k = 0; k < nr && !seen; k++) seen = same_row(rows[k], &g[i]);
        if (!seen) rows[nr++] = &g[i];
    }
    qsort(rows, (size_t)nr, sizeof *rows, row_cmp);
    lw_sb_printf(out, "| method |");
    for (int t = 0; t < nt; t++) {
        lw_sb_append(out, " ", 1);
        name(out, tasks[t], md);
        lw_sb_append(out, " |", 2);
    }
    lw_sb_printf(out, "\n|---|");
    for (int t = 0; t < nt; t++) lw_sb_printf(out, "---|");
    lw_sb_printf(out, "\n");
    for (int r = 0; r < nr; r++) overview_row(g, n, rows[r], tasks, nt, f1, md, out);
    free(rows);
}

void lw_report_overview(const lw_report_group *g, int n, bool md, lw_strbuf *out)
{
    const char **tasks = malloc((size_t)(n > 0 ? n : 1) * sizeof *tasks);
    if (!tasks) { out->failed = true; return; }
    int nt = tasks_of(g, n, tasks);
    lw_sb_printf(out, "%sAccuracy (%%)\n\n", md ? "## " : "");
    overview_table(g, n, tasks, nt, false, md, out);
    lw_sb_printf(out, "\n%sMacro-F1 (%%)\n\n", md ? "## " : "");
    overview_table(g, n, tasks, nt, true, md, out);
    free(tasks);
}

/* Each listed run's accuracy with its seed: for the Markdown table
 * "80.5 (1), 78.5 (2)" in percent ("–" for no seed, "…" when runs are left
 * out), for the CSV "1:0.805000;2:0.785000" (seed empty for none). */
static void list_runs(const lw_report_group *g, bool csv, lw_strbuf *out)
{
    for (int i = 0; i < g->n_runs && i < LW_REPORT_LISTED_RUNS; i++) {
        if (csv) {
            if (i) lw_sb_append(out, ";", 1);
            if (g->has_seed[i]) lw_sb_printf(out, "%ld", g->seed[i]);
            lw_sb_printf(out, ":%.6f", g->acc[i]);
            continue;
        }
        lw_sb_printf(out, "%s%.1f ", i ? ", " : "", 100 * g->acc[i]);
        if (g->has_seed[i]) lw_sb_printf(out, "(%ld)", g->seed[i]);
        else lw_sb_printf(out, "(–)");
    }
    if (!csv && g->n_runs > LW_REPORT_LISTED_RUNS) lw_sb_printf(out, ", …");
}

static void task_table(const lw_report_group *g, int n, const char *task, lw_strbuf *out)
{
    lw_sb_printf(out, "\n## ");
    name(out, task, true);
    lw_sb_printf(out, "\n\n| method | M | seeds | accuracy (%%) | interval | macro-F1 (%%) | interval | examples "
                      "| accuracy per run (seed) |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        if (strcmp(g[i].task, task)) continue;
        lw_sb_printf(out, "| ");
        name(out, g[i].method, true);
        if (g[i].M >= 0) lw_sb_printf(out, " | %d", g[i].M);
        else lw_sb_printf(out, " | –");
        const char *kind = g[i].n_runs > 1 ? "± std" : "95% CI";
        lw_sb_printf(out, " | %d | %.1f | [%.1f, %.1f] %s | %.1f | [%.1f, %.1f] %s | %ld | ", g[i].n_runs,
                     100 * g[i].acc_mean, 100 * g[i].acc_lo, 100 * g[i].acc_hi, kind, 100 * g[i].f1_mean,
                     100 * g[i].f1_lo, 100 * g[i].f1_hi, kind, g[i].n_examples);
        list_runs(&g[i], false, out);
        lw_sb_printf(out, " |\n");
    }
}

void lw_report_markdown(const lw_report_group *g, int n, const char *split, lw_strbuf *out)
{
    lw_sb_printf(out, "# Results on the %s split\n\n"
                      "Mean ± sample standard deviation over seeds, in percent. Intervals: the run's 95%% "
                      "bootstrap CI when there is one seed, else mean ± std.\n\n",
                 split);
    lw_report_overview(g, n, true, out);
    const char **tasks = malloc((size_t)(n > 0 ? n : 1) * sizeof *tasks);
    if (!tasks) { out->failed = true; return; }
    int nt = tasks_of(g, n, tasks);
    for (int t = 0; t < nt; t++) task_table(g, n, tasks[t], out);
    free(tasks);
}

static void csv_field(lw_strbuf *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) { lw_sb_append(out, s, strlen(s)); return; }
    lw_sb_append(out, "\"", 1);
    for (; *s; s++) lw_sb_append(out, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    lw_sb_append(out, "\"", 1);
}

static void csv_number(lw_strbuf *out, double v)
{
    if (isfinite(v)) lw_sb_printf(out, ",%.6f", v);
    else lw_sb_append(out, ",", 1);
}

void lw_report_csv(const lw_report_group *g, int n, lw_strbuf *out)
{
    lw_sb_printf(out, "method,task,soft_tokens,n_seeds,acc_mean,acc_std,acc_ci_lo,acc_ci_hi,f1_mean,f1_std,n_examples,acc_per_run\n");
    for (int i = 0; i < n; i++) {
        csv_field(out, g[i].method);
        lw_sb_append(out, ",", 1);
        csv_field(out, g[i].task);
        if (g[i].M >= 0) lw_sb_printf(out, ",%d", g[i].M);
        else lw_sb_append(out, ",", 1);
        lw_sb_printf(out, ",%d", g[i].n_runs);
        csv_number(out, g[i].acc_mean);
        csv_number(out, g[i].acc_std);
        csv_number(out, g[i].acc_lo);
        csv_number(out, g[i].acc_hi);
        csv_number(out, g[i].f1_mean);
        csv_number(out, g[i].f1_std);
        lw_sb_printf(out, ",%ld,", g[i].n_examples);
        list_runs(&g[i], true, out);
        lw_sb_append(out, "\n", 1);
    }
}

/* ---- training logs ---- */

/* printf writes non-finite doubles as nan/-nan/inf, which JSON lacks: turn
 * such bare values (outside strings) into null. */
static char *nan_to_null(const char *line)
{
    lw_strbuf sb = {0};
    bool in_string = false;
    for (size_t i = 0; line[i];) {
        char c = line[i];
        if (in_string) {
            size_t k = c == '\\' && line[i + 1] ? 2 : 1;
            if (c == '"') in_string = false;
            lw_sb_append(&sb, line + i, k);
            i += k;
            continue;
        }
        size_t k = i + (c == '-' || c == '+');
        size_t word = !strncasecmp(line + k, "infinity", 8) ? 8
                      : !strncasecmp(line + k, "nan", 3) || !strncasecmp(line + k, "inf", 3) ? 3 : 0;
        char after = word ? line[k + word] : 'x';
        if (word && !(after == '_' || (after >= 'a' && after <= 'z') || (after >= 'A' && after <= 'Z') ||
                      (after >= '0' && after <= '9'))) {
            lw_sb_append(&sb, "null", 4);
            i = k + word;
            continue;
        }
        in_string = c == '"';
        lw_sb_append(&sb, line + i, 1);
        i++;
    }
    lw_sb_append(&sb, "", 0);
    if (sb.failed) { lw_sb_free(&sb); return NULL; }
    return sb.data;
}

static lw_status log_point(lw_loss_log *log, size_t *cap, double step, double loss)
{
    while (log->n > 0 && log->step[log->n - 1] >= step) log->n--;   /* resumed run overwrites */
    if ((size_t)log->n == *cap) {
        size_t want = *cap ? *cap * 2 : 256;
        double *s = realloc(log->step, want * sizeof *s);
        if (s) log->step = s;
        double *l = s ? realloc(log->loss, want * sizeof *l) : NULL;
        if (!l) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", log->path);
        log->loss = l;
        *cap = want;
    }
    log->step[log->n] = step;
    log->loss[log->n++] = loss;
    return LW_OK;
}

static lw_status log_line(lw_loss_log *log, size_t *cap, json_t *o, long line)
{
    json_t *step = json_object_get(o, "step"), *loss = json_object_get(o, "loss");
    const char *task = json_string_value(json_object_get(o, "task"));
    if (!json_is_object(o) || !json_is_number(step) || !(json_is_number(loss) || json_is_null(loss)))
        return lw_fail(LW_ERR_FORMAT, "%s:%ld: expected an object with numbers \"step\" and \"loss\"", log->path,
                       line);
    if (task && !log->task && !(log->task = strdup(task))) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", log->path);
    return log_point(log, cap, json_number_value(step), json_is_null(loss) ? NAN : json_number_value(loss));
}

/* lw train writes the task into run.json beside its log, not into each line. */
static lw_status task_from_run_json(lw_loss_log *log)
{
    const char *slash = strrchr(log->path, '/');
    char run[4096];
    int dir = slash ? (int)(slash - log->path) : 1;
    if (!lw_pathf(run, sizeof run, "%.*s/run.json", dir, slash ? log->path : ".")) return LW_OK;
    json_t *o = json_load_file(run, 0, NULL);
    const char *task = json_string_value(json_object_get(o, "task"));
    lw_status st = LW_OK;
    if (task && !(log->task = strdup(task))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", run);
    json_decref(o);
    return st;
}

lw_status lw_loss_log_load(const char *path, lw_loss_log *log)
{
    memset(log, 0, sizeof *log);
    char *text;
    size_t len, cap = 0;
    lw_status st = lw_read_file(path, &text, &len);
    if (st) return st;
    if (!(log->path = strdup(path))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    long line = 0;
    for (char *p = text; !st && p < text + len; line++) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        char *end = nl ? nl : text + len;
        *end = '\0';
        char *s = p;
        p = end + 1;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        if (!*s) continue;
        char *fixed = nan_to_null(s);
        if (!fixed) { st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path); break; }
        json_error_t err;
        json_t *o = json_loads(fixed, 0, &err);
        free(fixed);
        if (!o && !nl) {
            fprintf(stderr, "lw report: warning: %s:%ld: ignoring the unfinished last line\n", path, line + 1);
            break;
        }
        if (!o) st = lw_fail(LW_ERR_FORMAT, "%s:%ld: malformed JSON: %s", path, line + 1, lw_json_error(&err));
        else st = log_line(log, &cap, o, line + 1);
        json_decref(o);
    }
    free(text);
    if (!st && !log->task) st = task_from_run_json(log);
    if (st) lw_loss_log_free(log);
    return st;
}

void lw_loss_log_free(lw_loss_log *log)
{
    free(log->path);
    free(log->task);
    free(log->step);
    free(log->loss);
    memset(log, 0, sizeof *log);
}
