/* The receiver pass's cached head (receiver_pass.h): with the layout's
 * before rows run once and kept, an example's loss and d_embeds are the
 * whole pass's to float rounding, across examples that reuse the cache, and
 * rows that do not start with the head take the whole pass. Packed steps
 * (several examples in one pass) give each example's own loss and
 * gradients, with no adapters, with LoRA and with a deep prefix per example
 * (no head cached then). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deep_prefix.h"
#include "lora.h"
#include "model.h"
#include "random_weights.h"
#include "receiver_pass.h"
#include "rng.h"
#include "testlib.h"
#include "tiny_models.h"

enum { M = 3, N_BEFORE = 5, N_AFTER = 2 };

typedef struct {
    lw_model *m;
    lw_receiver_layout layout;
    lw_receiver_pass whole, cached;
    lw_rng rng;
} rig;

static void rig_open(rig *r, const lw_model_config *c, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(lw_model_init_random(c, seed, &r->m), LW_OK);
    int before[N_BEFORE] = {1, 7, 3, 9, 4}, after[N_AFTER] = {5, 8};
    int v0[] = {10, 2}, v1[] = {6}, v2[] = {10, 0, 6};
    const int *verb[] = {v0, v1, v2};
    int verb_len[] = {2, 1, 3};
    ck_assert_int_eq(lw_receiver_layout_from_ids(M, before, N_BEFORE, after, N_AFTER, 3, verb, verb_len, &r->layout),
                     LW_OK);
    int max_T = lw_receiver_prefix_len(&r->layout) + r->layout.max_verb;
    ck_assert_int_eq(lw_receiver_pass_alloc(&r->whole, r->m, &r->layout, max_T, "test"), LW_OK);
    ck_assert_int_eq(lw_receiver_pass_alloc(&r->cached, r->m, &r->layout, max_T, "test"), LW_OK);
    r->whole.no_head_cache = true;
    lw_rng_seed(&r->rng, seed + 99);
}

static void rig_close(rig *r)
{
    lw_receiver_pass_free(&r->whole);
    lw_receiver_pass_free(&r->cached);
    lw_receiver_layout_free(&r->layout);
    lw_model_free(r->m);
}

/* Fills both passes with label's rows and the same random soft tokens;
 * returns T. */
static int fill(rig *r, int label)
{
    lw_receiver_pass *ps[2] = {&r->whole, &r->cached};
    int T = lw_receiver_fill(&r->layout, label, r->layout.verb_len[label] - 1, r->whole.ids, r->whole.is_embed);
    T = lw_receiver_fill(&r->layout, label, r->layout.verb_len[label] - 1, r->cached.ids, r->cached.is_embed);
    int H = r->m->cfg.hidden;
    for (int i = 0; i < M * H; i++) {
        float v = (float)lw_rng_normal(&r->rng);
        for (int k = 0; k < 2; k++) ps[k]->embeds[(size_t)N_BEFORE * H + i] = v;
    }
    return T;
}

/* Loss and d_embeds of both passes agree; *head gets the rows the cached
 * pass skipped. */
static void expect_same(rig *r, int T, int label, int *head)
{
    float lw_, lc;
    bool cw, cc;
    ck_assert_msg(lw_receiver_pass_loss(&r->whole, NULL, T, label, &lw_) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_receiver_pass_loss(&r->cached, NULL, T, label, &lc), LW_OK);
    ck_assert_msg(fabs((double)lw_ - lc) <= 1e-5 * fabs((double)lw_), "loss %.8g cached %.8g", (double)lw_,
                  (double)lc);
    ck_assert_int_eq(lw_receiver_pass_backward(&r->whole, NULL, T, label, 0.5f, &cw), LW_OK);
    ck_assert_int_eq(lw_receiver_pass_backward(&r->cached, NULL, T, label, 0.5f, &cc), LW_OK);
    ck_assert_int_eq(cw, cc);
    int H = r->m->cfg.hidden, first = r->cached.last_head;
    size_t f = (size_t)first * H;
    tl_assert_close_to_scale(r->cached.d_embeds + f, r->whole.d_embeds + f, (size_t)T * H - f, 1e-5,
                             "d_embeds after the cached head");
    /* the soft rows, what the bridge learns from, are never in the head */
    ck_assert_int_le(first, N_BEFORE);
    ck_assert_int_eq(r->whole.last_head, 0);
    *head = first;
}

