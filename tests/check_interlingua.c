/* The shared interlingua on tiny random readers (issue #24 items 1-4):
 * the teacher-forced answer loss and its gradient to the soft tokens, the
 * candidate score and greedy answers against fresh forwards, the
 * interlingua's resampler and adapters trained through two readers of
 * different widths and vocabularies (every gradient by central finite
 * differences), joint rescoring on a known answer, the payload bytes. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_train.h"
#include "bridge_answer.h"
#include "grad_check.h"
#include "interlingua.h"
#include "interlingua_train.h"
#include "joint_rescore.h"
#include "model.h"
#include "random_weights.h"
#include "rng.h"
#include "tiny_models.h"

enum { M_SOFT = 2, MAX_T = 16, MAX_ANSWER = 4, FEAT = 8, D_Z = 6 };

static const int BEFORE[] = {1, 5, 6}, AFTER[] = {7, 8}, ANSWER[] = {11, 12, 10};

/* Reader 0: the training suites' Gemma-like receiver (hidden 16, vocab 24),
 * unscaled embeddings (scaled, its last token's embedding outweighs what
 * the soft tokens can add at this size, and its answer loss barely moves).
 * Reader 1: the same family at hidden 24, another window and seed: a reader
 * of another width, as Gemma-3-270M is to SmolLM2. */
static lw_model *reader(int which)
{
    lw_model_config c = tl_tiny_receiver_config(which ? 8 : 4, false);
    if (which) {
        c.hidden = 24;
        c.ffn = 48;
        c.embed_rms = 1.0f;
    }
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, which ? 23 : 11, &m), LW_OK);
    return m;
}

static void random_fill(float *x, size_t n, double std, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * lw_rng_normal(&r));
}

/* log p(answer_i | rows before it) from one forward over every row with all
 * logits, a log-softmax per row in double: the reference. */
static double ref_answer_logprob(const lw_model *m, const float *soft, int M, const int *ans, int L, double *first)
{
    int nb = 3, na = 2, P = nb + M + na, T = P + L - 1, H = m->cfg.hidden, V = m->cfg.vocab;
    int *ids = calloc((size_t)T, sizeof(int));
    bool *emb = calloc((size_t)T, sizeof(bool));
    float *embeds = calloc((size_t)T * H, sizeof(float)), *logits = malloc((size_t)T * V * sizeof(float));
    for (int i = 0; i < nb; i++) ids[i] = BEFORE[i];
    for (int i = 0; i < M; i++) emb[nb + i] = true;
    memcpy(embeds + (size_t)nb * H, soft, (size_t)M * H * sizeof(float));
    for (int i = 0; i < na; i++) ids[nb + M + i] = AFTER[i];
    for (int i = 0; i + 1 < L; i++) ids[P + i] = ans[i];
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(m, T, false, &s), LW_OK);
    lw_forward_args a = {.ids = ids, .embeds = embeds, .is_embed = emb, .T = T, .logits = logits, .all_logits = true,
                         .capture_layer = -1};
    ck_assert_int_eq(lw_forward(m, s, &a), LW_OK);
    double total = 0.0;
    for (int i = 0; i < L; i++) {
        const float *row = logits + (size_t)(P - 1 + i) * V;
        double mx = -INFINITY, sum = 0.0;
        for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
        double lp = row[ans[i]] - mx - log(sum);
        if (i == 0 && first) *first = lp;
        total += lp;
    }
    lw_state_free(s);
    free(ids), free(emb), free(embeds), free(logits);
    return total;
}

START_TEST(answer_loss_is_teacher_forced_cross_entropy)
{
    lw_model *m = reader(0);
    int H = m->cfg.hidden;
    float soft[M_SOFT * 16];
    random_fill(soft, (size_t)M_SOFT * H, 4.0, 5);
    lw_answer_pass p;
    ck_assert_int_eq(lw_answer_pass_alloc(&p, m, MAX_T, MAX_ANSWER), LW_OK);
    ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, ANSWER, 3), LW_OK);
    float plain, weighted;
    double score, first;
    ck_assert_int_eq(lw_answer_pass_loss(&p, 0.0f, &plain), LW_OK);
    ck_assert_int_eq(lw_answer_pass_loss(&p, 2.0f, &weighted), LW_OK);
    ck_assert_int_eq(lw_answer_pass_score(&p, &score), LW_OK);
    double ref = ref_answer_logprob(m, soft, M_SOFT, ANSWER, 3, &first);
    ck_assert_double_eq_tol(plain, -ref / 3, 1e-5);
    ck_assert_double_eq_tol(score, ref / 3, 1e-5);
    ck_assert_double_eq_tol(weighted, -ref / 3 - 2.0 * first, 1e-5);
    ck_assert(fabs(first) > 1e-3);   /* so the weight mattered */
    lw_answer_pass_free(&p);
    lw_model_free(m);
}
END_TEST

