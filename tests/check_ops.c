/* The CPU ops against hand-computed values, an attention reference that
 * also checks each row of probabilities sums to 1, and PyTorch goldens
 * (tests/golden/ops/). Every op against a double-precision reference on
 * every backend, and every backward by finite differences, is the
 * backend-ops harness: tests/check_backend_ops.c, cases in runtime/ops/op_list.h. */
#include "testlib.h"
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed * 0x9E3779B97F4A7C15ull + 1; }

static float rng_uniform(void)  /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 24))) * 2.0f - 1.0f;
}

static float *rand_array(size_t n, float scale)
{
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = rng_uniform() * scale;
    return a;
}

static float *zero_array(size_t n)
{
    float *a = calloc(n ? n : 1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    return a;
}

static float *copy_array(const float *src, size_t n)
{
    float *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    memcpy(a, src, n * sizeof *a);
    return a;
}

/* Largest |a - b| / (atol + |b|)-style error; fails with the worst index. */
static void assert_close(const float *got, const float *want, size_t n, float atol, float rtol,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        float tol = atol + rtol * fabsf(want[i]);
        if (!(fabsf(got[i] - want[i]) <= tol))
            ck_abort_msg("%s[%zu]: got %.8g, want %.8g (tol %.3g)", what, i, got[i], want[i], tol);
    }
}


/* ---- matmul ------------------------------------------------------------- */

START_TEST(matmul_small_by_hand)
{
    const float x[2 * 3] = {1, 2, 3, 4, 5, 6};
    const float w[2 * 3] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    const float b[2] = {10, -1};
    const float want[2 * 2] = {1 - 3 + 10, 3 - 1, 4 - 6 + 10, 7.5f - 1};
    float y[4], yr[4];
    matmul_forward(y, x, w, b, 2, 3, 2);
    assert_close(y, want, 4, 0, 1e-6f, "y");
    matmul_forward_reference(yr, x, w, b, 2, 3, 2);
    assert_close(yr, want, 4, 0, 1e-6f, "y_ref");
}
END_TEST


/* ---- rmsnorm / layernorm ------------------------------------------------ */

START_TEST(rmsnorm_by_hand_both_kinds)
{
    const float x[2 * 2] = {3, 4, 1, -1};
    const float w[2] = {2, 0.5f};
    float y[4], rstd[2];
    float r0 = 1.0f / sqrtf(12.5f + 1e-5f), r1 = 1.0f / sqrtf(1.0f + 1e-5f);
    rmsnorm_forward(y, rstd, x, w, 2, 2, 1e-5f, LW_NORM_RMSNORM);
    const float want[4] = {3 * r0 * 2, 4 * r0 * 0.5f, r1 * 2, -r1 * 0.5f};
    assert_close(y, want, 4, 0, 1e-6f, "llama");
    ck_assert_float_eq_tol(rstd[0], r0, 1e-7f);
    rmsnorm_forward(y, rstd, x, w, 2, 2, 1e-5f, LW_NORM_RMSNORM_GEMMA);
    const float want_g[4] = {3 * r0 * 3, 4 * r0 * 1.5f, r1 * 3, -r1 * 1.5f};
    assert_close(y, want_g, 4, 0, 1e-6f, "gemma");
    rmsnorm_forward(y, rstd, x, NULL, 2, 2, 1e-5f, LW_NORM_RMSNORM);
    const float want_1[4] = {3 * r0, 4 * r0, r1, -r1};
    assert_close(y, want_1, 4, 0, 1e-6f, "no weight");
}
END_TEST

START_TEST(layernorm_by_hand)
{
    const float x[4] = {1, 2, 3, 6};  /* mean 3, var (4+1+0+9)/4 = 3.5 */
    const float w[4] = {1, 2, 3, 4}, b[4] = {0, 1, 0, -1};
    float y[4], mean, rstd;
    layernorm_forward(y, &mean, &rstd, x, w, b, 1, 4, 0.0f);
    float r = 1.0f / sqrtf(3.5f);
    const float want[4] = {-2 * r, -1 * r * 2 + 1, 0, 3 * r * 4 - 1};
    assert_close(y, want, 4, 1e-6f, 1e-6f, "y");
    ck_assert_float_eq_tol(mean, 3.0f, 1e-6f);
    ck_assert_float_eq_tol(rstd, r, 1e-6f);
}
END_TEST