static void run_cases(const lw_model_config *c, uint64_t seed)
{
    rig r;
    rig_open(&r, c, seed);
    int head;
    for (int label = 0; label < 3; label++) {   /* the head once, then reused */
        int T = fill(&r, label);
        expect_same(&r, T, label, &head);
        ck_assert_int_eq(head, N_BEFORE);
        ck_assert(r.cached.head_cached);
    }
    /* rows that do not start with the head's ids take the whole pass ... */
    int T = fill(&r, 2);
    r.whole.ids[1] = r.cached.ids[1] = 2;
    expect_same(&r, T, 2, &head);
    ck_assert_int_eq(head, 0);
    ck_assert(!r.cached.head_cached);
    /* ... and the next example that does caches it again */
    T = fill(&r, 0);
    expect_same(&r, T, 0, &head);
    ck_assert_int_eq(head, N_BEFORE);
    rig_close(&r);
}

START_TEST(cached_head_matches_the_whole_pass)
{
    lw_model_config g = tl_tiny_gemma3_config(4);   /* a window of 4 over 12 rows: the head leaves it */
    run_cases(&g, 3);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    run_cases(&l, 4);
}
END_TEST

/* Each example's own pass (the whole pass from position 0, adapters ad or
 * NULL): what a packed step must give. */
enum { N_PACK = 4 };
typedef struct {
    int T[N_PACK];
    float loss[N_PACK], *soft, *d;   /* soft [N, M, H]; d [N, max_T, H] */
    bool ok[N_PACK];
} alone;

/* A deep prefix of its own for each example, and where its gradient goes. */
typedef struct {
    size_t n;   /* floats of one example's keys: n_layers * P * kvd */
    float *k[N_PACK], *v[N_PACK], *dk[N_PACK], *dv[N_PACK];
} prefixes;

static void use_prefix(lw_receiver_adapters *ad, const prefixes *pf, int i)
{
    if (!pf) return;
    ad->prefix_k = pf->k[i];
    ad->prefix_v = pf->v[i];
    ad->d_prefix_k = pf->dk[i];
    ad->d_prefix_v = pf->dv[i];
}

static void each_alone(rig *r, lw_receiver_adapters *ad, const prefixes *pf, const int *labels, alone *w)
{
    int H = r->m->cfg.hidden;
    size_t row = (size_t)r->whole.max_T * H;
    w->soft = calloc((size_t)N_PACK * M * H, sizeof(float));
    w->d = calloc(N_PACK * row, sizeof(float));
    for (int i = 0; i < N_PACK; i++) {
        w->T[i] = fill(r, labels[i]);
        memcpy(w->soft + (size_t)i * M * H, r->whole.embeds + (size_t)N_BEFORE * H, (size_t)M * H * sizeof(float));
        use_prefix(ad, pf, i);
        ck_assert_int_eq(lw_receiver_pass_loss(&r->whole, ad, w->T[i], labels[i], &w->loss[i]), LW_OK);
        ck_assert_int_eq(lw_receiver_pass_backward(&r->whole, ad, w->T[i], labels[i], 0.5f, &w->ok[i]), LW_OK);
        memcpy(w->d + i * row, r->whole.d_embeds, (size_t)w->T[i] * H * sizeof(float));
    }
}

static void alone_free(alone *w)
{
    free(w->soft);
    free(w->d);
}

/* The same examples packed into r->cached: losses, first-token checks and
 * input gradients (the rows after the head) agree with w. */
