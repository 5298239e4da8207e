/* Every op of runtime/ops/op_list.h on every CPU backend it names, in the spirit
 * of ggml's test-backend-ops: forward against a reference computed here in
 * double, backward against the reference where it is a sum of products and by
 * central finite differences on the small cases, frozen ops stated as such.
 * The list drives everything: an op in it without a driver here, without a
 * case, or (unless frozen) without a finite-difference case fails the suite,
 * and so does a *_forward / *_backward function of ops.h, op_matmul_bf16.h or
 * op_matmul_q8.h that the list does not name.
 *
 * Each (op, backend) runs in a fresh process (fork): the narrow kernels'
 * paths are chosen once per process from LWC_CPU_PATH (cpu_path.h), so the
 * child sets it before the first call and checks that the path it got is the
 * one it asked for. A path above this CPU is skipped, not failed. The child
 * reports through a pipe; the parent prints one row of the table
 *   op  backend  cases  fd  forward  backward  fd  max|err|
 * (err/tol columns: the worst error as a share of its tolerance, <= 1 passes).
 *
 * Tolerances (op_list.h): |got - want| <= atol + rtol * mag per element, want
 * and mag from the reference below. Finite differences: the check_ops.c rule,
 * L = sum(out0 * R) for a fixed random R, eps 1e-2, |fd - analytic| <=
 * 2e-2 |analytic| + 5e-3 max|analytic| + 1e-5; backward must ACCUMULATE, so
 * gradients start at GRAD_START; and a backward with every gradient NULL
 * (frozen) must run. */
#include "testlib.h"
#include "op_table.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "manifest.h"
#include "op_matmul_bf16.h"
#include "op_matmul_q8.h"
#include "ops.h"
#include "rng.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_frozen(const op_entry *e) { return op_is_frozen(e); }

enum { B_CPU, B_LOOPS, B_SCALAR, B_AVX2, B_AVX512, N_BACKENDS };
static const char *const BACKEND_NAME[N_BACKENDS] = {"cpu", "loops", "scalar", "avx2", "avx512"};

static bool backend_is_path(int b) { return b >= B_SCALAR; }
static lw_cpu_path backend_path(int b) { return (lw_cpu_path)(b - B_SCALAR); }

/* ---- one case, instantiated --------------------------------------------- */

enum { MAX_IN = 4, MAX_OUT = 3 };
#define GRAD_START 1.0f

typedef struct {
    const char *name;
    float *x, *g; /* g: the gradient, NULL when this input has none */
    size_t n;
} tensor;

typedef struct {
    const op_case *c;
    int backend;
    tensor in[MAX_IN], out[MAX_OUT];
    int n_in, n_out;
    double *want[MAX_OUT], *mag[MAX_OUT]; /* mag < 0: must be bit for bit */
    double *gwant[MAX_IN], *gmag[MAX_IN]; /* backward reference (with GRAD_START), or NULL */
    float *r;                             /* the loss weights, out[0].n */
    int *ints;                            /* ids, positions, targets */
    float *aux;                           /* rope's inv_freq, a widened weight copy */
    float *tmp;                           /* scratch of out[0].n */
    lw_attention_params ap;
    lw_bf16_matrix bm;
    lw_q8_matrix qm;
} inst;

typedef struct {
    void (*setup)(inst *);
    void (*reference)(inst *);
    lw_status (*forward)(inst *);
    lw_status (*backward)(inst *, const float *dy); /* NULL for frozen ops */
} driver;

static lw_rng g_rng;

static void *xalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) abort();
    return p;
}

static float *rand_floats(size_t n, float scale)
{
    float *a = xalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = (float)(2.0 * lw_rng_uniform(&g_rng) - 1.0) * scale;
    return a;
}

static void add_in(inst *I, const char *name, size_t n, float scale, bool grad)
{
    tensor *t = &I->in[I->n_in++];
    t->name = name, t->n = n, t->x = rand_floats(n, scale);
    if (grad) t->g = xalloc(n * sizeof *t->g);
}

static void add_out(inst *I, const char *name, size_t n)
{
    int k = I->n_out++;
    I->out[k].name = name, I->out[k].n = n, I->out[k].x = xalloc(n * sizeof(float));
    I->want[k] = xalloc(n * sizeof(double));
    I->mag[k] = xalloc(n * sizeof(double));
}

static void add_grad_ref(inst *I, int k)
{
    I->gwant[k] = xalloc(I->in[k].n * sizeof(double));
    I->gmag[k] = xalloc(I->in[k].n * sizeof(double));
}

static double gamma_n(int n)
{
    double u = ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}

#define D(k) (I->c->d[k])
#define IN(k) (I->in[k].x)
#define OUT(k) (I->out[k].x)

/* ---- matmul: fp32 (BLAS and loops), bf16 weights, int8 weights ----------- */

static void matmul_setup(inst *I)
{
    int T = D(0), in = D(1), out = D(2);
    bool narrow = I->c->op != LW_OPL_MATMUL;
    add_in(I, "x", (size_t)T * in, 1, I->c->op != LW_OPL_MATMUL_Q8 && I->c->op != LW_OPL_MATMUL_BF16_DP);
    add_in(I, "w", (size_t)out * in, 1, !narrow); /* narrow weights are frozen */
    if (D(3)) add_in(I, "b", out, 1, !narrow);
    add_out(I, "y", (size_t)T * out);
    if (I->c->op == LW_OPL_MATMUL_BF16 || I->c->op == LW_OPL_MATMUL_BF16_DP) {
        if (lw_bf16_matrix_pack(&I->bm, IN(1), out, in) != LW_OK) abort();
        I->aux = xalloc((size_t)out * in * sizeof(float)); /* the weights as the kernels see them */
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) I->aux[(size_t)o * in + i] = lw_f32_from_bf16(I->bm.w[(size_t)o * I->bm.ld + i]);
    } else if (I->c->op == LW_OPL_MATMUL_Q8) {
        if (lw_q8_matrix_pack(&I->qm, IN(1), out, in) != LW_OK) abort();
    }
    for (int k = 0; k < I->n_in; k++)
        if (I->in[k].g) add_grad_ref(I, k);
}

/* y = x w^T + b exactly, and gamma(in + 1) (sum |x w| + |b|): the bound of
 * any fp32 summation order. The weights are the ones the kernel multiplies
 * (widened bf16), and x too is rounded for the vdpbf16ps kernel. */