/* ---- rope --------------------------------------------------------------- */

START_TEST(rope_inv_freq_plain_and_linear)
{
    float f[4];
    rope_inv_freq(f, 8, 10000.0f, NULL);
    const float want[4] = {1.0f, 0.1f, 0.01f, 0.001f};
    assert_close(f, want, 4, 0, 1e-6f, "plain");
    lw_rope_scaling lin = {.kind = LW_ROPE_SCALING_LINEAR, .factor = 4.0f};
    rope_inv_freq(f, 8, 10000.0f, &lin);
    const float want_lin[4] = {0.25f, 0.025f, 0.0025f, 0.00025f};
    assert_close(f, want_lin, 4, 0, 1e-6f, "linear");
}
END_TEST

/* Llama 3.1's band formula by hand: factor 8, low 1, high 4, context 8192.
 * Wavelengths below 2048 keep their frequency, above 8192 are divided by 8,
 * and in between blend with smooth = (8192/wavelen - 1) / 3. */
START_TEST(rope_inv_freq_llama3_bands)
{
    enum { D = 128 };
    float f[D / 2];
    lw_rope_scaling s = {.kind = LW_ROPE_SCALING_LLAMA3, .factor = 8, .low_freq_factor = 1,
                         .high_freq_factor = 4, .original_context = 8192};
    rope_inv_freq(f, D, 500000.0f, &s);
    int n_kept = 0, n_div = 0, n_mid = 0;
    for (int i = 0; i < D / 2; i++) {
        double base = pow(500000.0, -2.0 * i / D), wl = 2 * M_PI / base, want;
        if (wl < 2048) want = base, n_kept++;
        else if (wl > 8192) want = base / 8, n_div++;
        else {
            double sm = (8192 / wl - 1) / 3;
            want = (1 - sm) * base / 8 + sm * base, n_mid++;
        }
        ck_assert_msg(fabs(f[i] - want) <= 1e-6 * want, "inv_freq[%d] = %g, want %g", i, f[i], want);
    }
    ck_assert(n_kept > 0 && n_div > 0 && n_mid > 0);
}
END_TEST

START_TEST(rope_by_hand_and_layouts)
{
    /* one head, D = 4: pairs turn by pos * {1, 0.01} */
    float inv[2];
    rope_inv_freq(inv, 4, 10000.0f, NULL);
    const int pos[2] = {0, 3};
    float x[2 * 4] = {1, 2, 3, 4, 1, 2, 3, 4};
    rope_forward(x, pos, inv, 2, 1, 4, true);
    float c0 = cosf(3), s0 = sinf(3), c1 = cosf(0.03f), s1 = sinf(0.03f);
    const float want_il[8] = {1, 2, 3, 4, 1 * c0 - 2 * s0, 1 * s0 + 2 * c0, 3 * c1 - 4 * s1, 3 * s1 + 4 * c1};
    assert_close(x, want_il, 8, 1e-6f, 1e-6f, "interleaved");
    float y[2 * 4] = {1, 2, 3, 4, 1, 2, 3, 4};
    rope_forward(y, pos, inv, 2, 1, 4, false);
    const float want_half[8] = {1, 2, 3, 4, 1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 1 * s0 + 3 * c0, 2 * s1 + 4 * c1};
    assert_close(y, want_half, 8, 1e-6f, 1e-6f, "half");
}
END_TEST

/* The two layouts are the same rotation under a permutation of each head. */
START_TEST(rope_layouts_are_permutations)
{
    enum { T = 5, H = 3, D = 16 };
    rng_seed(2);
    float inv[D / 2];
    rope_inv_freq(inv, D, 10000.0f, NULL);
    int pos[T];
    for (int t = 0; t < T; t++) pos[t] = 7 * t + 1;
    float *a = rand_array(T * H * D, 1), *b = zero_array(T * H * D);
    for (int r = 0; r < T * H; r++)
        for (int i = 0; i < D / 2; i++) {
            b[r * D + i] = a[r * D + 2 * i];
            b[r * D + i + D / 2] = a[r * D + 2 * i + 1];
        }
    rope_forward(a, pos, inv, T, H, D, true);
    rope_forward(b, pos, inv, T, H, D, false);
    for (int r = 0; r < T * H; r++)
        for (int i = 0; i < D / 2; i++) {
            ck_assert_float_eq_tol(b[r * D + i], a[r * D + 2 * i], 1e-6f);
            ck_assert_float_eq_tol(b[r * D + i + D / 2], a[r * D + 2 * i + 1], 1e-6f);
        }
    free(a), free(b);
}
END_TEST

