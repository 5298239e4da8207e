/* Packed label scoring (label_scoring_packed.h) on tiny random receivers:
 * a batch of 1..5 prompts of different lengths (ids only, and soft rows
 * among the ids) scores as each prompt alone through lw_score_verbalizers,
 * to float rounding (the products take more rows at once; the bound is
 * asserted, the largest difference printed), and as closely whatever the
 * batch it came in, however a batch larger than one pass splits, and
 * whatever head the prompts share (run once, cached, and reused); with
 * many labels an example is scored on its own, its prompt once and its
 * labels after it, to the same bound; a prompt or a verbalizer larger than
 * a pass, a bad id or an empty prompt are refused with a clear error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "label_scoring.h"
#include "label_scoring_packed.h"
#include "model.h"
#include "narrow_weights.h"
#include "random_weights.h"
#include "rng.h"
#include "testlib.h"
#include "tiny_models.h"

enum { N_LABELS = 3, MAX_N = 5, MAX_P = 13 };

static const int V0[] = {10, 2}, V1[] = {6}, V2[] = {10, 0, 6};
static const int *const VERB[N_LABELS] = {V0, V1, V2};
static const int VERB_LEN[N_LABELS] = {2, 1, 3};

typedef struct {
    int ids[MAX_N][MAX_P];
    bool is_embed[MAX_N][MAX_P];
    float *embeds[MAX_N];
    lw_score_prompt pr[MAX_N];
} prompts;

/* n prompts of lengths 3, 7, 11, 4, 13 (rows 1..3 soft when soft), all
 * beginning with ids 5, 9: a shared head of 2 rows (1 when soft), the
 * whole prompt but its last row for a batch of one without soft rows. */
static void make_prompts(prompts *p, const lw_model *m, int n, bool soft, lw_rng *rng)
{
    static const int len[MAX_N] = {3, 7, 11, 4, 13};
    int H = m->cfg.hidden;
    for (int i = 0; i < n; i++) {
        p->embeds[i] = calloc((size_t)MAX_P * H, sizeof(float));
        for (int t = 0; t < len[i]; t++) {
            /* the first two ids the same in every prompt: the shared head the scorer caches */
            p->ids[i][t] = t < 2 ? 5 + 4 * t : (int)(lw_rng_next(rng) % (uint64_t)m->cfg.vocab);
            p->is_embed[i][t] = soft && t >= 1 && t <= 3;
            for (int h = 0; h < H; h++) p->embeds[i][(size_t)t * H + h] = (float)lw_rng_normal(rng);
        }
        p->pr[i] = (lw_score_prompt){.ids = p->ids[i], .embeds = soft ? p->embeds[i] : NULL,
                                     .is_embed = soft ? p->is_embed[i] : NULL, .P = len[i]};
    }
}

static void free_prompts(prompts *p, int n)
{
    for (int i = 0; i < n; i++) free(p->embeds[i]);
}

/* One prompt alone, as lw_receiver_pass_prompt runs it: the prompt from
 * position 0, then lw_score_verbalizers. */
static void score_alone_labels(const lw_model *m, const lw_score_prompt *pr, int n_labels, const int *const *verb,
                               const int *verb_len, double *scores)
{
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(m, MAX_P + 35, false, &s), LW_OK);
    lw_forward_args a = {.ids = pr->ids, .embeds = pr->embeds, .is_embed = pr->is_embed, .T = pr->P};
    ck_assert_msg(lw_score_after_prompt(m, s, &a, n_labels, verb, verb_len, scores) == LW_OK, "%s", lw_last_error());
    lw_state_free(s);
}

static void score_alone(const lw_model *m, const lw_score_prompt *pr, double *scores)
{
    score_alone_labels(m, pr, N_LABELS, VERB, VERB_LEN, scores);
}

static double worst, worst_batch;   /* the largest packed - alone, packed - packed elsewhere */

