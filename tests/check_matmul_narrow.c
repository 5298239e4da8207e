/* The narrow-weight matrix products (runtime/ops/op_matmul_bf16.c,
 * op_matmul_q8.c) beyond what the backend-ops harness checks: the harness
 * (tests/check_backend_ops.c, cases in runtime/ops/op_list.h) holds every path,
 * in a fresh process per LWC_CPU_PATH, to the exact product of the weights
 * as stored (bf16 or int8); here every path is held to the fp32 product of
 * the UNROUNDED weights (what the rounding costs), on shapes that fill no
 * vector evenly; the rounding to bf16 and the int8 quantisation themselves;
 * and the LWC_CPU_PATH switch really choosing the path.
 *
 * The tolerances are error bounds, not guesses. For a sum of n products in
 * fp32 in ANY order, |computed - exact| <= gamma(n) * sum |products|, with
 * gamma(n) = n*u / (1 - n*u), u = 2^-24 (Higham, Accuracy and Stability of
 * Numerical Algorithms, 2nd ed., section 4.2). Two paths that differ only in
 * their order of summation are therefore within 2*gamma(n) * sum|x||w| of
 * each other, whatever the order. Rounding an fp32 to bf16 (8 significant
 * bits, to nearest) moves it by at most 2^-8 of itself, which bounds what
 * the rounding of w (and of x, in the vdpbf16ps kernel) adds against the
 * fp32 product. Quantising to
 * int8 with scale d moves a value by at most d/2, which bounds the int8
 * product against fp32 term by term (check_q8_forward_shape). */
#include "testlib.h"
#include "op_matmul_bf16.h"
#include "op_matmul_q8.h"
#include "op_matmul_q8_kernels.h"
#include "ops.h"
#include "rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The project's generator (rng.h), one stream for the whole suite. */
static lw_rng rng_state;

static void rng_seed(uint64_t seed) { lw_rng_seed(&rng_state, seed); }

static float rng_uniform(void) /* [-1, 1) */
{
    return (float)(2.0 * lw_rng_uniform(&rng_state) - 1.0);
}

static float *rand_array(size_t n)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = rng_uniform();
    return a;
}

static float *alloc_floats(size_t n)
{
    float *a = calloc(n ? n : 1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    return a;
}

static double gamma_n(int n)
{
    double u = ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}

static float round_bf16(float f) { return lw_f32_from_bf16(lw_bf16_from_f32(f)); }

/* The packed weights widened back to fp32, [out][in] (what BLAS gets). */
static float *widened(const lw_bf16_matrix *m)
{
    float *w = alloc_floats((size_t)m->out * m->in);
    for (int o = 0; o < m->out; o++)
        for (int i = 0; i < m->in; i++) w[(size_t)o * m->in + i] = lw_f32_from_bf16(m->w[(size_t)o * m->ld + i]);
    return w;
}

/* Fails unless |got - want| <= bound[k] for every k. */
static void assert_within(const float *got, const float *want, const double *bound, size_t n, const char *what)
{
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabs((double)got[k] - want[k]) <= bound[k], "%s[%zu]: got %.9g, want %.9g, bound %.3g", what,
                      k, got[k], want[k], bound[k]);
}

static const int Ts[] = {1, 3, 17}, Ins[] = {5, 64, 577}, Outs[] = {1, 7, 130};
#define NS 3

/* ---- bf16 numbers ------------------------------------------------------- */

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