static void matmul_reference(inst *I)
{
    int T = D(0), in = D(1), out = D(2);
    const float *x = IN(0), *w = I->aux ? I->aux : IN(1), *b = D(3) ? IN(2) : NULL;
    bool round_x = I->c->op == LW_OPL_MATMUL_BF16_DP;
    double g = gamma_n(in + 1);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0, a = 0;
            for (int i = 0; i < in; i++) {
                double xv = x[(size_t)t * in + i];
                if (round_x) xv = lw_f32_from_bf16(lw_bf16_from_f32((float)xv));
                double p = xv * w[(size_t)o * in + i];
                s += p, a += fabs(p);
            }
            size_t k = (size_t)t * out + o;
            I->want[0][k] = s + (b ? b[o] : 0);
            I->mag[0][k] = g * (a + (b ? fabs(b[o]) : 0));
        }
    if (!I->gwant[0]) return;
    /* dx[t,i] = G + sum_o dy w; dw[o,i] = G + sum_t dy x; db[o] = G + sum_t dy */
    const float *dy = I->r;
    double gx = gamma_n(out + 1), gt = gamma_n(T + 1);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < in; i++) {
            double s = GRAD_START, a = GRAD_START;
            for (int o = 0; o < out; o++) {
                double p = (double)dy[(size_t)t * out + o] * w[(size_t)o * in + i];
                s += p, a += fabs(p);
            }
            I->gwant[0][(size_t)t * in + i] = s, I->gmag[0][(size_t)t * in + i] = gx * a;
        }
    if (!I->gwant[1]) return;
    for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
            double s = GRAD_START, a = GRAD_START;
            for (int t = 0; t < T; t++) {
                double p = (double)dy[(size_t)t * out + o] * x[(size_t)t * in + i];
                s += p, a += fabs(p);
            }
            I->gwant[1][(size_t)o * in + i] = s, I->gmag[1][(size_t)o * in + i] = gt * a;
        }
        if (b) {
            double s = GRAD_START, a = GRAD_START;
            for (int t = 0; t < T; t++) s += dy[(size_t)t * out + o], a += fabs(dy[(size_t)t * out + o]);
            I->gwant[2][o] = s, I->gmag[2][o] = gt * a;
        }
    }
}

static lw_status matmul_forward_drv(inst *I)
{
    const float *b = D(3) ? IN(2) : NULL;
    if (I->backend == B_LOOPS) matmul_forward_reference(OUT(0), IN(0), IN(1), b, D(0), D(1), D(2));
    else matmul_forward(OUT(0), IN(0), IN(1), b, D(0), D(1), D(2));
    return LW_OK;
}

static lw_status matmul_backward_drv(inst *I, const float *dy)
{
    float *db = D(3) ? I->in[2].g : NULL;
    (I->backend == B_LOOPS ? matmul_backward_reference : matmul_backward)(I->in[0].g, I->in[1].g, db, dy, IN(0),
                                                                          IN(1), D(0), D(1), D(2));
    return LW_OK;
}

/* The process's own path (what LWC_CPU_PATH chose) and the named one must
 * give the same bits. */
static lw_status bf16_forward_drv(inst *I)
{
    const float *b = D(3) ? IN(2) : NULL;
    if (I->c->op == LW_OPL_MATMUL_BF16_DP) return matmul_bf16_forward_vdpbf16ps(OUT(0), IN(0), &I->bm, b, D(0));
    lw_status st = matmul_bf16_forward(OUT(0), IN(0), &I->bm, b, D(0));
    if (st) return st;
    if ((st = matmul_bf16_forward_on(backend_path(I->backend), I->tmp, IN(0), &I->bm, b, D(0)))) return st;
    if (memcmp(I->tmp, OUT(0), I->out[0].n * sizeof(float)))
        return lw_fail(LW_ERR_INVALID, "matmul_bf16_forward and matmul_bf16_forward_on(%s) differ",
                       BACKEND_NAME[I->backend]);
    return LW_OK;
}

static lw_status bf16_backward_drv(inst *I, const float *dy)
{
    if (!I->in[0].g) { /* frozen: nothing to do, and the op has no NULL form */
        return LW_OK;
    }
    size_t n = I->in[0].n;
    float *copy = xalloc(n * sizeof *copy);
    memcpy(copy, I->in[0].g, n * sizeof *copy);
    lw_status st = matmul_bf16_backward_x(I->in[0].g, dy, &I->bm, D(0));
    if (!st) st = matmul_bf16_backward_x_on(backend_path(I->backend), copy, dy, &I->bm, D(0));
    if (!st && memcmp(copy, I->in[0].g, n * sizeof *copy))
        st = lw_fail(LW_ERR_INVALID, "matmul_bf16_backward_x and matmul_bf16_backward_x_on(%s) differ",
                     BACKEND_NAME[I->backend]);
    free(copy);
    return st;
}

/* The int8 product is exact in integers; what the paths add is the fp32
 * rounding of the scaled block sums, at most 2 gamma(nb + 24) M + 2 u |b|
 * with M = sx sum_i d (|qx_i| + 128) |qw_i| (the +128: the AVX-512 path's
 * unsigned offset), the one-sided half of check_matmul_narrow's bound. */
static void q8_reference(inst *I)
{
    int T = D(0), in = D(1), out = D(2);
    const lw_q8_matrix *m = &I->qm;
    const float *b = D(3) ? IN(2) : NULL;
    int nb = m->ld / LW_Q8_BLOCK;
    double g = gamma_n(nb + 24), u = ldexp(1.0, -24);
    int8_t *xq = xalloc((size_t)in);
    for (int t = 0; t < T; t++) {
        float sx;
        lw_q8_quantize_row(xq, &sx, IN(0) + (size_t)t * in, in);
        for (int o = 0; o < out; o++) {
            double s = 0, M = 0;
            for (int i = 0; i < in; i++) {
                double d = m->d[(size_t)o * nb + i / LW_Q8_BLOCK];
                int qw = m->q[(size_t)o * m->ld + i];
                s += (double)sx * d * xq[i] * qw;
                M += (double)sx * d * (abs(xq[i]) + 128) * abs(qw);
            }
            size_t k = (size_t)t * out + o;
            I->want[0][k] = s + (b ? b[o] : 0);
            I->mag[0][k] = 2 * g * M + 2 * u * (b ? fabs(b[o]) : 0);
        }
    }
    free(xq);
}

static lw_status q8_forward_drv(inst *I)
{
    const float *b = D(3) ? IN(2) : NULL;
    lw_status st = matmul_q8_forward(OUT(0), IN(0), &I->qm, b, D(0));
    if (st) return st;
    if ((st = matmul_q8_forward_on(backend_path(I->backend), I->tmp, IN(0), &I->qm, b, D(0)))) return st;
    if (memcmp(I->tmp, OUT(0), I->out[0].n * sizeof(float)))
        return lw_fail(LW_ERR_INVALID, "matmul_q8_forward and matmul_q8_forward_on(%s) differ",
                       BACKEND_NAME[I->backend]);
    return LW_OK;
}

