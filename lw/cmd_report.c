/* lw report: the tables and plots of a set of experiments, from the JSON
 * files `lw eval --json` wrote and the train_log.jsonl files of `lw train`. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileutil.h"
#include "lw_cli.h"
#include "report.h"
#include "svg_plot.h"

enum { MAX_DEPTH = 32, MAX_PLOT_POINTS = 2000 };

static void usage(void)
{
    printf("usage: lw report --results DIR --out DIR [--logs DIR] [--split NAME]\n\n"
           "Aggregates eval results over seeds and writes, into the --out folder:\n"
           "  results.md               methods x tasks tables (mean ± std over seeds) and one table per task\n"
           "  results.csv              one row per (method, task, soft tokens M)\n"
           "  accuracy_vs_M_<task>.svg accuracy against M with std error bars (methods without M dashed)\n"
           "  loss_<task>.svg          training loss curves, one per run (with --logs)\n\n"
           "  --results DIR   searched recursively for *.json written by `lw eval --json`\n"
           "                  (other JSON files are skipped with a warning)\n"
           "  --logs DIR      searched recursively for train_log.jsonl; a log's task is its \"task\"\n"
           "                  field, else a folder in its path named like a task, else the first\n"
           "                  folder under DIR (lw train's default is runs/<task>)\n"
           "  --split NAME    only results of this split, by file name: dev (default) for\n"
           "                  .../dev.jsonl; `all` keeps every split\n"
           "  --out DIR       created if missing; files are replaced atomically\n\n"
           "The methods x tasks accuracy and macro-F1 tables are also printed.\n");
}

typedef struct {
    const char *results, *logs, *out, *split;
} report_args;

static bool parse(int argc, char **argv, report_args *a)
{
    memset(a, 0, sizeof *a);
    a->split = "dev";
    for (int i = 0; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--results") ? &a->results
                            : !strcmp(argv[i], "--logs")  ? &a->logs
                            : !strcmp(argv[i], "--out")   ? &a->out
                            : !strcmp(argv[i], "--split") ? &a->split
                                                          : NULL;
        if (!slot) {
            fprintf(stderr, "lw report: unknown option '%s' (see lw report --help)\n", argv[i]);
            return false;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "lw report: %s needs a value\n", argv[i]);
            return false;
        }
        *slot = argv[++i];
    }
    if (!a->results || !a->out) {
        fprintf(stderr, "lw report: --results and --out are required (see lw report --help)\n");
        return false;
    }
    return true;
}

/* ---- finding files ---- */

typedef struct {
    char **v;
    int n, cap;
} path_list;

