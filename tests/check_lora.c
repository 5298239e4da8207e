/* LoRA on the receiver (runtime/model/lora.h) on tiny random llama-like and
 * gemma3-like models: a fresh adapter (B = 0) leaves the logits bit for bit;
 * the gradients of A and B for every target kind, and of the input
 * embeddings through the adapted model, match central finite differences
 * (with and without dropout); merged == unmerged; the safetensors file has
 * PEFT's names and config and round-trips; an AdamW run resumed from saved
 * adapter and optimiser state continues bit for bit. */
#include "testlib.h"
#include "grad_check.h"
#include "tiny_models.h"
#include "adamw.h"
#include "adapter_file.h"
#include "adapters.h"
#include "label_scoring.h"
#include "lora.h"
#include "lora_file.h"
#include "model.h"
#include "ops.h"
#include "random_weights.h"
#include "rng.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 7, ALL_TARGETS = (1 << LW_LORA_N_TARGETS) - 1 };

static const int loss_rows[] = {1, 4, 5};
static const int loss_targets[] = {4, 7, 2};
enum { N_LOSS = 3 };

typedef struct {
    lw_model *m;
    lw_state *s;
    lw_backward_scratch *g;
    lw_lora lora;
    lw_receiver_adapters ad;
    float *embeds;                 /* [T, H] every row fed as an embedding */
    float logits[T * 16];          /* vocab 11 */
    float probs[N_LOSS * 16];
} fixture;

static void setup(fixture *f, const lw_model_config *c, unsigned targets, int rank, float dropout, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(lw_model_init_random(c, seed, &f->m), LW_OK);
    ck_assert_int_eq(lw_state_alloc(f->m, T, true, &f->s), LW_OK);
    ck_assert_int_eq(lw_backward_scratch_alloc(f->m, T, &f->g), LW_OK);
    lw_lora_config lc = {.rank = rank, .alpha = 2.0f * rank, .dropout = dropout, .targets = targets};
    ck_assert_int_eq(lw_lora_create(&f->lora, &lc, f->m), LW_OK);
    lw_lora_init(&f->lora, seed + 1);
    ck_assert_int_eq(lw_adapters_init(&f->ad, f->m, T, &f->lora, 0), LW_OK);
    int H = c->hidden;
    f->embeds = calloc((size_t)T * H, sizeof(float));
    lw_rng r;
    lw_rng_seed(&r, seed + 2);
    for (int i = 0; i < T * H; i++) f->embeds[i] = (float)lw_rng_normal(&r);
}

/* B as trained adapters have it: nonzero, so every path carries gradient. */
static void randomize_b(fixture *f, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (int l = 0; l < f->lora.n_layers; l++)
        for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
            const lw_lora_slot *s = lw_lora_slot_at(&f->lora, l, (lw_lora_target)t);
            if (!s->on) continue;
            for (size_t i = 0; i < (size_t)s->out * f->lora.cfg.rank; i++)
                f->lora.p.params[s->b + i] = (float)(0.3 * lw_rng_normal(&r));
        }
}

static void teardown(fixture *f)
{
    lw_adapters_free(&f->ad);
    lw_lora_free(&f->lora);
    lw_backward_scratch_free(f->g);
    lw_state_free(f->s);
    lw_model_free(f->m);
    free(f->embeds);
}

static void run_forward(fixture *f, const lw_receiver_adapters *ad, const float *x)
{
    lw_forward_args a = {.embeds = x, .T = T, .logits = f->logits, .all_logits = true, .capture_layer = -1,
                         .adapters = ad};
    ck_assert_int_eq(lw_forward(f->m, f->s, &a), LW_OK);
}

/* Cross-entropy over the loss rows. */
static float loss_of(fixture *f, const float *x)
{
    run_forward(f, &f->ad, x);
    int V = f->m->cfg.vocab;
    float rows[N_LOSS * 16];
    for (int i = 0; i < N_LOSS; i++) memcpy(rows + i * V, f->logits + loss_rows[i] * V, (size_t)V * sizeof(float));
    return cross_entropy_forward(f->probs, rows, loss_targets, N_LOSS, V);
}

