/* The FFN activations: SiLU (llama's SwiGLU) and the tanh approximation of
 * GELU (Gemma's GeGLU, PyTorch gelu(approximate='tanh')). */
#include "ops.h"

#include <math.h>

#define GELU_K 0.7978845608028654f  /* sqrt(2/pi) */
#define GELU_C 0.044715f

static float silu(float x) { return x / (1.0f + expf(-x)); }

static float silu_grad(float x)
{
    float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

static float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
}

static float gelu_tanh_grad(float x)
{
    float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
}

static float act_value(float x, lw_activation act) { return act == LW_ACT_GELU_TANH ? gelu_tanh(x) : silu(x); }

static float act_grad(float x, lw_activation act)
{
    return act == LW_ACT_GELU_TANH ? gelu_tanh_grad(x) : silu_grad(x);
}

void glu_forward(float *out, const float *gate, const float *up, int n, lw_activation act)
{
    for (int i = 0; i < n; i++) out[i] = act_value(gate[i], act) * up[i];
}

void glu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                  lw_activation act)
{
    for (int i = 0; i < n; i++) {
        if (dgate) dgate[i] += dout[i] * up[i] * act_grad(gate[i], act);
        if (dup) dup[i] += dout[i] * act_value(gate[i], act);
    }
}

void gelu_tanh_forward(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] = gelu_tanh(x[i]);
}

void gelu_tanh_backward(float *dx, const float *dy, const float *x, int n)
{
    for (int i = 0; i < n; i++) dx[i] += dy[i] * gelu_tanh_grad(x[i]);
}
