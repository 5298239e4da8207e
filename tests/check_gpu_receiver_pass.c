/* The GPU training pass's host side without a GPU (runtime/gpu_receiver_pass.h):
 * allocating on a device that is not open fails with the driver's message
 * and leaks nothing (the sanitizer build checks), the arguments are checked
 * before any device work, adapters are refused, a backward without its loss
 * is refused, and a loss on a closed device fails cleanly. The numbers are
 * checked against the CPU pass on a GPU by tests/gpu/check_receiver_pass_gpu.c. */
#include "testlib.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "gpu_receiver_pass.h"
#include "lwc_config.h"
#include "tiny_models.h"

#include <stdio.h>
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
    ck_assert_ptr_null(p.acts);
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
    ck_assert_ptr_null(p.acts);
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
    lw_gpu_layer_acts acts[3] = {0};   /* the tiny model's layers, no device memory behind them */
    lw_gpu_receiver_pass p = {.g = &g, .layout = &layout, .max_T = MAX_T, .acts = acts, .ids = ids,
                              .targets = targets, .ids_stage = stage, .is_embed = is_embed, .embeds = embeds};
    int T = lw_receiver_fill(&layout, 0, 0, ids, is_embed);
    ck_assert_int_eq(T, 8);
    lw_receiver_adapters lora = {.lora = (lw_lora *)&g}, prefix = {.prefix_len = 2}, empty = {0};
    float loss = -1;
    double scores[2];
    EXPECT(lw_gpu_receiver_pass_loss(&p, &lora, T, 0, &loss), LW_ERR_UNSUPPORTED, "a LoRA is not supported");
    EXPECT(lw_gpu_receiver_pass_loss(&p, &prefix, T, 0, &loss), LW_ERR_UNSUPPORTED, "a deep prefix is not supported");
    EXPECT(lw_gpu_receiver_pass_backward(&p, &lora, T, 0, 1.f, NULL), LW_ERR_UNSUPPORTED, "LoRA");
    EXPECT(lw_gpu_receiver_pass_scores(&p, &prefix, T, true, scores), LW_ERR_UNSUPPORTED, "deep prefix");
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

int main(void)
{
    Suite *s = suite_create("gpu_receiver_pass");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, alloc_on_a_closed_device_fails_cleanly);
    tcase_add_test(tc, alloc_checks_its_sizes_first);
    tcase_add_test(tc, calls_check_their_arguments_before_the_device);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
