/* The bridge resident on the GPU (issue 20 item 1): the CUDA executor of
 * the bridge's plan (runtime/model/bridge_cuda.c) on a device, through the
 * bridge kernels generated for each bridge and compiled by NVRTC for the
 * device, against the CPU executor (tests/testlib/bridge_rig.h, the same
 * comparison check_bridge_cuda_host makes over the host twin); and AdamW
 * with the global-norm clip on the device (runtime/model/adamw_cuda.c)
 * against runtime/ops/adamw.c. Needs a GPU: run by `make check-gpu` and
 * scripts/device-checks.sh, not by `make check`.
 *
 * Bridges: the tiny ones of check_bridge_cuda_host (perceiver with and
 * without the calibration, mlp, linear; T 7 of 9) and the default pair's
 * shapes (SmolLM2-135M 576 -> width 256, 2 blocks, 4 heads, 16 soft
 * tokens -> Gemma-3-270M 640; random weights; T 40 of 64). Tolerances: the
 * soft tokens within 1e-4 x max(1, max |cpu|), every gradient and dx within
 * 2e-3 x max |cpu| of its tensor (the twin's 1e-3, and the device's atomics
 * reorder the LayerNorm weight and bias sums and attention's dk, dv).
 * AdamW: 3 steps, parameters within 1e-6 relative of the CPU's (the same
 * operations; the device may contract a multiply-add, and sums the norm in
 * another order). It prints the default shapes' forward + backward time a
 * step (the device's, after a warm-up; not a benchmark of record). */
#include "testlib.h"
#include "adamw.h"
#include "adamw_cuda.h"
#include "bridge.h"
#include "bridge_cuda.h"
#include "bridge_rig.h"
#include "clock.h"
#include "gpu_suite.h"
#include "kernel_launchers.h"
#include "manifest.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static lw_cuda g_cu;
static lw_cublas g_blas;

typedef struct {
    const char *name;
    lw_bridge_config cfg;
    int S, R, T, max_T;
} shape;

static shape shape_of(int i)
{
    lw_bridge_config c = {0};
    c.source_layer = 1, c.ffn_mult = 2;
    if (i == 4) {   /* the default pair's bridge */
        c.kind = LW_BRIDGE_PERCEIVER, c.soft_tokens = 16, c.width = 256, c.depth = 2, c.heads = 4, c.ffn_mult = 4;
        return (shape){"default pair", c, 576, 640, 40, 64};
    }
    c.kind = i == 2 ? LW_BRIDGE_MLP : i == 3 ? LW_BRIDGE_LINEAR : LW_BRIDGE_PERCEIVER;
    c.soft_tokens = 3, c.width = 8, c.depth = 2, c.heads = 2, c.calibration = i == 1 ? LW_CALIB_NONE : LW_CALIB_RMS;
    static const char *const names[] = {"perceiver", "perceiver uncalibrated", "mlp", "linear"};
    return (shape){names[i], c, 12, 10, 7, 9};
}

/* The bridge kernels built for sh (gen_kernels.c reads the sender's and
 * receiver's widths and the bridge block of a manifest). */
static void bridge_kernels(const shape *sh, lw_cuda_module *mod, lw_bridge_kernels *ks)
{
    static lw_manifest m;
    memset(&m, 0, sizeof m);
    m.sender.hidden = sh->S, m.receiver.hidden = sh->R, m.bridge = sh->cfg;
    lw_strbuf sb = {0};
    lw_status st = lw_gen_bridge_kernels(tl_src("templates"), &m, &sb);
    ck_assert_msg(!st && !sb.failed, "generating the bridge kernels: %s", st ? lw_last_error() : "no memory");
    unsigned char *image = NULL;
    size_t size = 0;
    st = lw_nvrtc_compile(sb.data, "kernels_bridge.cu", lw_cuda_arch(&g_cu), &image, &size);
    lw_sb_free(&sb);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    st = lw_cuda_load_image(&g_cu, "bridge", lw_cuda_arch(&g_cu), image, mod);
    free(image);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    OK(lw_bridge_kernels_find(&g_cu, mod, ks));
}