/* d(loss)/d(soft tokens) with the first-token term on, every entry. */
START_TEST(answer_loss_gradient_to_soft_tokens_matches_finite_differences)
{
    for (int which = 0; which < 2; which++) {
        lw_model *m = reader(which);
        int H = m->cfg.hidden, n = M_SOFT * H;
        float *soft = malloc((size_t)n * sizeof(float)), g[M_SOFT * 24];
        double fd[M_SOFT * 24];
        random_fill(soft, (size_t)n, which ? 1.0 : 4.0, 6);
        lw_answer_pass p;
        const float w = 0.5f;
        ck_assert_int_eq(lw_answer_pass_alloc(&p, m, MAX_T, MAX_ANSWER), LW_OK);
        float loss;
        ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, ANSWER, 3), LW_OK);
        ck_assert_int_eq(lw_answer_pass_loss(&p, w, &loss), LW_OK);
        ck_assert_int_eq(lw_answer_pass_backward(&p, w, 1.0f), LW_OK);
        memcpy(g, lw_answer_pass_d_soft(&p), (size_t)n * sizeof(float));
        double gmax = 0.0;
        for (int i = 0; i < n; i++) {
            float keep = soft[i], eps = which ? 1e-2f : 3e-2f, lp, lm;
            soft[i] = keep + eps;
            ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, ANSWER, 3), LW_OK);
            ck_assert_int_eq(lw_answer_pass_loss(&p, w, &lp), LW_OK);
            soft[i] = keep - eps;
            ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, ANSWER, 3), LW_OK);
            ck_assert_int_eq(lw_answer_pass_loss(&p, w, &lm), LW_OK);
            soft[i] = keep;
            fd[i] = ((double)lp - lm) / (2.0 * eps);
            gmax = fmax(gmax, fabs(g[i]));
        }
        double worst = 0.0;
        int bad = tl_grad_mismatches(g, fd, (size_t)n, &worst);
        ck_assert_msg(bad == 0, "reader %d: %d of %d soft-token gradients off (worst %.2f of the tolerance)", which, bad,
                      n, worst);
        ck_assert(gmax > 1e-3);   /* not vacuous */
        lw_answer_pass_free(&p);
        free(soft);
        lw_model_free(m);
    }
}
END_TEST

/* Greedy decoding after the soft tokens equals the argmax of a fresh
 * forward over the prompt and what was written so far, token by token. */
START_TEST(greedy_answer_after_soft_tokens_equals_fresh_argmax)
{
    lw_model *m = reader(0);
    int H = m->cfg.hidden, V = m->cfg.vocab;
    float soft[M_SOFT * 16];
    random_fill(soft, (size_t)M_SOFT * H, 4.0, 7);
    lw_answer_pass p;
    ck_assert_int_eq(lw_answer_pass_alloc(&p, m, MAX_T, MAX_ANSWER), LW_OK);
    ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, NULL, 0), LW_OK);
    int out[MAX_ANSWER], n;
    lw_answer_gen_args ga = {.max_new = MAX_ANSWER};
    ck_assert_int_eq(lw_answer_pass_generate(&p, &ga, out, &n), LW_OK);
    ck_assert_int_eq(n, MAX_ANSWER);   /* no stop ids */
    for (int k = 0; k < n; k++) {
        /* the reference: every candidate next token's log-prob after out[0..k) */
        int best = -1;
        double best_lp = -INFINITY;
        for (int v = 0; v < V; v++) {
            int cand[MAX_ANSWER];
            memcpy(cand, out, (size_t)k * sizeof(int));
            cand[k] = v;
            double lp = ref_answer_logprob(m, soft, M_SOFT, cand, k + 1, NULL);
            if (lp > best_lp) best_lp = lp, best = v;
        }
        ck_assert_int_eq(out[k], best);
    }
    /* a stop id ends it before it is kept */
    lw_answer_gen_args gs = {.max_new = MAX_ANSWER, .stop_ids = &out[1], .n_stop = 1};
    int out2[MAX_ANSWER], n2;
    ck_assert_int_eq(lw_answer_pass_generate(&p, &gs, out2, &n2), LW_OK);
    ck_assert_int_le(n2, 1);
    lw_answer_pass_free(&p);
    lw_model_free(m);
}
END_TEST

START_TEST(bad_rows_are_refused)
{
    lw_model *m = reader(0);
    float soft[M_SOFT * 16] = {0};
    lw_answer_pass p;
    ck_assert_int_eq(lw_answer_pass_alloc(&p, m, 1 << 20, MAX_ANSWER), LW_ERR_INVALID);   /* beyond the context */
    ck_assert_int_eq(lw_answer_pass_alloc(&p, m, 8, MAX_ANSWER), LW_OK);
    const int bad_answer[] = {3, 99};
    const int long_answer[] = {3, 3, 3, 3, 3};
    ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, bad_answer, 2), LW_ERR_INVALID);
    ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, long_answer, 5), LW_ERR_INVALID);
    ck_assert_int_eq(lw_answer_pass_fill(&p, BEFORE, 3, soft, M_SOFT, AFTER, 2, NULL, 0), LW_OK);
    float loss;
    ck_assert_int_eq(lw_answer_pass_loss(&p, 0.0f, &loss), LW_ERR_INVALID);   /* no answer filled */
    lw_answer_pass_free(&p);
    lw_model_free(m);
}
END_TEST

/* ---- the interlingua -------------------------------------------------- */

typedef struct {
    lw_model *readers[2];
    lw_interlingua il;
    lw_il_trainer t;
} pair;

