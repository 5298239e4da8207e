/* Threads (issue 19, item 3), the ops: every result is BIT-IDENTICAL for 1,
 * 2 and 3 threads (tests/check_threads.c: the model and lw train) (runtime/ops/cpu_threads.h says how the work is split so that it
 * can be). Held with memcmp, never a tolerance: the fp32, bf16, q8 and
 * block (GGUF) products (forward and dX/dW backward, every CPU path this machine runs,
 * one row and many), attention forward by head and backward by rows then
 * key blocks (against the unsplit backward), the split GLU, RMSNorm, RoPE
 * and the bridge's AdamW step (against the plain loops), a tiny
 * model's logits and its gradient wrt the input embeddings (fp32 and bf16
 * weights, a grouped-query llama and a windowed gemma3 with one kv head),
 * and `lw train --threads N` on the tiny pair: the two-step training log
 * (timing fields aside) and the trained bridge's file.
 *
 * The split threshold is set to 0 (lw_cpu_split_threshold_set) so that the
 * tiny shapes here split as the real models' do (one case holds decode's
 * one-row weights at the default threshold), and each case checks that
 * work really went to the workers (lw_threads_parallel_jobs): a test that
 * passes because nothing was split would prove nothing. */
#include "testlib.h"
#include "thread_same.h"
#include "cpu_path.h"
#include "adamw.h"
#include "bridge.h"
#include "cpu_threads.h"
#include "model_config.h"
#include "op_matmul_bf16.h"
#include "op_matmul_q8.h"
#include "op_matmul_qn.h"
#include "op_matmul_qp.h"
#include "qn_blocks.h"
#include "ops.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_COUNTS = 3 };
static const int COUNTS[N_COUNTS] = {1, 2, 3};

/* ---- products ------------------------------------------------------------ */

static const int SHAPES[][3] = {{1, 100, 300}, {2, 64, 64}, {3, 100, 300}, {9, 576, 200}, {64, 130, 1000},
                                {17, 1000, 96}};
enum { N_SHAPES = sizeof SHAPES / sizeof SHAPES[0] };

START_TEST(fp32_products_identical_for_any_thread_count)
{
    lw_cpu_split_threshold_set(0);
    for (int s = 0; s < N_SHAPES; s++) {
        int T = SHAPES[s][0], in = SHAPES[s][1], out = SHAPES[s][2];
        float *x = tl_rand_floats((size_t)T * in, 1), *w = tl_rand_floats((size_t)out * in, 2), *b = tl_rand_floats(out, 3);
        float *dy = tl_rand_floats((size_t)T * out, 4);
        float *y[N_COUNTS], *dx[N_COUNTS], *dw[N_COUNTS];
        long jobs = lw_threads_parallel_jobs();
        for (int c = 0; c < N_COUNTS; c++) {
            tl_use_threads(COUNTS[c]);
            y[c] = calloc((size_t)T * out, sizeof(float));
            dx[c] = tl_rand_floats((size_t)T * in, 5); /* backward accumulates: start from the same values */
            dw[c] = tl_rand_floats((size_t)out * in, 6);
            matmul_forward(y[c], x, w, b, T, in, out);
            matmul_backward(dx[c], dw[c], NULL, dy, x, w, T, in, out);
            if (c > 0) {
                tl_assert_same(y[c], y[0], (size_t)T * out, "fp32 forward", COUNTS[c]);
                tl_assert_same(dx[c], dx[0], (size_t)T * in, "fp32 dX", COUNTS[c]);
                tl_assert_same(dw[c], dw[0], (size_t)out * in, "fp32 dW", COUNTS[c]);
            }
        }
        ck_assert_msg(lw_threads_parallel_jobs() > jobs, "T %d %d -> %d: nothing was split", T, in, out);
        for (int c = 0; c < N_COUNTS; c++) free(y[c]), free(dx[c]), free(dw[c]);
        free(x), free(w), free(b), free(dy);
    }
    lw_threads_shutdown();
}
END_TEST

/* OpenBLAS as Debian builds it runs its SSE3 (Prescott) kernels on this
 * CPU (docs/perf.md), which happen to give the same sums for any split of
 * the outputs; its AVX-512 (SkylakeX) kernels do not, and they are what a
 * newer OpenBLAS or OPENBLAS_CORETYPE=SkylakeX runs. So the fp32 case runs
 * again in a fresh process with those kernels, where a partition that
 * followed the thread count would show. */
