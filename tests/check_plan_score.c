/* The plan's label-scoring record (plan.h LW_OP_HEAD_LOGSOFTMAX) run by the
 * CPU executor (runtime/model/frozen_matmul.c), on the tiny random model of
 * every family (tiny_models.h), with its fp32 head and narrowed to bf16:
 *
 *   forward   every pair's log-prob against log-softmax in double over the
 *             logits the head's own product gives (frozen_matmul.h), within
 *             1e-5 x (1 + |logp|), and each row's log-sum-exp kept;
 *             several pairs on one row, rows with none;
 *   backward  d(sum_k c_k logp_k) / d xf against central finite
 *             differences of the forward (grad_check.h's tolerance);
 *   refusals  a pair outside the rows or the vocabulary, by name.
 *
 * The record's GPU form runs in check_plan_cuda_host (the training pass's
 * loss, backward and label scores over the host twins). */
#include "testlib.h"
#include "grad_check.h"
#include "tiny_models.h"
#include "frozen_matmul.h"
#include "model.h"
#include "narrow_weights.h"
#include "ops.h"
#include "random_weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

enum { ROWS = 5, PAIRS = 7 };

/* _i: family (0..3) x head (even: fp32, odd: bf16). */
static lw_model *open_model(int i, lw_plan *p)
{
    lw_model_config c = i / 2 == 0   ? tl_tiny_llama_config(LW_WEIGHTS_GGUF)
                        : i / 2 == 1 ? tl_tiny_gemma3_config(4)
                        : i / 2 == 2 ? tl_tiny_qwen2_config()
                                     : tl_tiny_qwen3_config();
    lw_model *m = NULL;
    OK(lw_model_init_random(&c, 71 + (uint64_t)i, &m));
    if (i % 2) OK(lw_model_narrow_bf16(m, true));
    lw_plan_lower(&m->cfg, p);
    return m;
}

/* Rows of unit scale; pairs: row 1 twice, row 3 none, the last token of the vocab once. */
static void fill(const lw_model *m, float *xf, int *row, int *id, float *c)
{
    int H = m->cfg.hidden, V = m->cfg.vocab;
    for (int i = 0; i < ROWS * H; i++) xf[i] = (float)sin(0.37 * i + 0.2);
    static const int rows[PAIRS] = {0, 1, 1, 2, 4, 4, 0};
    for (int k = 0; k < PAIRS; k++) {
        row[k] = rows[k];
        id[k] = k == PAIRS - 1 ? V - 1 : (5 * k + 2) % V;
        c[k] = (float)(0.5 + 0.25 * k) * (k % 2 ? -1.f : 1.f);
    }
}

START_TEST(forward_is_log_softmax_of_the_heads_logits)
{
    lw_plan p;
    lw_model *m = open_model(_i, &p);
    int H = m->cfg.hidden, V = m->cfg.vocab, row[PAIRS], id[PAIRS];
    float xf[ROWS * 64], c[PAIRS], lse[ROWS], *logits = malloc((size_t)ROWS * V * sizeof *logits);
    ck_assert(H <= 64 && logits);
    fill(m, xf, row, id, c);
    double logp[PAIRS];
    OK(lw_plan_cpu_head_logsoftmax(&p, m, xf, ROWS, row, id, PAIRS, lse, logp));
    OK(lw_weight_forward(logits, xf, lw_model_weight(m, -1, LW_W_OUTPUT), NULL, ROWS, H, V));
    for (int t = 0; t < ROWS; t++) {
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits[t * V + v]);
        for (int v = 0; v < V; v++) sum += exp(logits[t * V + v] - mx);
        double want = mx + log(sum);
        ck_assert_msg(fabs(lse[t] - want) <= 1e-5 * (1 + fabs(want)), "%s row %d: lse %.7g, want %.7g", m->cfg.name,
                      t, lse[t], want);
        for (int k = 0; k < PAIRS; k++) {
            if (row[k] != t) continue;
            double w = logits[t * V + id[k]] - want;
            ck_assert_msg(fabs(logp[k] - w) <= 1e-5 * (1 + fabs(w)), "%s (%s head) pair %d: %.7g, want %.7g",
                          m->cfg.name, _i % 2 ? "bf16" : "fp32", k, logp[k], w);
        }
    }
    free(logits);
    lw_model_free(m);
}
END_TEST

static double objective(const lw_plan *p, const lw_model *m, const float *xf, const int *row, const int *id,
                        const float *c)
{
    double logp[PAIRS], f = 0;
    OK(lw_plan_cpu_head_logsoftmax(p, m, xf, ROWS, row, id, PAIRS, NULL, logp));
    for (int k = 0; k < PAIRS; k++) f += c[k] * logp[k];
    return f;
}

