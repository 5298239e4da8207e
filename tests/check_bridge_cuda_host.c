/* The CUDA executor of the bridge's plan (runtime/model/bridge_cuda.c) and
 * AdamW on the device (runtime/model/adamw_cuda.c), run on the CPU over the
 * host twin of the launch layer (tests/twin/twin.h: each typed launcher
 * calls its kernel's C twin, tests/twin/bridge_twins.c; cuBLAS is a CPU
 * loop), against the CPU executor (runtime/bridge/bridge_exec.c, through
 * lw_bridge_forward / lw_bridge_backward) and runtime/ops/adamw.c. What
 * this holds is the executor's orchestration (op order, offsets, which
 * kernel for which record, zeroed gradients, the weight table); the
 * executor and its kernels run on a device in tests/gpu/check_bridge_gpu.c
 * (the same comparison, tests/testlib/bridge_rig.c).
 *
 * Bridges: the perceiver (2 blocks) with and without the RMS calibration,
 * and the mlp and linear ablations, S 12, width 8, 2 heads, M 3, R 10, over
 * T = 7 context rows (an arena laid out for 9), every parameter random, the
 * input_norm buffers random with one std of 0 (the floor, under a
 * near-constant input dimension) and one dimension offset by 40 (a
 * "massive activation"); and the default pair's bridge at its real shapes
 * (576 -> 256 x 2 blocks -> 16 x 640, T 40 of 64). Checked: the soft tokens within
 * 1e-4 x max(1, max |cpu|), then, after backward from
 * a random dOUT, every tensor's gradient and dx within 1e-3 x max |cpu| of
 * that tensor (products summed in another order, attention through its
 * log-sum-exp where the CPU keeps probabilities; the largest seen, 1.1e-4,
 * on a gradient far smaller than the others, through a nearly saturated
 * attention; TL_BRIDGE_VERBOSE=1 prints each tensor's). Planted errors: the
 * cross-attention's q and k weights swapped in the executor's plan (the
 * forward differs), and one ZERO_DIN flag cleared (a gradient differs).
 *
 * AdamW: 3 steps over 1000 random parameters in 3 spans of different
 * weight decays, the gradient clipped at a norm it exceeds, then at 0 (no
 * clip) and at one it is within: the twin's parameters, moments and
 * clipped gradients equal the CPU's bit for bit (the same float operations
 * in the same order; the norm's double sum in the same order). */
#include "testlib.h"
#include "adamw.h"
#include "adamw_cuda.h"
#include "bridge.h"
#include "bridge_cuda.h"
#include "bridge_rig.h"
#include "rng.h"
#include "twin/twin.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

enum { S = 12, D = 8, HEADS = 2, M = 3, DEPTH = 2, R = 10, T = 7, MAX_T = 9 };

static lw_cuda g_cu;       /* the twin's: nothing to open */
static lw_cublas g_blas;
static lw_bridge_kernels g_bks;

static float *dev(lw_cuda_ptr p) { return (float *)(uintptr_t)p; }

static lw_bridge_config config(int variant)
{
    lw_bridge_config c = {0};
    c.kind = variant == 2 ? LW_BRIDGE_MLP : variant == 3 ? LW_BRIDGE_LINEAR : LW_BRIDGE_PERCEIVER;
    c.soft_tokens = M, c.source_layer = 1, c.width = D, c.depth = DEPTH, c.heads = HEADS, c.ffn_mult = 2;
    c.calibration = variant == 1 ? LW_CALIB_NONE : LW_CALIB_RMS;
    return c;
}

static void fill_normal(float *x, size_t n, double std, lw_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * lw_rng_normal(rng));
}

/* One variant's bridge, inputs, CPU result and twin device side. */
typedef struct {
    lw_bridge b;
    float x[T * S], dout[M * R];
    tl_bridge_cpu c;
    tl_bridge_dev d;
} setup;

static void open_setup(setup *u, int variant)
{
    lw_bridge_config c = config(variant);
    tl_bridge_random(&u->b, &c, S, R, 7 + (uint64_t)variant);
    tl_bridge_rows(&u->b, u->x, T, 99);
    lw_rng rng;
    lw_rng_seed(&rng, 98);
    fill_normal(u->dout, M * R, 1.0, &rng);
    tl_bridge_cpu_run(&u->b, u->x, T, MAX_T, u->dout, &u->c);
    tl_bridge_dev_open(&u->d, &u->b, MAX_T, &g_cu, &g_blas, &g_bks);
    lw_twin_set_bridge(D, HEADS, M, R, c.calibration == LW_CALIB_RMS);
}

static void close_setup(setup *u)
{
    tl_bridge_dev_close(&u->d);
    tl_bridge_cpu_free(&u->c);
    lw_bridge_free(&u->b);
}

