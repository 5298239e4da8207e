/* The GPU training pass's host side without a GPU (runtime/model/gpu_receiver_pass.h):
 * allocating on a device that is not open fails with the driver's message
 * and leaks nothing (the sanitizer build checks), the arguments are checked
 * before any device work (adapters that do not fit the model included), a
 * backward without its loss is refused, and a loss on a closed device fails
 * cleanly; a model with bf16 weights gets as far as the device; with a LoRA or a deep prefix the device room for them fails with
 * the driver's message and the pass is left as it was; a trainer with
 * adapters accepts a GPU pass in either order, or fails at setup and stays
 * on the CPU. The numbers are checked against the CPU pass on a GPU by
 * tests/gpu/check_receiver_pass_gpu.c. */
#include "testlib.h"
#include "adapter_set.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "lwc_config.h"
#include "lora.h"
#include "random_weights.h"
#include "tiny_models.h"
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECT(call, code, says) \
    do { \
        ck_assert_int_eq((call), (code)); \
        ck_assert_msg(strstr(lw_last_error(), (says)), "%s", lw_last_error()); \
    } while (0)

/* The tiny Gemma-like receiver (vocab 11) as a GPU model that was never
 * uploaded, on the device cu (closed); verbalizers {9} and {10, v1b}. */
static void fake(lw_gpu_model *g, lw_cuda *cu, lw_receiver_layout *layout, int v1b)
{
    memset(g, 0, sizeof *g);
    memset(cu, 0, sizeof *cu);
    g->cfg = tl_tiny_gemma3_config(4);
    g->cfg.context = 64;
    lw_plan_lower(&g->cfg, &g->plan);   /* as the upload lowers it */
    g->cu = cu;
    int before[] = {1, 5, 6}, after[] = {7, 8}, v0 = 9, v1[] = {10, v1b}, len[] = {1, 2};
    const int *verb[] = {&v0, v1};
    ck_assert_msg(lw_receiver_layout_from_ids(3, before, 3, after, 2, 2, verb, len, layout) == LW_OK, "%s",
                  lw_last_error());
}

/* Where a driver exists the device would open: then these checks say nothing new. */
static bool device_present(void)
{
    lw_cuda cu;
    if (lw_cuda_init(&cu, 0) != LW_OK) return false;
    lw_cuda_close(&cu);
    fprintf(stderr, "note: a CUDA device is present; the no-GPU path is exercised on a closed handle only\n");
    return true;
}

START_TEST(alloc_on_a_closed_device_fails_cleanly)
{
    device_present();
    lw_gpu_model g;
    lw_cuda cu;
    lw_receiver_layout layout;
    fake(&g, &cu, &layout, 3);
    lw_gpu_receiver_pass p;
    ck_assert_int_ne(lw_gpu_receiver_pass_alloc(&p, &g, &layout, 12, "bridge trainer"), LW_OK);
    const char *e = lw_last_error();
    ck_assert_msg(strstr(e, "bridge trainer on the GPU: "), "%s", e);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(e, "not initialised"), "%s", e);
#else
    ck_assert_msg(strstr(e, "built without CUDA headers"), "%s", e);
#endif
    /* everything the failed alloc took is given back; free is then a no-op */
    ck_assert_ptr_null(p.slots);
    ck_assert_ptr_null(p.embeds);
    ck_assert_int_eq((int)p.arena, 0);
    lw_gpu_receiver_pass_free(&p);
    lw_receiver_layout_free(&layout);
}
END_TEST

START_TEST(alloc_checks_its_sizes_first)
{
    lw_gpu_model g;
    lw_cuda cu;
    lw_receiver_layout layout;
    fake(&g, &cu, &layout, 3);
    lw_gpu_receiver_pass p;
    ck_assert_int_eq(lw_gpu_receiver_pass_alloc(&p, &g, &layout, 0, "trainer"), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "trainer: the receiver prompt needs 0 positions"), "%s", lw_last_error());
    ck_assert_int_eq(lw_gpu_receiver_pass_alloc(&p, &g, &layout, 65, "trainer"), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "has 64"), "%s", lw_last_error());
    ck_assert_int_eq(lw_gpu_receiver_pass_alloc(&p, &g, &layout, 1, "trainer"), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "verbalizers of up to 2 tokens"), "%s", lw_last_error());
    ck_assert_ptr_null(p.slots);
    /* bf16 weights train too (lw_cublas_matmul_dx_bf16): the sizes pass and the device, closed, answers */
    g.bf16 = true;
    ck_assert_int_ne(lw_gpu_receiver_pass_alloc(&p, &g, &layout, 12, "trainer"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "trainer on the GPU: "), "%s", lw_last_error());
    ck_assert_ptr_null(p.slots);
    ck_assert_int_eq((int)p.arena, 0);
    lw_gpu_receiver_pass_free(&p);
    lw_receiver_layout_free(&layout);
}
END_TEST

