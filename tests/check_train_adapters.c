/* LoRA and the deep prefix trained jointly with the bridge through the
 * trainer (train.h, adapter_set.h) on a tiny synthetic pair: the adapters'
 * gradients of one example match finite differences of the trainer's own
 * loss; label scoring runs through them; lw_train_run moves them, saves
 * them beside the bridge and a resumed run ends bit for bit where the
 * straight run ends; packed steps (a micro-batch in one receiver pass)
 * follow one example at a time, with LoRA and with LoRA and a deep prefix. */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter_set.h"
#include "train.h"

enum { S_HIDDEN = 8, N_EX = 16, M_SOFT = 2 };

typedef struct {
    lw_model *receiver;
    lw_receiver_layout layout;
    lw_bridge bridge;
    lw_trainer trainer;
    lw_adapter_set set;
    lw_dataset data;
    lw_sender_cache states;
} pair;

static void setup_with(pair *p, uint64_t adapter_seed, bool with_prefix, float prefix_dropout)
{
    memset(p, 0, sizeof *p);
    tl_tiny_trainer(M_SOFT, S_HIDDEN, 0.0f, &p->receiver, &p->layout, &p->bridge, &p->trainer);
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = (1u << LW_LORA_Q) | (1u << LW_LORA_V) | (1u << LW_LORA_DOWN)};
    lw_deep_prefix_config pc = {.length = 2, .hidden = 8, .dropout = prefix_dropout};
    ck_assert_int_eq(lw_adapter_set_create(&p->set, p->receiver, p->trainer.max_T, &lc, with_prefix ? &pc : NULL,
                                           adapter_seed), LW_OK);
    ck_assert_int_eq(lw_trainer_attach_adapters(&p->trainer, &p->set), LW_OK);

    lw_rng r;
    lw_rng_seed(&r, 5);
    int tokens[N_EX];
    tl_alternating_dataset(&p->data, N_EX);
    for (int i = 0; i < N_EX; i++) tokens[i] = 3 + (int)lw_rng_below(&r, 3);
    ck_assert_int_eq(lw_sender_cache_init_memory(&p->states, N_EX, S_HIDDEN, tokens), LW_OK);
    for (int i = 0; i < N_EX; i++) {
        float *x = p->states.mem + p->states.offset[i];
        for (int t = 0; t < tokens[i] * S_HIDDEN; t++) x[t] = (float)lw_rng_normal(&r) + (i % 2 ? 1.0f : -1.0f);
    }
}

static void setup(pair *p, uint64_t adapter_seed, bool with_prefix) { setup_with(p, adapter_seed, with_prefix, 0.0f); }

static void teardown(pair *p)
{
    lw_trainer_free(&p->trainer);
    lw_adapter_set_free(&p->set);
    lw_bridge_free(&p->bridge);
    lw_receiver_layout_free(&p->layout);
    lw_model_free(p->receiver);
    lw_dataset_free(&p->data);
    lw_sender_cache_close(&p->states);
}

/* Every 5th element of each adapter tensor against finite differences of
 * the trainer's loss on example 1 (label 1: two verbalizer tokens). */
static void check_params(pair *p, lw_adapter_params *ap, const char *what)
{
    int T = p->states.tokens[1];
    const float *x = p->states.mem + p->states.offset[1];
    int checked = 0;
    for (int k = 0; k < ap->n_tensors; k++) {
        const lw_adapter_tensor *t = &ap->tensors[k];
        for (size_t i = 0; i < t->count; i += 5) {
            float *w = &ap->params[t->offset + i], keep = *w, up, down;
            const float eps = 5e-3f;
            *w = keep + eps;
            ck_assert_int_eq(lw_trainer_loss(&p->trainer, x, T, 1, &up), LW_OK);
            *w = keep - eps;
            ck_assert_int_eq(lw_trainer_loss(&p->trainer, x, T, 1, &down), LW_OK);
            *w = keep;
            double fd = (up - down) / (2.0 * eps), an = ap->grads[t->offset + i];
            ck_assert_msg(fabs(an - fd) <= 3e-2 * fabs(fd) + 2e-3, "%s %s[%zu]: analytic %g, numeric %g", what,
                          t->name, i, an, fd);
            checked++;
        }
    }
    ck_assert_int_gt(checked, 10);
}

