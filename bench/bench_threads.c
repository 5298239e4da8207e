/* How the split products scale with the thread pool (docs/perf.md,
 * "Threads"): Gemma-3-270M's gate/up product (640 -> 2048) at T = 64 rows,
 * bf16 forward and dX backward and fp32 forward (fixed blocks on one-thread
 * OpenBLAS), at 1 and 2 threads alternately, wall-clock medians of `runs`
 * timings of 10 calls each. Prints GFLOP/s, the 2-thread ratio, and how many
 * cores the process really had (its CPU time over the wall time, median): on
 * a loaded machine a ratio means little unless the 2-thread runs got ~2.
 *
 *   bench_threads [runs=7] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_time.h"
#include "cpu_threads.h"
#include "op_matmul_bf16.h"
#include "ops.h"

enum { T = 64, IN = 640, OUT = 2048, CALLS = 10, MAXRUNS = 64 };

static double process_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cores_used; /* of the last time_op */

static double time_op(int which, float *y, const float *x, const float *wf, const lw_bf16_matrix *w, float *dx,
                      const float *dy)
{
    double t0 = bench_now(), c0 = process_cpu_now();
    for (int c = 0; c < CALLS; c++) {
        if (which == 0) matmul_bf16_forward(y, x, w, NULL, T);
        else if (which == 1) matmul_bf16_backward_x(dx, dy, w, T);
        else matmul_forward(y, x, wf, NULL, T, IN, OUT);
    }
    double wall = bench_now() - t0;
    cores_used = (process_cpu_now() - c0) / wall;
    return wall / CALLS;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1 || runs > MAXRUNS) runs = 7;
    float *x = malloc(sizeof(float) * T * IN), *wf = malloc(sizeof(float) * OUT * IN);
    float *y = malloc(sizeof(float) * T * OUT), *dy = malloc(sizeof(float) * T * OUT), *dx = calloc(T * IN, sizeof(float));
    for (int i = 0; i < T * IN; i++) x[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < OUT * IN; i++) wf[i] = (float)((i * 53 % 97) - 48) / 480.0f;
    for (int i = 0; i < T * OUT; i++) dy[i] = (float)((i * 29 % 89) - 44) / 44.0f;
    lw_bf16_matrix w;
    if (lw_bf16_matrix_pack(&w, wf, OUT, IN) != LW_OK) return 1;
    const char *names[3] = {"bf16 forward", "bf16 dX backward", "fp32 forward (OpenBLAS, 1 thread a block)"};
    double flops = 2.0 * T * IN * OUT;
    for (int op = 0; op < 3; op++) {
        double t[2][MAXRUNS], u[2][MAXRUNS];
        for (int r = 0; r < runs; r++)
            for (int k = 0; k < 2; k++) {
                if (lw_cpu_threads_set(k + 1) != LW_OK) return 1;
                time_op(op, y, x, wf, &w, dx, dy); /* warm */
                t[k][r] = time_op(op, y, x, wf, &w, dx, dy);
                u[k][r] = cores_used;
            }
        qsort(t[0], runs, sizeof(double), bench_cmp_double);
        qsort(t[1], runs, sizeof(double), bench_cmp_double);
        qsort(u[0], runs, sizeof(double), bench_cmp_double);
        qsort(u[1], runs, sizeof(double), bench_cmp_double);
        double m1 = t[0][runs / 2], m2 = t[1][runs / 2];
        printf("%-44s 1 thread %6.1f GFLOP/s (cores %.2f), 2 threads %6.1f GFLOP/s (cores %.2f): %.2fx\n", names[op],
               flops / m1 * 1e-9, u[0][runs / 2], flops / m2 * 1e-9, u[1][runs / 2], m1 / m2);
    }
    lw_threads_shutdown();
    lw_bf16_matrix_free(&w);
    free(x), free(wf), free(y), free(dy), free(dx);
    return 0;
}
