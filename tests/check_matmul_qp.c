/* The block products on weights packed once at load (runtime/ops/op_matmul_qp.c,
 * `--dtype q8|native` on AVX-512 VNNI): the panels hold the file's decoded
 * values, so the packed forward is held to the same exact reference as the
 * per-call kernels (tests/check_matmul_qn.c: x as quantised times the weights
 * as runtime/io/dequant.c reads them, within 2 gamma(in + 16) sum |terms|),
 * and at T >= 2 it must equal the per-call AVX-512 panel kernel bit for bit
 * (same sums, same order). Any thread count gives the same bits; row views
 * read the right rows; the 4-bit formats' nibble panels give the bits of
 * the same matrix packed one u a byte (lw_qn_pack_forward_as), at T = 1 too.
 *
 * The packed backward dx += dy w reads w^T requantised to int8 blocks of 32
 * along out and dy quantised per 32: not exact. Its error against the exact
 * dy @ W (dequant.c's W) is bounded per element by
 *   sum_o (sdy_b/2 |w_oi| + (|dy_o| + sdy_b/2) dW_i,b/2) + 2 gamma(out+16) sum |dyq wq|
 * with sdy_b = max|dy| over dy's block / 127 and dW_i,b = max_o |w_oi| over
 * w's block of 32 outputs / 127; a weight requantised one step wrong or a
 * block read from the wrong place breaks it. The relative error of dx
 * (Frobenius) is printed and held under 3% (measured 0.3-2.2%, dy with
 * outliers). Skipped where the CPU has no
 * AVX-512 VNNI (the packed copies are never read there). */
#include "testlib.h"
#include "cpu_threads.h"
#include "dequant.h"
#include "op_matmul_qn.h"
#include "op_matmul_qp.h"
#include "qn_blocks.h"
#include "rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_rng rng;

static bool have_vnni(void) { return lw_cpu_path_detected() >= LW_CPU_AVX512; }