START_TEST(adapter_gradients_through_the_trainer)
{
    pair p;
    setup(&p, 21, true);
    /* B != 0 so that A has a gradient too */
    lw_rng r;
    lw_rng_seed(&r, 22);
    for (size_t i = 0; i < p.set.lora.p.n_params; i++)
        if (p.set.lora.p.params[i] == 0.0f) p.set.lora.p.params[i] = (float)(0.2 * lw_rng_normal(&r));
    lw_bridge_zero_grad(&p.bridge);
    lw_adapter_set_zero_grad(&p.set);
    float loss;
    int T = p.states.tokens[1];
    ck_assert_int_eq(lw_trainer_example(&p.trainer, p.states.mem + p.states.offset[1], T, 1, 1.0f, &loss, NULL),
                     LW_OK);
    ck_assert(isfinite(loss));
    check_params(&p, &p.set.lora.p, "lora");
    check_params(&p, &p.set.prefix.p, "prefix");
    /* the bridge still learns through both paths: its gradient is nonzero */
    ck_assert(lw_grad_norm(p.bridge.grads, p.bridge.n_params) > 0.0);
    double scores[2];
    ck_assert_int_eq(lw_trainer_score(&p.trainer, p.states.mem + p.states.offset[1], T, scores), LW_OK);
    ck_assert(isfinite(scores[0]) && isfinite(scores[1]) && scores[0] < 0 && scores[1] < 0);
    teardown(&p);
}
END_TEST

static lw_train_options options(int steps, const char *out, const char *resume)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = steps, .batch = 2, .grad_accum = 2, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 0.5f, .seed = 9};
    o.checkpoint_every = 2;
    o.out_dir = out;
    o.resume_dir = resume;
    o.quiet = true;
    return o;
}

START_TEST(train_run_moves_saves_and_resumes_adapters)
{
    const char *dir = tl_tmpdir("train_adapters");
    char straight[4096], from[4200], resumed[4200];
    snprintf(straight, sizeof straight, "%s/straight", dir);
    snprintf(from, sizeof from, "%s/step-2", straight);
    snprintf(resumed, sizeof resumed, "%s/resumed", dir);
    pair a, b;
    setup(&a, 31, true);
    float b0 = a.set.lora.p.params[lw_lora_slot_at(&a.set.lora, 0, LW_LORA_Q)->b];
    lw_train_options o = options(4, straight, NULL);
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &r), LW_OK);
    ck_assert_int_eq(r.steps_done, 4);
    ck_assert(a.set.lora.p.params[lw_lora_slot_at(&a.set.lora, 0, LW_LORA_Q)->b] != b0);
    char path[4300];
    snprintf(path, sizeof path, "%s/final/lora.safetensors", straight);
    ck_assert(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/final/deep_prefix_state.safetensors", straight);
    ck_assert(access(path, F_OK) == 0);

    setup(&b, 77, true);   /* other adapter init: everything must come from step-2 */
    lw_train_options o2 = options(4, resumed, from);
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o2, &r), LW_OK);
    ck_assert_int_eq(r.steps_done, 2);
    ck_assert(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(a.set.lora.p.params, b.set.lora.p.params, a.set.lora.p.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(a.set.prefix.p.params, b.set.prefix.p.params, a.set.prefix.p.n_params * sizeof(float)) == 0);

    /* evaluation rebuilds the adapters from the checkpoint's own metadata */
    char final_dir[4300];
    snprintf(final_dir, sizeof final_dir, "%s/final", straight);
    lw_adapter_set e;
    bool found = false;
    ck_assert_int_eq(lw_adapter_set_open(&e, a.receiver, a.trainer.max_T, final_dir, &found), LW_OK);
    ck_assert(found && e.has_lora && e.has_prefix);
    ck_assert(e.lora.cfg.rank == 2 && e.lora.cfg.targets == a.set.lora.cfg.targets && e.prefix.cfg.length == 2);
    ck_assert(memcmp(a.set.lora.p.params, e.lora.p.params, a.set.lora.p.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(a.set.prefix.p.params, e.prefix.p.params, a.set.prefix.p.n_params * sizeof(float)) == 0);
    lw_adapter_set_free(&e);
    ck_assert_int_eq(lw_adapter_set_open(&e, a.receiver, a.trainer.max_T, dir, &found), LW_OK);
    ck_assert(!found);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* LoRA (no dropout), and a deep prefix beside it, pack a micro-batch's
 * whole examples into one receiver pass; the run follows one example at a
 * time from position 0 (no_head_cache) to float rounding: bridge, LoRA and
 * prefix generator. The generator's own dropout packs too (it runs outside
 * the pass, its draw repeated for the backward). */
static void packed_follows_alone(bool with_prefix, float prefix_dropout)
{
    pair a, b;
    setup_with(&a, 41, with_prefix, prefix_dropout);
    setup_with(&b, 41, with_prefix, prefix_dropout);
    b.trainer.rx.no_head_cache = true;
    lw_train_options o = options(4, NULL, NULL);
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &ra), LW_OK);
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o, &rb), LW_OK);
    ck_assert_ptr_nonnull(a.trainer.rx.pack);
    ck_assert_ptr_null(b.trainer.rx.pack);
    ck_assert_msg(fabs(ra.last_loss - rb.last_loss) <= 1e-4 * fabs(rb.last_loss), "last loss packed %.8g, alone %.8g",
                  ra.last_loss, rb.last_loss);
    ck_assert_double_eq(ra.train_acc, rb.train_acc);
    tl_assert_close_to_scale(a.bridge.params, b.bridge.params, a.bridge.n_params, 1e-4, "bridge parameters");
    tl_assert_close_to_scale(a.set.lora.p.params, b.set.lora.p.params, a.set.lora.p.n_params, 1e-4,
                             "LoRA parameters");
    if (with_prefix)
        tl_assert_close_to_scale(a.set.prefix.p.params, b.set.prefix.p.params, a.set.prefix.p.n_params, 1e-4,
                                 "deep prefix parameters");
    teardown(&a);
    teardown(&b);
}