START_TEST(bridge_plan_on_the_device_matches_the_cpu)
{
    shape sh = shape_of(_i);
    lw_cuda_module mod;
    lw_bridge_kernels ks;
    bridge_kernels(&sh, &mod, &ks);
    lw_bridge b;
    tl_bridge_random(&b, &sh.cfg, sh.S, sh.R, 7 + (uint64_t)_i);
    size_t MR = (size_t)sh.cfg.soft_tokens * sh.R;
    float *x = malloc((size_t)sh.T * sh.S * sizeof *x), *dout = malloc(MR * sizeof *dout);
    ck_assert(x && dout);
    tl_bridge_rows(&b, x, sh.T, 99);
    lw_rng rng;
    lw_rng_seed(&rng, 98);
    for (size_t i = 0; i < MR; i++) dout[i] = (float)lw_rng_normal(&rng);
    tl_bridge_cpu c;
    tl_bridge_cpu_run(&b, x, sh.T, sh.max_T, dout, &c);
    tl_bridge_dev d;
    tl_bridge_dev_open(&d, &b, sh.max_T, &g_cu, &g_blas, &ks);
    lw_bridge_cuda_sizes sz = {sh.cfg.width, sh.cfg.heads, sh.cfg.soft_tokens, sh.R,
                               sh.cfg.calibration == LW_CALIB_RMS};
    OK(lw_bridge_cuda_check(&d.plan, &sz));
    d.x.sync_each_launch = true;   /* a fault names its kernel */
    double fwd, bwd;
    char worst[96];
    tl_bridge_dev_compare(&d, &b, x, sh.T, dout, &c, &fwd, &bwd, worst, sizeof worst);
    fprintf(stderr, "bridge %s on the device: soft tokens %.3g, worst gradient %s %.3g of its scale\n", sh.name, fwd,
            worst, bwd);
    ck_assert_msg(fwd <= 1e-4, "%s: soft tokens differ by %g of their scale", sh.name, fwd);
    ck_assert_msg(bwd <= 2e-3, "%s: gradient %s differs by %g of its scale", sh.name, worst, bwd);
    if (_i == 4) {   /* the step's time on the device, without the per-launch waits */
        d.x.sync_each_launch = false;
        OK(lw_cuda_sync(&g_cu, "warm-up"));
        enum { REPS = 20 };
        double t0 = lw_now_s();
        for (int r = 0; r < REPS; r++) {
            OK(lw_bridge_cuda_forward(&d.x, sh.T));
            OK(lw_bridge_cuda_backward(&d.x, sh.T, false));
        }
        OK(lw_cuda_sync(&g_cu, "bridge steps"));
        fprintf(stderr, "bridge default shapes, T %d: forward + backward %.3f ms a step on %s\n", sh.T,
                (lw_now_s() - t0) * 1e3 / REPS, g_cu.name);
    }
    tl_bridge_dev_close(&d);
    tl_bridge_cpu_free(&c);
    lw_bridge_free(&b);
    free(x), free(dout);
    lw_cuda_unload(&g_cu, &mod);
}
END_TEST

START_TEST(adamw_on_the_device_matches_the_cpu)
{
    shape sh = shape_of(0);
    lw_cuda_module mod;
    lw_bridge_kernels ks;
    bridge_kernels(&sh, &mod, &ks);
    enum { N = 100000 };
    const lw_adamw_span spans[] = {{0, 30000, 0.01f}, {30000, 20000, 0.0f}, {50000, 50000, 0.1f}};
    lw_rng rng;
    lw_rng_seed(&rng, 5);
    float *p = malloc(N * sizeof *p), *g = malloc(N * sizeof *g), *got = malloc(N * sizeof *got);
    ck_assert(p && g && got);
    for (int i = 0; i < N; i++) p[i] = (float)(0.5 * lw_rng_normal(&rng));
    lw_adamw cpu;
    OK(lw_adamw_init(&cpu, N, lw_adamw_defaults()));
    lw_adamw_cuda d = {.cu = &g_cu, .k = &ks, .n = N, .sync_each_launch = true};
    OK(lw_cuda_alloc(&g_cu, N * sizeof(float), "p", &d.params));
    OK(lw_cuda_alloc(&g_cu, N * sizeof(float), "g", &d.grads));
    OK(lw_cuda_alloc(&g_cu, N * sizeof(float), "m", &d.m));
    OK(lw_cuda_alloc(&g_cu, N * sizeof(float), "v", &d.v));
    OK(lw_cuda_alloc(&g_cu, sizeof(double), "sumsq", &d.sumsq));
    OK(lw_cuda_memset0(&g_cu, d.m, N * sizeof(float), "m"));
    OK(lw_cuda_memset0(&g_cu, d.v, N * sizeof(float), "v"));
    OK(lw_cuda_upload(&g_cu, d.params, p, N * sizeof *p, "p"));
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < N; i++) g[i] = (float)(0.02 * lw_rng_normal(&rng));   /* norm ~ 6.3: clipped at 1 */
        OK(lw_cuda_upload(&g_cu, d.grads, g, N * sizeof *g, "g"));
        float lr = 1e-2f * (float)step;
        double norm = lw_clip_grad_norm(g, N, 1.0f);
        lw_adamw_begin_step(&cpu);
        for (int s = 0; s < 3; s++)
            lw_adamw_update(&cpu, p, g, spans[s].offset, spans[s].count, lr, spans[s].weight_decay);
        OK(lw_adamw_cuda_step(&d, spans, 3, cpu.cfg, cpu.step, lr, 1.0f));
        double dnorm;
        OK(lw_adamw_cuda_norm(&d, &dnorm));
        ck_assert_msg(fabs(dnorm - norm) <= 1e-9 * norm, "step %d: norm %.17g on the device, %.17g on the CPU", step,
                      dnorm, norm);
        OK(lw_cuda_download(&g_cu, got, d.params, N * sizeof *got, "p"));
        double err = tl_bridge_rel_err(got, p, N, 1e-6);
        fprintf(stderr, "AdamW on the device, step %d: parameters within %.3g of the CPU's\n", step, err);
        ck_assert_msg(err <= 1e-6, "step %d: parameters differ by %g of their scale", step, err);
    }
    lw_cuda_free(&g_cu, d.params), lw_cuda_free(&g_cu, d.grads), lw_cuda_free(&g_cu, d.m);
    lw_cuda_free(&g_cu, d.v), lw_cuda_free(&g_cu, d.sumsq);
    lw_adamw_free(&cpu);
    free(p), free(g), free(got);
    lw_cuda_unload(&g_cu, &mod);
}
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_bridge_gpu", &g_cu, &g_blas)) return 1;
    Suite *s = suite_create("bridge_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, bridge_plan_on_the_device_matches_the_cpu, 0, 5);
    tcase_add_test(tc, adamw_on_the_device_matches_the_cpu);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
