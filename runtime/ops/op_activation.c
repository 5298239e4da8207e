/* The FFN activations: SiLU (llama's SwiGLU) and the tanh approximation of
 * GELU (Gemma's GeGLU, PyTorch gelu(approximate='tanh')). The scalar code
 * here is the reference path (libm); the AVX2 and AVX-512 kernels
 * (op_activation_kernels.h) take over on the path cpu_path.h chooses: libm's
 * tanhf/expf per element were ~14% of a Gemma training step (issue 19). */
#include "ops.h"

#include <math.h>
#include <stddef.h>

#include "cpu_path.h"
#include "op_activation_kernels.h"

#define GELU_K 0.7978845608028654f  /* sqrt(2/pi) */
#define GELU_C 0.044715f

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* The activation's value and derivative at x from one exp or tanh (the
 * backward needs both). Same expressions as the value alone gives. */
static float silu_with_grad(float x, float *grad)
{
    float d = 1.0f + expf(-x), s = 1.0f / d;
    *grad = s * (1.0f + x * (1.0f - s));
    return x / d;
}

static float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
}

static float gelu_tanh_with_grad(float x, float *grad)
{
    float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
    *grad = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return 0.5f * x * (1.0f + t);
}

static float act_value(float x, lw_activation act) { return act == LW_ACT_GELU_TANH ? gelu_tanh(x) : silu(x); }

static float act_with_grad(float x, lw_activation act, float *grad)
{
    return act == LW_ACT_GELU_TANH ? gelu_tanh_with_grad(x, grad) : silu_with_grad(x, grad);
}

/* The process's path; a bad LWC_CPU_PATH (which the matrix products report)
 * leaves the detected one. */
static lw_cpu_path act_path(void)
{
    lw_cpu_path p;
    (void)lw_cpu_path_get(&p);
    return p;
}

void glu_forward(float *out, const float *gate, const float *up, int n, lw_activation act)
{
    switch (act_path()) {
    case LW_CPU_AVX512: act_forward_avx512(out, gate, up, n, act); return;
    case LW_CPU_AVX2: act_forward_avx2(out, gate, up, n, act); return;
    case LW_CPU_SCALAR: break;
    }
    for (int i = 0; i < n; i++) out[i] = act_value(gate[i], act) * up[i];
}

void glu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                  lw_activation act)
{
    switch (act_path()) {
    case LW_CPU_AVX512: act_backward_avx512(dgate, dup, dout, gate, up, n, act); return;
    case LW_CPU_AVX2: act_backward_avx2(dgate, dup, dout, gate, up, n, act); return;
    case LW_CPU_SCALAR: break;
    }
    for (int i = 0; i < n; i++) {
        float grad, value = act_with_grad(gate[i], act, &grad);
        if (dgate) dgate[i] += dout[i] * up[i] * grad;
        if (dup) dup[i] += dout[i] * value;
    }
}

void gelu_tanh_forward(float *y, const float *x, int n)
{
    switch (act_path()) {
    case LW_CPU_AVX512: act_forward_avx512(y, x, NULL, n, LW_ACT_GELU_TANH); return;
    case LW_CPU_AVX2: act_forward_avx2(y, x, NULL, n, LW_ACT_GELU_TANH); return;
    case LW_CPU_SCALAR: break;
    }
    for (int i = 0; i < n; i++) y[i] = gelu_tanh(x[i]);
}

void gelu_tanh_backward(float *dx, const float *dy, const float *x, int n)
{
    switch (act_path()) {
    case LW_CPU_AVX512: act_backward_avx512(dx, NULL, dy, x, NULL, n, LW_ACT_GELU_TANH); return;
    case LW_CPU_AVX2: act_backward_avx2(dx, NULL, dy, x, NULL, n, LW_ACT_GELU_TANH); return;
    case LW_CPU_SCALAR: break;
    }
    for (int i = 0; i < n; i++) {
        float grad;
        gelu_tanh_with_grad(x[i], &grad);
        dx[i] += dy[i] * grad;
    }
}