static void batches_match(const lw_model_config *c, uint64_t seed)
{
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(c, seed, &m), LW_OK);
    lw_packed_scorer big, small;
    ck_assert_msg(lw_packed_scorer_init(&big, m, 64) == LW_OK, "%s", lw_last_error());
    /* 30 rows: the 13-row prompt's labels need up to 13 + 1 + 13 + 2 = 29, so 5 examples take several passes */
    ck_assert_int_eq(lw_packed_scorer_init(&small, m, 30), LW_OK);
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    for (int soft = 0; soft < 2; soft++)
        for (int n = 1; n <= MAX_N; n++) {
            prompts p;
            make_prompts(&p, m, n, soft, &rng);
            double got[MAX_N * N_LABELS], split[MAX_N * N_LABELS], one[N_LABELS], alone[N_LABELS];
            ck_assert_msg(lw_packed_scorer_score(&big, n, p.pr, N_LABELS, VERB, VERB_LEN, got) == LW_OK, "%s",
                          lw_last_error());
            ck_assert_msg(lw_packed_scorer_score(&small, n, p.pr, N_LABELS, VERB, VERB_LEN, split) == LW_OK, "%s",
                          lw_last_error());
            for (int i = 0; i < n; i++) {
                score_alone(m, &p.pr[i], alone);
                ck_assert_int_eq(lw_packed_scorer_score(&big, 1, &p.pr[i], N_LABELS, VERB, VERB_LEN, one), LW_OK);
                for (int k = 0; k < N_LABELS; k++) {
                    double g = got[i * N_LABELS + k], d = fabs(g - alone[k]);
                    ck_assert_msg(isfinite(g) && g < 0.0, "score %g", g);
                    ck_assert_msg(d <= 1e-5 * (1.0 + fabs(alone[k])),
                                  "%s n=%d soft=%d example %d label %d: packed %.17g alone %.17g", c->name, n, soft,
                                  i, k, g, alone[k]);
                    if (d > worst) worst = d;
                    /* the batch an example came in changes nothing, nor does splitting it */
                    double dv = fmax(fabs(g - one[k]), fabs(g - split[i * N_LABELS + k]));
                    if (dv > worst_batch) worst_batch = dv;
                    ck_assert_msg(dv <= 1e-5 * (1.0 + fabs(alone[k])),
                                  "%s n=%d example %d label %d: batch %.17g alone-packed %.17g split %.17g", c->name,
                                  n, i, k, g, one[k], split[i * N_LABELS + k]);
                }
            }
            free_prompts(&p, n);
        }
    lw_packed_scorer_free(&big);
    lw_packed_scorer_free(&small);
    lw_model_free(m);
}

START_TEST(packed_scores_match_each_prompt_alone)
{
    lw_model_config g = tl_tiny_gemma3_config(4);
    batches_match(&g, 3);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    batches_match(&l, 4);
    lw_model_config q = tl_tiny_qwen3_config();
    batches_match(&q, 5);
    fprintf(stderr, "label_scoring_packed: largest |packed - alone| = %.3g, |batch of n - batch of 1 or split| = %.3g\n",
            worst, worst_batch);
}
END_TEST

/* Many labels with verbalizers of 1..4 tokens, some beginning alike
 * (Banking77's shape: 77 labels, each segment repeating the prompt, do not
 * fit a pass; " card ..." begins 16 of them): the
 * examples whose segments would not fit, or would take more than twice the
 * rows of their prompt once and the tails, are scored on their own, the
 * prompt once and the labels' tails after it over as many passes as they
 * take; a batch mixes them with packed ones. Every score as the prompt
 * alone through lw_score_verbalizers, to float rounding, at fp32 and with
 * the model in Q8_0 (whose head lw_score_verbalizers once read as fp32). */
enum { MANY = 20 };

static double worst_many;

static void many_labels_match(const lw_model_config *c, uint64_t seed, lw_weights_dtype dtype)
{
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(c, seed, &m), LW_OK);
    /* --dtype q8: the blocks and the output head in Q8_0 (lw_score_verbalizers' narrow head path) */
    if (dtype != LW_WEIGHTS_F32) ck_assert_msg(lw_model_narrow(m, dtype, false) == LW_OK, "%s", lw_last_error());
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    int vb[MANY][4], vl[MANY];
    const int *verb[MANY];
    for (int k = 0; k < MANY; k++) {
        vl[k] = 1 + k % 4;   /* tails of 0, 1, 2, 3 rows: 30 in all */
        for (int j = 0; j < vl[k]; j++) vb[k][j] = (int)(lw_rng_next(&rng) % (uint64_t)m->cfg.vocab);
        /* labels that begin alike share rows of the output head: every odd label begins as the one two
         * before it, by one token, and by two where both have them */
        for (int j = 0; k >= 3 && k % 2 && j < 2 && j < vl[k - 2]; j++) vb[k][j] = vb[k - 2][j];
        verb[k] = vb[k];
    }
    /* 64 rows: after the head of 2, prompts 0 and 3 (1 and 2 rows) pack (15 * 1 + 30 = 45 and 60 rows), 1, 2
     * and 4 (5, 9, 11 rows: 105, 165, 195) go alone; 12 rows: all alone, the tails over three passes or more */
    int sizes[] = {64, 12};
    for (int z = 0; z < 2; z++) {
        lw_packed_scorer ps;
        ck_assert_msg(lw_packed_scorer_init(&ps, m, sizes[z]) == LW_OK, "%s", lw_last_error());
        for (int soft = 0; soft < 2; soft++)
            for (int n = 1; n <= MAX_N; n++) {
                prompts p;
                make_prompts(&p, m, n, soft, &rng);
                double got[MAX_N * MANY], alone[MANY];
                ck_assert_msg(lw_packed_scorer_score(&ps, n, p.pr, MANY, verb, vl, got) == LW_OK, "%s",
                              lw_last_error());
                for (int i = 0; i < n; i++) {
                    score_alone_labels(m, &p.pr[i], MANY, verb, vl, alone);
                    for (int k = 0; k < MANY; k++) {
                        double g = got[i * MANY + k], d = fabs(g - alone[k]);
                        ck_assert_msg(isfinite(g) && g < 0.0, "score %g", g);
                        ck_assert_msg(d <= 1e-5 * (1.0 + fabs(alone[k])),
                                      "%s rows=%d n=%d soft=%d example %d label %d: packed %.17g alone %.17g",
                                      c->name, sizes[z], n, soft, i, k, g, alone[k]);
                        if (d > worst_many) worst_many = d;
                    }
                }
                free_prompts(&p, n);
            }
        lw_packed_scorer_free(&ps);
    }
    lw_model_free(m);
}

