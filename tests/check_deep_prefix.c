/* The deep prefix (runtime/model/deep_prefix.h) on tiny random llama-like and
 * gemma3-like models (the latter with a sliding window of 3 over 7 rows):
 * a prefix of length 0 is the base model bit for bit; the gradients of the
 * generator's parameters, of the soft tokens through it and of the text
 * embeddings match central finite differences; the prefix stays visible
 * past the window; a continuation over the KV cache equals one call; the
 * file round-trips and an AdamW run resumes bit for bit. */
#include "testlib.h"
#include "grad_check.h"
#include "tiny_models.h"
#include "adamw.h"
#include "adapter_file.h"
#include "adapter_set.h"
#include "adapters.h"
#include "deep_prefix.h"
#include "lora.h"
#include "model.h"
#include "ops.h"
#include "random_weights.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 7, M = 3, P = 2, MAXPOS = T + P };

static const int loss_rows[] = {1, 4, 6};
static const int loss_targets[] = {4, 7, 2};
enum { N_LOSS = 3 };

typedef struct {
    lw_model *m;
    lw_state *s;
    lw_backward_scratch *g;
    lw_deep_prefix dp;
    lw_receiver_adapters ad;
    float soft[M * 16];     /* [M, H] */
    float embeds[T * 16];   /* [T, H] */
    float logits[T * 16];
    float probs[N_LOSS * 16];
    float dropout;
} fixture;

