/* The trained text baselines (train_text.h) on a tiny random Gemma-like
 * receiver: prompt-tuning's gradient (the soft-token parameters) and LoRA's
 * (A and B, through the receiver reading text) match finite differences of
 * the trainer's loss; each learns a separable synthetic task (a keyword
 * token says the label) to >= 90%; a run resumed from a checkpoint ends bit
 * for bit where the uninterrupted one does; and a checkpoint folder opened
 * for evaluation gives the trained parameters and the same scores. */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "random_weights.h"
#include "train_text.h"

enum { N_EX = 48, M_SOFT = 8, N_BEFORE = 3 };

typedef struct {
    lw_model *receiver;
    lw_receiver_layout layout;
    lw_dataset data;
    lw_text_prompts prompts;
    lw_text_trainer t;
} setup;

/* Prompts [1 5 6] [text] [7 8]: the text is 2..5 tokens, all the keyword
 * 3 (label 0) or 4 (label 1) but one random filler (13..20) at a random
 * place. The verbalizers are the keywords (label 1's has a second token, so
 * multi-token scoring is exercised): with tied embeddings a frozen random
 * receiver's last row already leans to the tokens it attends to, which a
 * learned prompt can sharpen; a label token the text never holds would be
 * out of a frozen model's reach. */
static void setup_open(setup *s, lw_text_method method, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    /* every layer sees the prompt; unit-RMS inputs, so attention is not swamped by the token itself */
    lw_model_config rc = tl_tiny_receiver_config(64, false);
    ck_assert_int_eq(lw_model_init_random(&rc, 11, &s->receiver), LW_OK);
    const int before[] = {1, 5, 6}, after[] = {7, 8}, v0[] = {3}, v1[] = {4, 12};
    const int *verb[] = {v0, v1};
    const int verb_len[] = {1, 2};
    ck_assert_int_eq(lw_receiver_layout_from_ids(1, before, N_BEFORE, after, 2, 2, verb, verb_len, &s->layout),
                     LW_OK);
    lw_rng r;
    lw_rng_seed(&r, 77);
    tl_alternating_dataset(&s->data, N_EX);
    s->prompts.n = N_EX;
    s->prompts.ids = calloc(N_EX, sizeof *s->prompts.ids);
    s->prompts.len = calloc(N_EX, sizeof *s->prompts.len);
    for (int i = 0; i < N_EX; i++) {
        int label = i % 2, n_text = 2 + (int)lw_rng_below(&r, 4), key = (int)lw_rng_below(&r, (uint64_t)n_text);
        int n = N_BEFORE + n_text + 2, *p = malloc((size_t)n * sizeof *p);
        memcpy(p, before, sizeof before);
        for (int k = 0; k < n_text; k++) p[N_BEFORE + k] = k == key ? 13 + (int)lw_rng_below(&r, 8) : 3 + label;
        memcpy(p + N_BEFORE + n_text, after, sizeof after);
        s->prompts.ids[i] = p;
        s->prompts.len[i] = n;
        if (n > s->prompts.max_len) s->prompts.max_len = n;
    }
    lw_lora_config lc;
    ck_assert_int_eq(lw_lora_config_parse(&lc, 4, 8.0f, 0.0f, "q,v", NULL), LW_OK);
    ck_assert_msg(lw_text_trainer_create(&s->t, s->receiver, &s->layout, method, M_SOFT, &lc, s->prompts.max_len,
                                         seed) == LW_OK, "%s", lw_last_error());
}

static void setup_close(setup *s)
{
    lw_text_trainer_free(&s->t);
    lw_text_prompts_free(&s->prompts);
    lw_dataset_free(&s->data);
    lw_receiver_layout_free(&s->layout);
    lw_model_free(s->receiver);
}

static lw_train_options options(int steps, float lr)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = lr, .steps = steps, .batch = 4, .grad_accum = 2, .warmup_steps = 3,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = getenv("TB_VERBOSE") == NULL;
    return o;
}

static double accuracy(setup *s)
{
    int right = 0;
    for (int i = 0; i < N_EX; i++) {
        double sc[2];
        ck_assert_int_eq(lw_text_trainer_score(&s->t, s->prompts.ids[i], s->prompts.len[i], sc), LW_OK);
        right += (sc[1] > sc[0]) == (s->data.examples[i].label == 1);
    }
    return (double)right / N_EX;
}

/* The largest gradient entries of a few examples against central finite
 * differences of lw_text_trainer_loss. */