/* ---- rmsnorm, layernorm -------------------------------------------------- */

#define NORM_EPS 1e-5f

static void rmsnorm_setup(inst *I)
{
    add_in(I, "x", (size_t)D(0) * D(1), D(4) / 1000.0f, true); /* small x: eps matters */
    if (D(3)) add_in(I, "w", D(1), 1, true);
    add_out(I, "y", (size_t)D(0) * D(1));
    add_out(I, "rstd", D(0));
}

static lw_norm_kind rms_kind(const inst *I) { return D(2) ? LW_NORM_RMSNORM_GEMMA : LW_NORM_RMSNORM; }

static void rmsnorm_reference(inst *I)
{
    int T = D(0), C = D(1);
    const float *x = IN(0), *w = D(3) ? IN(1) : NULL;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[(size_t)t * C + c] * x[(size_t)t * C + c];
        double r = 1.0 / sqrt(ss / C + NORM_EPS);
        I->want[1][t] = r, I->mag[1][t] = r;
        for (int c = 0; c < C; c++) {
            double g = !w ? 1.0 : D(2) ? 1.0 + w[c] : w[c];
            double y = x[(size_t)t * C + c] * r * g;
            I->want[0][(size_t)t * C + c] = y, I->mag[0][(size_t)t * C + c] = fabs(y);
        }
    }
}

static lw_status rmsnorm_forward_drv(inst *I)
{
    rmsnorm_forward(OUT(0), OUT(1), IN(0), D(3) ? IN(1) : NULL, D(0), D(1), NORM_EPS, rms_kind(I));
    return LW_OK;
}

static lw_status rmsnorm_backward_drv(inst *I, const float *dy)
{
    rmsnorm_backward(I->in[0].g, D(3) ? I->in[1].g : NULL, dy, IN(0), D(3) ? IN(1) : NULL, OUT(1), D(0), D(1),
                     rms_kind(I));
    return LW_OK;
}

static void layernorm_setup(inst *I)
{
    size_t n = (size_t)D(0) * D(1);
    add_in(I, "x", n, 2, true);
    add_in(I, "w", D(1), 1, true);
    add_in(I, "b", D(1), 1, true);
    add_out(I, "y", n);
    add_out(I, "mean", D(0));
    add_out(I, "rstd", D(0));
}

static void layernorm_reference(inst *I)
{
    int T = D(0), C = D(1);
    const float *x = IN(0), *w = IN(1), *b = IN(2);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * C;
        double s = 0, a = 0, v = 0;
        for (int c = 0; c < C; c++) s += xt[c], a += fabs(xt[c]);
        double mean = s / C;
        for (int c = 0; c < C; c++) v += (xt[c] - mean) * (xt[c] - mean);
        double r = 1.0 / sqrt(v / C + NORM_EPS);
        I->want[1][t] = mean, I->mag[1][t] = a / C;
        I->want[2][t] = r, I->mag[2][t] = r;
        for (int c = 0; c < C; c++) {
            double n = (xt[c] - mean) * r;
            I->want[0][(size_t)t * C + c] = n * w[c] + b[c];
            I->mag[0][(size_t)t * C + c] = fabs(n * w[c]) + fabs(b[c]);
        }
    }
}

static lw_status layernorm_forward_drv(inst *I)
{
    layernorm_forward(OUT(0), OUT(1), OUT(2), IN(0), IN(1), IN(2), D(0), D(1), NORM_EPS);
    return LW_OK;
}

static lw_status layernorm_backward_drv(inst *I, const float *dy)
{
    layernorm_backward(I->in[0].g, I->in[1].g, I->in[2].g, dy, IN(0), IN(1), OUT(1), OUT(2), D(0), D(1));
    return LW_OK;
}

/* ---- rope ---------------------------------------------------------------- */

static void rope_setup(inst *I)
{
    int T = D(0), H = D(1), Dh = D(2);
    add_in(I, "x", (size_t)T * H * Dh, 1, true);
    add_out(I, "y", (size_t)T * H * Dh);
    I->ints = xalloc((size_t)T * sizeof *I->ints);
    for (int t = 0; t < T; t++) I->ints[t] = t == 0 ? 0 : t * 61 + (t == T - 1 ? 9000 : 0); /* far positions too */
    I->aux = xalloc((size_t)Dh / 2 * sizeof *I->aux);
    lw_rope_scaling lin = {.kind = LW_ROPE_SCALING_LINEAR, .factor = 2};
    rope_inv_freq(I->aux, Dh, (float)D(4), D(5) ? &lin : NULL);
}

/* Angles pos * inv_freq exact in double; mag |x0 c| + |x1 s| (a rotated
 * pair is a difference). */
static void rope_reference(inst *I)
{
    int T = D(0), H = D(1), Dh = D(2), half = Dh / 2;
    bool il = D(3);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                double ang = (double)I->ints[t] * I->aux[i], c = cos(ang), s = sin(ang);
                size_t base = ((size_t)t * H + h) * Dh;
                size_t a = base + (il ? 2 * i : i), b = base + (il ? 2 * i + 1 : i + half);
                double x0 = IN(0)[a], x1 = IN(0)[b];
                I->want[0][a] = x0 * c - x1 * s, I->mag[0][a] = fabs(x0 * c) + fabs(x1 * s);
                I->want[0][b] = x0 * s + x1 * c, I->mag[0][b] = fabs(x0 * s) + fabs(x1 * c);
            }
}

static lw_status rope_forward_drv(inst *I)
{
    memcpy(OUT(0), IN(0), I->in[0].n * sizeof(float));
    rope_forward(OUT(0), I->ints, I->aux, D(0), D(1), D(2), D(3));
    return LW_OK;
}

/* rope_backward rotates dy back in place; the harness's rule is accumulate. */
static lw_status rope_backward_drv(inst *I, const float *dy)
{
    if (!I->in[0].g) return LW_OK;
    memcpy(I->tmp, dy, I->in[0].n * sizeof(float));
    rope_backward(I->tmp, I->ints, I->aux, D(0), D(1), D(2), D(3));
    for (size_t k = 0; k < I->in[0].n; k++) I->in[0].g[k] += I->tmp[k];
    return LW_OK;
}

/* ---- attention ----------------------------------------------------------- */