START_TEST(fp32_products_identical_with_avx512_blas_kernels)
{
    if (lw_cpu_path_detected() != LW_CPU_AVX512) return; /* SkylakeX kernels need AVX-512 */
    char *out = NULL;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert(n > 0);
    self[n] = 0;
    int rc = tl_run(&out, "OPENBLAS_CORETYPE=SkylakeX CK_RUN_CASE=fp32 '%s' 2>&1", self);
    ck_assert_msg(rc == 0 && strstr(out, "100%: Checks: 1"), "with OPENBLAS_CORETYPE=SkylakeX:\n%s", out);
    free(out);
}
END_TEST

START_TEST(bf16_products_identical_on_every_path)
{
    lw_cpu_split_threshold_set(0);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        for (int s = 0; s < N_SHAPES; s++) {
            int T = SHAPES[s][0], in = SHAPES[s][1], out = SHAPES[s][2];
            float *x = tl_rand_floats((size_t)T * in, 11), *wf = tl_rand_floats((size_t)out * in, 12);
            float *b = tl_rand_floats(out, 13), *dy = tl_rand_floats((size_t)T * out, 14);
            lw_bf16_matrix w;
            ck_assert_int_eq(lw_bf16_matrix_pack(&w, wf, out, in), LW_OK);
            float *y[N_COUNTS], *dx[N_COUNTS];
            long jobs = lw_threads_parallel_jobs();
            for (int c = 0; c < N_COUNTS; c++) {
                tl_use_threads(COUNTS[c]);
                y[c] = calloc((size_t)T * out, sizeof(float));
                dx[c] = tl_rand_floats((size_t)T * in, 15);
                ck_assert_int_eq(matmul_bf16_forward_on((lw_cpu_path)p, y[c], x, &w, b, T), LW_OK);
                ck_assert_int_eq(matmul_bf16_backward_x_on((lw_cpu_path)p, dx[c], dy, &w, T), LW_OK);
                if (c > 0) {
                    char what[64];
                    snprintf(what, sizeof what, "bf16 %s forward T %d", lw_cpu_path_name((lw_cpu_path)p), T);
                    tl_assert_same(y[c], y[0], (size_t)T * out, what, COUNTS[c]);
                    snprintf(what, sizeof what, "bf16 %s dX T %d", lw_cpu_path_name((lw_cpu_path)p), T);
                    tl_assert_same(dx[c], dx[0], (size_t)T * in, what, COUNTS[c]);
                }
            }
            /* ranges of at least 2 rows: 2 and 3 rows stay whole */
            if (T == 1 || T >= 4) ck_assert_msg(lw_threads_parallel_jobs() > jobs, "bf16 T %d: nothing was split", T);
            for (int c = 0; c < N_COUNTS; c++) free(y[c]), free(dx[c]);
            lw_bf16_matrix_free(&w);
            free(x), free(wf), free(b), free(dy);
        }
    }
    lw_threads_shutdown();
}
END_TEST

START_TEST(q8_forward_identical_on_every_path)
{
    lw_cpu_split_threshold_set(0);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        for (int s = 0; s < N_SHAPES; s++) {
            int T = SHAPES[s][0], in = SHAPES[s][1], out = SHAPES[s][2];
            if (T < 2) continue; /* one row is not split (q8 is not in decode yet) */
            float *x = tl_rand_floats((size_t)T * in, 21), *wf = tl_rand_floats((size_t)out * in, 22);
            lw_q8_matrix w;
            ck_assert_int_eq(lw_q8_matrix_pack(&w, wf, out, in), LW_OK);
            float *y[N_COUNTS];
            long jobs = lw_threads_parallel_jobs();
            for (int c = 0; c < N_COUNTS; c++) {
                tl_use_threads(COUNTS[c]);
                y[c] = calloc((size_t)T * out, sizeof(float));
                ck_assert_int_eq(matmul_q8_forward_on((lw_cpu_path)p, y[c], x, &w, NULL, T), LW_OK);
                if (c > 0) tl_assert_same(y[c], y[0], (size_t)T * out, "q8 forward", COUNTS[c]);
            }
            if (T >= 4) ck_assert_msg(lw_threads_parallel_jobs() > jobs, "q8 T %d: nothing was split", T);
            for (int c = 0; c < N_COUNTS; c++) free(y[c]);
            lw_q8_matrix_free(&w);
            free(x), free(wf);
        }
    }
    lw_threads_shutdown();
}
END_TEST