/* The soft tokens; the gradients (a small one, through a nearly saturated
 * attention, sums terms that cancel: its error is relative to less). */
static const double TOL = 1e-4, GRAD_TOL = 1e-3;

/* The default pair's bridge at its real shapes (SmolLM2's 576 -> width 256,
 * 2 blocks of 4 heads of 64, FFN 1024, 16 soft tokens -> Gemma 3's 640),
 * random weights, over 40 context rows of an arena for 64: the offsets and
 * strides at sizes the tiny bridges above do not reach. */
START_TEST(default_pair_shapes_match_the_cpu)
{
    enum { BS = 576, BR = 640, BM = 16, BT = 40, BMAX = 64 };
    lw_bridge_config c = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = BM, .source_layer = 20, .width = 256,
                          .depth = 2, .heads = 4, .ffn_mult = 4, .calibration = LW_CALIB_RMS};
    lw_bridge b;
    tl_bridge_random(&b, &c, BS, BR, 11);
    float *x = malloc(sizeof(float) * BT * BS), *dout = malloc(sizeof(float) * BM * BR);
    ck_assert(x && dout);
    tl_bridge_rows(&b, x, BT, 12);
    lw_rng rng;
    lw_rng_seed(&rng, 13);
    fill_normal(dout, BM * BR, 1.0, &rng);
    tl_bridge_cpu cpu;
    tl_bridge_cpu_run(&b, x, BT, BMAX, dout, &cpu);
    tl_bridge_dev d;
    tl_bridge_dev_open(&d, &b, BMAX, &g_cu, &g_blas, &g_bks);
    lw_twin_set_bridge(256, 4, BM, BR, true);
    lw_bridge_cuda_sizes sz = {256, 4, BM, BR, true};
    OK(lw_bridge_cuda_check(&d.plan, &sz));
    double fwd, bwd;
    char worst[96];
    tl_bridge_dev_compare(&d, &b, x, BT, dout, &cpu, &fwd, &bwd, worst, sizeof worst);
    ck_assert_msg(fwd <= TOL, "soft tokens differ by %g of their scale", fwd);
    ck_assert_msg(bwd <= GRAD_TOL, "gradient %s differs by %g of its scale", worst, bwd);
    tl_bridge_dev_close(&d);
    tl_bridge_cpu_free(&cpu);
    lw_bridge_free(&b);
    free(x), free(dout);
}
END_TEST

/* _i: 0 perceiver + RMS calibration, 1 perceiver uncalibrated, 2 mlp, 3 linear */
START_TEST(bridge_plan_matches_the_cpu)
{
    setup u;
    open_setup(&u, _i);
    lw_twin_count = (lw_twin_counts){0};
    double fwd, bwd;
    char worst[96];
    tl_bridge_dev_compare(&u.d, &u.b, u.x, T, u.dout, &u.c, &fwd, &bwd, worst, sizeof worst);
    ck_assert_msg(fwd <= TOL, "variant %d: soft tokens differ by %g of their scale", _i, fwd);
    ck_assert_msg(bwd <= GRAD_TOL, "variant %d: gradient %s differs by %g of its scale", _i, worst, bwd);
    /* the walk ran through the twin launchers and products, the new records included */
    ck_assert_int_gt(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("standardise_forward")], 0);
    ck_assert_int_gt(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("standardise_backward")], 0);
    ck_assert_int_eq(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("rms_calibrate_backward")] > 0,
                     _i != 1);
    ck_assert_int_eq(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("mean_rows_backward")] > 0, _i >= 2);
    ck_assert_int_eq(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("bridge_attention_backward")] > 0,
                     _i < 2);
    ck_assert_int_gt(lw_twin_count.products, 0);

    /* without dx: none written, the same parameter gradients */
    lw_bridge_cuda *e = &u.d.x;
    OK(lw_cuda_memset0(&g_cu, e->grads, u.b.n_params * sizeof(float), "grads"));
    float *dx = dev(lw_bridge_cuda_grad(e, LW_BG_DX));
    for (int i = 0; i < T * S; i++) dx[i] = 123.0f;
    memcpy(dev(lw_bridge_cuda_grad(e, LW_BG_DOUT)), u.dout, sizeof u.dout);
    OK(lw_bridge_cuda_backward(e, T, false));
    for (int i = 0; i < T * S; i++) ck_assert_float_eq(dx[i], 123.0f);
    ck_assert_double_le(tl_bridge_rel_err(dev(e->grads) + u.b.out_w, u.c.grads + u.b.out_w, (size_t)M * R, 1e-6),
                        GRAD_TOL);

    /* rows outside the arena are refused */
    ck_assert_int_eq(lw_bridge_cuda_forward(e, MAX_T + 1), LW_ERR_INVALID);
    ck_assert_int_eq(lw_bridge_cuda_forward(e, 0), LW_ERR_INVALID);
    close_setup(&u);
}
END_TEST