static void setup(fixture *f, const lw_model_config *c, float dropout, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(lw_model_init_random(c, seed, &f->m), LW_OK);
    ck_assert_int_eq(lw_state_alloc(f->m, MAXPOS, true, &f->s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(f->m, T, &f->g), LW_OK);
    lw_deep_prefix_config pc = {.length = P, .dropout = dropout, .hidden = 8};
    ck_assert_int_eq(lw_deep_prefix_create(&f->dp, &pc, c), LW_OK);
    lw_deep_prefix_init(&f->dp, seed + 1);
    /* biases and the LN gain off their init, so their gradients are tested in general position */
    lw_rng r;
    lw_rng_seed(&r, seed + 2);
    for (size_t i = 0; i < f->dp.p.n_params; i++) f->dp.p.params[i] += (float)(0.1 * lw_rng_normal(&r));
    ck_assert_int_eq(lw_adapters_init(&f->ad, f->m, T, NULL, P), LW_OK);
    lw_deep_prefix_attach(&f->dp, &f->ad);
    for (int i = 0; i < M * c->hidden; i++) f->soft[i] = (float)lw_rng_normal(&r);
    for (int i = 0; i < T * c->hidden; i++) f->embeds[i] = (float)lw_rng_normal(&r);
    f->dropout = dropout;
}

static void teardown(fixture *f)
{
    lw_adapters_free(&f->ad);
    lw_deep_prefix_free(&f->dp);
    lw_backward_scratch_free(f->g);
    lw_state_free(f->s);
    lw_model_free(f->m);
}

static void run_forward(fixture *f, const lw_receiver_adapters *ad)
{
    if (ad && ad->prefix_len > 0)
        ck_assert_int_eq(lw_deep_prefix_forward(&f->dp, f->soft, M, f->dropout > 0, 77), LW_OK);
    lw_forward_args a = {.embeds = f->embeds, .T = T, .logits = f->logits, .all_logits = true,
                         .capture_layer = -1, .adapters = ad};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
}

static float loss(fixture *f)
{
    run_forward(f, &f->ad);
    int V = f->m->cfg.vocab;
    float rows[N_LOSS * 16];
    for (int i = 0; i < N_LOSS; i++) memcpy(rows + i * V, f->logits + loss_rows[i] * V, (size_t)V * sizeof(float));
    return cross_entropy_forward(f->probs, rows, loss_targets, N_LOSS, V);
}

/* Forward and backward: generator grads, dsoft [M, H], dx [T, H]. */
static void analytic(fixture *f, float *dsoft, float *dx)
{
    int V = f->m->cfg.vocab, H = f->m->cfg.hidden;
    loss(f);
    float dl[N_LOSS * 16] = {0};
    cross_entropy_backward(dl, f->probs, loss_targets, N_LOSS, V, 1.0f);
    lw_deep_prefix_zero_grad(&f->dp);
    ck_assert_int_eq(lw_model_backward_adapted(f->m, f->s, f->g, &f->ad, loss_rows, N_LOSS, dl, dx), LW_OK);
    memset(dsoft, 0, (size_t)M * H * sizeof(float));
    lw_deep_prefix_backward(&f->dp, dsoft);
}

static double central(fixture *f, float *val)
{
    const float eps = 5e-3f;
    float keep = *val;
    *val = keep + eps;
    double up = loss(f);
    *val = keep - eps;
    double down = loss(f);
    *val = keep;
    return (up - down) / (2.0 * eps);
}

/* Every generator parameter, soft-token element and text-embedding element. */
static void check_gradients(const lw_model_config *c, float dropout, uint64_t seed)
{
    fixture f;
    setup(&f, c, dropout, seed);
    int H = c->hidden;
    float dsoft[M * 16], dx[T * 16];
    analytic(&f, dsoft, dx);
    size_t n = f.dp.p.n_params;
    float *an = malloc(n * sizeof(float));
    memcpy(an, f.dp.p.grads, n * sizeof(float));
    for (int i = 0; i < f.dp.p.n_tensors; i++) {
        const lw_adapter_tensor *t = &f.dp.p.tensors[i];
        double *fd = calloc(t->count, sizeof(double)), worst = 0.0, norm = 0.0;
        for (size_t k = 0; k < t->count; k++) fd[k] = central(&f, &f.dp.p.params[t->offset + k]);
        int bad = tl_grad_mismatches(an + t->offset, fd, t->count, &worst);
        for (size_t k = 0; k < t->count; k++) norm += fabs(an[t->offset + k]);
        ck_assert_msg(bad == 0, "%s, dropout %.1f: %d of %zu gradients of %s disagree (worst %.2f x tol)", c->name,
                      (double)dropout, bad, t->count, t->name, worst);
        ck_assert_msg(norm > 1e-5, "%s: %s got no gradient", c->name, t->name);
        free(fd);
    }
    double fd_soft[M * 16] = {0}, fd_x[T * 16] = {0}, worst = 0.0;
    for (int i = 0; i < M * H; i++) fd_soft[i] = central(&f, &f.soft[i]);
    ck_assert_msg(tl_grad_mismatches(dsoft, fd_soft, (size_t)M * H, &worst) == 0, "%s: d soft tokens (worst %.2f x tol)",
                  c->name, worst);
    worst = 0.0;
    for (int i = 0; i < T * H; i++) fd_x[i] = central(&f, &f.embeds[i]);
    ck_assert_msg(tl_grad_mismatches(dx, fd_x, (size_t)T * H, &worst) == 0, "%s: d embeds (worst %.2f x tol)", c->name, worst);
    free(an);
    teardown(&f);
}

START_TEST(llama_prefix_gradients)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    check_gradients(&c, 0.0f, 1);
}
END_TEST
START_TEST(gemma_prefix_gradients) { lw_model_config c = tl_tiny_gemma3_config(3); check_gradients(&c, 0.0f, 2); }
END_TEST
START_TEST(prefix_gradients_with_dropout)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    check_gradients(&c, 0.25f, 3);
}
END_TEST

