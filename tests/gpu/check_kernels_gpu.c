/* Every CUDA kernel of the default pair against its CPU twin (runtime/ops/ops.h,
 * the bridge plan's records of bridge_exec.c, adamw.c), forward and backward, on random inputs.
 * Needs a GPU: it is run by `make check-gpu`, not by `make check`.
 *
 * The kernel sources are generated from the manifest and the templates here
 * and compiled with NVRTC for the device's own arch, so the test needs no
 * prior `lwc build`. Tolerance: |gpu - cpu| <= atol + rtol |cpu| with rtol
 * 1e-4 for every fp32 kernel; atol 1e-5 (1e-4 where atomics reorder sums over
 * rows, 1e-7 for softmax probabilities over a 262144-word vocabulary). */
#include "testlib.h"
#include "adamw.h"
#include "adapters.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "deep_prefix.h"
#include "fileutil.h"
#include "gen_kernels.h"
#include "kernel_launchers.h"
#include "lora.h"
#include "manifest.h"
#include "model.h"
#include "nvrtc_compile.h"
#include "ops.h"
#include "random_weights.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { SENDER, RECEIVER, BRIDGE, N_UNITS };
static const char *const unit_name[N_UNITS] = {"sender", "receiver", "bridge"};

/* CUDA contexts do not survive fork(), so the suite runs CK_NOFORK and this
 * state is set up once in main. */
static lw_manifest *g_m;
static lw_cuda g_cu;
static lw_cuda_module g_mod[N_UNITS];
static lw_model_kernels g_ks[2];    /* SENDER, RECEIVER */
static lw_bridge_kernels g_bks;
static char *g_source[N_UNITS];

enum { MAX_SEEN = 64, MAX_BUFS = 32 };
static char g_seen[MAX_SEEN][64];   /* kernels launched, for the coverage test */
static int g_n_seen;

static const float RTOL = 1e-4f;

/* ---- host helpers ---------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float urand(void)   /* in [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static float *host_rand(size_t n, float scale)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) x[i] = urand() * scale;
    return x;
}

static float *host_copy(const float *src, size_t n)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    memcpy(x, src, n * sizeof *x);
    return x;
}

static void expect_close(const char *what, const float *gpu, const float *cpu, size_t n, float atol)
{
    size_t worst = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)gpu[i] - cpu[i]), allowed = atol + RTOL * fabs((double)cpu[i]);
        ck_assert_msg(isfinite(gpu[i]), "%s[%zu] is %g on the GPU", what, i, (double)gpu[i]);
        if (err - allowed > worst_excess) {
            worst_excess = err - allowed;
            worst = i;
        }
    }
    ck_assert_msg(worst_excess <= 0, "%s: [%zu] gpu %.9g cpu %.9g, beyond atol %g + rtol %g", what, worst,
                  (double)gpu[worst], (double)cpu[worst], (double)atol, (double)RTOL);
}

/* ---- device helpers: buffers of one test, freed together ------------- */

typedef struct {
    lw_cuda_ptr p[MAX_BUFS];
    int n;
} dev_bufs;

static lw_cuda_ptr dev_alloc(dev_bufs *b, size_t bytes)
{
    ck_assert_int_lt(b->n, MAX_BUFS);
    lw_cuda_ptr p;
    ck_assert_msg(lw_cuda_alloc(&g_cu, bytes, "test buffer", &p) == LW_OK, "%s", lw_last_error());
    ck_assert_msg(lw_cuda_memset0(&g_cu, p, bytes, "test buffer") == LW_OK, "%s", lw_last_error());
    return b->p[b->n++] = p;
}

static lw_cuda_ptr dev_floats(dev_bufs *b, const float *x, size_t n)
{
    lw_cuda_ptr p = dev_alloc(b, n * sizeof(float));
    ck_assert_msg(lw_cuda_upload(&g_cu, p, x, n * sizeof(float), "test input") == LW_OK, "%s", lw_last_error());
    return p;
}

static lw_cuda_ptr dev_ints(dev_bufs *b, const int *x, size_t n)
{
    lw_cuda_ptr p = dev_alloc(b, n * sizeof(int));
    ck_assert_msg(lw_cuda_upload(&g_cu, p, x, n * sizeof(int), "test input") == LW_OK, "%s", lw_last_error());
    return p;
}

static float *dev_read(lw_cuda_ptr p, size_t n)
{
    float *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    ck_assert_msg(lw_cuda_download(&g_cu, x, p, n * sizeof *x, "test output") == LW_OK, "%s", lw_last_error());
    return x;
}

static void dev_free(dev_bufs *b)
{
    for (int i = 0; i < b->n; i++) lw_cuda_free(&g_cu, b->p[i]);
    b->n = 0;
}

static void note_seen(const char *name)
{
    for (int i = 0; i < g_n_seen; i++)
        if (strcmp(g_seen[i], name) == 0) return;
    if (g_n_seen < MAX_SEEN) snprintf(g_seen[g_n_seen++], sizeof g_seen[0], "%s", name);
}

static void on_launch(void *user, const lw_cuda_kernel *k)
{
    (void)user;
    note_seen(k->name);
}

/* How the suite launches unit's kernels (through the generated launchers,
 * with the table's launch shapes, as the runtime does): each launch waits,
 * so a fault is pinned to its kernel, and is noted for the coverage test. */
static lw_launch on(int unit)
{
    return (lw_launch){.cu = &g_cu, .owner = unit_name[unit], .sync = true, .observe = on_launch};
}

#define LAUNCH(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static const lw_model_config *model_of(int unit) { return unit == SENDER ? &g_m->sender : &g_m->receiver; }

/* ---- model kernels (run for the sender and the receiver) ---------------- */

START_TEST(embedding)
{
    const lw_model_config *c = model_of(_i);
    int T = 7, H = c->hidden, rows = 64;
    float *table = host_rand((size_t)rows * H, 1.f), *cpu = malloc((size_t)T * H * sizeof(float));
    int ids[7] = {0, 5, 63, 5, 17, 1, 40};
    dev_bufs b = {0};
    lw_cuda_ptr y = dev_alloc(&b, (size_t)T * H * 4), d_ids = dev_ints(&b, ids, T);
    lw_cuda_ptr d_table = dev_floats(&b, table, (size_t)rows * H);
    LAUNCH(lwk_embedding_forward(on(_i), &g_ks[_i], y, d_ids, d_table, T));
    embedding_forward(cpu, ids, table, T, H, c->scale_embeddings ? sqrtf((float)H) : 1.f);
    float *gpu = dev_read(y, (size_t)T * H);
    expect_close("embedding_forward", gpu, cpu, (size_t)T * H, 1e-5f);
    free(gpu), free(cpu), free(table);
    dev_free(&b);
}
END_TEST

/* residual_rmsnorm_forward with and without the residual, then rmsnorm_backward. */
START_TEST(rmsnorm)
{
    const lw_model_config *c = model_of(_i);
    int T = 6, H = c->hidden;
    size_t n = (size_t)T * H;
    float *x = host_rand(n, 2.f), *res = host_rand(n, 1.f), *w = host_rand(H, 0.5f);
    float *x_cpu = host_copy(x, n), *y_cpu = malloc(n * 4), *rstd_cpu = malloc(T * 4);
    for (int with_res = 0; with_res < 2; with_res++) {
        dev_bufs b = {0};
        lw_cuda_ptr d_x = dev_floats(&b, x, n), d_y = dev_alloc(&b, n * 4), d_rstd = dev_alloc(&b, T * 4);
        lw_cuda_ptr d_res = with_res ? dev_floats(&b, res, n) : 0, d_w = dev_floats(&b, w, H);
        LAUNCH(lwk_residual_rmsnorm_forward(on(_i), &g_ks[_i], d_x, d_y, d_rstd, d_res, d_w, T));
        memcpy(x_cpu, x, n * 4);
        if (with_res)
            for (size_t k = 0; k < n; k++) x_cpu[k] += res[k];
        rmsnorm_forward(y_cpu, rstd_cpu, x_cpu, w, T, H, c->norm_eps, c->norm);
        float *gx = dev_read(d_x, n), *gy = dev_read(d_y, n), *gr = dev_read(d_rstd, T);
        expect_close("residual_rmsnorm_forward x", gx, x_cpu, n, 1e-5f);
        expect_close("residual_rmsnorm_forward y", gy, y_cpu, n, 1e-5f);
        expect_close("residual_rmsnorm_forward rstd", gr, rstd_cpu, T, 1e-5f);
        free(gx), free(gy), free(gr);
        dev_free(&b);
    }
    /* backward from the last forward (with the residual) */
    float *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f), *dw = host_rand(H, 1.f);
    dev_bufs b = {0};
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, H), d_dy = dev_floats(&b, dy, n);
    lw_cuda_ptr d_x = dev_floats(&b, x_cpu, n), d_w = dev_floats(&b, w, H), d_rstd = dev_floats(&b, rstd_cpu, T);
    LAUNCH(lwk_rmsnorm_backward(on(_i), &g_ks[_i], d_dx, d_dw, d_dy, d_x, d_w, d_rstd, T));
    rmsnorm_backward(dx, dw, dy, x_cpu, w, rstd_cpu, T, H, c->norm);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, H);
    expect_close("rmsnorm_backward dx", gdx, dx, n, 1e-5f);
    expect_close("rmsnorm_backward dw", gdw, dw, H, 1e-4f);
    free(gdx), free(gdw), free(dy), free(dx), free(dw);
    free(x), free(res), free(w), free(x_cpu), free(y_cpu), free(rstd_cpu);
    dev_free(&b);
}
END_TEST

