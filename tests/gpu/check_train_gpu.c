/* Bridge training with the receiver on the GPU (lw_trainer_use_gpu) against
 * the same run on the CPU: the tiny synthetic pair of tests/check_train.c
 * (Gemma-3-like receiver, sender states with a class direction and large
 * constant offsets), 50 steps of lw_train_run from the same seed on each
 * device. Needs a GPU: run by `make check-gpu`; without one it stops with
 * "no CUDA device".
 *
 * Checked: every step's logged loss follows the CPU's (|gpu - cpu| <= 2e-3
 * x max(1, |cpu|): cuBLAS and OpenBLAS sum in other orders and the
 * difference compounds over the steps, so the bound is looser than one
 * pass's), the final bridge parameters agree to 1e-2 of each tensor's
 * largest value, and the GPU-trained bridge scores the examples as the
 * CPU-trained one does (accuracy within one example).
 *
 * With adapters (LoRA rank 4 on all seven targets with dropout 0.1, and a
 * deep prefix of 3; `lw train --lora --deep-prefix`): 20 steps on each
 * device, the losses within 5e-3 x max(1, |cpu|) (dropout masks must be the
 * CPU's, or the curves part at once), the LoRA and prefix parameters within
 * 2e-2 of each block's largest value.
 *
 * Resume on the GPU: 20 steps with adapters saved at step 10, and a run
 * resumed from that checkpoint on a fresh GPU side whose bridge and adapters
 * start elsewhere; the resumed run's final parameters and last loss are the
 * straight run's (to 1e-5: the same kernels and sums, in the same order). */
#include "testlib.h"
#include "gpu_suite.h"
#include "tiny_models.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_set.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gen_kernels.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "nvrtc_compile.h"
#include "train.h"

enum { N_EX = 48, M_SOFT = 2, STEPS = 50, ADAPTER_STEPS = 20 };

/* A CUDA context does not survive fork(): CK_NOFORK, set up once in main. */
static lw_cuda g_cu;
static lw_cublas g_blas;

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

typedef struct {
    tl_synthetic_pair s;         /* check_train.c's task (data seed 9) */
    lw_adapter_set set;          /* when adapters */
    bool adapters;
    lw_cuda_module mod;
    lw_gpu_model *g;
    lw_gpu_receiver_pass pass;
} side;

static void side_open_seeded(side *p, bool gpu, bool adapters, uint64_t adapter_seed)
{
    memset(p, 0, sizeof *p);
    tl_synthetic_pair_open(&p->s, M_SOFT, N_EX, 0.0f, 9);
    p->s.trainer.rx.no_head_cache = true;   /* the GPU pass runs from position 0: the same sums on the CPU */
    if (adapters) {   /* attached before the GPU, as cmd_train.c does */
        lw_lora_config lc = {.rank = 4, .alpha = 8.f, .dropout = 0.1f, .targets = (1u << LW_LORA_N_TARGETS) - 1};
        lw_deep_prefix_config pc = {.length = 3, .hidden = 8};
        OK(lw_adapter_set_create(&p->set, p->s.receiver, p->s.trainer.max_T, &lc, &pc, adapter_seed));
        OK(lw_trainer_attach_adapters(&p->s.trainer, &p->set));
        p->adapters = true;
    }
    if (!gpu) return;
    tl_gpu_model_kernels(&g_cu, &p->s.receiver->cfg, M_SOFT, "receiver", &p->mod);
    OK(lw_gpu_model_upload(&g_cu, &g_blas, &p->mod, p->s.receiver, &p->g));
    OK(lw_gpu_receiver_pass_alloc(&p->pass, p->g, &p->s.layout, p->s.trainer.max_T, "test"));
    OK(lw_trainer_use_gpu(&p->s.trainer, &p->pass));
}

static void side_open(side *p, bool gpu, bool adapters)
{
    side_open_seeded(p, gpu, adapters, 17);
}

static void side_close(side *p)
{
    lw_trainer_free(&p->s.trainer);
    if (p->adapters) lw_adapter_set_free(&p->set);
    lw_gpu_receiver_pass_free(&p->pass);
    lw_gpu_model_free(p->g);
    if (p->mod.module) lw_cuda_unload(&g_cu, &p->mod);
    tl_synthetic_pair_close(&p->s);   /* its trainer is already freed (and zeroed) */
}

