/* fp32 weights (OpenBLAS) against bf16 weights (op_matmul_bf16.c: the
 * AVX-512 path, the vdpbf16ps kernel, the AVX2 path) and int8 weights (op_matmul_q8.c, AVX-512
 * VNNI and AVX2) on the products of the models we run, one thread:
 * docs/perf.md, "Narrow weights: bf16 kernels".
 *
 *   OPENBLAS_NUM_THREADS=1 bench_matmul_narrow [runs=7] [smollm2|gemma3|all]
 *
 * For each product (in -> out) at T = 1 (decode) and T = 64 (prefill): the
 * median time of the forward y = x w^T and of the backward dx += dy w (not
 * for int8 and vdpbf16ps: no backward there), their GFLOP/s, each narrow path's speed as a
 * ratio to fp32 measured in the same run, and for T = 1 the weight bytes one
 * call reads (scales included) and the GB/s that makes.
 * The calls repeat on the same weights, so a matrix that fits the 2 MB L2 is
 * read from there, not from memory (said next to the numbers). Values are
 * random: the time does not depend on them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op_matmul_bf16.h"
#include "op_matmul_q8.h"
#include "ops.h"
#include "bench_time.h"

typedef struct {
    const char *model, *name;
    int in, out;
} shape;

static const shape shapes[] = {
    {"smollm2", "q,o", 576, 576},     {"smollm2", "k,v", 576, 192},   {"smollm2", "gate,up", 576, 1536},
    {"smollm2", "down", 1536, 576},   {"smollm2", "head", 576, 49152},
    {"gemma3", "q", 640, 1024},       {"gemma3", "k,v", 640, 256},    {"gemma3", "o", 1024, 640},
    {"gemma3", "gate,up", 640, 2048}, {"gemma3", "down", 2048, 640},  {"gemma3", "head", 640, 262144},
};

enum { V_FP32, V_BF16_512, V_BF16_DP, V_BF16_AVX2, V_Q8_512, V_Q8_AVX2, NV };
static const char *const vname[NV] = {"fp32", "bf16-512", "bf16-dp", "bf16-avx2", "q8-vnni", "q8-avx2"};

typedef struct {
    const float *x, *w, *dy;
    float *y, *dx;
    const lw_bf16_matrix *m;
    const lw_q8_matrix *q;
    int T, in, out;
} job;

static int run_one(const job *j, int variant, int backward)
{
    if (variant == V_FP32) {
        if (backward)
            matmul_backward(j->dx, NULL, NULL, j->dy, NULL, j->w, j->T, j->in, j->out);
        else
            matmul_forward(j->y, j->x, j->w, NULL, j->T, j->in, j->out);
        return 0;
    }
    lw_cpu_path p = variant == V_BF16_512 || variant == V_Q8_512 ? LW_CPU_AVX512 : LW_CPU_AVX2;
    lw_status st;
    if (variant == V_BF16_DP)
        st = backward ? LW_ERR_UNSUPPORTED : matmul_bf16_forward_vdpbf16ps(j->y, j->x, j->m, NULL, j->T);
    else if (variant == V_Q8_512 || variant == V_Q8_AVX2)
        st = backward ? LW_ERR_UNSUPPORTED : matmul_q8_forward_on(p, j->y, j->x, j->q, NULL, j->T);
    else
        st = backward ? matmul_bf16_backward_x_on(p, j->dx, j->dy, j->m, j->T)
                      : matmul_bf16_forward_on(p, j->y, j->x, j->m, NULL, j->T);
    return st != LW_OK;
}

/* Median seconds per call over `runs` timings of `reps` calls each. */
static double time_median(const job *j, int variant, int backward, int runs, int reps, double *t)
{
    if (run_one(j, variant, backward)) return -1; /* warm-up: caches, pages, BLAS buffers */
    for (int k = 0; k < runs; k++) {
        double t0 = bench_now();
        for (int i = 0; i < reps; i++) run_one(j, variant, backward);
        t[k] = (bench_now() - t0) / reps;
    }
    qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
    return t[runs / 2];
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    const char *which = argc > 2 ? argv[2] : "all";
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_matmul_narrow [runs 1..1000] [smollm2|gemma3|all]\n");
        return 2;
    }
    lw_cpu_path best = lw_cpu_path_detected();
    int have[NV] = {1, best >= LW_CPU_AVX512, best >= LW_CPU_AVX512, best >= LW_CPU_AVX2, best >= LW_CPU_AVX512,
                    best >= LW_CPU_AVX2};
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    printf("cpu path available: %s; OPENBLAS_NUM_THREADS=%s; medians of %d\n", lw_cpu_path_name(best),
           env ? env : "(unset)", runs);
    printf("%-8s %-8s %5s %6s %3s %3s", "model", "product", "in", "out", "T", "op");
    for (int v = 0; v < NV; v++) printf(" | %9s %6s%s", vname[v], "GF/s", v ? "      x" : "");
    printf(" | MB: fp32   bf16     q8 | GB/s: fp32  bf16-512  q8-vnni\n");
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) return 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        if (strcmp(which, "all") && strcmp(which, sh->model)) continue;
        int in = sh->in, out = sh->out, Tmax = 64;
        float *w = malloc(sizeof(float) * (size_t)in * out), *x = malloc(sizeof(float) * (size_t)Tmax * in);
        float *y = malloc(sizeof(float) * (size_t)Tmax * out), *dy = malloc(sizeof(float) * (size_t)Tmax * out);
        float *dx = calloc((size_t)Tmax * in, sizeof(float));
        if (!w || !x || !y || !dy || !dx) return 1;
        for (size_t i = 0; i < (size_t)in * out; i++) w[i] = 0.01f * (float)(i % 7) - 0.03f;
        for (size_t i = 0; i < (size_t)Tmax * in; i++) x[i] = 0.02f * (float)(i % 5) - 0.04f;
        for (size_t i = 0; i < (size_t)Tmax * out; i++) dy[i] = 0.01f * (float)(i % 3) - 0.01f;
        lw_bf16_matrix m;
        lw_q8_matrix q;
        if (lw_bf16_matrix_pack(&m, w, out, in) != LW_OK || lw_q8_matrix_pack(&q, w, out, in) != LW_OK) {
            fprintf(stderr, "%s\n", lw_last_error());
            return 1;
        }
        const int Ts[] = {1, 64};
        for (int ti = 0; ti < 2; ti++) {
            int T = Ts[ti];
            double flop = 2.0 * T * in * out;
            int reps = (int)(4e8 / flop) + 1; /* ~0.01-0.1 s a timing */
            job j = {x, w, dy, y, dx, &m, &q, T, in, out};
            for (int bw = 0; bw < 2; bw++) {
                double sec[NV];
                for (int v = 0; v < NV; v++) sec[v] = have[v] ? time_median(&j, v, bw, runs, reps, t) : -1;
                printf("%-8s %-8s %5d %6d %3d %3s | %9.4f %6.1f", sh->model, sh->name, in, out, T, bw ? "bwd" : "fwd",
                       sec[0] * 1e3, flop / sec[0] * 1e-9);
                for (int v = 1; v < NV; v++) {
                    if (sec[v] > 0)
                        printf(" | %9.4f %6.1f %5.2fx", sec[v] * 1e3, flop / sec[v] * 1e-9, sec[0] / sec[v]);
                    else
                        printf(" | %9s %6s %6s", "-", "-", "-");
                }
                if (T == 1) {
                    double b32 = 4.0 * in * out, b16 = 2.0 * m.ld * out;
                    double b8 = (double)q.ld * out + 4.0 * (q.ld / LW_Q8_BLOCK) * out + 4.0 * out;
                    printf(" | %9.2f %6.2f %6.2f | %10.1f", b32 * 1e-6, b16 * 1e-6, b8 * 1e-6, b32 / sec[0] * 1e-9);
                    if (sec[V_BF16_512] > 0) printf(" %9.1f", b16 / sec[V_BF16_512] * 1e-9);
                    else printf(" %9s", "-");
                    if (sec[V_Q8_512] > 0) printf(" %8.1f", b8 / sec[V_Q8_512] * 1e-9);
                    else printf(" %8s", "-");
                }
                printf("\n");
                fflush(stdout);
            }
        }
        lw_bf16_matrix_free(&m);
        lw_q8_matrix_free(&q);
        free(w), free(x), free(y), free(dy), free(dx);
    }
    free(t);
    return 0;
}
