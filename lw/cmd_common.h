/* What `lw train` and `lw eval` both open: option parsing helpers, where
 * the task files and the sender-state cache live, and the bridge side of a
 * pair (receiver model, its tokenizer, the prompt layout, the bridge).
 *
 * Task files: --tasks-dir, else <manifest dir>/../tasks (the source tree's
 * tasks/ folder, since manifests live in pairs/), file <dir>/<task>.json.
 * Sender-state cache: --cache-dir, else $LWC_CACHE_DIR, else .lwc-cache/ in
 * the folder of the lw binary (build/<pair>/.lwc-cache). */
#ifndef LW_CMD_COMMON_H
#define LW_CMD_COMMON_H

#include <stdbool.h>

#include <jansson.h>

#include "bridge.h"
#include "manifest.h"
#include "model.h"
#include "pair.h"
#include "receiver_input.h"
#include "status.h"
#include "task.h"
#include "thread_pool.h"
#include "tokenizer.h"

/* argv[*i] is `name`: takes the next argument into *value (advancing *i);
 * returns false (message printed) if it is missing. */
bool lw_opt_str(int argc, char **argv, int *i, const char **value);
bool lw_opt_int(int argc, char **argv, int *i, long lo, long hi, int *value);
bool lw_opt_float(int argc, char **argv, int *i, float *value);
/* A training option by its rule (train_rules.h: the manifest's train.<key>
 * range, refused with the validator's words). */
bool lw_opt_train_rule(int argc, char **argv, int *i, const char *key, double *value);
/* --subset first|stratified: how --limit/--limit-train pick examples (dataset.h). */
bool lw_opt_subset(int argc, char **argv, int *i, bool *stratified);

/* --dtype fp32|bf16: how the frozen sender and receiver hold their big
 * matrices on the CPU (narrow_weights.h). Parses value into *out; anything
 * else is refused (message naming the flag and the choices, false). */
bool lw_opt_dtype(const char *cmd, const char *value, lw_weights_dtype *out);
/* The pair a command runs with: pair with both models' load.dtype set to
 * d (the host models; a GPU run converts its own copy and keeps fp32 here). */
void lw_pair_with_dtype(lw_pair *run, const lw_pair *pair, lw_weights_dtype d);

/* --threads N: the threads of this run's CPU work (1..LW_THREADS_MAX).
 * lw_threads_apply sizes the process's pool (cpu_threads.h) to `given` when
 * > 0 (the option), else to $LWC_THREADS when set, else 1, and pins
 * OpenBLAS to one thread of its own; a bad LWC_THREADS is refused (message
 * naming it, false). Results are bit-identical for any count (docs/perf.md,
 * "Threads"); the default is 1 because the usual way to fill the cores is
 * several runs (seeds, tasks) side by side, one thread each. */
#define LW_THREADS_HELP                                                                                     \
    "  --threads N          CPU threads of this run (default $LWC_THREADS, else 1); any N gives\n"           \
    "                       bit-identical results\n"
bool lw_threads_apply(const char *cmd, int given);

lw_status lw_task_file(const lw_manifest *m, const char *tasks_dir, const char *task, char *out, size_t cap);
/* A look ahead of a command's own parsing: the task named by --task (and
 * --tasks-dir) in argv, loaded into *task. False, with nothing held, when
 * none is named or its file does not load (the command's own path then
 * reports it). */
bool lw_named_task_peek(const lw_pair *pair, int argc, char **argv, lw_task *task);
lw_status lw_cache_dir(const char *given, char *out, size_t cap);

typedef struct {
    lw_model *receiver;
    lw_tokenizer *tok;
    lw_receiver_layout layout;
    lw_bridge bridge;
    bool bridge_made;
} lw_bridge_side;

/* Loads the receiver and builds the layout for M soft tokens and a bridge
 * (zeroed; init or load it) of the manifest's kind and size. */
lw_status lw_bridge_side_open(lw_bridge_side *b, const lw_manifest *m, const lw_task *task, int M);
void lw_bridge_side_close(lw_bridge_side *b);

/* Seed and M from the run.json lw train wrote into a checkpoint folder
 * (<run>/best or <run>/best/bridge.safetensors -> <run>/best/run.json), or
 * else beside it (-> <run>/run.json: older runs, other commands), where
 * *has_seed / *has_M say the command line did not give them (they are set
 * when taken). No file is fine; a bad one is not. */
lw_status lw_run_json_read(const char *checkpoint, int *seed, bool *has_seed, int *M, bool *has_M);

/* Writes o as indented JSON to path, atomically (a reader sees the old file
 * or the whole new one); takes o (decref'd here, also on failure). */
lw_status lw_json_write_atomic(const char *path, json_t *o);

#endif