/* ---- attention ---------------------------------------------------------- */

/* A plain reference: the full score matrix with -inf where masked. */
static void attention_reference(float *out, const float *q, const float *k, const float *v, int Tq, int Tk,
                                int Hq, int Hkv, int D, const lw_attention_params *p)
{
    double *s = malloc((size_t)Tk * sizeof *s);
    ck_assert_ptr_nonnull(s);
    for (int h = 0; h < Hq; h++) {
        int hk = h / (Hq / Hkv);
        for (int i = 0; i < Tq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < Tk; j++) {
                int at = i + p->q_offset;
                bool ok = (!p->causal || j <= at) && (p->window <= 0 || j > at - p->window);
                double d = 0;
                for (int e = 0; e < D; e++) d += (double)q[(i * Hq + h) * D + e] * k[(j * Hkv + hk) * D + e];
                s[j] = ok ? d * p->scale : -INFINITY;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < Tk; j++) sum += s[j] = (s[j] == -INFINITY ? 0 : exp(s[j] - mx));
            for (int e = 0; e < D; e++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] / sum * v[(j * Hkv + hk) * D + e];
                out[(i * Hq + h) * D + e] = (float)o;
            }
        }
    }
    free(s);
}

static void check_attention_case(int Tq, int Tk, int Hq, int Hkv, int D, bool causal, int q_offset, int window)
{
    lw_attention_params p = {.causal = causal, .q_offset = q_offset, .window = window, .scale = 1 / sqrtf(D)};
    size_t nq = (size_t)Tq * Hq * D, nk = (size_t)Tk * Hkv * D;
    float *q = rand_array(nq, 2), *k = rand_array(nk, 2), *v = rand_array(nk, 1);
    float *out = zero_array(nq), *want = zero_array(nq), *att = zero_array((size_t)Hq * Tq * Tk);
    attention_forward(out, att, q, k, v, Tq, Tk, Hq, Hkv, D, &p);
    attention_reference(want, q, k, v, Tq, Tk, Hq, Hkv, D, &p);
    assert_close(out, want, nq, 1e-5f, 1e-4f, "attention out");
    for (int h = 0; h < Hq; h++)
        for (int i = 0; i < Tq; i++) {
            double row = 0;
            for (int j = 0; j < Tk; j++) {
                float a = att[((size_t)h * Tq + i) * Tk + j];
                int at = i + q_offset;
                if ((causal && j > at) || (window > 0 && j <= at - window)) ck_assert_float_eq(a, 0.0f);
                row += a;
            }
            ck_assert_msg(fabs(row - 1) < 1e-5, "att row %d/%d sums to %g", h, i, row);
        }
    free(q), free(k), free(v), free(out), free(want), free(att);
}

START_TEST(attention_matches_reference_masks_and_gqa)
{
    rng_seed(3);
    check_attention_case(6, 6, 4, 2, 8, true, 0, 0);    /* causal self-attention, GQA 2 */
    check_attention_case(3, 9, 4, 1, 8, true, 6, 0);    /* continuation over a cache, MQA */
    check_attention_case(7, 7, 2, 2, 4, true, 0, 3);    /* sliding window */
    check_attention_case(4, 10, 6, 3, 8, true, 6, 4);   /* window + offset + GQA */
    check_attention_case(5, 8, 2, 1, 4, false, 0, 0);   /* bidirectional (bridge) */
}
END_TEST

START_TEST(attention_single_key_copies_value)
{
    const float q[2] = {0.3f, -2}, k[2] = {5, 5}, v[2] = {1.5f, -7};
    lw_attention_params p = {.causal = true, .scale = 0.7f};
    float out[2], att[1];
    attention_forward(out, att, q, k, v, 1, 1, 1, 1, 2, &p);
    ck_assert_float_eq_tol(att[0], 1.0f, 1e-7f);
    ck_assert_float_eq_tol(out[0], 1.5f, 1e-6f);
    ck_assert_float_eq_tol(out[1], -7.0f, 1e-6f);
}
END_TEST

/* ---- activations, embedding, cross-entropy ------------------------------ */

