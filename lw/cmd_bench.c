/* lw bench: equal-work latency and throughput of the bridge and the text
 * baselines, from the raw text to the labels' scores (bench.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "bench_gpu.h"
#include "checkpoint.h"
#include "cmd_common.h"
#include "dataset.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "random_weights.h"

enum { MAX_BATCHES = 8 };

static void usage(const lw_pair *pair)
{
    printf("usage: lw bench --task NAME --split FILE [options]\n\n"
           "Times each method from the raw text to the labels' scores (the same end point for\n"
           "all; the sender runs for every example, nothing is cached): latency at batch 1 and\n"
           "throughput at each batch size, median [min, max] over the timed runs, a per-stage\n"
           "breakdown, and the bytes each method moves between the models.\n\n"
           "  --task NAME          task file <tasks dir>/NAME.json\n"
           "  --split FILE         JSONL file whose texts are used (in file order, cycling)\n"
           "  --checkpoint DIR     the bridge's checkpoint folder or bridge.safetensors; without it a\n"
           "                       freshly initialised bridge is timed (the same work)\n"
           "  --methods LIST       comma-separated, of bridge,text-relay,receiver-zeroshot,\n"
           "                       sender-zeroshot (default: all four)\n"
           "  --method bridge-wire the wire between two processes (lw bench --method bridge-wire --help)\n"
           "  --batch LIST         batch sizes, comma-separated (default 1,4,16); a batch of B is B\n"
           "                       examples back to back\n"
           "  --runs N             timed runs per method and batch (default 20)\n"
           "  --warmup N           untimed runs first (default 3)\n"
           "  --relay-tokens N     most tokens the relay's sender writes (default 32)\n"
           "  --soft-tokens M      the bridge's M, if not the built %d\n"
           "  --limit N            read the first N examples of --split only\n"
           "  --json FILE          also write the results as JSON\n"
           "  --tasks-dir DIR      default <manifest dir>/../tasks\n"
           "  --device cpu|cuda    where the models' forwards run (default cpu); with cuda both models'\n"
           "                       weights go to GPU 0 and every stage waits for the GPU before\n"
           "                       the clock is read; tokenization, the bridge and sampling stay on the CPU\n"
           "  --dtype fp32|bf16|q8|native  the models' weights (default fp32): bf16 holds the projections\n"
           "                       and the output head in bf16 (fp32 accumulation), on the GPU with --device\n"
           "                       cuda, else on the CPU (the frozen models' matrices, narrow_weights.h);\n"
           "                       on the CPU also q8 (int8 blocks made at load) or native (the GGUF's blocks)\n"
           LW_THREADS_HELP
           "  --quiet              no progress lines\n",
           pair->manifest.bridge.soft_tokens);
}

typedef struct {
    const char *task, *split, *checkpoint, *json, *tasks_dir, *device, *dtype_name;
    lw_weight_dtype dtype;         /* --device cuda */
    lw_weights_dtype host_dtype;   /* --device cpu */
    int threads; /* --threads; 0: $LWC_THREADS, else 1 */
    int methods[LW_BENCH_N_METHODS], n_methods;
    int batches[MAX_BATCHES], n_batches;
    int runs, warmup, relay_tokens, M, limit;
    bool quiet;
} bench_args;

static bool parse_methods(const char *list, bench_args *a)
{
    char buf[256];
    if (!lw_pathf(buf, sizeof buf, "%s", list)) {
        fprintf(stderr, "lw bench: --methods list too long\n");
        return false;
    }
    a->n_methods = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int m = lw_bench_method_parse(tok);
        if (m < 0) {
            fprintf(stderr, "lw bench: unknown method '%s' (bridge, text-relay, receiver-zeroshot, "
                            "sender-zeroshot)\n", tok);
            return false;
        }
        for (int i = 0; i < a->n_methods; i++)
            if (a->methods[i] == m) m = -1;
        if (m >= 0) a->methods[a->n_methods++] = m;
    }
    if (a->n_methods == 0) fprintf(stderr, "lw bench: --methods names no method\n");
    return a->n_methods > 0;
}

static bool parse_batches(const char *list, bench_args *a)
{
    a->n_batches = 0;
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || (*end && *end != ',') || a->n_batches == MAX_BATCHES) {
            fprintf(stderr, "lw bench: --batch expects up to %d sizes in 1..4096, comma-separated, got '%s'\n",
                    MAX_BATCHES, list);
            return false;
        }
        a->batches[a->n_batches++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return a->n_batches > 0;
}

