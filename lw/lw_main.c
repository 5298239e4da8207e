/* The lw command line: the one place that decides how the pair's models
 * are loaded (lw_load_options_from_env), then a command by its name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lw_cli.h"

static const lw_command COMMANDS[] = {
    {"info", "what this binary was built for: models, bridge, kernels, devices", lw_cmd_info},
    {"generate", "run the sender or the receiver on a prompt (CPU)", lw_cmd_generate},
    {"hidden", "print a model's hidden states at a layer", lw_cmd_hidden},
    {"train", "train the bridge on a task", lw_cmd_train},
    {"eval", "evaluate a method on a split", lw_cmd_eval},
    {"report", "tables and plots of eval results and training logs", lw_cmd_report},
    {"bench", "latency and throughput benchmarks", lw_cmd_bench},
    {"send", "sender + bridge: texts in, soft-token messages out (docs/wire.md)", lw_cmd_send},
    {"receive", "receiver: soft-token messages in, label scores out", lw_cmd_receive},
    {"serve", "HTTP server of the wire: sender, receiver or both (docs/wire.md)", lw_cmd_serve},
};

lw_status lw_load_options_from_env(lw_load_options *out)
{
    memset(out, 0, sizeof *out);
    const char *stop = getenv("LWC_IGNORE_STOP");
    out->ignore_stop = stop && !strcmp(stop, "1");
    const char *v = getenv("LWC_RANDOM_WEIGHTS");
    if (!v || !*v) return LW_OK;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || v[0] == '+')
        return lw_fail(LW_ERR_INVALID, "LWC_RANDOM_WEIGHTS='%.32s': expected a seed (a decimal integer)", v);
    out->random_weights = true;
    out->seed = (uint64_t)x;
    out->ignore_stop = true;
    return LW_OK;
}

int lw_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

static void usage(const lw_pair *pair, FILE *out)
{
    fprintf(out, "usage: lw <command> [options]   (pair %s)\n\ncommands:\n", pair->manifest.name);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nRun `lw <command> --help` for one command.\n");
}

int lw_main(const lw_pair *pair, int argc, char **argv)
{
    if (argc < 2) { usage(pair, stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(pair, stdout);
        return 0;
    }
    /* every command loads the manifest's models: they must lower to the baked plans */
    if (lw_pair_check_plans(pair)) {
        fprintf(stderr, "lw: %s\n", lw_last_error());
        return 1;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        /* the commands get the pair with its load options set: below them
         * nothing reads the environment for these */
        lw_pair run = *pair;
        lw_load_options load;
        if (lw_load_options_from_env(&load) && !lw_wants_help(argc - 2, argv + 2)) {
            fprintf(stderr, "lw: %s\n", lw_last_error());
            return 1;
        }
        run.manifest.sender.load = run.manifest.receiver.load = load;
        return COMMANDS[i].run(&run, argc - 2, argv + 2);
    }
    fprintf(stderr, "lw: unknown command '%s'\n\n", argv[1]);
    usage(pair, stderr);
    return 2;
}
