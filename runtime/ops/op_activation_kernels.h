/* The per-path kernels behind op_activation.c (internal). Both activations
 * are x * sigmoid(z): SiLU with z = x, and the tanh GELU with
 * z = 2 sqrt(2/pi) (x + 0.044715 x^3), since 0.5 (1 + tanh(u)) = sigmoid(2u).
 * Written that way, neither the value nor the derivative subtracts nearly
 * equal numbers (1 - tanh^2 = 4 s (1 - s)), and one exp per element gives
 * both: the vector paths compute it in registers (a degree-6 polynomial after
 * range reduction, Cephes' expf) instead of calling libm's tanhf/expf. */
#ifndef LW_OP_ACTIVATION_KERNELS_H
#define LW_OP_ACTIVATION_KERNELS_H

#include "model_config.h"

/* out = act(gate) * up; up NULL: out = act(gate) (plain GELU). */
void act_forward_avx2(float *out, const float *gate, const float *up, int n, lw_activation act);
void act_forward_avx512(float *out, const float *gate, const float *up, int n, lw_activation act);
/* dgate += dout * up * act'(gate) (up NULL: dout * act'(gate)); dup += dout * act(gate).
 * Either gradient may be NULL. */
void act_backward_avx2(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                       lw_activation act);
void act_backward_avx512(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                         lw_activation act);

#endif