static bool parse(const lw_pair *pair, int argc, char **argv, bench_args *a)
{
    memset(a, 0, sizeof *a);
    for (int m = 0; m < LW_BENCH_N_METHODS; m++) a->methods[a->n_methods++] = m;
    a->batches[0] = 1, a->batches[1] = 4, a->batches[2] = 16, a->n_batches = 3;
    a->runs = 20, a->warmup = 3, a->relay_tokens = 32, a->M = pair->manifest.bridge.soft_tokens, a->device = "cpu";
    a->dtype_name = "fp32";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        bool ok = true;
        if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--split")) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--device")) ok = lw_opt_str(argc, argv, &i, &a->device);
        else if (!strcmp(o, "--dtype")) ok = lw_opt_str(argc, argv, &i, &a->dtype_name);
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--methods")) ok = lw_opt_str(argc, argv, &i, &v) && parse_methods(v, a);
        else if (!strcmp(o, "--batch")) ok = lw_opt_str(argc, argv, &i, &v) && parse_batches(v, a);
        else if (!strcmp(o, "--runs")) ok = lw_opt_int(argc, argv, &i, 1, 100000, &a->runs);
        else if (!strcmp(o, "--warmup")) ok = lw_opt_int(argc, argv, &i, 0, 100000, &a->warmup);
        else if (!strcmp(o, "--relay-tokens")) ok = lw_opt_int(argc, argv, &i, 1, 4096, &a->relay_tokens);
        else if (!strcmp(o, "--soft-tokens")) ok = lw_opt_int(argc, argv, &i, 1, 64, &a->M);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--quiet")) a->quiet = true;
        else {
            fprintf(stderr, "lw bench: unknown option '%s' (see lw bench --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (strcmp(a->device, "cpu") && strcmp(a->device, "cuda")) {
        fprintf(stderr, "lw bench: --device takes cpu or cuda, not %s\n", a->device);
        return false;
    }
    /* the CPU holds any narrow dtype (narrow_weights.h); the GPU fp32 or bf16 */
    bool cuda = !strcmp(a->device, "cuda");
    if (cuda && !lw_gpu_dtype_parse(a->dtype_name, &a->dtype)) {
        fprintf(stderr, "lw bench: --dtype takes fp32 or bf16, not %s\n", a->dtype_name);
        return false;
    }
    if (!cuda && !lw_weights_dtype_parse(a->dtype_name, &a->host_dtype)) {
        fprintf(stderr, "lw bench: --dtype takes fp32, bf16, q8 or native, not %s\n", a->dtype_name);
        return false;
    }
    if (!a->task || !a->split) {
        fprintf(stderr, "lw bench: --task and --split are required (see lw bench --help)\n");
        return false;
    }
    return true;
}

/* CPU model, cores, BLAS threads and load average, for the record. */
static void machine_line(char *out, size_t cap)
{
    char model[128] = "unknown CPU", line[512], load[64] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    f = fopen("/proc/loadavg", "r");
    if (f && fgets(line, sizeof line, f)) snprintf(load, sizeof load, "%.*s", 14, line);
    if (f) fclose(f);
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    snprintf(out, cap, "%s, %ld online CPUs, OPENBLAS_NUM_THREADS=%s, load average at start %s", model,
             sysconf(_SC_NPROCESSORS_ONLN), threads ? threads : "(unset)", load);
}

static void print_stats(const char *unit_fmt, lw_bench_stats s, double scale)
{
    char b[96];
    snprintf(b, sizeof b, unit_fmt, s.median * scale, s.min * scale, s.max * scale);
    printf(" %-26s", b);
}