/* Planted errors: the check above catches a wrong weight and a missing zeroing. */
START_TEST(planted_errors_are_caught)
{
    setup u;
    open_setup(&u, 0);
    lw_bridge_plan *p = &u.d.plan;
    double fwd, bwd;
    char worst[96];
    int q = -1, k = -1, sq = -1;
    for (int i = 0; i < p->n_ops; i++) {
        if (p->ops[i].w == LW_BW_CROSS_Q) q = i;
        if (p->ops[i].w == LW_BW_CROSS_K) k = i;
        if (p->ops[i].w == LW_BW_SELF_Q) sq = i;
    }
    ck_assert(q >= 0 && k >= 0 && sq >= 0);
    p->ops[q].w = LW_BW_CROSS_K, p->ops[k].w = LW_BW_CROSS_Q;
    tl_bridge_dev_compare(&u.d, &u.b, u.x, T, u.dout, &u.c, &fwd, &bwd, worst, sizeof worst);
    ck_assert_msg(fwd > 100 * TOL, "q and k swapped: the forward still matches (%g)", fwd);
    p->ops[q].w = LW_BW_CROSS_Q, p->ops[k].w = LW_BW_CROSS_K;
    tl_bridge_dev_compare(&u.d, &u.b, u.x, T, u.dout, &u.c, &fwd, &bwd, worst, sizeof worst);
    ck_assert_double_le(fwd, TOL);
    ck_assert_double_le(bwd, GRAD_TOL);
    /* the self-attention's q projection accumulates into dn instead of setting it */
    ck_assert(p->ops[sq].flags & LW_PLAN_ZERO_DIN);
    p->ops[sq].flags &= ~(unsigned)LW_PLAN_ZERO_DIN;
    tl_bridge_dev_compare(&u.d, &u.b, u.x, T, u.dout, &u.c, &fwd, &bwd, worst, sizeof worst);
    ck_assert_double_le(fwd, TOL);
    ck_assert_msg(bwd > 10 * GRAD_TOL, "a missing zeroing: the gradients still match (%g, %s)", bwd, worst);
    close_setup(&u);
}
END_TEST

START_TEST(sizes_the_kernels_lack_are_refused)
{
    lw_bridge b;
    lw_bridge_config c = config(0);
    tl_bridge_random(&b, &c, S, R, 7);
    lw_bridge_plan p;
    OK(lw_bridge_plan_lower(&b.cfg, S, R, &p));
    lw_bridge_cuda_sizes sz = {D, HEADS, M, R, true};
    OK(lw_bridge_cuda_check(&p, &sz));
    lw_bridge_cuda_sizes wrong[] = {{D * 2, HEADS, M, R, true}, {D, HEADS * 2, M, R, true},
                                    {D, HEADS, M + 1, R, true}, {D, HEADS, M, R, false}};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
        ck_assert_int_eq(lw_bridge_cuda_check(&p, &wrong[i]), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "calibration"), "%s", lw_last_error());
    lw_bridge_free(&b);
    c = config(1);   /* uncalibrated: kernels built for the calibration are refused */
    tl_bridge_random(&b, &c, S, R, 7);
    OK(lw_bridge_plan_lower(&b.cfg, S, R, &p));
    ck_assert_int_eq(lw_bridge_cuda_check(&p, &sz), LW_ERR_UNSUPPORTED);
    sz.calibrate_rms = false;
    OK(lw_bridge_cuda_check(&p, &sz));
    lw_bridge_free(&b);
}
END_TEST

/* ---- AdamW ---------------------------------------------------------------- */

enum { N_PARAMS = 1000 };

