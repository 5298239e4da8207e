/* The CUDA side of the backend-ops harness: every op of runtime/ops/op_list.h
 * whose kernels column names kernels of ours, on the cases of the list,
 * each kernel against the CPU op (its twin), forward and backward; the
 * tolerance is the entry's gpu_rtol / gpu_atol. Built by `make check-gpu`;
 * without a CUDA device it says so and exits 0 (skipped), having checked
 * only that it could generate the kernels.
 *
 * The kernels bake the model's widths in (the templates, generated for
 * the default pair here and compiled by NVRTC for the device), so a case
 * gives the free sizes (rows, tokens, Tq/Tk, offsets, windows, sinks, n) and
 * the unit gives the rest (hidden, heads, head_dim, vocab, norm kind,
 * activation, RoPE layout). A case that asks for what a unit was not
 * generated with (a gemma norm on a llama unit, an interleaved RoPE on a
 * halves model) is skipped on that unit and counted as such; an op none of
 * whose cases ran fails. The embedding kernel has no rule for a negative id
 * (the CPU op's zero row), so its cases use ids >= 0 only. Ops whose column
 * says cuBLAS or none are listed as such (cuBLAS: tests/check_cuda_blas.c).
 * Kernels are launched through the typed launchers generated from
 * templates/kernels.def (out/gen/kernel_launchers.h), so with the runtime's
 * own grid and block; the sizes a kernel bakes in (head_dim, n_heads,
 * soft_tokens) are passed as the unit's. At the end every kernel that the
 * list names must have been launched.
 *
 * One row per (op, unit): cases run, skipped, the worst error as a share of
 * its tolerance, the largest |gpu - cpu|. */
#include "testlib.h"
#include "op_table.h"
#include "cuda_driver.h"
#include "gen_kernels.h"
#include "kernel_launchers.h"
#include "manifest.h"
#include "model_config.h"
#include "nvrtc_compile.h"
#include "ops.h"
#include "rng.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SENDER, RECEIVER, BRIDGE, N_UNITS };
static const char *const unit_name[N_UNITS] = {"sender", "receiver", "bridge"};

static lw_manifest *g_m;
static lw_cuda g_cu;
static lw_cuda_module g_mod[N_UNITS];
static bool g_loaded[N_UNITS];
static lw_model_kernels g_ks[2]; /* SENDER, RECEIVER */
static lw_bridge_kernels g_bks;
static lw_rng g_rng;

enum { MAX_SEEN = 64, MAX_BUFS = 32 };
static char g_seen[MAX_SEEN][64];
static int g_n_seen;

/* ---- host and device helpers --------------------------------------------- */

static float *host_rand(size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(2.0 * lw_rng_uniform(&g_rng) - 1.0) * scale;
    return x;
}

static float *host_copy(const float *src, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    memcpy(x, src, n * sizeof *x);
    return x;
}

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
    float *x = malloc((n ? n : 1) * sizeof *x);
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

/* How the harness launches unit's kernels: through the generated launchers,
 * so with the table's launch shapes (templates/kernels.def), as the runtime
 * does. Each launch waits, so a fault is pinned to its kernel, and is noted
 * (by the name its handle was found under) for the coverage test. */
static lw_launch on(int unit)
{
    return (lw_launch){.cu = &g_cu, .owner = unit_name[unit], .sync = true, .observe = on_launch};
}

#define LAUNCH(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static const lw_model_config *model_of(int unit) { return unit == SENDER ? &g_m->sender : &g_m->receiver; }

/* ---- results ------------------------------------------------------------- */

typedef struct {
    const op_entry *e;
    const op_case *c;
    int ran, skipped, failed;
    double share, max_err;
    char msg[400];
} gres;

/* gpu against the CPU twin, without aborting: the first failure is kept. */
static void compare(gres *r, const char *what, const float *gpu, const float *cpu, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)gpu[i] - cpu[i]), tol = r->e->gpu_atol + r->e->gpu_rtol * fabs((double)cpu[i]);
        if (!isfinite(gpu[i]) || !(err <= tol)) {
            if (!r->failed++)
                snprintf(r->msg, sizeof r->msg, "%s: %s[%zu] gpu %.9g cpu %.9g (tolerance %.3g)", r->c->label, what, i,
                         (double)gpu[i], (double)cpu[i], tol);
            continue;
        }
        r->max_err = fmax(r->max_err, err);
        if (tol > 0) r->share = fmax(r->share, err / tol);
    }
}

#define D(k) (r->c->d[k])

/* ---- which case runs on which unit --------------------------------------- */

/* The unit must have been generated with what the case asks for: the model
 * units for the model's ops (its norm kind, RoPE layout, activation; causal
 * attention), the bridge for its own (LayerNorm, GELU, RMS calibration,
 * bidirectional attention). Needs no device (main checks it first). */