START_TEST(qk_rmsnorm)
{
    const lw_model_config *c = model_of(_i);
    int rows = 5 * c->n_heads, D = c->head_dim;
    size_t n = (size_t)rows * D;
    float *x = host_rand(n, 2.f), *w = host_rand(D, 0.5f), *y = malloc(n * 4), *rstd = malloc(rows * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_rstd = dev_alloc(&b, rows * 4), d_x = dev_floats(&b, x, n);
    lw_cuda_ptr d_w = dev_floats(&b, w, D);
    LAUNCH(lwk_qk_rmsnorm_forward(on(_i), &g_ks[_i], d_y, d_rstd, d_x, d_w, rows));
    rmsnorm_forward(y, rstd, x, w, rows, D, c->norm_eps, c->norm);
    float *gy = dev_read(d_y, n);
    expect_close("qk_rmsnorm_forward", gy, y, n, 1e-5f);
    float *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f), *dw = host_rand(D, 1.f);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, D), d_dy = dev_floats(&b, dy, n);
    LAUNCH(lwk_qk_rmsnorm_backward(on(_i), &g_ks[_i], d_dx, d_dw, d_dy, d_x, d_w, d_rstd, rows));
    rmsnorm_backward(dx, dw, dy, x, w, rstd, rows, D, c->norm);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, D);
    expect_close("qk_rmsnorm_backward dx", gdx, dx, n, 1e-5f);
    expect_close("qk_rmsnorm_backward dw", gdw, dw, D, 1e-4f);
    free(gy), free(gdx), free(gdw), free(dy), free(dx), free(dw), free(x), free(w), free(y), free(rstd);
    dev_free(&b);
}
END_TEST

/* rope_apply with sign +1 is rope_forward, with -1 rope_backward; on q and k
 * head counts, with and without the model's RoPE scaling (global and local
 * layers), and for sliding-window models on the local base too. */
START_TEST(rope)
{
    const lw_model_config *c = model_of(_i);
    int T = 9, D = c->head_dim;
    int pos[9] = {0, 1, 2, 3, 10, 31, 32, 47, 63};
    float *inv = malloc((size_t)D / 2 * 4);
    float bases[2] = {c->rope_base, c->rope_base_local > 0 ? c->rope_base_local : c->rope_base};
    lw_rope_scaling none = {.kind = LW_ROPE_SCALING_NONE};
    for (int which = 0; which < 8; which++) {
        int heads = which % 2 ? c->n_kv_heads : c->n_heads, scaled = which / 4;
        float base = bases[which / 2 % 2], sign = which % 2 ? -1.f : 1.f;
        size_t n = (size_t)T * heads * D;
        float *x = host_rand(n, 1.f);
        dev_bufs b = {0};
        lw_cuda_ptr d_x = dev_floats(&b, x, n), d_pos = dev_ints(&b, pos, T);
        LAUNCH(lwk_rope_apply(on(_i), &g_ks[_i], d_x, d_pos, T, heads, base, sign, scaled, D));
        rope_inv_freq(inv, D, base, scaled ? &c->rope_scaling : &none);
        if (sign > 0) rope_forward(x, pos, inv, T, heads, D, lw_rope_interleaved(c));
        else rope_backward(x, pos, inv, T, heads, D, lw_rope_interleaved(c));
        float *g = dev_read(d_x, n);
        expect_close(sign > 0 ? "rope_apply (forward)" : "rope_apply (backward)", g, x, n, 1e-5f);
        free(g), free(x);
        dev_free(&b);
    }
    free(inv);
}
END_TEST

