/* oneDNN's matmul on the shapes of bench/bench_matmul_narrow.c: the "kept
 * library" side of issue 19's choice between own micro-kernels and a
 * library (docs/perf.md, "Narrow weights: bf16 kernels"). Not built by
 * `make bench` (it needs libdnnl-dev, which configure does not look for):
 *
 *   cc -O2 -D_GNU_SOURCE -o out/bench/bench_dnnl_matmul bench/onednn/bench_dnnl_matmul.c -ldnnl
 *   OMP_NUM_THREADS=1 out/bench/bench_dnnl_matmul [runs=7] [smollm2|gemma3|all]
 *
 * Two products per shape and T (1, 64), forward only, median time per call:
 * fp32 (f32 x, f32 weights) and bf16 (x reordered to bf16 in every call and
 * counted, bf16 weights, f32 y). The weights are reordered once, outside
 * the timing, into the layout oneDNN chooses (format_tag_any): packed once,
 * as our kernels' weights are. oneDNN 2.6 (Debian 12) has no f32 x bf16
 * matmul, so its bf16 product rounds x as our vdpbf16ps kernel does. */
#include <oneapi/dnnl/dnnl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../bench_time.h"

#define CHECK(call)                                                                                            \
    do {                                                                                                     \
        dnnl_status_t s_ = (call);                                                                           \
        if (s_ != dnnl_success) {                                                                            \
            fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #call, (int)s_);                  \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

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

static dnnl_engine_t eng;
static dnnl_stream_t stream;

static void reorder(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *a, *b;
    CHECK(dnnl_memory_get_memory_desc(from, &a));
    CHECK(dnnl_memory_get_memory_desc(to, &b));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, a, eng, b, eng, NULL));
    dnnl_primitive_t r;
    CHECK(dnnl_primitive_create(&r, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    CHECK(dnnl_primitive_execute(r, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
}

/* Median seconds per call of y = x w^T with weights of type wt (f32/bf16). */
static double time_matmul(const float *x, const float *w, int T, int in, int out, dnnl_data_type_t wt, int runs,
                          int reps)
{
    dnnl_dims_t sd = {T, in}, wd = {in, out}, dd = {T, out};
    dnnl_memory_desc_t x_user, x_md, w_user, w_any, y_md;
    CHECK(dnnl_memory_desc_init_by_tag(&x_user, 2, sd, dnnl_f32, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&x_md, 2, sd, wt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&w_user, 2, wd, dnnl_f32, dnnl_ba)); /* [out][in] in memory */
    CHECK(dnnl_memory_desc_init_by_tag(&w_any, 2, wd, wt, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&y_md, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t mm;
    CHECK(dnnl_matmul_desc_init(&mm, &x_md, &w_any, NULL, &y_md));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &mm, NULL, eng, NULL));
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));

    dnnl_memory_t xu, xm, wu, wm, ym;
    CHECK(dnnl_memory_create(&xu, &x_user, eng, (void *)x));
    CHECK(dnnl_memory_create(&xm, &x_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&wu, &w_user, eng, (void *)w));
    CHECK(dnnl_memory_create(&wm, w_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&ym, &y_md, eng, DNNL_MEMORY_ALLOCATE));
    reorder(wu, wm); /* once: the packed weights */

    /* the per-call x conversion (bf16 only), as a primitive made once */
    dnnl_primitive_t xr = NULL;
    dnnl_primitive_desc_t xpd = NULL;
    if (wt != dnnl_f32) {
        CHECK(dnnl_reorder_primitive_desc_create(&xpd, &x_user, eng, &x_md, eng, NULL));
        CHECK(dnnl_primitive_create(&xr, xpd));
    }
    dnnl_exec_arg_t xargs[2] = {{DNNL_ARG_FROM, xu}, {DNNL_ARG_TO, xm}};
    dnnl_exec_arg_t margs[3] = {{DNNL_ARG_SRC, wt == dnnl_f32 ? xu : xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}};
    double *t = malloc((size_t)runs * sizeof *t);
    if (!t) exit(1);
    for (int k = -1; k < runs; k++) { /* k = -1: warm-up */
        double t0 = bench_now();
        for (int i = 0; i < reps; i++) {
            if (xr) CHECK(dnnl_primitive_execute(xr, stream, 2, xargs));
            CHECK(dnnl_primitive_execute(prim, stream, 3, margs));
        }
        CHECK(dnnl_stream_wait(stream));
        if (k >= 0) t[k] = (bench_now() - t0) / reps;
    }
    qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
    double med = t[runs / 2];
    free(t);
    if (xr) dnnl_primitive_destroy(xr), dnnl_primitive_desc_destroy(xpd);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(xu), dnnl_memory_destroy(xm), dnnl_memory_destroy(wu), dnnl_memory_destroy(wm);
    dnnl_memory_destroy(ym);
    return med;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    const char *which = argc > 2 ? argv[2] : "all";
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_dnnl_matmul [runs 1..1000] [smollm2|gemma3|all]\n");
        return 2;
    }
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    const char *omp = getenv("OMP_NUM_THREADS");
    printf("oneDNN %d.%d.%d (%s); OMP_NUM_THREADS=%s; medians of %d\n", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime", omp ? omp : "(unset)", runs);
    printf("%-8s %-8s %5s %6s %3s | %10s %7s | %10s %7s\n", "model", "product", "in", "out", "T", "f32 ms", "GF/s",
           "bf16 ms", "GF/s");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        if (strcmp(which, "all") && strcmp(which, sh->model)) continue;
        int in = sh->in, out = sh->out;
        float *w = malloc(sizeof(float) * (size_t)in * out), *x = malloc(sizeof(float) * 64 * (size_t)in);
        if (!w || !x) return 1;
        /* the same values as bench_matmul_narrow */
        for (size_t i = 0; i < (size_t)in * out; i++) w[i] = 0.01f * (float)(i % 7) - 0.03f;
        for (size_t i = 0; i < (size_t)64 * in; i++) x[i] = 0.02f * (float)(i % 5) - 0.04f;
        const int Ts[] = {1, 64};
        for (int ti = 0; ti < 2; ti++) {
            int T = Ts[ti];
            double flop = 2.0 * T * in * out;
            int reps = (int)(4e8 / flop) + 1;
            double f = time_matmul(x, w, T, in, out, dnnl_f32, runs, reps);
            double b = time_matmul(x, w, T, in, out, dnnl_bf16, runs, reps);
            printf("%-8s %-8s %5d %6d %3d | %10.4f %7.1f | %10.4f %7.1f\n", sh->model, sh->name, in, out, T, f * 1e3,
                   flop / f * 1e-9, b * 1e3, flop / b * 1e-9);
            fflush(stdout);
        }
        free(w), free(x);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