static bool gpu_applies(const op_case *oc, int unit)
{
    const int *d = oc->d;
    bool model = unit != BRIDGE;
    const lw_model_config *c = model ? model_of(unit) : NULL;
    switch (oc->op) {
    case LW_OPL_EMBEDDING:
    case LW_OPL_CROSS_ENTROPY:
    case LW_OPL_HEAD_LOGSOFTMAX: return model;
    case LW_OPL_RMSNORM:
        if (!d[3]) return !model && g_m->bridge.calibration == LW_CALIB_RMS;
        return model && (c->norm == LW_NORM_RMSNORM_GEMMA) == (d[2] == 1);
    case LW_OPL_LAYERNORM:
    case LW_OPL_GELU_TANH: return !model;
    case LW_OPL_ROPE: return model && lw_rope_interleaved(c) == (d[3] != 0);
    case LW_OPL_ATTENTION: return d[5] ? model : !model && !d[6] && !d[7] && !d[8];
    case LW_OPL_GLU: return model && (c->activation == LW_ACT_GELU_TANH) == (d[1] == 1);
    default: return false;
    }
}

/* ---- the drivers: one case on one unit ----------------------------------- */

static void gpu_embedding(gres *r, int unit)
{
    const lw_model_config *c = model_of(unit);
    int T = D(0), H = c->hidden, rows = D(2);
    int *ids = malloc((size_t)T * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int t = 0; t < T; t++) ids[t] = (t * 7 + 2) % rows;
    float *table = host_rand((size_t)rows * H, 1), *cpu = malloc((size_t)T * H * sizeof(float));
    dev_bufs b = {0};
    lw_cuda_ptr y = dev_alloc(&b, (size_t)T * H * 4), d_ids = dev_ints(&b, ids, T);
    lw_cuda_ptr d_table = dev_floats(&b, table, (size_t)rows * H);
    LAUNCH(lwk_embedding_forward(on(unit), &g_ks[unit], y, d_ids, d_table, T));
    embedding_forward(cpu, ids, table, T, H, c->scale_embeddings ? sqrtf((float)H) : 1.f);
    float *gpu = dev_read(y, (size_t)T * H);
    compare(r, "embedding_forward", gpu, cpu, (size_t)T * H);
    free(gpu), free(cpu), free(table), free(ids);
    dev_free(&b);
}

/* With a weight: the model's residual_rmsnorm_forward (+ residual),
 * rmsnorm_backward and the per-head qk_rmsnorm pair, on the unit whose norm
 * kind the case asks for. Without: the bridge's RMS calibration. */