START_TEST(bf16_rounds_to_nearest_even)
{
    /* bf16 keeps the top 16 bits of an fp32; the cases are built from bits */
    ck_assert_uint_eq(lw_bf16_from_f32(1.0f), bits(1.0f) >> 16);
    ck_assert_float_eq(lw_f32_from_bf16(lw_bf16_from_f32(-2.5f)), -2.5f); /* exact in 8 bits */
    uint32_t one = bits(1.0f);
    /* half-way between 1.0 and its bf16 successor: ties go to the even (1.0) */
    ck_assert_uint_eq(lw_bf16_from_f32(from_bits(one + 0x8000u)), one >> 16);
    /* half-way above an odd bf16: ties go up to the even one */
    ck_assert_uint_eq(lw_bf16_from_f32(from_bits(one + 0x18000u)), (one >> 16) + 2);
    /* just above half-way rounds up, just below rounds down */
    ck_assert_uint_eq(lw_bf16_from_f32(from_bits(one + 0x8001u)), (one >> 16) + 1);
    ck_assert_uint_eq(lw_bf16_from_f32(from_bits(one + 0x7fffu)), one >> 16);
    ck_assert(isinf(round_bf16(INFINITY)) && round_bf16(-INFINITY) < 0);
    ck_assert(isnan(round_bf16(NAN)));
    ck_assert(isinf(round_bf16(3.4e38f))); /* above bf16's largest finite: rounds to infinity */
    /* the relative error bound the tolerances below rely on */
    rng_seed(7);
    for (int k = 0; k < 100000; k++) {
        float f = rng_uniform() * ldexpf(1.0f, (k % 60) - 30);
        ck_assert_msg(fabsf(round_bf16(f) - f) <= ldexpf(fabsf(f), -8), "%.9g rounds to %.9g", f, round_bf16(f));
    }
}
END_TEST

START_TEST(bf16_matrix_pads_rows_with_zeros)
{
    rng_seed(2);
    float *w = rand_array(7 * 37);
    lw_bf16_matrix m;
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, 7, 37), LW_OK);
    ck_assert_int_eq(m.ld % 32, 0);
    ck_assert_int_ge(m.ld, 37);
    ck_assert_uint_eq((uintptr_t)m.w % 64, 0);
    for (int o = 0; o < 7; o++) {
        for (int i = 0; i < 37; i++) ck_assert_uint_eq(m.w[o * m.ld + i], lw_bf16_from_f32(w[o * 37 + i]));
        for (int i = 37; i < m.ld; i++) ck_assert_uint_eq(m.w[o * m.ld + i], 0);
    }
    lw_bf16_matrix_free(&m);
    ck_assert_ptr_null(m.w);
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, 0, 37), LW_ERR_INVALID);
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, 7, -1), LW_ERR_INVALID);
    free(w);
}
END_TEST

/* ---- the path switch ---------------------------------------------------- */

START_TEST(cpu_path_rule)
{
    lw_cpu_path p;
    ck_assert_int_eq(lw_cpu_path_choose(NULL, LW_CPU_AVX512, &p), LW_OK);
    ck_assert_int_eq(p, LW_CPU_AVX512);
    ck_assert_int_eq(lw_cpu_path_choose("", LW_CPU_AVX2, &p), LW_OK);
    ck_assert_int_eq(p, LW_CPU_AVX2);
    ck_assert_int_eq(lw_cpu_path_choose("scalar", LW_CPU_AVX512, &p), LW_OK);
    ck_assert_int_eq(p, LW_CPU_SCALAR);
    ck_assert_int_eq(lw_cpu_path_choose("avx2", LW_CPU_AVX512, &p), LW_OK);
    ck_assert_int_eq(p, LW_CPU_AVX2);
    /* never above the CPU: that would be an illegal instruction */
    ck_assert_int_eq(lw_cpu_path_choose("avx512", LW_CPU_AVX2, &p), LW_OK);
    ck_assert_int_eq(p, LW_CPU_AVX2);
    ck_assert_int_eq(lw_cpu_path_choose("avx-512", LW_CPU_AVX512, &p), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "avx-512"));
}
END_TEST

/* In a fresh process (the choice is made once per process), LWC_CPU_PATH set
 * to `name`: which path's output does matmul_bf16_forward reproduce bit for
 * bit? The exit status says (9: none, 8: an error). The paths sum in
 * different orders, so on this shape their outputs differ in the last bits
 * and the match identifies the path. */