static void attention_setup(inst *I)
{
    int Tq = D(0), Tk = D(1), Hq = D(2), Hkv = D(3), Dh = D(4);
    add_in(I, "q", (size_t)Tq * Hq * Dh, 1.5f, true);
    add_in(I, "k", (size_t)Tk * Hkv * Dh, 1.5f, true);
    add_in(I, "v", (size_t)Tk * Hkv * Dh, 1, true);
    add_out(I, "out", (size_t)Tq * Hq * Dh);
    add_out(I, "att", (size_t)Hq * Tq * Tk);
    I->ap = (lw_attention_params){.causal = D(5), .q_offset = D(6), .window = D(7), .scale = 1 / sqrtf((float)Dh)};
}

/* The full score matrix with the mask written out: key j is visible to
 * query i (at key position i + q_offset) when causal allows it and it is in
 * the window or one of the n_sink first keys. Masked probabilities must be
 * exactly 0. */
static void attention_reference(inst *I)
{
    int Tq = D(0), Tk = D(1), Hq = D(2), Hkv = D(3), Dh = D(4), n_sink = D(8);
    const lw_attention_params *p = &I->ap;
    const float *q = IN(0), *k = IN(1), *v = IN(2);
    double *s = xalloc((size_t)Tk * sizeof *s);
    for (int h = 0; h < Hq; h++) {
        int hk = h / (Hq / Hkv);
        for (int i = 0; i < Tq; i++) {
            int at = i + p->q_offset;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Tk; j++) {
                bool ok = (!p->causal || j <= at) && (p->window <= 0 || j > at - p->window || j < n_sink);
                double d = 0;
                for (int e = 0; e < Dh; e++) d += (double)q[((size_t)i * Hq + h) * Dh + e] * k[((size_t)j * Hkv + hk) * Dh + e];
                s[j] = ok ? d * p->scale : -INFINITY;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < Tk; j++) sum += s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - mx);
            for (int j = 0; j < Tk; j++) {
                size_t a = ((size_t)h * Tq + i) * Tk + j;
                I->want[1][a] = s[j] / sum;
                I->mag[1][a] = s[j] == 0 ? -1 : s[j] / sum;
            }
            for (int e = 0; e < Dh; e++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] / sum * v[((size_t)j * Hkv + hk) * Dh + e];
                size_t a = ((size_t)i * Hq + h) * Dh + e;
                I->want[0][a] = o, I->mag[0][a] = fabs(o);
            }
        }
    }
    free(s);
}

/* n_sink 0 goes through the plain entry points, so both are run. Then the
 * online-softmax form (att NULL) into tmp, held to the stored-probabilities
 * form (itself held to the reference) with the op's tolerance: the inputs
 * are the finite differences' perturbed ones too, which the reference is not. */
static lw_status attention_forward_drv(inst *I)
{
    if (D(8)) attention_forward_sink(OUT(0), OUT(1), IN(0), IN(1), IN(2), D(0), D(1), D(2), D(3), D(4), &I->ap, D(8));
    else attention_forward(OUT(0), OUT(1), IN(0), IN(1), IN(2), D(0), D(1), D(2), D(3), D(4), &I->ap);
    size_t n = I->out[0].n;
    for (size_t a = 0; a < n; a++) I->tmp[a] = NAN;
    if (D(8)) attention_forward_sink(I->tmp, NULL, IN(0), IN(1), IN(2), D(0), D(1), D(2), D(3), D(4), &I->ap, D(8));
    else attention_forward(I->tmp, NULL, IN(0), IN(1), IN(2), D(0), D(1), D(2), D(3), D(4), &I->ap);
    const op_entry *e = &OPS[LW_OPL_ATTENTION];
    for (size_t a = 0; a < n; a++)
        if (!(fabs((double)I->tmp[a] - OUT(0)[a]) <= e->atol + e->rtol * fabs(OUT(0)[a])))
            return lw_fail(LW_ERR_INVALID, "%s: the online softmax (att NULL) gives out[%zu] = %.9g, with att %.9g",
                           I->c->label, a, (double)I->tmp[a], (double)OUT(0)[a]);
    return LW_OK;
}

static lw_status attention_backward_drv(inst *I, const float *dy)
{
    if (D(8))
        attention_backward_sink(I->in[0].g, I->in[1].g, I->in[2].g, dy, OUT(1), IN(0), IN(1), IN(2), D(0), D(1), D(2),
                                D(3), D(4), &I->ap, D(8));
    else
        attention_backward(I->in[0].g, I->in[1].g, I->in[2].g, dy, OUT(1), IN(0), IN(1), IN(2), D(0), D(1), D(2), D(3),
                           D(4), &I->ap);
    return LW_OK;
}

/* ---- activations --------------------------------------------------------- */

static double gelu_tanh_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/* A scale > 1 reaches |x| where sigmoid saturates and the vector exp clamps. */
static float act_scale(const inst *I, int k) { return D(k) > 0 ? (float)D(k) : 1.0f; }

static void glu_setup(inst *I)
{
    add_in(I, "gate", D(0), 4 * act_scale(I, 2), true);
    add_in(I, "up", D(0), 2, true);
    add_out(I, "out", D(0));
    add_grad_ref(I, 0);
    add_grad_ref(I, 1);
}

/* d/dx of x sigmoid(z(x)) in double: the SiLU and the tanh GELU (whose
 * 0.5 (1 + tanh u) is sigmoid(2u)). */
static double act_grad_ref(double x, bool gelu)
{
    double k = 0.7978845608028654, c = 0.044715;
    double z = gelu ? 2 * k * (x + c * x * x * x) : x, dz = gelu ? 2 * k * (1 + 3 * c * x * x) : 1;
    double s = 1 / (1 + exp(-z));
    return s + x * s * (1 - s) * dz;
}

/* Forward, and the gradients with dy = R (GRAD_START + the term; mag the term). */
static void glu_reference(inst *I)
{
    for (int k = 0; k < D(0); k++) {
        double g = IN(0)[k], a = D(1) ? gelu_tanh_ref(g) : g / (1.0 + exp(-g)), y = a * IN(1)[k];
        I->want[0][k] = y, I->mag[0][k] = fabs(y);
        double dg = (double)I->r[k] * IN(1)[k] * act_grad_ref(g, D(1)), du = (double)I->r[k] * a;
        I->gwant[0][k] = GRAD_START + dg, I->gmag[0][k] = fabs(dg);
        I->gwant[1][k] = GRAD_START + du, I->gmag[1][k] = fabs(du);
    }
}

static lw_activation glu_act(const inst *I) { return D(1) ? LW_ACT_GELU_TANH : LW_ACT_SILU; }

static lw_status glu_forward_drv(inst *I)
{
    glu_forward(OUT(0), IN(0), IN(1), D(0), glu_act(I));
    return LW_OK;
}