/* The block products (--dtype q8|native) on every path, one row (decode)
 * and many: the per-call paths split by blocks of 16 outputs, the packed
 * AVX-512 copy by panels. */
START_TEST(block_products_identical_on_every_path)
{
    lw_cpu_split_threshold_set(0);
    static const uint32_t types[] = {LW_QN_Q4_1, LW_QN_Q4_K, LW_QN_Q6_K, LW_QN_Q8_0};
    static const int shapes[][3] = {{1, 512, 300}, {1, 256, 40}, {5, 256, 300}};
    lw_rng rng;
    lw_rng_seed(&rng, 31);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++)
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                int T = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
                uint8_t *blk = tl_qn_rand_blocks(&rng, types[k], out, in);
                float *x = tl_rand_floats((size_t)T * in, 23), *b = tl_rand_floats((size_t)out, 24);
                lw_qn_matrix w;
                lw_qn_matrix_init(&w, in);
                ck_assert_int_eq(lw_qn_matrix_append(&w, types[k], blk, out), LW_OK);
                if (p == LW_CPU_AVX512) ck_assert_int_eq(lw_qn_pack_forward(&w), LW_OK);
                float *y[N_COUNTS];
                long jobs = lw_threads_parallel_jobs();
                for (int c = 0; c < N_COUNTS; c++) {
                    tl_use_threads(COUNTS[c]);
                    y[c] = calloc((size_t)T * out, sizeof(float));
                    ck_assert_int_eq(matmul_qn_forward_on((lw_cpu_path)p, y[c], x, &w, b, T), LW_OK);
                    if (c > 0) tl_assert_same(y[c], y[0], (size_t)T * out, "block product", COUNTS[c]);
                }
                ck_assert_msg(lw_threads_parallel_jobs() > jobs, "%s path %d T %d: nothing was split",
                              lw_qn_type_name(types[k]), p, T);
                for (int c = 0; c < N_COUNTS; c++) free(y[c]);
                lw_qn_matrix_free(&w);
                free(blk), free(x), free(b);
            }
    lw_threads_shutdown();
}
END_TEST

/* The products on GGUF blocks (q8 / native weights; the AVX-512 path with
 * its packed panels is op_matmul_qp's, check_matmul_qp): the forward's
 * outputs and the dX backward's rows cut over the threads. */
START_TEST(qn_products_identical_on_every_path)
{
    lw_cpu_split_threshold_set(0);
    lw_rng rng;
    lw_rng_seed(&rng, 61);
    for (int p = LW_CPU_SCALAR; p <= (int)lw_cpu_path_detected(); p++) {
        for (int s = 0; s < N_SHAPES; s++) {
            int T = SHAPES[s][0], in = SHAPES[s][1] / 32 * 32 + 32, out = SHAPES[s][2];
            uint8_t *blk = tl_qn_rand_blocks(&rng, LW_QN_Q8_0, out, in);
            float *dy = tl_rand_floats((size_t)T * out, 41);
            lw_qn_matrix w;
            lw_qn_matrix_init(&w, in);
            ck_assert_int_eq(lw_qn_matrix_append(&w, LW_QN_Q8_0, blk, out), LW_OK);
            float *x = tl_rand_floats((size_t)T * in, 43), *dx[N_COUNTS], *y[N_COUNTS];
            long jobs = lw_threads_parallel_jobs();
            for (int c = 0; c < N_COUNTS; c++) {
                tl_use_threads(COUNTS[c]);
                dx[c] = tl_rand_floats((size_t)T * in, 42);
                y[c] = calloc((size_t)T * out, sizeof(float));
                ck_assert_int_eq(matmul_qn_forward_on((lw_cpu_path)p, y[c], x, &w, NULL, T), LW_OK);
                ck_assert_int_eq(matmul_qn_backward_x_on((lw_cpu_path)p, dx[c], dy, &w, T), LW_OK);
                if (c > 0) {
                    tl_assert_same(y[c], y[0], (size_t)T * out, "qn forward", COUNTS[c]);
                    tl_assert_same(dx[c], dx[0], (size_t)T * in, "qn dX", COUNTS[c]);
                }
            }
            ck_assert_msg(lw_threads_parallel_jobs() > jobs + (T >= 4), "qn T %d: nothing was split", T);
            for (int c = 0; c < N_COUNTS; c++) free(dx[c]), free(y[c]);
            free(x);
            lw_qn_matrix_free(&w);
            free(blk), free(dy);
        }
    }
    lw_threads_shutdown();
}
END_TEST

