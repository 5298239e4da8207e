/* Helpers shared by the Check suites: where the tree, the built tools, the
 * models and the shared data are, and running a command to capture output. */
#ifndef LW_TESTLIB_H
#define LW_TESTLIB_H

#include <check.h>
#include <stddef.h>

#include "pair.h"

/* Paths built from the environment `make check` exports (LWC_SRCDIR, LWC_OUT,
 * LWC_MODELS, LWC_SHARED). The result is a static buffer per call slot:
 * copy it if you need it past the next call with the same slot. */
const char *tl_src(const char *rel);      /* $LWC_SRCDIR/rel */
const char *tl_out(const char *rel);      /* $LWC_OUT/rel */
const char *tl_model(const char *rel);    /* $LWC_MODELS/rel */
const char *tl_shared(const char *rel);   /* $LWC_SHARED/rel */

/* A fresh empty directory under $LWC_OUT/tmp for this test. */
const char *tl_tmpdir(const char *name);

/* Fails the test with a clear message if the file is missing (models are
 * fetched by scripts/fetch-models.sh; a missing model is a failure, not a skip). */
void tl_require_file(const char *path);

/* Runs a shell command; stores combined stdout+stderr (malloc'd, NUL-ended)
 * in *output if non-NULL; returns the exit status (or -1). */
int tl_run(char **output, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file (malloc'd, NUL-ended); NULL if unreadable. */
char *tl_read_file(const char *path, size_t *len);

/* Writes a file or fails the test. */
void tl_write_file(const char *path, const char *text);

/* Runs an `lw` subcommand (lw_cli.h: lw_cmd_bench, ...) in this process
 * with stderr captured: *err gets what it printed (free it); returns its
 * exit status. */
int tl_run_command(int (*cmd)(const lw_pair *, int, char **), const lw_pair *pair, char **err, int argc,
                   char **argv);

/* Fails unless every |got[i] - want[i]| <= rel * max |want| (and that
 * scale is not 0): two runs of one computation by different paths. */
void tl_assert_close_to_scale(const float *got, const float *want, size_t n, double rel, const char *what);

/* Reads out_dir/train_log.jsonl (train.h): the first max_rows steps' "loss"
 * and "grad_norm" into loss[] and grad_norm[] (either may be NULL); fails
 * the test on a line that is not such a JSON object. Returns the row count. */
int tl_read_train_log(const char *out_dir, int max_rows, double *loss, double *grad_norm);

/* Runs a suite with CK_NORMAL output; returns the process exit code. */
int tl_run_suite(Suite *s);

#endif