static void pair_open(pair *p, float first_token_weight)
{
    p->readers[0] = reader(0);
    p->readers[1] = reader(1);
    lw_interlingua_config c = {.feat_dim = FEAT, .d_z = D_Z, .adapter_ffn = 10, .max_T = 8, .n_readers = 2};
    c.resampler = (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = M_SOFT, .source_layer = 1,
                                     .width = 8, .depth = 1, .heads = 2, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
    for (int r = 0; r < 2; r++) {
        c.reader_hidden[r] = p->readers[r]->cfg.hidden;
        c.reader_embed_rms[r] = p->readers[r]->cfg.embed_rms;
    }
    ck_assert_msg(lw_interlingua_create(&p->il, &c) == LW_OK, "%s", lw_last_error());
    lw_interlingua_init(&p->il, 3);
    ck_assert_int_eq(lw_il_trainer_create(&p->t, &p->il, (const lw_model *const *)p->readers, MAX_T, MAX_ANSWER,
                                          first_token_weight),
                     LW_OK);
}

static void pair_close(pair *p)
{
    lw_il_trainer_free(&p->t);
    lw_interlingua_free(&p->il);
    lw_model_free(p->readers[0]);
    lw_model_free(p->readers[1]);
}

/* Each reader its own tokenization: reader 1 another prompt and answer. */
static const int BEFORE1[] = {2, 4}, AFTER1[] = {6, 1, 7}, ANSWER1[] = {8, 2};

static void rows_of(lw_il_rows rows[2])
{
    rows[0] = (lw_il_rows){.before = BEFORE, .n_before = 3, .after = AFTER, .n_after = 2, .answer = ANSWER, .L = 3};
    rows[1] = (lw_il_rows){.before = BEFORE1, .n_before = 2, .after = AFTER1, .n_after = 3, .answer = ANSWER1, .L = 2};
}

/* Central differences of the summed loss at one parameter. */
static double fd_at(pair *p, float *param, const float *feats, int T, const lw_il_rows *rows, float eps)
{
    float keep = *param, lp, lm;
    *param = keep + eps;
    ck_assert_int_eq(lw_il_trainer_loss(&p->t, feats, T, rows, &lp), LW_OK);
    *param = keep - eps;
    ck_assert_int_eq(lw_il_trainer_loss(&p->t, feats, T, rows, &lm), LW_OK);
    *param = keep;
    return ((double)lp - lm) / (2.0 * eps);
}

/* The resampler's queries and every other trained tensor, and every group of
 * both adapters: the summed two-reader loss against central differences at
 * the largest-gradient entry and at two random entries of each. */
START_TEST(interlingua_gradients_match_finite_differences)
{
    pair p;
    pair_open(&p, 0.5f);
    float feats[5 * FEAT];
    random_fill(feats, sizeof feats / sizeof *feats, 1.0, 9);
    lw_il_rows rows[2];
    rows_of(rows);
    lw_interlingua_zero_grad(&p.il);
    float losses[2];
    ck_assert_int_eq(lw_il_trainer_example(&p.t, feats, 5, rows, 1.0f, losses), LW_OK);
    float total;
    ck_assert_int_eq(lw_il_trainer_loss(&p.t, feats, 5, rows, &total), LW_OK);
    ck_assert_double_eq_tol(total, losses[0] + losses[1], 1e-5);
    lw_rng rng;
    lw_rng_seed(&rng, 17);
    float an[512];
    double fd[512];
    int n = 0, queries_checked = 0;
    lw_bridge *b = &p.il.enc;
    float *bg = malloc(b->n_params * sizeof(float));
    memcpy(bg, b->grads, b->n_params * sizeof(float));
    for (int k = 0; k < b->n_tensors; k++) {
        const lw_bridge_tensor *tt = &b->tensors[k];
        if (!tt->trainable) continue;
        size_t best = tt->offset;
        for (size_t j = tt->offset; j < tt->offset + tt->count; j++)
            if (fabsf(bg[j]) > fabsf(bg[best])) best = j;
        size_t at[3] = {best, tt->offset + lw_rng_below(&rng, tt->count), tt->offset + lw_rng_below(&rng, tt->count)};
        for (int q = 0; q < 3; q++) {
            an[n] = bg[at[q]];
            fd[n++] = fd_at(&p, &b->params[at[q]], feats, 5, rows, 1e-3f);
        }
        if (!strcmp(tt->name, "queries")) queries_checked = fabsf(bg[best]) > 1e-4f;
    }
    ck_assert_msg(queries_checked, "the queries got no gradient");
    for (int r = 0; r < 2; r++) {
        lw_il_adapter *ad = &p.il.readers[r];
        float *ag = malloc(ad->n_params * sizeof(float));
        memcpy(ag, ad->grads, ad->n_params * sizeof(float));
        size_t R = (size_t)ad->hidden, F = (size_t)ad->ffn, Z = (size_t)ad->d_z;
        size_t off[7] = {ad->w_in, ad->b_in, ad->w1, ad->b1, ad->w2, ad->b2, ad->scale};
        size_t cnt[7] = {R * Z, R, F * R, F, R * F, R, 1};
        for (int k = 0; k < 7; k++) {
            size_t best = off[k];
            for (size_t j = off[k]; j < off[k] + cnt[k]; j++)
                if (fabsf(ag[j]) > fabsf(ag[best])) best = j;
            ck_assert_msg(fabsf(ag[best]) > 1e-5f, "reader %d, adapter group %d has no gradient", r, k);
            size_t at[3] = {best, off[k] + lw_rng_below(&rng, cnt[k]), off[k] + lw_rng_below(&rng, cnt[k])};
            for (int q = 0; q < 3; q++) {
                an[n] = ag[at[q]];
                fd[n++] = fd_at(&p, &ad->params[at[q]], feats, 5, rows, 1e-3f);
            }
        }
        free(ag);
    }
    double worst = 0.0;
    int bad = tl_grad_mismatches(an, fd, (size_t)n, &worst);
    if (getenv("IL_VERBOSE"))
        for (int i = 0; i < n; i++) fprintf(stderr, "%3d an %12.6g fd %12.6g\n", i, an[i], fd[i]);
    ck_assert_msg(bad == 0, "%d of %d interlingua gradients off (worst %.2f of the tolerance)", bad, n, worst);
    free(bg);
    pair_close(&p);
}
END_TEST

/* The spread term on the latents (lw_il_trainer_set_spread, --spread): the
 * second example of a step against central differences of its summed
 * readers' loss plus weight * cos(its latents, the first example's), the
 * first's held fixed; the resampler's largest-gradient entry of every
 * trained tensor. The step's first example gets no term. */
static double fd_spread_at(pair *p, float *param, const float *feats, const lw_il_rows *rows, const double *m0,
                           float w)
{
    float keep = *param, eps = 1e-3f, l;
    double f[2];
    for (int sgn = 0; sgn < 2; sgn++) {
        *param = keep + (sgn ? -eps : eps);
        ck_assert_int_eq(lw_il_trainer_loss(&p->t, feats, 5, rows, &l), LW_OK);   /* leaves il.z: these latents */
        f[sgn] = l + w * lw_spread_cos(p->il.z, m0, M_SOFT, D_Z, NULL, 0.0f);
    }
    *param = keep;
    return (f[0] - f[1]) / (2.0 * eps);
}

START_TEST(interlingua_spread_gradient_matches_finite_differences)
{
    pair p;
    pair_open(&p, 0.5f);
    const float w = 3.0f;
    ck_assert_int_eq(lw_il_trainer_set_spread(&p.t, w), LW_OK);
    float fa[5 * FEAT], fb[5 * FEAT], losses[2];
    random_fill(fa, sizeof fa / sizeof *fa, 1.0, 9);
    random_fill(fb, sizeof fb / sizeof *fb, 1.0, 10);
    lw_il_rows rows[2];
    rows_of(rows);
    lw_interlingua_zero_grad(&p.il);
    lw_spread_term_reset(&p.t.spread);
    ck_assert_int_eq(lw_il_trainer_example(&p.t, fa, 5, rows, 1.0f, losses), LW_OK);
    double m0[M_SOFT * D_Z];
    ck_assert_int_eq(p.t.spread.n, 1);
    memcpy(m0, p.t.spread.sum, sizeof m0);
    lw_bridge *b = &p.il.enc;
    float *bg = malloc(b->n_params * sizeof(float)), *first = malloc(b->n_params * sizeof(float));
    lw_interlingua_zero_grad(&p.il);
    ck_assert_int_eq(lw_il_trainer_example(&p.t, fb, 5, rows, 1.0f, losses), LW_OK);
    memcpy(bg, b->grads, b->n_params * sizeof(float));
    lw_interlingua_zero_grad(&p.il);
    lw_spread_term_reset(&p.t.spread);
    ck_assert_int_eq(lw_il_trainer_example(&p.t, fb, 5, rows, 1.0f, losses), LW_OK);
    memcpy(first, b->grads, b->n_params * sizeof(float));
    double moved = 0;
    for (size_t j = 0; j < b->n_params; j++) moved = fmax(moved, fabs((double)bg[j] - first[j]));
    ck_assert_msg(moved > 1e-3, "the term moved no resampler gradient by more than %g", moved);
    float an[64];
    double fd[64];
    int n = 0;
    for (int k = 0; k < b->n_tensors && n < 64; k++) {
        const lw_bridge_tensor *tt = &b->tensors[k];
        if (!tt->trainable) continue;
        size_t best = tt->offset;
        for (size_t j = tt->offset; j < tt->offset + tt->count; j++)
            if (fabsf(bg[j]) > fabsf(bg[best])) best = j;
        an[n] = bg[best];
        fd[n++] = fd_spread_at(&p, &b->params[best], fb, rows, m0, w);
    }
    ck_assert_int_ge(n, 4);
    double worst = 0.0;
    int bad = tl_grad_mismatches(an, fd, (size_t)n, &worst);
    ck_assert_msg(bad == 0, "%d of %d gradients off (worst %.2f of the tolerance)", bad, n, worst);
    free(bg);
    free(first);
    pair_close(&p);
}
END_TEST

/* The adapter's RMS calibration: every soft token's RMS is the scale
 * (the reader's embedding RMS at init), whatever the latents' size. */
START_TEST(adapter_calibrates_to_the_reader_scale)
{
    pair p;
    pair_open(&p, 0.0f);
    float feats[4 * FEAT];
    random_fill(feats, sizeof feats / sizeof *feats, 30.0, 2);
    ck_assert_int_eq(lw_interlingua_encode(&p.il, feats, 4, NULL), LW_OK);
    for (int r = 0; r < 2; r++) {
        int H = p.readers[r]->cfg.hidden;
        float out[M_SOFT * 24];
        ck_assert_int_eq(lw_interlingua_read(&p.il, r, out), LW_OK);
        for (int t = 0; t < M_SOFT; t++) {
            double ss = 0;
            for (int i = 0; i < H; i++) ss += (double)out[t * H + i] * out[t * H + i];
            ck_assert_double_eq_tol(sqrt(ss / H), p.readers[r]->cfg.embed_rms, 1e-3 * p.readers[r]->cfg.embed_rms);
        }
    }
    pair_close(&p);
}
END_TEST

/* Reader r's first-token cross-entropy (the loss with weight 1 minus the
 * plain one), on the latents of the last encode. */
static double first_token_ce(pair *p, int r, const lw_il_rows *rows)
{
    float with, without;
    ck_assert_int_eq(lw_il_trainer_fill(&p->t, r, &rows[r]), LW_OK);
    ck_assert_int_eq(lw_answer_pass_loss(&p->t.pass[r], 1.0f, &with), LW_OK);
    ck_assert_int_eq(lw_answer_pass_loss(&p->t.pass[r], 0.0f, &without), LW_OK);
    return (double)with - without;
}

/* 200 joint steps on one example at least halve both readers' losses and
 * their first-token cross-entropy (what the soft tokens decide most
 * directly). The tiny random readers start very peaked (CE 9-24 nats), so
 * the bar is a fall, not a fit. */
START_TEST(joint_training_lowers_both_losses)
{
    pair p;
    pair_open(&p, 0.0f);
    float feats[5 * FEAT];
    random_fill(feats, sizeof feats / sizeof *feats, 1.0, 4);
    lw_il_rows rows[2];
    rows_of(rows);
    lw_il_optim o;
    ck_assert_int_eq(lw_il_optim_init(&o, &p.il), LW_OK);
    float first[2], last[2];
    double ce0[2], ce1[2];
    ck_assert_int_eq(lw_il_trainer_encode(&p.t, feats, 5), LW_OK);
    for (int r = 0; r < 2; r++) ce0[r] = first_token_ce(&p, r, rows);
    for (int step = 0; step < 200; step++) {
        lw_interlingua_zero_grad(&p.il);
        ck_assert_int_eq(lw_il_trainer_example(&p.t, feats, 5, rows, 1.0f, step ? last : first), LW_OK);
        lw_interlingua_clip_grads(&p.il, 1.0f);
        lw_interlingua_adamw_step(&p.il, &o, 3e-2f, 0.0f);
    }
    ck_assert_int_eq(lw_il_trainer_example(&p.t, feats, 5, rows, 1.0f, last), LW_OK);
    for (int r = 0; r < 2; r++) ce1[r] = first_token_ce(&p, r, rows);
    if (getenv("IL_VERBOSE"))
        fprintf(stderr, "loss %g %g -> %g %g; first-token CE %g %g -> %g %g\n", first[0], first[1], last[0], last[1],
                ce0[0], ce0[1], ce1[0], ce1[1]);
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(last[r] < 0.5f * first[r], "reader %d: loss %g -> %g", r, first[r], last[r]);
        ck_assert_msg(ce0[r] > 1.0 && ce1[r] < 0.5 * ce0[r], "reader %d: first-token CE %g -> %g", r, ce0[r], ce1[r]);
    }
    lw_il_optim_free(&o);
    pair_close(&p);
}
END_TEST

