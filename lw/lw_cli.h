/* The subcommands of a pair's lw binary; lw_main (lw_main.c) dispatches to
 * these. Each prints its own --help and returns a process exit code. */
#ifndef LW_CLI_H
#define LW_CLI_H

#include "pair.h"
#include "task.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(const lw_pair *pair, int argc, char **argv);
} lw_command;

int lw_cmd_info(const lw_pair *pair, int argc, char **argv);
int lw_cmd_generate(const lw_pair *pair, int argc, char **argv);
int lw_cmd_hidden(const lw_pair *pair, int argc, char **argv);

/* The load options (model_config.h) of this process, from the environment:
 * LWC_RANDOM_WEIGHTS=<seed> (set and non-empty: random weights and a byte
 * tokenizer, random_weights.h; a value that is not a decimal integer is an
 * error) and LWC_IGNORE_STOP=1 (no stop tokens; random weights imply it).
 * The one place that reads them: lw_main sets the result on the pair's
 * model configs before it runs a command. */
lw_status lw_load_options_from_env(lw_load_options *out);

/* True if argv holds -h or --help. */
int lw_wants_help(int argc, char **argv);

/* lw train / lw eval: cmd_train.c, cmd_eval.c */
int lw_cmd_train(const lw_pair *pair, int argc, char **argv);
int lw_cmd_eval(const lw_pair *pair, int argc, char **argv);

/* The interlingua on a generate task (cmd_interlingua.c): true, with task
 * loaded, when the pair has an "interlingua" block and --task names a
 * generate task; lw train and lw eval --method interlingua then run these. */
bool lw_interlingua_task(const lw_pair *pair, int argc, char **argv, lw_task *task);
int lw_cmd_train_interlingua(const lw_pair *pair, const lw_task *task, int argc, char **argv);
int lw_cmd_eval_interlingua(const lw_pair *pair, const lw_task *task, int argc, char **argv);
/* The pair's bridge on a generate task (cmd_bridge_answer.c): true, with
 * task loaded, when the pair has no "interlingua" block and --task names a
 * generate task; lw train and lw eval --method bridge then run these. */
bool lw_bridge_answer_task(const lw_pair *pair, int argc, char **argv, lw_task *task);
int lw_cmd_train_bridge_answer(const lw_pair *pair, const lw_task *task, int argc, char **argv);
int lw_cmd_eval_bridge_answer(const lw_pair *pair, const lw_task *task, int argc, char **argv);

/* lw report: cmd_report.c (pair unused: it reads result files only) */
int lw_cmd_report(const lw_pair *pair, int argc, char **argv);

/* lw bench: cmd_bench.c (equal-work latency and throughput, bench.h) */
int lw_cmd_bench(const lw_pair *pair, int argc, char **argv);
/* lw bench --method bridge-wire: bench_wire.c (the wire between two processes) */
int lw_bench_wire(const lw_pair *pair, int argc, char **argv);

/* lw send / lw receive: cmd_send.c, cmd_receive.c (the soft-token wire, docs/wire.md) */
int lw_cmd_send(const lw_pair *pair, int argc, char **argv);
int lw_cmd_receive(const lw_pair *pair, int argc, char **argv);
/* lw serve: cmd_serve.c (HTTP on libmicrohttpd; without it, an error) */
int lw_cmd_serve(const lw_pair *pair, int argc, char **argv);

#endif