static int path_taken_in_child(const char *name)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (name) setenv("LWC_CPU_PATH", name, 1);
        else unsetenv("LWC_CPU_PATH");
        enum { T = 3, IN = 577, OUT = 130 };
        rng_seed(11);
        float *x = rand_array(T * IN), *w = rand_array(OUT * IN);
        float *y = alloc_floats(T * OUT), *yp = alloc_floats(T * OUT);
        lw_bf16_matrix m;
        if (lw_bf16_matrix_pack(&m, w, OUT, IN) != LW_OK || matmul_bf16_forward(y, x, &m, NULL, T) != LW_OK)
            _exit(8);
        int found = 9;
        for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
            if (matmul_bf16_forward_on((lw_cpu_path)p, yp, x, &m, NULL, T) != LW_OK) _exit(8);
            if (!memcmp(y, yp, sizeof(float) * T * OUT)) {
                if (found != 9) _exit(9); /* two paths agree bitwise: the test cannot tell */
                found = p;
            }
        }
        _exit(found);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(cpu_path_switch_selects_each_path)
{
    lw_cpu_path best = lw_cpu_path_detected();
    printf("cpu path: this CPU runs up to %s\n", lw_cpu_path_name(best));
    ck_assert_int_eq(path_taken_in_child(NULL), best);
    ck_assert_int_eq(path_taken_in_child("avx512"), best);
    ck_assert_int_eq(path_taken_in_child("avx2"), best < LW_CPU_AVX2 ? best : LW_CPU_AVX2);
    ck_assert_int_eq(path_taken_in_child("scalar"), LW_CPU_SCALAR);
    ck_assert_int_eq(path_taken_in_child("sse"), 8); /* a bad value fails, it does not fall back */
}
END_TEST

START_TEST(path_above_the_cpu_is_refused)
{
    lw_cpu_path best = lw_cpu_path_detected();
    if (best == LW_CPU_AVX512) return; /* nothing above it to ask for */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, y[1];
    lw_bf16_matrix m;
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, 1, 4), LW_OK);
    ck_assert_int_eq(matmul_bf16_forward_on(LW_CPU_AVX512, y, x, &m, NULL, 1), LW_ERR_UNSUPPORTED);
    ck_assert_int_eq(matmul_bf16_forward_vdpbf16ps(y, x, &m, NULL, 1), LW_ERR_UNSUPPORTED);
    lw_bf16_matrix_free(&m);
}
END_TEST

/* ---- forward ------------------------------------------------------------ */

/* For one shape: every path against fp32 BLAS on the unrounded weights
 * (the order of sums, 2 gamma(in+1) (sum|x w| + |b|), plus the rounding of
 * w: 2^-8 sum|x w|). Against the product of the rounded weights (the order
 * of sums alone), and the vdpbf16ps kernel, see check_backend_ops. */
static void check_forward_shape(int T, int in, int out, int with_bias)
{
    float *x = rand_array((size_t)T * in), *w = rand_array((size_t)out * in);
    float *b = with_bias ? rand_array(out) : NULL;
    size_t n = (size_t)T * out;
    float *y = alloc_floats(n), *yfp32 = alloc_floats(n);
    double *bnd_w = malloc(n * sizeof *bnd_w);
    ck_assert(bnd_w);
    lw_bf16_matrix m;
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, out, in), LW_OK);
    float *wr = widened(&m);
    double g = gamma_n(in + 1), u8 = ldexp(1.0, -8);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = 0, sr = 0;
            for (int i = 0; i < in; i++) {
                s += fabs((double)x[(size_t)t * in + i] * w[(size_t)o * in + i]);
                sr += fabs((double)x[(size_t)t * in + i] * wr[(size_t)o * in + i]);
            }
            double bb = b ? fabs(b[o]) : 0;
            size_t k = (size_t)t * out + o;
            bnd_w[k] = u8 * s + 2 * g * (sr + s + bb);
        }
    matmul_forward(yfp32, x, w, b, T, in, out);
    char what[96];
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        for (size_t k = 0; k < n; k++) y[k] = NAN; /* every output must be written */
        ck_assert_int_eq(matmul_bf16_forward_on((lw_cpu_path)p, y, x, &m, b, T), LW_OK);
        snprintf(what, sizeof what, "%s T=%d in=%d out=%d vs fp32 BLAS, fp32 w", lw_cpu_path_name(p), T, in, out);
        assert_within(y, yfp32, bnd_w, n, what);
    }
    lw_bf16_matrix_free(&m);
    free(x), free(w), free(b), free(y), free(yfp32), free(wr), free(bnd_w);
}

