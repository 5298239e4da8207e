/* Int8 products (op_matmul_q8.h): quantisation, the dispatch to a path and
 * the scalar reference kernel. */
#include "op_matmul_q8.h"
#include "op_matmul_q8_kernels.h"

#include "cpu_threads.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void lw_q8_quantize_row(int8_t *q, float *scale, const float *x, int n)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < n; i++) {
        /* x * id can round a hair past 127 in fp32; clamp so |q| <= 127 holds,
         * which the AVX2 kernel's 16-bit pair sums rely on */
        float v = x[i] * id;
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        /* half away from zero like llama.cpp's roundf, but inline: the cast
         * truncates, and |v| <= 127 fits an int */
        q[i] = (int8_t)(int)(v + (v >= 0.0f ? 0.5f : -0.5f));
    }
    *scale = d;
}

lw_status lw_q8_matrix_pack(lw_q8_matrix *m, const float *w, int out, int in)
{
    memset(m, 0, sizeof *m);
    if (out <= 0 || in <= 0 || in > (1 << 28))
        return lw_fail(LW_ERR_INVALID, "q8 matrix: shape %d x %d", out, in);
    int ld = (in + 63) / 64 * 64, nb = ld / LW_Q8_BLOCK;
    size_t n = (size_t)out * (size_t)ld;
    m->q = aligned_alloc(64, n);
    m->d = malloc((size_t)out * nb * sizeof *m->d);
    m->corr = malloc((size_t)out * sizeof *m->corr);
    if (!m->q || !m->d || !m->corr) {
        lw_q8_matrix_free(m);
        return lw_fail(LW_ERR_NOMEM, "q8 matrix: %d x %d", out, in);
    }
    float row[LW_Q8_BLOCK];
    for (int o = 0; o < out; o++) {
        double corr = 0;
        for (int bk = 0; bk < nb; bk++) {
            int i0 = bk * LW_Q8_BLOCK;
            for (int i = 0; i < LW_Q8_BLOCK; i++) row[i] = i0 + i < in ? w[(size_t)o * in + i0 + i] : 0.0f;
            int8_t *q = m->q + (size_t)o * ld + i0;
            float *d = m->d + (size_t)o * nb + bk;
            lw_q8_quantize_row(q, d, row, LW_Q8_BLOCK);
            int qs = 0;
            for (int i = 0; i < LW_Q8_BLOCK; i++) qs += q[i];
            corr += 128.0 * (double)*d * qs;
        }
        m->corr[o] = (float)corr;
    }
    if (lw_cpu_path_detected() == LW_CPU_AVX512) {
        int nblk = (out + 15) / 16;
        m->qp = aligned_alloc(64, (size_t)nblk * 16 * ld);
        m->dp = aligned_alloc(64, (size_t)nblk * nb * 16 * sizeof *m->dp);
        if (!m->qp || !m->dp) {
            lw_q8_matrix_free(m);
            return lw_fail(LW_ERR_NOMEM, "q8 matrix: packed %d x %d", out, in);
        }
        for (int blk = 0; blk < nblk; blk++)
            for (int j = 0; j < 16; j++) {
                int o = blk * 16 + j;
                for (int i = 0; i < ld; i++)
                    m->qp[(((size_t)blk * (ld / 4) + i / 4) * 16 + j) * 4 + i % 4] = o < out ? m->q[(size_t)o * ld + i] : 0;
                for (int bk = 0; bk < nb; bk++)
                    m->dp[((size_t)blk * nb + bk) * 16 + j] = o < out ? m->d[(size_t)o * nb + bk] : 0.0f;
            }
    }
    m->out = out;
    m->in = in;
    m->ld = ld;
    return LW_OK;
}

void lw_q8_matrix_free(lw_q8_matrix *m)
{
    free(m->q);
    free(m->d);
    free(m->corr);
    free(m->qp);
    free(m->dp);
    memset(m, 0, sizeof *m);
}