START_TEST(glu)
{
    const lw_model_config *c = model_of(_i);
    int n = 5 * c->ffn;
    float *gate = host_rand(n, 4.f), *up = host_rand(n, 2.f), *out = malloc((size_t)n * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_out = dev_alloc(&b, (size_t)n * 4), d_gate = dev_floats(&b, gate, n), d_up = dev_floats(&b, up, n);
    LAUNCH(lwk_glu_forward(on(_i), &g_ks[_i], d_out, d_gate, d_up, n));
    glu_forward(out, gate, up, n, c->activation);
    float *g = dev_read(d_out, n);
    expect_close("glu_forward", g, out, n, 1e-5f);
    float *dout = host_rand(n, 1.f), *dgate = host_rand(n, 1.f), *dup = host_rand(n, 1.f);
    lw_cuda_ptr d_dgate = dev_floats(&b, dgate, n), d_dup = dev_floats(&b, dup, n), d_dout = dev_floats(&b, dout, n);
    LAUNCH(lwk_glu_backward(on(_i), &g_ks[_i], d_dgate, d_dup, d_dout, d_gate, d_up, n));
    glu_backward(dgate, dup, dout, gate, up, n, c->activation);
    float *gdg = dev_read(d_dgate, n), *gdu = dev_read(d_dup, n);
    expect_close("glu_backward dgate", gdg, dgate, n, 1e-5f);
    expect_close("glu_backward dup", gdu, dup, n, 1e-5f);
    free(g), free(gdg), free(gdu), free(gate), free(up), free(out), free(dout), free(dgate), free(dup);
    dev_free(&b);
}
END_TEST

typedef struct {
    int Tq, Tk, q_offset, window, n_sink;
} attn_case;

/* Forward and backward of one attention shape against attention_*_sink
 * (n_sink 0 is plain attention); scale and causal as given (the bridge's
 * attention is the non-causal case, and has no sinks). */
static void check_attention(int unit, int Hq, int Hkv, int D, float scale, bool causal, attn_case a)
{
    const char *fwd = unit == BRIDGE ? "bridge_attention_forward" : "attention_forward";
    const char *bwd = unit == BRIDGE ? "bridge_attention_backward" : "attention_backward";
    size_t nq = (size_t)a.Tq * Hq * D, nk = (size_t)a.Tk * Hkv * D;
    float *q = host_rand(nq, 1.f), *k = host_rand(nk, 1.f), *v = host_rand(nk, 1.f);
    float *out = malloc(nq * 4), *att = malloc((size_t)Hq * a.Tq * a.Tk * 4);
    lw_attention_params p = {causal, a.q_offset, a.window, scale};
    dev_bufs b = {0};
    lw_cuda_ptr d_out = dev_alloc(&b, nq * 4), d_lse = dev_alloc(&b, (size_t)Hq * a.Tq * 4);
    lw_cuda_ptr d_q = dev_floats(&b, q, nq), d_k = dev_floats(&b, k, nk), d_v = dev_floats(&b, v, nk);
    if (unit == BRIDGE)
        LAUNCH(lwk_bridge_attention_forward(on(unit), &g_bks, d_out, d_lse, d_q, d_k, d_v, a.Tq, a.Tk, Hq));
    else
        LAUNCH(lwk_attention_forward(on(unit), &g_ks[unit], d_out, d_lse, d_q, d_k, d_v, a.Tq, a.Tk, a.q_offset,
                                     a.window, a.n_sink, Hq));
    attention_forward_sink(out, att, q, k, v, a.Tq, a.Tk, Hq, Hkv, D, &p, a.n_sink);
    char what[128];
    snprintf(what, sizeof what, "%s (Tq %d, Tk %d, offset %d, window %d, sinks %d)", fwd, a.Tq, a.Tk, a.q_offset,
             a.window, a.n_sink);
    float *g = dev_read(d_out, nq);
    expect_close(what, g, out, nq, 1e-5f);

    float *dout = host_rand(nq, 1.f), *dq = host_rand(nq, 1.f), *dk = host_rand(nk, 1.f), *dv = host_rand(nk, 1.f);
    lw_cuda_ptr d_dq = dev_floats(&b, dq, nq), d_dk = dev_floats(&b, dk, nk), d_dv = dev_floats(&b, dv, nk);
    lw_cuda_ptr d_dout = dev_floats(&b, dout, nq);
    if (unit == BRIDGE)
        LAUNCH(lwk_bridge_attention_backward(on(unit), &g_bks, d_dq, d_dk, d_dv, d_dout, d_out, d_lse, d_q, d_k, d_v,
                                             a.Tq, a.Tk, Hq));
    else
        LAUNCH(lwk_attention_backward(on(unit), &g_ks[unit], d_dq, d_dk, d_dv, d_dout, d_out, d_lse, d_q, d_k, d_v,
                                      a.Tq, a.Tk, a.q_offset, a.window, a.n_sink, Hq));
    attention_backward_sink(dq, dk, dv, dout, att, q, k, v, a.Tq, a.Tk, Hq, Hkv, D, &p, a.n_sink);
    float *gdq = dev_read(d_dq, nq), *gdk = dev_read(d_dk, nk), *gdv = dev_read(d_dv, nk);
    snprintf(what, sizeof what, "%s dq (Tq %d, Tk %d, window %d, sinks %d)", bwd, a.Tq, a.Tk, a.window, a.n_sink);
    expect_close(what, gdq, dq, nq, 1e-4f);
    snprintf(what, sizeof what, "%s dk (Tq %d, Tk %d, window %d, sinks %d)", bwd, a.Tq, a.Tk, a.window, a.n_sink);
    expect_close(what, gdk, dk, nk, 1e-4f);
    snprintf(what, sizeof what, "%s dv (Tq %d, Tk %d, window %d, sinks %d)", bwd, a.Tq, a.Tk, a.window, a.n_sink);
    expect_close(what, gdv, dv, nk, 1e-4f);
    free(g), free(gdq), free(gdk), free(gdv), free(q), free(k), free(v), free(out), free(att);
    free(dout), free(dq), free(dk), free(dv);
    dev_free(&b);
}

START_TEST(attention)
{
    const lw_model_config *c = model_of(_i);
    float scale = c->query_scale > 0 ? c->query_scale : 1.f / sqrtf((float)c->head_dim);
    /* both models are GQA (9 over 3 heads, 4 over 1) */
    attn_case cases[] = {
        {12, 12, 0, 0, 0},    /* prefill */
        {1, 12, 11, 0, 0},    /* decode over a cache */
        {5, 12, 7, 0, 0},     /* continuation after a prefix */
        {12, 12, 0, 4, 0},    /* sliding window */
        {10, 14, 4, 3, 4},    /* a deep prefix of 4 sinks, then text under a window of 3 */
        {1, 14, 13, 3, 4},    /* decode with the prefix: 4 sinks, a gap, the window */
        {12, 12, 0, 4, 2},    /* sinks still causal: query 0 sees key 0 only */
        {6, 10, 4, 0, 4},     /* prefix without a window: the sinks change nothing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_attention(_i, c->n_heads, c->n_kv_heads, c->head_dim, scale, true, cases[i]);
}
END_TEST

/* Packed segments (attention_varlen_*, plan_cuda.c) against the CPU's
 * attend_segments / segments_backward (plan_attend.c): each segment's
 * keys gathered as [head | its rows] through attention_*_sink; the head's
 * key gradients summed over the segments. dq, dk, dv start random (+=). */
static void check_attention_varlen(int unit, int head, int window, int n_sink)
{
    const lw_model_config *c = model_of(unit);
    int Hq = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim, seg[] = {4, 1, 6, 3}, n_seg = 4, T = 14;
    float scale = c->query_scale > 0 ? c->query_scale : 1.f / sqrtf((float)D);
    size_t qd = (size_t)Hq * D, kvd = (size_t)Hkv * D, nq = T * qd, nk = (head + T) * kvd;
    float *q = host_rand(nq, 1.f), *k = host_rand(nk, 1.f), *v = host_rand(nk, 1.f), *out = malloc(nq * 4);
    float *dout = host_rand(nq, 1.f), *dq = host_rand(nq, 1.f), *dk = host_rand(nk, 1.f), *dv = host_rand(nk, 1.f);
    float *sk = malloc(nk * 4), *sv = malloc(nk * 4), *sdk = malloc(nk * 4), *sdv = malloc(nk * 4);
    float *att = malloc((size_t)Hq * T * (head + T) * 4);
    int starts[14];
    ck_assert(out && sk && sv && sdk && sdv && att);
    dev_bufs b = {0};
    lw_cuda_ptr d_out = dev_alloc(&b, nq * 4), d_lse = dev_alloc(&b, (size_t)Hq * T * 4);
    lw_cuda_ptr d_q = dev_floats(&b, q, nq), d_k = dev_floats(&b, k, nk), d_v = dev_floats(&b, v, nk);
    lw_cuda_ptr d_dq = dev_floats(&b, dq, nq), d_dk = dev_floats(&b, dk, nk), d_dv = dev_floats(&b, dv, nk);
    lw_cuda_ptr d_dout = dev_floats(&b, dout, nq);
    for (int i = 0, r0 = 0; i < n_seg; r0 += seg[i++])
        for (int t = 0; t < seg[i]; t++) starts[r0 + t] = r0;
    lw_cuda_ptr d_seg = dev_alloc(&b, sizeof starts);
    ck_assert_msg(lw_cuda_upload(&g_cu, d_seg, starts, sizeof starts, "segment starts") == LW_OK, "%s",
                  lw_last_error());
    LAUNCH(lwk_attention_varlen_forward(on(unit), &g_ks[unit], d_out, d_lse, d_q, d_k, d_v, d_seg, T, head, window,
                                        n_sink, Hq));
    LAUNCH(lwk_attention_varlen_backward(on(unit), &g_ks[unit], d_dq, d_dk, d_dv, d_dout, d_out, d_lse, d_q, d_k,
                                         d_v, d_seg, T, head, window, n_sink, Hq));
    lw_attention_params p = {true, head, window, scale};
    memcpy(sk, k, (size_t)head * kvd * 4), memcpy(sv, v, (size_t)head * kvd * 4);
    for (int i = 0, r0 = 0; i < n_seg; r0 += seg[i++]) {
        size_t len = (size_t)seg[i], own = (size_t)head * kvd;
        memcpy(sk + own, k + own + r0 * kvd, len * kvd * 4), memcpy(sv + own, v + own + r0 * kvd, len * kvd * 4);
        attention_forward_sink(out + r0 * qd, att, q + r0 * qd, sk, sv, (int)len, head + (int)len, Hq, Hkv, D, &p,
                               n_sink);
        memset(sdk, 0, nk * 4), memset(sdv, 0, nk * 4);
        attention_backward_sink(dq + r0 * qd, sdk, sdv, dout + r0 * qd, att, q + r0 * qd, sk, sv, (int)len,
                                head + (int)len, Hq, Hkv, D, &p, n_sink);
        for (size_t j = 0; j < own; j++) dk[j] += sdk[j], dv[j] += sdv[j];
        for (size_t j = 0; j < len * kvd; j++) {
            dk[own + r0 * kvd + j] += sdk[own + j];
            dv[own + r0 * kvd + j] += sdv[own + j];
        }
    }
    char what[160];
    float *g = dev_read(d_out, nq), *gdq = dev_read(d_dq, nq), *gdk = dev_read(d_dk, nk), *gdv = dev_read(d_dv, nk);
    snprintf(what, sizeof what, "attention_varlen_forward (head %d, window %d, sinks %d)", head, window, n_sink);
    expect_close(what, g, out, nq, 1e-5f);
    snprintf(what, sizeof what, "attention_varlen_backward dq (head %d, window %d, sinks %d)", head, window, n_sink);
    expect_close(what, gdq, dq, nq, 1e-4f);
    snprintf(what, sizeof what, "attention_varlen_backward dk (head %d, window %d, sinks %d)", head, window, n_sink);
    expect_close(what, gdk, dk, nk, 1e-4f);
    snprintf(what, sizeof what, "attention_varlen_backward dv (head %d, window %d, sinks %d)", head, window, n_sink);
    expect_close(what, gdv, dv, nk, 1e-4f);
    free(g), free(gdq), free(gdk), free(gdv), free(q), free(k), free(v), free(out), free(dout), free(dq), free(dk);
    free(dv), free(sk), free(sv), free(sdk), free(sdv), free(att);
    dev_free(&b);
}

START_TEST(attention_varlen)
{
    check_attention_varlen(_i, 0, 0, 0);   /* segments from position 0 */
    check_attention_varlen(_i, 5, 4, 0);   /* after 5 cached keys, a window of 4 (cuts the head and a segment) */
    check_attention_varlen(_i, 7, 3, 4);   /* a deep prefix of 4 sinks, 3 cached keys, a window of 3 */
    check_attention_varlen(_i, 4, 0, 4);   /* the prefix alone, no window */
}
END_TEST

/* One target of LoRA: lora_forward, then lora_backward_input and
 * lora_backward_weights, against lw_lora_forward/backward on the same A, B,
 * rows and positions. y, dx, dA and dB start random, so += is checked. */
static void check_lora_target(int unit, lw_lora *lo, lw_receiver_adapters *ad, int layer, lw_lora_target target)
{
    const lw_lora_slot *s = lw_lora_slot_at(lo, layer, target);
    ck_assert(s->on);
    int T = 5, rank = lo->cfg.rank, in = s->in, out = s->out, tgt = (int)target;
    int pos[5] = {3, 0, 17, 4, 1000};
    float scale = lo->scale, dropout = ad->training ? lo->cfg.dropout : 0.f;
    unsigned long long seed = ad->dropout_seed;
    size_t nx = (size_t)T * in, ny = (size_t)T * out, na = (size_t)rank * in, nb = (size_t)out * rank;
    float *A = lo->p.params + s->a, *B = lo->p.params + s->b;
    float *x = host_rand(nx, 1.f), *y = host_rand(ny, 1.f), *dy = host_rand(ny, 1.f), *dx = host_rand(nx, 1.f);
    float *dA = lo->p.grads + s->a, *dB = lo->p.grads + s->b;
    for (size_t i = 0; i < na; i++) dA[i] = urand();
    for (size_t i = 0; i < nb; i++) dB[i] = urand();
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_floats(&b, y, ny), d_x = dev_floats(&b, x, nx), d_A = dev_floats(&b, A, na);
    lw_cuda_ptr d_B = dev_floats(&b, B, nb), d_pos = dev_ints(&b, pos, T), d_dy = dev_floats(&b, dy, ny);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, nx), d_dA = dev_floats(&b, dA, na), d_dB = dev_floats(&b, dB, nb);
    lw_cuda_ptr d_u = dev_alloc(&b, (size_t)T * rank * 4), d_du = dev_alloc(&b, (size_t)T * rank * 4);
    LAUNCH(lwk_lora_forward(on(unit), &g_ks[unit], d_y, d_x, d_A, d_B, d_pos, T, rank, tgt, scale, dropout, seed,
                            layer));
    LAUNCH(lwk_lora_backward_input(on(unit), &g_ks[unit], d_dx, d_u, d_du, d_x, d_dy, d_A, d_B, d_pos, T, rank, tgt,
                                   scale, dropout, seed, layer));
    LAUNCH(lwk_lora_backward_weights(on(unit), &g_ks[unit], d_dA, d_dB, d_u, d_du, d_x, d_dy, d_pos, T, rank, tgt,
                                     dropout, seed, layer, in, out));
    lw_lora_forward(ad, layer, target, x, y, T, pos);
    lw_lora_backward(ad, layer, target, x, dy, dx, T, pos);
    char what[128];
    float *g = dev_read(d_y, ny);
    snprintf(what, sizeof what, "lora_forward y (%s, rank %d, dropout %g)", lw_lora_target_name(target), rank,
             (double)dropout);
    expect_close(what, g, y, ny, 1e-5f);
    free(g);
    g = dev_read(d_dx, nx);
    snprintf(what, sizeof what, "lora_backward_input dx (%s, rank %d, dropout %g)", lw_lora_target_name(target),
             rank, (double)dropout);
    expect_close(what, g, dx, nx, 1e-5f);
    free(g);
    g = dev_read(d_dA, na);
    snprintf(what, sizeof what, "lora_backward_weights dA (%s, rank %d, dropout %g)", lw_lora_target_name(target),
             rank, (double)dropout);
    expect_close(what, g, dA, na, 1e-4f);
    free(g);
    g = dev_read(d_dB, nb);
    snprintf(what, sizeof what, "lora_backward_weights dB (%s, rank %d, dropout %g)", lw_lora_target_name(target),
             rank, (double)dropout);
    expect_close(what, g, dB, nb, 1e-4f);
    free(g), free(x), free(y), free(dy), free(dx);
    dev_free(&b);
}

/* Every target at rank 8, with dropout 0 and 0.3 (training), and q at
 * rank 70, beyond the forward's 64-value chunk. The CPU twin needs a model
 * of the unit's widths: two layers and a small vocabulary suffice. */
START_TEST(lora)
{
    lw_model_config c = *model_of(_i);
    c.n_layers = 2;
    c.vocab = 16;
    lw_model *m;
    ck_assert_msg(lw_model_init_random(&c, 7, &m) == LW_OK, "%s", lw_last_error());
    static const struct { int rank; float dropout; unsigned targets; } cases[] = {
        {8, 0.f, (1u << LW_LORA_N_TARGETS) - 1},
        {8, 0.3f, (1u << LW_LORA_N_TARGETS) - 1},
        {70, 0.3f, 1u << LW_LORA_Q},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lw_lora lo;
        lw_lora_config lc = {.rank = cases[ci].rank, .alpha = 16.f, .dropout = cases[ci].dropout,
                             .targets = cases[ci].targets};
        ck_assert_msg(lw_lora_create(&lo, &lc, m) == LW_OK, "%s", lw_last_error());
        lw_lora_init(&lo, 11);
        for (size_t i = 0; i < lo.p.n_params; i++)   /* B random too, so every path carries a value */
            if (lo.p.params[i] == 0.f) lo.p.params[i] = 0.1f * urand();
        lw_receiver_adapters ad;
        ck_assert_msg(lw_adapters_init(&ad, m, 5, &lo, 0) == LW_OK, "%s", lw_last_error());
        ad.training = cases[ci].dropout > 0.f;
        ad.dropout_seed = 0x5eed0000ull + ci;
        for (int t = 0; t < LW_LORA_N_TARGETS; t++)
            if (cases[ci].targets & (1u << t)) check_lora_target(_i, &lo, &ad, 1, (lw_lora_target)t);
        lw_adapters_free(&ad);
        lw_lora_free(&lo);
    }
    lw_model_free(m);
}
END_TEST

/* The GPU writes per-row losses and dlogits += dloss (p - onehot); the CPU
 * twin averages over scored rows, so the GPU gets dloss / count. */
START_TEST(cross_entropy)
{
    const lw_model_config *c = model_of(_i);
    int T = 4, V = c->vocab;
    size_t n = (size_t)T * V;
    int targets[4] = {3, -1, V - 1, 0};
    float *logits = host_rand(n, 8.f), *probs = malloc(n * 4), *dlogits = calloc(n, 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_dl = dev_alloc(&b, n * 4), d_loss = dev_alloc(&b, T * 4), d_logits = dev_floats(&b, logits, n);
    lw_cuda_ptr d_t = dev_ints(&b, targets, T);
    float dloss = 1.f / 3.f;
    LAUNCH(lwk_cross_entropy_forward_backward(on(_i), &g_ks[_i], d_dl, d_loss, d_logits, d_t, T, dloss));
    float mean = cross_entropy_forward(probs, logits, targets, T, V);
    cross_entropy_backward(dlogits, probs, targets, T, V, 1.f);
    float *loss = dev_read(d_loss, T), *gdl = dev_read(d_dl, n);
    float gpu_mean = (loss[0] + loss[2] + loss[3]) / 3.f;
    expect_close("cross_entropy_forward_backward loss", &gpu_mean, &mean, 1, 1e-5f);
    ck_assert_msg(loss[1] == 0.f, "a row with target -1 got loss %g", (double)loss[1]);
    expect_close("cross_entropy_forward_backward dlogits", gdl, dlogits, n, 1e-7f);
    free(loss), free(gdl), free(logits), free(probs), free(dlogits);
    dev_free(&b);
}
END_TEST

/* ---- bridge kernels ---------------------------------------------------- */

START_TEST(layernorm)
{
    int T = 10, C = g_m->bridge.width;
    size_t n = (size_t)T * C;
    float *x = host_rand(n, 3.f), *w = host_rand(C, 1.f), *bias = host_rand(C, 1.f);
    float *y = malloc(n * 4), *mean = malloc(T * 4), *rstd = malloc(T * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_mean = dev_alloc(&b, T * 4), d_rstd = dev_alloc(&b, T * 4);
    lw_cuda_ptr d_x = dev_floats(&b, x, n), d_w = dev_floats(&b, w, C), d_b = dev_floats(&b, bias, C);
    LAUNCH(lwk_layernorm_forward(on(BRIDGE), &g_bks, d_y, d_mean, d_rstd, d_x, d_w, d_b, T));
    layernorm_forward(y, mean, rstd, x, w, bias, T, C, 1e-5f);
    float *gy = dev_read(d_y, n);
    expect_close("layernorm_forward", gy, y, n, 1e-5f);
    float *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f), *dw = host_rand(C, 1.f), *db = host_rand(C, 1.f);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, C), d_db = dev_floats(&b, db, C);
    lw_cuda_ptr d_dy = dev_floats(&b, dy, n);
    LAUNCH(lwk_layernorm_backward(on(BRIDGE), &g_bks, d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, T));
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, T, C);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, C), *gdb = dev_read(d_db, C);
    expect_close("layernorm_backward dx", gdx, dx, n, 1e-5f);
    expect_close("layernorm_backward dw", gdw, dw, C, 1e-4f);
    expect_close("layernorm_backward db", gdb, db, C, 1e-4f);
    free(gy), free(gdx), free(gdw), free(gdb), free(x), free(w), free(bias), free(y), free(mean), free(rstd);
    free(dy), free(dx), free(dw), free(db);
    dev_free(&b);
}
END_TEST