static lw_status glu_backward_drv(inst *I, const float *dy)
{
    glu_backward(I->in[0].g, I->in[1].g, dy, IN(0), IN(1), D(0), glu_act(I));
    return LW_OK;
}

static void gelu_setup(inst *I)
{
    bool tanh_form = I->c->op == LW_OPL_GELU_TANH;
    add_in(I, "x", D(0), 4 * (tanh_form ? act_scale(I, 1) : 1.0f), true);
    add_out(I, "y", D(0));
    if (tanh_form) add_grad_ref(I, 0);
}

static void gelu_reference(inst *I)
{
    for (int k = 0; k < D(0); k++) {
        I->want[0][k] = gelu_tanh_ref(IN(0)[k]), I->mag[0][k] = fabs(I->want[0][k]);
        double dx = (double)I->r[k] * act_grad_ref(IN(0)[k], true);
        I->gwant[0][k] = GRAD_START + dx, I->gmag[0][k] = fabs(dx);
    }
}

static lw_status gelu_forward_drv(inst *I)
{
    gelu_tanh_forward(OUT(0), IN(0), D(0));
    return LW_OK;
}

static lw_status gelu_backward_drv(inst *I, const float *dy)
{
    if (I->in[0].g) gelu_tanh_backward(I->in[0].g, dy, IN(0), D(0));
    return LW_OK;
}

static double gelu_erf_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static void gelu_erf_reference(inst *I)
{
    for (int k = 0; k < D(0); k++) I->want[0][k] = gelu_erf_ref(IN(0)[k]), I->mag[0][k] = fabs(I->want[0][k]);
}

static lw_status gelu_erf_forward_drv(inst *I)
{
    gelu_erf_forward(OUT(0), IN(0), D(0));
    return LW_OK;
}

static lw_status gelu_erf_backward_drv(inst *I, const float *dy)
{
    if (I->in[0].g) gelu_erf_backward(I->in[0].g, dy, IN(0), D(0));
    return LW_OK;
}

/* ---- embedding, cross-entropy -------------------------------------------- */

/* Rows cycle through the table; the last of three or more is -1 (a zero
 * row). One fp32 product per element: bit for bit. */
static void embedding_setup(inst *I)
{
    int T = D(0), C = D(1), rows = D(2);
    add_in(I, "table", (size_t)rows * C, 1, false);
    add_out(I, "y", (size_t)T * C);
    I->ints = xalloc((size_t)T * sizeof *I->ints);
    for (int t = 0; t < T; t++) I->ints[t] = T > 2 && t == T - 1 ? -1 : (t * 7 + 2) % rows;
}

static void embedding_reference(inst *I)
{
    int T = D(0), C = D(1);
    float scale = D(3) / 100.0f;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            size_t k = (size_t)t * C + c;
            I->want[0][k] = I->ints[t] < 0 ? 0.0f : (float)((double)IN(0)[(size_t)I->ints[t] * C + c] * scale);
            I->mag[0][k] = -1;
        }
}

static lw_status embedding_forward_drv(inst *I)
{
    embedding_forward(OUT(0), I->ints, IN(0), D(0), D(1), D(3) / 100.0f);
    return LW_OK;
}

/* Out 0 is the loss, so L = R[0] * loss and dloss = R[0]. */
static void ce_setup(inst *I)
{
    int T = D(0), V = D(1);
    add_in(I, "logits", (size_t)T * V, 3, true);
    add_out(I, "loss", 1);
    add_out(I, "probs", (size_t)T * V);
    I->ints = xalloc((size_t)T * sizeof *I->ints);
    for (int t = 0; t < T; t++) I->ints[t] = t % 3 == 1 ? -1 : (3 * t) % V;
}

static void ce_reference(inst *I)
{
    int T = D(0), V = D(1), count = 0;
    double total = 0;
    for (int t = 0; t < T; t++) {
        const float *l = IN(0) + (size_t)t * V;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < V; i++) mx = fmax(mx, l[i]);
        for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
        for (int i = 0; i < V; i++) {
            double p = exp(l[i] - mx) / sum;
            I->want[1][(size_t)t * V + i] = p, I->mag[1][(size_t)t * V + i] = p;
        }
        if (I->ints[t] >= 0) total += mx + log(sum) - l[I->ints[t]], count++;
    }
    I->want[0][0] = count ? total / count : 0;
    I->mag[0][0] = fabs(I->want[0][0]);
}

static lw_status ce_forward_drv(inst *I)
{
    OUT(0)[0] = cross_entropy_forward(OUT(1), IN(0), I->ints, D(0), D(1));
    return LW_OK;
}

static lw_status ce_backward_drv(inst *I, const float *dy)
{
    if (I->in[0].g) cross_entropy_backward(I->in[0].g, OUT(1), I->ints, D(0), D(1), dy[0]);
    return LW_OK;
}

/* ---- the output head fused with log-softmax ---------------------------- */

/* Inputs x[T, H] and w[V, H]; out 0 the picked log-probs, out 1 lse[T].
 * ints: the pairs' rows, then their ids. */
static void head_setup(inst *I)
{
    int T = D(0), H = D(1), V = D(2), n = D(3);
    add_in(I, "x", (size_t)T * H, 1, true);
    add_in(I, "w", (size_t)V * H, 1, true);
    add_out(I, "logp", n);
    add_out(I, "lse", T);
    I->ints = xalloc(2 * (size_t)n * sizeof *I->ints);
    for (int k = 0; k < n; k++) {
        I->ints[k] = n > T && T == 2 ? 0 : k % T;
        I->ints[n + k] = k == n - 1 ? V - 1 : (7 * k + 3) % V;
    }
    I->aux = xalloc(HEAD_SCRATCH * sizeof(float));
}

/* In double: the logits, their logsumexp, and the picked ones; mag is the
 * sum of |terms| of the difference (|picked logit| + |lse|). */
static void head_reference(inst *I)
{
    int T = D(0), H = D(1), V = D(2), n = D(3);
    double *l = xalloc((size_t)T * V * sizeof *l);
    for (int t = 0; t < T; t++) {
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) {
            double d = 0;
            for (int i = 0; i < H; i++) d += (double)IN(0)[(size_t)t * H + i] * IN(1)[(size_t)v * H + i];
            l[(size_t)t * V + v] = d, mx = fmax(mx, d);
        }
        for (int v = 0; v < V; v++) sum += exp(l[(size_t)t * V + v] - mx);
        I->want[1][t] = mx + log(sum), I->mag[1][t] = fabs(mx) + log(sum);
    }
    for (int k = 0; k < n; k++) {
        int t = I->ints[k], id = I->ints[n + k];
        I->want[0][k] = l[(size_t)t * V + id] - I->want[1][t];
        I->mag[0][k] = fabs(l[(size_t)t * V + id]) + I->mag[1][t];
    }
    free(l);
}

