/* Products on GGUF blocks as they are in the file (runtime/ops/op_matmul_qn.c,
 * `--dtype native`): every block format the products read, on every CPU path
 * this machine runs, forward and dX backward, held to the reference made by
 * the OTHER decoder, runtime/io/dequant.c's lw_dequantize (bit for bit
 * gguf-py's), in double precision.
 *
 * Two references for the forward. "Exact": x as the product quantised it
 * (sx_b * qx, read from lw_qn_act) times the dequantised weights, in double;
 * a path may differ from it only by fp32 rounding, bounded by
 * 2 * gamma(in + 16) * sum |sx qx w| (Higham's bound for a sum of n products
 * in any order, section 4.2, with room for the rounding of s * (u - z) + m).
 * One weight decoded one unit wrong moves y by ~1/in of that sum, far above
 * the bound. "fp32": the unquantised x; quantising moves each x_i by at most
 * sx_b / 2, so |y - y_fp32| <= sum_i sx_b / 2 * |w_i| plus the same rounding.
 * The backward has no quantisation: dx against dy @ W_dequantised within
 * 2 * gamma(out + 16) * sum |dy w|. */
#include "testlib.h"
#include "dequant.h"
#include "op_matmul_qn.h"
#include "qn_blocks.h"
#include "rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_rng rng;


START_TEST(formats_agree_with_the_file_reader)
{
    for (int k = 0; k < TL_QN_N_TYPES; k++) {
        uint32_t t = tl_qn_types[k];
        ck_assert(lw_qn_type_supported(t));
        ck_assert(lw_dequant_supported(t));
        ck_assert_str_eq(lw_qn_type_name(t), lw_ggml_type_name(t));
        int in = 512;
        size_t nb;
        ck_assert(lw_ggml_nbytes(t, in, &nb));
        ck_assert_uint_eq(lw_qn_row_bytes(t, in), nb);
        ck_assert_uint_eq(lw_qn_row_bytes(t, tl_qn_k_quant(t) ? 288 : 48), 0); /* not a whole number of blocks */
    }
    ck_assert(!lw_qn_type_supported(LW_GGML_F32));
    ck_assert(!lw_qn_type_supported(LW_GGML_Q2_K));
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, 256);
    uint8_t junk[256] = {0};
    ck_assert_int_eq(lw_qn_matrix_append(&m, LW_GGML_Q2_K, junk, 1), LW_ERR_UNSUPPORTED);
    ck_assert_int_eq(m.out, 0);
    lw_qn_matrix_free(&m);
}
END_TEST

/* The product's own decode (op_matmul_qn_decode.h) against dequant.c's, row
 * by row: equal up to the rounding of s * (u - z) + m against d * q - m. */
START_TEST(row_decode_is_the_file_readers)
{
    lw_rng_seed(&rng, 3);
    for (int k = 0; k < TL_QN_N_TYPES; k++) {
        enum { OUT = 5, IN = 512 };
        uint8_t *blk = tl_qn_rand_blocks(&rng, tl_qn_types[k], OUT, IN);
        float *ref = tl_qn_dequantised(tl_qn_types[k], blk, OUT, IN), row[IN];
        lw_qn_matrix m;
        lw_qn_matrix_init(&m, IN);
        ck_assert_int_eq(lw_qn_matrix_append(&m, tl_qn_types[k], blk, OUT), LW_OK);
        double worst = 0;
        for (int o = 0; o < OUT; o++) {
            lw_qn_dequant_row(&m, o, row);
            for (int i = 0; i < IN; i++) {
                double want = ref[(size_t)o * IN + i];
                double err = fabs(row[i] - want);
                ck_assert_msg(err <= 2e-6 * (1 + fabs(want)), "%s row %d col %d: %.9g, want %.9g",
                              lw_qn_type_name(tl_qn_types[k]), o, i, row[i], want);
                if (err > worst) worst = err;
            }
        }
        lw_qn_matrix_free(&m);
        free(blk), free(ref);
    }
}
END_TEST