static void print_table(const lw_bench_report *r, const char *machine, lw_weight_dtype dtype)
{
    printf("lw bench: %s, task %s, %s; bridge %s\n%s\n", r->pair, r->task, r->split,
           r->checkpoint ? r->checkpoint : "freshly initialised (same work)", machine);
    if (r->device && !strcmp(r->device, "cuda"))
        printf("device cuda: the sender's and receiver's forwards on the GPU (%s weights); tokenize, bridge\n"
               "and sampling on the CPU; every stage synchronised with the GPU before the clock is read\n",
               lw_gpu_dtype_name(dtype));
    printf("end point: label scores ready; batch B = B examples back to back; median [min, max] over the\n"
           "timed runs; the stage columns are ms per example (medians)\n\n");
    printf("%-18s %5s %4s  %-26s %-26s", "method", "batch", "runs", "ms per run", "examples/s");
    for (int s = 0; s < LW_STAGE_COUNT; s++) printf(" %14s", lw_bench_stage_name((lw_bench_stage)s));
    printf("\n");
    for (int i = 0; i < r->n_results; i++) {
        const lw_bench_result *x = &r->results[i];
        printf("%-18s %5d %4d ", lw_bench_method_name(x->method), x->batch, x->runs);
        print_stats("%.1f [%.1f, %.1f]", x->run_s, 1e3);
        print_stats("%.2f [%.2f, %.2f]", x->examples_per_s, 1.0);
        for (int s = 0; s < LW_STAGE_COUNT; s++) {
            if (lw_bench_uses_stage(x->method, (lw_bench_stage)s)) printf(" %14.2f", x->stage_ms[s].median);
            else printf(" %14s", "-");
        }
        printf("\n");
    }
    printf("\npayload between the models (means per example):\n");
    printf("%-18s %14s %14s %14s %16s %14s\n", "method", "bytes fp32", "bytes bf16", "content tok",
           "scoring prompt", "sender tokens");
    for (int i = 0; i < r->n_results; i++) {
        const lw_bench_result *x = &r->results[i];
        if (i > 0 && x->method == r->results[i - 1].method) continue;
        const lw_bench_traffic *t = &x->traffic;
        char bf16[32] = "-";
        if (x->method == LW_BENCH_BRIDGE) snprintf(bf16, sizeof bf16, "%.0f", t->payload_bytes / 2);
        printf("%-18s %14.0f %14s %14.1f %16.1f %14.1f\n", lw_bench_method_name(x->method), t->payload_bytes, bf16,
               t->content_tokens, t->prompt_tokens, t->sender_tokens);
    }
    printf("(bridge: M x receiver hidden x 4 bytes; text-relay: UTF-8 bytes of the relayed text; content tokens:\n"
           " M soft tokens, the relay's generated tokens, or the text's tokens for the zero-shot methods;\n"
           " scoring prompt: rows the scoring model reads before the verbalizer; sender tokens: rows the\n"
           " sender runs, generated ones included)\n");
}

typedef struct {
    lw_model *sender;
    lw_tokenizer *sender_tok;
    lw_bridge_side side;
    lw_task task;
    lw_dataset data;
} bench_models;

static lw_status open_models(const lw_pair *pair, const bench_args *a, bench_models *bm)
{
    const lw_manifest *m = &pair->manifest;
    char path[4200];
    lw_status st = lw_task_file(m, a->tasks_dir, a->task, path, sizeof path);
    if (!st) st = lw_task_load(path, &bm->task);
    if (!st) st = lw_dataset_load(a->split, &bm->task, a->limit, &bm->data);
    if (!st && bm->data.n < 1) st = lw_fail(LW_ERR_INVALID, "bench: %s has no examples", a->split);
    if (!st) st = lw_bridge_side_open(&bm->side, m, &bm->task, a->M);
    if (!st) st = lw_config_load_model(&m->sender, &bm->sender);
    if (!st) st = lw_config_load_tokenizer(&m->sender, &bm->sender_tok);
    if (st) return st;
    if (!a->checkpoint) {
        lw_bridge_init(&bm->side.bridge, m->train.seed);
        return LW_OK;
    }
    size_t n = strlen(a->checkpoint);
    if (n > 12 && !strcmp(a->checkpoint + n - 12, ".safetensors")) lw_pathf(path, sizeof path, "%s", a->checkpoint);
    else lw_pathf(path, sizeof path, "%s/bridge.safetensors", a->checkpoint);
    return lw_checkpoint_load_bridge(path, &bm->side.bridge);
}

static void close_models(bench_models *bm)
{
    lw_tokenizer_free(bm->sender_tok);
    lw_model_free(bm->sender);
    lw_bridge_side_close(&bm->side);
    lw_dataset_free(&bm->data);
    lw_task_free(&bm->task);
}