static lw_status head_forward_drv(inst *I)
{
    int n = D(3);
    head_logsoftmax_forward(OUT(0), OUT(1), IN(0), IN(1), D(0), D(1), D(2), I->ints, I->ints + n, n, I->aux);
    return LW_OK;
}

static lw_status head_backward_drv(inst *I, const float *dy)
{
    int n = D(3);
    head_logsoftmax_backward(I->in[0].g, I->in[1].g, dy, IN(0), IN(1), D(0), D(1), D(2), I->ints, I->ints + n, n,
                             OUT(1), I->aux);
    return LW_OK;
}

#undef D
#undef IN
#undef OUT

/* ---- the drivers, by op id: an op of the list without one fails -------- */

static const driver DRIVERS[LW_OPL_COUNT] = {
    [LW_OPL_MATMUL] = {matmul_setup, matmul_reference, matmul_forward_drv, matmul_backward_drv},
    [LW_OPL_MATMUL_BF16] = {matmul_setup, matmul_reference, bf16_forward_drv, bf16_backward_drv},
    [LW_OPL_MATMUL_BF16_DP] = {matmul_setup, matmul_reference, bf16_forward_drv, NULL},
    [LW_OPL_MATMUL_Q8] = {matmul_setup, q8_reference, q8_forward_drv, NULL},
    [LW_OPL_RMSNORM] = {rmsnorm_setup, rmsnorm_reference, rmsnorm_forward_drv, rmsnorm_backward_drv},
    [LW_OPL_LAYERNORM] = {layernorm_setup, layernorm_reference, layernorm_forward_drv, layernorm_backward_drv},
    [LW_OPL_ROPE] = {rope_setup, rope_reference, rope_forward_drv, rope_backward_drv},
    [LW_OPL_ATTENTION] = {attention_setup, attention_reference, attention_forward_drv, attention_backward_drv},
    [LW_OPL_GLU] = {glu_setup, glu_reference, glu_forward_drv, glu_backward_drv},
    [LW_OPL_GELU_TANH] = {gelu_setup, gelu_reference, gelu_forward_drv, gelu_backward_drv},
    [LW_OPL_GELU_ERF] = {gelu_setup, gelu_erf_reference, gelu_erf_forward_drv, gelu_erf_backward_drv},
    [LW_OPL_EMBEDDING] = {embedding_setup, embedding_reference, embedding_forward_drv, NULL},
    [LW_OPL_CROSS_ENTROPY] = {ce_setup, ce_reference, ce_forward_drv, ce_backward_drv},
    [LW_OPL_HEAD_LOGSOFTMAX] = {head_setup, head_reference, head_forward_drv, head_backward_drv},
};

/* ---- the checks of one (op, backend), in a child process ------------------ */

typedef struct {
    int skipped;          /* the backend is a path above this CPU */
    int cases, fd_cases, bwd_ref_cases;
    double fwd_share, bwd_share, fd_share, max_err;
    int failed;
    char msg[600];
} result;

__attribute__((format(printf, 2, 3))) static void note_fail(result *res, const char *fmt, ...)
{
    if (res->failed++) return; /* the first failure is the one worth reading */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
}

/* got against want: the worst share of the tolerance, the largest error. */
static void compare(result *res, const op_case *c, const char *what, const float *got, const double *want,
                    const double *mag, size_t n, double rtol, double atol, double *share)
{
    for (size_t k = 0; k < n; k++) {
        double err = fabs((double)got[k] - want[k]);
        bool exact = mag[k] < 0;
        double tol = exact ? 0 : atol + rtol * mag[k];
        if (!isfinite(got[k]) || (exact ? (float)want[k] != got[k] : !(err <= tol))) {
            note_fail(res, "%s: %s[%zu] = %.9g, want %.9g (tolerance %.3g)", c->label, what, k, (double)got[k], want[k],
                 tol);
            continue;
        }
        if (!exact) *share = fmax(*share, tol > 0 ? err / tol : 0);
        res->max_err = fmax(res->max_err, err);
    }
}

static double loss_of(inst *I, const driver *dr, result *res)
{
    if (dr->forward(I) != LW_OK) note_fail(res, "%s: forward in finite differences: %s", I->c->label, lw_last_error());
    double s = 0;
    for (size_t k = 0; k < I->out[0].n; k++) s += (double)I->out[0].x[k] * I->r[k];
    return s;
}

static void finite_differences(inst *I, const driver *dr, result *res)
{
    const float eps = 1e-2f;
    for (int t = 0; t < I->n_in; t++) {
        tensor *x = &I->in[t];
        if (!x->g) continue;
        double maxg = 0;
        for (size_t k = 0; k < x->n; k++) maxg = fmax(maxg, fabs(x->g[k] - GRAD_START));
        if (!(maxg > 0)) note_fail(res, "%s: d%s is all zero", I->c->label, x->name);
        for (size_t k = 0; k < x->n; k++) {
            float save = x->x[k], hi = save + eps, lo = save - eps;
            x->x[k] = hi;
            double lp = loss_of(I, dr, res);
            x->x[k] = lo;
            double lm = loss_of(I, dr, res);
            x->x[k] = save;
            double num = (lp - lm) / ((double)hi - (double)lo), ana = x->g[k] - GRAD_START;
            double tol = 2e-2 * fabs(ana) + 5e-3 * maxg + 1e-5, err = fabs(num - ana);
            if (!(err <= tol))
                note_fail(res, "%s: d%s[%zu]: backward %.6g, finite difference %.6g", I->c->label, x->name, k, ana, num);
            else res->fd_share = fmax(res->fd_share, err / tol);
        }
    }
}

static void inst_free(inst *I)
{
    for (int k = 0; k < I->n_in; k++) free(I->in[k].x), free(I->in[k].g), free(I->gwant[k]), free(I->gmag[k]);
    for (int k = 0; k < I->n_out; k++) free(I->out[k].x), free(I->want[k]), free(I->mag[k]);
    free(I->r), free(I->ints), free(I->aux), free(I->tmp);
    if (I->bm.w) lw_bf16_matrix_free(&I->bm);
    if (I->qm.q) lw_q8_matrix_free(&I->qm);
}