/* A pass laid out by hand on host arrays (no device memory): every call
 * checks its arguments before touching the device. */
START_TEST(calls_check_their_arguments_before_the_device)
{
    lw_gpu_model g;
    lw_cuda cu;
    lw_receiver_layout layout;
    fake(&g, &cu, &layout, 11);   /* label 1's second token is outside vocab 11 */
    enum { MAX_T = 12 };
    int ids[MAX_T] = {0}, targets[MAX_T], stage[MAX_T];
    bool is_embed[MAX_T] = {0};
    float embeds[MAX_T * 16] = {0};
    lw_cuda_plan_acts acts[3] = {0};   /* the tiny model's layers, no device memory behind them */
    lw_cuda_ptr dkeys[3] = {0}, dvalues[3] = {0};
    lw_gpu_receiver_pass p = {.g = &g, .layout = &layout, .max_T = MAX_T, .rows = MAX_T, .loss_cap = 2,
                              .slots = acts, .dkeys = dkeys,
                              .dvalues = dvalues, .ids = ids,
                              .targets = targets, .ids_stage = stage, .is_embed = is_embed, .embeds = embeds};
    int T = lw_receiver_fill(&layout, 0, 0, ids, is_embed);
    ck_assert_int_eq(T, 8);
    /* adapters that cannot fit the model are refused before the device */
    lw_model_config other = g.cfg;
    other.n_layers = 2;
    lw_model *m_other;
    ck_assert_int_eq(lw_model_init_random(&other, 3, &m_other), LW_OK);
    lw_lora lo_other;
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = 1u << LW_LORA_Q};
    ck_assert_int_eq(lw_lora_create(&lo_other, &lc, m_other), LW_OK);
    lw_receiver_adapters lora = {.lora = &lo_other}, prefix = {.prefix_len = 2}, bad = {.prefix_len = -1};
    lw_receiver_adapters empty = {0};
    float loss = -1;
    double scores[2];
    EXPECT(lw_gpu_receiver_pass_loss(&p, &lora, T, 0, &loss), LW_ERR_INVALID, "built for 2 layers (the model has 3)");
    EXPECT(lw_gpu_receiver_pass_loss(&p, &prefix, T, 0, &loss), LW_ERR_INVALID, "prefix of 2 without keys/values");
    EXPECT(lw_gpu_receiver_pass_backward(&p, &bad, T, 0, 1.f, NULL), LW_ERR_INVALID, "deep prefix of -1 keys");
    EXPECT(lw_gpu_receiver_pass_scores(&p, &lora, T, true, scores), LW_ERR_INVALID, "built for 2 layers");
    EXPECT(lw_gpu_receiver_pass_attach(&p, &prefix), LW_ERR_INVALID, "without keys/values");
    lw_lora_free(&lo_other);
    lw_model_free(m_other);
    /* an adapters struct with neither passes, and the next check speaks */
    EXPECT(lw_gpu_receiver_pass_loss(&p, &empty, T, 2, &loss), LW_ERR_INVALID, "label 2 of 2");
    EXPECT(lw_gpu_receiver_pass_loss(&p, NULL, MAX_T + 1, 0, &loss), LW_ERR_INVALID,
           "13 rows (the verbalizer's 1..12)");
    EXPECT(lw_gpu_receiver_pass_loss(&p, NULL, T, 1, &loss), LW_ERR_INVALID, "verbalizer token 1 is id 11");
    EXPECT(lw_gpu_receiver_pass_backward(&p, NULL, T, 0, 1.f, NULL), LW_ERR_INVALID, "needs their loss first");
    EXPECT(lw_gpu_receiver_pass_scores(&p, NULL, MAX_T, true, scores), LW_ERR_INVALID, "exceed 12");
    EXPECT(lw_gpu_receiver_pass_scores(&p, NULL, T, true, scores), LW_ERR_INVALID,
           "verbalizer row 1 has token id 11");
    ids[0] = 11;   /* a prompt id outside the vocabulary */
    ck_assert_int_eq(lw_gpu_receiver_pass_loss(&p, NULL, T, 0, &loss), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "prompt row 0 has token id 11"), "%s", lw_last_error());
    ids[0] = 1;
    /* valid rows: the first device call (the ids' upload) fails, nothing is left half done */
    ck_assert_int_ne(lw_gpu_receiver_pass_loss(&p, NULL, T, 0, &loss), LW_OK);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(lw_last_error(), "token ids: the CUDA device is not initialised"), "%s", lw_last_error());
