/* The exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): BERT's "gelu"
 * (PyTorch's gelu(approximate='none')), which the tanh form of
 * op_activation.c approximates to about 1e-3. */
#include "ops.h"

#include <math.h>

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794

void gelu_erf_forward(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] * INV_SQRT2)));
}

/* d/dx x Phi(x) = Phi(x) + x phi(x). */
void gelu_erf_backward(float *dx, const float *dy, const float *x, int n)
{
    for (int i = 0; i < n; i++) {
        double v = x[i];
        dx[i] += dy[i] * (float)(0.5 * (1.0 + erf(v * INV_SQRT2)) + v * INV_SQRT_2PI * exp(-0.5 * v * v));
    }
}