/* Grouped-query (4 query heads on 2 kv heads) and one kv head, a window and
 * a sink: the backward's dk and dv sum over a kv head's query heads. The
 * backward splits over query rows and then over blocks of 32 keys (one
 * shape has three blocks); every count must give the bits of the unsplit
 * backward (one task a kv head, what runs below the split threshold). */
START_TEST(attention_identical_for_any_thread_count)
{
    const int shapes[2][3] = {{7, 12, 8}, {40, 75, 20}};   /* Tq, Tk, D */
    const int Hq = 4, hkv[2] = {2, 1};
    for (int sh = 0; sh < 2; sh++)
    for (int v = 0; v < 2; v++) {
        int Tq = shapes[sh][0], Tk = shapes[sh][1], D = shapes[sh][2], Hkv = hkv[v];
        lw_attention_params prm = {.causal = true, .q_offset = Tk - Tq, .window = v ? 4 + 20 * sh : 0, .scale = 0.35f};
        float *q = tl_rand_floats((size_t)Tq * Hq * D, 31), *k = tl_rand_floats((size_t)Tk * Hkv * D, 32);
        float *val = tl_rand_floats((size_t)Tk * Hkv * D, 33), *dout = tl_rand_floats((size_t)Tq * Hq * D, 34);
        /* the unsplit reference: one thread, above any work */
        float *want_dq = calloc((size_t)Tq * Hq * D, sizeof(float)), *want_dk = calloc((size_t)Tk * Hkv * D, sizeof(float));
        float *want_dv = calloc((size_t)Tk * Hkv * D, sizeof(float)), *want_att = calloc((size_t)Hq * Tq * Tk, sizeof(float));
        float *want_out = calloc((size_t)Tq * Hq * D, sizeof(float));
        tl_use_threads(1);
        lw_cpu_split_threshold_set(1e300);
        attention_forward_sink(want_out, want_att, q, k, val, Tq, Tk, Hq, Hkv, D, &prm, v ? 2 : 0);
        attention_backward_sink(want_dq, want_dk, want_dv, dout, want_att, q, k, val, Tq, Tk, Hq, Hkv, D, &prm,
                                v ? 2 : 0);
        lw_cpu_split_threshold_set(0);
        float *out[N_COUNTS], *att[N_COUNTS], *dq[N_COUNTS], *dk[N_COUNTS], *dv[N_COUNTS];
        long jobs = lw_threads_parallel_jobs();
        for (int c = 0; c < N_COUNTS; c++) {
            tl_use_threads(COUNTS[c]);
            out[c] = calloc((size_t)Tq * Hq * D, sizeof(float));
            att[c] = calloc((size_t)Hq * Tq * Tk, sizeof(float));
            dq[c] = calloc((size_t)Tq * Hq * D, sizeof(float));
            dk[c] = calloc((size_t)Tk * Hkv * D, sizeof(float));
            dv[c] = calloc((size_t)Tk * Hkv * D, sizeof(float));
            attention_forward_sink(out[c], att[c], q, k, val, Tq, Tk, Hq, Hkv, D, &prm, v ? 2 : 0);
            attention_backward_sink(dq[c], dk[c], dv[c], dout, att[c], q, k, val, Tq, Tk, Hq, Hkv, D, &prm, v ? 2 : 0);
            tl_assert_same(out[c], want_out, (size_t)Tq * Hq * D, "attention out", COUNTS[c]);
            tl_assert_same(att[c], want_att, (size_t)Hq * Tq * Tk, "attention probabilities", COUNTS[c]);
            tl_assert_same(dq[c], want_dq, (size_t)Tq * Hq * D, "attention dq", COUNTS[c]);
            tl_assert_same(dk[c], want_dk, (size_t)Tk * Hkv * D, "attention dk", COUNTS[c]);
            tl_assert_same(dv[c], want_dv, (size_t)Tk * Hkv * D, "attention dv", COUNTS[c]);
            /* without dq, or without dk and dv (a frozen prefix's caller passes some NULL) */
            float *dq2 = calloc((size_t)Tq * Hq * D, sizeof(float)), *dk2 = calloc((size_t)Tk * Hkv * D, sizeof(float));
            attention_backward_sink(NULL, dk2, NULL, dout, att[c], q, k, val, Tq, Tk, Hq, Hkv, D, &prm, v ? 2 : 0);
            tl_assert_same(dk2, want_dk, (size_t)Tk * Hkv * D, "attention dk without dq and dv", COUNTS[c]);
            attention_backward_sink(dq2, NULL, NULL, dout, att[c], q, k, val, Tq, Tk, Hq, Hkv, D, &prm, v ? 2 : 0);
            tl_assert_same(dq2, want_dq, (size_t)Tq * Hq * D, "attention dq without dk and dv", COUNTS[c]);
            free(dq2), free(dk2);
        }
        ck_assert_msg(lw_threads_parallel_jobs() > jobs, "attention: nothing was split");
        for (int c = 0; c < N_COUNTS; c++) free(out[c]), free(att[c]), free(dq[c]), free(dk[c]), free(dv[c]);
        free(q), free(k), free(val), free(dout), free(want_dq), free(want_dk), free(want_dv), free(want_att), free(want_out);
    }
    lw_threads_shutdown();
}
END_TEST