START_TEST(bad_interlingua_configs_are_refused)
{
    lw_interlingua il;
    lw_interlingua_config c = {.feat_dim = FEAT, .d_z = D_Z, .adapter_ffn = 10, .max_T = 8, .n_readers = 0};
    c.resampler = (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = 2, .source_layer = 1, .width = 8,
                                     .depth = 1, .heads = 2, .ffn_mult = 2};
    ck_assert_int_eq(lw_interlingua_create(&il, &c), LW_ERR_INVALID);
    c.n_readers = 1;
    c.reader_hidden[0] = 16;
    c.reader_embed_rms[0] = 0.0f;   /* no scale to calibrate to */
    ck_assert_int_eq(lw_interlingua_create(&il, &c), LW_ERR_INVALID);
    c.reader_embed_rms[0] = 1.0f;
    c.resampler.kind = LW_BRIDGE_MLP;
    ck_assert_int_eq(lw_interlingua_create(&il, &c), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "perceiver") != NULL);
    c.resampler.kind = LW_BRIDGE_PERCEIVER;
    ck_assert_int_eq(lw_interlingua_create(&il, &c), LW_OK);
    float feats[9 * FEAT] = {0};
    ck_assert_int_eq(lw_interlingua_encode(&il, feats, 9, NULL), LW_ERR_INVALID);   /* beyond max_T */
    lw_interlingua_free(&il);
}
END_TEST

