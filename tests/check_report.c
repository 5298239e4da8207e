/* lw report: aggregation over seeds, the Markdown and CSV tables, the SVG
 * plots (well-formed, one polyline per series, escaped text), training-log
 * reading and the errors on bad input. Inputs are synthetic files written
 * here, so every expected number is worked out by hand below. */
#include "testlib.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "report.h"
#include "svg_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a minimal XML well-formedness check ---- */

static bool entity_ok(const char *s)
{
    static const char *const names[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (!strncmp(s, names[i], strlen(names[i]))) return true;
    return false;
}

/* Balanced tags, quoted attributes, no stray < or & in text or values.
 * Returns NULL if fine, else what is wrong. */
static const char *xml_check(const char *s)
{
    static char why[200];
    char stack[64][32];
    int depth = 0, roots = 0;
    if (!strncmp(s, "<?xml", 5)) {
        s = strstr(s, "?>");
        if (!s) return "unterminated <?xml";
        s += 2;
    }
    while (*s) {
        if (*s == '&' && !entity_ok(s)) return "raw & in text";
        if (*s == '>') return "raw > in text";
        if (*s != '<') { s++; continue; }
        bool closing = s[1] == '/';
        s += closing ? 2 : 1;
        size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_");
        if (!n || n >= 32) return "bad tag name";
        char tag[32];
        memcpy(tag, s, n), tag[n] = 0;
        s += n;
        for (;;) {   /* attributes */
            s += strspn(s, " \t\r\n");
            if (*s == '>' || (*s == '/' && s[1] == '>')) break;
            size_t a = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_");
            if (closing || !a || s[a] != '=' || s[a + 1] != '"') return "bad attribute";
            s += a + 2;
            for (; *s != '"'; s++) {
                if (!*s || *s == '<') return "bad attribute value";
                if (*s == '&' && !entity_ok(s)) return "raw & in attribute";
            }
            s++;
        }
        bool self = *s == '/';
        s += self ? 2 : 1;
        if (closing) {
            if (!depth || strcmp(stack[depth - 1], tag)) {
                snprintf(why, sizeof why, "</%s> closes <%s>", tag, depth ? stack[depth - 1] : "nothing");
                return why;
            }
            depth--;
        } else if (!self) {
            if (depth == 64) return "too deep";
            if (!depth) roots++;
            strcpy(stack[depth++], tag);
        } else if (!depth) {
            roots++;
        }
    }
    if (depth) return "unclosed tag";
    return roots == 1 ? NULL : "not exactly one root element";
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

/* ---- fixtures ---- */

static void put(const char *dir, const char *rel, const char *text)
{
    char path[4096], sub[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(sub, sizeof sub, "%s", path);
    *strrchr(sub, '/') = 0;
    ck_assert_int_eq(lw_mkdir_p(sub), LW_OK);
    tl_write_file(path, text);
}

/* One result file; M < 0 leaves "soft_tokens" out, seed < 0 leaves "seed" out. */
static void put_result(const char *dir, const char *rel, const char *method, const char *task, int M, int seed,
                       double acc, double lo, double hi, const char *split)
{
    char text[2048], extra[128] = "";
    if (M >= 0) snprintf(extra, sizeof extra, "\"soft_tokens\": %d, ", M);
    if (seed >= 0) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "\"seed\": %d, ", seed);
    snprintf(text, sizeof text,
             "{\"task\": \"%s\", \"split\": \"/data/%s/%s.jsonl\", \"method\": \"%s\", \"pair\": \"p\", %s"
             "\"n\": 200, \"accuracy\": %.4f, \"accuracy_ci95\": [%.4f, %.4f], \"macro_f1\": %.4f,\n"
             "\"macro_f1_ci95\": [%.4f, %.4f], \"per_class\": [], \"confusion\": [[1]], \"seconds\": 1.5}\n",
             task, task, split, method, extra, acc, lo, hi, acc - 0.05, lo - 0.05, hi - 0.05);
    put(dir, rel, text);
}

/* Bridge accuracies by task, M index and seed. */
static const char *const TASKS[2] = {"agnews", "sst2"};
static const int MS[3] = {4, 8, 16};
static const double ACC[2][3][3] = {
    {{0.50, 0.55, 0.60}, {0.60, 0.62, 0.64}, {0.70, 0.70, 0.73}},
    {{0.61, 0.62, 0.64}, {0.70, 0.72, 0.74}, {0.80, 0.80, 0.83}},
};

static void make_results(const char *dir)
{
    char rel[256];
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < 3; m++)
            for (int s = 0; s < 3; s++) {
                snprintf(rel, sizeof rel, "%s/M%d/seed%d/eval.json", TASKS[t], MS[m], s + 1);
                double a = ACC[t][m][s];
                put_result(dir, rel, "bridge", TASKS[t], MS[m], s + 1, a, a - 0.03, a + 0.03, "dev");
            }
    put_result(dir, "sst2/probe.json", "linear-probe", "sst2", -1, -1, 0.75, 0.70, 0.80, "dev");
    put_result(dir, "agnews/probe1.json", "linear-probe", "agnews", -1, 1, 0.64, 0.60, 0.68, "dev");
    put_result(dir, "agnews/probe2.json", "linear-probe", "agnews", -1, 2, 0.66, 0.62, 0.70, "dev");
    /* left out: another split, and a JSON file that is no eval result */
    put_result(dir, "sst2/test.json", "linear-probe", "sst2", -1, -1, 0.10, 0.05, 0.15, "test");
    put(dir, "notes/config.json", "{\"lr\": 0.001}\n");
}

static void make_logs(const char *dir)
{
    const char *runs[3] = {"sst2/seed1", "sst2/seed2", "agnews/seed1"};
    for (int r = 0; r < 3; r++) {
        char text[4096] = "", rel[256];
        for (int s = 1; s <= 50; s++)
            snprintf(text + strlen(text), sizeof text - strlen(text), "{\"step\": %d, \"loss\": %.4f, \"lr\": 1e-3}\n",
                     s, 2.0 / (s + r));
        snprintf(rel, sizeof rel, "%s/train_log.jsonl", runs[r]);
        put(dir, rel, text);
    }
}

static char *read_out(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = tl_read_file(path, NULL);
    ck_assert_msg(text != NULL, "%s was not written", path);
    return text;
}

static int run_report(const char *results, const char *logs, const char *out)
{
    char r[4096], l[4096], o[4096];
    snprintf(r, sizeof r, "%s", results);
    snprintf(l, sizeof l, "%s", logs ? logs : "");
    snprintf(o, sizeof o, "%s", out);
    char *argv[] = {"--results", r, "--out", o, "--logs", l};
    return lw_cmd_report(NULL, logs ? 6 : 4, argv);
}

/* ---- tests ---- */

START_TEST(aggregates_seeds_into_csv)
{
    char dir[1024], out[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_csv"));
    snprintf(out, sizeof out, "%s/out", dir);
    make_results(dir);
    ck_assert_int_eq(run_report(dir, NULL, out), 0);
    char *csv = read_out(out, "results.csv");
    /* 9 rows: bridge x 2 tasks x 3 M, linear-probe x 2 tasks, sorted */
    ck_assert_int_eq(count(csv, "\n"), 1 + 8);
    ck_assert(!strncmp(csv, "method,task,soft_tokens,n_seeds,acc_mean,acc_std,acc_ci_lo,acc_ci_hi,f1_mean,f1_std,"
                            "n_examples,acc_per_run\nbridge,agnews,4,", 117));
    /* 0.61 0.62 0.64: mean 0.623333, std sqrt(0.000466667 / 2) = 0.015275; interval mean +- std */
    ck_assert_msg(strstr(csv, "\nbridge,sst2,4,3,0.623333,0.015275,0.608058,0.638609,0.573333,0.015275,200,"
                                "1:0.610000;2:0.620000;3:0.640000\n"), "%s",
                  csv);
    ck_assert(strstr(csv, "\nbridge,sst2,8,3,0.720000,0.020000,0.700000,0.740000,0.670000,0.020000,200,"
                            "1:0.700000;2:0.720000;3:0.740000\n"));
    /* 0.50 0.55 0.60: mean 0.55, std 0.05 */
    ck_assert(strstr(csv, "\nbridge,agnews,4,3,0.550000,0.050000,0.500000,0.600000,0.500000,0.050000,200,"
                            "1:0.500000;2:0.550000;3:0.600000\n"));
    /* M sorts numerically: 4, 8, 16 */
    ck_assert(strstr(csv, "bridge,sst2,8,") < strstr(csv, "bridge,sst2,16,"));
    /* one run: no std, the run's own bootstrap CI; the test split stays out */
    ck_assert(strstr(csv, "\nlinear-probe,sst2,,1,0.750000,,0.700000,0.800000,0.700000,,200,:0.750000\n"));
    /* two runs without M: 0.64 0.66, std sqrt(0.0002) = 0.014142 */
    ck_assert(strstr(csv, "\nlinear-probe,agnews,,2,0.650000,0.014142,0.635858,0.664142,0.600000,0.014142,200,"
                            "1:0.640000;2:0.660000\n"));
    free(csv);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

START_TEST(markdown_has_the_table_cells)
{
    char dir[1024], out[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_md"));
    snprintf(out, sizeof out, "%s/out", dir);
    make_results(dir);
    ck_assert_int_eq(run_report(dir, NULL, out), 0);
    char *md = read_out(out, "results.md");
    ck_assert(strstr(md, "| method | agnews | sst2 |\n|---|---|---|\n"));
    ck_assert_msg(strstr(md, "| bridge (M=8) | 62.0 ± 2.0 (3 seeds) | 72.0 ± 2.0 (3 seeds) |\n"), "%s", md);
    ck_assert(strstr(md, "| linear-probe | 65.0 ± 1.4 (2 seeds) | 75.0 (1 seed) |\n"));
    /* macro-F1 table: f1 = accuracy - 0.05 */
    ck_assert(strstr(md, "| bridge (M=8) | 57.0 ± 2.0 (3 seeds) | 67.0 ± 2.0 (3 seeds) |\n"));
    /* per-task table with intervals */
    ck_assert(strstr(md, "\n## sst2\n"));
    ck_assert(strstr(md, "| linear-probe | – | 1 | 75.0 | [70.0, 80.0] 95% CI | 70.0 | [65.0, 75.0] 95% CI | 200 "
                         "| 75.0 (–) |\n"));
    ck_assert(strstr(md, "| bridge | 8 | 3 | 72.0 | [70.0, 74.0] ± std | 67.0 | [65.0, 69.0] ± std | 200 "
                         "| 70.0 (1), 72.0 (2), 74.0 (3) |\n"));
    free(md);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

/* A group's runs are listed by seed (negative ones too), not by file name;
 * a seedless run comes first; past LW_REPORT_LISTED_RUNS the list ends in "…" while the mean
 * still covers every run. */
START_TEST(runs_are_listed_in_seed_order)
{
    char dir[1024], out[4096], rel[256];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_seeds"));
    snprintf(out, sizeof out, "%s/out", dir);
    put_result(dir, "a.json", "lora", "trec", -1, 10, 0.90, 0.85, 0.95, "dev");
    put_result(dir, "b.json", "lora", "trec", -1, 2, 0.80, 0.75, 0.85, "dev");
    put_result(dir, "c.json", "lora", "trec", -1, -1, 0.70, 0.65, 0.75, "dev");
    put(dir, "d.json", "{\"task\": \"trec\", \"split\": \"/data/trec/dev.jsonl\", \"method\": \"lora\", \"seed\": -3, "
                       "\"n\": 200, \"accuracy\": 0.6, \"accuracy_ci95\": [0.5, 0.7], \"macro_f1\": 0.6, "
                       "\"macro_f1_ci95\": [0.5, 0.7]}\n");
    for (int s = 1; s <= LW_REPORT_LISTED_RUNS + 1; s++) {
        snprintf(rel, sizeof rel, "many/%02d.json", s);
        put_result(dir, rel, "bridge", "trec", 8, s, s == 1 ? 0.5 : 0.1, 0.05, 0.9, "dev");
    }
    ck_assert_int_eq(run_report(dir, NULL, out), 0);
    char *md = read_out(out, "results.md");
    ck_assert_msg(strstr(md, "| 70.0 (–), 60.0 (-3), 80.0 (2), 90.0 (10) |\n"), "%s", md);
    ck_assert_msg(strstr(md, "| 17 | 12.4 | ") && strstr(md, "| 50.0 (1), 10.0 (2), ") && strstr(md, "10.0 (16), … |\n"),
                  "%s", md);
    char *csv = read_out(out, "results.csv");
    ck_assert_msg(strstr(csv, ",200,:0.700000;-3:0.600000;2:0.800000;10:0.900000\n"), "%s", csv);
    free(md);
    free(csv);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

START_TEST(plots_are_wellformed_with_one_polyline_per_series)
{
    char dir[1024], logs[4096], out[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_svg"));
    snprintf(logs, sizeof logs, "%s/logs", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    make_results(dir);
    make_logs(logs);
    ck_assert_int_eq(run_report(dir, logs, out), 0);
    const char *names[4] = {"accuracy_vs_M_sst2.svg", "accuracy_vs_M_agnews.svg", "loss_sst2.svg", "loss_agnews.svg"};
    const int series[4] = {2, 2, 2, 1};   /* bridge + linear-probe line; one curve per run */
    for (int i = 0; i < 4; i++) {
        char *svg = read_out(out, names[i]);
        const char *why = xml_check(svg);
        ck_assert_msg(!why, "%s: %s", names[i], why);
        ck_assert(strstr(svg, "viewBox=\"0 0 "));
        ck_assert_int_eq(count(svg, "<polyline"), series[i]);
        free(svg);
    }
    char *m = read_out(out, "accuracy_vs_M_sst2.svg");
    ck_assert_int_eq(count(m, "stroke-dasharray=\"8 5\""), 1);   /* linear-probe: dashed, across */
    ck_assert(strstr(m, ">linear-probe (no M)</text>") && strstr(m, ">soft tokens M</text>"));
    ck_assert(strstr(m, ">16</text>"));   /* an x tick at each M */
    free(m);
    char *l = read_out(out, "loss_sst2.svg");
    ck_assert(strstr(l, ">sst2/seed1</text>") && strstr(l, ">sst2/seed2</text>"));
    free(l);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

START_TEST(labels_are_escaped)
{
    char dir[1024], out[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_escape"));
    snprintf(out, sizeof out, "%s/out", dir);
    put_result(dir, "a.json", "x<&>\\\"y", "t|1", 4, 1, 0.5, 0.4, 0.6, "dev");
    put_result(dir, "b.json", "x<&>\\\"y", "t|1", 8, 1, 0.6, 0.5, 0.7, "dev");
    ck_assert_int_eq(run_report(dir, NULL, out), 0);
    char *svg = read_out(out, "accuracy_vs_M_t_1.svg");
    ck_assert_msg(!xml_check(svg), "%s", xml_check(svg));
    ck_assert(strstr(svg, ">x&lt;&amp;&gt;&quot;y</text>"));
    ck_assert(!strstr(svg, "<&>"));
    free(svg);
    char *md = read_out(out, "results.md");
    ck_assert_msg(strstr(md, "| x\\<&\\>\"y (M=4) |"), "%s", md);
    ck_assert(strstr(md, "| method | t\\|1 |"));
    free(md);
    char *csv = read_out(out, "results.csv");
    ck_assert(strstr(csv, "\n\"x<&>\"\"y\",t|1,4,1,"));
    free(csv);

    lw_strbuf sb = {0};
    lw_svg_escape(&sb, "a\x01\xff'b");   /* a control byte and invalid UTF-8 become '?' */
    lw_sb_append(&sb, "", 0);
    ck_assert_str_eq(sb.data, "a??&apos;b");
    lw_sb_free(&sb);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

START_TEST(malformed_json_names_file_and_line)
{
    char dir[1024], out[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_bad"));
    snprintf(out, sizeof out, "%s/out", dir);
    make_results(dir);
    put(dir, "sst2/broken.json", "{\"task\": \"sst2\",\n \"method\": \"bridge\",\n \"accuracy\": 0.5,,\n}\n");
    ck_assert_int_eq(run_report(dir, NULL, out), 1);
    ck_assert_msg(strstr(lw_last_error(), "sst2/broken.json:3:"), "%s", lw_last_error());
    ck_assert(!lw_file_exists(out));   /* nothing half written */

    /* well-formed JSON, but a result with a bad field */
    tl_run(NULL, "rm -f '%s/sst2/broken.json'", dir);
    put(dir, "sst2/range.json", "{\"task\": \"sst2\", \"method\": \"bridge\", \"split\": \"dev.jsonl\", \"n\": 5, "
                                "\"accuracy\": 1.5}");
    ck_assert_int_eq(run_report(dir, NULL, out), 1);
    ck_assert_msg(strstr(lw_last_error(), "range.json: \"accuracy\" is 1.5"), "%s", lw_last_error());

    /* an empty folder has nothing to report */
    char empty[4096];
    snprintf(empty, sizeof empty, "%s", tl_tmpdir("report_empty"));
    ck_assert_int_eq(run_report(empty, NULL, out), 1);
    ck_assert(strstr(lw_last_error(), "no eval results"));
    tl_run(NULL, "rm -rf '%s' '%s'", dir, empty);
}
END_TEST

START_TEST(training_log_reading)
{
    char dir[1024], path[4096];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("report_log"));
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    /* a nan loss, a resume from step 2 that rewrites 3, an unfinished last line */
    tl_write_file(path, "{\"step\": 1, \"loss\": 2.5, \"grad_norm\": -nan}\n"
                        "{\"step\": 2, \"loss\": nan}\n\n"
                        "{\"step\": 3, \"loss\": 1.5}\n"
                        "{\"step\": 3, \"loss\": 1.25, \"task\": \"sst2\"}\n"
                        "{\"step\": 4, \"loss\": 1.0}\n"
                        "{\"step\": 5, \"lo");
    lw_loss_log log;
    ck_assert_int_eq(lw_loss_log_load(path, &log), LW_OK);
    ck_assert_int_eq(log.n, 4);
    ck_assert(log.step[0] == 1 && log.step[1] == 2 && log.step[2] == 3 && log.step[3] == 4);
    ck_assert(log.loss[0] == 2.5 && isnan(log.loss[1]) && log.loss[2] == 1.25 && log.loss[3] == 1.0);
    ck_assert_str_eq(log.task, "sst2");
    lw_loss_log_free(&log);

    tl_write_file(path, "{\"step\": 1, \"loss\": 2.5}\n{\"step\": 2, loss}\n{\"step\": 3, \"loss\": 1.0}\n");
    ck_assert_int_eq(lw_loss_log_load(path, &log), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "train_log.jsonl:2:"), "%s", lw_last_error());
    tl_write_file(path, "{\"step\": 1}\n");
    ck_assert_int_eq(lw_loss_log_load(path, &log), LW_ERR_FORMAT);
    ck_assert(strstr(lw_last_error(), "train_log.jsonl:1: expected"));

    /* lw train's lines carry no task: it comes from run.json beside the log */
    char run[4200];
    snprintf(run, sizeof run, "%s/run.json", dir);
    tl_write_file(path, "{\"step\": 1, \"loss\": 2.5}\n");
    tl_write_file(run, "{\"task\": \"trec\", \"steps\": 1}\n");
    ck_assert_int_eq(lw_loss_log_load(path, &log), LW_OK);
    ck_assert_msg(log.task && !strcmp(log.task, "trec"), "task %s", log.task ? log.task : "(none)");
    lw_loss_log_free(&log);
    tl_write_file(run, "not json");
    ck_assert_int_eq(lw_loss_log_load(path, &log), LW_OK);
    ck_assert(log.task == NULL);
    lw_loss_log_free(&log);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

START_TEST(svg_plot_rejects_nothing_to_draw)
{
    double x[2] = {1, 2}, y[2] = {NAN, NAN};
    lw_svg_series s = {.label = "a", .x = x, .y = y, .n = 2};
    lw_svg_plot p = {.title = "t", .x_label = "x", .y_label = "y"};
    lw_strbuf sb = {0};
    ck_assert_int_eq(lw_svg_line_plot(&p, &s, 1, &sb), LW_ERR_INVALID);
    y[1] = 3;   /* one finite point is enough; a log2 axis refuses x <= 0 */
    ck_assert_int_eq(lw_svg_line_plot(&p, &s, 1, &sb), LW_OK);
    x[0] = 0, p.x_log2 = true;
    ck_assert_int_eq(lw_svg_line_plot(&p, &s, 1, &sb), LW_ERR_INVALID);
    lw_sb_free(&sb);
}
END_TEST

START_TEST(overview_rows_sort_by_method_then_M)
{
    /* M=8 exists only for the second task: its row still sits between 4 and 16 */
    lw_eval_result r[3] = {
        {.path = "a", .method = "bridge", .task = "agnews", .split = "dev", .M = 4, .n = 10, .acc = 0.5},
        {.path = "b", .method = "bridge", .task = "agnews", .split = "dev", .M = 16, .n = 10, .acc = 0.7},
        {.path = "c", .method = "bridge", .task = "sst2", .split = "dev", .M = 8, .n = 10, .acc = 0.6},
    };
    lw_report_group *g;
    int ng;
    ck_assert_int_eq(lw_report_aggregate(r, 3, &g, &ng), LW_OK);
    ck_assert_int_eq(ng, 3);
    lw_strbuf sb = {0};
    lw_report_overview(g, ng, false, &sb);
    lw_sb_append(&sb, "", 0);
    ck_assert_msg(strstr(sb.data, "| bridge (M=4) | 50.0 (1 seed) | – |\n| bridge (M=8) | – | 60.0 (1 seed) |\n"
                                  "| bridge (M=16) | 70.0 (1 seed) | – |\n"), "%s", sb.data);
    lw_sb_free(&sb);
    free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, aggregates_seeds_into_csv);
    tcase_add_test(tc, markdown_has_the_table_cells);
    tcase_add_test(tc, runs_are_listed_in_seed_order);
    tcase_add_test(tc, plots_are_wellformed_with_one_polyline_per_series);
    tcase_add_test(tc, labels_are_escaped);
    tcase_add_test(tc, malformed_json_names_file_and_line);
    tcase_add_test(tc, training_log_reading);
    tcase_add_test(tc, svg_plot_rejects_nothing_to_draw);
    tcase_add_test(tc, overview_rows_sort_by_method_then_M);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