START_TEST(bridge_attention)
{
    const lw_bridge_config *bc = &g_m->bridge;
    int H = bc->heads, D = bc->width / bc->heads, M = bc->soft_tokens;
    attn_case cross = {M, 10, 0, 0, 0}, self = {M, M, 0, 0, 0};
    check_attention(BRIDGE, H, H, D, 1.f / sqrtf((float)D), false, cross);
    check_attention(BRIDGE, H, H, D, 1.f / sqrtf((float)D), false, self);
}
END_TEST

START_TEST(gelu)
{
    int n = 3000;
    float *x = host_rand(n, 5.f), *y = malloc((size_t)n * 4), *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, (size_t)n * 4), d_x = dev_floats(&b, x, n), d_dy = dev_floats(&b, dy, n);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n);
    LAUNCH(lwk_gelu_forward(on(BRIDGE), &g_bks, d_y, d_x, n));
    LAUNCH(lwk_gelu_backward(on(BRIDGE), &g_bks, d_dx, d_dy, d_x, n));
    gelu_tanh_forward(y, x, n);
    gelu_tanh_backward(dx, dy, x, n);
    float *gy = dev_read(d_y, n), *gdx = dev_read(d_dx, n);
    expect_close("gelu_forward", gy, y, n, 1e-5f);
    expect_close("gelu_backward", gdx, dx, n, 1e-5f);
    free(gy), free(gdx), free(x), free(y), free(dy), free(dx);
    dev_free(&b);
}
END_TEST

