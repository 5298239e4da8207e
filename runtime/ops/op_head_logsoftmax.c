/* The output head fused with log-softmax, for the few (row, token) pairs
 * that label scoring and the label loss read: log p(id | x_t) =
 * x_t . w_id - logsumexp_v x_t . w_v. The vocabulary is streamed in blocks
 * of HEAD_BLOCK rows of w (one product each, through matmul_forward), with a
 * running max and sum per row (the online logsumexp), so no V-wide row of
 * logits or probabilities is ever held: for Gemma (V = 262,144) that row is
 * 1 MiB a token, and the old path also summed it again per label. */
#include "ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Rows per stream of the head: HEAD_PASS_ROWS / HEAD_SUM_ROWS products
 * read each block of it while it is in cache. */
#define HEAD_PASS_ROWS 256

/* w[v0 .. v0 + nv) is rows v0.. of the row-major [V, H] head, so a block is
 * a contiguous sub-matrix. nv <= HEAD_BLOCK. */
static void block_logits(float *s, const float *x, const float *w, int T, int H, int v0, int nv)
{
    matmul_forward(s, x, w + (size_t)v0 * H, NULL, T, H, nv);
}

void head_logsoftmax_forward(float *logp, float *lse, const float *x, const float *w, int T, int H, int V,
                             const int *pair_row, const int *pair_id, int n_pairs, float *scratch)
{
    /* running max m and sum s of exp(l - m) per row; the sum in double
     * (V terms) as lw_log_prob did. The head is streamed once per
     * HEAD_PASS_ROWS rows (a block of it, 1.3 MB for Gemma, stays in cache
     * for the HEAD_SUM_ROWS-row products that read it), not once per
     * HEAD_SUM_ROWS: the same products on the same rows, so the same sums. */
    for (int t = 0; t < T; t++) lse[t] = -INFINITY;
    double sum[HEAD_PASS_ROWS];
    for (int p0 = 0; p0 < T; p0 += HEAD_PASS_ROWS) {
        int np = T - p0 < HEAD_PASS_ROWS ? T - p0 : HEAD_PASS_ROWS;
        float *mx = lse + p0;   /* the running max lives in lse until the end */
        for (int t = 0; t < np; t++) sum[t] = 0.0;
        for (int v0 = 0; v0 < V; v0 += HEAD_BLOCK) {
            int nv = V - v0 < HEAD_BLOCK ? V - v0 : HEAD_BLOCK;
            for (int t0 = 0; t0 < np; t0 += HEAD_SUM_ROWS) {
                int nt = np - t0 < HEAD_SUM_ROWS ? np - t0 : HEAD_SUM_ROWS;
                block_logits(scratch, x + (size_t)(p0 + t0) * H, w, nt, H, v0, nv);
                for (int t = 0; t < nt; t++) {
                    const float *s = scratch + (size_t)t * nv;
                    float bm = s[0];
                    for (int j = 1; j < nv; j++) bm = s[j] > bm ? s[j] : bm;
                    int r = t0 + t;
                    if (bm > mx[r]) {   /* rescale what was summed to the new max */
                        sum[r] *= exp((double)mx[r] - bm);
                        mx[r] = bm;
                    }
                    float acc = 0.0f, m = mx[r];
                    for (int j = 0; j < nv; j++) acc += expf(s[j] - m);
                    sum[r] += acc;
                }
            }
        }
        for (int t = 0; t < np; t++) mx[t] = (float)(mx[t] + log(sum[t]));
    }
    /* the picked logits: one dot product each */
    for (int k = 0; k < n_pairs; k++) {
        const float *xt = x + (size_t)pair_row[k] * H, *wi = w + (size_t)pair_id[k] * H;
        double d = 0.0;
        for (int i = 0; i < H; i++) d += (double)xt[i] * wi[i];
        logp[k] = (float)(d - lse[pair_row[k]]);
    }
}

/* With g_t = sum of dlogp over row t's pairs: d logp / d logit_v =
 * onehot - p_v, so dlogits_t,v = sum_pairs(dlogp [v = id]) - g_t p_tv, and
 * dx += dlogits w, dw += dlogits^T x, block by block (matmul_backward on
 * the block's rows of w), HEAD_PASS_ROWS rows a stream of the head as
 * forward (each dx row and each dw block sums in the same order as
 * HEAD_SUM_ROWS rows a stream did). */
void head_logsoftmax_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w, int T, int H,
                              int V, const int *pair_row, const int *pair_id, int n_pairs, const float *lse,
                              float *scratch)
{
    if (!dx && !dw) return;
    float g[HEAD_PASS_ROWS];
    for (int p0 = 0; p0 < T; p0 += HEAD_PASS_ROWS) {
        int np = T - p0 < HEAD_PASS_ROWS ? T - p0 : HEAD_PASS_ROWS;
        memset(g, 0, sizeof g);
        for (int k = 0; k < n_pairs; k++)
            if (pair_row[k] >= p0 && pair_row[k] < p0 + np) g[pair_row[k] - p0] += dlogp[k];
        for (int v0 = 0; v0 < V; v0 += HEAD_BLOCK) {
            int nv = V - v0 < HEAD_BLOCK ? V - v0 : HEAD_BLOCK;
            for (int s0 = 0; s0 < np; s0 += HEAD_SUM_ROWS) {
                int nt = np - s0 < HEAD_SUM_ROWS ? np - s0 : HEAD_SUM_ROWS, t0 = p0 + s0;
                block_logits(scratch, x + (size_t)t0 * H, w, nt, H, v0, nv);
                for (int t = 0; t < nt; t++) {
                    float *s = scratch + (size_t)t * nv, l = lse[t0 + t], gt = g[s0 + t];
                    for (int j = 0; j < nv; j++) s[j] = -gt * expf(s[j] - l);
                }
                for (int k = 0; k < n_pairs; k++) {
                    int t = pair_row[k] - t0, j = pair_id[k] - v0;
                    if (t >= 0 && t < nt && j >= 0 && j < nv) scratch[(size_t)t * nv + j] += dlogp[k];
                }
                matmul_backward(dx ? dx + (size_t)t0 * H : NULL, dw ? dw + (size_t)v0 * H : NULL, NULL, scratch,
                                x + (size_t)t0 * H, w + (size_t)v0 * H, nt, H, nv);
            }
        }
    }
}