/* LoRA and the prefix together: the text gradient still matches. */
START_TEST(lora_and_prefix_together)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f;
    setup(&f, &c, 0.0f, 4);
    lw_lora lora;
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = (1u << LW_LORA_N_TARGETS) - 1};
    ck_assert_int_eq(lw_lora_create(&lora, &lc, f.m), LW_OK);
    lw_lora_init(&lora, 5);
    for (size_t i = 0; i < lora.p.n_params; i++) lora.p.params[i] += 0.05f * (float)((i * 7919) % 13) - 0.3f;
    lw_adapters_free(&f.ad);
    ck_assert_int_eq(lw_adapters_init(&f.ad, f.m, T, &lora, P), LW_OK);
    lw_deep_prefix_attach(&f.dp, &f.ad);
    float dsoft[M * 16], dx[T * 16];
    lw_adapter_params_zero_grad(&lora.p);
    analytic(&f, dsoft, dx);
    double fd[T * 16] = {0}, worst = 0.0;
    for (int i = 0; i < T * c.hidden; i++) fd[i] = central(&f, &f.embeds[i]);
    ck_assert_msg(tl_grad_mismatches(dx, fd, (size_t)T * c.hidden, &worst) == 0, "d embeds (worst %.2f x tol)", worst);
    const lw_lora_slot *s = lw_lora_slot_at(&lora, 2, LW_LORA_K);
    double fdk[64] = {0};
    for (int i = 0; i < 2 * c.hidden; i++) fdk[i] = central(&f, &lora.p.params[s->a + i]);
    worst = 0.0;
    ck_assert_int_eq(tl_grad_mismatches(lora.p.grads + s->a, fdk, (size_t)2 * c.hidden, &worst), 0);
    worst = 0.0;
    double fds[M * 16] = {0};
    for (int i = 0; i < M * c.hidden; i++) fds[i] = central(&f, &f.soft[i]);
    ck_assert_int_eq(tl_grad_mismatches(dsoft, fds, (size_t)M * c.hidden, &worst), 0);
    teardown(&f);
    lw_lora_free(&lora);
}
END_TEST

/* prefix_len 0 is the base model exactly; a real prefix changes it. */
START_TEST(prefix_of_length_zero_is_base)
{
    lw_model_config cs[2] = {tl_tiny_llama_config(LW_WEIGHTS_GGUF), tl_tiny_gemma3_config(3)};
    for (int k = 0; k < 2; k++) {
        fixture f;
        setup(&f, &cs[k], 0.0f, 10 + k);
        int n = T * cs[k].vocab;
        float base[T * 16];
        run_forward(&f, NULL);
        memcpy(base, f.logits, (size_t)n * sizeof(float));
        lw_receiver_adapters none;
        ck_assert_int_eq(lw_adapters_init(&none, f.m, T, NULL, 0), LW_OK);
        run_forward(&f, &none);
        ck_assert(memcmp(base, f.logits, (size_t)n * sizeof(float)) == 0);
        float dl[N_LOSS * 16] = {0}, d0[T * 16], d1[T * 16];
        for (int i = 0; i < N_LOSS * cs[k].vocab; i++) dl[i] = 0.01f * (float)(i % 7) - 0.02f;
        ck_assert_int_eq(lw_model_backward_rows(f.m, f.s, f.g, loss_rows, N_LOSS, dl, d0), LW_OK);
        ck_assert_int_eq(lw_model_backward_adapted(f.m, f.s, f.g, &none, loss_rows, N_LOSS, dl, d1), LW_OK);
        ck_assert(memcmp(d0, d1, (size_t)T * cs[k].hidden * sizeof(float)) == 0);
        lw_adapters_free(&none);
        run_forward(&f, &f.ad);
        double moved = 0.0;
        for (int i = 0; i < n; i++) moved = fmax(moved, fabs(f.logits[i] - base[i]));
        ck_assert(moved > 1e-3);
        teardown(&f);
    }
}
END_TEST

/* Layer 0 of the gemma model is local with a window of 3: the last row
 * (position 6) still reads layer 0's prefix there, seen in the output of
 * block 0 alone (through later layers any row could carry it). */
static void block0_last_row(fixture *f, float *out)
{
    float hidden[T * 16];
    lw_forward_args a = {.embeds = f->embeds, .T = T, .capture_layer = 1, .hidden_out = hidden, .adapters = &f->ad};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
    memcpy(out, hidden + (T - 1) * f->m->cfg.hidden, (size_t)f->m->cfg.hidden * sizeof(float));
}

START_TEST(prefix_visible_beyond_the_window)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f;
    setup(&f, &c, 0.0f, 20);
    int H = c.hidden, kvd = c.n_kv_heads * c.head_dim;
    ck_assert_int_eq(lw_deep_prefix_forward(&f.dp, f.soft, M, false, 0), LW_OK);
    float before[16], after[16];
    block0_last_row(&f, before);
    for (int i = 0; i < P * kvd; i++) f.dp.v[i] += 1.0f;   /* layer 0's prefix values only */
    block0_last_row(&f, after);
    double moved = 0.0;
    for (int i = 0; i < H; i++) moved = fmax(moved, fabs(after[i] - before[i]));
    ck_assert_msg(moved > 1e-4, "the last row does not see layer 0's prefix (moved %g)", moved);
    teardown(&f);
}
END_TEST

