/* The bridge kernels' C twins (twin.h): each lw_twin_<kernel> does what
 * templates/bridge_kernels.cu.in's kernel of that name does, on host
 * memory, with the bridge's sizes from lw_twin_set_bridge. Where an op of
 * runtime/ops/ops.h computes the same thing (LayerNorm, GELU, the RMS
 * norm under the calibration) it is called; attention with its
 * log-sum-exp, the calibration's backward and AdamW are the template
 * written out as loops. The prefix kernels and the plain adamw_step have
 * no twin: no executor that runs over the twins launches them. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel_launchers.h"
#include "ops.h"
#include "twin.h"

static struct {
    bool set;
    int width, heads, head_dim, soft_tokens, receiver_hidden;
    bool rms;
} B;

void lw_twin_set_bridge(int width, int heads, int soft_tokens, int receiver_hidden, bool calibrate_rms)
{
    B.set = true;
    B.width = width, B.heads = heads, B.head_dim = width / heads;
    B.soft_tokens = soft_tokens, B.receiver_hidden = receiver_hidden, B.rms = calibrate_rms;
}

int lw_twin_bridge_kernel_index(const char *name)
{
    for (int i = 0; i < LW_BRIDGE_KERNEL_COUNT && i < 32; i++)
        if (!strcmp(lw_bridge_kernel_name(i), name)) return i;
    return -1;
}

static lw_status ran(const char *name)
{
    if (!B.set) return lw_fail(LW_ERR_INVALID, "host twin: bridge kernel %s launched before lw_twin_set_bridge", name);
    lw_twin_count.launches++;
    int i = lw_twin_bridge_kernel_index(name);
    if (i >= 0) lw_twin_count.by_bridge_kernel[i]++;
    return LW_OK;
}
#define RAN()                                                                                                      \
    do {                                                                                                           \
        lw_status st_ = ran(__func__ + strlen("lw_twin_"));                                                        \
        if (st_) return st_;                                                                                       \
    } while (0)

static const float LN_EPS = 1e-5f, CALIB_EPS = 1e-6f;   /* LW_LN_EPS; rms_calibrate_forward's */

lw_status lw_twin_layernorm_forward(lw_launch L, float *y, float *mean, float *rstd, const float *x, const float *w,
                                    const float *b, int T)
{
    RAN();
    layernorm_forward(y, mean, rstd, x, w, b, T, B.width, LN_EPS);
    return LW_OK;
}

lw_status lw_twin_layernorm_backward(lw_launch L, float *dx, float *dw, float *db, const float *dy, const float *x,
                                     const float *w, const float *mean, const float *rstd, int T)
{
    RAN();
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, T, B.width);
    return LW_OK;
}

/* lw_attention_row, non-causal, every head of query i (scale 1 / sqrt(head_dim)) */
lw_status lw_twin_bridge_attention_forward(lw_launch L, float *out, float *lse, const float *q, const float *k,
                                           const float *v, int Tq, int Tk, int n_heads)
{
    RAN();
    int H = B.heads, D = B.head_dim;
    float scale = 1.f / sqrtf((float)D), s[Tk > 0 ? Tk : 1];
    for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++) {
            const float *qi = q + ((size_t)i * H + h) * D;
            float m = -INFINITY, sum = 0.f;
            for (int j = 0; j < Tk; j++) {
                const float *kj = k + ((size_t)j * H + h) * D;
                float d = 0.f;
                for (int c = 0; c < D; c++) d += qi[c] * kj[c];
                s[j] = d * scale;
                m = s[j] > m ? s[j] : m;
            }
            float *oi = out + ((size_t)i * H + h) * D;
            memset(oi, 0, (size_t)D * sizeof *oi);
            for (int j = 0; j < Tk; j++) {
                float p = expf(s[j] - m);
                sum += p;
                for (int c = 0; c < D; c++) oi[c] += p * v[((size_t)j * H + h) * D + c];
            }
            for (int c = 0; c < D; c++) oi[c] /= sum;
            if (lse) lse[(size_t)h * Tq + i] = m + logf(sum);
        }
    return LW_OK;
}

lw_status lw_twin_bridge_attention_backward(lw_launch L, float *dq, float *dk, float *dv, const float *dout,
                                            const float *out, const float *lse, const float *q, const float *k,
                                            const float *v, int Tq, int Tk, int n_heads)
{
    RAN();
    int H = B.heads, D = B.head_dim;
    float scale = 1.f / sqrtf((float)D);
    for (int i = 0; i < Tq; i++)
        for (int h = 0; h < H; h++) {
            size_t row = ((size_t)i * H + h) * D;
            float delta = 0.f, Lse = lse[(size_t)h * Tq + i];
            for (int c = 0; c < D; c++) delta += dout[row + c] * out[row + c];
            for (int j = 0; j < Tk; j++) {
                size_t kv = ((size_t)j * H + h) * D;
                float s = 0.f, dp = 0.f;
                for (int c = 0; c < D; c++) s += q[row + c] * k[kv + c], dp += dout[row + c] * v[kv + c];
                float p = expf(s * scale - Lse), ds = p * (dp - delta) * scale;
                for (int c = 0; c < D; c++) {
                    if (dq) dq[row + c] += ds * k[kv + c];
                    if (dk) dk[kv + c] += ds * q[row + c];
                    if (dv) dv[kv + c] += p * dout[row + c];
                }
            }
        }
    return LW_OK;
}