static void check_forward(uint32_t type, int T, int in, int out, bool bias)
{
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *w = tl_qn_dequantised(type, blk, out, in), *x = tl_rng_floats(&rng, (size_t)T * in);
    float *b = bias ? tl_rng_floats(&rng, (size_t)out) : NULL;
    lw_qn_matrix m, plain;
    lw_qn_matrix_init(&m, in), lw_qn_matrix_init(&plain, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    ck_assert_int_eq(lw_qn_matrix_append(&plain, type, blk, out), LW_OK);
    ck_assert_int_eq(lw_qn_pack_forward(&m), LW_OK);
    ck_assert_int_eq(m.fwd.gs, type == LW_QN_Q6_K ? 1 : 2);
    /* the 4-bit formats two u a byte: the panels' bytes are half the int8 ones */
    const bool four = type == LW_QN_Q4_0 || type == LW_QN_Q4_1 || type == LW_QN_Q4_K;
    ck_assert_int_eq(m.fwd.nib, four);
    /* the symmetric formats (one zero point z) keep no c: the kernel makes
     * it as s * -z, the same bits as the decoded c (the exact reference and
     * the per-call kernel below hold it) */
    const bool sym = type == LW_QN_Q4_0 || type == LW_QN_Q5_0 || type == LW_QN_Q6_K || type == LW_QN_Q8_0;
    ck_assert_int_eq(m.fwd.c == NULL, sym);
    ck_assert(m.fwd.cz == (sym ? (type == LW_QN_Q4_0 ? 8.0f : type == LW_QN_Q5_0 ? 16.0f : type == LW_QN_Q6_K ? 32.0f : 128.0f) : 0.0f));
    {
        size_t np = (size_t)(out + 15) / 16, ng = (size_t)in / (16 * (size_t)m.fwd.gs);
        ck_assert_uint_eq(lw_qp_bytes(&m.fwd),
                          np * (size_t)in * (four ? 8 : 16) + (sym ? 1 : 2) * np * ng * 16 * sizeof(float));
    }
    lw_qn_act a;
    ck_assert_int_eq(lw_qn_act_quantize(&a, x, T, in, in), LW_OK);
    float *y = malloc(sizeof(float) * T * out), *y2 = malloc(sizeof(float) * T * out);
    ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y, x, &m, b, T), LW_OK);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double e = 0, ae = 0;
            for (int i = 0; i < in; i++) {
                double xq = a.sx[(size_t)t * (in / 32) + i / 32] * a.qx[(size_t)t * in + i];
                e += xq * w[(size_t)o * in + i], ae += fabs(xq * w[(size_t)o * in + i]);
            }
            double bo = b ? b[o] : 0, got = y[(size_t)t * out + o];
            ck_assert_msg(fabs(got - e - bo) <= 2 * tl_gamma_n(in + 16) * (ae + fabs(bo)) + 1e-30,
                          "%s packed T=%d in=%d out=%d y[%d,%d] %.9g, exact %.9g", lw_qn_type_name(type), T, in, out,
                          t, o, got, e + bo);
        }
    if (T >= 2) { /* the per-call panel kernel: the same sums in the same order */
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y2, x, &plain, b, T), LW_OK);
        ck_assert_mem_eq(y, y2, sizeof(float) * T * out);
    }
    /* the 4-bit formats' nibble panels against the same matrix packed one u
     * a byte: the same integer operands summed in the same order, so the
     * same bits, at T = 1 (the decode tiles) as at T >= 2 */
    if (four) {
        lw_qn_matrix bytes;
        lw_qn_matrix_init(&bytes, in);
        ck_assert_int_eq(lw_qn_matrix_append(&bytes, type, blk, out), LW_OK);
        ck_assert_int_eq(lw_qn_pack_forward_as(&bytes, false), LW_OK);
        ck_assert_int_eq(bytes.fwd.nib, 0);
        ck_assert_uint_eq(lw_qp_panel_u_bytes(&bytes.fwd), 2 * lw_qp_panel_u_bytes(&m.fwd));
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y2, x, &bytes, b, T), LW_OK);
        ck_assert_msg(memcmp(y, y2, sizeof(float) * T * out) == 0, "%s T=%d in=%d out=%d: nibble and byte panels differ",
                      lw_qn_type_name(type), T, in, out);
        lw_qn_matrix_free(&bytes);
    }
    /* two threads, every product split (threshold 0): the same bits */
    ck_assert_int_eq(lw_cpu_threads_set(2), LW_OK);
    lw_cpu_split_threshold_set(0);
    ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y2, x, &m, b, T), LW_OK);
    ck_assert_mem_eq(y, y2, sizeof(float) * T * out);
    ck_assert_int_eq(lw_cpu_threads_set(1), LW_OK);
    /* row T-1 alone (T = 1: the decode tiles) gives the row of the whole */
    ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y2, x + (size_t)(T - 1) * in, &m, b, 1), LW_OK);
    ck_assert_mem_eq(y + (size_t)(T - 1) * out, y2, sizeof(float) * out);
    /* a view from row 16 reads the packed panels from there */
    if (out > 16) {
        lw_qn_matrix v = lw_qn_rows_view(&m, 16, out - 16);
        ck_assert_ptr_nonnull(v.fwd.u);
        float *yn = malloc(sizeof(float) * T * out);
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, yn, x, &m, NULL, T), LW_OK);
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y2, x, &v, NULL, T), LW_OK);
        for (int t = 0; t < T; t++)
            ck_assert_mem_eq(y2 + (size_t)t * (out - 16), yn + (size_t)t * out + 16, sizeof(float) * (out - 16));
        free(yn);
        lw_qn_matrix u = lw_qn_rows_view(&m, 8, 4);   /* not at a panel: the per-call kernel */
        ck_assert_ptr_null(u.fwd.u);
    }
    ck_assert_uint_gt(lw_qn_matrix_bytes(&m), lw_qn_matrix_bytes(&plain));
    lw_qn_act_free(&a);
    lw_qn_matrix_free(&m), lw_qn_matrix_free(&plain);
    free(blk), free(w), free(x), free(b), free(y), free(y2);
}

START_TEST(packed_forward_every_format)
{
    if (!have_vnni()) return;
    lw_rng_seed(&rng, 41 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    static const int Ts[] = {1, 5, 64}, Outs[] = {7, 37, 50};
    const int *ins = tl_qn_k_quant(type) ? (const int[]){256, 768, 512} : (const int[]){32, 96, 576};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) check_forward(type, Ts[a], ins[c], Outs[(a + c) % 3], (a + c) % 2);
}
END_TEST