START_TEST(activations_known_values)
{
    /* silu(x) = x sigmoid(x); gelu_tanh from torch.nn.functional.gelu(approximate='tanh') */
    const float x[4] = {0, 1, -1, 3};
    const float want_gelu[4] = {0, 0.84119199f, -0.15880801f, 2.99636261f};
    const float want_silu[4] = {0, 0.73105858f, -0.26894142f, 2.85772238f};
    const float up[4] = {2, 2, 2, 2};
    float y[4];
    gelu_tanh_forward(y, x, 4);
    assert_close(y, want_gelu, 4, 1e-7f, 1e-6f, "gelu_tanh");
    glu_forward(y, x, up, 4, LW_ACT_SILU);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], 2 * want_silu[i], 2e-6f);
    glu_forward(y, x, up, 4, LW_ACT_GELU_TANH);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], 2 * want_gelu[i], 2e-6f);
}
END_TEST

START_TEST(embedding_rows_scaled)
{
    const float table[3 * 2] = {1, 2, 3, 4, 5, 6};
    const int ids[3] = {2, 0, -1};
    float y[6];
    embedding_forward(y, ids, table, 3, 2, 0.5f);
    const float want[6] = {2.5f, 3, 0.5f, 1, 0, 0};
    assert_close(y, want, 6, 0, 0, "embedding");
}
END_TEST

