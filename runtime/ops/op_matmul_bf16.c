/* Products on bf16 weights (op_matmul_bf16.h): the dispatch to a path and
 * the scalar reference kernels the other paths are tested against. */
#include "op_matmul_bf16.h"
#include "op_matmul_bf16_kernels.h"

#include "cpu_threads.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* y[t,o] = sum_i xf[t,i] * w[o,i] in one running fp32 sum per output, in
 * column order: the plainest statement of the op, for the tests. */
void bf16_forward_scalar(float *y, const float *xf, const lw_bf16_matrix *w, const float *b, int T)
{
    for (int t = 0; t < T; t++) {
        const float *xt = xf + (size_t)t * w->ld;
        for (int o = 0; o < w->out; o++) {
            const uint16_t *wo = w->w + (size_t)o * w->ld;
            float acc = 0.0f;
            for (int i = 0; i < w->in; i++) acc += xt[i] * lw_f32_from_bf16(wo[i]);
            y[(size_t)t * w->out + o] = acc + (b ? b[o] : 0.0f);
        }
    }
}

void bf16_backward_x_scalar(float *dx, const float *dy, const lw_bf16_matrix *w, int T)
{
    for (int t = 0; t < T; t++) {
        float *dxt = dx + (size_t)t * w->in;
        const float *dyt = dy + (size_t)t * w->out;
        for (int o = 0; o < w->out; o++) {
            const uint16_t *wo = w->w + (size_t)o * w->ld;
            for (int i = 0; i < w->in; i++) dxt[i] += dyt[o] * lw_f32_from_bf16(wo[i]);
        }
    }
}

/* packed: the kernel reads the packed copy alone (the AVX-512 forward), so
 * a matrix kept without its rows (narrow_weights.h, forward only) will do. */
static lw_status check_path(lw_cpu_path path, const lw_bf16_matrix *w, int T, bool packed, const char *what)
{
    if (path > lw_cpu_path_detected())
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: this CPU cannot run the %s path", what, lw_cpu_path_name(path));
    if ((packed ? !w->p : !w->w) || T < 0) return lw_fail(LW_ERR_INVALID, "%s: no weights or T = %d", what, T);
    return LW_OK;
}

/* x padded with zeros to ld columns: the kernels then need no tail loop. */
static float *padded_x(const float *x, const lw_bf16_matrix *w, int T)
{
    float *xf = malloc((size_t)T * (size_t)w->ld * sizeof *xf);
    if (!xf) return NULL;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * w->in;
        float *ft = xf + (size_t)t * w->ld;
        for (int i = 0; i < w->in; i++) ft[i] = xt[i];
        for (int i = w->in; i < w->ld; i++) ft[i] = 0.0f;
    }
    return xf;
}

/* One path's forward on rows [t0, t1) (or, for one row, outputs [o0, o1)
 * through a view of the matrix): the pieces of a split call. */
typedef struct {
    lw_cpu_path path;
    float *y;
    const float *xf, *b;
    const lw_bf16_matrix *w;
    int T, n;
} bf16_job;

static void forward_piece(lw_cpu_path path, float *y, const float *xf, const lw_bf16_matrix *w, const float *b,
                          int T)
{
    if (path == LW_CPU_AVX512)
        bf16_forward_avx512(y, xf, w, b, T);
    else if (path == LW_CPU_AVX2)
        bf16_forward_avx2(y, xf, w, b, T);
    else
        bf16_forward_scalar(y, xf, w, b, T);
}

/* Rows [t0, t1): every kernel computes a row alone (cpu_threads.h), and
 * each range has at least 2 rows, so it runs the many-row code as the
 * whole call does. */
static void forward_rows(void *ctx, int c)
{
    const bf16_job *j = ctx;
    const lw_bf16_matrix *w = j->w;
    int t0 = lw_range_start(j->T, c, j->n), t1 = lw_range_start(j->T, c + 1, j->n);
    forward_piece(j->path, j->y + (size_t)t0 * w->out, j->xf + (size_t)t0 * w->ld, w, j->b, t1 - t0);
}

/* One row, outputs in whole blocks of 16: the matrix viewed from its
 * block (row-major rows and the packed copy both start there). */
static void forward_outputs(void *ctx, int c)
{
    const bf16_job *j = ctx;
    const lw_bf16_matrix *w = j->w;
    int nblk = (w->out + 15) / 16;
    int o0 = 16 * lw_range_start(nblk, c, j->n), o1 = 16 * lw_range_start(nblk, c + 1, j->n);
    if (o1 > w->out) o1 = w->out;
    lw_bf16_matrix v = {.w = w->w ? w->w + (size_t)o0 * w->ld : NULL,
                        .p = w->p ? w->p + (size_t)o0 * w->ld : NULL, .out = o1 - o0, .in = w->in, .ld = w->ld};
    forward_piece(j->path, j->y + o0, j->xf, &v, j->b ? j->b + o0 : NULL, 1);
}