/* dx = dy w through the requantised w^T, against the exact product. */
static double check_backward(uint32_t type, int T, int in, int out, int r0, int n)
{
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *w = tl_qn_dequantised(type, blk, out, in), *dy = tl_rng_floats(&rng, (size_t)T * n);
    for (size_t k = 0; k < (size_t)T * n; k += 7) dy[k] *= 20.0f;   /* outliers: coarse blocks */
    float *dx0 = tl_rng_floats(&rng, (size_t)T * in), *dx = malloc(sizeof(float) * T * in), *dx2 = malloc(sizeof(float) * T * in);
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    ck_assert_int_eq(lw_qn_pack_backward(&m), LW_OK);
    lw_qn_matrix v = lw_qn_rows_view(&m, r0, n);
    ck_assert_ptr_nonnull(v.bwd.u);
    memcpy(dx, dx0, sizeof(float) * T * in);
    ck_assert_int_eq(matmul_qn_backward_x_on(LW_CPU_AVX512, dx, dy, &v, T), LW_OK);
    double num = 0, den = 0;
    const int ldo = (n + 31) / 32 * 32;
    for (int t = 0; t < T; t++) {
        const float *g = dy + (size_t)t * n;
        double sdy[64];
        for (int bk = 0; bk < ldo / 32; bk++) {
            double mx = 0;
            for (int j = bk * 32; j < bk * 32 + 32 && j < n; j++) mx = fmax(mx, fabs(g[j]));
            sdy[bk] = mx / 127;
        }
        for (int i = 0; i < in; i++) {
            double want = 0, bound = 0, a = 0;
            for (int bk = 0; bk < ldo / 32; bk++) {
                /* the requantisation of w^T runs over blocks of the whole matrix's rows from 0 */
                int o0 = (r0 + bk * 32) / 32 * 32;
                double mw = 0;
                for (int o = o0; o < o0 + 32 && o < out; o++) mw = fmax(mw, fabs(w[(size_t)o * in + i]));
                double dW = mw / 127;
                for (int j = bk * 32; j < bk * 32 + 32 && j < n; j++) {
                    double wi = w[(size_t)(r0 + j) * in + i];
                    want += (double)g[j] * wi;
                    bound += sdy[bk] / 2 * fabs(wi) + (fabs(g[j]) + sdy[bk] / 2) * dW / 2;
                    a += (fabs(g[j]) + sdy[bk]) * (fabs(wi) + dW);
                }
            }
            bound = bound * (1 + 1e-6) + 2 * tl_gamma_n(n + 16) * (a + fabs(dx0[(size_t)t * in + i]));
            double got = dx[(size_t)t * in + i] - (double)dx0[(size_t)t * in + i];
            ck_assert_msg(fabs(got - want) <= bound, "%s bwd T=%d in=%d out=%d view [%d,+%d) dx[%d,%d]: %.9g, want %.9g (bound %.3g)",
                          lw_qn_type_name(type), T, in, out, r0, n, t, i, got, want, bound);
            num += (got - want) * (got - want), den += want * want;
        }
    }
    /* two threads: the same bits */
    ck_assert_int_eq(lw_cpu_threads_set(2), LW_OK);
    lw_cpu_split_threshold_set(0);
    memcpy(dx2, dx0, sizeof(float) * T * in);
    ck_assert_int_eq(matmul_qn_backward_x_on(LW_CPU_AVX512, dx2, dy, &v, T), LW_OK);
    ck_assert_mem_eq(dx, dx2, sizeof(float) * T * in);
    ck_assert_int_eq(lw_cpu_threads_set(1), LW_OK);
    /* not at a block of 32 rows: no packed view, the exact decode path */
    lw_qn_matrix u = lw_qn_rows_view(&m, 16, 8);
    ck_assert_ptr_null(u.bwd.u);
    lw_qn_matrix_free(&m);
    free(blk), free(w), free(dy), free(dx0), free(dx), free(dx2);
    return sqrt(num / (den > 0 ? den : 1));
}