START_TEST(cross_entropy_by_hand)
{
    /* row 0 uniform over 4: loss log 4; row 1 ignored; row 2 logits {0, ln 3, 0, 0}: p[1] = 1/2 */
    const float logits[3 * 4] = {1, 1, 1, 1, 9, 9, 9, 9, 0, logf(3), 0, 0};
    const int targets[3] = {2, -1, 1};
    float probs[12];
    float loss = cross_entropy_forward(probs, logits, targets, 3, 4);
    ck_assert_float_eq_tol(loss, (logf(4) + logf(2)) / 2, 1e-6f);
    ck_assert_float_eq_tol(probs[0], 0.25f, 1e-7f);
    ck_assert_float_eq_tol(probs[9], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(probs[8], 1.0f / 6, 1e-7f);
    /* huge logits stay finite (max-subtracted) */
    const float big[2] = {1000, 0};
    const int tg[1] = {1};
    float p2[2];
    ck_assert_float_eq_tol(cross_entropy_forward(p2, big, tg, 1, 2), 1000.0f, 1e-3f);
    /* no scored rows: loss 0, and out-of-range targets are not scored */
    const int none[1] = {7};
    ck_assert_float_eq(cross_entropy_forward(p2, big, none, 1, 2), 0.0f);
    /* backward: (p - onehot) * dloss / 2 on the scored rows, the ignored row untouched */
    float dl[12];
    for (int i = 0; i < 12; i++) dl[i] = 1.0f;
    cross_entropy_forward(probs, logits, targets, 3, 4);
    cross_entropy_backward(dl, probs, targets, 3, 4, 1.7f);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(dl[4 + i], 1.0f);
    ck_assert_float_eq_tol(dl[0], 1.0f + 0.85f * 0.25f, 1e-6f);
    ck_assert_float_eq_tol(dl[2], 1.0f + 0.85f * (0.25f - 1), 1e-6f);
    ck_assert_float_eq_tol(dl[9], 1.0f + 0.85f * (0.5f - 1), 1e-6f);
}
END_TEST


/* Same inputs, same bits: BLAS threads and the attention loops must not
 * reorder sums between runs (training runs are compared bit for bit). */
START_TEST(ops_are_deterministic)
{
    enum { T = 64, IN = 256, OUT = 192, TK = 64, H = 4, D = 16 };
    rng_seed(4);
    float *x = rand_array(T * IN, 1), *w = rand_array(OUT * IN, 1);
    float *y1 = zero_array(T * OUT), *y2 = zero_array(T * OUT);
    matmul_forward(y1, x, w, NULL, T, IN, OUT);
    matmul_forward(y2, x, w, NULL, T, IN, OUT);
    ck_assert(memcmp(y1, y2, sizeof(float) * T * OUT) == 0);
    lw_attention_params p = {.causal = true, .scale = 0.25f};
    float *q = rand_array(TK * H * D, 1), *k = rand_array(TK * H * D, 1), *v = rand_array(TK * H * D, 1);
    float *o1 = zero_array(TK * H * D), *o2 = zero_array(TK * H * D), *att = zero_array(H * TK * TK);
    attention_forward(o1, att, q, k, v, TK, TK, H, H, D, &p);
    attention_forward(o2, att, q, k, v, TK, TK, H, H, D, &p);
    ck_assert(memcmp(o1, o2, sizeof(float) * TK * H * D) == 0);
    free(x), free(w), free(y1), free(y2), free(q), free(k), free(v), free(o1), free(o2), free(att);
}
END_TEST

/* ---- PyTorch goldens (tests/golden/make_ops_goldens.py) ----------------- */

/* Loads tests/golden/ops/<group>.txt: lines "<name> <count>" each followed by
 * count numbers. */
static char *golden_load(const char *group)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/golden/ops/%s.txt", group);
    const char *path = tl_src(rel);
    tl_require_file(path);
    char *text = tl_read_file(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    return text;
}

static float *golden_array(const char *text, const char *name, size_t want_n)
{
    size_t len = strlen(name);
    const char *p = text;
    for (;;) {
        p = strstr(p, name);
        ck_assert_msg(p != NULL, "golden array %s missing", name);
        if ((p == text || p[-1] == '\n') && p[len] == ' ') break;
        p += len;
    }
    char *end;
    unsigned long n = strtoul(p + len + 1, &end, 10);
    ck_assert_msg(want_n == 0 || n == want_n, "golden %s has %lu values, want %zu", name, n, want_n);
    float *a = malloc((n ? n : 1) * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (unsigned long i = 0; i < n; i++) {
        const char *at = end;
        a[i] = strtof(at, &end);
        ck_assert_msg(end != at, "golden %s: value %lu unreadable", name, i);
    }
    return a;
}

static int *golden_ints(const char *text, const char *name, size_t n)
{
    float *f = golden_array(text, name, n);
    int *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = (int)f[i];
    free(f);
    return a;
}

static void check_golden_attention(const char *g, const char *name)
{
    char key[64];
#define GKEY(field) (snprintf(key, sizeof key, "%s.%s", name, field), key)
    float *prm = golden_array(g, GKEY("params"), 9);
    int Tq = (int)prm[0], Tk = (int)prm[1], Hq = (int)prm[2], Hkv = (int)prm[3], D = (int)prm[4];
    lw_attention_params p = {.causal = prm[5] != 0, .q_offset = (int)prm[6], .window = (int)prm[7],
                             .scale = prm[8]};
    size_t nq = (size_t)Tq * Hq * D, nk = (size_t)Tk * Hkv * D, na = (size_t)Hq * Tq * Tk;
    float *q = golden_array(g, GKEY("q"), nq), *k = golden_array(g, GKEY("k"), nk);
    float *v = golden_array(g, GKEY("v"), nk), *dout = golden_array(g, GKEY("dout"), nq);
    float *want_out = golden_array(g, GKEY("out"), nq), *want_att = golden_array(g, GKEY("att"), na);
    float *want_dq = golden_array(g, GKEY("dq"), nq), *want_dk = golden_array(g, GKEY("dk"), nk);
    float *want_dv = golden_array(g, GKEY("dv"), nk);
#undef GKEY
    float *out = zero_array(nq), *att = zero_array(na);
    float *dq = zero_array(nq), *dk = zero_array(nk), *dv = zero_array(nk);
    attention_forward(out, att, q, k, v, Tq, Tk, Hq, Hkv, D, &p);
    assert_close(out, want_out, nq, 2e-6f, 1e-5f, name);
    assert_close(att, want_att, na, 1e-6f, 1e-5f, name);
    attention_backward(dq, dk, dv, dout, att, q, k, v, Tq, Tk, Hq, Hkv, D, &p);
    assert_close(dq, want_dq, nq, 1e-5f, 1e-4f, "dq");
    assert_close(dk, want_dk, nk, 1e-5f, 1e-4f, "dk");
    assert_close(dv, want_dv, nk, 1e-5f, 1e-4f, "dv");
    free(prm), free(q), free(k), free(v), free(dout), free(want_out), free(want_att);
    free(want_dq), free(want_dk), free(want_dv), free(out), free(att), free(dq), free(dk), free(dv);
}

START_TEST(golden_attention_torch)
{
    char *g = golden_load("attention");
    check_golden_attention(g, "window");
    check_golden_attention(g, "causal");
    check_golden_attention(g, "bidir");
    free(g);
}
END_TEST

/* inv_freq against transformers' ROPE_INIT_FUNCTIONS (computed there in float32). */
START_TEST(golden_rope_inv_freq_transformers)
{
    char *g = golden_load("rope");
    float *prm = golden_array(g, "llama3.params", 6);
    lw_rope_scaling s = {.kind = LW_ROPE_SCALING_LLAMA3, .factor = prm[2], .low_freq_factor = prm[3],
                         .high_freq_factor = prm[4], .original_context = (int)prm[5]};
    float inv[32];
    rope_inv_freq(inv, (int)prm[0], prm[1], &s);
    float *want = golden_array(g, "llama3.inv_freq", 32);
    assert_close(inv, want, 32, 0, 2e-6f, "llama3 inv_freq");
    free(prm), free(want);

    prm = golden_array(g, "linear.params", 3);
    lw_rope_scaling lin = {.kind = LW_ROPE_SCALING_LINEAR, .factor = prm[2]};
    rope_inv_freq(inv, (int)prm[0], prm[1], &lin);
    want = golden_array(g, "linear.inv_freq", 16);
    assert_close(inv, want, 16, 0, 2e-6f, "linear inv_freq");
    free(prm), free(want);

    prm = golden_array(g, "plain.params", 2);
    rope_inv_freq(inv, (int)prm[0], prm[1], NULL);
    want = golden_array(g, "plain.inv_freq", 8);
    assert_close(inv, want, 8, 0, 2e-6f, "plain inv_freq");
    free(prm), free(want);
    free(g);
}
END_TEST

/* Both layouts, llama3 frequencies, positions up to 9000; the golden's angles
 * are exact (float64), ours are pos * float inv_freq in double. */
START_TEST(golden_rope_both_layouts)
{
    enum { T = 6, H = 2, D = 64, N = T * H * D };
    char *g = golden_load("rope");
    float *inv = golden_array(g, "llama3.inv_freq", D / 2);
    float *x = golden_array(g, "x", N), *dout = golden_array(g, "dout", N);
    int *pos = golden_ints(g, "pos", T);
    for (int il = 0; il < 2; il++) {
        float *y = copy_array(x, N), *dx = copy_array(dout, N);
        float *want_y = golden_array(g, il ? "interleaved.y" : "half.y", N);
        float *want_dx = golden_array(g, il ? "interleaved.dx" : "half.dx", N);
        rope_forward(y, pos, inv, T, H, D, il);
        rope_backward(dx, pos, inv, T, H, D, il);
        assert_close(y, want_y, N, 2e-6f, 1e-5f, il ? "interleaved y" : "half y");
        assert_close(dx, want_dx, N, 2e-6f, 1e-5f, il ? "interleaved dx" : "half dx");
        free(y), free(dx), free(want_y), free(want_dx);
    }
    free(inv), free(x), free(dout), free(pos), free(g);
}
END_TEST

START_TEST(golden_norms_transformers)
{
    enum { T = 4, C = 16, N = T * C };
    char *g = golden_load("norm");
    float *x = golden_array(g, "x", N), *w = golden_array(g, "w", C), *dout = golden_array(g, "dout", N);
    float *eps = golden_array(g, "eps", 1);
    float y[N], rstd[T], mean[T];
    for (int kind = 0; kind < 2; kind++) {
        const char *name = kind ? "gemma" : "llama";
        char key[32];
        float dx[N] = {0}, dw[C] = {0};
        rmsnorm_forward(y, rstd, x, w, T, C, eps[0], kind ? LW_NORM_RMSNORM_GEMMA : LW_NORM_RMSNORM);
        rmsnorm_backward(dx, dw, dout, x, w, rstd, T, C, kind ? LW_NORM_RMSNORM_GEMMA : LW_NORM_RMSNORM);
        snprintf(key, sizeof key, "%s.y", name);
        float *want = golden_array(g, key, N);
        assert_close(y, want, N, 1e-6f, 1e-5f, key);
        free(want);
        snprintf(key, sizeof key, "%s.dx", name);
        want = golden_array(g, key, N);
        assert_close(dx, want, N, 1e-5f, 1e-4f, key);
        free(want);
        snprintf(key, sizeof key, "%s.dw", name);
        want = golden_array(g, key, C);
        assert_close(dw, want, C, 1e-5f, 1e-4f, key);
        free(want);
    }
    float *b = golden_array(g, "layernorm.b", C);
    float dx[N] = {0}, dw[C] = {0}, db[C] = {0};
    layernorm_forward(y, mean, rstd, x, w, b, T, C, 1e-5f);
    layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, T, C);
    static const char *keys[4] = {"layernorm.y", "layernorm.dx", "layernorm.dw", "layernorm.db"};
    const float *got[4] = {y, dx, dw, db};
    const size_t n[4] = {N, N, C, C};
    for (int i = 0; i < 4; i++) {
        float *want = golden_array(g, keys[i], n[i]);
        assert_close(got[i], want, n[i], 1e-5f, 1e-4f, keys[i]);
        free(want);
    }
    free(x), free(w), free(dout), free(eps), free(b), free(g);
}
END_TEST

START_TEST(golden_activations_and_cross_entropy_torch)
{
    enum { N = 48, T = 5, V = 11 };
    char *g = golden_load("activation");
    float *gate = golden_array(g, "gate", N), *up = golden_array(g, "up", N), *dout = golden_array(g, "dout", N);
    float y[N], dx[N] = {0};
    gelu_tanh_forward(y, gate, N);
    gelu_tanh_backward(dx, dout, gate, N);
    float *want = golden_array(g, "gelu.y", N);
    assert_close(y, want, N, 1e-6f, 1e-5f, "gelu y");
    free(want);
    want = golden_array(g, "gelu.dx", N);
    assert_close(dx, want, N, 1e-6f, 1e-5f, "gelu dx");
    free(want);
    for (int a = 0; a < 2; a++) {
        const char *name = a ? "swiglu" : "geglu";
        lw_activation act = a ? LW_ACT_SILU : LW_ACT_GELU_TANH;
        float dg[N] = {0}, du[N] = {0};
        glu_forward(y, gate, up, N, act);
        glu_backward(dg, du, dout, gate, up, N, act);
        char key[32];
        const float *got[3] = {y, dg, du};
        static const char *field[3] = {"y", "dgate", "dup"};
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "%s.%s", name, field[i]);
            want = golden_array(g, key, N);
            assert_close(got[i], want, N, 1e-6f, 1e-5f, key);
            free(want);
        }
    }
    float *logits = golden_array(g, "ce.logits", T * V), *loss = golden_array(g, "ce.loss", 1);
    int *targets = golden_ints(g, "ce.targets", T);
    float probs[T * V], dl[T * V] = {0};
    ck_assert_float_eq_tol(cross_entropy_forward(probs, logits, targets, T, V), loss[0], 1e-5f * loss[0]);
    cross_entropy_backward(dl, probs, targets, T, V, 1.5f);
    want = golden_array(g, "ce.dlogits_x1.5", T * V);
    assert_close(dl, want, T * V, 1e-6f, 1e-5f, "ce dlogits");
    free(want), free(logits), free(loss), free(targets);
    free(gate), free(up), free(dout), free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *fwd = tcase_create("forward");
    tcase_add_test(fwd, matmul_small_by_hand);
    tcase_add_test(fwd, rmsnorm_by_hand_both_kinds);
    tcase_add_test(fwd, layernorm_by_hand);
    tcase_add_test(fwd, rope_inv_freq_plain_and_linear);
    tcase_add_test(fwd, rope_inv_freq_llama3_bands);
    tcase_add_test(fwd, rope_by_hand_and_layouts);
    tcase_add_test(fwd, rope_layouts_are_permutations);
    tcase_add_test(fwd, attention_matches_reference_masks_and_gqa);
    tcase_add_test(fwd, attention_single_key_copies_value);
    tcase_add_test(fwd, activations_known_values);
    tcase_add_test(fwd, embedding_rows_scaled);
    tcase_add_test(fwd, cross_entropy_by_hand);
    tcase_add_test(fwd, ops_are_deterministic);
    suite_add_tcase(s, fwd);
    TCase *gold = tcase_create("golden");
    tcase_add_test(gold, golden_attention_torch);
    tcase_add_test(gold, golden_rope_inv_freq_transformers);
    tcase_add_test(gold, golden_rope_both_layouts);
    tcase_add_test(gold, golden_norms_transformers);
    tcase_add_test(gold, golden_activations_and_cross_entropy_torch);
    suite_add_tcase(s, gold);
    return tl_run_suite(s);
}
