/* y[T,out] = x[T,in] @ w[out,in]^T (+ b): the weight layout of GGUF and of
 * PyTorch's nn.Linear, so a dequantised weight is used as it lies.
 * BLAS when configure found it; the plain loops below are always compiled,
 * exported as the *_reference twins, and the tests hold the two together. */
#include "ops.h"
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

void matmul_forward(float *y, const float *x, const float *w, const float *b, int T, int in, int out)
{
    if (T <= 0 || out <= 0) return;
#if LWC_HAVE_BLAS
    if (in <= 0) {
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) y[(size_t)t * out + o] = b ? b[o] : 0.0f;
        return;
    }
    /* One row (every decode step) is a matrix-vector product: sgemm would
     * first pack the whole weight matrix, sgemv streams it once. */
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
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
        /* dx[T,in] += dy[T,out] @ w[out,in];  dw[out,in] += dy^T @ x */
        if (dx && T == 1) /* one row: dx += w^T dy without packing w */
            cblas_sgemv(CblasRowMajor, CblasTrans, out, in, 1.0f, w, in, dy, 1, 1.0f, dx, 1);
        else if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, out, 1.0f, dy, out, w, in, 1.0f,
                        dx, in);
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, T, 1.0f, dy, out, x, in, 1.0f,
                        dw, in);
    }
    if (db)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)t * out + o];
#else
    matmul_backward_reference(dx, dw, db, dy, x, w, T, in, out);
#endif
}