static void check_forward(uint32_t type, int T, int in, int out, bool bias)
{
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *w = tl_qn_dequantised(type, blk, out, in), *x = tl_rng_floats(&rng, (size_t)T * in);
    float *b = bias ? tl_rng_floats(&rng, (size_t)out) : NULL;
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    lw_qn_act a;
    ck_assert_int_eq(lw_qn_act_quantize(&a, x, T, in, in), LW_OK);
    double *exact = malloc(sizeof(double) * T * out), *tight = malloc(sizeof(double) * T * out);
    double *fp = malloc(sizeof(double) * T * out), *loose = malloc(sizeof(double) * T * out);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double e = 0, ae = 0, f = 0, qb = 0, af = 0;
            for (int i = 0; i < in; i++) {
                double wi = w[(size_t)o * in + i], sx = a.sx[(size_t)t * (in / 32) + i / 32];
                double xq = sx * a.qx[(size_t)t * in + i];
                ck_assert(fabs(xq - x[(size_t)t * in + i]) <= sx / 2 * (1 + 1e-6));
                e += xq * wi, ae += fabs(xq * wi);
                f += (double)x[(size_t)t * in + i] * wi, af += fabs(x[(size_t)t * in + i] * wi);
                qb += sx / 2 * fabs(wi);
            }
            double bo = b ? b[o] : 0;
            size_t k = (size_t)t * out + o;
            exact[k] = e + bo, tight[k] = 2 * tl_gamma_n(in + 16) * (ae + fabs(bo)) + 1e-30;
            fp[k] = f + bo, loose[k] = qb * (1 + 1e-6) + 2 * tl_gamma_n(in + 16) * (ae + af + fabs(bo));
        }
    float *y = malloc(sizeof(float) * T * out), *y2 = malloc(sizeof(float) * T * out);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        ck_assert_int_eq(matmul_qn_forward_on((lw_cpu_path)p, y, x, &m, b, T), LW_OK);
        for (size_t k = 0; k < (size_t)T * out; k++) {
            ck_assert_msg(fabs(y[k] - exact[k]) <= tight[k], "%s %s T=%d in=%d out=%d [%zu]: %.9g, exact %.9g (bound %.3g)",
                          lw_qn_type_name(type), lw_cpu_path_name((lw_cpu_path)p), T, in, out, k, y[k], exact[k],
                          tight[k]);
            ck_assert_msg(fabs(y[k] - fp[k]) <= loose[k], "%s %s: %.9g against fp32 x %.9g (bound %.3g)",
                          lw_qn_type_name(type), lw_cpu_path_name((lw_cpu_path)p), y[k], fp[k], loose[k]);
        }
        /* output ranges (what a thread pool hands each worker) give the same bits */
        int cut = out / 3;
        ck_assert_int_eq(matmul_qn_forward_cols((lw_cpu_path)p, y2, &a, &m, b, cut, out), LW_OK);
        ck_assert_int_eq(matmul_qn_forward_cols((lw_cpu_path)p, y2, &a, &m, b, 0, cut), LW_OK);
        ck_assert_mem_eq(y, y2, sizeof(float) * T * out);
    }
    lw_qn_act_free(&a);
    lw_qn_matrix_free(&m);
    free(blk), free(w), free(x), free(b), free(exact), free(tight), free(fp), free(loose), free(y), free(y2);
}

START_TEST(forward_every_format_every_path)
{
    lw_rng_seed(&rng, 7 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    static const int Ts[] = {1, 3, 6}, Outs[] = {1, 7, 37};
    const int *ins = tl_qn_k_quant(type) ? (const int[]){256, 768, 512} : (const int[]){32, 96, 576};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) check_forward(type, Ts[a], ins[c], Outs[(a + c) % 3], (a + c) % 2);
}
END_TEST

