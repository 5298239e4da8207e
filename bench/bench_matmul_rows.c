/* How the CPU matrix product's speed depends on its row count: the case
 * for packing a training batch's sequences into one pass (docs/perf.md,
 * "Training throughput").
 *
 *   bench_matmul_rows [runs=5]
 *
 * Times matmul_forward (y[T, out] = x[T, in] W^T, the receiver's products)
 * for T = 37 (one SST-2 training example through Gemma-3-270M with M = 16),
 * 74, 148 and 296 (eight examples packed) on Gemma-3-270M's shapes, and
 * prints the median GFLOP/s of each. Run with OPENBLAS_NUM_THREADS=1 and 2. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ops.h"
#include "bench_time.h"

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_matmul_rows [runs 1..1000]\n");
        return 2;
    }
    /* Gemma-3-270M: q,k,v 640 -> 1536; gate,up 640 -> 4096; down 2048 -> 640; o 1024 -> 640 */
    const int shapes[][2] = {{640, 1536}, {640, 4096}, {2048, 640}, {1024, 640}};
    const int rows[] = {37, 74, 148, 296};
    double *t = malloc((size_t)runs * sizeof *t);
    float *w = malloc(sizeof(float) * 2048 * 4096), *x = malloc(sizeof(float) * 296 * 2048),
          *y = malloc(sizeof(float) * 296 * 4096);
    if (!t || !w || !x || !y) return 1;
    for (size_t i = 0; i < (size_t)2048 * 4096; i++) w[i] = 0.01f * (float)(i % 7) - 0.03f;
    for (size_t i = 0; i < (size_t)296 * 2048; i++) x[i] = 0.02f * (float)(i % 5) - 0.04f;
    printf("%-12s %6s %10s\n", "in x out", "rows", "GFLOP/s");
    for (int s = 0; s < 4; s++) {
        int in = shapes[s][0], out = shapes[s][1];
        for (int r = 0; r < 4; r++) {
            int T = rows[r], reps = 4096 / T;   /* about the same work per timing */
            for (int k = 0; k < runs; k++) {
                double t0 = bench_now();
                for (int i = 0; i < reps; i++) matmul_forward(y, x, w, NULL, T, in, out);
                t[k] = (bench_now() - t0) / reps;
            }
            qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
            printf("%4d x %-5d %6d %10.1f\n", in, out, T, 2.0 * T * in * out / t[runs / 2] * 1e-9);
        }
    }
    free(t), free(w), free(x), free(y);
    return 0;
}