/* Forward, then the adapted backward: lora grads and d_embeds. */
static void analytic(fixture *f, float *d_embeds)
{
    int V = f->m->cfg.vocab;
    loss_of(f, f->embeds);
    float dl[N_LOSS * 16] = {0};
    cross_entropy_backward(dl, f->probs, loss_targets, N_LOSS, V, 1.0f);
    lw_adapter_params_zero_grad(&f->lora.p);
    ck_assert_int_eq(lw_model_backward_adapted(f->m, f->s, f->g, &f->ad, loss_rows, N_LOSS, dl, d_embeds), LW_OK);
}

static double central(fixture *f, float *x, float *val)
{
    const float eps = 2e-3f;
    float keep = *val;
    *val = keep + eps;
    double up = loss_of(f, x);
    *val = keep - eps;
    double down = loss_of(f, x);
    *val = keep;
    return (up - down) / (2.0 * eps);
}

/* Every A and B element of every target, and every input element. */
static void check_gradients(const lw_model_config *c, float dropout, uint64_t seed)
{
    fixture f;
    setup(&f, c, ALL_TARGETS, 2, dropout, seed);
    randomize_b(&f, seed + 3);
    f.ad.training = dropout > 0.0f;
    f.ad.dropout_seed = seed * 7919;
    int H = c->hidden;
    float *dx = calloc((size_t)T * H, sizeof(float));
    analytic(&f, dx);
    float *an = malloc(f.lora.p.n_params * sizeof(float));
    memcpy(an, f.lora.p.grads, f.lora.p.n_params * sizeof(float));

    for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
        size_t n_t = 0;
        double worst = 0.0, norm = 0.0;
        int bad = 0;
        for (int l = 0; l < f.lora.n_layers; l++) {
            const lw_lora_slot *s = lw_lora_slot_at(&f.lora, l, (lw_lora_target)t);
            ck_assert(s->on);
            size_t offs[2] = {s->a, s->b}, counts[2] = {(size_t)2 * s->in, (size_t)s->out * 2};
            for (int k = 0; k < 2; k++) {
                double *fd = calloc(counts[k], sizeof(double));
                for (size_t i = 0; i < counts[k]; i++)
                    fd[i] = central(&f, f.embeds, &f.lora.p.params[offs[k] + i]);
                bad += tl_grad_mismatches(an + offs[k], fd, counts[k], &worst);
                for (size_t i = 0; i < counts[k]; i++) norm += fabs(an[offs[k] + i]);
                n_t += counts[k];
                free(fd);
            }
        }
        ck_assert_msg(bad == 0, "%s, dropout %.1f: %d of %zu LoRA %s gradients disagree with finite differences "
                      "(worst %.2f x tol)", c->name, (double)dropout, bad, n_t,
                      lw_lora_target_name((lw_lora_target)t), worst);
        ck_assert_msg(norm > 1e-3, "%s: LoRA %s got no gradient", c->name, lw_lora_target_name((lw_lora_target)t));
    }
    /* the input's gradient goes through the adapters too */
    double *fd = calloc((size_t)T * H, sizeof(double)), worst = 0.0;
    for (int i = 0; i < T * H; i++) fd[i] = central(&f, f.embeds, &f.embeds[i]);
    int bad = tl_grad_mismatches(dx, fd, (size_t)T * H, &worst);
    ck_assert_msg(bad == 0, "%s: %d d_embeds elements disagree (worst %.2f x tol)", c->name, bad, worst);
    free(fd);
    free(an);
    free(dx);
    teardown(&f);
}

static void gradients_llama(float dropout)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    check_gradients(&c, dropout, 11);
}
static void gradients_gemma(float dropout)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    check_gradients(&c, dropout, 12);
}

START_TEST(llama_lora_gradients) { gradients_llama(0.0f); }
END_TEST
START_TEST(gemma_lora_gradients) { gradients_gemma(0.0f); }
END_TEST
START_TEST(lora_gradients_with_dropout) { gradients_llama(0.3f); gradients_gemma(0.3f); }
END_TEST

