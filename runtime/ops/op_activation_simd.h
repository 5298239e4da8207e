/* The body of the vector activation kernels (op_activation_kernels.h), one
 * text for both widths: op_activation_avx2.c and op_activation_avx512.c
 * define the vector type V, its lane count W, TARGET, SUFFIX and the V*
 * operations, then include this file once. */
#include <string.h>

#define ACT_CAT2(a, b) a##_##b
#define ACT_CAT(a, b) ACT_CAT2(a, b)
#define ACT_NAME(f) ACT_CAT(f, SUFFIX)

#define GELU_K2 1.5957691216057308f /* 2 sqrt(2/pi): sigmoid(2u) = 0.5 (1 + tanh u) */
#define GELU_C 0.044715f

/* e^x on [-87, 88] (clamped there: e^-87 and e^88 are still normal floats),
 * Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, ln2 split in two so that
 * n ln2 is exact, then a degree-6 polynomial; about 1 ulp. */
static inline TARGET V vexp(V x)
{
    x = VMIN(VMAX(x, VSET(-87.0f)), VSET(88.0f));
    V n = VROUND(VMUL(x, VSET(1.44269504088896341f)));
    V r = VFNMADD(n, VSET(0.693359375f), x);
    r = VFNMADD(n, VSET(-2.12194440e-4f), r);
    V p = VSET(1.9875691500e-4f);
    p = VFMADD(p, r, VSET(1.3981999507e-3f));
    p = VFMADD(p, r, VSET(8.3334519073e-3f));
    p = VFMADD(p, r, VSET(4.1665795894e-2f));
    p = VFMADD(p, r, VSET(1.6666665459e-1f));
    p = VFMADD(p, r, VSET(5.0000001201e-1f));
    p = VFMADD(p, VMUL(r, r), VADD(r, VSET(1.0f)));
    return VSCALE2(p, n);
}

/* s = sigmoid(z(x)) and dz/dx: z = x (SiLU) or 2K (x + C x^3) (GELU). */
static inline TARGET V act_sigmoid(V x, int gelu, V *dz)
{
    V z;
    if (gelu) {
        V x2 = VMUL(x, x);
        z = VMUL(VMUL(VSET(GELU_K2), x), VFMADD(VSET(GELU_C), x2, VSET(1.0f)));
        *dz = VMUL(VSET(GELU_K2), VFMADD(VSET(3.0f * GELU_C), x2, VSET(1.0f)));
    } else {
        z = x;
        *dz = VSET(1.0f);
    }
    return VDIV(VSET(1.0f), VADD(VSET(1.0f), vexp(VSUB(VSET(0.0f), z))));
}

TARGET void ACT_NAME(act_forward)(float *out, const float *gate, const float *up, int n, lw_activation act)
{
    int gelu = act == LW_ACT_GELU_TANH, i = 0;
    for (; i + W <= n; i += W) {
        V x = VLOAD(gate + i), dz, y = VMUL(x, act_sigmoid(x, gelu, &dz));
        if (up) y = VMUL(y, VLOAD(up + i));
        VSTORE(out + i, y);
    }
    if (i == n) return;
    /* the tail through one zero-padded vector */
    float g[W], u[W], o[W];
    size_t rest = (size_t)(n - i) * sizeof(float);
    memset(g, 0, sizeof g), memset(u, 0, sizeof u);
    memcpy(g, gate + i, rest);
    if (up) memcpy(u, up + i, rest);
    ACT_NAME(act_forward)(o, g, up ? u : NULL, W, act);
    memcpy(out + i, o, rest);
}

/* act' = s + x s (1 - s) dz/dx (d/dx of x sigmoid(z(x))). */
TARGET void ACT_NAME(act_backward)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                            lw_activation act)
{
    if (!dgate && !dup) return;
    int gelu = act == LW_ACT_GELU_TANH, i = 0;
    for (; i + W <= n; i += W) {
        V x = VLOAD(gate + i), dz, s = act_sigmoid(x, gelu, &dz), d = VLOAD(dout + i);
        if (dgate) {
            V grad = VFMADD(VMUL(VMUL(x, s), VSUB(VSET(1.0f), s)), dz, s);
            V dd = up ? VMUL(d, VLOAD(up + i)) : d;
            VSTORE(dgate + i, VFMADD(dd, grad, VLOAD(dgate + i)));
        }
        if (dup) VSTORE(dup + i, VFMADD(d, VMUL(x, s), VLOAD(dup + i)));
    }
    if (i == n) return;
    float g[W], u[W], d[W], dg[W], du[W];
    size_t rest = (size_t)(n - i) * sizeof(float);
    memset(g, 0, sizeof g), memset(u, 0, sizeof u), memset(d, 0, sizeof d), memset(dg, 0, sizeof dg),
        memset(du, 0, sizeof du);
    memcpy(g, gate + i, rest), memcpy(d, dout + i, rest);
    if (up) memcpy(u, up + i, rest);
    if (dgate) memcpy(dg, dgate + i, rest);
    if (dup) memcpy(du, dup + i, rest);
    ACT_NAME(act_backward)(dgate ? dg : NULL, dup ? du : NULL, d, g, up ? u : NULL, W, act);
    if (dgate) memcpy(dgate + i, dg, rest);
    if (dup) memcpy(dup + i, du, rest);
}