static void packed_matches(rig *r, lw_receiver_adapters *ad, const prefixes *pf, const int *labels, const alone *w)
{
    const char *name = r->m->cfg.name;
    int H = r->m->cfg.hidden;
    ck_assert_msg(lw_receiver_pass_pack_begin(&r->cached, ad, N_PACK) == LW_OK, "%s", lw_last_error());
    for (int i = 0; i < N_PACK; i++) {
        lw_receiver_fill(&r->layout, labels[i], r->layout.verb_len[labels[i]] - 1, r->cached.ids, r->cached.is_embed);
        memcpy(r->cached.embeds + (size_t)N_BEFORE * H, w->soft + (size_t)i * M * H, (size_t)M * H * sizeof(float));
        use_prefix(ad, pf, i);   /* the pack takes the prefix the adapters hold now */
        ck_assert_int_eq(lw_receiver_pass_pack_add(&r->cached, w->T[i], labels[i]), LW_OK);
    }
    float loss[N_PACK];
    bool ok[N_PACK];
    ck_assert_int_eq(lw_receiver_pass_pack_loss(&r->cached, loss), LW_OK);
    ck_assert_int_eq(lw_receiver_pass_pack_backward(&r->cached, 0.5f, ok), LW_OK);
    for (int i = 0; i < N_PACK; i++) {
        ck_assert_msg(fabs((double)loss[i] - w->loss[i]) <= 1e-5 * fabs((double)w->loss[i]),
                      "%s example %d: packed loss %.8g, alone %.8g", name, i, (double)loss[i], (double)w->loss[i]);
        ck_assert_int_eq(ok[i], w->ok[i]);
        char what[96];
        snprintf(what, sizeof what, "%s example %d: packed d_embeds", name, i);
        tl_assert_close_to_scale(lw_receiver_pass_pack_d_embeds(&r->cached, i),
                                 w->d + (size_t)i * r->whole.max_T * H + (size_t)N_BEFORE * H,
                                 (size_t)(w->T[i] - N_BEFORE) * H, 1e-5, what);
    }
}

/* A packed step (receiver_pack.c): four examples after the cached head in
 * one forward and one backward give each its own pass's loss, first-token
 * check and input gradient. */
static void packed_cases(const lw_model_config *c, uint64_t seed)
{
    const int labels[N_PACK] = {0, 2, 1, 2};
    rig r;
    rig_open(&r, c, seed);
    alone w;
    each_alone(&r, NULL, NULL, labels, &w);
    ck_assert(lw_receiver_pass_can_pack(&r.cached, NULL));
    ck_assert(!lw_receiver_pass_can_pack(&r.whole, NULL));
    for (int round = 0; round < 2; round++) packed_matches(&r, NULL, NULL, labels, &w);   /* the second reuses the head */
    /* rows that do not begin with the head cannot join */
    ck_assert_int_eq(lw_receiver_pass_pack_begin(&r.cached, NULL, 1), LW_OK);
    r.cached.ids[0] = 2;
    ck_assert_int_eq(lw_receiver_pass_pack_add(&r.cached, w.T[0], labels[0]), LW_ERR_INVALID);
    alone_free(&w);
    rig_close(&r);
}

START_TEST(packed_step_matches_each_example)
{
    lw_model_config g = tl_tiny_gemma3_config(4);
    packed_cases(&g, 5);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    packed_cases(&l, 6);
}
END_TEST

/* LoRA packs whole examples (no head cached: its rows depend on the
 * adapter): losses, first-token checks, input gradients and LoRA's own
 * gradients of a packed step are the sum of each example's pass, and the
 * pack grows the adapters' scratch, sized for one example, to hold them all.
 * Dropout does not pack. */