/* The split GLU, RMSNorm and RoPE equal the plain ops bit for bit; the split
 * zeroing zeroes. */
START_TEST(elementwise_and_row_ops_equal_the_plain_ops)
{
    lw_cpu_split_threshold_set(0);
    const int T = 13, C = 97, n = T * C; /* no multiple of 64 */
    float *gate = tl_rand_floats(n, 51), *up = tl_rand_floats(n, 52), *dout = tl_rand_floats(n, 53), *w = tl_rand_floats(C, 54);
    float *want = calloc(n, sizeof(float)), *got = calloc(n, sizeof(float));
    float *want2 = tl_rand_floats(n, 55), *got2 = tl_rand_floats(n, 55), *want3 = tl_rand_floats(n, 56), *got3 = tl_rand_floats(n, 56);
    float *rs_want = calloc(T, sizeof(float)), *rs_got = calloc(T, sizeof(float));
    const lw_activation acts[2] = {LW_ACT_SILU, LW_ACT_GELU_TANH};
    long jobs = lw_threads_parallel_jobs();
    for (int c = 0; c < N_COUNTS; c++) {
        tl_use_threads(COUNTS[c]);
        for (int a = 0; a < 2; a++) {
            glu_forward(want, gate, up, n, acts[a]);
            glu_forward_par(got, gate, up, n, acts[a]);
            tl_assert_same(got, want, n, "GLU forward", COUNTS[c]);
            glu_backward(want2, want3, dout, gate, up, n, acts[a]);
            glu_backward_par(got2, got3, dout, gate, up, n, acts[a]);
            tl_assert_same(got2, want2, n, "GLU backward dgate", COUNTS[c]);
            tl_assert_same(got3, want3, n, "GLU backward dup", COUNTS[c]);
        }
        rmsnorm_forward(want, rs_want, gate, w, T, C, 1e-6f, LW_NORM_RMSNORM_GEMMA);
        rmsnorm_forward_par(got, rs_got, gate, w, T, C, 1e-6f, LW_NORM_RMSNORM_GEMMA);
        tl_assert_same(got, want, n, "RMSNorm forward", COUNTS[c]);
        tl_assert_same(rs_got, rs_want, T, "RMSNorm rstd", COUNTS[c]);
        rmsnorm_backward(want2, NULL, dout, gate, w, rs_want, T, C, LW_NORM_RMSNORM_GEMMA);
        rmsnorm_backward_par(got2, dout, gate, w, rs_want, T, C, LW_NORM_RMSNORM_GEMMA);
        tl_assert_same(got2, want2, n, "RMSNorm backward", COUNTS[c]);
        /* RoPE: T rows of 3 heads of 32 (n = T * 97 holds them), both layouts */
        const int H = 3, Dh = 32;
        float inv[16];
        int pos[13];   /* T */
        rope_inv_freq(inv, Dh, 10000.0f, NULL);
        for (int t = 0; t < T; t++) pos[t] = 5 + 3 * t;
        for (int il = 0; il < 2; il++) {
            memcpy(want, gate, sizeof(float) * T * H * Dh), memcpy(got, gate, sizeof(float) * T * H * Dh);
            rope_forward(want, pos, inv, T, H, Dh, il);
            rope_forward_par(got, pos, inv, T, H, Dh, il);
            tl_assert_same(got, want, (size_t)T * H * Dh, "RoPE forward", COUNTS[c]);
            rope_backward(want, pos, inv, T, H, Dh, il);
            rope_backward_par(got, pos, inv, T, H, Dh, il);
            tl_assert_same(got, want, (size_t)T * H * Dh, "RoPE backward", COUNTS[c]);
        }
        /* zeroing in page pieces: every byte of an odd length, none past it */
        size_t zn = ((size_t)1 << 20) + 13;
        unsigned char *z = malloc(zn + 8);
        ck_assert_ptr_nonnull(z);
        memset(z, 0xa5, zn + 8);
        lw_zero_par(z + 1, zn);
        ck_assert_int_eq(z[0], 0xa5);
        for (size_t i = 1; i <= zn; i++)
            if (z[i]) ck_abort_msg("lw_zero_par: byte %zu of %zu left %d at %d threads", i - 1, zn, z[i], COUNTS[c]);
        for (size_t i = zn + 1; i < zn + 8; i++) ck_assert_int_eq(z[i], 0xa5);
        free(z);
    }
    ck_assert_msg(lw_threads_parallel_jobs() > jobs, "elementwise: nothing was split");
    free(gate), free(up), free(dout), free(w), free(want), free(got), free(want2), free(got2), free(want3), free(got3);
    free(rs_want), free(rs_got);
    lw_threads_shutdown();
}
END_TEST