static void check_gradient(setup *s)
{
    size_t n;
    float *g, *p = lw_text_trainer_params(&s->t, &g, &n);
    int checked = 0;
    for (int i = 0; i < 4; i++) {
        const int *ids = s->prompts.ids[i];
        int len = s->prompts.len[i], label = s->data.examples[i].label;
        lw_text_trainer_zero_grad(&s->t);
        ck_assert_int_eq(lw_text_trainer_example(&s->t, ids, len, label, 1.0f, NULL, NULL), LW_OK);
        for (int round = 0; round < 3; round++) {
            size_t best = 0;
            for (size_t j = 0; j < n; j++)
                if (fabsf(g[j]) > fabsf(g[best])) best = j;
            if (fabsf(g[best]) < 1e-3f) break;
            float keep = p[best], eps = 1e-3f, lp, lm, gj = g[best];
            p[best] = keep + eps;
            ck_assert_int_eq(lw_text_trainer_loss(&s->t, ids, len, label, &lp), LW_OK);
            p[best] = keep - eps;
            ck_assert_int_eq(lw_text_trainer_loss(&s->t, ids, len, label, &lm), LW_OK);
            p[best] = keep;
            double fd = ((double)lp - lm) / (2.0 * eps), tol = 1e-2 + 3e-2 * fabs(fd);
            ck_assert_msg(fabs(fd - gj) <= tol, "example %d, param %zu: analytic %g, finite difference %g", i, best,
                          (double)gj, fd);
            g[best] = 0.0f;   /* the next largest next round */
            checked++;
        }
    }
    ck_assert_int_ge(checked, 8);
}

START_TEST(prompt_tuning_gradient_matches_finite_differences)
{
    setup s;
    setup_open(&s, LW_TEXT_PROMPT_TUNING, 3);
    ck_assert_int_eq((int)lw_text_trainer_n_params(&s.t), M_SOFT * 16);
    check_gradient(&s);
    setup_close(&s);
}
END_TEST

START_TEST(lora_gradient_matches_finite_differences)
{
    setup s;
    setup_open(&s, LW_TEXT_LORA, 3);
    size_t n;
    float *g, *p = lw_text_trainer_params(&s.t, &g, &n);
    ck_assert_int_gt((int)n, 0);
    lw_rng r;   /* B = 0 at init would leave A's gradient zero: give B (and A) some values */
    lw_rng_seed(&r, 9);
    for (size_t j = 0; j < n; j++) p[j] += 0.3f * (float)lw_rng_normal(&r);
    check_gradient(&s);
    setup_close(&s);
}
END_TEST

