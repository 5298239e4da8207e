/* Rotary position embedding. Pair i of a head turns by pos * inv_freq[i];
 * the pair is (x[2i], x[2i+1]) in the interleaved layout (GGUF llama,
 * llama2.c) and (x[i], x[i + D/2]) in the half layout (HF, Gemma GGUF). */
#include "ops.h"

#include <math.h>
#include <stddef.h>

/* inv_freq[i] = base^(-2i/D), then the context-extension scaling:
 * LINEAR stretches positions by factor (= inv_freq / factor); LLAMA3 (Meta's
 * Llama 3.1 recipe, transformers' _compute_llama3_parameters) leaves
 * wavelengths shorter than original_context/high_freq_factor alone, divides
 * those longer than original_context/low_freq_factor by factor, and blends
 * linearly in between. Computed in double, rounded once. */
void rope_inv_freq(float *inv_freq, int head_dim, float base, const lw_rope_scaling *scaling)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow((double)base, (2.0 * i) / head_dim);
        if (scaling && scaling->factor > 0.0f) {
            double factor = scaling->factor;
            if (scaling->kind == LW_ROPE_SCALING_LINEAR) {
                f /= factor;
            } else if (scaling->kind == LW_ROPE_SCALING_LLAMA3 && scaling->original_context > 0 &&
                       scaling->low_freq_factor > 0.0f && scaling->high_freq_factor > 0.0f) {
                double ctx = scaling->original_context;
                double lo = scaling->low_freq_factor, hi = scaling->high_freq_factor;
                double wavelen = 2.0 * M_PI / f;
                if (wavelen > ctx / lo) {
                    f /= factor;
                } else if (wavelen >= ctx / hi && hi != lo) {
                    double smooth = (ctx / wavelen - lo) / (hi - lo);
                    f = (1.0 - smooth) * f / factor + smooth * f;
                }
            }
        }
        inv_freq[i] = (float)f;
    }
}

/* Rotates every head of every row by sign * pos[t] * inv_freq. */
static void rope_rotate(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                        bool interleaved, float sign)
{
    int half = head_dim / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double angle = (double)pos[t] * inv_freq[i];
            float c = (float)cos(angle), s = sign * (float)sin(angle);
            for (int h = 0; h < n_heads; h++) {
                float *xh = x + ((size_t)t * n_heads + h) * head_dim;
                int a = interleaved ? 2 * i : i;
                int b = interleaved ? 2 * i + 1 : i + half;
                float x0 = xh[a], x1 = xh[b];
                xh[a] = x0 * c - x1 * s;
                xh[b] = x0 * s + x1 * c;
            }
        }
    }
}

void rope_forward(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                  bool interleaved)
{
    rope_rotate(x, pos, inv_freq, T, n_heads, head_dim, interleaved, 1.0f);
}

void rope_backward(float *dx, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                   bool interleaved)
{
    rope_rotate(dx, pos, inv_freq, T, n_heads, head_dim, interleaved, -1.0f);
}