/* y[t,o] = sx_t * sum_b d_b * (exact int32 block sum), block after block. */
void q8_forward_scalar(float *y, const int8_t *xq, const float *sx, const lw_q8_matrix *w, const float *b, int T)
{
    int nb = w->ld / LW_Q8_BLOCK;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < w->out; o++) {
            const int8_t *xr = xq + (size_t)t * w->ld, *wr = w->q + (size_t)o * w->ld;
            const float *d = w->d + (size_t)o * nb;
            float acc = 0.0f;
            for (int bk = 0; bk < nb; bk++) {
                int32_t s = 0;
                for (int i = bk * LW_Q8_BLOCK; i < (bk + 1) * LW_Q8_BLOCK; i++) s += (int32_t)xr[i] * wr[i];
                acc += d[bk] * (float)s;
            }
            y[(size_t)t * w->out + o] = sx[t] * acc + (b ? b[o] : 0.0f);
        }
}

/* The kernels on rows [t0, t1) of the quantised x, at least 2 rows a range
 * (cpu_threads.h): each row's sums are the same in any row tile. */
typedef struct {
    lw_cpu_path path;
    float *y;
    const int8_t *xq;
    const float *sx, *b;
    const lw_q8_matrix *w;
    int T, n;
} q8_job;

static void q8_rows(void *ctx, int c)
{
    const q8_job *j = ctx;
    const lw_q8_matrix *w = j->w;
    int t0 = lw_range_start(j->T, c, j->n), t1 = lw_range_start(j->T, c + 1, j->n);
    float *y = j->y + (size_t)t0 * w->out;
    const int8_t *xq = j->xq + (size_t)t0 * w->ld;
    if (j->path == LW_CPU_AVX512)
        q8_forward_avx512(y, xq, j->sx + t0, w, j->b, t1 - t0);
    else if (j->path == LW_CPU_AVX2)
        q8_forward_avx2(y, xq, j->sx + t0, w, j->b, t1 - t0);
    else
        q8_forward_scalar(y, xq, j->sx + t0, w, j->b, t1 - t0);
}

lw_status matmul_q8_forward_on(lw_cpu_path path, float *y, const float *x, const lw_q8_matrix *w,
                               const float *b, int T)
{
    if (path > lw_cpu_path_detected())
        return lw_fail(LW_ERR_UNSUPPORTED, "q8 matmul: this CPU cannot run the %s path", lw_cpu_path_name(path));
    if (!w->q || T < 0) return lw_fail(LW_ERR_INVALID, "q8 matmul: no weights or T = %d", T);
    if (path == LW_CPU_AVX512 && !w->qp) return lw_fail(LW_ERR_INVALID, "q8 matmul: no packed copy of the weights");
    if (T == 0) return LW_OK;
    int8_t *xq = malloc((size_t)T * w->ld);
    float *sx = malloc((size_t)T * sizeof *sx);
    if (!xq || !sx) {
        free(xq), free(sx);
        return lw_fail(LW_ERR_NOMEM, "q8 matmul: scratch for %d rows", T);
    }
    if (path == LW_CPU_AVX512) {
        /* vectorised, bit for bit the scalar quantisation, with the offset */
        q8_quantize_rows_avx512(xq, sx, x, T, w->in, w->ld);
    } else {
        for (int t = 0; t < T; t++) {
            int8_t *qt = xq + (size_t)t * w->ld;
            lw_q8_quantize_row(qt, sx + t, x + (size_t)t * w->in, w->in);
            memset(qt + w->in, 0, (size_t)(w->ld - w->in));
        }
    }
    q8_job j = {.path = path, .y = y, .xq = xq, .sx = sx, .b = b, .w = w, .T = T};
    j.n = lw_row_split(2.0 * T * w->ld * w->out, T);
    lw_parallel_for(j.n, q8_rows, &j);
    free(xq), free(sx);
    return LW_OK;
}

lw_status matmul_q8_forward(float *y, const float *x, const lw_q8_matrix *w, const float *b, int T)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st != LW_OK ? st : matmul_q8_forward_on(path, y, x, w, b, T);
}