START_TEST(packed_steps_follow_one_example_at_a_time)
{
    packed_follows_alone(false, 0.0f);
    packed_follows_alone(true, 0.0f);
    packed_follows_alone(true, 0.3f);
}
END_TEST

/* Clipping takes the bridge's and the adapters' gradients as one vector:
 * with clipping off, the logged grad_norm of a step is the joint norm of
 * the gradients the step leaves; with a clip below it, the gradients the
 * optimiser saw have joint norm max_norm (each part scaled alike). */
START_TEST(clipping_norm_joins_bridge_and_adapters)
{
    const char *dir = tl_tmpdir("train_adapters_clip");
    char out[4200];
    snprintf(out, sizeof out, "%s/noclip", dir);
    pair p;
    setup(&p, 51, true);
    lw_train_options o = options(1, out, NULL);
    o.cfg.grad_clip = 0.0f;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    double nb = lw_grad_norm(p.bridge.grads, p.bridge.n_params), na2 = lw_adapter_set_grad_sq(&p.set);
    double joint = sqrt(nb * nb + na2), logged;
    /* the adapters' share is small (a norm of ~3 beside ~120) but far above the tolerances below */
    ck_assert_msg(joint - nb > 1e-4 * joint, "the adapters' gradient (%g) is too small against the bridge's (%g)",
                  sqrt(na2), nb);
    ck_assert_int_eq(tl_read_train_log(out, 1, NULL, &logged), 1);
    ck_assert_msg(fabs(logged - joint) <= 1e-5 * joint + 2e-6, "logged grad_norm %.8g, joint norm %.8g (bridge %.8g)",
                  logged, joint, nb);
    teardown(&p);

    setup(&p, 51, true);
    o = options(1, NULL, NULL);
    o.cfg.grad_clip = (float)(0.5 * joint);
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    nb = lw_grad_norm(p.bridge.grads, p.bridge.n_params), na2 = lw_adapter_set_grad_sq(&p.set);
    ck_assert_msg(fabs(sqrt(nb * nb + na2) - o.cfg.grad_clip) <= 1e-5 * o.cfg.grad_clip,
                  "clipped joint norm %.8g, max_norm %.8g", sqrt(nb * nb + na2), (double)o.cfg.grad_clip);
    teardown(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train_adapters");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, adapter_gradients_through_the_trainer);
    tcase_add_test(tc, train_run_moves_saves_and_resumes_adapters);
    tcase_add_test(tc, packed_steps_follow_one_example_at_a_time);
    tcase_add_test(tc, clipping_norm_joins_bridge_and_adapters);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