/* The same adapter with the wrong gradient would be caught: flip one B. */
START_TEST(check_catches_a_wrong_gradient)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, 1u << LW_LORA_V, 2, 0.0f, 21);
    randomize_b(&f, 22);
    float *dx = calloc((size_t)T * c.hidden, sizeof(float));
    analytic(&f, dx);
    const lw_lora_slot *s = lw_lora_slot_at(&f.lora, 1, LW_LORA_V);
    size_t n = (size_t)s->out * 2;
    double *fd = calloc(n, sizeof(double)), worst = 0.0;
    for (size_t i = 0; i < n; i++) fd[i] = central(&f, f.embeds, &f.lora.p.params[s->b + i]);
    ck_assert_int_eq(tl_grad_mismatches(f.lora.p.grads + s->b, fd, n, &worst), 0);
    f.lora.p.grads[s->b + 1] = -f.lora.p.grads[s->b + 1] * 1.5f + 0.01f;
    worst = 0.0;
    ck_assert_int_gt(tl_grad_mismatches(f.lora.p.grads + s->b, fd, n, &worst), 0);
    free(fd);
    free(dx);
    teardown(&f);
}
END_TEST

/* B = 0 (a fresh adapter): the adapted logits equal the base ones exactly,
 * dropout on or off, and its A gradient is 0 while B's is not. */
static void check_fresh_is_base(const lw_model_config *c)
{
    fixture f;
    setup(&f, c, ALL_TARGETS, 4, 0.2f, 31);
    int n = T * c->vocab;
    float base[T * 16];
    run_forward(&f, NULL, f.embeds);
    memcpy(base, f.logits, (size_t)n * sizeof(float));
    for (int training = 0; training < 2; training++) {
        f.ad.training = training;
        f.ad.dropout_seed = 99;
        run_forward(&f, &f.ad, f.embeds);
        ck_assert_msg(memcmp(base, f.logits, (size_t)n * sizeof(float)) == 0, "%s: B = 0 changed the logits",
                      c->name);
    }
    float *dx = calloc((size_t)T * c->hidden, sizeof(float));
    analytic(&f, dx);
    double ga = 0.0, gb = 0.0;
    const lw_lora_slot *s = lw_lora_slot_at(&f.lora, 0, LW_LORA_Q);
    for (size_t i = 0; i < (size_t)4 * s->in; i++) ga += fabs(f.lora.p.grads[s->a + i]);
    for (size_t i = 0; i < (size_t)s->out * 4; i++) gb += fabs(f.lora.p.grads[s->b + i]);
    ck_assert(ga == 0.0 && gb > 0.0);
    free(dx);
    teardown(&f);
}

START_TEST(fresh_adapter_gives_base_logits)
{
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF), g = tl_tiny_gemma3_config(3);
    check_fresh_is_base(&l);
    check_fresh_is_base(&g);
}
END_TEST