/* The bridge's AdamW step splits its tensors into chunks of 32768 over the
 * pool: the bits of one thread's loop over the tensors, over two steps (the
 * moments carry); a frozen tensor (the input norm's buffers) is not moved. */
START_TEST(bridge_adamw_identical_for_any_thread_count)
{
    static const struct { size_t count; bool decay, trainable; } T[4] = {
        {70001, true, true}, {5, false, true}, {40000, true, false}, {33000, true, true}};
    lw_bridge_tensor tensors[4] = {{.offset = 0}};
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        tensors[i].offset = n, tensors[i].count = T[i].count, tensors[i].decay = T[i].decay,
        tensors[i].trainable = T[i].trainable, n += T[i].count;
    float *g = tl_rand_floats(n, 61), *want = NULL, *frozen = tl_rand_floats(n, 62);
    long jobs = lw_threads_parallel_jobs();
    for (int c = 0; c < N_COUNTS; c++) {
        tl_use_threads(COUNTS[c]);
        lw_bridge b = {.n_params = n, .params = tl_rand_floats(n, 62), .grads = g, .n_tensors = 4, .tensors = tensors};
        lw_adamw o;
        ck_assert_int_eq(lw_adamw_init(&o, n, lw_adamw_defaults()), LW_OK);
        for (int step = 0; step < 2; step++) lw_bridge_adamw_step(&b, &o, 1e-3f, 0.01f);
        tl_assert_same(b.params + tensors[2].offset, frozen + tensors[2].offset, tensors[2].count,
                       "AdamW: the frozen tensor", COUNTS[c]);
        ck_assert_msg(b.params[0] != frozen[0], "AdamW: nothing moved");
        if (c == 0) want = b.params;
        else tl_assert_same(b.params, want, n, "AdamW parameters", COUNTS[c]), free(b.params);
        lw_adamw_free(&o);
    }
    ck_assert_msg(lw_threads_parallel_jobs() > jobs, "AdamW: nothing was split");
    free(g), free(want), free(frozen);
    lw_threads_shutdown();
}
END_TEST

/* Decode's rule at the DEFAULT threshold (not 0): a one-row product weighs
 * LW_ONE_ROW_COST times its flops and one-row attention ATTN_ONE_ROW_COST
 * (cpu_threads.h, op_attention.c), so SmolLM2-sized decode calls split
 * where their flops alone would not, the small ones still do not, and the
 * bits are those of one thread. */
