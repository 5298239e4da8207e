/* The numbers behind `lw report`: eval results (the JSON `lw eval --json`
 * writes), grouped by (method, task, M) and aggregated over seeds, and the
 * tables made from them (Markdown and CSV).
 *
 * Aggregation: mean and sample standard deviation (n - 1) over the runs of a
 * group. The interval shown is the run's own 95% bootstrap CI when a group
 * has one run, else mean +- std (the spread across seeds is what matters
 * then, and bootstrap CIs of single runs understate it). */
#ifndef LW_REPORT_H
#define LW_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "fileutil.h"
#include "status.h"

typedef struct {
    char *path, *method, *task, *split;
    int M;               /* soft tokens; -1 when the result has none (e.g. linear-probe) */
    long seed;
    bool has_seed;
    long n;              /* examples evaluated */
    double acc, acc_lo, acc_hi, f1, f1_lo, f1_hi;
} lw_eval_result;

/* Loads one result file. A JSON file that is not an eval result (not an
 * object, or without "task", "method" and "accuracy") sets *is_result false
 * and returns LW_OK; malformed JSON or a bad field is an error naming the
 * file (and line). */
lw_status lw_eval_result_load(const char *path, lw_eval_result *r, bool *is_result);
void lw_eval_result_free(lw_eval_result *r);

/* The split's short name: "dev" for ".../dev.jsonl". Written into out. */
void lw_split_name(const char *split, char *out, size_t cap);

/* A group lists at most this many runs one by one (in seed order); the
 * aggregates cover all of them. */
#define LW_REPORT_LISTED_RUNS 16

typedef struct {
    const char *method, *task;   /* borrowed from the results */
    int M;                       /* -1: none */
    int n_runs;
    long seed[LW_REPORT_LISTED_RUNS];       /* read where has_seed */
    bool has_seed[LW_REPORT_LISTED_RUNS];
    double acc[LW_REPORT_LISTED_RUNS];      /* each listed run's accuracy */
    long n_examples;             /* of the first run (a warning says if runs differ) */
    double acc_mean, acc_std, acc_lo, acc_hi;   /* std is NAN for one run */
    double f1_mean, f1_std, f1_lo, f1_hi;
} lw_report_group;

/* Groups r by (method, task, M), sorted by method, task then M (none
 * first); within a group the runs go by seed (seedless first), then path. Warns on stderr about repeated seeds and differing example counts
 * within a group. *groups is malloc'd. */
lw_status lw_report_aggregate(const lw_eval_result *r, int n, lw_report_group **groups, int *n_groups);

/* "mean ± std (n seeds)" in percent, or "mean (1 seed)". */
void lw_report_cell(char *out, size_t cap, double mean, double std, int n_runs);

/* The methods x tasks overview (accuracy, then macro-F1). md escapes
 * Markdown specials in names (for the file), plain leaves them (stdout). */
void lw_report_overview(const lw_report_group *g, int n, bool md, lw_strbuf *out);

/* The whole results.md: overview plus one table per task with intervals
 * and each run's accuracy. */
void lw_report_markdown(const lw_report_group *g, int n, const char *split, lw_strbuf *out);

/* results.csv: a header and one row per group; its last field lists the
 * (listed) runs as "seed:accuracy" joined by ";", seed empty for none. */
void lw_report_csv(const lw_report_group *g, int n, lw_strbuf *out);

/* A training log (train_log.jsonl, one {"step", "loss", ...} per line).
 * Non-finite numbers written as nan/inf read as NAN. A step not after the
 * previous one (a run resumed from an earlier checkpoint appends to the same
 * log) drops the points it replaces. An unterminated last line (a run killed
 * mid-write) is ignored with a warning; any other malformed line is an error
 * naming the file and line. */
typedef struct {
    char *path;
    char *task;          /* the lines' "task" field, or NULL */
    double *step, *loss;
    int n;
} lw_loss_log;

lw_status lw_loss_log_load(const char *path, lw_loss_log *log);
void lw_loss_log_free(lw_loss_log *log);

#endif