START_TEST(merged_equals_unmerged)
{
    lw_model_config cs[2] = {tl_tiny_llama_config(LW_WEIGHTS_GGUF), tl_tiny_gemma3_config(3)};
    for (int k = 0; k < 2; k++) {
        fixture f;
        setup(&f, &cs[k], ALL_TARGETS, 3, 0.0f, 41 + k);
        randomize_b(&f, 43);
        int n = T * cs[k].vocab;
        float base[T * 16], adapted[T * 16];
        run_forward(&f, NULL, f.embeds);
        memcpy(base, f.logits, (size_t)n * sizeof(float));
        run_forward(&f, &f.ad, f.embeds);
        memcpy(adapted, f.logits, (size_t)n * sizeof(float));
        double moved = 0.0;
        for (int i = 0; i < n; i++) moved = fmax(moved, fabs(adapted[i] - base[i]));
        ck_assert_msg(moved > 1e-2, "%s: the adapter changes nothing", cs[k].name);

        ck_assert_int_eq(lw_lora_merge(&f.lora, f.m), LW_OK);
        for (int with_ad = 0; with_ad < 2; with_ad++) {   /* merged: the adapter is skipped either way */
            run_forward(&f, with_ad ? &f.ad : NULL, f.embeds);
            for (int i = 0; i < n; i++)
                ck_assert_msg(fabsf(f.logits[i] - adapted[i]) < 1e-4f * (1.0f + fabsf(adapted[i])),
                              "%s: merged logit %d %g vs unmerged %g", cs[k].name, i, (double)f.logits[i],
                              (double)adapted[i]);
        }
        /* training a merged adapter would count it twice: refused */
        float dl[N_LOSS * 16] = {0}, dx[T * 16];
        ck_assert_int_eq(lw_model_backward_adapted(f.m, f.s, f.g, &f.ad, loss_rows, N_LOSS, dl, dx), LW_ERR_INVALID);
        ck_assert_int_eq(lw_lora_merge(&f.lora, f.m), LW_ERR_INVALID);
        ck_assert_int_eq(lw_lora_unmerge(&f.lora, f.m), LW_OK);
        run_forward(&f, NULL, f.embeds);
        for (int i = 0; i < n; i++) ck_assert(fabsf(f.logits[i] - base[i]) < 1e-4f * (1.0f + fabsf(base[i])));
        teardown(&f);
    }
}
END_TEST

/* Merging adds (alpha / r) B A to each targeted weight, as PEFT scales
 * it: rank 4 and alpha 2 (scale 0.5, neither 1 nor alpha), the difference
 * of every targeted matrix against B A summed here in double. With
 * merged_equals_unmerged this pins the scale of the unmerged path too. */
START_TEST(merge_adds_alpha_over_rank_b_a)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, ALL_TARGETS, 2, 0.0f, 61);
    lw_lora_free(&f.lora);
    lw_lora_config lc = {.rank = 4, .alpha = 2.0f, .targets = ALL_TARGETS};
    ck_assert_int_eq(lw_lora_create(&f.lora, &lc, f.m), LW_OK);
    lw_lora_init(&f.lora, 62);
    randomize_b(&f, 63);
    int checked = 0;
    /* the targeted matrices before merging, one after another */
    size_t total = 0;
    for (int l = 0; l < f.lora.n_layers; l++)
        for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
            const lw_lora_slot *sl = lw_lora_slot_at(&f.lora, l, (lw_lora_target)t);
            ck_assert(sl->on);
            total += (size_t)sl->out * sl->in;
        }
    float *copy = malloc(total * sizeof(float)), *at = copy;
    for (int l = 0; l < f.lora.n_layers; l++) {
        lw_layer_weights *L = &f.m->layers[l];
        float *w[LW_LORA_N_TARGETS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
            const lw_lora_slot *sl = lw_lora_slot_at(&f.lora, l, (lw_lora_target)t);
            memcpy(at, w[t], (size_t)sl->out * sl->in * sizeof(float));
            at += (size_t)sl->out * sl->in;
        }
    }
    ck_assert_int_eq(lw_lora_merge(&f.lora, f.m), LW_OK);
    at = copy;
    for (int l = 0; l < f.lora.n_layers; l++) {
        lw_layer_weights *L = &f.m->layers[l];
        float *w[LW_LORA_N_TARGETS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int t = 0; t < LW_LORA_N_TARGETS; t++, checked++) {
            const lw_lora_slot *sl = lw_lora_slot_at(&f.lora, l, (lw_lora_target)t);
            const float *A = f.lora.p.params + sl->a, *B = f.lora.p.params + sl->b;
            for (int o = 0; o < sl->out; o++)
                for (int i = 0; i < sl->in; i++) {
                    double ba = 0.0;
                    for (int k = 0; k < 4; k++) ba += (double)B[(size_t)o * 4 + k] * A[(size_t)k * sl->in + i];
                    double got = (double)w[t][(size_t)o * sl->in + i] - at[(size_t)o * sl->in + i];
                    ck_assert_msg(fabs(got - 0.5 * ba) <= 1e-5 * (1.0 + fabs(at[(size_t)o * sl->in + i])),
                                  "layer %d target %d [%d, %d]: merged - base %g, 0.5 BA %g", l, t, o, i, got,
                                  0.5 * ba);
                }
            at += (size_t)sl->out * sl->in;
        }
    }
    ck_assert_int_eq(checked, f.lora.n_layers * LW_LORA_N_TARGETS);
    free(copy);
    teardown(&f);
}
END_TEST