/* The tiny reader with a Perceiver bridge (M_SOFT soft tokens from FEAT
 * features), its answer pass and the bridge on answers over them: the rig
 * of the two bridge-on-answers gradient checks below. */
static lw_model *bridge_on_answers_open(lw_bridge *br, lw_answer_pass *pass, lw_bridge_answer *ba)
{
    lw_model *m = reader(1);
    lw_bridge_config bc = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = M_SOFT, .source_layer = 1, .width = 8,
                           .depth = 1, .heads = 2, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
    ck_assert_int_eq(lw_bridge_create(br, &bc, FEAT, m->cfg.hidden, m->cfg.embed_rms), LW_OK);
    lw_bridge_init(br, 4);
    ck_assert_int_eq(lw_answer_pass_alloc(pass, m, MAX_T, MAX_ANSWER), LW_OK);
    ck_assert_int_eq(lw_bridge_answer_init(ba, br, pass, 8, 0.5f), LW_OK);
    return m;
}

/* The pair's bridge on answers: d(answer loss)/d(bridge params) through
 * the receiver, every trainable tensor at its largest-gradient entry and a
 * random one, against central differences; and a few dozen AdamW steps on
 * one example lower the loss. */
START_TEST(bridge_on_answers_gradient_matches_finite_differences)
{
    lw_bridge br;
    lw_answer_pass pass;
    lw_bridge_answer ba;
    lw_model *m = bridge_on_answers_open(&br, &pass, &ba);
    float x[5 * FEAT];
    random_fill(x, sizeof x / sizeof *x, 1.0, 21);
    lw_bridge_answer_rows rows = {.before = BEFORE1, .n_before = 2, .after = AFTER1, .n_after = 3, .answer = ANSWER1,
                                  .L = 2};
    lw_bridge_zero_grad(&br);
    float loss;
    ck_assert_int_eq(lw_bridge_answer_example(&ba, x, 5, &rows, 1.0f, &loss), LW_OK);
    float *g = malloc(br.n_params * sizeof(float)), an[64];
    double fd[64];
    memcpy(g, br.grads, br.n_params * sizeof(float));
    lw_rng rng;
    lw_rng_seed(&rng, 8);
    int n = 0;
    for (int k = 0; k < br.n_tensors && n + 2 <= 64; k++) {
        const lw_bridge_tensor *t = &br.tensors[k];
        if (!t->trainable) continue;
        size_t best = t->offset;
        for (size_t j = t->offset; j < t->offset + t->count; j++)
            if (fabsf(g[j]) > fabsf(g[best])) best = j;
        size_t at[2] = {best, t->offset + lw_rng_below(&rng, t->count)};
        for (int q = 0; q < 2; q++) {
            float keep = br.params[at[q]], eps = 1e-3f, lp, lm;
            br.params[at[q]] = keep + eps;
            ck_assert_int_eq(lw_bridge_answer_loss(&ba, x, 5, &rows, &lp), LW_OK);
            br.params[at[q]] = keep - eps;
            ck_assert_int_eq(lw_bridge_answer_loss(&ba, x, 5, &rows, &lm), LW_OK);
            br.params[at[q]] = keep;
            an[n] = g[at[q]];
            fd[n++] = ((double)lp - lm) / (2.0 * eps);
        }
    }
    double worst = 0.0;
    int bad = tl_grad_mismatches(an, fd, (size_t)n, &worst);
    ck_assert_msg(bad == 0, "%d of %d bridge gradients off (worst %.2f of the tolerance)", bad, n, worst);
    lw_adamw opt;
    ck_assert_int_eq(lw_adamw_init(&opt, br.n_params, lw_adamw_defaults()), LW_OK);
    float first = loss;
    for (int step = 0; step < 60; step++) {
        lw_bridge_zero_grad(&br);
        ck_assert_int_eq(lw_bridge_answer_example(&ba, x, 5, &rows, 1.0f, &loss), LW_OK);
        lw_clip_grad_norm(br.grads, br.n_params, 1.0f);
        lw_bridge_adamw_step(&br, &opt, 3e-2f, 0.0f);
    }
    ck_assert_int_eq(lw_bridge_answer_loss(&ba, x, 5, &rows, &loss), LW_OK);
    ck_assert_msg(loss < 0.5f * first, "loss %g -> %g", first, loss);
    lw_adamw_free(&opt);
    free(g);
    lw_bridge_answer_free(&ba);
    lw_answer_pass_free(&pass);
    lw_bridge_free(&br);
    lw_model_free(m);
}
END_TEST

