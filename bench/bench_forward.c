/* Prefill and decode speed of the CPU forward pass (docs/perf.md).
 *
 *   bench_forward <weights> <gguf|llama2c> [prompt_tokens=64] [decode_tokens=32] [runs=5] [fp32|bf16|q8|native]
 *                 [threads=0]
 *
 * Prefill: one lw_forward over the prompt, last-row logits (what generation
 * needs). Decode: greedy steps of one token over the cache, logits each step.
 * Prints the median over runs of each, in tokens/s, by the wall clock and by
 * this thread's CPU clock (what a busy neighbour moves least: the machine is
 * shared), and the process's peak and current resident memory (VmHWM and
 * VmRSS of /proc/self/status; the peak includes loading, which reads the
 * fp32 model before narrowing it). bf16, q8, native: the model's projections
 * and head held narrow (narrow_weights.h, forward only, as lw generate
 * --dtype loads it). threads 0 (the default): the pool is never sized, so
 * the narrow products run on one thread and fp32 ones on OpenBLAS's own
 * threads (OPENBLAS_NUM_THREADS), as before; threads N >= 1: the pool of N,
 * OpenBLAS pinned to one thread, as `lw --threads N` runs (cpu_threads.h),
 * so every dtype is timed on the same N cores (bench/cpu_round.py). Also prints
 * the pool's fork-joins a decode token (lw_threads_parallel_jobs: 0 at 1
 * thread), what each token pays in hand-offs. Build and run:
 *   cc -O2 -Iruntime -Iout/gen bench/bench_forward.c out/lib/lwc/liblwrt.a \
 *      $(pkg-config --libs openblas) -ljansson -lm -lpthread -ldl -o out/bench_forward
 *   OPENBLAS_NUM_THREADS=2 out/bench_forward models/gemma-3-270m-q4_k_m.gguf gguf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "model_load.h"
#include "narrow_weights.h"
#include "cpu_threads.h"
#include "bench_time.h"
#include "thread_pool.h"

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, bench_cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* A "VmHWM:   123 kB" line of /proc/self/status, in MB (0 if absent). */
static double status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') mb = atof(line + n + 1) / 1024.0;
    if (f) fclose(f);
    return mb;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_forward: %s: %s\n", what, lw_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_forward <weights> <gguf|llama2c> [prompt=64] [decode=32] [runs=5] "
                        "[fp32|bf16|q8|native] [threads=0]\n");
        return 2;
    }
    lw_weights_format fmt = strcmp(argv[2], "llama2c") == 0 ? LW_WEIGHTS_LLAMA2C : LW_WEIGHTS_GGUF;
    int n_prompt = argc > 3 ? atoi(argv[3]) : 64, n_decode = argc > 4 ? atoi(argv[4]) : 32;
    int runs = argc > 5 ? atoi(argv[5]) : 5;
    lw_weights_dtype dtype = LW_WEIGHTS_F32;
    if (n_prompt < 1 || n_decode < 0 || runs < 1 || runs > 100) return 2;
    if (argc > 6 && !lw_weights_dtype_parse(argv[6], &dtype)) {
        fprintf(stderr, "bench_forward: the dtype is fp32, bf16, q8 or native, not %s\n", argv[6]);
        return 2;
    }
    int threads = argc > 7 ? atoi(argv[7]) : 0;
    if (threads < 0 || threads > 64) {
        fprintf(stderr, "bench_forward: threads is 0 (OpenBLAS's own) or 1..64, not %s\n", argv[7]);
        return 2;
    }
    if (threads > 0 && lw_cpu_threads_set(threads)) return fail("threads");

    double t0 = bench_now();
    lw_model *m = NULL;
    if (lw_model_open(argv[1], fmt, &m)) return fail("load");
    if (lw_model_narrow(m, dtype, false)) return fail(lw_weights_dtype_name(dtype));
    double load_s = bench_now() - t0;
    lw_state *s = NULL;
    if (lw_state_alloc(m, n_prompt + n_decode + 1, false, &s)) return fail("state");
    int V = m->cfg.vocab;
    int *ids = malloc(sizeof(int) * (size_t)(n_prompt + n_decode));
    float *logits = malloc(sizeof(float) * (size_t)V);
    double *prefill = malloc(sizeof(double) * (size_t)runs), *decode = malloc(sizeof(double) * (size_t)runs);
    double *prefill_cpu = malloc(sizeof(double) * (size_t)runs), *decode_cpu = malloc(sizeof(double) * (size_t)runs);
    for (int i = 0; i < n_prompt; i++) ids[i] = 3 + (i * 7919) % (V - 3);

    double decode_jobs = 0;   /* fork-joins a decode token (the same every run) */
    for (int r = 0; r < runs; r++) {
        lw_state_reset(s);
        lw_forward_args a = {.ids = ids, .T = n_prompt, .logits = logits, .capture_layer = -1};
        t0 = bench_now();
        double c0 = bench_cpu_now();
        if (lw_forward(m, s, &a)) return fail("prefill");
        prefill[r] = n_prompt / (bench_now() - t0);
        prefill_cpu[r] = n_prompt / (bench_cpu_now() - c0);
        t0 = bench_now();
        c0 = bench_cpu_now();
        long jobs0 = lw_threads_parallel_jobs();
        for (int i = 0; i < n_decode; i++) {
            int next = lw_sample(logits, V, 0.0f, 0.0f, NULL);
            ids[n_prompt + i] = next;
            a = (lw_forward_args){.ids = &ids[n_prompt + i], .T = 1, .pos0 = n_prompt + i, .logits = logits,
                                  .capture_layer = -1};
            if (lw_forward(m, s, &a)) return fail("decode");
        }
        decode[r] = n_decode / (bench_now() - t0);
        decode_cpu[r] = n_decode / (bench_cpu_now() - c0);
        decode_jobs = n_decode ? (double)(lw_threads_parallel_jobs() - jobs0) / n_decode : 0;
    }
    printf("%s %s: load %.2f s, prefill %d tokens: %.1f tok/s (CPU clock %.1f), decode %d tokens: %.1f tok/s "
           "(CPU clock %.1f) (medians of %d); VmHWM %.0f MB, VmRSS %.0f MB; threads %d; %.1f fork-joins a decode token\n",
           argv[1], lw_weights_dtype_name(dtype), load_s, n_prompt, median(prefill, runs), median(prefill_cpu, runs),
           n_decode, median(decode, runs), median(decode_cpu, runs), runs, status_mb("VmHWM"), status_mb("VmRSS"), threads,
           decode_jobs);
    free(ids), free(logits), free(prefill), free(decode), free(prefill_cpu), free(decode_cpu);
    lw_state_free(s);
    lw_model_free(m);
    return 0;
}