lw_status matmul_bf16_forward_on(lw_cpu_path path, float *y, const float *x, const lw_bf16_matrix *w,
                                 const float *b, int T)
{
    lw_status st = check_path(path, w, T, path == LW_CPU_AVX512, "bf16 matmul forward");
    if (st != LW_OK || T == 0) return st;
    if (path == LW_CPU_AVX512 && !w->p)
        return lw_fail(LW_ERR_INVALID, "bf16 matmul forward: no packed copy of the weights");
    float *xf = padded_x(x, w, T);
    if (!xf) return lw_fail(LW_ERR_NOMEM, "bf16 matmul forward: scratch for %d rows", T);
    double flops = 2.0 * T * w->ld * w->out;
    bf16_job j = {.path = path, .y = y, .xf = xf, .b = b, .w = w, .T = T};
    if (T == 1) {
        j.n = lw_out_split(lw_split_work(flops, 1), w->out);
        lw_parallel_for(j.n, forward_outputs, &j);
    } else {
        j.n = lw_row_split(flops, T);
        lw_parallel_for(j.n, forward_rows, &j);
    }
    free(xf);
    return LW_OK;
}

lw_status matmul_bf16_forward_vdpbf16ps(float *y, const float *x, const lw_bf16_matrix *w, const float *b, int T)
{
    lw_status st = check_path(LW_CPU_AVX512, w, T, true, "bf16 matmul forward (vdpbf16ps)");
    if (st != LW_OK || T == 0) return st;
    if (!w->p) return lw_fail(LW_ERR_INVALID, "bf16 matmul forward: no packed copy of the weights");
    size_t n = (size_t)T * (size_t)w->ld;
    uint16_t *xb = malloc(n * sizeof *xb);
    if (!xb) return lw_fail(LW_ERR_NOMEM, "bf16 matmul forward: scratch for %d rows", T);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * w->in;
        uint16_t *bt = xb + (size_t)t * w->ld;
        for (int i = 0; i < w->in; i++) bt[i] = lw_bf16_from_f32(xt[i]);
        for (int i = w->in; i < w->ld; i++) bt[i] = 0;
    }
    bf16_forward_avx512_dp(y, xb, w, b, T);
    free(xb);
    return LW_OK;
}

typedef struct {
    lw_cpu_path path;
    float *dx;
    const float *dy;
    const lw_bf16_matrix *w;
    int T, n;
} bf16_bwd_job;

/* Rows [t0, t1) of dx: each row's sum over the outputs is the same in any
 * row tile (cpu_threads.h). One row is not split (decode has no backward). */
static void backward_rows(void *ctx, int c)
{
    const bf16_bwd_job *j = ctx;
    const lw_bf16_matrix *w = j->w;
    int t0 = lw_range_start(j->T, c, j->n), t1 = lw_range_start(j->T, c + 1, j->n), T = t1 - t0;
    float *dx = j->dx + (size_t)t0 * w->in;
    const float *dy = j->dy + (size_t)t0 * w->out;
    if (j->path == LW_CPU_AVX512)
        bf16_backward_x_avx512(dx, dy, w, T);
    else if (j->path == LW_CPU_AVX2)
        bf16_backward_x_avx2(dx, dy, w, T);
    else
        bf16_backward_x_scalar(dx, dy, w, T);
}

lw_status matmul_bf16_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_bf16_matrix *w,
                                    int T)
{
    lw_status st = check_path(path, w, T, false, "bf16 matmul backward");
    if (st != LW_OK || T == 0) return st;
    bf16_bwd_job j = {.path = path, .dx = dx, .dy = dy, .w = w, .T = T};
    j.n = lw_row_split(2.0 * T * w->ld * w->out, T);
    lw_parallel_for(j.n, backward_rows, &j);
    return LW_OK;
}

lw_status matmul_bf16_forward(float *y, const float *x, const lw_bf16_matrix *w, const float *b, int T)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st != LW_OK ? st : matmul_bf16_forward_on(path, y, x, w, b, T);
}

lw_status matmul_bf16_backward_x(float *dx, const float *dy, const lw_bf16_matrix *w, int T)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st != LW_OK ? st : matmul_bf16_backward_x_on(path, dx, dy, w, T);
}