START_TEST(forward_every_path_every_shape)
{
    rng_seed(3);
    int k = 0;
    for (int a = 0; a < NS; a++)
        for (int c = 0; c < NS; c++)
            for (int d = 0; d < NS; d++) check_forward_shape(Ts[a], Ins[c], Outs[d], k++ % 2);
    /* a row long enough (in > 640) that the AVX-512 forward sums it in
     * ranges of columns, adding onto y */
    check_forward_shape(9, 1100, 40, 1);
}
END_TEST

/* The bounds above are not vacuous: they are far below the size of the
 * results, and the bf16 product is measurably not the fp32 one (the weights
 * really were rounded), within the 2^-8 the bound allows. */
START_TEST(forward_bounds_are_tight_enough_to_fail)
{
    enum { T = 17, IN = 577, OUT = 130 };
    rng_seed(4);
    float *x = rand_array(T * IN), *w = rand_array(OUT * IN);
    float *y = alloc_floats(T * OUT), *yfp32 = alloc_floats(T * OUT);
    lw_bf16_matrix m;
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, OUT, IN), LW_OK);
    ck_assert_int_eq(matmul_bf16_forward(y, x, &m, NULL, T), LW_OK);
    matmul_forward(yfp32, x, w, NULL, T, IN, OUT);
    double max_rel = 0, max_y = 0;
    for (int k = 0; k < T * OUT; k++) {
        double s = 0;
        for (int i = 0; i < IN; i++) s += fabs((double)x[(k / OUT) * IN + i] * w[(k % OUT) * IN + i]);
        max_rel = fmax(max_rel, fabs((double)y[k] - yfp32[k]) / s);
        max_y = fmax(max_y, fabs(yfp32[k]));
        ck_assert_double_lt(2 * gamma_n(IN + 1) * s, 1e-2 * fabs(s)); /* order-of-sums bound is small */
    }
    ck_assert_double_gt(max_y, 1.0);
    /* rounding errors of random signs: well above fp32's 2^-24, below the 2^-8 bound */
    ck_assert_double_gt(max_rel, ldexp(1.0, -16));
    ck_assert_double_lt(max_rel, ldexp(1.0, -8));
    lw_bf16_matrix_free(&m);
    free(x), free(w), free(y), free(yfp32);
}
END_TEST

/* ---- backward ----------------------------------------------------------- */

/* dx accumulates onto a nonzero start; every path against fp32 on the
 * unrounded weights (the order of sums, 2 gamma(out+1) (sum|dy w| + |dx0|),
 * + 2^-8 sum|dy w|). Against the rounded weights: check_backend_ops. */