/* Rows fed in two calls over the cache (and through a chunked state) give
 * the logits of one call. */
START_TEST(continuation_equals_one_call)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f;
    setup(&f, &c, 0.0f, 30);
    int V = c.vocab;
    run_forward(&f, &f.ad);
    float whole[T * 16];
    memcpy(whole, f.logits, (size_t)T * V * sizeof(float));
    lw_state *plain = NULL;
    ck_assert_int_eq(lw_state_alloc(f.m, MAXPOS, false, &plain), LW_OK);
    float part[T * 16];
    lw_forward_args a = {.embeds = f.embeds, .T = 4, .logits = part, .all_logits = true, .capture_layer = -1,
                         .adapters = &f.ad};
    ck_assert_int_eq(lw_forward(f.m, plain, &a), LW_OK);
    lw_forward_args b = {.embeds = f.embeds + 4 * c.hidden, .T = T - 4, .pos0 = 4, .logits = part + 4 * V,
                         .all_logits = true, .capture_layer = -1, .adapters = &f.ad};
    ck_assert_int_eq(lw_forward(f.m, plain, &b), LW_OK);
    for (int i = 0; i < T * V; i++)
        ck_assert_msg(fabsf(part[i] - whole[i]) < 1e-4f, "logit %d: %g vs %g", i, (double)part[i], (double)whole[i]);
    /* the state must hold the prefix too */
    lw_state *tight = NULL;
    ck_assert_int_eq(lw_state_alloc(f.m, T, false, &tight), LW_OK);
    a.T = T;
    ck_assert_int_eq(lw_forward(f.m, tight, &a), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "prefix of 2"));
    lw_state_free(tight);
    lw_state_free(plain);
    teardown(&f);
}
END_TEST

static void adamw_steps(fixture *f, lw_adamw *opt, int n)
{
    float dsoft[M * 16], dx[T * 16];
    for (int i = 0; i < n; i++) {
        analytic(f, dsoft, dx);
        lw_adamw_begin_step(opt);
        lw_adapter_params_adamw(&f->dp.p, opt, 1e-2f, 0.01f);
    }
}

START_TEST(save_load_and_resume)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f, g;
    setup(&f, &c, 0.0f, 40);
    setup(&g, &c, 0.0f, 40);
    lw_adamw of, og;
    ck_assert_int_eq(lw_adamw_init(&of, f.dp.p.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_adamw_init(&og, g.dp.p.n_params, lw_adamw_defaults()), LW_OK);
    adamw_steps(&f, &of, 6);
    adamw_steps(&g, &og, 3);
    const char *dir = tl_tmpdir("deep_prefix");
    char w[1024], s[1024];
    snprintf(w, sizeof w, "%s/deep_prefix.safetensors", dir);
    snprintf(s, sizeof s, "%s/deep_prefix_state.safetensors", dir);
    ck_assert_int_eq(lw_deep_prefix_save(&g.dp, w), LW_OK);
    ck_assert_int_eq(lw_adapter_params_save_adamw(&g.dp.p, &og, s), LW_OK);
    lw_deep_prefix_init(&g.dp, 999);
    lw_adamw_free(&og);
    ck_assert_int_eq(lw_adamw_init(&og, g.dp.p.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_deep_prefix_load(&g.dp, w), LW_OK);
    ck_assert_int_eq(lw_adapter_params_load_adamw(&g.dp.p, &og, s), LW_OK);
    adamw_steps(&g, &og, 3);
    ck_assert(memcmp(f.dp.p.params, g.dp.p.params, f.dp.p.n_params * sizeof(float)) == 0);
    char *meta = NULL;
    ck_assert_int_eq(lw_adapter_read_meta(w, "deep_prefix", &meta), LW_OK);
    ck_assert_ptr_nonnull(meta);
    ck_assert_ptr_nonnull(strstr(meta, "\"length\":2"));
    free(meta);

    /* another length: refused by shape, and the params stay as they were */
    lw_deep_prefix other;
    lw_deep_prefix_config pc = {.length = 3, .hidden = 8};
    ck_assert_int_eq(lw_deep_prefix_create(&other, &pc, &c), LW_OK);
    lw_deep_prefix_init(&other, 5);
    float keep = other.p.params[other.pos];
    ck_assert_int_eq(lw_deep_prefix_load(&other, w), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "positions"));
    ck_assert(other.p.params[other.pos] == keep);
    lw_deep_prefix_free(&other);
    lw_adamw_free(&of);
    lw_adamw_free(&og);
    teardown(&f);
    teardown(&g);
}
END_TEST