START_TEST(backward_is_finite_differences)
{
    lw_plan p;
    lw_model *m = open_model(_i, &p);
    int H = m->cfg.hidden, row[PAIRS], id[PAIRS];
    float xf[ROWS * 64], c[PAIRS], lse[ROWS], dxf[ROWS * 64];
    double logp[PAIRS], fd[ROWS * 64];
    fill(m, xf, row, id, c);
    OK(lw_plan_cpu_head_logsoftmax(&p, m, xf, ROWS, row, id, PAIRS, lse, logp));
    for (int i = 0; i < ROWS * H; i++) dxf[i] = 1e9f;   /* written, not added to */
    OK(lw_plan_cpu_head_logsoftmax_backward(&p, m, xf, ROWS, row, id, PAIRS, lse, c, dxf));
    const float eps = 1e-2f;
    for (int i = 0; i < ROWS * H; i++) {
        float keep = xf[i];
        xf[i] = keep + eps;
        double up = objective(&p, m, xf, row, id, c);
        xf[i] = keep - eps;
        double down = objective(&p, m, xf, row, id, c);
        xf[i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    double worst = 0;
    int bad = tl_grad_mismatches(dxf, fd, (size_t)ROWS * H, &worst);
    ck_assert_msg(bad == 0, "%s (%s head): %d of %d gradients off (worst %.2f x the tolerance)", m->cfg.name,
                  _i % 2 ? "bf16" : "fp32", bad, ROWS * H, worst);
    /* row 3 has no pair: its gradient is exactly zero */
    for (int j = 0; j < H; j++) ck_assert_float_eq(dxf[3 * H + j], 0.f);
    lw_model_free(m);
}
END_TEST

/* Many rows at once (600: the fp32 form multiplies up to HEAD_SUM_ROWS =
 * 256 rows a product, the narrow form 64): every log-prob, log-sum-exp and
 * gradient row is what the record gives on that row's 64-row slice alone,
 * bit for bit under the narrow head (the same products), to 1e-5 x (1 +
 * |value|) under the fp32 one (a BLAS product of another height). */
START_TEST(many_rows_are_their_64_row_slices)
{
    enum { N = 600, SLICE = 64 };
    lw_plan p;
    lw_model *m = open_model(_i, &p);
    int H = m->cfg.hidden, V = m->cfg.vocab, *row = malloc(N * sizeof *row), *id = malloc(N * sizeof *id);
    float *xf = malloc((size_t)N * H * sizeof *xf), *lse = malloc(N * sizeof *lse), *lse1 = malloc(N * sizeof *lse1);
    float *c = malloc(N * sizeof *c), *dxf = malloc((size_t)N * H * sizeof *dxf), *dxf1 = malloc((size_t)N * H * sizeof *dxf1);
    double *logp = malloc(N * sizeof *logp), *logp1 = malloc(N * sizeof *logp1);
    ck_assert(row && id && xf && lse && lse1 && c && dxf && dxf1 && logp && logp1);
    for (int i = 0; i < N * H; i++) xf[i] = (float)sin(0.37 * i + 0.2);
    for (int r = 0; r < N; r++) row[r] = r, id[r] = (7 * r + 3) % V, c[r] = (float)(r % 5) - 2.f;
    OK(lw_plan_cpu_head_logsoftmax(&p, m, xf, N, row, id, N, lse, logp));
    OK(lw_plan_cpu_head_logsoftmax_backward(&p, m, xf, N, row, id, N, lse, c, dxf));
    for (int s0 = 0; s0 < N; s0 += SLICE) {
        int n = N - s0 < SLICE ? N - s0 : SLICE;
        OK(lw_plan_cpu_head_logsoftmax(&p, m, xf + (size_t)s0 * H, n, row, id + s0, n, lse1 + s0, logp1 + s0));
        OK(lw_plan_cpu_head_logsoftmax_backward(&p, m, xf + (size_t)s0 * H, n, row, id + s0, n, lse1 + s0, c + s0,
                                                dxf1 + (size_t)s0 * H));
    }
    double tol = _i % 2 ? 0 : 1e-5;   /* bf16: the same products; fp32: a BLAS product of another height */
    for (int r = 0; r < N; r++) {
        ck_assert_msg(fabs(logp[r] - logp1[r]) <= tol * (1 + fabs(logp1[r])) &&
                          fabs(lse[r] - lse1[r]) <= tol * (1 + fabs(lse1[r])),
                      "%s (%s head) row %d: logp %.9g / %.9g, lse %.9g / %.9g", m->cfg.name,
                      _i % 2 ? "bf16" : "fp32", r, logp[r], logp1[r], lse[r], lse1[r]);
        for (int j = 0; j < H; j++) {
            float a = dxf[(size_t)r * H + j], b = dxf1[(size_t)r * H + j];
            ck_assert_msg(fabsf(a - b) <= tol * (1 + fabsf(b)), "%s (%s head) row %d: gradient %d is %.9g, its slice's %.9g",
                          m->cfg.name, _i % 2 ? "bf16" : "fp32", r, j, a, b);
        }
    }
    free(row), free(id), free(xf), free(lse), free(lse1), free(c), free(dxf), free(dxf1), free(logp), free(logp1);
    lw_model_free(m);
}
END_TEST

/* The fp32 form's op (ops.h head_logsoftmax_forward / _backward) over a
 * vocabulary of several HEAD_BLOCKs and more rows than one product: every
 * row's lse and log-prob, and its dx, what the op gives on the row's
 * 64-row slice alone (the op's products were 64 rows high before, and
 * streamed the whole head once per 64 rows) to 1e-5 x (1 + |value|): the
 * same sums, by a BLAS product of another height, which may sum in another
 * order (here 5e-6 at most, from OpenBLAS's small-matrix kernels; on the
 * default pair's Gemma head the scores came out bit for bit the same). */
START_TEST(the_fp32_op_streams_the_head_once_for_many_rows)
{
    enum { T = 600, H = 16, V = 3 * HEAD_BLOCK + 100 };
    float *x = malloc((size_t)T * H * sizeof *x), *w = malloc((size_t)V * H * sizeof *w);
    float *scratch = malloc(HEAD_SCRATCH * sizeof *scratch), *lse = malloc(T * sizeof *lse), *lse1 = malloc(T * sizeof *lse1);
    float *lp = malloc(T * sizeof *lp), *lp1 = malloc(T * sizeof *lp1), *d = malloc(T * sizeof *d);
    float *dx = calloc((size_t)T * H, sizeof *dx), *dx1 = calloc((size_t)T * H, sizeof *dx1);
    int *row = malloc(T * sizeof *row), *id = malloc(T * sizeof *id);
    ck_assert(x && w && scratch && lse && lse1 && lp && lp1 && d && dx && dx1 && row && id);
    for (int i = 0; i < T * H; i++) x[i] = (float)sin(0.37 * i + 0.2);
    for (int i = 0; i < V * H; i++) w[i] = (float)cos(0.11 * i) * (float)(1 + (i / H) % 7);
    for (int t = 0; t < T; t++) row[t] = t, id[t] = (131 * t + 5) % V, d[t] = (float)(t % 3) - 1.f;
    head_logsoftmax_forward(lp, lse, x, w, T, H, V, row, id, T, scratch);
    head_logsoftmax_backward(dx, NULL, d, x, w, T, H, V, row, id, T, lse, scratch);
    for (int t0 = 0; t0 < T; t0 += 64) {
        int n = T - t0 < 64 ? T - t0 : 64;
        head_logsoftmax_forward(lp1 + t0, lse1 + t0, x + (size_t)t0 * H, w, n, H, V, row, id + t0, n, scratch);
        head_logsoftmax_backward(dx1 + (size_t)t0 * H, NULL, d + t0, x + (size_t)t0 * H, w, n, H, V, row, id + t0, n,
                                 lse1 + t0, scratch);
    }
    double worst = 0;
    for (int t = 0; t < T; t++) {
        worst = fmax(worst, fabs(lp[t] - lp1[t]) / (1 + fabs(lp1[t])));
        worst = fmax(worst, fabs(lse[t] - lse1[t]) / (1 + fabs(lse1[t])));
    }
    for (int i = 0; i < T * H; i++) worst = fmax(worst, fabs(dx[i] - dx1[i]) / (1 + fabs(dx1[i])));
    ck_assert_msg(worst <= 1e-5, "%d rows against 64-row slices: largest difference %.3g x (1 + |value|)", T, worst);
    free(x), free(w), free(scratch), free(lse), free(lse1), free(lp), free(lp1), free(d), free(dx), free(dx1);
    free(row), free(id);
}
END_TEST

START_TEST(pairs_outside_the_rows_or_vocab_are_refused)
{
    lw_plan p;
    lw_model *m = open_model(0, &p);
    int row[PAIRS], id[PAIRS];
    float xf[ROWS * 64], c[PAIRS];
    double logp[PAIRS];
    fill(m, xf, row, id, c);
    row[2] = ROWS;
    ck_assert_int_eq(lw_plan_cpu_head_logsoftmax(&p, m, xf, ROWS, row, id, PAIRS, NULL, logp), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "pair 2 is (row 5"), "%s", lw_last_error());
    row[2] = 1, id[4] = m->cfg.vocab;
    ck_assert_int_eq(lw_plan_cpu_head_logsoftmax(&p, m, xf, ROWS, row, id, PAIRS, NULL, logp), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "pair 4"), "%s", lw_last_error());
    /* a plan of another model's vocabulary */
    lw_plan other = p;
    other.model_ops[4].parts[0].width++;
    id[4] = 0;
    ck_assert_int_eq(lw_plan_cpu_head_logsoftmax(&other, m, xf, ROWS, row, id, PAIRS, NULL, logp), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "head_logsoftmax"), "%s", lw_last_error());
    lw_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan_score");
    TCase *tc = tcase_create("plan_score");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, forward_is_log_softmax_of_the_heads_logits, 0, 8);
    tcase_add_loop_test(tc, backward_is_finite_differences, 0, 8);
    tcase_add_loop_test(tc, many_rows_are_their_64_row_slices, 0, 8);
    tcase_add_test(tc, the_fp32_op_streams_the_head_once_for_many_rows);
    tcase_add_test(tc, pairs_outside_the_rows_or_vocab_are_refused);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