static void learns(lw_text_method method, float lr, int steps)
{
    setup s;
    setup_open(&s, method, 3);
    double before = accuracy(&s);
    lw_train_options o = options(steps, lr);
    lw_train_result r;
    ck_assert_msg(lw_text_train_run(&s.t, &s.prompts, &s.data, &o, &r) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(r.steps_done, steps);
    double after = accuracy(&s);
    ck_assert_msg(after >= 0.9, "%s: accuracy %.3f before, %.3f after training (loss %.4f)",
                  lw_text_method_name(method), before, after, r.last_loss);
    setup_close(&s);
}

START_TEST(prompt_tuning_learns_a_separable_task) { learns(LW_TEXT_PROMPT_TUNING, 1e-1f, 400); }
END_TEST

START_TEST(lora_learns_a_separable_task) { learns(LW_TEXT_LORA, 3e-2f, 150); }
END_TEST

/* 8 steps straight vs 4 steps, checkpoint, 4 more resumed from it; then the
 * final folder opened for evaluation scores as the trained trainer does. */
static void resume_and_open(lw_text_method method, const char *name)
{
    char a[4200], b[4200], mid[4300], fin[4300];
    snprintf(a, sizeof a, "%s/a", tl_tmpdir(name));
    snprintf(b, sizeof b, "%s/b", tl_tmpdir(name));
    setup s, u, e;
    setup_open(&s, method, 4);
    lw_train_options o = options(8, 1e-2f);
    o.out_dir = a;
    o.checkpoint_every = 4;
    lw_train_result r;
    ck_assert_msg(lw_text_train_run(&s.t, &s.prompts, &s.data, &o, &r) == LW_OK, "%s", lw_last_error());
    setup_open(&u, method, 4);
    snprintf(mid, sizeof mid, "%s/step-4", a);
    o.out_dir = b;
    o.resume_dir = mid;
    ck_assert_msg(lw_text_train_run(&u.t, &u.prompts, &u.data, &o, &r) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(r.steps_done, 4);
    size_t n, nu;
    float *g, *p = lw_text_trainer_params(&s.t, &g, &n), *pu = lw_text_trainer_params(&u.t, &g, &nu);
    ck_assert_int_eq((int)n, (int)nu);
    ck_assert_msg(!memcmp(p, pu, n * sizeof(float)), "%s: the resumed run differs", name);

    /* evaluation: a fresh trainer (another seed) opened on the final folder */
    setup_open(&e, method, 99);
    snprintf(fin, sizeof fin, "%s/final", a);
    if (method == LW_TEXT_PROMPT_TUNING) {
        int M = 0;
        ck_assert_int_eq(lw_text_checkpoint_soft_tokens(fin, &M), LW_OK);
        ck_assert_int_eq(M, M_SOFT);
    }
    ck_assert_msg(lw_text_trainer_open(&e.t, fin) == LW_OK, "%s", lw_last_error());
    float *pe = lw_text_trainer_params(&e.t, &g, &nu);
    ck_assert_int_eq((int)n, (int)nu);
    ck_assert(!memcmp(p, pe, n * sizeof(float)));
    for (int i = 0; i < 6; i++) {
        double x[2], y[2];
        ck_assert_int_eq(lw_text_trainer_score(&s.t, s.prompts.ids[i], s.prompts.len[i], x), LW_OK);
        ck_assert_int_eq(lw_text_trainer_score(&e.t, e.prompts.ids[i], e.prompts.len[i], y), LW_OK);
        ck_assert(x[0] == y[0] && x[1] == y[1]);
    }
    /* a prompt-tuning folder is not a LoRA one, and the reverse */
    setup w;
    setup_open(&w, method == LW_TEXT_LORA ? LW_TEXT_PROMPT_TUNING : LW_TEXT_LORA, 1);
    ck_assert_int_ne(lw_text_trainer_open(&w.t, fin), LW_OK);
    setup_close(&w);
    setup_close(&e);
    setup_close(&u);
    setup_close(&s);
}

START_TEST(prompt_tuning_resumes_bit_exact_and_reopens) { resume_and_open(LW_TEXT_PROMPT_TUNING, "tb_prompt"); }
END_TEST

START_TEST(lora_resumes_bit_exact_and_reopens) { resume_and_open(LW_TEXT_LORA, "tb_lora"); }
END_TEST

/* Packed micro-batches (receiver_pack.c) against one example at a time
 * from position 0: the same run to float rounding, for prompt tuning (head
 * cached) and LoRA (whole examples packed, its grads gathered in one pass). */
static void packed_follows_one_example_at_a_time(lw_text_method method, float lr)
{
    setup a, b;
    setup_open(&a, method, 3);
    setup_open(&b, method, 3);
    lw_train_options o = options(4, lr), ob = o;
    ob.no_head_cache = true;
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_text_train_run(&a.t, &a.prompts, &a.data, &o, &ra), LW_OK);
    ck_assert_int_eq(lw_text_train_run(&b.t, &b.prompts, &b.data, &ob, &rb), LW_OK);
    ck_assert_ptr_nonnull(a.t.rx.pack);
    ck_assert_ptr_null(b.t.rx.pack);
    ck_assert_msg(fabs(ra.last_loss - rb.last_loss) <= 1e-4 * fabs(rb.last_loss), "last loss packed %.8g, alone %.8g",
                  ra.last_loss, rb.last_loss);
    size_t n;
    float *g, *pa = lw_text_trainer_params(&a.t, &g, &n), *pb = lw_text_trainer_params(&b.t, &g, &n);
    tl_assert_close_to_scale(pa, pb, n, 1e-4, lw_text_method_name(method));
    setup_close(&a);
    setup_close(&b);
}

START_TEST(packed_prompt_tuning_follows_one_example_at_a_time)
{
    packed_follows_one_example_at_a_time(LW_TEXT_PROMPT_TUNING, 1e-1f);
}
END_TEST

START_TEST(packed_lora_follows_one_example_at_a_time) { packed_follows_one_example_at_a_time(LW_TEXT_LORA, 1e-2f); }
END_TEST

/* Gradient accumulation is the mean over the whole step: batch 4 x
 * grad_accum 2 against batch 8 x 1 (the same 8 examples a step), clipping
 * off: the same logged loss and gradient norm, the same parameters. */
static void grad_accum_matches_one_big_batch(lw_text_method method, float lr, const char *name)
{
    char dir_a[4200], dir_b[4200];
    snprintf(dir_a, sizeof dir_a, "%s/accum", tl_tmpdir(name));
    snprintf(dir_b, sizeof dir_b, "%s/batch", tl_tmpdir(name));
    setup a, b;
    setup_open(&a, method, 3);
    setup_open(&b, method, 3);
    lw_train_options oa = options(2, lr), ob = oa;
    oa.cfg.grad_clip = ob.cfg.grad_clip = 0.0f;
    ob.cfg.batch = 8, ob.cfg.grad_accum = 1;
    oa.out_dir = dir_a, ob.out_dir = dir_b;
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_text_train_run(&a.t, &a.prompts, &a.data, &oa, &ra), LW_OK);
    ck_assert_int_eq(lw_text_train_run(&b.t, &b.prompts, &b.data, &ob, &rb), LW_OK);
    double loss_a[2], loss_b[2], gn_a[2], gn_b[2];
    ck_assert_int_eq(tl_read_train_log(dir_a, 2, loss_a, gn_a), 2);
    ck_assert_int_eq(tl_read_train_log(dir_b, 2, loss_b, gn_b), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(gn_b[i] > 1e-3, "%s step %d: grad_norm %g is too small to compare", name, i + 1, gn_b[i]);
        ck_assert_msg(fabs(loss_a[i] - loss_b[i]) <= 1e-5 * fabs(loss_b[i]) + 2e-6, "%s step %d loss: %.8g, %.8g",
                      name, i + 1, loss_a[i], loss_b[i]);
        ck_assert_msg(fabs(gn_a[i] - gn_b[i]) <= 1e-5 * fabs(gn_b[i]) + 2e-6, "%s step %d grad_norm: %.8g, %.8g",
                      name, i + 1, gn_a[i], gn_b[i]);
    }
    size_t n;
    float *g, *pa = lw_text_trainer_params(&a.t, &g, &n), *pb = lw_text_trainer_params(&b.t, &g, &n);
    tl_assert_close_to_scale(pa, pb, n, 1e-5, name);
    setup_close(&a);
    setup_close(&b);
}