START_TEST(packed_backward_every_format)
{
    if (!have_vnni()) return;
    lw_rng_seed(&rng, 53 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    int in = tl_qn_k_quant(type) ? 512 : 96;
    double r[4] = {check_backward(type, 1, in, 37, 0, 37), check_backward(type, 6, in, 100, 32, 50),
                   check_backward(type, 64, in, 64, 0, 64), check_backward(type, 3, in, 70, 64, 6)};
    double worst = fmax(fmax(r[0], r[1]), fmax(r[2], r[3]));
    fprintf(stderr, "matmul_qp: %s int8 dx, relative error (Frobenius) %.4f %.4f %.4f %.4f\n", lw_qn_type_name(type),
            r[0], r[1], r[2], r[3]);
    ck_assert_msg(worst < 0.03, "%s: dx relative error %.4f", lw_qn_type_name(type), worst);
}
END_TEST

/* Mixed segments (Gemma's fused wqkv of Q5_0 and Q8_0; a Q6_K part makes
 * the whole matrix per-16 scales) equal the parts product by product. */
START_TEST(packed_segments)
{
    if (!have_vnni()) return;
    lw_rng_seed(&rng, 61);
    enum { IN = 256, A = 20, B = 13, T = 4 };
    for (int k = 0; k < 2; k++) {
        uint32_t tb = k ? LW_QN_Q6_K : LW_QN_Q8_0;
        uint8_t *ba = tl_qn_rand_blocks(&rng, LW_QN_Q5_0, A, IN), *bb = tl_qn_rand_blocks(&rng, tb, B, IN);
        lw_qn_matrix m, ma, mb;
        lw_qn_matrix_init(&m, IN), lw_qn_matrix_init(&ma, IN), lw_qn_matrix_init(&mb, IN);
        ck_assert_int_eq(lw_qn_matrix_append(&m, LW_QN_Q5_0, ba, A), LW_OK);
        ck_assert_int_eq(lw_qn_matrix_append(&m, tb, bb, B), LW_OK);
        ck_assert_int_eq(lw_qn_matrix_append(&ma, LW_QN_Q5_0, ba, A), LW_OK);
        ck_assert_int_eq(lw_qn_matrix_append(&mb, tb, bb, B), LW_OK);
        ck_assert_int_eq(lw_qn_pack_forward(&m), LW_OK);
        ck_assert_int_eq(m.fwd.gs, k ? 1 : 2);
        ck_assert_ptr_nonnull(m.fwd.c);   /* zero points 16 and 128 (or 32): c stored */
        float *x = tl_rng_floats(&rng, T * IN), y[T * (A + B)], ya[T * A], yb[T * B];
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y, x, &m, NULL, T), LW_OK);
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, ya, x, &ma, NULL, T), LW_OK);
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, yb, x, &mb, NULL, T), LW_OK);
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < A; o++)
                ck_assert_msg(fabsf(y[t * (A + B) + o] - ya[t * A + o]) <= 1e-4f * (1 + fabsf(ya[t * A + o])), "A");
            for (int o = 0; o < B; o++)
                ck_assert_msg(fabsf(y[t * (A + B) + A + o] - yb[t * B + o]) <= 1e-4f * (1 + fabsf(yb[t * B + o])), "B");
        }
        lw_qn_matrix_free(&m), lw_qn_matrix_free(&ma), lw_qn_matrix_free(&mb);
        free(ba), free(bb), free(x);
    }
}
END_TEST

/* x quantised per 32 on AVX-512: the scalar loop's bytes and scales bit for
 * bit (zeros, outliers, ties at .5, rows shorter than the padded width). */
START_TEST(act_quantise_avx512_is_the_scalar)
{
    if (!have_vnni()) return;
    lw_rng_seed(&rng, 71);
    static const int shapes[][3] = {{1, 32, 32}, {3, 45, 64}, {5, 576, 576}, {2, 100, 128}, {64, 640, 640}};
    for (int k = 0; k < 5; k++) {
        int T = shapes[k][0], xin = shapes[k][1], in = shapes[k][2];
        float *x = tl_rng_floats(&rng, (size_t)T * xin);
        for (int i = 0; i < T * xin; i += 11) x[i] *= 300.0f;
        for (int i = 5; i < T * xin; i += 13) x[i] = 0.0f;
        for (int i = 0; i < xin && i < 32; i++) x[i] = k == 1 ? 0.0f : (float)(i - 16) * 0.5f; /* ties; a zero block */
        lw_qn_act s, v;
        ck_assert_int_eq(lw_qn_act_quantize_on(LW_CPU_SCALAR, &s, x, T, xin, in), LW_OK);
        ck_assert_int_eq(lw_qn_act_quantize_on(LW_CPU_AVX512, &v, x, T, xin, in), LW_OK);
        ck_assert_mem_eq(s.qx, v.qx, (size_t)T * in);
        ck_assert_mem_eq(s.sx, v.sx, sizeof(float) * T * (in / 32));
        ck_assert_mem_eq(s.xf, v.xf, sizeof(float) * T * (in / 16));
        ck_assert_mem_eq(s.sxl, v.sxl, sizeof(float) * T * (in / 4));
        lw_qn_act_free(&s), lw_qn_act_free(&v);
        free(x);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("matmul_qp");
    TCase *tc = tcase_create("qp");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, packed_forward_every_format, 0, TL_QN_N_TYPES);
    tcase_add_loop_test(tc, packed_backward_every_format, 0, TL_QN_N_TYPES);
    tcase_add_test(tc, packed_segments);
    tcase_add_test(tc, act_quantise_avx512_is_the_scalar);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