/* The twin is lw_bridge_forward/backward's calibration: rmsnorm without a
 * weight (eps 1e-6) times out_scale; d out_scale = sum dy * normalised. */
START_TEST(rms_calibrate)
{
    int M = g_m->bridge.soft_tokens, R = g_m->receiver.hidden;
    bool rms = g_m->bridge.calibration == LW_CALIB_RMS;
    size_t n = (size_t)M * R;
    float *x = host_rand(n, 2.f), scale = 0.75f, *y = malloc(n * 4), *rstd = malloc(M * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_rstd = dev_alloc(&b, M * 4), d_x = dev_floats(&b, x, n);
    lw_cuda_ptr d_scale = dev_floats(&b, &scale, 1);
    LAUNCH(lwk_rms_calibrate_forward(on(BRIDGE), &g_bks, d_y, d_rstd, d_x, d_scale, M));
    if (rms) {
        rmsnorm_forward(y, rstd, x, NULL, M, R, 1e-6f, LW_NORM_RMSNORM);
        for (size_t i = 0; i < n; i++) y[i] *= scale;
    } else {
        memcpy(y, x, n * 4);
    }
    float *gy = dev_read(d_y, n);
    expect_close("rms_calibrate_forward", gy, y, n, 1e-5f);

    float *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f), dscale = 0.25f, *dyn = malloc(n * 4);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dscale = dev_floats(&b, &dscale, 1), d_dy = dev_floats(&b, dy, n);
    LAUNCH(lwk_rms_calibrate_backward(on(BRIDGE), &g_bks, d_dx, d_dscale, d_dy, d_x, d_rstd, d_scale, M));
    if (rms) {
        double ds = 0;
        for (size_t i = 0; i < n; i++) {
            ds += (double)dy[i] * y[i] / scale;
            dyn[i] = dy[i] * scale;
        }
        dscale += (float)ds;
        rmsnorm_backward(dx, NULL, dyn, x, NULL, rstd, M, R, LW_NORM_RMSNORM);
    } else {
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
    }
    float *gdx = dev_read(d_dx, n), *gds = dev_read(d_dscale, 1);
    expect_close("rms_calibrate_backward dx", gdx, dx, n, 1e-5f);
    if (rms) expect_close("rms_calibrate_backward dscale", gds, &dscale, 1, 1e-4f);
    free(gy), free(gdx), free(gds), free(x), free(y), free(rstd), free(dy), free(dx), free(dyn);
    dev_free(&b);
}
END_TEST

/* The deep prefix's kernels: LayerNorm over the receiver width against
 * layernorm_*, the dropout against the keep factors and zd that
 * lw_deep_prefix_forward computes (same hash, so exact), its backward
 * against dz * keep. */
START_TEST(prefix)
{
    int T = 2, C = g_m->receiver.hidden;
    size_t n = (size_t)T * C;
    float *x = host_rand(n, 3.f), *w = host_rand(C, 1.f), *bias = host_rand(C, 1.f);
    float *y = malloc(n * 4), *mean = malloc(T * 4), *rstd = malloc(T * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_mean = dev_alloc(&b, T * 4), d_rstd = dev_alloc(&b, T * 4);
    lw_cuda_ptr d_x = dev_floats(&b, x, n), d_w = dev_floats(&b, w, C), d_b = dev_floats(&b, bias, C);
    LAUNCH(lwk_prefix_layernorm_forward(on(BRIDGE), &g_bks, d_y, d_mean, d_rstd, d_x, d_w, d_b, T));
    layernorm_forward(y, mean, rstd, x, w, bias, T, C, 1e-5f);
    float *gy = dev_read(d_y, n);
    expect_close("prefix_layernorm_forward", gy, y, n, 1e-5f);
    float *dy = host_rand(n, 1.f), *dx = host_rand(n, 1.f), *dw = host_rand(C, 1.f), *db = host_rand(C, 1.f);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, C), d_db = dev_floats(&b, db, C);
    lw_cuda_ptr d_dy = dev_floats(&b, dy, n);
    LAUNCH(lwk_prefix_layernorm_backward(on(BRIDGE), &g_bks, d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, T));
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, T, C);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, C), *gdb = dev_read(d_db, C);
    expect_close("prefix_layernorm_backward dx", gdx, dx, n, 1e-5f);
    expect_close("prefix_layernorm_backward dw", gdw, dw, C, 1e-4f);
    expect_close("prefix_layernorm_backward db", gdb, db, C, 1e-4f);
    free(gy), free(gdx), free(gdw), free(gdb), free(x), free(w), free(bias), free(y), free(mean), free(rstd);
    free(dy), free(dx), free(dw), free(db);
    dev_free(&b);

    lw_deep_prefix dp;
    lw_deep_prefix_config pc = {.length = 8, .hidden = 128, .dropout = 0.2f};
    ck_assert_msg(lw_deep_prefix_create(&dp, &pc, &g_m->receiver) == LW_OK, "%s", lw_last_error());
    lw_deep_prefix_init(&dp, 5);
    int M = g_m->bridge.soft_tokens, nz = pc.length * pc.hidden;
    float *soft = host_rand((size_t)M * dp.R, 1.f);
    unsigned long long seed = 0xabcdef0123ull;
    ck_assert_msg(lw_deep_prefix_forward(&dp, soft, M, true, seed) == LW_OK, "%s", lw_last_error());
    lw_cuda_ptr d_zd = dev_alloc(&b, (size_t)nz * 4), d_keep = dev_alloc(&b, (size_t)nz * 4);
    lw_cuda_ptr d_z = dev_floats(&b, dp.z, nz);
    float dropout = pc.dropout;
    LAUNCH(lwk_prefix_dropout_forward(on(BRIDGE), &g_bks, d_zd, d_keep, d_z, nz, dropout, seed));
    float *gkeep = dev_read(d_keep, nz), *gzd = dev_read(d_zd, nz);
    for (int i = 0; i < nz; i++) {
        ck_assert_msg(gkeep[i] == dp.keep[i], "prefix_dropout_forward keep[%d]: gpu %g cpu %g", i,
                      (double)gkeep[i], (double)dp.keep[i]);
        ck_assert_msg(gzd[i] == dp.zd[i], "prefix_dropout_forward zd[%d]: gpu %g cpu %g", i, (double)gzd[i],
                      (double)dp.zd[i]);
    }
    float *dz = host_rand(nz, 1.f);
    lw_cuda_ptr d_dz = dev_floats(&b, dz, nz);
    LAUNCH(lwk_prefix_dropout_backward(on(BRIDGE), &g_bks, d_dz, d_keep, nz));
    for (int i = 0; i < nz; i++) dz[i] *= dp.keep[i];
    float *gdz = dev_read(d_dz, nz);
    expect_close("prefix_dropout_backward", gdz, dz, nz, 0.f);
    free(gkeep), free(gzd), free(gdz), free(dz), free(soft);
    lw_deep_prefix_free(&dp);
    dev_free(&b);
}
END_TEST

