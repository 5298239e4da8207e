/* Products on bf16 weights (op_matmul_bf16.h): the dispatch to a path and
 * the scalar reference kernels the other paths are tested against. */
#include "op_matmul_bf16.h"
#include "op_matmul_bf16_kernels.h"

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

lw_status matmul_bf16_forward_on(lw_cpu_path path, float *y, const float *x, const lw_bf16_matrix *w,
                                 const float *b, int T)
{
    lw_status st = check_path(path, w, T, path == LW_CPU_AVX512, "bf16 matmul forward");
    if (st != LW_OK || T == 0) return st;
    if (path == LW_CPU_AVX512 && !w->p)
        return lw_fail(LW_ERR_INVALID, "bf16 matmul forward: no packed copy of the weights");
    float *xf = padded_x(x, w, T);
    if (!xf) return lw_fail(LW_ERR_NOMEM, "bf16 matmul forward: scratch for %d rows", T);
    if (path == LW_CPU_AVX512)
        bf16_forward_avx512(y, xf, w, b, T);
    else if (path == LW_CPU_AVX2)
        bf16_forward_avx2(y, xf, w, b, T);
    else
        bf16_forward_scalar(y, xf, w, b, T);
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

lw_status matmul_bf16_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_bf16_matrix *w,
                                    int T)
{
    lw_status st = check_path(path, w, T, false, "bf16 matmul backward");
    if (st != LW_OK || T == 0) return st;
    if (path == LW_CPU_AVX512)
        bf16_backward_x_avx512(dx, dy, w, T);
    else if (path == LW_CPU_AVX2)
        bf16_backward_x_avx2(dx, dy, w, T);
    else
        bf16_backward_x_scalar(dx, dy, w, T);
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