#endif
    ck_assert_int_eq(p.loss_T, 0);
    ck_assert_msg(loss == -1.f, "loss written on failure: %g", (double)loss);
    lw_receiver_layout_free(&layout);
}
END_TEST

/* The same hand-laid pass with adapters that fit: the arguments pass and
 * the first device call, the room for the adapters, fails with the driver's
 * message; the pass keeps what it had (no prefix rows, no LoRA) and the
 * host memory taken on the way is given back (the sanitizer build checks). */
START_TEST(adapters_reach_the_device)
{
    lw_gpu_model g;
    lw_cuda cu;
    lw_receiver_layout layout;
    fake(&g, &cu, &layout, 3);
    enum { MAX_T = 12 };
    int ids[MAX_T] = {0}, targets[MAX_T], stage[MAX_T];
    bool is_embed[MAX_T] = {0};
    float embeds[MAX_T * 16] = {0};
    lw_cuda_plan_acts acts[3] = {0};
    lw_cuda_ptr dkeys[3] = {0}, dvalues[3] = {0};
    lw_gpu_receiver_pass p = {.g = &g, .layout = &layout, .max_T = MAX_T, .rows = MAX_T, .loss_cap = 2,
                              .slots = acts, .dkeys = dkeys,
                              .dvalues = dvalues, .ids = ids,
                              .targets = targets, .ids_stage = stage, .is_embed = is_embed, .embeds = embeds};
    int T = lw_receiver_fill(&layout, 1, 1, ids, is_embed);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&g.cfg, 5, &m), LW_OK);
    lw_lora lo;
    lw_lora_config lc = {.rank = 4, .alpha = 8, .dropout = 0.2f, .targets = (1u << LW_LORA_N_TARGETS) - 1};
    ck_assert_int_eq(lw_lora_create(&lo, &lc, m), LW_OK);
    int kvd = g.cfg.n_kv_heads * g.cfg.head_dim;
    float *pk = calloc((size_t)3 * 2 * kvd, sizeof(float)), *pv = calloc((size_t)3 * 2 * kvd, sizeof(float));
    lw_receiver_adapters lora = {.lora = &lo, .training = true, .dropout_seed = 7};
    lw_receiver_adapters prefix = {.prefix_len = 2, .prefix_k = pk, .prefix_v = pv};
    float loss = -1;
    double scores[2];
    ck_assert_int_eq(lw_gpu_receiver_pass_attach(&p, NULL), LW_OK);
    ck_assert_int_eq(lw_gpu_receiver_pass_attach(&p, &(lw_receiver_adapters){0}), LW_OK);
    ck_assert_int_ne(lw_gpu_receiver_pass_loss(&p, &lora, T, 1, &loss), LW_OK);
    const char *e = lw_last_error();
    ck_assert_msg(strstr(e, "GPU receiver pass tiny-gemma3: LoRA"), "%s", e);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(e, "not initialised"), "%s", e);
#endif
    ck_assert_msg(loss == -1.f && p.loss_T == 0 && p.lora.arena == 0 && !p.lora.grads_host, "%s", e);
    ck_assert_int_ne(lw_gpu_receiver_pass_scores(&p, &prefix, 3, true, scores), LW_OK);
    e = lw_last_error();
    ck_assert_msg(strstr(e, "room for a deep prefix of 2"), "%s", e);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(e, "not initialised"), "%s", e);
#endif
    ck_assert_int_eq(p.n_prefix, 0);
    ck_assert_ptr_null(p.prefix_stage);
    ck_assert_int_eq((int)p.arena, 0);
    /* nothing was attached, so there is nothing to upload to */
    EXPECT(lw_gpu_receiver_pass_sync_adapters(&p, &prefix), LW_ERR_INVALID, "adapters not attached");
    EXPECT(lw_gpu_receiver_pass_sync_adapters(&p, &lora), LW_ERR_INVALID, "adapters not attached");
    /* a backward must run with the adapters of its loss */
    p.loss_T = T, p.loss_label = 1, p.loss_ad = NULL;
    EXPECT(lw_gpu_receiver_pass_backward(&p, &lora, T, 1, 1.f, NULL), LW_ERR_INVALID, "with the same adapters");
    free(pk);
    free(pv);
    lw_lora_free(&lo);
    lw_model_free(m);
    lw_receiver_layout_free(&layout);
}
END_TEST