static void gpu_rmsnorm(gres *r, int unit)
{
    float xs = D(4) / 1000.0f;
    if (!D(3)) {
        int M = g_m->bridge.soft_tokens, R = g_m->receiver.hidden;
        size_t n = (size_t)M * R;
        float *x = host_rand(n, xs), scale = 0.75f, *y = malloc(n * 4), *rstd = malloc(M * 4);
        dev_bufs b = {0};
        lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_rstd = dev_alloc(&b, M * 4), d_x = dev_floats(&b, x, n);
        lw_cuda_ptr d_scale = dev_floats(&b, &scale, 1);
        LAUNCH(lwk_rms_calibrate_forward(on(BRIDGE), &g_bks, d_y, d_rstd, d_x, d_scale, M));
        rmsnorm_forward(y, rstd, x, NULL, M, R, 1e-6f, LW_NORM_RMSNORM);
        for (size_t i = 0; i < n; i++) y[i] *= scale;
        float *gy = dev_read(d_y, n);
        compare(r, "rms_calibrate_forward", gy, y, n);
        float *dy = host_rand(n, 1), *dx = host_rand(n, 1), dscale = 0.25f, *dyn = malloc(n * 4);
        lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dscale = dev_floats(&b, &dscale, 1), d_dy = dev_floats(&b, dy, n);
        LAUNCH(lwk_rms_calibrate_backward(on(BRIDGE), &g_bks, d_dx, d_dscale, d_dy, d_x, d_rstd, d_scale, M));
        double ds = 0;
        for (size_t i = 0; i < n; i++) ds += (double)dy[i] * y[i] / scale, dyn[i] = dy[i] * scale;
        dscale += (float)ds;
        rmsnorm_backward(dx, NULL, dyn, x, NULL, rstd, M, R, LW_NORM_RMSNORM);
        float *gdx = dev_read(d_dx, n), *gds = dev_read(d_dscale, 1);
        compare(r, "rms_calibrate_backward dx", gdx, dx, n);
        compare(r, "rms_calibrate_backward dscale", gds, &dscale, 1);
        free(gy), free(gdx), free(gds), free(x), free(y), free(rstd), free(dy), free(dx), free(dyn);
        dev_free(&b);
        return;
    }
    const lw_model_config *c = model_of(unit);
    int T = D(0), H = c->hidden;
    size_t n = (size_t)T * H;
    float *x = host_rand(n, xs), *res = host_rand(n, xs), *w = host_rand(H, 0.5f);
    float *xc = host_copy(x, n), *y = malloc(n * 4), *rstd = malloc(T * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_x = dev_floats(&b, x, n), d_y = dev_alloc(&b, n * 4), d_rstd = dev_alloc(&b, T * 4);
    lw_cuda_ptr d_res = dev_floats(&b, res, n), d_w = dev_floats(&b, w, H);
    LAUNCH(lwk_residual_rmsnorm_forward(on(unit), &g_ks[unit], d_x, d_y, d_rstd, d_res, d_w, T));
    for (size_t k = 0; k < n; k++) xc[k] += res[k];
    rmsnorm_forward(y, rstd, xc, w, T, H, c->norm_eps, c->norm);
    float *gx = dev_read(d_x, n), *gy = dev_read(d_y, n), *gr = dev_read(d_rstd, T);
    compare(r, "residual_rmsnorm_forward x", gx, xc, n);
    compare(r, "residual_rmsnorm_forward y", gy, y, n);
    compare(r, "residual_rmsnorm_forward rstd", gr, rstd, T);
    float *dy = host_rand(n, 1), *dx = host_rand(n, 1), *dw = host_rand(H, 1);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, H), d_dy = dev_floats(&b, dy, n);
    LAUNCH(lwk_rmsnorm_backward(on(unit), &g_ks[unit], d_dx, d_dw, d_dy, d_x, d_w, d_rstd, T));
    rmsnorm_backward(dx, dw, dy, xc, w, rstd, T, H, c->norm);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, H);
    compare(r, "rmsnorm_backward dx", gdx, dx, n);
    compare(r, "rmsnorm_backward dw", gdw, dw, H);
    free(gx), free(gy), free(gr), free(gdx), free(gdw), free(dy), free(dx), free(dw);
    free(x), free(res), free(w), free(xc), free(y), free(rstd);
    dev_free(&b);

    int rows = T * c->n_heads, Dh = c->head_dim;
    n = (size_t)rows * Dh;
    float *q = host_rand(n, xs), *qw = host_rand(Dh, 0.5f), *qy = malloc(n * 4), *qr = malloc(rows * 4);
    lw_cuda_ptr d_qy = dev_alloc(&b, n * 4), d_qr = dev_alloc(&b, rows * 4), d_q = dev_floats(&b, q, n);
    lw_cuda_ptr d_qw = dev_floats(&b, qw, Dh);
    LAUNCH(lwk_qk_rmsnorm_forward(on(unit), &g_ks[unit], d_qy, d_qr, d_q, d_qw, rows));
    rmsnorm_forward(qy, qr, q, qw, rows, Dh, c->norm_eps, c->norm);
    float *gqy = dev_read(d_qy, n);
    compare(r, "qk_rmsnorm_forward", gqy, qy, n);
    float *qdy = host_rand(n, 1), *qdx = host_rand(n, 1), *qdw = host_rand(Dh, 1);
    lw_cuda_ptr d_qdx = dev_floats(&b, qdx, n), d_qdw = dev_floats(&b, qdw, Dh), d_qdy = dev_floats(&b, qdy, n);
    LAUNCH(lwk_qk_rmsnorm_backward(on(unit), &g_ks[unit], d_qdx, d_qdw, d_qdy, d_q, d_qw, d_qr, rows));
    rmsnorm_backward(qdx, qdw, qdy, q, qw, qr, rows, Dh, c->norm);
    float *gqdx = dev_read(d_qdx, n), *gqdw = dev_read(d_qdw, Dh);
    compare(r, "qk_rmsnorm_backward dx", gqdx, qdx, n);
    compare(r, "qk_rmsnorm_backward dw", gqdw, qdw, Dh);
    free(gqy), free(gqdx), free(gqdw), free(q), free(qw), free(qy), free(qr), free(qdy), free(qdx), free(qdw);
    dev_free(&b);
}

/* The bridge's LayerNorm (its width) and the deep prefix's (the receiver's):
 * two kernel pairs of one signature, picked by `prefix`. */
static void layernorm_pair(gres *r, bool prefix, int T, int C)
{
    const char *fwd = prefix ? "prefix_layernorm_forward" : "layernorm_forward";
    size_t n = (size_t)T * C;
    float *x = host_rand(n, 2), *w = host_rand(C, 1), *bias = host_rand(C, 1);
    float *y = malloc(n * 4), *mean = malloc(T * 4), *rstd = malloc(T * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, n * 4), d_mean = dev_alloc(&b, T * 4), d_rstd = dev_alloc(&b, T * 4);
    lw_cuda_ptr d_x = dev_floats(&b, x, n), d_w = dev_floats(&b, w, C), d_b = dev_floats(&b, bias, C);
    if (prefix) LAUNCH(lwk_prefix_layernorm_forward(on(BRIDGE), &g_bks, d_y, d_mean, d_rstd, d_x, d_w, d_b, T));
    else LAUNCH(lwk_layernorm_forward(on(BRIDGE), &g_bks, d_y, d_mean, d_rstd, d_x, d_w, d_b, T));
    layernorm_forward(y, mean, rstd, x, w, bias, T, C, 1e-5f);
    float *gy = dev_read(d_y, n);
    compare(r, fwd, gy, y, n);
    float *dy = host_rand(n, 1), *dx = host_rand(n, 1), *dw = host_rand(C, 1), *db = host_rand(C, 1);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n), d_dw = dev_floats(&b, dw, C), d_db = dev_floats(&b, db, C);
    lw_cuda_ptr d_dy = dev_floats(&b, dy, n);
    if (prefix)
        LAUNCH(lwk_prefix_layernorm_backward(on(BRIDGE), &g_bks, d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, T));
    else LAUNCH(lwk_layernorm_backward(on(BRIDGE), &g_bks, d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, T));
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, T, C);
    float *gdx = dev_read(d_dx, n), *gdw = dev_read(d_dw, C), *gdb = dev_read(d_db, C);
    compare(r, "dx", gdx, dx, n);
    compare(r, "dw", gdw, dw, C);
    compare(r, "db", gdb, db, C);
    free(gy), free(gdx), free(gdw), free(gdb), free(x), free(w), free(bias), free(y), free(mean), free(rstd);
    free(dy), free(dx), free(dw), free(db);
    dev_free(&b);
}