static void paths_free(path_list *p)
{
    for (int i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static lw_status paths_add(path_list *p, const char *path)
{
    if (p->n == p->cap) {
        int want = p->cap ? p->cap * 2 : 64;
        char **v = realloc(p->v, (size_t)want * sizeof *v);
        if (!v) return lw_fail(LW_ERR_NOMEM, "out of memory listing files");
        p->v = v, p->cap = want;
    }
    if (!(p->v[p->n] = strdup(path))) return lw_fail(LW_ERR_NOMEM, "out of memory listing files");
    p->n++;
    return LW_OK;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* Files under dir whose name passes want; hidden entries (.lwc-cache) are
 * skipped and the depth is bounded, so symlink loops end. */
static lw_status scan(const char *dir, bool logs, int depth, path_list *out)
{
    DIR *d = opendir(dir);
    if (!d) return lw_fail(LW_ERR_IO, "cannot open folder %s", dir);
    lw_status st = LW_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        struct stat sb;
        if (!lw_pathf(path, sizeof path, "%s/%s", dir, e->d_name)) {
            st = lw_fail(LW_ERR_INVALID, "path too long under %s", dir);
        } else if (stat(path, &sb) != 0) {
            fprintf(stderr, "lw report: warning: cannot stat %s, skipped\n", path);
        } else if (S_ISDIR(sb.st_mode)) {
            if (depth < MAX_DEPTH) st = scan(path, logs, depth + 1, out);
        } else if (S_ISREG(sb.st_mode) && (logs ? !strcmp(e->d_name, "train_log.jsonl") : ends_with(e->d_name, ".json"))) {
            st = paths_add(out, path);
        }
    }
    closedir(d);
    return st;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static lw_status find_files(const char *dir, bool logs, path_list *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = scan(dir, logs, 0, out);
    if (st) paths_free(out);
    else if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, str_cmp);
    return st;
}

/* ---- results ---- */

typedef struct {
    lw_eval_result *r;
    int n;
} result_set;

static void results_free(result_set *rs)
{
    for (int i = 0; i < rs->n; i++) lw_eval_result_free(&rs->r[i]);
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

static lw_status load_results(const report_args *a, result_set *rs)
{
    path_list files;
    memset(rs, 0, sizeof *rs);
    lw_status st = find_files(a->results, false, &files);
    if (st) return st;
    if (files.n && !(rs->r = calloc((size_t)files.n, sizeof *rs->r)))
        st = lw_fail(LW_ERR_NOMEM, "out of memory");
    int other_split = 0;
    for (int i = 0; !st && i < files.n; i++) {
        bool is_result;
        char split[256];
        if ((st = lw_eval_result_load(files.v[i], &rs->r[rs->n], &is_result))) break;
        if (!is_result) {
            fprintf(stderr, "lw report: warning: %s is not an eval result (no task/method/accuracy), skipped\n",
                    files.v[i]);
            continue;
        }
        lw_split_name(rs->r[rs->n].split, split, sizeof split);
        if (strcmp(a->split, "all") && strcmp(split, a->split)) {
            lw_eval_result_free(&rs->r[rs->n]);
            other_split++;
            continue;
        }
        rs->n++;
    }
    if (!st && other_split)
        fprintf(stderr, "lw report: %d result(s) of other splits than '%s' left out (--split all keeps them)\n",
                other_split, a->split);
    if (!st && !rs->n) st = lw_fail(LW_ERR_INVALID, "no eval results of split '%s' under %s", a->split, a->results);
    paths_free(&files);
    if (st) results_free(rs);
    return st;
}

/* ---- output ---- */

static lw_status write_out(const char *dir, const char *name, const lw_strbuf *sb)
{
    char path[4096];
    if (sb->failed) return lw_fail(LW_ERR_NOMEM, "out of memory building %s", name);
    if (!lw_pathf(path, sizeof path, "%s/%s", dir, name)) return lw_fail(LW_ERR_INVALID, "path too long: %s/%s", dir, name);
    return lw_write_file_atomic(path, sb->data ? sb->data : "", sb->len, NULL);
}

/* A file name part from a task name: [A-Za-z0-9._-] kept, others '_'. */
static void file_part(const char *task, char *out, size_t cap)
{
    size_t n = 0;
    for (; task[n] && n + 1 < cap; n++) {
        char c = task[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_';
        out[n] = ok ? c : '_';
    }
    out[n] = '\0';
}

static lw_status write_plot(const char *dir, const char *prefix, const char *task, const lw_svg_plot *p,
                            const lw_svg_series *s, int ns)
{
    char part[128], name[200];
    file_part(task, part, sizeof part);
    snprintf(name, sizeof name, "%s%s.svg", prefix, part);
    lw_strbuf sb = {0};
    lw_status st = lw_svg_line_plot(p, s, ns, &sb);
    if (!st) st = write_out(dir, name, &sb);
    lw_sb_free(&sb);
    return st;
}

/* ---- accuracy vs M ---- */

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The groups of one task; g is sorted by method, task, M, so each method's
 * points come in M order. xs/ys/es hold n entries, s n series. */
static lw_status m_plot(const char *dir, const char *split, const lw_report_group *g, int n, const char *task,
                        double *xs, double *ys, double *es, lw_svg_series *s, char (*labels)[160])
{
    int ns = 0, np = 0, nticks = 0;
    double *ticks = es + n;
    for (int i = 0; i < n; i++) {
        if (strcmp(g[i].task, task)) continue;
        bool new_series = !ns || strcmp(g[i].method, s[ns - 1].label) || g[i].M < 0 || s[ns - 1].horizontal;
        if (new_series) {
            snprintf(labels[ns], sizeof labels[ns], "%s%s", g[i].method, g[i].M < 0 ? " (no M)" : "");
            s[ns++] = (lw_svg_series){.label = g[i].method, .x = xs + np, .y = ys + np, .err = es + np,
                                      .markers = true, .horizontal = g[i].M < 0};
        }
        xs[np] = g[i].M, ys[np] = 100 * g[i].acc_mean, es[np] = 100 * g[i].acc_std;
        s[ns - 1].n++;
        np++;
        if (g[i].M >= 0) {
            int k = 0;
            while (k < nticks && ticks[k] != g[i].M) k++;
            if (k == nticks) ticks[nticks++] = g[i].M;
        }
    }
    if (!nticks) return LW_OK;   /* no method of this task has M */
    qsort(ticks, (size_t)nticks, sizeof *ticks, dbl_cmp);
    for (int k = 0; k < ns; k++) s[k].label = labels[k];
    char title[300], ylabel[300];
    snprintf(title, sizeof title, "%s: accuracy vs soft tokens M", task);
    snprintf(ylabel, sizeof ylabel, "%s accuracy (%%)", split);
    lw_svg_plot p = {.title = title, .x_label = "soft tokens M", .y_label = ylabel, .x_ticks = ticks,
                     .n_x_ticks = nticks, .x_log2 = ticks[0] > 0 && ticks[nticks - 1] / ticks[0] >= 4};
    return write_plot(dir, "accuracy_vs_M_", task, &p, s, ns);
}

static lw_status m_plots(const char *dir, const char *split, const lw_report_group *g, int n)
{
    double *buf = malloc((size_t)n * 4 * sizeof *buf);
    lw_svg_series *s = malloc((size_t)n * sizeof *s);
    char(*labels)[160] = malloc((size_t)n * sizeof *labels);
    lw_status st = buf && s && labels ? LW_OK : lw_fail(LW_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++)
        if (i == 0 || strcmp(g[i].task, g[i - 1].task)) {
            bool done = false;   /* groups are by method first: a task recurs */
            for (int k = 0; k < i && !done; k++) done = !strcmp(g[k].task, g[i].task);
            if (!done) st = m_plot(dir, split, g, n, g[i].task, buf, buf + n, buf + 2 * n, s, labels);
        }
    free(buf);
    free(s);
    free(labels);
    return st;
}

/* ---- loss curves ---- */

typedef struct {
    lw_loss_log log;
    const char *task;    /* points into log.task, a result's task or label */
    char label[256];
    char dir_task[128];  /* the first folder under --logs */
} loss_run;

/* The task named by a folder of path (deepest first), if any result has it. */
static const char *task_in_path(const char *path, const lw_report_group *g, int n)
{
    const char *end = strrchr(path, '/');
    while (end && end > path) {
        const char *start = end - 1;
        while (start > path && start[-1] != '/') start--;
        for (int i = 0; i < n; i++)
            if (strlen(g[i].task) == (size_t)(end - start) && !strncmp(g[i].task, start, (size_t)(end - start)))
                return g[i].task;
        end = start > path ? start - 1 : NULL;
    }
    return NULL;
}

static void name_run(loss_run *r, const char *root, const lw_report_group *g, int n)
{
    const char *rel = r->log.path + strlen(root);
    while (*rel == '/') rel++;
    const char *slash = strrchr(rel, '/');
    if (slash) snprintf(r->label, sizeof r->label, "%.*s", (int)(slash - rel), rel);
    else {
        const char *base = strrchr(root, '/');
        snprintf(r->label, sizeof r->label, "%s", base && base[1] ? base + 1 : root);
    }
    const char *first = strchr(rel, '/');
    if (first) snprintf(r->dir_task, sizeof r->dir_task, "%.*s", (int)(first - rel), rel);
    r->task = r->log.task ? r->log.task : task_in_path(r->log.path, g, n);
    if (!r->task && first) r->task = r->dir_task;
}

static lw_status load_logs(const char *root, const lw_report_group *g, int n, loss_run **runs, int *n_runs)
{
    path_list files;
    *runs = NULL, *n_runs = 0;
    lw_status st = find_files(root, true, &files);
    if (st) return st;
    loss_run *r = files.n ? calloc((size_t)files.n, sizeof *r) : NULL;
    if (files.n && !r) st = lw_fail(LW_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; !st && i < files.n; i++) {
        if ((st = lw_loss_log_load(files.v[i], &r[k].log))) break;
        name_run(&r[k], root, g, n);
        if (!r[k].task) fprintf(stderr, "lw report: warning: %s: cannot tell its task, skipped\n", files.v[i]);
        else if (!r[k].log.n) fprintf(stderr, "lw report: warning: %s has no steps, skipped\n", files.v[i]);
        else { k++; continue; }
        lw_loss_log_free(&r[k].log);
    }
    paths_free(&files);
    if (st) {
        for (int i = 0; i < k; i++) lw_loss_log_free(&r[i].log);
        free(r);
        return st;
    }
    *runs = r, *n_runs = k;
    return LW_OK;
}

/* Long runs are averaged into buckets so a plot stays small; the means also
 * smooth the per-step noise. Writes m <= MAX_PLOT_POINTS points. */
static int bucket(const lw_loss_log *l, double *x, double *y)
{
    int per = (l->n + MAX_PLOT_POINTS - 1) / MAX_PLOT_POINTS, m = 0;
    for (int i = 0; i < l->n; i += per) {
        double sx = 0, sy = 0;
        int c = 0, cy = 0;
        for (int j = i; j < i + per && j < l->n; j++, c++) {
            sx += l->step[j];
            if (isfinite(l->loss[j])) sy += l->loss[j], cy++;
        }
        x[m] = sx / c, y[m++] = cy ? sy / cy : NAN;
    }
    return m;
}

static lw_status loss_plot(const char *dir, const loss_run *r, int nr, const char *task)
{
    int ns = 0;
    lw_svg_series *s = calloc((size_t)nr, sizeof *s);
    double *pts = malloc((size_t)nr * 2 * MAX_PLOT_POINTS * sizeof *pts);
    lw_status st = s && pts ? LW_OK : lw_fail(LW_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < nr; i++) {
        if (strcmp(r[i].task, task)) continue;
        double *x = pts + (size_t)ns * 2 * MAX_PLOT_POINTS, *y = x + MAX_PLOT_POINTS;
        s[ns] = (lw_svg_series){.label = r[i].label, .x = x, .y = y, .n = bucket(&r[i].log, x, y)};
        ns++;
    }
    char title[300];
    snprintf(title, sizeof title, "%s: training loss", task);
    lw_svg_plot p = {.title = title, .x_label = "step", .y_label = "training loss"};
    if (!st) st = write_plot(dir, "loss_", task, &p, s, ns);
    if (st == LW_ERR_INVALID) {   /* every loss non-finite: nothing to draw is not fatal */
        fprintf(stderr, "lw report: warning: %s\n", lw_last_error());
        st = LW_OK;
    }
    free(s);
    free(pts);
    return st;
}

static lw_status loss_plots(const char *dir, const char *root, const lw_report_group *g, int n, int *n_plots)
{
    loss_run *r;
    int nr;
    *n_plots = 0;
    lw_status st = load_logs(root, g, n, &r, &nr);
    for (int i = 0; !st && i < nr; i++) {
        bool done = false;
        for (int k = 0; k < i && !done; k++) done = !strcmp(r[k].task, r[i].task);
        if (!done && !(st = loss_plot(dir, r, nr, r[i].task))) (*n_plots)++;
    }
    for (int i = 0; i < nr; i++) lw_loss_log_free(&r[i].log);
    free(r);
    return st;
}

/* ---- the command ---- */

static lw_status write_tables(const report_args *a, const lw_report_group *g, int ng)
{
    lw_strbuf md = {0}, csv = {0}, plain = {0};
    lw_report_markdown(g, ng, a->split, &md);
    lw_report_csv(g, ng, &csv);
    lw_report_overview(g, ng, false, &plain);
    lw_status st = write_out(a->out, "results.md", &md);
    if (!st) st = write_out(a->out, "results.csv", &csv);
    if (!st && plain.failed) st = lw_fail(LW_ERR_NOMEM, "out of memory");
    if (!st) fwrite(plain.data, 1, plain.len, stdout);
    lw_sb_free(&md);
    lw_sb_free(&csv);
    lw_sb_free(&plain);
    return st;
}

static lw_status report(const report_args *a)
{
    result_set rs;
    lw_report_group *g = NULL;
    int ng = 0, n_loss = 0;
    lw_status st = load_results(a, &rs);
    if (st) return st;
    if (!(st = lw_report_aggregate(rs.r, rs.n, &g, &ng)) && !(st = lw_mkdir_p(a->out)) &&
        !(st = write_tables(a, g, ng)) && !(st = m_plots(a->out, a->split, g, ng)) && a->logs)
        st = loss_plots(a->out, a->logs, g, ng, &n_loss);
    if (!st)
        fprintf(stderr, "lw report: %d results in %d groups; wrote %s/results.md, results.csv and plots%s\n", rs.n, ng,
                a->out, a->logs ? "" : " (no --logs: no loss curves)");
    free(g);
    results_free(&rs);
    return st;
}

int lw_cmd_report(const lw_pair *pair, int argc, char **argv)
{
    (void)pair;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(); return 0; }
    report_args a;
    if (!parse(argc, argv, &a)) return 2;
    if (report(&a)) {
        fprintf(stderr, "lw report: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}
