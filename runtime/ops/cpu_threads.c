/* The ops' use of the thread pool (cpu_threads.h). */
#include "cpu_threads.h"

/* OpenBLAS's own switch, when the BLAS linked is OpenBLAS: weak, so a build
 * on another BLAS (or none) links and simply has nothing to pin. */
extern void openblas_set_num_threads(int) __attribute__((weak));

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

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
 * tens of instructions an element (tanhf), SiLU a few. A norm's sum is one
 * chain of dependent double adds (four cycles an element, where a product's
 * flop is a fraction of a cycle): weighed as 32 a column forward and 48
 * backward, so that a training pass's norms (a couple of hundred rows of
 * 640, or of 256 for Gemma's q/k norms) split, as their time deserves. */
enum { NORM_FWD_COST = 32, NORM_BWD_COST = 48 };
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
    j.pieces = row_pieces((double)NORM_FWD_COST * T * C, T);
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
    j.pieces = row_pieces((double)NORM_BWD_COST * T * C, T);
    if (j.pieces == 1) rmsnorm_backward(dx, NULL, dy, x, w, rstd, T, C, kind);
    else lw_parallel_for(j.pieces, norm_bwd_piece, &j);
}

/* A row's cost: a sin and cos in double for each of its head_dim / 2
 * frequencies (tens of instructions), then a rotation of every head. */
typedef struct {
    float *x;
    const int *pos;
    const float *inv_freq;
    int T, n_heads, head_dim, pieces;
    bool interleaved, backward;
} rope_job;

static void rope_piece(void *ctx, int k)
{
    const rope_job *j = ctx;
    int t0 = lw_range_start(j->T, k, j->pieces), t1 = lw_range_start(j->T, k + 1, j->pieces);
    float *x = j->x + (size_t)t0 * j->n_heads * j->head_dim;
    if (j->backward) rope_backward(x, j->pos + t0, j->inv_freq, t1 - t0, j->n_heads, j->head_dim, j->interleaved);
    else rope_forward(x, j->pos + t0, j->inv_freq, t1 - t0, j->n_heads, j->head_dim, j->interleaved);
}

static void rope_par(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                     bool interleaved, bool backward)
{
    rope_job j = {x, pos, inv_freq, T, n_heads, head_dim, 1, interleaved, backward};
    j.pieces = row_pieces((double)T * head_dim * (20.0 + 3.0 * n_heads), T);
    if (j.pieces == 1) rope_piece(&j, 0);
    else lw_parallel_for(j.pieces, rope_piece, &j);
}

void rope_forward_par(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                      bool interleaved)
{
    rope_par(x, pos, inv_freq, T, n_heads, head_dim, interleaved, false);
}

void rope_backward_par(float *dx, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                       bool interleaved)
{
    rope_par(dx, pos, inv_freq, T, n_heads, head_dim, interleaved, true);
}

/* ---- zeroing ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t bytes;
    int pieces;
} zero_job;

enum { ZERO_PAGE = 4096 };
/* Below 256 KiB a memset is tens of microseconds: one thread. */
#define ZERO_SPLIT_MIN ((size_t)256 << 10)

static void zero_piece(void *ctx, int k)
{
    const zero_job *j = ctx;
    size_t pages = (j->bytes + ZERO_PAGE - 1) / ZERO_PAGE;
    size_t a = (size_t)((unsigned long long)pages * (unsigned)k / (unsigned)j->pieces) * ZERO_PAGE;
    size_t b = (size_t)((unsigned long long)pages * (unsigned)(k + 1) / (unsigned)j->pieces) * ZERO_PAGE;
    if (b > j->bytes) b = j->bytes;
    if (a < b) memset(j->p + a, 0, b - a);
}

void lw_zero_par(void *p, size_t bytes)
{
    zero_job j = {p, bytes, lw_threads_get()};
    if (j.pieces < 2 || bytes < ZERO_SPLIT_MIN) {
        if (bytes) memset(p, 0, bytes);
        return;
    }
    lw_parallel_for(j.pieces, zero_piece, &j);
}