static bool splits(long jobs0) { return lw_threads_parallel_jobs() > jobs0; }

START_TEST(decode_calls_split_by_their_one_row_weight)
{
    ck_assert(lw_cpu_split_threshold() == (double)(1 << 20));
    lw_cpu_path path;
    ck_assert_int_eq(lw_cpu_path_get(&path), LW_OK);
    lw_rng rng;
    lw_rng_seed(&rng, 43);
    /* 2 x 576 x 320 = 369 kflop: split at T = 1 (x5), 64 outputs (74 kflop) not */
    static const int outs[2] = {320, 64};
    for (int k = 0; k < 2; k++) {
        const int in = 576, out = outs[k];
        uint8_t *blk = tl_qn_rand_blocks(&rng, LW_QN_Q4_1, out, in);
        float *x = tl_rand_floats((size_t)in, 51), *y1 = calloc((size_t)out, sizeof(float));
        float *y2 = calloc((size_t)out, sizeof(float));
        lw_qn_matrix w;
        lw_qn_matrix_init(&w, in);
        ck_assert_int_eq(lw_qn_matrix_append(&w, LW_QN_Q4_1, blk, out), LW_OK);
        if (path == LW_CPU_AVX512) ck_assert_int_eq(lw_qn_pack_forward(&w), LW_OK);
        tl_use_threads(1);
        ck_assert_int_eq(matmul_qn_forward(y1, x, &w, NULL, 1), LW_OK);
        tl_use_threads(2);
        long jobs = lw_threads_parallel_jobs();
        ck_assert_int_eq(matmul_qn_forward(y2, x, &w, NULL, 1), LW_OK);
        ck_assert_msg(splits(jobs) == (k == 0), "one-row product of %d x %d: split %d", out, in, splits(jobs));
        tl_assert_same(y2, y1, (size_t)out, "one-row block product", 2);
        lw_qn_matrix_free(&w);
        free(blk), free(x), free(y1), free(y2);
    }
    /* SmolLM2's heads (9 / 3 of 64): 4 Hq Tk D = 147 kflop at 64 keys splits
     * (x10), 37 kflop at 16 keys does not */
    static const int keys[2] = {64, 16};
    for (int k = 0; k < 2; k++) {
        const int Hq = 9, Hkv = 3, D = 64, Tk = keys[k];
        float *q = tl_rand_floats((size_t)Hq * D, 52), *kc = tl_rand_floats((size_t)Tk * Hkv * D, 53);
        float *vc = tl_rand_floats((size_t)Tk * Hkv * D, 54);
        float *o1 = calloc((size_t)Hq * D, sizeof(float)), *o2 = calloc((size_t)Hq * D, sizeof(float));
        lw_attention_params p = {.causal = true, .q_offset = Tk - 1, .scale = 0.125f};
        tl_use_threads(1);
        attention_forward(o1, NULL, q, kc, vc, 1, Tk, Hq, Hkv, D, &p);
        tl_use_threads(2);
        long jobs = lw_threads_parallel_jobs();
        attention_forward(o2, NULL, q, kc, vc, 1, Tk, Hq, Hkv, D, &p);
        ck_assert_msg(splits(jobs) == (k == 0), "one-row attention over %d keys: split %d", Tk, splits(jobs));
        tl_assert_same(o2, o1, (size_t)Hq * D, "one-row attention", 2);
        free(q), free(kc), free(vc), free(o1), free(o2);
    }
    lw_threads_shutdown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads_ops");
    TCase *fp = tcase_create("fp32");
    tcase_set_timeout(fp, 300);
    tcase_add_test(fp, fp32_products_identical_for_any_thread_count);
    suite_add_tcase(s, fp);
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, fp32_products_identical_with_avx512_blas_kernels);
    tcase_add_test(tc, bf16_products_identical_on_every_path);
    tcase_add_test(tc, q8_forward_identical_on_every_path);
    tcase_add_test(tc, block_products_identical_on_every_path);
    tcase_add_test(tc, qn_products_identical_on_every_path);
    tcase_add_test(tc, attention_identical_for_any_thread_count);
    tcase_add_test(tc, elementwise_and_row_ops_equal_the_plain_ops);
    tcase_add_test(tc, bridge_adamw_identical_for_any_thread_count);
    tcase_add_test(tc, decode_calls_split_by_their_one_row_weight);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