static void run_case(int ci, int backend, result *res)
{
    const op_case *c = &CASES[ci];
    const op_entry *e = &OPS[c->op];
    const driver *dr = &DRIVERS[c->op];
    inst I = {.c = c, .backend = backend};
    lw_rng_seed(&g_rng, 1000 + (uint64_t)ci); /* the same inputs on every backend */
    dr->setup(&I);
    I.r = rand_floats(I.out[0].n, 1);
    I.tmp = xalloc((I.out[0].n > I.in[0].n ? I.out[0].n : I.in[0].n) * sizeof(float));
    dr->reference(&I);
    res->cases++;
    /* forward: every output written (NaN before), against the reference */
    for (int k = 0; k < I.n_out; k++)
        for (size_t j = 0; j < I.out[k].n; j++) I.out[k].x[j] = NAN;
    if (dr->forward(&I) != LW_OK) {
        note_fail(res, "%s: forward: %s", c->label, lw_last_error());
        inst_free(&I);
        return;
    }
    for (int k = 0; k < I.n_out; k++)
        compare(res, c, I.out[k].name, I.out[k].x, I.want[k], I.mag[k], I.out[k].n, e->rtol, e->atol, &res->fwd_share);
    /* the same inputs give the same bits (training runs are compared bit for bit) */
    float *again = xalloc(I.out[0].n * sizeof *again);
    memcpy(again, I.out[0].x, I.out[0].n * sizeof *again);
    if (dr->forward(&I) != LW_OK || memcmp(again, I.out[0].x, I.out[0].n * sizeof *again))
        note_fail(res, "%s: a second forward on the same inputs gave other bits", c->label);
    free(again);
    if (!dr->backward) {
        inst_free(&I);
        return;
    }
    for (int t = 0; t < I.n_in; t++)
        for (size_t k = 0; I.in[t].g && k < I.in[t].n; k++) I.in[t].g[k] = GRAD_START;
    if (dr->backward(&I, I.r) != LW_OK) note_fail(res, "%s: backward: %s", c->label, lw_last_error());
    bool any_ref = false;
    for (int t = 0; t < I.n_in; t++) {
        if (!I.gwant[t]) continue;
        char what[32];
        snprintf(what, sizeof what, "d%s", I.in[t].name);
        compare(res, c, what, I.in[t].g, I.gwant[t], I.gmag[t], I.in[t].n, e->rtol, e->atol, &res->bwd_share);
        any_ref = true;
    }
    res->bwd_ref_cases += any_ref;
    if (c->fd) {
        finite_differences(&I, dr, res);
        res->fd_cases++;
    }
    /* every gradient frozen: backward must write nothing and not fault */
    float *g[MAX_IN];
    for (int t = 0; t < I.n_in; t++) g[t] = I.in[t].g, I.in[t].g = NULL;
    if (dr->backward(&I, I.r) != LW_OK) note_fail(res, "%s: backward with every gradient NULL: %s", c->label, lw_last_error());
    for (int t = 0; t < I.n_in; t++) I.in[t].g = g[t];
    inst_free(&I);
}

static void run_op_backend(int op, int backend, result *res)
{
    if (backend_is_path(backend)) {
        lw_cpu_path got;
        if (lw_cpu_path_get(&got) != LW_OK) {
            note_fail(res, "LWC_CPU_PATH=%s: %s", BACKEND_NAME[backend], lw_last_error());
            return;
        }
        if (got != backend_path(backend)) {
            note_fail(res, "LWC_CPU_PATH=%s gave the %s path", BACKEND_NAME[backend], lw_cpu_path_name(got));
            return;
        }
    }
    for (int ci = 0; ci < N_CASES; ci++)
        if (CASES[ci].op == op) run_case(ci, backend, res);
}