static void gpu_layernorm(gres *r, int unit)
{
    layernorm_pair(r, false, D(0), g_m->bridge.width);
    layernorm_pair(r, true, D(0), g_m->receiver.hidden);
}

/* rope_apply with sign +1 is rope_forward, -1 rope_backward; the case's
 * scaling flag means the model's own scaling here. */
static void gpu_rope(gres *r, int unit)
{
    const lw_model_config *c = model_of(unit);
    int T = D(0), heads = D(1), Dh = c->head_dim, scaled = D(5);
    float base = (float)D(4);
    int *pos = malloc((size_t)T * sizeof *pos);
    float *inv = malloc((size_t)Dh / 2 * sizeof *inv);
    ck_assert(pos && inv);
    for (int t = 0; t < T; t++) pos[t] = t == 0 ? 0 : t * 61 + (t == T - 1 ? 9000 : 0);
    lw_rope_scaling none = {.kind = LW_ROPE_SCALING_NONE};
    rope_inv_freq(inv, Dh, base, scaled ? &c->rope_scaling : &none);
    for (int dir = 0; dir < 2; dir++) {
        float sign = dir ? -1.f : 1.f;
        size_t n = (size_t)T * heads * Dh;
        float *x = host_rand(n, 1);
        dev_bufs b = {0};
        lw_cuda_ptr d_x = dev_floats(&b, x, n), d_pos = dev_ints(&b, pos, T);
        LAUNCH(lwk_rope_apply(on(unit), &g_ks[unit], d_x, d_pos, T, heads, base, sign, scaled, Dh));
        if (dir) rope_backward(x, pos, inv, T, heads, Dh, lw_rope_interleaved(c));
        else rope_forward(x, pos, inv, T, heads, Dh, lw_rope_interleaved(c));
        float *g = dev_read(d_x, n);
        compare(r, dir ? "rope_apply (backward)" : "rope_apply (forward)", g, x, n);
        free(g), free(x);
        dev_free(&b);
    }
    free(pos), free(inv);
}

/* Causal cases on the model units (their heads, head_dim and scale), the
 * bidirectional ones on the bridge (its heads, no offset, window or sinks). */