/* Three steps, so the moments and the bias corrections are exercised. */
START_TEST(adamw)
{
    int n = 5000;
    float *p = host_rand((size_t)n, 1.f), lr = 1e-3f, wd = 0.01f;
    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, (size_t)n, lw_adamw_defaults()), LW_OK);
    float b1 = opt.cfg.beta1, b2 = opt.cfg.beta2, eps = opt.cfg.eps;
    dev_bufs b = {0};
    lw_cuda_ptr d_p = dev_floats(&b, p, n), d_m = dev_alloc(&b, (size_t)n * 4), d_v = dev_alloc(&b, (size_t)n * 4);
    lw_cuda_ptr d_g = dev_alloc(&b, (size_t)n * 4);
    for (int step = 1; step <= 3; step++) {
        float *g = host_rand((size_t)n, 1.f);
        ck_assert_int_eq(lw_cuda_upload(&g_cu, d_g, g, (size_t)n * 4, "grads"), LW_OK);
        float bc1 = 1.f - powf(b1, (float)step), bc2 = 1.f - powf(b2, (float)step);
        LAUNCH(lwk_adamw_step(on(BRIDGE), &g_bks, d_p, d_g, d_m, d_v, n, lr, b1, b2, eps, wd, bc1, bc2));
        lw_adamw_begin_step(&opt);
        lw_adamw_update(&opt, p, g, 0, (size_t)n, lr, wd);
        free(g);
    }
    float *gp = dev_read(d_p, n), *gm = dev_read(d_m, n), *gv = dev_read(d_v, n);
    expect_close("adamw_step param", gp, p, n, 1e-6f);
    expect_close("adamw_step m", gm, opt.m, n, 1e-7f);
    expect_close("adamw_step v", gv, opt.v, n, 1e-9f);
    free(gp), free(gm), free(gv), free(p);
    lw_adamw_free(&opt);
    dev_free(&b);
}
END_TEST

/* The bridge plan's element-wise records (runtime/model/bridge_cuda.c)
 * against the loops of bridge_exec.c written out here: standardise (a std
 * of 0 floored at 1e-6), mean_rows, the bridge's bias and its gradient,
 * add and copy; forward and backward accumulate where the kernels do. */