/* Names, shapes and config in the file; a reload is bit-exact; a LoRA of
 * another shape is refused. */
START_TEST(save_load_with_peft_names)
{
    lw_model_config c = tl_tiny_gemma3_config(3);
    fixture f;
    lw_lora_config lc = {.rank = 4, .alpha = 8, .targets = (1u << LW_LORA_Q) | (1u << LW_LORA_V) |
                                                            (1u << LW_LORA_GATE), .n_layer_list = 2,
                         .layer_list = {0, 2}};
    setup(&f, &c, ALL_TARGETS, 2, 0.0f, 51);
    lw_lora_free(&f.lora);
    ck_assert_int_eq(lw_lora_create(&f.lora, &lc, f.m), LW_OK);
    lw_lora_init(&f.lora, 52);
    randomize_b(&f, 53);
    ck_assert_int_eq(f.lora.p.n_tensors, 2 * 3 * 2);
    ck_assert(!lw_lora_slot_at(&f.lora, 1, LW_LORA_Q)->on && !lw_lora_slot_at(&f.lora, 0, LW_LORA_K)->on);

    char path[1024];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", tl_tmpdir("lora_save"));
    ck_assert_int_eq(lw_lora_save(&f.lora, path), LW_OK);

    lw_safetensors *st = NULL;
    ck_assert_int_eq(lw_safetensors_open(path, &st), LW_OK);
    ck_assert_int_eq((int)lw_safetensors_n_tensors(st), 12);
    const lw_raw_tensor *a = lw_safetensors_find(st, "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight");
    const lw_raw_tensor *b = lw_safetensors_find(st, "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(a->shape[0] == 4 && a->shape[1] == c.hidden && b->shape[0] == c.ffn && b->shape[1] == 4);
    ck_assert_ptr_null(lw_safetensors_find(st, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"));
    lw_safetensors_close(st);
    char *cfg = NULL;
    ck_assert_int_eq(lw_adapter_read_meta(path, "adapter_config", &cfg), LW_OK);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_nonnull(strstr(cfg, "\"r\":4"));
    ck_assert_ptr_nonnull(strstr(cfg, "\"target_modules\":[\"q_proj\",\"v_proj\",\"gate_proj\"]"));
    ck_assert_ptr_nonnull(strstr(cfg, "\"layers_to_transform\":[0,2]"));
    free(cfg);

    lw_lora back;
    ck_assert_int_eq(lw_lora_create(&back, &lc, f.m), LW_OK);
    ck_assert_int_eq(lw_lora_load(&back, path), LW_OK);
    ck_assert(memcmp(back.p.params, f.lora.p.params, f.lora.p.n_params * sizeof(float)) == 0);
    lw_lora_free(&back);

    /* another rank: the config check names it; another target set: refused */
    lw_lora_config other = lc;
    other.rank = 2;
    other.alpha = 4;
    ck_assert_int_eq(lw_lora_create(&back, &other, f.m), LW_OK);
    ck_assert_int_eq(lw_lora_load(&back, path), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "adapter_config.r"));
    lw_lora_free(&back);
    other = lc;
    other.targets |= 1u << LW_LORA_K;
    ck_assert_int_eq(lw_lora_create(&back, &other, f.m), LW_OK);
    ck_assert_int_eq(lw_lora_load(&back, path), LW_ERR_FORMAT);
    lw_lora_free(&back);
    teardown(&f);
}
END_TEST

/* A LoRA or its moments holding NaN/inf (a diverged run) is refused, naming
 * the tensor and the first bad index, and nothing is loaded. */
START_TEST(non_finite_values_are_refused)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, ALL_TARGETS, 2, 0.0f, 71);
    randomize_b(&f, 72);
    const lw_adapter_tensor *t = &f.lora.p.tensors[3];
    const char *dir = tl_tmpdir("lora_nonfinite");
    char w[1024], s[1024];
    snprintf(w, sizeof w, "%s/lora.safetensors", dir);
    snprintf(s, sizeof s, "%s/lora_state.safetensors", dir);
    float keep = f.lora.p.params[t->offset + 1];
    f.lora.p.params[t->offset + 1] = -INFINITY;
    ck_assert_int_eq(lw_lora_save(&f.lora, w), LW_OK);
    f.lora.p.params[t->offset + 1] = keep;
    float *before = malloc(f.lora.p.n_params * sizeof(float));
    memcpy(before, f.lora.p.params, f.lora.p.n_params * sizeof(float));
    ck_assert_int_eq(lw_lora_load(&f.lora, w), LW_ERR_FORMAT);
    char want[256];
    snprintf(want, sizeof want, "tensor \"%s\" holds -inf at index 1", t->name);
    ck_assert_msg(strstr(lw_last_error(), want) && strstr(lw_last_error(), w), "%s", lw_last_error());
    ck_assert_int_eq(memcmp(before, f.lora.p.params, f.lora.p.n_params * sizeof(float)), 0);

    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, f.lora.p.n_params, lw_adamw_defaults()), LW_OK);
    opt.m[t->offset + t->count - 1] = NAN;
    ck_assert_int_eq(lw_adapter_params_save_adamw(&f.lora.p, &opt, s), LW_OK);
    opt.m[t->offset + t->count - 1] = 0.0f;
    ck_assert_int_eq(lw_adapter_params_load_adamw(&f.lora.p, &opt, s), LW_ERR_FORMAT);
    snprintf(want, sizeof want, "tensor \"adam_m.%s\" holds NaN at index %zu", t->name, t->count - 1);
    ck_assert_msg(strstr(lw_last_error(), want), "%s", lw_last_error());
    ck_assert(opt.m[t->offset + t->count - 1] == 0.0f);
    lw_adamw_free(&opt);
    free(before);
    teardown(&f);
}
END_TEST