/* steps of lw_train_run into dir, saving every `every` steps (0: only the
 * end), resumed from resume_dir unless NULL; the run's last loss. */
static double train_saving(side *p, const char *dir, int steps, int every, const char *resume_dir)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = steps, .batch = 4, .grad_accum = 2, .warmup_steps = 3,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    o.out_dir = dir;
    o.checkpoint_every = every;
    o.resume_dir = resume_dir;
    lw_train_result res;
    OK(lw_train_run(&p->s.trainer, &p->s.states, &p->s.data, &o, &res));
    return res.last_loss;
}

static void train(side *p, const char *dir, int steps)
{
    train_saving(p, dir, steps, 0, NULL);
}

/* The "loss" of each line of dir/train_log.jsonl into loss[steps]. */
static void read_losses(const char *dir, double *loss, int steps)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    char line[4096];
    int n = 0;
    while (n < steps && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        ck_assert_msg(o && json_is_number(json_object_get(o, "loss")), "%s: line %d", path, n + 1);
        loss[n++] = json_number_value(json_object_get(o, "loss"));
        json_decref(o);
    }
    fclose(f);
    ck_assert_int_eq(n, steps);
}

static int right_answers(side *p)
{
    int right = 0;
    for (int i = 0; i < N_EX; i++) {
        double s[2];
        const float *x = p->s.states.mem + p->s.states.offset[i];
        OK(lw_trainer_score(&p->s.trainer, x, p->s.states.tokens[i], s));
        right += (s[1] > s[0]) == (p->s.data.examples[i].label == 1);
    }
    return right;
}

START_TEST(gpu_training_follows_the_cpu)
{
    side cpu, gpu;
    side_open(&cpu, false, false);
    side_open(&gpu, true, false);
    char dir_cpu[1024], dir_gpu[1024];
    snprintf(dir_cpu, sizeof dir_cpu, "%s", tl_tmpdir("train_cpu"));
    snprintf(dir_gpu, sizeof dir_gpu, "%s", tl_tmpdir("train_gpu"));
    train(&cpu, dir_cpu, STEPS);
    train(&gpu, dir_gpu, STEPS);
    double lc[STEPS], lg[STEPS];
    read_losses(dir_cpu, lc, STEPS);
    read_losses(dir_gpu, lg, STEPS);
    for (int s = 0; s < STEPS; s++)
        ck_assert_msg(fabs(lg[s] - lc[s]) <= 2e-3 * fmax(1.0, fabs(lc[s])), "step %d: loss %.6f on the GPU, %.6f "
                      "on the CPU", s + 1, lg[s], lc[s]);
    fprintf(stderr, "loss: step 1 %.4f / %.4f, step %d %.4f / %.4f (CPU / GPU)\n", lc[0], lg[0], STEPS,
            lc[STEPS - 1], lg[STEPS - 1]);
    float biggest = 0.f, worst = 0.f;
    for (size_t i = 0; i < cpu.s.bridge.n_params; i++) {
        biggest = fmaxf(biggest, fabsf(cpu.s.bridge.params[i]));
        worst = fmaxf(worst, fabsf(cpu.s.bridge.params[i] - gpu.s.bridge.params[i]));
    }
    ck_assert_msg(worst <= 1e-2f * biggest, "bridge parameters differ by %g (largest %g)", worst, biggest);
    int rc = right_answers(&cpu), rg = right_answers(&gpu);
    ck_assert_msg(abs(rc - rg) <= 1, "%d right on the CPU, %d on the GPU (of %d)", rc, rg, N_EX);
    side_close(&gpu);
    side_close(&cpu);
    tl_run(NULL, "rm -rf '%s' '%s'", dir_cpu, dir_gpu);
}
END_TEST

/* The largest |gpu - cpu| of a parameter block, against its largest |cpu|. */
static void same_params(const char *what, const lw_adapter_params *c, const lw_adapter_params *g, float rtol)
{
    ck_assert_int_eq((int)c->n_params, (int)g->n_params);
    float biggest = 0.f, worst = 0.f;
    for (size_t i = 0; i < c->n_params; i++) {
        ck_assert_msg(isfinite(g->params[i]), "%s[%zu] is %g after GPU training", what, i, (double)g->params[i]);
        biggest = fmaxf(biggest, fabsf(c->params[i]));
        worst = fmaxf(worst, fabsf(c->params[i] - g->params[i]));
    }
    ck_assert_msg(worst <= rtol * biggest, "%s differ by %g (largest %g)", what, worst, biggest);
}