/* The spread term on the bridge on answers (lw_bridge_answer_set_spread):
 * the second example of a step against central differences of its answer
 * loss plus weight * cos(its soft tokens, the first example's), the
 * first's held fixed, at every trainable tensor's largest-gradient entry. */
START_TEST(bridge_on_answers_spread_gradient_matches_finite_differences)
{
    lw_bridge br;
    lw_answer_pass pass;
    lw_bridge_answer ba;
    lw_model *m = bridge_on_answers_open(&br, &pass, &ba);
    const float w = 3.0f;
    ck_assert_int_eq(lw_bridge_answer_set_spread(&ba, w), LW_OK);
    int H = m->cfg.hidden, MH = M_SOFT * H;
    float xa[5 * FEAT], xb[5 * FEAT], loss;
    random_fill(xa, sizeof xa / sizeof *xa, 1.0, 21);
    random_fill(xb, sizeof xb / sizeof *xb, 1.0, 22);
    lw_bridge_answer_rows rows = {.before = BEFORE1, .n_before = 2, .after = AFTER1, .n_after = 3, .answer = ANSWER1,
                                  .L = 2};
    lw_spread_term_reset(&ba.spread);
    lw_bridge_zero_grad(&br);
    ck_assert_int_eq(lw_bridge_answer_example(&ba, xa, 5, &rows, 1.0f, &loss), LW_OK);
    double *m0 = malloc((size_t)MH * sizeof *m0);
    float *g = malloc(br.n_params * sizeof(float)), *g_first = malloc(br.n_params * sizeof(float)), an[64];
    double fd[64];
    memcpy(m0, ba.spread.sum, (size_t)MH * sizeof *m0);
    lw_bridge_zero_grad(&br);
    ck_assert_int_eq(lw_bridge_answer_example(&ba, xb, 5, &rows, 1.0f, &loss), LW_OK);
    memcpy(g, br.grads, br.n_params * sizeof(float));
    lw_spread_term_reset(&ba.spread);
    lw_bridge_zero_grad(&br);
    ck_assert_int_eq(lw_bridge_answer_example(&ba, xb, 5, &rows, 1.0f, &loss), LW_OK);
    memcpy(g_first, br.grads, br.n_params * sizeof(float));
    double moved = 0;
    for (size_t j = 0; j < br.n_params; j++) moved = fmax(moved, fabs((double)g[j] - g_first[j]));
    ck_assert_msg(moved > 1e-3, "the term moved no gradient entry by more than %g", moved);
    int n = 0;
    for (int k = 0; k < br.n_tensors && n < 64; k++) {
        const lw_bridge_tensor *t = &br.tensors[k];
        if (!t->trainable) continue;
        size_t best = t->offset;
        for (size_t j = t->offset; j < t->offset + t->count; j++)
            if (fabsf(g[j]) > fabsf(g[best])) best = j;
        float keep = br.params[best], eps = 1e-3f, l;
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            br.params[best] = keep + (sgn ? -eps : eps);
            ck_assert_int_eq(lw_bridge_answer_loss(&ba, xb, 5, &rows, &l), LW_OK);   /* leaves ba.soft */
            f[sgn] = l + w * lw_spread_cos(ba.soft, m0, M_SOFT, H, NULL, 0.0f);
        }
        br.params[best] = keep;
        an[n] = g[best];
        fd[n++] = (f[0] - f[1]) / (2.0 * eps);
    }
    double worst = 0.0;
    int bad = tl_grad_mismatches(an, fd, (size_t)n, &worst);
    ck_assert_msg(bad == 0, "%d of %d bridge gradients off (worst %.2f of the tolerance)", bad, n, worst);
    free(m0);
    free(g);
    free(g_first);
    lw_bridge_answer_free(&ba);
    lw_answer_pass_free(&pass);
    lw_bridge_free(&br);
    lw_model_free(m);
}
END_TEST