static void check_backward(uint32_t type, int T, int in, int out)
{
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *w = tl_qn_dequantised(type, blk, out, in), *dy = tl_rng_floats(&rng, (size_t)T * out);
    float *dx0 = tl_rng_floats(&rng, (size_t)T * in), *dx = malloc(sizeof(float) * T * in);
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        memcpy(dx, dx0, sizeof(float) * T * in);
        ck_assert_int_eq(matmul_qn_backward_x_on((lw_cpu_path)p, dx, dy, &m, T), LW_OK);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < in; i++) {
                double want = dx0[(size_t)t * in + i], a = fabs(want);
                for (int o = 0; o < out; o++) {
                    double v = (double)dy[(size_t)t * out + o] * w[(size_t)o * in + i];
                    want += v, a += fabs(v);
                }
                double got = dx[(size_t)t * in + i], bound = 2 * tl_gamma_n(out + 16) * a;
                ck_assert_msg(fabs(got - want) <= bound, "%s %s dx[%d,%d]: %.9g, want %.9g (bound %.3g)",
                              lw_qn_type_name(type), lw_cpu_path_name((lw_cpu_path)p), t, i, got, want, bound);
            }
    }
    lw_qn_matrix_free(&m);
    free(blk), free(w), free(dy), free(dx0), free(dx);
}

/* Each output of the forward is summed alone: over all outputs at once (the
 * AVX2 kernel takes them two by two) or one output a call, the same bits on
 * every path; T = 5 leaves a single row after a tile of 4, out = 9 an odd one. */
START_TEST(forward_outputs_are_independent_on_every_path)
{
    lw_rng_seed(&rng, 77 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    const int T = 5, in = tl_qn_k_quant(type) ? 512 : 96, out = 9;
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *x = tl_rng_floats(&rng, (size_t)T * in), *b = tl_rng_floats(&rng, out);
    float *all = malloc(sizeof(float) * T * out), *one = malloc(sizeof(float) * T * out);
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        lw_qn_act a;
        ck_assert_int_eq(lw_qn_act_quantize_on((lw_cpu_path)p, &a, x, T, in, in), LW_OK);
        ck_assert_int_eq(matmul_qn_forward_cols((lw_cpu_path)p, all, &a, &m, b, 0, out), LW_OK);
        for (int o = 0; o < out; o++)
            ck_assert_int_eq(matmul_qn_forward_cols((lw_cpu_path)p, one, &a, &m, b, o, o + 1), LW_OK);
        ck_assert_msg(memcmp(all, one, sizeof(float) * T * out) == 0, "%s %s: outputs depend on their neighbours",
                      lw_qn_type_name(type), lw_cpu_path_name((lw_cpu_path)p));
        lw_qn_act_free(&a);
    }
    lw_qn_matrix_free(&m);
    free(blk), free(x), free(b), free(all), free(one);
}
END_TEST

/* The backward's order of summation, exactly: the rows of w in groups of 4
 * from row 0, each group's products summed left to right and then added to
 * dx, the out % 4 last rows one at a time (op_matmul_qn_kernels.h). Every
 * path gives these bits, whatever its chunks of rows and tiles of dx:
 * memcmp against this plain loop over the rows lw_qn_dequant_row decodes.
 * out = 70 crosses the chunks of 32 and leaves 2 rows; T = 7 a tile of 4 and
 * 3 single rows; in = 96 a block of 64 columns and one of 32 (512 for the
 * K formats). Every format: the paths' row decodes are held here too. */