static void lora_packed_cases(const lw_model_config *c, uint64_t seed)
{
    const int labels[N_PACK] = {2, 0, 1, 2};
    rig r;
    rig_open(&r, c, seed);
    lw_lora lora;
    lw_receiver_adapters ad;
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = (1u << LW_LORA_Q) | (1u << LW_LORA_V) | (1u << LW_LORA_DOWN)};
    ck_assert_int_eq(lw_lora_create(&lora, &lc, r.m), LW_OK);
    lw_lora_init(&lora, seed + 1);
    for (size_t i = 0; i < lora.p.n_params; i++)   /* B != 0: the adapter changes the head's rows */
        if (lora.p.params[i] == 0.0f) lora.p.params[i] = (float)(0.3 * lw_rng_normal(&r.rng));
    ck_assert_int_eq(lw_adapters_init(&ad, r.m, r.whole.max_T, &lora, 0), LW_OK);
    ad.training = true;
    size_t P = lora.p.n_params;
    float *want_grads = calloc(P, sizeof(float));
    alone w;
    memset(lora.p.grads, 0, P * sizeof(float));
    each_alone(&r, &ad, NULL, labels, &w);
    memcpy(want_grads, lora.p.grads, P * sizeof(float));
    ck_assert(lw_receiver_pass_can_pack(&r.cached, &ad));
    ck_assert(!lw_receiver_pass_can_pack(&r.whole, &ad));   /* the head cache off: nothing packs */
    memset(lora.p.grads, 0, P * sizeof(float));
    packed_matches(&r, &ad, NULL, labels, &w);
    ck_assert_int_ge(ad.scratch->max_tokens, N_PACK * r.whole.max_T);
    tl_assert_close_to_scale(lora.p.grads, want_grads, P, 1e-5, "packed LoRA grads");   /* want_grads != 0 too */
    lora.cfg.dropout = 0.1f;   /* masks drawn per example: no packing */
    ck_assert(!lw_receiver_pass_can_pack(&r.cached, &ad));
    ck_assert_int_eq(lw_receiver_pass_pack_begin(&r.cached, &ad, N_PACK), LW_ERR_INVALID);
    lora.cfg.dropout = 0.0f;
    alone_free(&w);
    free(want_grads);
    lw_adapters_free(&ad);
    lw_lora_free(&lora);
    rig_close(&r);
}

START_TEST(packed_lora_step_matches_each_example)
{
    lw_model_config g = tl_tiny_gemma3_config(4);
    lora_packed_cases(&g, 7);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    lora_packed_cases(&l, 8);
}
END_TEST

/* A deep prefix packs whole examples, each segment after its own example's
 * prefix (random here, different per example, values too): losses, checks,
 * input gradients, each example's prefix gradient and, with LoRA beside
 * it, LoRA's gradients equal each example's pass. */