START_TEST(bridge_plan_kernels)
{
    int T = 37, C = 300, n = T * C;
    float *x = host_rand((size_t)n, 2.f), *mean = host_rand((size_t)C, 1.f), *std = host_rand((size_t)C, 1.f);
    for (int c = 0; c < C; c++) std[c] = 0.5f + fabsf(std[c]);
    std[7] = 0.f;
    float *dy = host_rand((size_t)n, 1.f), *dx0 = host_rand((size_t)n, 1.f), *want = malloc((size_t)n * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_x = dev_floats(&b, x, n), d_mean = dev_floats(&b, mean, C), d_std = dev_floats(&b, std, C);
    lw_cuda_ptr d_y = dev_alloc(&b, (size_t)n * 4), d_dy = dev_floats(&b, dy, n), d_dx = dev_floats(&b, dx0, n);
    LAUNCH(lwk_standardise_forward(on(BRIDGE), &g_bks, d_y, d_x, d_mean, d_std, n, C));
    for (int i = 0; i < n; i++) {
        float sd = std[i % C] > 1e-6f ? std[i % C] : 1e-6f;
        want[i] = (x[i] - mean[i % C]) * (1.0f / sd);
    }
    float *got = dev_read(d_y, n);
    expect_close("standardise_forward", got, want, n, 0.f);
    free(got);
    LAUNCH(lwk_standardise_backward(on(BRIDGE), &g_bks, d_dx, d_dy, d_std, n, C));
    for (int i = 0; i < n; i++) {
        float sd = std[i % C] > 1e-6f ? std[i % C] : 1e-6f;
        want[i] = dx0[i] + dy[i] * (1.0f / sd);
    }
    got = dev_read(d_dx, n);
    expect_close("standardise_backward", got, want, n, 0.f);
    free(got);

    /* mean_rows: the rows summed in order, as the CPU */
    LAUNCH(lwk_mean_rows_forward(on(BRIDGE), &g_bks, d_y, d_x, T, C));
    for (int c = 0; c < C; c++) {
        float s = 0.f;
        for (int t = 0; t < T; t++) s += x[t * C + c];
        want[c] = s / (float)T;
    }
    got = dev_read(d_y, C);
    expect_close("mean_rows_forward", got, want, C, 0.f);
    free(got);
    ck_assert_int_eq(lw_cuda_upload(&g_cu, d_dx, dx0, (size_t)n * 4, "dx"), LW_OK);
    LAUNCH(lwk_mean_rows_backward(on(BRIDGE), &g_bks, d_dx, d_dy, T, C));
    for (int i = 0; i < n; i++) want[i] = dx0[i] + dy[i % C] / (float)T;
    got = dev_read(d_dx, n);
    expect_close("mean_rows_backward", got, want, n, 0.f);
    free(got);

    /* the bias: y[t, j] += b[j]; db[j] += sum_t dy[t, j] */
    ck_assert_int_eq(lw_cuda_upload(&g_cu, d_y, x, (size_t)n * 4, "y"), LW_OK);
    LAUNCH(lwk_bridge_bias_forward(on(BRIDGE), &g_bks, d_y, d_mean, T, C));
    for (int i = 0; i < n; i++) want[i] = x[i] + mean[i % C];
    got = dev_read(d_y, n);
    expect_close("bridge_bias_forward", got, want, n, 0.f);
    free(got);
    lw_cuda_ptr d_db = dev_floats(&b, std, C);
    LAUNCH(lwk_bridge_bias_backward(on(BRIDGE), &g_bks, d_db, d_dy, T, C));
    for (int j = 0; j < C; j++) {
        float s = 0.f;
        for (int t = 0; t < T; t++) s += dy[t * C + j];
        want[j] = std[j] + s;
    }
    got = dev_read(d_db, C);
    expect_close("bridge_bias_backward", got, want, C, 1e-6f);
    free(got);

    /* add and copy */
    ck_assert_int_eq(lw_cuda_upload(&g_cu, d_y, x, (size_t)n * 4, "y"), LW_OK);
    LAUNCH(lwk_bridge_add(on(BRIDGE), &g_bks, d_y, d_dy, n));
    for (int i = 0; i < n; i++) want[i] = x[i] + dy[i];
    got = dev_read(d_y, n);
    expect_close("bridge_add", got, want, n, 0.f);
    free(got);
    LAUNCH(lwk_bridge_copy(on(BRIDGE), &g_bks, d_y, d_dy, n));
    got = dev_read(d_y, n);
    expect_close("bridge_copy", got, dy, n, 0.f);
    free(got);
    free(x), free(mean), free(std), free(dy), free(dx0), free(want);
    dev_free(&b);
}
END_TEST

/* AdamW with the global-norm clip (runtime/model/adamw_cuda.h's kernels):
 * grad_sumsq over two buffers into one double (the joint norm), then
 * adamw_clip_step over two spans of different weight decays, three steps,
 * against lw_clip_grad_norm and lw_adamw_update. */
START_TEST(adamw_clip)
{
    int n = 5000, half = 2000;
    float *p = host_rand((size_t)n, 1.f), lr = 1e-3f, max_norm = 1.f;
    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, (size_t)n, lw_adamw_defaults()), LW_OK);
    dev_bufs b = {0};
    lw_cuda_ptr d_p = dev_floats(&b, p, n), d_m = dev_alloc(&b, (size_t)n * 4), d_v = dev_alloc(&b, (size_t)n * 4);
    lw_cuda_ptr d_g = dev_alloc(&b, (size_t)n * 4), d_sq = dev_alloc(&b, sizeof(double));
    ck_assert_int_eq(lw_cuda_memset0(&g_cu, d_m, (size_t)n * 4, "m"), LW_OK);
    ck_assert_int_eq(lw_cuda_memset0(&g_cu, d_v, (size_t)n * 4, "v"), LW_OK);
    for (int step = 1; step <= 3; step++) {
        float *g = host_rand((size_t)n, 1.f);   /* norm ~ 41: clipped to 1 */
        ck_assert_int_eq(lw_cuda_upload(&g_cu, d_g, g, (size_t)n * 4, "grads"), LW_OK);
        ck_assert_int_eq(lw_cuda_memset0(&g_cu, d_sq, sizeof(double), "sumsq"), LW_OK);
        LAUNCH(lwk_grad_sumsq(on(BRIDGE), &g_bks, d_sq, d_g, half));
        LAUNCH(lwk_grad_sumsq(on(BRIDGE), &g_bks, d_sq, d_g + (size_t)half * 4, n - half));
        double norm = lw_clip_grad_norm(g, (size_t)n, max_norm), sq = 0;
        ck_assert_int_eq(lw_cuda_download(&g_cu, &sq, d_sq, sizeof sq, "sumsq"), LW_OK);
        ck_assert_msg(fabs(sqrt(sq) - norm) <= 1e-9 * norm, "grad_sumsq: norm %.17g, cpu %.17g", sqrt(sq), norm);
        lw_adamw_begin_step(&opt);
        double bc1 = 1.0 - pow(opt.cfg.beta1, (double)opt.step), bc2 = 1.0 - pow(opt.cfg.beta2, (double)opt.step);
        float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
        LAUNCH(lwk_adamw_clip_step(on(BRIDGE), &g_bks, d_p, d_g, d_m, d_v, d_sq, max_norm, half, lr, 0.01f,
                                   opt.cfg.beta1, opt.cfg.beta2, opt.cfg.eps, step_size, bc2_sqrt));
        size_t o = (size_t)half * 4;
        LAUNCH(lwk_adamw_clip_step(on(BRIDGE), &g_bks, d_p + o, d_g + o, d_m + o, d_v + o, d_sq, max_norm, n - half,
                                   lr, 0.f, opt.cfg.beta1, opt.cfg.beta2, opt.cfg.eps, step_size, bc2_sqrt));
        lw_adamw_update(&opt, p, g, 0, (size_t)half, lr, 0.01f);
        lw_adamw_update(&opt, p, g, (size_t)half, (size_t)(n - half), lr, 0.f);
        float *gg = dev_read(d_g, n);
        expect_close("adamw_clip_step clipped grads", gg, g, n, 1e-9f);
        free(gg), free(g);
    }
    float *gp = dev_read(d_p, n), *gm = dev_read(d_m, n), *gv = dev_read(d_v, n);
    expect_close("adamw_clip_step param", gp, p, n, 1e-6f);
    expect_close("adamw_clip_step m", gm, opt.m, n, 1e-7f);
    expect_close("adamw_clip_step v", gv, opt.v, n, 1e-9f);
    free(gp), free(gm), free(gv), free(p);
    lw_adamw_free(&opt);
    dev_free(&b);
}
END_TEST

/* f32_to_bf16 bit for bit against lw_bf16_from_f32, ties, infinities,
 * subnormals and NaN included. */
START_TEST(f32_to_bf16)
{
    int n = 4099;
    float *x = host_rand((size_t)n, 3.f);
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff800000u, 0x007fffffu, 0x7fc00000u,
                                0x80000000u, 0x00000001u};
    for (int i = 0; i < 8; i++) memcpy(&x[i * 97], &special[i], 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_x = dev_floats(&b, x, (size_t)n), d_y = dev_alloc(&b, (size_t)n * 2);
    LAUNCH(lwk_f32_to_bf16(on(_i), &g_ks[_i], d_y, d_x, n));
    uint16_t *y = malloc((size_t)n * 2);
    ck_assert_msg(lw_cuda_download(&g_cu, y, d_y, (size_t)n * 2, "bf16") == LW_OK, "%s", lw_last_error());
    for (int i = 0; i < n; i++)
        ck_assert_msg(y[i] == lw_bf16_from_f32(x[i]), "f32_to_bf16[%d] of %a: gpu 0x%04x, cpu 0x%04x", i, x[i], y[i],
                      lw_bf16_from_f32(x[i]));
    free(y), free(x);
    dev_free(&b);
}
END_TEST

/* A graph-ready step's kernels (gpu_decode.c): attention_decode_forward,
 * whose offset is read off the device-held positions (pos[0]), against the
 * CPU's attention_forward_sink and, exactly, against attention_forward
 * launched with the same offset as scalars; kv_cache_store's rows at
 * n_sink + pos[t], exact. */