START_TEST(prompt_tuning_grad_accum_matches_one_big_batch)
{
    grad_accum_matches_one_big_batch(LW_TEXT_PROMPT_TUNING, 1e-1f, "tb_accum_prompt");
}
END_TEST

START_TEST(bad_prompts_are_refused)
{
    setup s;
    setup_open(&s, LW_TEXT_PROMPT_TUNING, 3);
    const int short_ids[] = {1, 5};                   /* shorter than the template head */
    const int bad_id[] = {1, 5, 6, 99, 7, 8};         /* outside the vocab */
    int *longer = calloc(80, sizeof(int));            /* past max_T */
    float loss;
    double sc[2];
    ck_assert_int_ne(lw_text_trainer_loss(&s.t, short_ids, 2, 0, &loss), LW_OK);
    ck_assert_int_ne(lw_text_trainer_loss(&s.t, bad_id, 6, 0, &loss), LW_OK);
    ck_assert_int_ne(lw_text_trainer_score(&s.t, longer, 80, sc), LW_OK);
    ck_assert_int_ne(lw_text_trainer_loss(&s.t, s.prompts.ids[0], s.prompts.len[0], 2, &loss), LW_OK);
    ck_assert_int_eq(lw_text_method_from_name("lora"), LW_TEXT_LORA);
    ck_assert_int_eq(lw_text_method_from_name("prompt-tuning"), LW_TEXT_PROMPT_TUNING);
    ck_assert_int_eq(lw_text_method_from_name("bridge"), -1);
    free(longer);
    setup_close(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train_baselines");
    TCase *c = tcase_create("core");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, prompt_tuning_gradient_matches_finite_differences);
    tcase_add_test(c, lora_gradient_matches_finite_differences);
    tcase_add_test(c, prompt_tuning_learns_a_separable_task);
    tcase_add_test(c, lora_learns_a_separable_task);
    tcase_add_test(c, prompt_tuning_resumes_bit_exact_and_reopens);
    tcase_add_test(c, lora_resumes_bit_exact_and_reopens);
    tcase_add_test(c, packed_prompt_tuning_follows_one_example_at_a_time);
    tcase_add_test(c, packed_lora_follows_one_example_at_a_time);
    tcase_add_test(c, prompt_tuning_grad_accum_matches_one_big_batch);
    tcase_add_test(c, bad_prompts_are_refused);
    suite_add_tcase(s, c);
    return tl_run_suite(s);
}