static void prefix_packed_cases(const lw_model_config *c, uint64_t seed, bool with_lora)
{
    enum { PREFIX = 3 };
    const int labels[N_PACK] = {1, 2, 0, 2};
    rig r;
    rig_open(&r, c, seed);
    lw_lora lora;
    lw_lora_config lc = {.rank = 2, .alpha = 4, .targets = (1u << LW_LORA_K) | (1u << LW_LORA_O)};
    if (with_lora) {
        ck_assert_int_eq(lw_lora_create(&lora, &lc, r.m), LW_OK);
        lw_lora_init(&lora, seed + 1);
        for (size_t i = 0; i < lora.p.n_params; i++)
            if (lora.p.params[i] == 0.0f) lora.p.params[i] = (float)(0.3 * lw_rng_normal(&r.rng));
    }
    lw_receiver_adapters ad;
    ck_assert_int_eq(lw_adapters_init(&ad, r.m, r.whole.max_T, with_lora ? &lora : NULL, PREFIX), LW_OK);
    ad.training = true;
    ck_assert_int_eq(lw_receiver_pass_grow_state(&r.whole, PREFIX), LW_OK);
    prefixes pf = {.n = (size_t)c->n_layers * PREFIX * c->n_kv_heads * c->head_dim};
    float *want_dk = calloc(N_PACK * pf.n, sizeof(float)), *want_dv = calloc(N_PACK * pf.n, sizeof(float));
    for (int i = 0; i < N_PACK; i++) {
        float **all[] = {&pf.k[i], &pf.v[i], &pf.dk[i], &pf.dv[i]};
        for (int j = 0; j < 4; j++) *all[j] = calloc(pf.n, sizeof(float));
        for (size_t j = 0; j < pf.n; j++) {
            pf.k[i][j] = (float)lw_rng_normal(&r.rng);
            pf.v[i][j] = (float)lw_rng_normal(&r.rng);
        }
    }
    size_t NL = with_lora ? lora.p.n_params : 0;
    float *want_grads = calloc(NL + 1, sizeof(float));
    if (with_lora) memset(lora.p.grads, 0, NL * sizeof(float));
    alone w;
    each_alone(&r, &ad, &pf, labels, &w);
    for (int i = 0; i < N_PACK; i++) {
        memcpy(want_dk + i * pf.n, pf.dk[i], pf.n * sizeof(float));
        memcpy(want_dv + i * pf.n, pf.dv[i], pf.n * sizeof(float));
    }
    if (with_lora) {
        memcpy(want_grads, lora.p.grads, NL * sizeof(float));
        memset(lora.p.grads, 0, NL * sizeof(float));
    }
    ck_assert(lw_receiver_pass_can_pack(&r.cached, &ad));
    ck_assert_int_eq(lw_receiver_pass_pack_room(&r.cached, &ad), (r.m->cfg.context - PREFIX) / r.whole.max_T);
    for (int i = 0; i < N_PACK; i++) memset(pf.dk[i], 0, pf.n * sizeof(float));   /* the pack must not touch them */
    packed_matches(&r, &ad, &pf, labels, &w);
    for (int i = 0; i < N_PACK; i++) {
        const float *dk, *dv;
        char what[160];
        lw_receiver_pass_pack_d_prefix(&r.cached, i, &dk, &dv);
        snprintf(what, sizeof what, "%s example %d: packed d prefix keys", c->name, i);
        tl_assert_close_to_scale(dk, want_dk + i * pf.n, pf.n, 1e-5, what);
        snprintf(what, sizeof what, "%s example %d: packed d prefix values", c->name, i);
        tl_assert_close_to_scale(dv, want_dv + i * pf.n, pf.n, 1e-5, what);
        for (size_t j = 0; j < pf.n; j++) ck_assert(pf.dk[i][j] == 0.0f);
    }
    if (with_lora) tl_assert_close_to_scale(lora.p.grads, want_grads, NL, 1e-5, "packed LoRA grads beside a prefix");
    /* more segments than prefixes: refused, not read past the prefixes' end */
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(r.m, 32, true, &s), LW_OK);
    int ids[4] = {1, 2, 3, 4}, seg[2] = {2, 2};
    lw_receiver_adapters one = ad;
    one.prefix_segments = 1;
    lw_forward_args fa = {.ids = ids, .T = 4, .capture_layer = -1, .n_segments = 2, .segment_len = seg,
                          .adapters = &one};
    ck_assert_int_eq(lw_forward(r.m, s, &fa), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "need a prefix per segment or one for all, have 1"));
    lw_state_free(s);
    if (with_lora) {   /* LoRA's dropout still keeps a prefixed pass from packing */
        lora.cfg.dropout = 0.1f;
        ck_assert(!lw_receiver_pass_can_pack(&r.cached, &ad));
    }
    alone_free(&w);
    for (int i = 0; i < N_PACK; i++) {
        free(pf.k[i]);
        free(pf.v[i]);
        free(pf.dk[i]);
        free(pf.dv[i]);
    }
    free(want_dk);
    free(want_dv);
    free(want_grads);
    lw_adapters_free(&ad);
    if (with_lora) lw_lora_free(&lora);
    rig_close(&r);
}

START_TEST(packed_prefix_step_matches_each_example)
{
    lw_model_config g = tl_tiny_gemma3_config(4);
    prefix_packed_cases(&g, 9, false);
    prefix_packed_cases(&g, 10, true);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    prefix_packed_cases(&l, 11, false);
    prefix_packed_cases(&l, 12, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("receiver_pass");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, cached_head_matches_the_whole_pass);
    tcase_add_test(tc, packed_step_matches_each_example);
    tcase_add_test(tc, packed_lora_step_matches_each_example);
    tcase_add_test(tc, packed_prefix_step_matches_each_example);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