/* Eight AdamW steps straight, or four, save, reload into fresh objects, four
 * more: the same bits. */
static void adamw_steps(fixture *f, lw_adamw *opt, int n)
{
    float *dx = calloc((size_t)T * f->m->cfg.hidden, sizeof(float));
    for (int i = 0; i < n; i++) {
        f->ad.training = true;
        f->ad.dropout_seed = (uint64_t)opt->step + 1;   /* a function of the step: resumable */
        analytic(f, dx);
        lw_adamw_begin_step(opt);
        lw_adapter_params_adamw(&f->lora.p, opt, 1e-2f, 0.01f);
    }
    free(dx);
}

START_TEST(resume_is_bit_exact)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f, g;
    setup(&f, &c, ALL_TARGETS, 2, 0.1f, 61);
    setup(&g, &c, ALL_TARGETS, 2, 0.1f, 61);
    lw_adamw of, og;
    ck_assert_int_eq(lw_adamw_init(&of, f.lora.p.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_adamw_init(&og, g.lora.p.n_params, lw_adamw_defaults()), LW_OK);
    adamw_steps(&f, &of, 8);

    adamw_steps(&g, &og, 4);
    const char *dir = tl_tmpdir("lora_resume");
    char w[1024], s[1024];
    snprintf(w, sizeof w, "%s/lora.safetensors", dir);
    snprintf(s, sizeof s, "%s/lora_state.safetensors", dir);
    ck_assert_int_eq(lw_lora_save(&g.lora, w), LW_OK);
    ck_assert_int_eq(lw_adapter_params_save_adamw(&g.lora.p, &og, s), LW_OK);
    lw_adamw_free(&og);
    lw_lora_init(&g.lora, 1234);   /* scramble, then reload */
    ck_assert_int_eq(lw_adamw_init(&og, g.lora.p.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_lora_load(&g.lora, w), LW_OK);
    ck_assert_int_eq(lw_adapter_params_load_adamw(&g.lora.p, &og, s), LW_OK);
    ck_assert_int_eq(og.step, 4);
    adamw_steps(&g, &og, 4);
    ck_assert(memcmp(f.lora.p.params, g.lora.p.params, f.lora.p.n_params * sizeof(float)) == 0);
    /* and it trained: B moved away from 0 */
    ck_assert(f.lora.p.params[lw_lora_slot_at(&f.lora, 0, LW_LORA_Q)->b] != 0.0f);
    /* a train state does not load as weights, nor weights as train state */
    ck_assert_int_eq(lw_lora_load(&g.lora, s), LW_ERR_FORMAT);
    ck_assert_int_eq(lw_adapter_params_load_adamw(&g.lora.p, &og, w), LW_ERR_FORMAT);
    lw_adamw_free(&of);
    lw_adamw_free(&og);
    teardown(&f);
    teardown(&g);
}
END_TEST

/* Scores of NL labels of L tokens after a 3-token prompt, in one call of
 * lw_score_verbalizers with adapters ad, against each label alone after the
 * prompt. Returns the rows the adapters' scratch holds afterwards. */
static int scores_match_each_label(lw_model *m, const lw_receiver_adapters *ad)
{
    const lw_model_config *c = &m->cfg;
    enum { P = 3, NL = 6, L = 3 };
    int prompt[P] = {1, 2, 3}, v[NL][L], verb_len[NL];
    const int *verb[NL];
    for (int k = 0; k < NL; k++) {
        for (int j = 0; j < L; j++) v[k][j] = (k + 2 * j + 4) % c->vocab;
        verb[k] = v[k], verb_len[k] = L;
    }
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(m, 32, false, &s), LW_OK);
    float last[16], rows[L * 16];
    lw_forward_args a = {.ids = prompt, .T = P, .logits = last, .capture_layer = -1, .adapters = ad};
    double scores[NL];   /* the prompt's logits request is the scorer's to replace (its last row, final-normed) */
    ck_assert_msg(lw_score_after_prompt(m, s, &a, NL, verb, verb_len, scores) == LW_OK, "%s", lw_last_error());
    for (int k = 0; k < NL; k++) {   /* the label alone after the prompt */
        lw_state_reset(s);
        ck_assert_int_eq(lw_forward(m, s, &a), LW_OK);
        lw_forward_args b = {.ids = v[k], .T = L - 1, .pos0 = P, .logits = rows, .all_logits = true,
                             .capture_layer = -1, .adapters = ad};
        ck_assert_int_eq(lw_forward(m, s, &b), LW_OK);
        double want = lw_log_prob(last, c->vocab, v[k][0]);
        for (int j = 1; j < L; j++) want += lw_log_prob(rows + (size_t)(j - 1) * c->vocab, c->vocab, v[k][j]);
        ck_assert_msg(fabs(scores[k] - want) <= 1e-4 * fmax(1.0, fabs(want)), "%s label %d: %g, alone %g",
                      ad->prefix_len ? "prefixed" : "LoRA", k, scores[k], want);
    }
    lw_state_free(s);
    return ad->scratch->max_tokens;
}

