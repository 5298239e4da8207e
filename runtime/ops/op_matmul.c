/* y[T,out] = x[T,in] @ w[out,in]^T (+ b): the weight layout of GGUF and of
 * PyTorch's nn.Linear, so a dequantised weight is used as it lies.
 * BLAS when configure found it; the plain loops below are always compiled,
 * exported as the *_reference twins, and the tests hold the two together. */
#include "ops.h"
#include "cpu_threads.h"
#include "lwc_config.h"

#include <stddef.h>

#if LWC_HAVE_BLAS
#include <cblas.h>
#endif

enum { MM_TILE = 4 };

/* Four rows of x against four rows of w at a time: each loaded row is used
 * four times, which is most of what blocking buys on a CPU without SIMD
 * intrinsics, and the sums stay in a fixed order (deterministic). */
void matmul_forward_reference(float *y, const float *x, const float *w, const float *b, int T, int in,
                              int out)
{
    for (int t0 = 0; t0 < T; t0 += MM_TILE) {
        int t1 = t0 + MM_TILE < T ? t0 + MM_TILE : T;
        for (int o0 = 0; o0 < out; o0 += MM_TILE) {
            int o1 = o0 + MM_TILE < out ? o0 + MM_TILE : out;
            float acc[MM_TILE][MM_TILE] = {{0}};
            for (int i = 0; i < in; i++) {
                for (int t = t0; t < t1; t++) {
                    float xv = x[(size_t)t * in + i];
                    for (int o = o0; o < o1; o++) acc[t - t0][o - o0] += xv * w[(size_t)o * in + i];
                }
            }
            for (int t = t0; t < t1; t++)
                for (int o = o0; o < o1; o++)
                    y[(size_t)t * out + o] = acc[t - t0][o - o0] + (b ? b[o] : 0.0f);
        }
    }
}

void matmul_backward_reference(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, int T, int in, int out)
{
    for (int t = 0; t < T; t++) {
        const float *dyt = dy + (size_t)t * out;
        if (dx) {
            float *dxt = dx + (size_t)t * in;
            for (int o = 0; o < out; o++) {
                const float *wo = w + (size_t)o * in;
                for (int i = 0; i < in; i++) dxt[i] += dyt[o] * wo[i];
            }
        }
        if (db)
            for (int o = 0; o < out; o++) db[o] += dyt[o];
    }
    if (dw) {
        for (int o = 0; o < out; o++) {
            float *dwo = dw + (size_t)o * in;
            for (int t = 0; t < T; t++) {
                float g = dy[(size_t)t * out + o];
                const float *xt = x + (size_t)t * in;
                for (int i = 0; i < in; i++) dwo[i] += g * xt[i];
            }
        }
    }
}

#if LWC_HAVE_BLAS
/* The BLAS calls cut into output blocks (cpu_threads.h: blocks fixed by the
 * shape, so any thread count runs the same calls). Each task is one block. */
typedef struct {
    float *y, *dx, *dw;
    const float *x, *w, *dy;
    int T, in, out, width, n;
} mm_job;

/* y[:, o0..o1) = x w[o0..o1)^T */
static void fwd_block(void *ctx, int c)
{
    const mm_job *j = ctx;
    int o0 = c * j->width, n = o0 + j->width < j->out ? j->width : j->out - o0;
    const float *wb = j->w + (size_t)o0 * j->in;
    /* One row (every decode step) is a matrix-vector product: sgemm would
     * first pack the whole weight matrix, sgemv streams it once. */
    if (j->T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, j->in, 1.0f, wb, j->in, j->x, 1, 0.0f, j->y + o0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, n, j->in, 1.0f, j->x, j->in, wb, j->in, 0.0f,
                    j->y + o0, j->out);
}

/* dx[:, i0..i1) += dy w[:, i0..i1) */
static void dx_block(void *ctx, int c)
{
    const mm_job *j = ctx;
    int i0 = c * j->width, n = i0 + j->width < j->in ? j->width : j->in - i0;
    if (j->T == 1) /* one row: dx += w^T dy without packing w */
        cblas_sgemv(CblasRowMajor, CblasTrans, j->out, n, 1.0f, j->w + i0, j->in, j->dy, 1, 1.0f, j->dx + i0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, j->T, n, j->out, 1.0f, j->dy, j->out, j->w + i0,
                    j->in, 1.0f, j->dx + i0, j->in);
}

/* dw[o0..o1, :] += dy[:, o0..o1)^T x */
static void dw_block(void *ctx, int c)
{
    const mm_job *j = ctx;
    int o0 = c * j->width, n = o0 + j->width < j->out ? j->width : j->out - o0;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, j->in, j->T, 1.0f, j->dy + o0, j->out, j->x, j->in,
                1.0f, j->dw + (size_t)o0 * j->in, j->in);
}
#endif

void matmul_forward(float *y, const float *x, const float *w, const float *b, int T, int in, int out)
{
    if (T <= 0 || out <= 0) return;
#if LWC_HAVE_BLAS
    if (in <= 0) {
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) y[(size_t)t * out + o] = b ? b[o] : 0.0f;
        return;
    }
    mm_job j = {.y = y, .x = x, .w = w, .T = T, .in = in, .out = out};
    j.n = lw_fixed_blocks(2.0 * T * in * out, out, &j.width);
    lw_parallel_for(j.n, fwd_block, &j);
    if (b)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) y[(size_t)t * out + o] += b[o];
#else
    matmul_forward_reference(y, x, w, b, T, in, out);
#endif
}

void matmul_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                     int T, int in, int out)
{
    if (T <= 0 || out <= 0 || in < 0) return;
#if LWC_HAVE_BLAS
    if (in > 0) {
        /* dx[T,in] += dy[T,out] @ w[out,in] (blocks of dx's columns);
         * dw[out,in] += dy^T @ x (blocks of dw's rows) */
        mm_job j = {.dx = dx, .dw = dw, .x = x, .w = w, .dy = dy, .T = T, .in = in, .out = out};
        double flops = 2.0 * T * in * out;
        if (dx) {
            j.n = lw_fixed_blocks(flops, in, &j.width);
            lw_parallel_for(j.n, dx_block, &j);
        }
        if (dw) {
            j.n = lw_fixed_blocks(flops, out, &j.width);
            lw_parallel_for(j.n, dw_block, &j);
        }
    }
    if (db)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)t * out + o];
#else
    matmul_backward_reference(dx, dw, db, dy, x, w, T, in, out);
#endif
}