START_TEST(backward_is_the_grouped_sum_on_every_path)
{
    lw_rng_seed(&rng, 91 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    const int T = 7, in = tl_qn_k_quant(type) ? 512 : 96, out = 70;
    uint8_t *blk = tl_qn_rand_blocks(&rng, type, out, in);
    float *dy = tl_rng_floats(&rng, (size_t)T * out), *dx0 = tl_rng_floats(&rng, (size_t)T * in);
    float *want = malloc(sizeof(float) * T * in), *got = malloc(sizeof(float) * T * in);
    float *w = malloc(sizeof(float) * out * in);
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    ck_assert_int_eq(lw_qn_matrix_append(&m, type, blk, out), LW_OK);
    for (int o = 0; o < out; o++) lw_qn_dequant_row(&m, o, w + (size_t)o * in);
    memcpy(want, dx0, sizeof(float) * T * in);
    for (int t = 0; t < T; t++) {
        float *d = want + (size_t)t * in;
        const float *g = dy + (size_t)t * out;
        int o = 0;
        for (; o + 4 <= out; o += 4)
            for (int i = 0; i < in; i++) {
                float s = g[o] * w[(size_t)o * in + i];
                s += g[o + 1] * w[(size_t)(o + 1) * in + i];
                s += g[o + 2] * w[(size_t)(o + 2) * in + i];
                s += g[o + 3] * w[(size_t)(o + 3) * in + i];
                d[i] += s;
            }
        for (; o < out; o++)
            for (int i = 0; i < in; i++) d[i] += g[o] * w[(size_t)o * in + i];
    }
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        memcpy(got, dx0, sizeof(float) * T * in);
        ck_assert_int_eq(matmul_qn_backward_x_on((lw_cpu_path)p, got, dy, &m, T), LW_OK);
        if (p == LW_CPU_AVX512 && m.bwd.u) continue;   /* the int8 product through w^T: another sum */
        for (size_t k = 0; k < (size_t)T * in; k++)
            ck_assert_msg(memcmp(&got[k], &want[k], sizeof(float)) == 0, "%s %s dx[%zu]: %.9g, want %.9g",
                          lw_qn_type_name(type), lw_cpu_path_name((lw_cpu_path)p), k, got[k], want[k]);
    }
    lw_qn_matrix_free(&m);
    free(blk), free(dy), free(dx0), free(want), free(got), free(w);
}
END_TEST

START_TEST(backward_every_format_every_path)
{
    lw_rng_seed(&rng, 17 + (uint64_t)_i);
    uint32_t type = tl_qn_types[_i];
    int in = tl_qn_k_quant(type) ? 512 : 96;
    check_backward(type, 1, in, 5);
    check_backward(type, 4, in, 9);
}
END_TEST

/* A fused matrix of two formats (Gemma's wqkv: q, k Q5_0 and v Q8_0), and
 * row views of it (the backward's per-part products). */