START_TEST(bad_configs_are_refused)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    lw_deep_prefix dp;
    lw_deep_prefix_config bad[] = {{.length = 0, .hidden = 8}, {.length = 4, .hidden = 0},
                                   {.length = 4, .hidden = 8, .dropout = 1.0f}, {.length = 300, .hidden = 8}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(lw_deep_prefix_create(&dp, &bad[i], &c), LW_ERR_INVALID);
        ck_assert_ptr_nonnull(strstr(lw_last_error(), "deep prefix for tiny-llama"));
    }
    fixture f;
    setup(&f, &c, 0.0f, 50);
    ck_assert_int_eq(lw_deep_prefix_forward(&f.dp, f.soft, 0, false, 0), LW_ERR_INVALID);
    f.ad.prefix_k = NULL;
    lw_forward_args a = {.embeds = f.embeds, .T = T, .logits = f.logits, .capture_layer = -1, .adapters = &f.ad};
    ck_assert_int_eq(lw_forward(f.m, f.s, &a), LW_ERR_INVALID);
    teardown(&f);
}
END_TEST

/* The training loop's view (adapter_set.h): soft tokens that are both
 * input rows 1..M of the receiver and the prefix generator's input get the
 * sum of both gradients, matching finite differences; a run saved and
 * resumed through the set's files continues bit for bit. */
typedef struct {
    lw_model *m;
    lw_state *s;
    lw_backward_scratch *g;
    lw_adapter_set set;
    float soft[M * 16], embeds[T * 16], logits[T * 16], probs[N_LOSS * 16];
} set_fixture;