/* ---- joint rescoring ---------------------------------------------------- */

/* A known answer: reader 0 alone prefers its own candidate 0, reader 1 its
 * own candidate 2, but candidate 1 (reader 0's second) has the best sum;
 * candidate 3 would win on reader 0 alone but reader 1 cannot score it. */
START_TEST(joint_rescoring_picks_the_best_sum)
{
    const double S[2][5] = {{-0.2, -0.5, -2.0, -0.1, -0.3}, {-3.0, -0.6, -0.4, -INFINITY, -2.5}};
    const int owner[5] = {0, 0, 1, 0, 1};
    lw_joint_pick pk;
    ck_assert_int_eq(lw_joint_rescore(&S[0][0], 2, 5, owner, &pk), LW_OK);
    ck_assert_int_eq(pk.alone[0], 3);
    ck_assert_int_eq(pk.alone[1], 2);
    ck_assert_int_eq(pk.joint, 1);
    ck_assert_double_eq_tol(pk.joint_score, -1.1, 1e-12);
    /* nothing finite from every reader: refused */
    const double N[2][1] = {{-1.0}, {NAN}};
    ck_assert_int_eq(lw_joint_rescore(&N[0][0], 2, 1, owner, &pk), LW_ERR_INVALID);
    const int bad_owner[1] = {2};
    ck_assert_int_eq(lw_joint_rescore(&S[0][0], 2, 1, bad_owner, &pk), LW_ERR_INVALID);
}
END_TEST

/* The tiny pair end to end: each reader proposes its greedy answer and a
 * sampled one, both score all four with their own soft tokens, and the
 * scores equal the fresh forward's mean log-probs; the joint pick is the
 * reference's argmax of the sum. The candidates are token ids both readers
 * share (ids below both vocabularies: here a "tokenizer" is the identity). */