static void gpu_attention(gres *r, int unit)
{
    bool causal = D(5);
    int Tq = D(0), Tk = D(1), q_offset = D(6), window = D(7), n_sink = D(8), Hq, Hkv, Dh;
    float scale;
    if (unit == BRIDGE) {
        Hq = Hkv = g_m->bridge.heads, Dh = g_m->bridge.width / g_m->bridge.heads, scale = 1.f / sqrtf((float)Dh);
    } else {
        const lw_model_config *c = model_of(unit);
        Hq = c->n_heads, Hkv = c->n_kv_heads, Dh = c->head_dim;
        scale = c->query_scale > 0 ? c->query_scale : 1.f / sqrtf((float)Dh);
    }
    const char *fwd = unit == BRIDGE ? "bridge_attention_forward" : "attention_forward";
    size_t nq = (size_t)Tq * Hq * Dh, nk = (size_t)Tk * Hkv * Dh;
    float *q = host_rand(nq, 1.5f), *k = host_rand(nk, 1.5f), *v = host_rand(nk, 1);
    float *out = malloc(nq * 4), *att = malloc((size_t)Hq * Tq * Tk * 4);
    lw_attention_params p = {causal, q_offset, window, scale};
    dev_bufs b = {0};
    lw_cuda_ptr d_out = dev_alloc(&b, nq * 4), d_lse = dev_alloc(&b, (size_t)Hq * Tq * 4);
    lw_cuda_ptr d_q = dev_floats(&b, q, nq), d_k = dev_floats(&b, k, nk), d_v = dev_floats(&b, v, nk);
    if (unit == BRIDGE) LAUNCH(lwk_bridge_attention_forward(on(unit), &g_bks, d_out, d_lse, d_q, d_k, d_v, Tq, Tk, Hq));
    else
        LAUNCH(lwk_attention_forward(on(unit), &g_ks[unit], d_out, d_lse, d_q, d_k, d_v, Tq, Tk, q_offset, window,
                                     n_sink, Hq));
    attention_forward_sink(out, att, q, k, v, Tq, Tk, Hq, Hkv, Dh, &p, n_sink);
    float *g = dev_read(d_out, nq);
    compare(r, fwd, g, out, nq);
    float *dout = host_rand(nq, 1), *dq = host_rand(nq, 1), *dk = host_rand(nk, 1), *dv = host_rand(nk, 1);
    lw_cuda_ptr d_dq = dev_floats(&b, dq, nq), d_dk = dev_floats(&b, dk, nk), d_dv = dev_floats(&b, dv, nk);
    lw_cuda_ptr d_dout = dev_floats(&b, dout, nq);
    if (unit == BRIDGE)
        LAUNCH(lwk_bridge_attention_backward(on(unit), &g_bks, d_dq, d_dk, d_dv, d_dout, d_out, d_lse, d_q, d_k, d_v,
                                             Tq, Tk, Hq));
    else
        LAUNCH(lwk_attention_backward(on(unit), &g_ks[unit], d_dq, d_dk, d_dv, d_dout, d_out, d_lse, d_q, d_k, d_v, Tq,
                                      Tk, q_offset, window, n_sink, Hq));
    float *dq0 = host_copy(dq, nq), *dk0 = host_copy(dk, nk), *dv0 = host_copy(dv, nk);
    attention_backward_sink(dq, dk, dv, dout, att, q, k, v, Tq, Tk, Hq, Hkv, Dh, &p, n_sink);
    float *gdq = dev_read(d_dq, nq), *gdk = dev_read(d_dk, nk), *gdv = dev_read(d_dv, nk);
    compare(r, "dq", gdq, dq, nq);
    compare(r, "dk", gdk, dk, nk);
    compare(r, "dv", gdv, dv, nk);
    free(g), free(gdq), free(gdk), free(gdv);
    /* Packed segments' kernels (plan_cuda.c) on the same case as one segment
     * after q_offset head keys: the same op, so the same results
     * (check_kernels_gpu.c holds several segments to the CPU's gather). */
    if (unit != BRIDGE && causal && Tk == q_offset + Tq) {
        int *starts = calloc((size_t)Tq, sizeof *starts);
        ck_assert_ptr_nonnull(starts);
        lw_cuda_ptr d_seg = dev_ints(&b, starts, (size_t)Tq), d_out2 = dev_alloc(&b, nq * 4);
        lw_cuda_ptr d_lse2 = dev_alloc(&b, (size_t)Hq * Tq * 4);
        lw_cuda_ptr d_dq2 = dev_floats(&b, dq0, nq), d_dk2 = dev_floats(&b, dk0, nk), d_dv2 = dev_floats(&b, dv0, nk);
        LAUNCH(lwk_attention_varlen_forward(on(unit), &g_ks[unit], d_out2, d_lse2, d_q, d_k, d_v, d_seg, Tq, q_offset,
                                            window, n_sink, Hq));
        LAUNCH(lwk_attention_varlen_backward(on(unit), &g_ks[unit], d_dq2, d_dk2, d_dv2, d_dout, d_out2, d_lse2, d_q,
                                             d_k, d_v, d_seg, Tq, q_offset, window, n_sink, Hq));
        g = dev_read(d_out2, nq), gdq = dev_read(d_dq2, nq), gdk = dev_read(d_dk2, nk), gdv = dev_read(d_dv2, nk);
        compare(r, "attention_varlen_forward", g, out, nq);
        compare(r, "attention_varlen_backward dq", gdq, dq, nq);
        compare(r, "attention_varlen_backward dk", gdk, dk, nk);
        compare(r, "attention_varlen_backward dv", gdv, dv, nk);
        free(g), free(gdq), free(gdk), free(gdv), free(starts);
    }
    free(q), free(k), free(v), free(out), free(att);
    free(dout), free(dq), free(dk), free(dv), free(dq0), free(dk0), free(dv0);
    dev_free(&b);
}

/* The device's label log-probs (gpu_receiver_pass.c's scoring): the head's
 * product is cuBLAS's (tests/check_cuda_blas.c), so here its logits come
 * from the CPU and each pair's row goes through cross_entropy_forward_backward
 * without a gradient: -loss is log p(id | row), held to head_logsoftmax_forward.
 * V is the unit's vocabulary (the kernel bakes it in), T, H and the pairs the case's. */
