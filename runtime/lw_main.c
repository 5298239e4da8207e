#include <stdio.h>
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
};

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
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(pair, argc - 2, argv + 2);
    fprintf(stderr, "lw: unknown command '%s'\n\n", argv[1]);
    usage(pair, stderr);
    return 2;
}