START_TEST(joint_rescoring_on_the_tiny_pair)
{
    pair p;
    pair_open(&p, 0.0f);
    float feats[4 * FEAT];
    random_fill(feats, sizeof feats / sizeof *feats, 1.0, 12);
    ck_assert_int_eq(lw_il_trainer_encode(&p.t, feats, 4), LW_OK);
    lw_il_rows rows[2];
    rows_of(rows);
    rows[0].L = rows[1].L = 0;
    int cand[4][3], len[4], owner[4], n = 0;
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(lw_il_trainer_fill(&p.t, r, &rows[r]), LW_OK);
        for (int k = 0; k < 2; k++) {
            lw_answer_gen_args ga = {.max_new = 3, .temperature = k ? 1.5f : 0.0f, .seed = 40 + (uint64_t)r};
            int out[3], m;
            ck_assert_int_eq(lw_answer_pass_generate(&p.t.pass[r], &ga, out, &m), LW_OK);
            ck_assert_int_eq(m, 3);
            for (int i = 0; i < 3; i++) cand[n][i] = out[i] % 11;   /* into both vocabularies */
            len[n] = 1 + (n % 3);   /* lengths 1..3, so normalisation matters */
            owner[n++] = r;
        }
    }
    double S[2][4], ref[2][4];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 4; c++) {
            lw_il_rows x = rows[r];
            x.answer = cand[c];
            x.L = len[c];
            ck_assert_int_eq(lw_il_trainer_fill(&p.t, r, &x), LW_OK);
            ck_assert_int_eq(lw_answer_pass_score(&p.t.pass[r], &S[r][c]), LW_OK);
            /* the reference: the reader's own soft tokens through a fresh forward */
            lw_model *m = p.readers[r];
            int H = m->cfg.hidden, nb = x.n_before, na = x.n_after, P = nb + M_SOFT + na, T = P + len[c] - 1;
            int ids[MAX_T] = {0};
            bool emb[MAX_T] = {0};
            float embeds[MAX_T * 24] = {0}, *logits = malloc((size_t)T * m->cfg.vocab * sizeof(float));
            for (int i = 0; i < nb; i++) ids[i] = x.before[i];
            for (int i = 0; i < M_SOFT; i++) emb[nb + i] = true;
            memcpy(embeds + (size_t)nb * H, p.t.soft[r], (size_t)M_SOFT * H * sizeof(float));
            for (int i = 0; i < na; i++) ids[nb + M_SOFT + i] = x.after[i];
            for (int i = 0; i + 1 < len[c]; i++) ids[P + i] = cand[c][i];
            lw_state *s;
            ck_assert_int_eq(lw_state_alloc(m, T, false, &s), LW_OK);
            lw_forward_args a = {.ids = ids, .embeds = embeds, .is_embed = emb, .T = T, .logits = logits,
                                 .all_logits = true, .capture_layer = -1};
            ck_assert_int_eq(lw_forward(m, s, &a), LW_OK);
            double tot = 0;
            for (int i = 0; i < len[c]; i++) {
                const float *row = logits + (size_t)(P - 1 + i) * m->cfg.vocab;
                double mx = -INFINITY, sum = 0;
                for (int v = 0; v < m->cfg.vocab; v++) mx = fmax(mx, row[v]);
                for (int v = 0; v < m->cfg.vocab; v++) sum += exp(row[v] - mx);
                tot += row[cand[c][i]] - mx - log(sum);
            }
            ref[r][c] = tot / len[c];
            ck_assert_double_eq_tol(S[r][c], ref[r][c], 1e-5);
            lw_state_free(s);
            free(logits);
        }
    lw_joint_pick pk;
    ck_assert_int_eq(lw_joint_rescore(&S[0][0], 2, 4, owner, &pk), LW_OK);
    int want = 0;
    for (int c = 1; c < 4; c++)
        if (ref[0][c] + ref[1][c] > ref[0][want] + ref[1][want]) want = c;
    ck_assert_int_eq(pk.joint, want);
    ck_assert(pk.alone[0] == 0 || pk.alone[0] == 1);
    ck_assert(pk.alone[1] == 2 || pk.alone[1] == 3);
    pair_close(&p);
}
END_TEST

START_TEST(payload_bytes_and_compression)
{
    lw_il_payload pl = lw_interlingua_payload(16, 256, 1000, 200);
    ck_assert_uint_eq(pl.fp32_bytes, 16384);
    ck_assert_uint_eq(pl.bf16_bytes, 8192);
    ck_assert_double_eq_tol(pl.ratio_bf16, 1000.0 / 8192, 1e-12);
    ck_assert_double_eq_tol(pl.compression, 12.5, 1e-12);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("interlingua");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, answer_loss_is_teacher_forced_cross_entropy);
    tcase_add_test(tc, answer_loss_gradient_to_soft_tokens_matches_finite_differences);
    tcase_add_test(tc, greedy_answer_after_soft_tokens_equals_fresh_argmax);
    tcase_add_test(tc, bad_rows_are_refused);
    tcase_add_test(tc, interlingua_gradients_match_finite_differences);
    tcase_add_test(tc, interlingua_spread_gradient_matches_finite_differences);
    tcase_add_test(tc, adapter_calibrates_to_the_reader_scale);
    tcase_add_test(tc, joint_training_lowers_both_losses);
    tcase_add_test(tc, bad_interlingua_configs_are_refused);
    tcase_add_test(tc, bridge_on_answers_gradient_matches_finite_differences);
    tcase_add_test(tc, bridge_on_answers_spread_gradient_matches_finite_differences);
    tcase_add_test(tc, joint_rescoring_picks_the_best_sum);
    tcase_add_test(tc, joint_rescoring_on_the_tiny_pair);
    tcase_add_test(tc, payload_bytes_and_compression);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