/* Scoring many labels with LoRA: all their continuations together (12 rows)
 * exceed the adapters' scratch (7 rows, one example's; it failed with "rows
 * exceed the scratch" on Banking77), so the scorer grows the scratch and
 * gives each label's summed log-probs, as each label alone does. With a deep
 * prefix (and LoRA beside it) likewise, every label's segment after the one
 * prefix: the scratch then holds the prompt's 3 positions too. */
START_TEST(scoring_more_label_rows_than_the_adapter_scratch)
{
    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    fixture f;
    setup(&f, &c, ALL_TARGETS, 4, 0.0f, 61);
    randomize_b(&f, 62);
    ck_assert_int_ge(scores_match_each_label(f.m, &f.ad), 12);
    enum { PREFIX = 2 };
    size_t n = (size_t)c.n_layers * PREFIX * c.n_kv_heads * c.head_dim;
    float *pk = calloc(n, sizeof(float)), *pv = calloc(n, sizeof(float));
    lw_rng r;
    lw_rng_seed(&r, 63);
    for (size_t i = 0; i < n; i++) pk[i] = (float)lw_rng_normal(&r), pv[i] = (float)lw_rng_normal(&r);
    for (int with_lora = 0; with_lora < 2; with_lora++) {
        lw_receiver_adapters ad;
        ck_assert_int_eq(lw_adapters_init(&ad, f.m, T, with_lora ? &f.lora : NULL, PREFIX), LW_OK);
        ad.prefix_k = pk, ad.prefix_v = pv;
        ck_assert_int_ge(scores_match_each_label(f.m, &ad), 3 + 12);
        lw_adapters_free(&ad);
    }
    free(pk);
    free(pv);
    teardown(&f);
}
END_TEST