static void check_backward_shape(int T, int in, int out)
{
    float *dy = rand_array((size_t)T * out), *w = rand_array((size_t)out * in);
    float *dx0 = rand_array((size_t)T * in);
    size_t n = (size_t)T * in;
    float *dx = alloc_floats(n), *dfp32 = alloc_floats(n);
    double *bnd_w = malloc(n * sizeof *bnd_w);
    ck_assert(bnd_w);
    lw_bf16_matrix m;
    ck_assert_int_eq(lw_bf16_matrix_pack(&m, w, out, in), LW_OK);
    float *wr = widened(&m);
    double g = gamma_n(out + 1), uw = ldexp(1.0, -8);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < in; i++) {
            double s = 0, sr = 0;
            for (int o = 0; o < out; o++) {
                s += fabs((double)dy[(size_t)t * out + o] * w[(size_t)o * in + i]);
                sr += fabs((double)dy[(size_t)t * out + o] * wr[(size_t)o * in + i]);
            }
            size_t k = (size_t)t * in + i;
            bnd_w[k] = uw * s + 2 * g * (sr + s + fabs(dx0[k]));
        }
    memcpy(dfp32, dx0, n * sizeof *dfp32);
    matmul_backward(dfp32, NULL, NULL, dy, NULL, w, T, in, out);
    char what[96];
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        memcpy(dx, dx0, n * sizeof *dx);
        ck_assert_int_eq(matmul_bf16_backward_x_on((lw_cpu_path)p, dx, dy, &m, T), LW_OK);
        snprintf(what, sizeof what, "%s T=%d in=%d out=%d dx vs fp32 BLAS, fp32 w", lw_cpu_path_name(p), T, in, out);
        assert_within(dx, dfp32, bnd_w, n, what);
    }
    lw_bf16_matrix_free(&m);
    free(dy), free(w), free(dx0), free(dx), free(dfp32), free(wr), free(bnd_w);
}

START_TEST(backward_every_path_every_shape)
{
    rng_seed(5);
    for (int a = 0; a < NS; a++)
        for (int c = 0; c < NS; c++)
            for (int d = 0; d < NS; d++) check_backward_shape(Ts[a], Ins[c], Outs[d]);
    /* enough weight rows (out * ld * 2 bytes > 1 MB) that the AVX-512 path
     * sums dx over several blocks of rows */
    check_backward_shape(5, 577, 1000);
}
END_TEST


/* ---- int8 (Q8_0-style weights, per-row int8 activations) --------------- */

/* d (1/2 + 2^-14) bounds |v - d q|: d/2 from rounding to an integer, plus
 * the fp32 rounding of v * (1/d), at most 2 u * 127 of d. */
#define Q8_HALF (0.5 + ldexp(1.0, -14))

START_TEST(q8_quantize_row_bounds)
{
    rng_seed(8);
    enum { N = 1000 };
    float x[N];
    int8_t q[N];
    for (int rep = 0; rep < 20; rep++) {
        float mag = ldexpf(1.0f, rep - 10);
        for (int i = 0; i < N; i++) x[i] = rng_uniform() * mag;
        float d;
        lw_q8_quantize_row(q, &d, x, N);
        int top = 0;
        for (int i = 0; i < N; i++) {
            ck_assert_int_le(abs(q[i]), 127);
            top = abs(q[i]) > top ? abs(q[i]) : top;
            ck_assert_msg(fabs((double)x[i] - (double)d * q[i]) <= Q8_HALF * d, "x %.9g q %d d %.9g", x[i], q[i], d);
        }
        ck_assert_int_eq(top, 127); /* the largest value uses the full range */
    }
    for (int i = 0; i < N; i++) x[i] = 0.0f;
    float d = 1;
    lw_q8_quantize_row(q, &d, x, N);
    ck_assert_float_eq(d, 0.0f);
    for (int i = 0; i < N; i++) ck_assert_int_eq(q[i], 0);
}
END_TEST

/* The AVX-512 path quantises x with its own vector loop; the "vs scalar"
 * bound below assumes the same integers, so hold the two to bit equality,
 * on rows of random values and of large multiples of 1/2 mixed. */