lw_status lw_twin_gelu_forward(lw_launch L, float *y, const float *x, int n)
{
    RAN();
    gelu_tanh_forward(y, x, n);
    return LW_OK;
}

lw_status lw_twin_gelu_backward(lw_launch L, float *dx, const float *dy, const float *x, int n)
{
    RAN();
    gelu_tanh_backward(dx, dy, x, n);
    return LW_OK;
}

/* x / rms(x) * scale per soft token, or a copy without the calibration */
lw_status lw_twin_rms_calibrate_forward(lw_launch L, float *y, float *rstd, const float *x, const float *scale,
                                        int soft_tokens)
{
    RAN();
    size_t n = (size_t)B.soft_tokens * B.receiver_hidden;
    if (!B.rms) {
        memcpy(y, x, n * sizeof *y);
        return LW_OK;
    }
    rmsnorm_forward(y, rstd, x, NULL, B.soft_tokens, B.receiver_hidden, CALIB_EPS, LW_NORM_RMSNORM);
    for (size_t i = 0; i < n; i++) y[i] *= scale[0];
    return LW_OK;
}

lw_status lw_twin_rms_calibrate_backward(lw_launch L, float *dx, float *dscale, const float *dy, const float *x,
                                         const float *rstd, const float *scale, int soft_tokens)
{
    RAN();
    int R = B.receiver_hidden;
    for (int t = 0; t < B.soft_tokens; t++) {
        const float *xr = x + (size_t)t * R, *dyr = dy + (size_t)t * R;
        float *dxr = dx + (size_t)t * R;
        if (!B.rms) {
            for (int c = 0; c < R; c++) dxr[c] += dyr[c];
            continue;
        }
        float r = rstd[t], dot = 0.f;
        for (int c = 0; c < R; c++) dot += dyr[c] * xr[c];
        if (dscale) dscale[0] += dot * r;
        for (int c = 0; c < R; c++) dxr[c] += scale[0] * r * (dyr[c] - xr[c] * r * r * dot / (float)R);
    }
    return LW_OK;
}

static float inv_std(float sd) { return 1.0f / (sd > 1e-6f ? sd : 1e-6f); }

lw_status lw_twin_standardise_forward(lw_launch L, float *y, const float *x, const float *mean, const float *std, int n,
                                      int C)
{
    RAN();
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean[i % C]) * inv_std(std[i % C]);
    return LW_OK;
}

lw_status lw_twin_standardise_backward(lw_launch L, float *dx, const float *dy, const float *std, int n, int C)
{
    RAN();
    for (int i = 0; i < n; i++) dx[i] += dy[i] * inv_std(std[i % C]);
    return LW_OK;
}

lw_status lw_twin_mean_rows_forward(lw_launch L, float *y, const float *x, int T, int C)
{
    RAN();
    for (int c = 0; c < C; c++) {
        float s = 0.f;
        for (int t = 0; t < T; t++) s += x[(size_t)t * C + c];
        y[c] = s / (float)T;
    }
    return LW_OK;
}

lw_status lw_twin_mean_rows_backward(lw_launch L, float *dx, const float *dy, int T, int C)
{
    RAN();
    for (size_t i = 0; i < (size_t)T * C; i++) dx[i] += dy[i % C] / (float)T;
    return LW_OK;
}

lw_status lw_twin_bridge_bias_forward(lw_launch L, float *y, const float *b, int T, int n)
{
    RAN();
    for (size_t i = 0; i < (size_t)T * n; i++) y[i] += b[i % n];
    return LW_OK;
}

lw_status lw_twin_bridge_bias_backward(lw_launch L, float *db, const float *dy, int T, int n)
{
    RAN();
    for (int j = 0; j < n; j++) {
        float s = 0.f;
        for (int t = 0; t < T; t++) s += dy[(size_t)t * n + j];
        db[j] += s;
    }
    return LW_OK;
}

lw_status lw_twin_bridge_add(lw_launch L, float *y, const float *x, int n)
{
    RAN();
    for (int i = 0; i < n; i++) y[i] += x[i];
    return LW_OK;
}

lw_status lw_twin_bridge_copy(lw_launch L, float *y, const float *x, int n)
{
    RAN();
    memmove(y, x, (size_t)n * sizeof *y);
    return LW_OK;
}

lw_status lw_twin_grad_sumsq(lw_launch L, double *sumsq, const float *g, int n)
{
    RAN();
    for (int i = 0; i < n; i++) *sumsq += (double)g[i] * g[i];
    return LW_OK;
}

lw_status lw_twin_adamw_clip_step(lw_launch L, float *param, float *grad, float *m, float *v, const double *sumsq,
                                  float max_norm, int n, float lr, float weight_decay, float beta1, float beta2,
                                  float eps, float step_size, float bc2_sqrt)
{
    RAN();
    double norm = sqrt(*sumsq);
    bool clip = max_norm > 0.f && norm > (double)max_norm;
    float f = clip ? (float)((double)max_norm / (norm + 1e-6)) : 1.f;
    for (int i = 0; i < n; i++) {
        float g = grad[i];
        if (clip) grad[i] = g = g * f;
        float p = param[i] * (1.0f - lr * weight_decay);
        float mi = m[i] = m[i] + (g - m[i]) * (1.0f - beta1);
        float vi = v[i] = v[i] * beta2 + (1.0f - beta2) * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
    }
    return LW_OK;
}