START_TEST(graph_ready_step)
{
    const lw_model_config *c = model_of(_i);
    int Hq = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    float scale = c->query_scale > 0 ? c->query_scale : 1.f / sqrtf((float)D);
    size_t qd = (size_t)Hq * D, kvd = (size_t)Hkv * D;
    /* {Tq, position of the first row, window, n_sink}: a decode step, one past a window with sinks, 3 rows on */
    const int cases[][4] = {{1, 11, 0, 0}, {1, 9, 3, 4}, {3, 7, 4, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int Tq = cases[i][0], at = cases[i][1], window = cases[i][2], n_sink = cases[i][3];
        int q_offset = n_sink + at, Tk = q_offset + Tq, pos[3];
        for (int t = 0; t < Tq; t++) pos[t] = at + t;
        size_t nq = (size_t)Tq * qd, nk = (size_t)Tk * kvd;
        float *q = host_rand(nq, 1.f), *k = host_rand(nk, 1.f), *v = host_rand(nk, 1.f), *out = malloc(nq * 4);
        float *att = malloc((size_t)Hq * Tq * Tk * 4);
        ck_assert(out && att);
        dev_bufs b = {0};
        lw_cuda_ptr d_q = dev_floats(&b, q, nq), d_k = dev_floats(&b, k, nk), d_v = dev_floats(&b, v, nk);
        lw_cuda_ptr d_pos = dev_ints(&b, pos, (size_t)Tq), d_out = dev_alloc(&b, nq * 4), d_ref = dev_alloc(&b, nq * 4);
        lw_cuda_ptr d_lse = dev_alloc(&b, (size_t)Hq * Tq * 4), d_lse2 = dev_alloc(&b, (size_t)Hq * Tq * 4);
        LAUNCH(lwk_attention_decode_forward(on(_i), &g_ks[_i], d_out, d_lse, d_q, d_k, d_v, d_pos, Tq, window, n_sink,
                                            Hq));
        LAUNCH(lwk_attention_forward(on(_i), &g_ks[_i], d_ref, d_lse2, d_q, d_k, d_v, Tq, Tk, q_offset, window, n_sink,
                                     Hq));
        lw_attention_params p = {true, q_offset, window, scale};
        attention_forward_sink(out, att, q, k, v, Tq, Tk, Hq, Hkv, D, &p, n_sink);
        float *g = dev_read(d_out, nq), *ref = dev_read(d_ref, nq);
        char what[128];
        snprintf(what, sizeof what, "attention_decode_forward (Tq %d at %d, window %d, sinks %d)", Tq, at, window,
                 n_sink);
        expect_close(what, g, out, nq, 1e-5f);
        ck_assert_msg(!memcmp(g, ref, nq * 4), "%s differs from attention_forward with the same scalars", what);

        /* the step's rows into the cache at n_sink + pos[t] */
        size_t rows = (size_t)n_sink + at + Tq + 2, nc = rows * kvd;
        float *cache = host_rand(nc, 1.f), *mine = host_rand((size_t)Tq * kvd, 1.f), *want = host_copy(cache, nc);
        for (int t = 0; t < Tq; t++)
            memcpy(want + ((size_t)n_sink + pos[t]) * kvd, mine + (size_t)t * kvd, kvd * 4);
        lw_cuda_ptr d_cache = dev_floats(&b, cache, nc), d_mine = dev_floats(&b, mine, (size_t)Tq * kvd);
        LAUNCH(lwk_kv_cache_store(on(_i), &g_ks[_i], d_cache, d_mine, d_pos, Tq, n_sink, (int)kvd));
        float *gc = dev_read(d_cache, nc);
        expect_close("kv_cache_store", gc, want, nc, 0.f);
        free(q), free(k), free(v), free(out), free(att), free(g), free(ref), free(cache), free(mine), free(want);
        free(gc);
        dev_free(&b);
    }
}
END_TEST

/* The plan's add and copy (plan_cuda.c's LW_OP_ADD, LW_OP_COPY), exact. */
START_TEST(add_copy)
{
    int n = 4099;
    float *x = host_rand((size_t)n, 1.f), *y = host_rand((size_t)n, 1.f), *sum = malloc((size_t)n * 4);
    ck_assert_ptr_nonnull(sum);
    for (int i = 0; i < n; i++) sum[i] = y[i] + x[i];
    dev_bufs b = {0};
    lw_cuda_ptr d_x = dev_floats(&b, x, (size_t)n), d_y = dev_floats(&b, y, (size_t)n);
    lw_cuda_ptr d_c = dev_alloc(&b, (size_t)n * 4);
    LAUNCH(lwk_add_forward(on(_i), &g_ks[_i], d_y, d_x, n));
    LAUNCH(lwk_copy_forward(on(_i), &g_ks[_i], d_c, d_x, n));
    float *gy = dev_read(d_y, n), *gc = dev_read(d_c, n);
    expect_close("add_forward", gy, sum, n, 0.f);
    expect_close("copy_forward", gc, x, n, 0.f);
    free(gy), free(gc), free(x), free(y), free(sum);
    dev_free(&b);
}
END_TEST

/* A projection's bias (plan_cuda.c: MATMUL with bqkv), exact: y[t, j] += b[j]. */
START_TEST(bias_add)
{
    int T = 37, n = 130;
    size_t N = (size_t)T * n;
    float *y = host_rand(N, 1.f), *bias = host_rand((size_t)n, 1.f), *want = malloc(N * 4);
    ck_assert_ptr_nonnull(want);
    for (size_t i = 0; i < N; i++) want[i] = y[i] + bias[i % (size_t)n];
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_floats(&b, y, N), d_b = dev_floats(&b, bias, (size_t)n);
    LAUNCH(lwk_bias_add_forward(on(_i), &g_ks[_i], d_y, d_b, T, n));
    float *gy = dev_read(d_y, N);
    expect_close("bias_add_forward", gy, want, N, 0.f);
    free(gy), free(y), free(bias), free(want);
    dev_free(&b);
}
END_TEST

/* Every kernel of the table (templates/kernels.def, which lwc build holds
 * the templates to) was launched above. */
START_TEST(every_kernel_is_covered)
{
    for (int u = 0; u < 2; u++) {
        int count = u ? LW_BRIDGE_KERNEL_COUNT : LW_MODEL_KERNEL_COUNT;
        for (int k = 0; k < count; k++) {
            const char *name = u ? lw_bridge_kernel_name(k) : lw_model_kernel_name(k);
            int seen = 0;
            for (int i = 0; i < g_n_seen; i++) seen |= strcmp(g_seen[i], name) == 0;
            ck_assert_msg(seen, "kernel %s of the %s unit has no GPU-vs-CPU test", name, u ? "bridge" : "model");
        }
        ck_assert_int_gt(count, 0);
    }
}
END_TEST

/* ---- setup ---------------------------------------------------------------- */

static lw_status setup(void)
{
    g_m = calloc(1, sizeof *g_m);
    if (!g_m) return lw_fail(LW_ERR_NOMEM, "out of memory");
    lw_status st = lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), g_m);
    if (st) return st;
    if ((st = lw_cuda_init(&g_cu, 0))) return st;
    int arch = lw_cuda_arch(&g_cu);
    fprintf(stderr, "GPU: %s, sm_%d; NVRTC %s\n", g_cu.name, arch, lw_nvrtc_version());
    const char *templates = tl_src("templates");
    for (int u = 0; u < N_UNITS; u++) {
        lw_strbuf sb = {0};
        if (u == BRIDGE) st = lw_gen_bridge_kernels(templates, g_m, &sb);
        else st = lw_gen_model_kernels(templates, model_of(u), g_m->bridge.soft_tokens, &sb);
        if (!st && sb.failed) st = lw_fail(LW_ERR_NOMEM, "out of memory generating the %s kernels", unit_name[u]);
        if (st) {
            lw_sb_free(&sb);
            return st;
        }
        g_source[u] = sb.data;
        unsigned char *image = NULL;
        size_t size = 0;
        char file[64];
        snprintf(file, sizeof file, "kernels_%s.cu", unit_name[u]);
        if ((st = lw_nvrtc_compile(g_source[u], file, arch, &image, &size))) return st;
        st = lw_cuda_load_image(&g_cu, unit_name[u], arch, image, &g_mod[u]);
        free(image);
        if (!st) st = u == BRIDGE ? lw_bridge_kernels_find(&g_cu, &g_mod[u], &g_bks)
                                  : lw_model_kernels_find(&g_cu, &g_mod[u], &g_ks[u]);
        if (st) return st;
    }
    return LW_OK;
}

static void teardown(void)
{
    for (int u = 0; u < N_UNITS; u++) {
        lw_cuda_unload(&g_cu, &g_mod[u]);
        free(g_source[u]);
    }
    lw_cuda_close(&g_cu);
    free(g_m);
}

int main(void)
{
    if (setup() != LW_OK) {
        fprintf(stderr, "check_kernels_gpu: cannot run: %s\n", lw_last_error());
        teardown();
        return 1;
    }
    Suite *s = suite_create("kernels_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    /* _i is the unit: SENDER then RECEIVER, whose kernels differ in every constant */
    tcase_add_loop_test(tc, embedding, SENDER, BRIDGE);
    tcase_add_loop_test(tc, rmsnorm, SENDER, BRIDGE);
    tcase_add_loop_test(tc, qk_rmsnorm, SENDER, BRIDGE);
    tcase_add_loop_test(tc, rope, SENDER, BRIDGE);
    tcase_add_loop_test(tc, glu, SENDER, BRIDGE);
    tcase_add_loop_test(tc, attention, SENDER, BRIDGE);
    tcase_add_loop_test(tc, cross_entropy, SENDER, BRIDGE);
    tcase_add_loop_test(tc, lora, SENDER, BRIDGE);
    tcase_add_test(tc, layernorm);
    tcase_add_test(tc, bridge_attention);
    tcase_add_test(tc, gelu);
    tcase_add_test(tc, rms_calibrate);
    tcase_add_test(tc, prefix);
    tcase_add_test(tc, adamw);
    tcase_add_test(tc, bridge_plan_kernels);
    tcase_add_test(tc, adamw_clip);
    tcase_add_loop_test(tc, f32_to_bf16, SENDER, BRIDGE);
    tcase_add_loop_test(tc, add_copy, SENDER, BRIDGE);
    tcase_add_loop_test(tc, bias_add, SENDER, BRIDGE);
    tcase_add_loop_test(tc, attention_varlen, SENDER, BRIDGE);
    tcase_add_loop_test(tc, graph_ready_step, SENDER, BRIDGE);
    tcase_add_test(tc, every_kernel_is_covered);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    teardown();
    return failed == 0 ? 0 : 1;
}