START_TEST(q8_vector_quantisation_is_the_scalar_one)
{
    if (lw_cpu_path_detected() < LW_CPU_AVX512) return;
    rng_seed(12);
    enum { T = 3, LD = 640 };
    const int ins[] = {5, 64, 577, 640};
    for (size_t c = 0; c < sizeof ins / sizeof ins[0]; c++) {
        int in = ins[c];
        float *x = rand_array((size_t)T * in);
        for (int i = 0; i < in; i += 7) x[i] = (float)(i % 255 - 127) * 0.5f;
        int8_t qv[T * LD], qs[LD];
        float sv[T], ss;
        q8_quantize_rows_avx512(qv, sv, x, T, in, LD);
        for (int t = 0; t < T; t++) {
            lw_q8_quantize_row(qs, &ss, x + (size_t)t * in, in);
            ck_assert_float_eq(sv[t], ss);
            for (int i = 0; i < LD; i++) {
                int want = i < in ? qs[i] : 0, got = (int8_t)((uint8_t)qv[t * LD + i] ^ 0x80u);
                ck_assert_msg(got == want, "in=%d row %d col %d: vector %d, scalar %d", in, t, i, got, want);
            }
        }
        free(x);
    }
}
END_TEST

START_TEST(q8_matrix_blocks_padding_and_correction)
{
    rng_seed(9);
    enum { OUT = 5, IN = 70 };
    float *w = rand_array(OUT * IN);
    lw_q8_matrix m;
    ck_assert_int_eq(lw_q8_matrix_pack(&m, w, OUT, IN), LW_OK);
    ck_assert_int_eq(m.ld % 64, 0);
    ck_assert_int_ge(m.ld, IN);
    ck_assert_uint_eq((uintptr_t)m.q % 64, 0);
    int nb = m.ld / LW_Q8_BLOCK;
    for (int o = 0; o < OUT; o++) {
        double corr = 0;
        for (int bk = 0; bk < nb; bk++) {
            float d = m.d[o * nb + bk];
            int qs = 0;
            for (int i = bk * 32; i < (bk + 1) * 32; i++) {
                int8_t q = m.q[o * m.ld + i];
                qs += q;
                if (i >= IN) ck_assert_int_eq(q, 0);
                else ck_assert(fabs((double)w[o * IN + i] - (double)d * q) <= Q8_HALF * d);
            }
            if (bk * 32 >= IN) ck_assert_float_eq(d, 0.0f);
            corr += 128.0 * d * qs;
        }
        ck_assert(fabs(corr - m.corr[o]) <= 1e-6 * (fabs(corr) + 1));
    }
    lw_q8_matrix_free(&m);
    ck_assert_ptr_null(m.q);
    ck_assert_int_eq(lw_q8_matrix_pack(&m, w, OUT, 0), LW_ERR_INVALID);
    free(w);
}
END_TEST

/* Every path against fp32 BLAS (against the exact int8 product, the paths'
 * own rounding: check_backend_ops). The int8 block sums are exact on every
 * path; what the paths add is fp32 rounding of the scaled sums, bounded by
 * gamma(nb + 24) of M = sx sum_i d (|qx_i| + 128) |qw_i| (the +128 is the
 * AVX-512 path's unsigned offset, removed at the end). Against fp32: the quantisation moves x_i by at most
 * sx/2 and w_i by at most d/2 (Q8_HALF), so the exact int8 product is within
 * sum_i (sx/2 |w_i| + |x_i| d/2 + sx d / 4) of x w, plus those roundings and
 * BLAS's own gamma(in) sum|x w|. */