START_TEST(config_errors_are_precise)
{
    lw_lora_config lc;
    ck_assert_int_eq(lw_lora_config_parse(&lc, 8, 16, 0, "q,v,down", "3"), LW_OK);
    ck_assert(lc.targets == ((1u << LW_LORA_Q) | (1u << LW_LORA_V) | (1u << LW_LORA_DOWN)) && lc.first_layers == 3);
    ck_assert_int_eq(lw_lora_config_parse(&lc, 8, 16, 0, "q_proj,o_proj", "0,2"), LW_OK);
    ck_assert(lc.n_layer_list == 2 && lc.layer_list[1] == 2 && lc.targets == 9u);
    ck_assert_int_eq(lw_lora_config_parse(&lc, 8, 16, 0, "q,x", NULL), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "\"x\" is not a target"));
    ck_assert_int_eq(lw_lora_config_parse(&lc, 8, 16, 0, "q,", NULL), LW_ERR_INVALID);
    ck_assert_int_eq(lw_lora_config_parse(&lc, 8, 16, 0, "q", "1,b"), LW_ERR_INVALID);

    lw_model_config c = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    lw_model *m = NULL;
    ck_assert_int_eq(lw_model_init_random(&c, 1, &m), LW_OK);
    lw_lora lo;
    lw_lora_config bad = {.rank = 0, .alpha = 1, .targets = 1};
    ck_assert_int_eq(lw_lora_create(&lo, &bad, m), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "rank 0"));
    bad = (lw_lora_config){.rank = 2, .alpha = 1, .targets = 1, .n_layer_list = 2, .layer_list = {1, 1}};
    ck_assert_int_eq(lw_lora_create(&lo, &bad, m), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "listed twice"));
    bad.layer_list[1] = 5;
    ck_assert_int_eq(lw_lora_create(&lo, &bad, m), LW_ERR_INVALID);
    bad = (lw_lora_config){.rank = 2, .alpha = 1, .targets = 1, .first_layers = 3};
    ck_assert_int_eq(lw_lora_create(&lo, &bad, m), LW_ERR_INVALID);
    bad = (lw_lora_config){.rank = 2, .alpha = 1, .dropout = 1.0f, .targets = 1};
    ck_assert_int_eq(lw_lora_create(&lo, &bad, m), LW_ERR_INVALID);
    lw_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fresh_adapter_gives_base_logits);
    tcase_add_test(tc, llama_lora_gradients);
    tcase_add_test(tc, gemma_lora_gradients);
    tcase_add_test(tc, lora_gradients_with_dropout);
    tcase_add_test(tc, check_catches_a_wrong_gradient);
    tcase_add_test(tc, merged_equals_unmerged);
    tcase_add_test(tc, merge_adds_alpha_over_rank_b_a);
    tcase_add_test(tc, save_load_with_peft_names);
    tcase_add_test(tc, resume_is_bit_exact);
    tcase_add_test(tc, non_finite_values_are_refused);
    tcase_add_test(tc, scoring_more_label_rows_than_the_adapter_scratch);
    tcase_add_test(tc, config_errors_are_precise);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