static void set_setup(set_fixture *f, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    lw_model_config c = tl_tiny_gemma3_config(3);
    ck_assert_int_eq(lw_model_init_random(&c, seed, &f->m), LW_OK);
    lw_lora_config lc = {.rank = 2, .alpha = 4, .dropout = 0.1f, .targets = (1u << LW_LORA_Q) | (1u << LW_LORA_DOWN)};
    lw_deep_prefix_config pc = {.length = P, .dropout = 0.1f, .hidden = 8};
    ck_assert_int_eq(lw_adapter_set_create(&f->set, f->m, T, &lc, &pc, seed), LW_OK);
    ck_assert_int_eq(lw_state_alloc(f->m, T + lw_adapter_set_extra_positions(&f->set), true, &f->s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(f->m, T, &f->g), LW_OK);
    lw_rng r;
    lw_rng_seed(&r, seed + 5);
    for (int i = 0; i < M * c.hidden; i++) f->soft[i] = (float)lw_rng_normal(&r);
    for (int i = 0; i < T * c.hidden; i++) f->embeds[i] = (float)lw_rng_normal(&r);
    /* B != 0 so LoRA takes part in the gradient */
    for (size_t i = 0; i < f->set.lora.p.n_params; i++)
        if (f->set.lora.p.params[i] == 0.0f) f->set.lora.p.params[i] = (float)(0.2 * lw_rng_normal(&r));
}

static void set_teardown(set_fixture *f)
{
    lw_adapter_set_free(&f->set);
    lw_backward_scratch_free(f->g);
    lw_state_free(f->s);
    lw_model_free(f->m);
}

/* The loss with the soft tokens at rows 1..M; with dsoft, its gradient. */
static float set_example(set_fixture *f, uint64_t seed, float *dsoft)
{
    int H = f->m->cfg.hidden, V = f->m->cfg.vocab;
    memcpy(f->embeds + H, f->soft, (size_t)M * H * sizeof(float));
    ck_assert_int_eq(lw_adapter_set_forward(&f->set, f->soft, M, true, seed), LW_OK);
    lw_forward_args a = {.embeds = f->embeds, .T = T, .logits = f->logits, .all_logits = true, .capture_layer = -1,
                         .adapters = &f->set.ad};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
    float rows[N_LOSS * 16];
    for (int i = 0; i < N_LOSS; i++) memcpy(rows + i * V, f->logits + loss_rows[i] * V, (size_t)V * sizeof(float));
    float l = cross_entropy_forward(f->probs, rows, loss_targets, N_LOSS, V);
    if (!dsoft) return l;
    float dl[N_LOSS * 16] = {0}, dx[T * 16];
    cross_entropy_backward(dl, f->probs, loss_targets, N_LOSS, V, 1.0f);
    ck_assert_int_eq(lw_model_backward_adapted(f->m, f->s, f->g, &f->set.ad, loss_rows, N_LOSS, dl, dx), LW_OK);
    memcpy(dsoft, dx + H, (size_t)M * H * sizeof(float));
    lw_adapter_set_backward(&f->set, dsoft);
    return l;
}

static void set_steps(set_fixture *f, int n, long first)
{
    float dsoft[M * 16];
    for (int i = 0; i < n; i++) {
        lw_adapter_set_zero_grad(&f->set);
        set_example(f, (uint64_t)(first + i), dsoft);
        double norm = sqrt(lw_adapter_set_grad_sq(&f->set));
        if (norm > 1.0) lw_adapter_set_scale_grads(&f->set, (float)(1.0 / norm));
        lw_adapter_set_adamw_step(&f->set, 1e-2f, 0.01f);
    }
}

START_TEST(adapter_set_gradient_and_resume)
{
    set_fixture f, g;
    set_setup(&f, 60);
    int H = f.m->cfg.hidden;
    float dsoft[M * 16];
    lw_adapter_set_zero_grad(&f.set);
    set_example(&f, 3, dsoft);
    double fd[M * 16], worst = 0.0;
    for (int i = 0; i < M * H; i++) {
        const float eps = 5e-3f;
        float keep = f.soft[i];
        f.soft[i] = keep + eps;
        double up = set_example(&f, 3, NULL);
        f.soft[i] = keep - eps;
        double down = set_example(&f, 3, NULL);
        f.soft[i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    ck_assert_msg(tl_grad_mismatches(dsoft, fd, (size_t)M * H, &worst) == 0, "d soft through rows and prefix (worst %.2f)",
                  worst);
    ck_assert(lw_adapter_set_n_params(&f.set) == f.set.lora.p.n_params + f.set.prefix.p.n_params);

    set_setup(&g, 60);
    set_steps(&f, 6, 0);
    set_steps(&g, 3, 0);
    const char *dir = tl_tmpdir("adapter_set");
    ck_assert_int_eq(lw_adapter_set_save(&g.set, dir), LW_OK);
    set_teardown(&g);
    set_setup(&g, 61);   /* other init: everything must come from the files */
    memcpy(g.soft, f.soft, sizeof g.soft);
    memcpy(g.embeds, f.embeds, sizeof g.embeds);
    lw_model_free(g.m);
    lw_model_config c = tl_tiny_gemma3_config(3);
    ck_assert_int_eq(lw_model_init_random(&c, 60, &g.m), LW_OK);
    ck_assert_int_eq(lw_adapter_set_load(&g.set, dir), LW_OK);
    set_steps(&g, 3, 3);
    ck_assert(memcmp(f.set.lora.p.params, g.set.lora.p.params, f.set.lora.p.n_params * sizeof(float)) == 0);
    ck_assert(memcmp(f.set.prefix.p.params, g.set.prefix.p.params, f.set.prefix.p.n_params * sizeof(float)) == 0);
    set_teardown(&f);
    set_teardown(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deep_prefix");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, prefix_of_length_zero_is_base);
    tcase_add_test(tc, llama_prefix_gradients);
    tcase_add_test(tc, gemma_prefix_gradients);
    tcase_add_test(tc, prefix_gradients_with_dropout);
    tcase_add_test(tc, lora_and_prefix_together);
    tcase_add_test(tc, prefix_visible_beyond_the_window);
    tcase_add_test(tc, continuation_equals_one_call);
    tcase_add_test(tc, save_load_and_resume);
    tcase_add_test(tc, bad_configs_are_refused);
    tcase_add_test(tc, adapter_set_gradient_and_resume);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