START_TEST(many_labels_score_the_prompt_once)
{
    lw_model_config g = tl_tiny_gemma3_config(4);
    many_labels_match(&g, 13, LW_WEIGHTS_F32);
    many_labels_match(&g, 16, LW_WEIGHTS_Q8);
    lw_model_config l = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    many_labels_match(&l, 14, LW_WEIGHTS_F32);
    lw_model_config q = tl_tiny_qwen3_config();
    many_labels_match(&q, 15, LW_WEIGHTS_F32);
    many_labels_match(&q, 17, LW_WEIGHTS_Q8);
    fprintf(stderr, "label_scoring_packed: %d labels, largest |packed - alone| = %.3g\n", MANY, worst_many);
}
END_TEST

START_TEST(refusals)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, 7, &m), LW_OK);
    lw_packed_scorer s;
    ck_assert_int_eq(lw_packed_scorer_init(&s, m, 1), LW_ERR_INVALID);
    ck_assert_int_eq(lw_packed_scorer_init(&s, m, m->cfg.context + 1), LW_ERR_INVALID);
    ck_assert_int_eq(lw_packed_scorer_init(&s, m, 10), LW_OK);
    lw_rng rng;
    lw_rng_seed(&rng, 8);
    prompts p;
    make_prompts(&p, m, MAX_N, false, &rng);
    double sc[MAX_N * N_LABELS], alone[N_LABELS];
    /* a pass of 10 rows: after the shared head of 2, the 11-row prompt's segments need 9 + 1 + 9 + 2 = 21 rows,
     * so it is scored on its own (9 rows, then the tails), as alone */
    ck_assert_msg(lw_packed_scorer_score(&s, 3, p.pr, N_LABELS, VERB, VERB_LEN, sc) == LW_OK, "%s", lw_last_error());
    score_alone(m, &p.pr[2], alone);
    for (int k = 0; k < N_LABELS; k++) ck_assert(fabs(sc[2 * N_LABELS + k] - alone[k]) <= 1e-5 * (1 + fabs(alone[k])));
    /* the 13-row prompt has 11 rows after the head: more than a pass, even alone: refused, naming it */
    ck_assert_int_eq(lw_packed_scorer_score(&s, MAX_N, p.pr, N_LABELS, VERB, VERB_LEN, sc), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "example 4's prompt has 11 rows after a shared head of 2") &&
                  strstr(lw_last_error(), "a pass holds 10"), "%s", lw_last_error());
    /* a verbalizer of 12 tokens does not fit a pass after any prompt: refused, naming the label */
    int longv[12];
    for (int j = 0; j < 12; j++) longv[j] = j % m->cfg.vocab;
    const int *verb_long[N_LABELS] = {V0, longv, V2};
    const int len_long[N_LABELS] = {2, 12, 3};
    ck_assert_int_eq(lw_packed_scorer_score(&s, 2, p.pr, N_LABELS, verb_long, len_long, sc), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "label 1's verbalizer of 12 tokens"), "%s", lw_last_error());
    p.ids[1][2] = m->cfg.vocab;
    ck_assert_int_eq(lw_packed_scorer_score(&s, 2, p.pr, N_LABELS, VERB, VERB_LEN, sc), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "example 1, row 2"), "%s", lw_last_error());
    p.ids[1][2] = 0;
    p.pr[0].P = 0;
    ck_assert_int_eq(lw_packed_scorer_score(&s, 1, p.pr, N_LABELS, VERB, VERB_LEN, sc), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "empty prompt"), "%s", lw_last_error());
    int bad[] = {10, -1};
    const int *verb[N_LABELS] = {bad, V1, V2};
    p.pr[0].P = 3;
    ck_assert_int_eq(lw_packed_scorer_score(&s, 1, p.pr, N_LABELS, verb, VERB_LEN, sc), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "label 0's verbalizer token 1"), "%s", lw_last_error());
    free_prompts(&p, MAX_N);
    lw_packed_scorer_free(&s);
    lw_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("label_scoring_packed");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, packed_scores_match_each_prompt_alone);
    tcase_add_test(tc, many_labels_score_the_prompt_once);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