/* In a fresh process: the path switch is read once per process. */
static result run_in_child(int op, int backend)
{
    result res = {0};
    if (backend_is_path(backend) && backend_path(backend) > lw_cpu_path_detected()) {
        res.skipped = 1;
        return res;
    }
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (backend_is_path(backend)) setenv("LWC_CPU_PATH", BACKEND_NAME[backend], 1);
        else unsetenv("LWC_CPU_PATH");
        result r = {0};
        run_op_backend(op, backend, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        exit(w == (ssize_t)sizeof r ? 0 : 3); /* exit, not _exit: the leak checker runs (SANITIZE=1) */
    }
    close(fds[1]);
    ssize_t got = read(fds[0], &res, sizeof res);
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (got != (ssize_t)sizeof res || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        memset(&res, 0, sizeof res);
        res.failed = 1;
        snprintf(res.msg, sizeof res.msg, "the child died (%s %d: a crash or a sanitizer's report, on stderr)",
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    return res;
}

static void print_share(char *buf, size_t n, int count, double share)
{
    if (count) snprintf(buf, n, "%.3f", share);
    else snprintf(buf, n, "-");
}

START_TEST(op_on_every_backend)
{
    const op_entry *e = &OPS[_i];
    int failures = 0;
    char first[700] = "";
    for (int b = 0; b < N_BACKENDS; b++) {
        if (!(e->backends & (1 << b))) continue;
        result r = run_in_child(_i, b);
        if (r.skipped) {
            printf("%-15s %-7s  skipped: this CPU runs up to %s\n", e->name, BACKEND_NAME[b],
                   lw_cpu_path_name(lw_cpu_path_detected()));
            continue;
        }
        char fw[16], bw[16], fd[16];
        print_share(fw, sizeof fw, r.cases, r.fwd_share);
        print_share(bw, sizeof bw, r.bwd_ref_cases, r.bwd_share);
        print_share(fd, sizeof fd, r.fd_cases, r.fd_share);
        printf("%-15s %-7s %5d %3d %8s %8s %8s %10.2e  %s\n", e->name, BACKEND_NAME[b], r.cases, r.fd_cases, fw,
               is_frozen(e) ? "frozen" : bw, is_frozen(e) ? "frozen" : fd, r.max_err, r.failed ? "FAIL" : "pass");
        fflush(stdout);
        if (r.failed && !failures++)
            snprintf(first, sizeof first, "%s on %s: %s (%d failures)", e->name, BACKEND_NAME[b], r.msg, r.failed);
        if (r.failed) continue;
        ck_assert_msg(r.cases > 0, "%s has no case", e->name);
        if (!is_frozen(e)) ck_assert_msg(r.fd_cases > 0, "%s on %s: no finite-difference case", e->name, BACKEND_NAME[b]);
    }
    ck_assert_msg(!failures, "%s", first);
}
END_TEST

/* ---- the list is complete ------------------------------------------------ */

START_TEST(every_op_has_a_driver_cases_and_a_backward_check)
{
    for (int op = 0; op < LW_OPL_COUNT; op++) {
        const op_entry *e = &OPS[op];
        const driver *dr = &DRIVERS[op];
        ck_assert_msg(e->name && *e->forward && *e->backward, "op %d of op_list.h is incomplete", op);
        ck_assert_msg(dr->setup && dr->reference && dr->forward, "%s has no driver in check_backend_ops.c", e->name);
        ck_assert_msg(e->backends != 0, "%s names no backend", e->name);
        ck_assert_msg(is_frozen(e) == (dr->backward == NULL),
                      "%s: the list says backward \"%s\" but the driver %s one", e->name, e->backward,
                      dr->backward ? "has" : "has no");
        int cases = 0, fd = 0;
        for (int ci = 0; ci < N_CASES; ci++)
            if (CASES[ci].op == op) cases++, fd += CASES[ci].fd;
        ck_assert_msg(cases > 0, "%s has no case in op_list.h", e->name);
        ck_assert_msg(is_frozen(e) || fd > 0, "%s has a backward but no finite-difference case", e->name);
        ck_assert_msg(!is_frozen(e) || fd == 0, "%s is frozen but asks for finite differences", e->name);
    }
}
END_TEST

/* Is `fn` named in a forward or backward column? */
static bool listed(const char *fn)
{
    for (int op = 0; op < LW_OPL_COUNT; op++)
        if (names_word(OPS[op].forward, fn) || names_word(OPS[op].backward, fn)) return true;
    return false;
}

/* Every function declared in the op headers whose name says forward or
 * backward: a new one must be added to the list, which then asks for cases. */
START_TEST(every_op_function_is_in_the_list)
{
    static const char *const headers[] = {"runtime/ops/ops.h", "runtime/ops/op_matmul_bf16.h", "runtime/ops/op_matmul_q8.h"};
    int seen = 0;
    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
        char *text = tl_read_file(tl_src(headers[h]), NULL);
        ck_assert_msg(text != NULL, "cannot read %s", headers[h]);
        for (char *p = text; (p = strchr(p, '(')) != NULL; p++) {
            char *q = p;
            while (q > text && (isalnum((unsigned char)q[-1]) || q[-1] == '_')) q--;
            char name[96];
            size_t len = (size_t)(p - q);
            if (len == 0 || len >= sizeof name) continue;
            memcpy(name, q, len);
            name[len] = '\0';
            /* a declaration: the name starts its line's type ("void f(", "float f(", "lw_status f(") */
            char *line = q;
            while (line > text && line[-1] != '\n') line--;
            if (*line == ' ' || *line == '/' || *line == '*' || *line == '#') continue;
            if (!strstr(name, "_forward") && !strstr(name, "_backward")) continue;
            seen++;
            ck_assert_msg(listed(name), "%s (%s) is not in runtime/ops/op_list.h: add an entry and its cases", name,
                          headers[h]);
        }
        free(text);
    }
    ck_assert_int_ge(seen, 20); /* the scan found the declarations */
}
END_TEST

/* Every extern "C" kernel that the templates generate for the default pair
 * is named by an op of the list (its kernels column) or by
 * LW_KERNELS_NOT_OPS, and every kernel the list names exists: a new kernel
 * cannot go untested either. (The GPU harness then launches each one.) */
START_TEST(every_kernel_is_in_the_list)
{
    lw_manifest *man = calloc(1, sizeof *man);
    ck_assert_ptr_nonnull(man);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), man) == LW_OK, "%s",
                  lw_last_error());
    char *src[3];
    for (int unit = 0; unit < 3; unit++) {
        lw_strbuf sb = {0};
        lw_status st = unit == 2 ? lw_gen_bridge_kernels(tl_src("templates"), man, &sb)
                                 : lw_gen_model_kernels(tl_src("templates"), unit ? &man->receiver : &man->sender,
                                                        man->bridge.soft_tokens, &sb);
        ck_assert_msg(st == LW_OK && !sb.failed, "generating unit %d: %s", unit, lw_last_error());
        src[unit] = sb.data;
    }
    static const char decl[] = "extern \"C\" __global__ void ";
    int found = 0;
    for (int unit = 0; unit < 3; unit++)
        for (const char *p = src[unit]; (p = strstr(p, decl)) != NULL;) {
            p += strlen(decl);
            char name[64];
            size_t len = strcspn(p, "(");
            ck_assert_uint_lt(len, sizeof name);
            memcpy(name, p, len);
            name[len] = '\0';
            bool named = false;
            for (int op = 0; op < LW_OPL_COUNT; op++) named |= op_has_kernels(&OPS[op]) && names_word(OPS[op].kernels, name);
            for (int k = 0; k < N_KERNELS_NOT_OPS; k++) named |= strcmp(KERNELS_NOT_OPS[k], name) == 0;
            ck_assert_msg(named, "kernel %s is neither in an op's kernels column of runtime/ops/op_list.h nor in "
                          "LW_KERNELS_NOT_OPS", name);
            found++;
        }
    ck_assert_int_ge(found, 20);
    for (int op = 0; op < LW_OPL_COUNT; op++) {
        char name[64];
        for (int k = 0; op_kernel(&OPS[op], k, name, sizeof name); k++) {
            bool there = false;
            for (int unit = 0; unit < 3; unit++) there |= names_word(src[unit], name);
            ck_assert_msg(there, "%s names kernel %s, which the templates do not generate", OPS[op].name, name);
        }
    }
    for (int k = 0; k < N_KERNELS_NOT_OPS; k++) {
        bool there = false;
        for (int unit = 0; unit < 3; unit++) there |= names_word(src[unit], KERNELS_NOT_OPS[k]);
        ck_assert_msg(there, "LW_KERNELS_NOT_OPS names %s, which the templates do not generate", KERNELS_NOT_OPS[k]);
    }
    for (int unit = 0; unit < 3; unit++) free(src[unit]);
    free(man);
}
END_TEST

int main(void)
{
    printf("backend ops (tests/check_backend_ops.c; err/tol: worst error as a share of its tolerance)\n");
    printf("%-15s %-7s %5s %3s %8s %8s %8s %10s  %s\n", "op", "backend", "cases", "fd", "forward", "backward",
           "fd", "max|err|", "result");
    fflush(stdout);
    Suite *s = suite_create("backend_ops");
    TCase *list = tcase_create("list");
    tcase_add_test(list, every_op_has_a_driver_cases_and_a_backward_check);
    tcase_add_test(list, every_op_function_is_in_the_list);
    tcase_add_test(list, every_kernel_is_in_the_list);
    suite_add_tcase(s, list);
    TCase *ops = tcase_create("ops");
    tcase_set_timeout(ops, 300);
    tcase_add_loop_test(ops, op_on_every_backend, 0, LW_OPL_COUNT);
    suite_add_tcase(s, ops);
    return tl_run_suite(s);
}