/* _i: the clip's max_norm: 0 above the norm's reach (clips), 1 none (0), 2 one the norm is within */
START_TEST(adamw_matches_the_cpu_bit_for_bit)
{
    static const float MAX_NORM[] = {1.0f, 0.0f, 1e6f};
    const lw_adamw_span spans[] = {{0, 300, 0.01f}, {300, 200, 0.0f}, {500, 500, 0.1f}};
    lw_rng rng;
    lw_rng_seed(&rng, 5);
    float *p = malloc(N_PARAMS * sizeof *p), *g = malloc(N_PARAMS * sizeof *g);
    fill_normal(p, N_PARAMS, 0.5, &rng);
    lw_adamw cpu;
    OK(lw_adamw_init(&cpu, N_PARAMS, lw_adamw_defaults()));
    lw_adamw_cuda d = {.cu = &g_cu, .k = &g_bks, .n = N_PARAMS};
    OK(lw_cuda_alloc(&g_cu, N_PARAMS * sizeof(float), "p", &d.params));
    OK(lw_cuda_alloc(&g_cu, N_PARAMS * sizeof(float), "g", &d.grads));
    OK(lw_cuda_alloc(&g_cu, N_PARAMS * sizeof(float), "m", &d.m));
    OK(lw_cuda_alloc(&g_cu, N_PARAMS * sizeof(float), "v", &d.v));
    OK(lw_cuda_alloc(&g_cu, sizeof(double), "sumsq", &d.sumsq));
    memcpy(dev(d.params), p, N_PARAMS * sizeof *p);
    lw_twin_set_bridge(D, HEADS, M, R, true);
    lw_twin_count = (lw_twin_counts){0};
    for (int step = 1; step <= 3; step++) {
        fill_normal(g, N_PARAMS, 0.2, &rng);   /* norm ~ 6: above 1, within 1e6 */
        memcpy(dev(d.grads), g, N_PARAMS * sizeof *g);
        float lr = 1e-2f * (float)step;
        double norm = lw_clip_grad_norm(g, N_PARAMS, MAX_NORM[_i]);
        lw_adamw_begin_step(&cpu);
        for (size_t s = 0; s < 3; s++)
            lw_adamw_update(&cpu, p, g, spans[s].offset, spans[s].count, lr, spans[s].weight_decay);
        OK(lw_adamw_cuda_step(&d, spans, 3, cpu.cfg, cpu.step, lr, MAX_NORM[_i]));
        double dnorm;
        OK(lw_adamw_cuda_norm(&d, &dnorm));
        ck_assert_msg(dnorm == norm, "step %d: norm %.17g on the device, %.17g on the CPU", step, dnorm, norm);
        ck_assert_msg(!memcmp(dev(d.grads), g, N_PARAMS * sizeof *g), "step %d: clipped gradients differ", step);
        ck_assert_msg(!memcmp(dev(d.m), cpu.m, N_PARAMS * sizeof *g), "step %d: first moments differ", step);
        ck_assert_msg(!memcmp(dev(d.v), cpu.v, N_PARAMS * sizeof *g), "step %d: second moments differ", step);
        ck_assert_msg(!memcmp(dev(d.params), p, N_PARAMS * sizeof *g), "step %d: parameters differ", step);
    }
    ck_assert_int_eq(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("adamw_clip_step")], 9);
    ck_assert_int_eq(lw_twin_count.by_bridge_kernel[lw_twin_bridge_kernel_index("grad_sumsq")], 3);
    /* a planted error: one span's weight decay changed, the parameters differ */
    lw_adamw_span bad[3] = {spans[0], spans[1], spans[2]};
    bad[1].weight_decay = 0.01f;
    fill_normal(g, N_PARAMS, 0.2, &rng);
    memcpy(dev(d.grads), g, N_PARAMS * sizeof *g);
    lw_clip_grad_norm(g, N_PARAMS, MAX_NORM[_i]);
    lw_adamw_begin_step(&cpu);
    for (size_t s = 0; s < 3; s++)
        lw_adamw_update(&cpu, p, g, spans[s].offset, spans[s].count, 1e-2f, spans[s].weight_decay);
    OK(lw_adamw_cuda_step(&d, bad, 3, cpu.cfg, cpu.step, 1e-2f, MAX_NORM[_i]));
    ck_assert(memcmp(dev(d.params), p, N_PARAMS * sizeof *g) != 0);
    /* refusals: a span outside the buffer, a step before the first */
    lw_adamw_span out[1] = {{900, 200, 0.f}};
    ck_assert_int_eq(lw_adamw_cuda_step(&d, out, 1, cpu.cfg, 5, 1e-2f, 1.f), LW_ERR_INVALID);
    ck_assert_int_eq(lw_adamw_cuda_step(&d, spans, 3, cpu.cfg, 0, 1e-2f, 1.f), LW_ERR_INVALID);
    lw_cuda_free(&g_cu, d.params), lw_cuda_free(&g_cu, d.grads), lw_cuda_free(&g_cu, d.m);
    lw_cuda_free(&g_cu, d.v), lw_cuda_free(&g_cu, d.sumsq);
    lw_adamw_free(&cpu);
    free(p), free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bridge_cuda_host");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, bridge_plan_matches_the_cpu, 0, 4);
    tcase_add_test(tc, default_pair_shapes_match_the_cpu);
    tcase_add_test(tc, planted_errors_are_caught);
    tcase_add_test(tc, sizes_the_kernels_lack_are_refused);
    tcase_add_loop_test(tc, adamw_matches_the_cpu_bit_for_bit, 0, 3);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