START_TEST(segments_and_views)
{
    lw_rng_seed(&rng, 23);
    enum { IN = 256, A = 6, B = 5, T = 3 };
    uint8_t *ba = tl_qn_rand_blocks(&rng, LW_QN_Q5_0, A, IN), *bb = tl_qn_rand_blocks(&rng, LW_QN_Q6_K, B, IN);
    lw_qn_matrix m, ma, mb;
    lw_qn_matrix_init(&m, IN), lw_qn_matrix_init(&ma, IN), lw_qn_matrix_init(&mb, IN);
    ck_assert_int_eq(lw_qn_matrix_append(&m, LW_QN_Q5_0, ba, A), LW_OK);
    ck_assert_int_eq(lw_qn_matrix_append(&m, LW_QN_Q6_K, bb, B), LW_OK);
    ck_assert_int_eq(lw_qn_matrix_append(&ma, LW_QN_Q5_0, ba, A), LW_OK);
    ck_assert_int_eq(lw_qn_matrix_append(&mb, LW_QN_Q6_K, bb, B), LW_OK);
    ck_assert_int_eq(m.out, A + B);
    ck_assert_uint_eq(lw_qn_matrix_bytes(&m), lw_qn_matrix_bytes(&ma) + lw_qn_matrix_bytes(&mb));
    float *x = tl_rng_floats(&rng, T * IN), y[T * (A + B)], ya[T * A], yb[T * B];
    ck_assert_int_eq(matmul_qn_forward(y, x, &m, NULL, T), LW_OK);
    ck_assert_int_eq(matmul_qn_forward(ya, x, &ma, NULL, T), LW_OK);
    ck_assert_int_eq(matmul_qn_forward(yb, x, &mb, NULL, T), LW_OK);
    for (int t = 0; t < T; t++) {
        ck_assert_mem_eq(y + t * (A + B), ya + t * A, sizeof(float) * A);
        ck_assert_mem_eq(y + t * (A + B) + A, yb + t * B, sizeof(float) * B);
    }
    /* a view across the boundary: rows 4..8 */
    lw_qn_matrix v = lw_qn_rows_view(&m, 4, 5);
    ck_assert_int_eq(v.nseg, 2);
    ck_assert_int_eq(v.out, 5);
    float yv[T * 5];
    ck_assert_int_eq(matmul_qn_forward(yv, x, &v, NULL, T), LW_OK);
    for (int t = 0; t < T; t++) ck_assert_mem_eq(yv + t * 5, y + t * (A + B) + 4, sizeof(float) * 5);
    float rv[IN], rm[IN];
    for (int o = 0; o < 5; o++) {
        lw_qn_dequant_row(&v, o, rv);
        lw_qn_dequant_row(&m, o + 4, rm);
        ck_assert_mem_eq(rv, rm, sizeof rv);
    }
    lw_qn_matrix_free(&v); /* a view frees nothing */
    ck_assert_int_eq(matmul_qn_forward(y, x, &m, NULL, T), LW_OK);
    lw_qn_matrix_free(&m), lw_qn_matrix_free(&ma), lw_qn_matrix_free(&mb);
    free(ba), free(bb), free(x);
}
END_TEST

/* --dtype q8: fp32 rows quantised here to Q8_0, padded to 32 columns. Each
 * value moves by at most d/2 plus what storing d as fp16 costs (|q| * |d -
 * d16| <= 127 * 2^-11 d); the blocks read back by dequant.c's Q8_0 are the
 * values the products use; forward and backward on a row length no block
 * divides match the fp32 products on those values. */
START_TEST(q8_0_quantised_here_pads_and_bounds)
{
    lw_rng_seed(&rng, 31);
    enum { OUT = 7, IN = 45, T = 3 };
    float *w = tl_rng_floats(&rng, OUT * IN), *x = tl_rng_floats(&rng, T * IN), *dy = tl_rng_floats(&rng, T * OUT);
    w[3] = 0.0f;   /* an exact zero stays zero */
    for (int i = 32; i < IN; i++) w[IN + i] = 0.0f;   /* an all-zero block: scale 0 */
    lw_qn_matrix m;
    ck_assert_int_eq(lw_qn_matrix_quantize_q8_0(&m, w, OUT, IN), LW_OK);
    ck_assert_int_eq(m.in, IN);
    ck_assert_int_eq(m.ld, 64);
    ck_assert_uint_eq(lw_qn_matrix_bytes(&m), OUT * 2 * 34);
    float *ref = tl_qn_dequantised(LW_QN_Q8_0, m.seg[0].data, OUT, 64), row[IN];
    for (int o = 0; o < OUT; o++) {
        lw_qn_dequant_row(&m, o, row);
        for (int b = 0; b < 2; b++) {
            double amax = 0;
            for (int i = b * 32; i < b * 32 + 32 && i < IN; i++) amax = fmax(amax, fabs(w[o * IN + i]));
            double d = amax / 127;
            for (int i = b * 32; i < b * 32 + 32; i++) {
                double want = i < IN ? w[o * IN + i] : 0.0, got = ref[o * 64 + i];
                ck_assert_msg(fabs(got - want) <= d / 2 + 127 * d * ldexp(1, -11) + 1e-12, "[%d,%d] %g for %g (d %g)",
                              o, i, got, want, d);
                if (i < IN) ck_assert_float_eq(row[i], ref[o * 64 + i]);
            }
        }
    }
    ck_assert_float_eq(ref[3], 0.0f);
    float y[T * OUT], dx[T * IN];
    memset(dx, 0, sizeof dx);
    ck_assert_int_eq(matmul_qn_forward(y, x, &m, NULL, T), LW_OK);
    ck_assert_int_eq(matmul_qn_backward_x(dx, dy, &m, T), LW_OK);
    for (int t = 0; t < T; t++) {
        for (int o = 0; o < OUT; o++) {
            double e = 0, a = 0;
            for (int i = 0; i < IN; i++) e += (double)x[t * IN + i] * ref[o * 64 + i], a += fabs(ref[o * 64 + i]);
            /* x quantised per 32 too: each x moves by at most max|x|/254 <= 1/254 */
            ck_assert_msg(fabs(y[t * OUT + o] - e) <= a / 254 + 1e-5, "y[%d,%d] %g, want %g", t, o, y[t * OUT + o], e);
        }
        for (int i = 0; i < IN; i++) {
            double e = 0;
            for (int o = 0; o < OUT; o++) e += (double)dy[t * OUT + o] * ref[o * 64 + i];
            ck_assert_msg(fabs(dx[t * IN + i] - e) <= 1e-5, "dx[%d,%d] %g, want %g", t, i, dx[t * IN + i], e);
        }
    }
    lw_qn_matrix_free(&m);
    free(w), free(x), free(dy), free(ref);
}
END_TEST

