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
     * (V terms) as lw_log_prob did */
    for (int t = 0; t < T; t++) lse[t] = -INFINITY;
    double sum[HEAD_SUM_ROWS];
    for (int t0 = 0; t0 < T; t0 += HEAD_SUM_ROWS) {
        int nt = T - t0 < HEAD_SUM_ROWS ? T - t0 : HEAD_SUM_ROWS;
        float *mx = lse + t0;   /* the running max lives in lse until the end */
        for (int t = 0; t < nt; t++) sum[t] = 0.0;
        for (int v0 = 0; v0 < V; v0 += HEAD_BLOCK) {
            int nv = V - v0 < HEAD_BLOCK ? V - v0 : HEAD_BLOCK;
            block_logits(scratch, x + (size_t)t0 * H, w, nt, H, v0, nv);
            for (int t = 0; t < nt; t++) {
                const float *s = scratch + (size_t)t * nv;
                float bm = s[0];
                for (int j = 1; j < nv; j++) bm = s[j] > bm ? s[j] : bm;
                if (bm > mx[t]) {   /* rescale what was summed to the new max */
                    sum[t] *= exp((double)mx[t] - bm);
                    mx[t] = bm;
                }
                float acc = 0.0f, m = mx[t];
                for (int j = 0; j < nv; j++) acc += expf(s[j] - m);
                sum[t] += acc;
            }
        }
        for (int t = 0; t < nt; t++) mx[t] = (float)(mx[t] + log(sum[t]));
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
 * the block's rows of w). */
void head_logsoftmax_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w, int T, int H,
                              int V, const int *pair_row, const int *pair_id, int n_pairs, const float *lse,
                              float *scratch)
{
    if (!dx && !dw) return;
    float g[HEAD_SUM_ROWS];
    for (int t0 = 0; t0 < T; t0 += HEAD_SUM_ROWS) {
        int nt = T - t0 < HEAD_SUM_ROWS ? T - t0 : HEAD_SUM_ROWS;
        memset(g, 0, sizeof g);
        for (int k = 0; k < n_pairs; k++)
            if (pair_row[k] >= t0 && pair_row[k] < t0 + nt) g[pair_row[k] - t0] += dlogp[k];
        for (int v0 = 0; v0 < V; v0 += HEAD_BLOCK) {
            int nv = V - v0 < HEAD_BLOCK ? V - v0 : HEAD_BLOCK;
            block_logits(scratch, x + (size_t)t0 * H, w, nt, H, v0, nv);
            for (int t = 0; t < nt; t++) {
                float *s = scratch + (size_t)t * nv, l = lse[t0 + t], gt = g[t];
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