static void gpu_head_logsoftmax(gres *r, int unit)
{
    const lw_model_config *c = model_of(unit);
    int T = D(0), H = D(1), V = c->vocab, n = D(3);
    float *x = host_rand((size_t)T * H, 1), *w = host_rand((size_t)V * H, 1), *logits = malloc((size_t)T * V * 4);
    float *logp = malloc((size_t)n * 4), *lse = malloc((size_t)T * 4);
    float *scratch = malloc((size_t)HEAD_SUM_ROWS * HEAD_BLOCK * 4);
    float *rows = malloc((size_t)n * V * 4);
    int *pair_row = malloc((size_t)n * sizeof(int)), *pair_id = malloc((size_t)n * sizeof(int));
    ck_assert(logits && logp && lse && scratch && rows && pair_row && pair_id);
    for (int k = 0; k < n; k++) {   /* op_list.h's rule for the pairs */
        pair_row[k] = n > T && T == 2 ? 0 : k % T;
        pair_id[k] = k == n - 1 ? V - 1 : (7 * k + 3) % V;
    }
    head_logsoftmax_forward(logp, lse, x, w, T, H, V, pair_row, pair_id, n, scratch);
    matmul_forward(logits, x, w, NULL, T, H, V);
    for (int k = 0; k < n; k++) memcpy(rows + (size_t)k * V, logits + (size_t)pair_row[k] * V, (size_t)V * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_rows = dev_floats(&b, rows, (size_t)n * V), d_loss = dev_alloc(&b, (size_t)n * 4);
    lw_cuda_ptr d_ids = dev_ints(&b, pair_id, (size_t)n);
    LAUNCH(lwk_cross_entropy_forward_backward(on(unit), &g_ks[unit], 0, d_loss, d_rows, d_ids, n, 0.f));
    float *loss = dev_read(d_loss, n);
    for (int k = 0; k < n; k++) loss[k] = -loss[k];
    compare(r, "cross_entropy_forward_backward as label log-probs", loss, logp, (size_t)n);
    free(loss), free(x), free(w), free(logits), free(logp), free(lse), free(scratch), free(rows), free(pair_row);
    free(pair_id);
    dev_free(&b);
}

static void gpu_glu(gres *r, int unit)
{
    const lw_model_config *c = model_of(unit);
    int n = D(0);
    float *gate = host_rand(n, 4), *up = host_rand(n, 2), *out = malloc((size_t)n * 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_out = dev_alloc(&b, (size_t)n * 4), d_gate = dev_floats(&b, gate, n), d_up = dev_floats(&b, up, n);
    LAUNCH(lwk_glu_forward(on(unit), &g_ks[unit], d_out, d_gate, d_up, n));
    glu_forward(out, gate, up, n, c->activation);
    float *g = dev_read(d_out, n);
    compare(r, "glu_forward", g, out, n);
    float *dout = host_rand(n, 1), *dgate = host_rand(n, 1), *dup = host_rand(n, 1);
    lw_cuda_ptr d_dgate = dev_floats(&b, dgate, n), d_dup = dev_floats(&b, dup, n), d_dout = dev_floats(&b, dout, n);
    LAUNCH(lwk_glu_backward(on(unit), &g_ks[unit], d_dgate, d_dup, d_dout, d_gate, d_up, n));
    glu_backward(dgate, dup, dout, gate, up, n, c->activation);
    float *gdg = dev_read(d_dgate, n), *gdu = dev_read(d_dup, n);
    compare(r, "glu_backward dgate", gdg, dgate, n);
    compare(r, "glu_backward dup", gdu, dup, n);
    free(g), free(gdg), free(gdu), free(gate), free(up), free(out), free(dout), free(dgate), free(dup);
    dev_free(&b);
}

static void gpu_gelu(gres *r, int unit)
{
    int n = D(0);
    float *x = host_rand(n, 4), *y = malloc((size_t)n * 4), *dy = host_rand(n, 1), *dx = host_rand(n, 1);
    dev_bufs b = {0};
    lw_cuda_ptr d_y = dev_alloc(&b, (size_t)n * 4), d_x = dev_floats(&b, x, n), d_dy = dev_floats(&b, dy, n);
    lw_cuda_ptr d_dx = dev_floats(&b, dx, n);
    LAUNCH(lwk_gelu_forward(on(BRIDGE), &g_bks, d_y, d_x, n));
    LAUNCH(lwk_gelu_backward(on(BRIDGE), &g_bks, d_dx, d_dy, d_x, n));
    gelu_tanh_forward(y, x, n);
    gelu_tanh_backward(dx, dy, x, n);
    float *gy = dev_read(d_y, n), *gdx = dev_read(d_dx, n);
    compare(r, "gelu_forward", gy, y, n);
    compare(r, "gelu_backward", gdx, dx, n);
    free(gy), free(gdx), free(x), free(y), free(dy), free(dx);
    dev_free(&b);
}

/* The kernel writes per-row losses and dlogits += dloss (p - onehot); the
 * CPU op averages over the scored rows, so the kernel gets dloss 1 / count. */
static void gpu_cross_entropy(gres *r, int unit)
{
    const lw_model_config *c = model_of(unit);
    int T = D(0), V = c->vocab, count = 0;
    size_t n = (size_t)T * V;
    int *targets = malloc((size_t)T * sizeof *targets);
    ck_assert_ptr_nonnull(targets);
    for (int t = 0; t < T; t++) targets[t] = t % 3 == 1 ? -1 : (3 * t) % V, count += targets[t] >= 0;
    float *logits = host_rand(n, 3), *probs = malloc(n * 4), *dlogits = calloc(n, 4);
    dev_bufs b = {0};
    lw_cuda_ptr d_dl = dev_alloc(&b, n * 4), d_loss = dev_alloc(&b, T * 4), d_logits = dev_floats(&b, logits, n);
    lw_cuda_ptr d_t = dev_ints(&b, targets, T);
    float dloss = 1.f / (float)count;
    LAUNCH(lwk_cross_entropy_forward_backward(on(unit), &g_ks[unit], d_dl, d_loss, d_logits, d_t, T, dloss));
    float mean = cross_entropy_forward(probs, logits, targets, T, V);
    cross_entropy_backward(dlogits, probs, targets, T, V, 1.f);
    float *loss = dev_read(d_loss, T), *gdl = dev_read(d_dl, n);
    double sum = 0;
    for (int t = 0; t < T; t++) {
        if (targets[t] >= 0) sum += loss[t];
        else if (loss[t] != 0.f && !r->failed++)
            snprintf(r->msg, sizeof r->msg, "%s: a row with target -1 got loss %g", r->c->label, (double)loss[t]);
    }
    float gpu_mean = (float)(sum / count);
    compare(r, "cross_entropy_forward_backward loss", &gpu_mean, &mean, 1);
    compare(r, "cross_entropy_forward_backward dlogits", gdl, dlogits, n);
    free(loss), free(gdl), free(logits), free(probs), free(dlogits), free(targets);
    dev_free(&b);
}

#undef D

typedef void (*gpu_driver)(gres *, int unit);

/* By op id: an op whose kernels column names kernels must have one. */
static const gpu_driver GPU_DRIVERS[LW_OPL_COUNT] = {
    [LW_OPL_EMBEDDING] = gpu_embedding, [LW_OPL_RMSNORM] = gpu_rmsnorm, [LW_OPL_LAYERNORM] = gpu_layernorm,
    [LW_OPL_ROPE] = gpu_rope,           [LW_OPL_ATTENTION] = gpu_attention, [LW_OPL_GLU] = gpu_glu,
    [LW_OPL_GELU_TANH] = gpu_gelu,      [LW_OPL_CROSS_ENTROPY] = gpu_cross_entropy,
    [LW_OPL_HEAD_LOGSOFTMAX] = gpu_head_logsoftmax,
};

START_TEST(op_kernels_against_cpu)
{
    const op_entry *e = &OPS[_i];
    if (!op_has_kernels(e)) {
        printf("%-15s %-8s  no kernel of ours: %s\n", e->name, "-", e->kernels);
        return;
    }
    ck_assert_msg(GPU_DRIVERS[_i] != NULL, "%s names kernels (%s) but has no driver in check_backend_ops_gpu.c",
                  e->name, e->kernels);
    int total = 0, failures = 0;
    char first[500] = "";
    for (int unit = 0; unit < N_UNITS; unit++) {
        gres sum = {.e = e};
        for (int ci = 0; ci < N_CASES; ci++) {
            if (CASES[ci].op != _i) continue;
            lw_rng_seed(&g_rng, 2000 + (uint64_t)ci);
            gres r = {.e = e, .c = &CASES[ci]};
            if (!gpu_applies(&CASES[ci], unit)) {
                sum.skipped++;
                continue;
            }
            GPU_DRIVERS[_i](&r, unit);
            sum.ran++;
            sum.share = fmax(sum.share, r.share);
            sum.max_err = fmax(sum.max_err, r.max_err);
            if (r.failed && !sum.failed++) snprintf(sum.msg, sizeof sum.msg, "%s", r.msg);
        }
        if (!sum.ran) continue;
        total += sum.ran;
        printf("%-15s %-8s %5d %7d %8.3f %10.2e  %s\n", e->name, unit_name[unit], sum.ran, sum.skipped, sum.share,
               sum.max_err, sum.failed ? "FAIL" : "pass");
        fflush(stdout);
        if (sum.failed && !failures++) snprintf(first, sizeof first, "%s on the %s unit: %s", e->name, unit_name[unit], sum.msg);
    }
    ck_assert_msg(total > 0, "%s: no case of op_list.h applies to any unit of the default pair", e->name);
    ck_assert_msg(!failures, "%s", first);
}
END_TEST

/* Runs last: every kernel named in a kernels column was launched above. */
START_TEST(every_listed_kernel_was_launched)
{
    for (int op = 0; op < LW_OPL_COUNT; op++) {
        char name[64];
        for (int k = 0; op_kernel(&OPS[op], k, name, sizeof name); k++) {
            bool seen = false;
            for (int i = 0; i < g_n_seen; i++) seen |= strcmp(g_seen[i], name) == 0;
            ck_assert_msg(seen, "kernel %s of %s was not launched by any case", name, OPS[op].name);
        }
    }
}
END_TEST

/* ---- setup: generate (no device needed), then compile and load ---------- */

/* Before any device: an op whose column names kernels has a driver and a
 * case that runs on some unit of the default pair. */
static bool every_op_has_a_case_on_some_unit(void)
{
    bool ok = true;
    for (int op = 0; op < LW_OPL_COUNT; op++) {
        if (!op_has_kernels(&OPS[op])) continue;
        int runs = 0;
        for (int ci = 0; ci < N_CASES; ci++)
            for (int u = 0; u < N_UNITS && CASES[ci].op == op; u++) runs += gpu_applies(&CASES[ci], u);
        if (!GPU_DRIVERS[op] || !runs) {
            fprintf(stderr, "check_backend_ops_gpu: %s names kernels (%s) but has %s\n", OPS[op].name,
                    OPS[op].kernels, GPU_DRIVERS[op] ? "no case that runs on a unit of the default pair" : "no driver");
            ok = false;
        }
    }
    return ok;
}

static lw_status generate(char *src[N_UNITS])
{
    g_m = calloc(1, sizeof *g_m);
    if (!g_m) return lw_fail(LW_ERR_NOMEM, "out of memory");
    lw_status st = lw_manifest_load(tl_src("pairs/smollm2-135m_to_gemma3-270m.json"), g_m);
    if (st) return st;
    for (int u = 0; u < N_UNITS; u++) {
        lw_strbuf sb = {0};
        st = u == BRIDGE ? lw_gen_bridge_kernels(tl_src("templates"), g_m, &sb)
                         : lw_gen_model_kernels(tl_src("templates"), model_of(u), g_m->bridge.soft_tokens, &sb);
        if (!st && sb.failed) st = lw_fail(LW_ERR_NOMEM, "out of memory generating the %s kernels", unit_name[u]);
        if (st) {
            lw_sb_free(&sb);
            return st;
        }
        src[u] = sb.data;
    }
    return LW_OK;
}

static lw_status load(char *src[N_UNITS])
{
    int arch = lw_cuda_arch(&g_cu);
    fprintf(stderr, "GPU: %s, sm_%d; NVRTC %s\n", g_cu.name, arch, lw_nvrtc_version());
    for (int u = 0; u < N_UNITS; u++) {
        unsigned char *image = NULL;
        size_t size = 0;
        char file[64];
        snprintf(file, sizeof file, "kernels_%s.cu", unit_name[u]);
        lw_status st = lw_nvrtc_compile(src[u], file, arch, &image, &size);
        if (st) return st;
        st = lw_cuda_load_image(&g_cu, unit_name[u], arch, image, &g_mod[u]);
        free(image);
        if (st) return st;
        g_loaded[u] = true;
        st = u == BRIDGE ? lw_bridge_kernels_find(&g_cu, &g_mod[u], &g_bks)
                         : lw_model_kernels_find(&g_cu, &g_mod[u], &g_ks[u]);
        if (st) return st;
    }
    return LW_OK;
}

int main(void)
{
    char *src[N_UNITS] = {0};
    int rc = 0;
    if (generate(src) != LW_OK) {
        fprintf(stderr, "check_backend_ops_gpu: cannot generate the kernels: %s\n", lw_last_error());
        rc = 1;
    } else if (!every_op_has_a_case_on_some_unit()) {
        rc = 1;
    } else if (lw_cuda_init(&g_cu, 0) != LW_OK) {
        /* not a failure: make check-gpu is for machines with a GPU */
        printf("check_backend_ops_gpu: no CUDA device (%s): skipped; would run (op: case x unit runs):",
               lw_last_error());
        for (int op = 0; op < LW_OPL_COUNT; op++) {
            int runs = 0;
            for (int ci = 0; ci < N_CASES; ci++)
                for (int u = 0; u < N_UNITS && CASES[ci].op == op; u++) runs += gpu_applies(&CASES[ci], u);
            if (op_has_kernels(&OPS[op])) printf(" %s %d", OPS[op].name, runs);
        }
        printf("\n");
    } else if (load(src) != LW_OK) {
        fprintf(stderr, "check_backend_ops_gpu: cannot run: %s\n", lw_last_error());
        rc = 1;
    } else {
        printf("backend ops on CUDA (tests/gpu/check_backend_ops_gpu.c; err/tol: worst |gpu - cpu| as a share of "
               "its tolerance)\n%-15s %-8s %5s %7s %8s %10s  %s\n",
               "op", "unit", "cases", "skipped", "err/tol", "max|err|", "result");
        fflush(stdout);
        Suite *s = suite_create("backend_ops_gpu");
        TCase *tc = tcase_create("ops");
        tcase_set_timeout(tc, 300);
        tcase_add_loop_test(tc, op_kernels_against_cpu, 0, LW_OPL_COUNT);
        tcase_add_test(tc, every_listed_kernel_was_launched);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_set_fork_status(sr, CK_NOFORK); /* a CUDA context does not survive fork() */
        srunner_run_all(sr, CK_NORMAL);
        rc = srunner_ntests_failed(sr) == 0 ? 0 : 1;
        srunner_free(sr);
        for (int u = 0; u < N_UNITS; u++)
            if (g_loaded[u]) lw_cuda_unload(&g_cu, &g_mod[u]);
        lw_cuda_close(&g_cu);
    }
    for (int u = 0; u < N_UNITS; u++) free(src[u]);
    free(g_m);
    return rc;
}