/* A trainer with adapters takes a GPU pass in either order; a device that
 * cannot hold them fails at setup, and the trainer stays on the CPU. */
START_TEST(trainer_with_adapters_and_a_gpu_pass)
{
    lw_model *receiver;
    lw_receiver_layout layout;
    lw_bridge bridge;
    lw_trainer t;
    tl_tiny_trainer(2, 8, 0.0f, &receiver, &layout, &bridge, &t);
    lw_adapter_set set;
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = 1u << LW_LORA_V};
    lw_deep_prefix_config pc = {.length = 3, .hidden = 8};
    ck_assert_int_eq(lw_adapter_set_create(&set, receiver, t.max_T, &lc, &pc, 1), LW_OK);
    /* a never-uploaded GPU model of the receiver on a closed device, with a pass laid by hand */
    lw_gpu_model g = {.cfg = receiver->cfg};
    lw_cuda cu;
    memset(&cu, 0, sizeof cu);
    g.cu = &cu;
    int n = t.max_T;
    int *ids = calloc((size_t)n, sizeof(int)), *targets = calloc((size_t)n, sizeof(int));
    int *stage = calloc((size_t)n, sizeof(int));
    bool *is_embed = calloc((size_t)n, sizeof(bool));
    lw_cuda_plan_acts *acts = calloc((size_t)receiver->cfg.n_layers, sizeof *acts);
    lw_cuda_ptr *dkeys = calloc((size_t)receiver->cfg.n_layers, sizeof *dkeys);
    lw_cuda_ptr *dvalues = calloc((size_t)receiver->cfg.n_layers, sizeof *dvalues);
    lw_gpu_receiver_pass p = {.g = &g, .layout = &layout, .max_T = n, .slots = acts, .dkeys = dkeys,
                              .dvalues = dvalues, .ids = ids,
                              .targets = targets, .ids_stage = stage, .is_embed = is_embed};
    /* adapters first, then the GPU */
    ck_assert_int_eq(lw_trainer_attach_adapters(&t, &set), LW_OK);
    ck_assert_int_ne(lw_trainer_use_gpu(&t, &p), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "trainer: adapters on the GPU: GPU receiver pass"), "%s", lw_last_error());
    ck_assert_ptr_null(t.gpu);
    /* the GPU first, then the adapters: the trainer takes the pass, the adapters' room fails */
    t.adapters = NULL;
    ck_assert_int_eq(lw_trainer_use_gpu(&t, &p), LW_OK);
    ck_assert_int_ne(lw_trainer_attach_adapters(&t, &set), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "trainer: adapters on the GPU"), "%s", lw_last_error());
    ck_assert_ptr_null(t.adapters);
    t.gpu = NULL;
    /* back on the CPU with the adapters, an example runs */
    ck_assert_int_eq(lw_trainer_attach_adapters(&t, &set), LW_OK);
    float x[5 * 8], loss = 0;
    for (int i = 0; i < 5 * 8; i++) x[i] = (float)sin(0.3 * i);
    lw_adapter_set_zero_grad(&set);
    ck_assert_int_eq(lw_trainer_example(&t, x, 5, 1, 1.0f, &loss, NULL), LW_OK);
    ck_assert_msg(isfinite(loss) && loss > 0, "loss %g", (double)loss);
    ck_assert_msg(lw_adapter_set_grad_sq(&set) > 0, "no adapter gradient");
    lw_gpu_receiver_pass_free(&p);   /* the pass's arrays: ids, targets, stage, is_embed, slots, dkeys, dvalues */
    lw_trainer_free(&t);
    lw_adapter_set_free(&set);
    lw_bridge_free(&bridge);
    lw_receiver_layout_free(&layout);
    lw_model_free(receiver);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gpu_receiver_pass");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, alloc_on_a_closed_device_fails_cleanly);
    tcase_add_test(tc, alloc_checks_its_sizes_first);
    tcase_add_test(tc, calls_check_their_arguments_before_the_device);
    tcase_add_test(tc, adapters_reach_the_device);
    tcase_add_test(tc, trainer_with_adapters_and_a_gpu_pass);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