static lw_status measure_all(lw_bench *b, const bench_args *a, const bench_models *bm, lw_bench_result *res,
                             int *n_res)
{
    const char **texts = malloc((size_t)bm->data.n * sizeof *texts);
    if (!texts) return lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; i < bm->data.n; i++) texts[i] = bm->data.examples[i].text;
    lw_status st = LW_OK;
    *n_res = 0;
    for (int i = 0; !st && i < a->n_methods; i++)
        for (int j = 0; !st && j < a->n_batches; j++) {
            lw_bench_method m = (lw_bench_method)a->methods[i];
            if (!a->quiet)
                fprintf(stderr, "bench: %s, batch %d, %d + %d runs ...\n", lw_bench_method_name(m), a->batches[j],
                        a->warmup, a->runs);
            st = lw_bench_measure(b, m, texts, bm->data.n, a->batches[j], a->runs, a->warmup, &res[*n_res]);
            if (!st) ++*n_res;
        }
    free(texts);
    return st;
}

/* The CPU line, and with cuda the GPU's. */
static void describe(const lw_bench_gpu *gpu, bool cuda, char *out, size_t cap)
{
    char cpu[512], dev[256] = "";
    machine_line(cpu, sizeof cpu);
    if (cuda) lw_bench_gpu_describe(gpu, dev, sizeof dev);
    snprintf(out, cap, "%s%s%s", cuda ? dev : "", cuda ? "; host: " : "", cpu);
}

static int run(const lw_pair *pair, const bench_args *a)
{
    bench_models bm = {0};
    lw_bench_gpu gpu = {0};
    lw_bench *b = NULL;
    lw_bench_result res[LW_BENCH_N_METHODS * MAX_BATCHES];
    int n_res = 0, rc = 1;
    bool cuda = !strcmp(a->device, "cuda");
    char machine[800];
    /* The driver first: without a GPU that is the one thing to say. */
    lw_status st = cuda ? lw_bench_gpu_init(&gpu) : LW_OK;
    /* --dtype bf16 on the CPU: the host models hold bf16 matrices; with
     * cuda they stay fp32 and the upload converts (bench_gpu.h) */
    lw_pair host;
    lw_pair_with_dtype(&host, pair, cuda ? LW_WEIGHTS_F32 : a->host_dtype);
    if (!st) st = open_models(&host, a, &bm);
    if (!st && cuda) st = lw_bench_gpu_upload(&gpu, pair, bm.sender, bm.side.receiver, a->dtype);
    describe(&gpu, cuda, machine, sizeof machine);
    if (!st) {
        lw_bench_setup setup = {.sender = bm.sender, .receiver = bm.side.receiver, .sender_tok = bm.sender_tok,
                                .receiver_tok = bm.side.tok, .task = &bm.task, .bridge = &bm.side.bridge,
                                .source_layer = pair->manifest.bridge.source_layer,
                                .relay_tokens = a->relay_tokens, .gpu_sender = gpu.model[0],
                                .gpu_receiver = gpu.model[1]};
        st = lw_bench_open(&setup, &b);
    }
    if (!st) st = measure_all(b, a, &bm, res, &n_res);
    if (st) {
        fprintf(stderr, "lw bench: %s\n", lw_last_error());
        goto done;
    }
    lw_bench_report rep = {.pair = pair->manifest.name, .task = bm.task.name, .split = a->split,
                           .checkpoint = a->checkpoint, .soft_tokens = a->M,
                           .receiver_hidden = pair->manifest.receiver.hidden, .relay_tokens = a->relay_tokens,
                           .source_layer = pair->manifest.bridge.source_layer, .machine = machine,
                           .device = a->device, .dtype = a->dtype_name,
                           .n_results = n_res, .results = res};
    print_table(&rep, machine, a->dtype);
    rc = 0;
    if (a->json) {
        char *text = lw_bench_to_json(&rep);
        st = text ? lw_write_file_atomic(a->json, text, strlen(text), NULL)
                  : lw_fail(LW_ERR_NOMEM, "bench: building the JSON");
        free(text);
        if (st) {
            fprintf(stderr, "lw bench: writing %s: %s\n", a->json, lw_last_error());
            rc = 1;
        }
    }
done:
    lw_bench_close(b);
    lw_bench_gpu_close(&gpu);
    close_models(&bm);
    return rc;
}

int lw_cmd_bench(const lw_pair *pair, int argc, char **argv)
{
    for (int i = 0; i + 1 < argc; i++)   /* the wire between two processes: its own options (bench_wire.c) */
        if (!strcmp(argv[i], "--method") && !strcmp(argv[i + 1], "bridge-wire")) return lw_bench_wire(pair, argc, argv);
    if (lw_wants_help(argc, argv)) {
        usage(pair);
        return 0;
    }
    bench_args a;
    if (!parse(pair, argc, argv, &a) || !lw_threads_apply("bench", a.threads)) return 2;
    return run(pair, &a);
}