static void check_q8_forward_shape(int T, int in, int out, int with_bias, double *worst_share)
{
    float *x = rand_array((size_t)T * in), *w = rand_array((size_t)out * in);
    float *b = with_bias ? rand_array(out) : NULL;
    size_t n = (size_t)T * out;
    float *y = alloc_floats(n), *yfp32 = alloc_floats(n);
    double *bnd_quant = malloc(n * sizeof *bnd_quant);
    int8_t *xq = malloc((size_t)in);
    ck_assert(bnd_quant && xq);
    lw_q8_matrix m;
    ck_assert_int_eq(lw_q8_matrix_pack(&m, w, out, in), LW_OK);
    int nb = m.ld / LW_Q8_BLOCK;
    double g = gamma_n(nb + 24), u = ldexp(1.0, -24);
    for (int t = 0; t < T; t++) {
        float sx;
        lw_q8_quantize_row(xq, &sx, x + (size_t)t * in, in);
        for (int o = 0; o < out; o++) {
            double M = 0, quant = 0, s = 0;
            for (int i = 0; i < in; i++) {
                double d = m.d[(size_t)o * nb + i / 32], xi = x[(size_t)t * in + i], wi = w[(size_t)o * in + i];
                M += (double)sx * d * (abs(xq[i]) + 128) * abs(m.q[(size_t)o * m.ld + i]);
                quant += Q8_HALF * (sx * fabs(wi) + fabs(xi) * d) + Q8_HALF * Q8_HALF * sx * d;
                s += fabs(xi * wi);
            }
            double bb = b ? fabs(b[o]) : 0;
            size_t k = (size_t)t * out + o;
            bnd_quant[k] = quant + 2 * g * M + 2 * u * bb + gamma_n(in + 1) * (s + bb);
        }
    }
    matmul_forward(yfp32, x, w, b, T, in, out);
    char what[96];
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        for (size_t k = 0; k < n; k++) y[k] = NAN;
        ck_assert_int_eq(matmul_q8_forward_on((lw_cpu_path)p, y, x, &m, b, T), LW_OK);
        snprintf(what, sizeof what, "q8 %s T=%d in=%d out=%d vs fp32 BLAS", lw_cpu_path_name(p), T, in, out);
        assert_within(y, yfp32, bnd_quant, n, what);
        for (size_t k = 0; k < n; k++)
            *worst_share = fmax(*worst_share, fabs((double)y[k] - yfp32[k]) / bnd_quant[k]);
    }
    lw_q8_matrix_free(&m);
    free(x), free(w), free(b), free(y), free(yfp32), free(bnd_quant), free(xq);
}

START_TEST(q8_forward_every_path_every_shape)
{
    rng_seed(10);
    int k = 0;
    double worst_share = 0;
    for (int a = 0; a < NS; a++)
        for (int c = 0; c < NS; c++)
            for (int d = 0; d < NS; d++) check_q8_forward_shape(Ts[a], Ins[c], Outs[d], k++ % 2, &worst_share);
    /* the quantisation bound is worst-case (every error the same sign); real
     * errors take a visible share of it, so it is not vacuous */
    ck_assert_double_gt(worst_share, 0.01);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("matmul_narrow");
    TCase *num = tcase_create("bf16");
    tcase_add_test(num, bf16_rounds_to_nearest_even);
    tcase_add_test(num, bf16_matrix_pads_rows_with_zeros);
    suite_add_tcase(s, num);
    TCase *path = tcase_create("path");
    tcase_add_test(path, cpu_path_rule);
    tcase_add_test(path, cpu_path_switch_selects_each_path);
    tcase_add_test(path, path_above_the_cpu_is_refused);
    suite_add_tcase(s, path);
    TCase *mm = tcase_create("matmul_bf16");
    tcase_set_timeout(mm, 60);
    tcase_add_test(mm, forward_every_path_every_shape);
    tcase_add_test(mm, forward_bounds_are_tight_enough_to_fail);
    tcase_add_test(mm, backward_every_path_every_shape);
    suite_add_tcase(s, mm);
    TCase *q8 = tcase_create("matmul_q8");
    tcase_set_timeout(q8, 60);
    tcase_add_test(q8, q8_quantize_row_bounds);
    tcase_add_test(q8, q8_matrix_blocks_padding_and_correction);
    tcase_add_test(q8, q8_vector_quantisation_is_the_scalar_one);
    tcase_add_test(q8, q8_forward_every_path_every_shape);
    suite_add_tcase(s, q8);
    return tl_run_suite(s);
}