START_TEST(bad_calls_are_refused)
{
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, 64);
    uint8_t blk[2 * 34] = {0};
    ck_assert_int_eq(lw_qn_matrix_append(&m, LW_QN_Q4_K, blk, 1), LW_ERR_UNSUPPORTED); /* 64 is no 256-block row */
    ck_assert_int_eq(lw_qn_matrix_append(&m, LW_QN_Q8_0, blk, 1), LW_OK);
    float x[64] = {0}, y[1];
    ck_assert_int_eq(matmul_qn_forward(y, x, &m, NULL, -1), LW_ERR_INVALID);
    lw_qn_act a;
    ck_assert_int_eq(lw_qn_act_quantize(&a, x, 1, 64, 64), LW_OK);
    ck_assert_int_eq(matmul_qn_forward_cols(LW_CPU_SCALAR, y, &a, &m, NULL, 0, 2), LW_ERR_INVALID);
    lw_qn_act_free(&a);
    ck_assert_int_eq(lw_qn_act_quantize(&a, x, 1, 48, 48), LW_ERR_INVALID);
    ck_assert_int_eq(lw_qn_act_quantize(&a, x, 1, 65, 64), LW_ERR_INVALID);
    if (lw_cpu_path_detected() < LW_CPU_AVX512)
        ck_assert_int_eq(matmul_qn_forward_on(LW_CPU_AVX512, y, x, &m, NULL, 1), LW_ERR_UNSUPPORTED);
    lw_qn_matrix_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("matmul_qn");
    TCase *tc = tcase_create("qn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, formats_agree_with_the_file_reader);
    tcase_add_test(tc, row_decode_is_the_file_readers);
    tcase_add_loop_test(tc, forward_every_format_every_path, 0, TL_QN_N_TYPES);
    tcase_add_loop_test(tc, backward_every_format_every_path, 0, TL_QN_N_TYPES);
    tcase_add_loop_test(tc, forward_outputs_are_independent_on_every_path, 0, TL_QN_N_TYPES);
    tcase_add_loop_test(tc, backward_is_the_grouped_sum_on_every_path, 0, TL_QN_N_TYPES);
    tcase_add_test(tc, segments_and_views);
    tcase_add_test(tc, q8_0_quantised_here_pads_and_bounds);
    tcase_add_test(tc, bad_calls_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
