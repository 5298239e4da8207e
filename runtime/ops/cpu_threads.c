/* The ops' use of the thread pool (cpu_threads.h). */
#include "cpu_threads.h"

/* OpenBLAS's own switch, when the BLAS linked is OpenBLAS: weak, so a build
 * on another BLAS (or none) links and simply has nothing to pin. */
extern void openblas_set_num_threads(int) __attribute__((weak));

#include <stdatomic.h>
#include <stddef.h>

/* Below ~1 MFLOP (tens of microseconds on one core) a fork-join's wake-up
 * and wait cost more than the second core gives back. Atomic: set by a
 * test's main thread, read by whichever thread runs a product. */
static _Atomic double split_min = 1 << 20;

void lw_cpu_split_threshold_set(double flops) { atomic_store(&split_min, flops); }
double lw_cpu_split_threshold(void) { return atomic_load(&split_min); }
#define SPLIT_MIN_FLOPS lw_cpu_split_threshold()

/* Set once lw_cpu_threads_set has run: from then on the fp32 products run
 * in fixed blocks on one-thread OpenBLAS. Before (a program that never
 * sizes the pool: the benchmarks, a library user), a product is one BLAS
 * call on however many threads OpenBLAS chose, as it always was. */
static atomic_bool pool_mode;

lw_status lw_cpu_threads_set(int n)
{
    lw_status st = lw_threads_set(n);
    if (st != LW_OK) return st;
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    atomic_store(&pool_mode, true);
    return LW_OK;
}

int lw_fixed_blocks(double flops, int cols, int *width)
{
    *width = cols;
    if (!atomic_load(&pool_mode) || flops < 4.0 * SPLIT_MIN_FLOPS || cols < 64) return 1;
    /* 8 blocks: an even share for 2 and 4 threads and 3/3/2 for 3; each at
     * least 32 wide, a multiple of 16 so the BLAS's column tails are those
     * of the whole product */
    int w = (cols + 7) / 8;
    w = (w + 15) / 16 * 16;
    if (w < 32) w = 32;
    *width = w;
    return (cols + w - 1) / w;
}

int lw_row_split(double flops, int T)
{
    int n = lw_threads_get();
    if (n > T / 2) n = T / 2;
    if (n < 2 || flops < SPLIT_MIN_FLOPS) return 1;
    return n;
}

int lw_out_split(double flops, int out)
{
    int n = lw_threads_get(), blocks = (out + 15) / 16;
    if (n > blocks) n = blocks;
    if (n < 2 || flops < SPLIT_MIN_FLOPS) return 1;
    return n;
}

/* ---- elementwise and per-row ops ------------------------------------------ */

/* Cost weights in "flops" per element, rough: the GELU-tanh of Gemma's GLU is
 * tens of instructions an element (tanhf), SiLU a few; a norm a few a column. */
static double glu_cost(lw_activation act) { return act == LW_ACT_GELU_TANH ? 40.0 : 10.0; }

typedef struct {
    float *a, *b;
    const float *c, *d, *e, *f;
    int n, width, pieces;
    float eps;
    lw_activation act;
    lw_norm_kind kind;
} par_job;

enum { ELEM_ALIGN = 64 };

/* Piece k of n elements: [start, end), starts at multiples of ELEM_ALIGN. */
static void elem_range(const par_job *j, int k, int *start, int *end)
{
    int units = (j->n + ELEM_ALIGN - 1) / ELEM_ALIGN;
    *start = lw_range_start(units, k, j->pieces) * ELEM_ALIGN;
    *end = lw_range_start(units, k + 1, j->pieces) * ELEM_ALIGN;
    if (*end > j->n) *end = j->n;
}

static int elem_pieces(double work, int n)
{
    int p = lw_threads_get(), units = (n + ELEM_ALIGN - 1) / ELEM_ALIGN;
    if (p > units) p = units;
    return p < 2 || work < SPLIT_MIN_FLOPS ? 1 : p;
}

static void glu_fwd_piece(void *ctx, int k)
{
    const par_job *j = ctx;
    int s, e;
    elem_range(j, k, &s, &e);
    glu_forward(j->a + s, j->c + s, j->d + s, e - s, j->act);
}

void glu_forward_par(float *out, const float *gate, const float *up, int n, lw_activation act)
{
    par_job j = {.a = out, .c = gate, .d = up, .n = n, .act = act};
    j.pieces = elem_pieces(glu_cost(act) * n, n);
    if (j.pieces == 1) glu_forward(out, gate, up, n, act);
    else lw_parallel_for(j.pieces, glu_fwd_piece, &j);
}

static void glu_bwd_piece(void *ctx, int k)
{
    const par_job *j = ctx;
    int s, e;
    elem_range(j, k, &s, &e);
    glu_backward(j->a + s, j->b + s, j->c + s, j->d + s, j->e + s, e - s, j->act);
}

void glu_backward_par(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                      lw_activation act)
{
    par_job j = {.a = dgate, .b = dup, .c = dout, .d = gate, .e = up, .n = n, .act = act};
    j.pieces = elem_pieces(2 * glu_cost(act) * n, n);
    if (j.pieces == 1) glu_backward(dgate, dup, dout, gate, up, n, act);
    else lw_parallel_for(j.pieces, glu_bwd_piece, &j);
}

static void norm_fwd_piece(void *ctx, int k)
{
    const par_job *j = ctx;
    int t0 = lw_range_start(j->n, k, j->pieces), t1 = lw_range_start(j->n, k + 1, j->pieces);
    size_t off = (size_t)t0 * j->width;
    rmsnorm_forward(j->a + off, j->b + t0, j->c + off, j->d, t1 - t0, j->width, j->eps, j->kind);
}

static int row_pieces(double work, int T)
{
    int p = lw_threads_get();
    if (p > T) p = T;
    return p < 2 || work < SPLIT_MIN_FLOPS ? 1 : p;
}

void rmsnorm_forward_par(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps,
                         lw_norm_kind kind)
{
    par_job j = {.a = y, .b = rstd, .c = x, .d = w, .n = T, .width = C, .eps = eps, .kind = kind};
    j.pieces = row_pieces(4.0 * T * C, T);
    if (j.pieces == 1) rmsnorm_forward(y, rstd, x, w, T, C, eps, kind);
    else lw_parallel_for(j.pieces, norm_fwd_piece, &j);
}

static void norm_bwd_piece(void *ctx, int k)
{
    const par_job *j = ctx;
    int t0 = lw_range_start(j->n, k, j->pieces), t1 = lw_range_start(j->n, k + 1, j->pieces);
    size_t off = (size_t)t0 * j->width;
    rmsnorm_backward(j->a + off, NULL, j->c + off, j->d + off, j->e, j->f + t0, t1 - t0, j->width, j->kind);
}

void rmsnorm_backward_par(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int T, int C,
                          lw_norm_kind kind)
{
    par_job j = {.a = dx, .c = dy, .d = x, .e = w, .f = rstd, .n = T, .width = C, .kind = kind};
    j.pieces = row_pieces(8.0 * T * C, T);
    if (j.pieces == 1) rmsnorm_backward(dx, NULL, dy, x, w, rstd, T, C, kind);
    else lw_parallel_for(j.pieces, norm_bwd_piece, &j);
}