START_TEST(gpu_training_with_adapters_follows_the_cpu)
{
    side cpu, gpu;
    side_open(&cpu, false, true);
    side_open(&gpu, true, true);
    char dir_cpu[1024], dir_gpu[1024];
    snprintf(dir_cpu, sizeof dir_cpu, "%s", tl_tmpdir("train_adapters_cpu"));
    snprintf(dir_gpu, sizeof dir_gpu, "%s", tl_tmpdir("train_adapters_gpu"));
    train(&cpu, dir_cpu, ADAPTER_STEPS);
    train(&gpu, dir_gpu, ADAPTER_STEPS);
    double lc[ADAPTER_STEPS], lg[ADAPTER_STEPS];
    read_losses(dir_cpu, lc, ADAPTER_STEPS);
    read_losses(dir_gpu, lg, ADAPTER_STEPS);
    for (int s = 0; s < ADAPTER_STEPS; s++)
        ck_assert_msg(fabs(lg[s] - lc[s]) <= 5e-3 * fmax(1.0, fabs(lc[s])), "adapters, step %d: loss %.6f on the "
                      "GPU, %.6f on the CPU", s + 1, lg[s], lc[s]);
    fprintf(stderr, "with LoRA and a deep prefix: loss step 1 %.4f / %.4f, step %d %.4f / %.4f (CPU / GPU)\n",
            lc[0], lg[0], ADAPTER_STEPS, lc[ADAPTER_STEPS - 1], lg[ADAPTER_STEPS - 1]);
    same_params("LoRA parameters", &cpu.set.lora.p, &gpu.set.lora.p, 2e-2f);
    same_params("deep prefix parameters", &cpu.set.prefix.p, &gpu.set.prefix.p, 2e-2f);
    side_close(&gpu);
    side_close(&cpu);
    tl_run(NULL, "rm -rf '%s' '%s'", dir_cpu, dir_gpu);
}
END_TEST

START_TEST(gpu_training_with_adapters_resumes)
{
    char dir[1024], straight[1100], from[1200], resumed[1100];
    snprintf(dir, sizeof dir, "%s", tl_tmpdir("train_resume_gpu"));
    snprintf(straight, sizeof straight, "%s/straight", dir);
    snprintf(from, sizeof from, "%s/step-%d", straight, ADAPTER_STEPS / 2);
    snprintf(resumed, sizeof resumed, "%s/resumed", dir);
    side a, b;
    side_open(&a, true, true);
    double last_a = train_saving(&a, straight, ADAPTER_STEPS, ADAPTER_STEPS / 2, NULL);
    side_open_seeded(&b, true, true, 29);   /* other adapters: everything must come from the checkpoint */
    b.s.bridge.params[0] += 1.0f;
    double last_b = train_saving(&b, resumed, ADAPTER_STEPS, ADAPTER_STEPS / 2, from);
    ck_assert_msg(fabs(last_a - last_b) <= 1e-5 * fmax(1.0, fabs(last_a)), "last loss %.8g straight, %.8g resumed",
                  last_a, last_b);
    tl_assert_close_to_scale(a.s.bridge.params, b.s.bridge.params, a.s.bridge.n_params, 1e-5, "bridge parameters");
    tl_assert_close_to_scale(a.set.lora.p.params, b.set.lora.p.params, a.set.lora.p.n_params, 1e-5,
                             "LoRA parameters");
    tl_assert_close_to_scale(a.set.prefix.p.params, b.set.prefix.p.params, a.set.prefix.p.n_params, 1e-5,
                             "deep prefix parameters");
    side_close(&b);
    side_close(&a);
    tl_run(NULL, "rm -rf '%s'", dir);
}
END_TEST

int main(void)
{
    if (!tl_gpu_open("check_train_gpu", &g_cu, &g_blas)) return 1;
    Suite *s = suite_create("train_gpu");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gpu_training_follows_the_cpu);
    tcase_add_test(tc, gpu_training_with_adapters_follows_the_cpu);
    tcase_add_test(tc, gpu_training_with_adapters_resumes);
    suite_add_tcase(s, tc);
    return tl_gpu_run(s, &g_cu, &g_blas);
}
