/* The training objectives of objectives.h on the tiny synthetic pair:
 * every new gradient against central differences (the terms alone, then
 * through the bridge with the receiver's loss), the first-token layout's
 * loss against the scores it must equal, and the packed step with the
 * terms on against one example at a time. */
#include "testlib.h"
#include "bridge_grad_check.h"
#include "tiny_models.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_loss.h"
#include "lw_cli.h"
#include "objectives.h"
#include "spread_term.h"
#include "train.h"

typedef tl_synthetic_pair pair;
enum { N_EX = 32, M_SOFT = 3 };

static void fill_random(float *x, size_t n, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)lw_rng_normal(&r);
}

/* f(z) in double precision around each entry against the analytic dz. */
typedef double (*term_fn)(const float *z, int M, int H, const float *target, float *dz, float scale);

static double diversity_term(const float *z, int M, int H, const float *target, float *dz, float scale)
{
    (void)target;
    return lw_soft_diversity(z, M, H, dz, scale);
}

static void check_term(term_fn f, const char *name)
{
    enum { M = 4, H = 6 };
    float z[M * H], dz[M * H] = {0}, e[H];
    fill_random(z, M * H, 3);
    fill_random(e, H, 4);
    double v = f(z, M, H, e, dz, 0.7f);
    ck_assert(isfinite(v));
    double biggest = 0;
    for (int i = 0; i < M * H; i++) {
        float keep = z[i], eps = 1e-2f;
        z[i] = keep + eps;
        double p = f(z, M, H, e, NULL, 0.0f);
        z[i] = keep - eps;
        double m = f(z, M, H, e, NULL, 0.0f);
        z[i] = keep;
        double fd = 0.7 * (p - m) / (2.0 * eps);
        ck_assert_msg(fabs(fd - dz[i]) <= 2e-3 + 2e-2 * fabs(fd), "%s: dz[%d] analytic %g, finite difference %g",
                      name, i, (double)dz[i], fd);
        biggest = fabs(fd) > biggest ? fabs(fd) : biggest;
    }
    ck_assert_msg(biggest > 1e-2, "%s: every gradient entry is ~0: nothing was checked", name);
}

START_TEST(soft_token_terms_match_finite_differences)
{
    check_term(lw_soft_alignment, "alignment");
    check_term(diversity_term, "diversity");
}
END_TEST

START_TEST(alignment_is_zero_on_the_target_and_scale_free)
{
    enum { M = 3, H = 5 };
    float e[H], z[M * H];
    fill_random(e, H, 7);
    for (int m = 0; m < M; m++)
        for (int k = 0; k < H; k++) z[m * H + k] = 2.5f * e[k];
    ck_assert_double_le(fabs(lw_soft_alignment(z, M, H, e, NULL, 0)), 1e-6);
    for (int k = 0; k < H; k++) z[k] = -3.0f * e[k], z[H + k] = -e[k], z[2 * H + k] = -0.5f * e[k];
    ck_assert_double_le(fabs(lw_soft_alignment(z, M, H, e, NULL, 0) - 2.0), 1e-6);
}
END_TEST

/* The loss through bridge and receiver with the alignment on (and the
 * diversity): every trainable tensor's largest gradient entry against
 * central differences of lw_trainer_loss. */
static void check_example_gradient(pair *p, int first, int n_examples)
{
    for (int i = first; i < first + n_examples; i++)
        tl_check_bridge_gradient(&p->trainer, &p->bridge, p->states.mem + p->states.offset[i], p->states.tokens[i],
                                 p->data.examples[i].label, i);
}

static void check_bridge_gradient(pair *p, int n_examples) { check_example_gradient(p, 0, n_examples); }

/* A KD target for label's verbalizer: k ids a position (the gold token
 * among them), teacher probabilities drawn and normalised. */
static void make_kd(const pair *p, int label, int k, float weight, float temp, lw_kd_target *kd, int *ids, float *pr)
{
    int L = p->layout.verb_len[label], V = p->receiver->cfg.vocab;
    lw_rng r;
    lw_rng_seed(&r, 77 + (uint64_t)label);
    for (int i = 0; i < L; i++) {
        int gold = p->layout.verb[label][i];
        double sum = 0;
        for (int j = 0; j < k; j++) {
            ids[i * k + j] = (gold + j * 3) % V;   /* distinct while 3k <= V */
            sum += pr[i * k + j] = 0.05f + (float)fabs(lw_rng_normal(&r));
        }
        for (int j = 0; j < k; j++) pr[i * k + j] = (float)(pr[i * k + j] / sum);
    }
    *kd = (lw_kd_target){.L = L, .k = k, .ids = ids, .p = pr, .weight = weight, .temp = temp};
}

/* The KD term alone: its logits' gradient against central differences, and
 * zero where the student matches the teacher. */
START_TEST(kd_term_matches_finite_differences)
{
    enum { L = 2, V = 9, K = 3 };
    int ids[L * K] = {0, 4, 7, 2, 3, 8};
    float pr[L * K] = {0.5f, 0.3f, 0.2f, 0.1f, 0.1f, 0.8f}, z[L * V], dz[L * V];
    fill_random(z, L * V, 5);
    lw_kd_target kd = {.L = L, .k = K, .ids = ids, .p = pr, .weight = 1.7f, .temp = 2.0f};
    memset(dz, 0, sizeof dz);
    lw_kd_backward(&kd, z, V, 0.6f, dz);
    for (int i = 0; i < L * V; i++) {
        float keep = z[i], eps = 1e-2f;
        z[i] = keep + eps;
        double lp = lw_kd_loss(&kd, z, V);
        z[i] = keep - eps;
        double lm = lw_kd_loss(&kd, z, V);
        z[i] = keep;
        double fd = 0.6 * (lp - lm) / (2.0 * eps);
        ck_assert_msg(fabs(fd - dz[i]) <= 1e-4 + 1e-3 * fabs(fd), "dz[%d] analytic %g, fd %g", i, (double)dz[i], fd);
    }
    /* the student at the teacher (z_S / T = log p): KL 0 */
    for (int i = 0; i < L; i++)
        for (int j = 0; j < K; j++) z[i * V + ids[i * K + j]] = kd.temp * logf(pr[i * K + j]) + 3.0f;
    ck_assert_double_le(fabs(lw_kd_loss(&kd, z, V)), 1e-6);
}
END_TEST

/* Through the receiver and the bridge: the loss with the KD term on moves,
 * and every trainable tensor's largest gradient entry matches central
 * differences (the term's gradient reaches the soft tokens through the
 * receiver's backward); the packed path steps aside for it. */
START_TEST(kd_gradient_through_the_receiver_matches_finite_differences)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.2f, 1);
    int ids[64 * 3];
    float pr[64 * 3];
    for (int i = 0; i < 3; i++) {
        int label = p.data.examples[i].label, T = p.states.tokens[i];
        const float *x = p.states.mem + p.states.offset[i];
        ck_assert_int_le(p.layout.verb_len[label], 64);
        lw_kd_target kd;
        make_kd(&p, label, 3, 2.0f, 1.5f, &kd, ids, pr);
        float l0, l1;
        p.trainer.rx.kd = NULL;
        ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, label, &l0), LW_OK);
        p.trainer.rx.kd = &kd;
        ck_assert(!lw_receiver_pass_can_pack(&p.trainer.rx, NULL));
        ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, label, &l1), LW_OK);
        ck_assert_msg(l1 - l0 > 1e-4f, "KD adds nothing: %g vs %g", (double)l1, (double)l0);
        check_example_gradient(&p, i, 1);
        /* targets of another length are refused */
        lw_kd_target bad = kd;
        bad.L = kd.L + 1;
        p.trainer.rx.kd = &bad;
        ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, label, &l1), LW_ERR_INVALID);
        p.trainer.rx.kd = NULL;
    }
    tl_synthetic_pair_close(&p);
}
END_TEST

static float *with_alignment(pair *p, float w)
{
    float *targets;
    ck_assert_int_eq(lw_answer_embeddings(p->receiver, &p->layout, &targets), LW_OK);
    p->trainer.align_weight = w;
    p->trainer.align_targets = targets;
    return targets;
}

START_TEST(alignment_gradient_through_the_bridge_matches_finite_differences)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.2f, 1);
    float *targets = with_alignment(&p, 2.0f);
    /* the term is on: the loss moves with the weight */
    float l1, l0;
    int T = p.states.tokens[0];
    ck_assert_int_eq(lw_trainer_loss(&p.trainer, p.states.mem, T, p.data.examples[0].label, &l1), LW_OK);
    p.trainer.align_weight = 0.0f;
    ck_assert_int_eq(lw_trainer_loss(&p.trainer, p.states.mem, T, p.data.examples[0].label, &l0), LW_OK);
    ck_assert_msg(fabsf(l1 - l0) > 1e-3f, "alignment adds nothing: %g vs %g", (double)l1, (double)l0);
    p.trainer.align_weight = 2.0f;
    check_bridge_gradient(&p, 4);
    free(targets);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* The answer embedding of label 1 (two tokens) is the mean of its tokens'
 * scaled embedding rows. */
START_TEST(answer_embeddings_average_the_verbalizer)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, 4, 0.0f, 1);
    float *e;
    ck_assert_int_eq(lw_answer_embeddings(p.receiver, &p.layout, &e), LW_OK);
    const lw_model *m = p.receiver;
    int H = m->cfg.hidden;
    for (int c = 0; c < H; c++) {
        double want = 0.5 * m->embed_scale * (m->token_embd[(size_t)11 * H + c] + m->token_embd[(size_t)12 * H + c]);
        ck_assert_double_le(fabs(e[H + c] - want), 1e-5 * (1 + fabs(want)));
        ck_assert_double_le(fabs(e[c] - m->embed_scale * m->token_embd[(size_t)10 * H + c]), 1e-5 * (1 + fabs(e[c])));
    }
    free(e);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* First-token CE: on the cut layout, label 1's loss is minus the log-prob
 * of its first token, which the full layout's scores give as the score of
 * the cut layout; the full loss is the mean over both tokens. */
START_TEST(first_token_loss_is_the_first_tokens_cross_entropy)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.0f, 1);
    lw_receiver_layout first;
    ck_assert_int_eq(lw_receiver_layout_first_tokens(&p.layout, &first), LW_OK);
    ck_assert_int_eq(first.max_verb, 1);
    ck_assert_int_eq(first.verb[1][0], p.layout.verb[1][0]);
    lw_verbalizer_stats vs;
    lw_verbalizer_stats_of(&p.layout, &vs);
    ck_assert_int_eq(vs.min_len, 1);
    ck_assert_int_eq(vs.max_len, 2);
    ck_assert_int_eq(vs.distinct_first, 2);
    ck_assert_double_eq_tol(vs.mean_len, 1.5, 1e-12);
    lw_trainer ft;
    ck_assert_int_eq(lw_trainer_create(&ft, p.receiver, &first, &p.bridge, 0.0f), LW_OK);
    int T = p.states.tokens[1];
    const float *x = p.states.mem + p.states.offset[1];
    double full[2], cut[2];
    float lfull, lcut;
    ck_assert_int_eq(lw_trainer_score(&p.trainer, x, T, full), LW_OK);
    ck_assert_int_eq(lw_trainer_score(&ft, x, T, cut), LW_OK);
    ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, 1, &lfull), LW_OK);
    ck_assert_int_eq(lw_trainer_loss(&ft, x, T, 1, &lcut), LW_OK);
    ck_assert_double_le(fabs(lcut + cut[1]), 1e-4 * (1 + fabs(cut[1])));
    ck_assert_double_le(fabs(lfull + full[1] / 2.0), 1e-4 * (1 + fabs(full[1])));
    ck_assert_double_le(fabs(cut[0] - full[0]), 1e-4 * (1 + fabs(full[0])));   /* label 0 has one token */
    ck_assert_msg(fabs(cut[1] - full[1]) > 1e-3, "the second token's log-prob is ~0: the test shows nothing");
    /* and its gradient through the bridge */
    lw_trainer keep = p.trainer;
    p.trainer = ft;
    check_bridge_gradient(&p, 4);
    p.trainer = keep;
    lw_trainer_free(&ft);
    lw_receiver_layout_free(&first);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* The packed step adds the soft-token terms as the one-at-a-time path does. */
START_TEST(packed_steps_carry_the_alignment)
{
    pair a, b;
    tl_synthetic_pair_open(&a, M_SOFT, N_EX, 0.1f, 4);
    tl_synthetic_pair_open(&b, M_SOFT, N_EX, 0.1f, 4);
    float *ta = with_alignment(&a, 1.0f), *tb = with_alignment(&b, 1.0f);
    b.trainer.rx.no_head_cache = true;
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = 3, .batch = 4, .grad_accum = 1, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &ra), LW_OK);
    ck_assert_ptr_nonnull(a.trainer.rx.pack);
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o, &rb), LW_OK);
    ck_assert_msg(fabs(ra.last_loss - rb.last_loss) <= 1e-4 * fabs(rb.last_loss), "packed %.8g, alone %.8g",
                  ra.last_loss, rb.last_loss);
    tl_assert_close_to_scale(a.bridge.params, b.bridge.params, a.bridge.n_params, 1e-4, "bridge parameters");
    free(ta);
    free(tb);
    tl_synthetic_pair_close(&a);
    tl_synthetic_pair_close(&b);
}
END_TEST

/* --log-grad-groups: the tensors' norms make up the logged global norm
 * (no adapters: the bridge's tensors are the whole parameter vector). */
START_TEST(grad_groups_add_up_to_the_logged_norm)
{
    const char *dir = tl_tmpdir("objectives_groups");
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.1f, 2);
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = 2, .batch = 4, .grad_accum = 1, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    o.out_dir = dir;
    o.log_grad_groups = true;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    char path[4200];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[8192];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        ck_assert_msg(j != NULL, "log line is not JSON: %s", err.text);
        json_t *g = json_object_get(j, "grad_groups");
        ck_assert(json_is_object(g));
        double sq = 0;
        const char *key;
        json_t *v;
        int n = 0;
        json_object_foreach(g, key, v) sq += json_number_value(v) * json_number_value(v), n++;
        int trainable = 0;
        for (int k = 0; k < p.bridge.n_tensors; k++) trainable += p.bridge.tensors[k].trainable;
        ck_assert_int_eq(n, trainable);
        double norm = json_number_value(json_object_get(j, "grad_norm"));
        ck_assert_msg(norm > 1e-3 && fabs(sqrt(sq) - norm) <= 1e-4 * norm, "groups %g, global %g", sqrt(sq), norm);
        json_decref(j);
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 2);
    tl_synthetic_pair_close(&p);
}
END_TEST


/* Example 1's cross-entropy plus w * cos(its soft tokens, example 0's m0). */
typedef struct {
    lw_trainer *t;
    const float *x;
    int T, label;
    float w;
    const double *m0;
    int H;
} spread_loss;

static double spread_example_loss(void *ctx)
{
    spread_loss *e = ctx;
    float l;
    ck_assert_int_eq(lw_trainer_loss(e->t, e->x, e->T, e->label, &l), LW_OK);   /* leaves t->soft: this example's */
    return l + e->w * lw_spread_cos(e->t->soft, e->m0, M_SOFT, e->H, NULL, 0.0f);
}

/* The spread term (spread_term.h, --spread) through the bridge: example 1
 * of a step, after example 0, against central differences of its
 * cross-entropy plus weight * cos(its soft tokens, example 0's) with
 * example 0's held fixed; the same example as a step's first gets no term. */
START_TEST(spread_gradient_through_the_bridge_matches_finite_differences)
{
    pair p;
    tl_synthetic_pair_open(&p, M_SOFT, N_EX, 0.0f, 1);
    const float w = 5.0f;
    ck_assert_int_eq(lw_trainer_set_spread(&p.trainer, w), LW_OK);
    lw_trainer *t = &p.trainer;
    lw_bridge *b = &p.bridge;
    int H = p.receiver->cfg.hidden, MH = M_SOFT * H;
    const float *x0 = p.states.mem + p.states.offset[0], *x1 = p.states.mem + p.states.offset[1];
    int T0 = p.states.tokens[0], T1 = p.states.tokens[1], y0 = p.data.examples[0].label, y1 = p.data.examples[1].label;
    float l;
    lw_spread_term_reset(&t->spread);
    lw_bridge_zero_grad(b);
    ck_assert_int_eq(lw_trainer_example(t, x0, T0, y0, 1.0f, &l, NULL), LW_OK);
    double *m0 = malloc((size_t)MH * sizeof *m0);
    float *g = malloc(b->n_params * sizeof *g), *g_first = malloc(b->n_params * sizeof *g_first);
    ck_assert(m0 && g && g_first);
    ck_assert_int_eq(t->spread.n, 1);
    memcpy(m0, t->spread.sum, (size_t)MH * sizeof *m0);   /* example 0's message */
    lw_bridge_zero_grad(b);
    ck_assert_int_eq(lw_trainer_example(t, x1, T1, y1, 1.0f, &l, NULL), LW_OK);
    memcpy(g, b->grads, b->n_params * sizeof *g);
    lw_spread_term_reset(&t->spread);   /* example 1 opening a step: no term */
    lw_bridge_zero_grad(b);
    ck_assert_int_eq(lw_trainer_example(t, x1, T1, y1, 1.0f, &l, NULL), LW_OK);
    memcpy(g_first, b->grads, b->n_params * sizeof *g_first);
    double moved = 0;
    for (size_t j = 0; j < b->n_params; j++) moved = fmax(moved, fabs((double)g[j] - g_first[j]));
    ck_assert_msg(moved > 1e-2, "the term moved no gradient entry by more than %g", moved);
    spread_loss e = {t, x1, T1, y1, w, m0, H};
    tl_check_bridge_gradient_of(b, g, spread_example_loss, &e, "example 1 with the spread term");
    free(m0);
    free(g);
    free(g_first);
    tl_synthetic_pair_close(&p);
}
END_TEST

/* The loop resets the term at each step's start: with one example a step
 * every example opens its step, so --spread changes nothing (bit for bit);
 * with four a step it does. */
static void run_with_spread(float w, int batch, pair *p)
{
    tl_synthetic_pair_open(p, M_SOFT, N_EX, 0.0f, 4);
    ck_assert_int_eq(lw_trainer_set_spread(&p->trainer, w), LW_OK);
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = 3, .batch = batch, .grad_accum = 1, .warmup_steps = 1,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p->trainer, &p->states, &p->data, &o, &r), LW_OK);
}

START_TEST(spread_term_acts_within_a_step_only)
{
    pair a, b;
    run_with_spread(0.0f, 1, &a);
    run_with_spread(3.0f, 1, &b);
    ck_assert_mem_eq(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float));
    tl_synthetic_pair_close(&a);
    tl_synthetic_pair_close(&b);
    run_with_spread(0.0f, 4, &a);
    run_with_spread(3.0f, 4, &b);
    ck_assert_msg(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) != 0,
                  "four examples a step: the term changed nothing");
    tl_synthetic_pair_close(&a);
    tl_synthetic_pair_close(&b);
}
END_TEST

/* lw train --spread on the tiny pair: recorded in run.json, and refused out
 * of range, unparsable, or on a method without the bridge's soft tokens. */
START_TEST(spread_option_through_the_command)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/tiny-qwen2_to_tiny-qwen3.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    const char *dir = tl_tmpdir("spread_cmd");
    char train[600], cache[700], out[700], runp[800];
    snprintf(train, sizeof train, "%s/train.jsonl", tl_shared("data/sst2"));
    tl_require_file(train);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(runp, sizeof runp, "%s/run.json", out);
    char *argv[] = {"--task", "sst2", "--train", train, "--limit-train", "8", "--steps", "2", "--batch", "4",
                    "--lr", "1e-3", "--warmup", "1", "--quiet", "--force", "--out", out, "--cache-dir", cache,
                    "--threads", "1", "--spread", "0.5"};
    char *err = NULL;
    int rc = tl_run_command(lw_cmd_train, &pair, &err, (int)(sizeof argv / sizeof argv[0]), argv);
    ck_assert_msg(rc == 0, "lw train --spread 0.5: rc %d\n%s", rc, err);
    free(err);
    char *rj = tl_read_file(runp, NULL);
    ck_assert_msg(rj && strstr(rj, "\"spread_weight\": 0.5"), "%s", rj ? rj : "no run.json");
    free(rj);
    const char *bad[][2] = {{"-1", "--spread takes a weight in [0, 100], not '-1'"},
                            {"nan", "--spread takes a weight in [0, 100], not 'nan'"},
                            {"1x", "--spread takes a weight in [0, 100], not '1x'"}};
    for (int k = 0; k < 3; k++) {
        char *a[] = {"--task", "sst2", "--train", train, "--out", out, "--spread", (char *)bad[k][0]};
        ck_assert_int_eq(tl_run_command(lw_cmd_train, &pair, &err, 8, a), 2);
        ck_assert_msg(err && strstr(err, bad[k][1]), "%s", err);
        free(err);
    }
    char *lora[] = {"--task", "sst2", "--train", train, "--out", out, "--method", "lora", "--spread", "1"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, &pair, &err, 10, lora), 2);
    ck_assert_msg(err && strstr(err, "--spread is a term on the bridge's soft tokens"), "%s", err);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("objectives");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, soft_token_terms_match_finite_differences);
    tcase_add_test(tc, alignment_is_zero_on_the_target_and_scale_free);
    tcase_add_test(tc, alignment_gradient_through_the_bridge_matches_finite_differences);
    tcase_add_test(tc, answer_embeddings_average_the_verbalizer);
    tcase_add_test(tc, first_token_loss_is_the_first_tokens_cross_entropy);
    tcase_add_test(tc, packed_steps_carry_the_alignment);
    tcase_add_test(tc, grad_groups_add_up_to_the_logged_norm);
    tcase_add_test(tc, kd_term_matches_finite_differences);
    tcase_add_test(tc, kd_gradient_through_the_receiver_matches_finite_differences);
    tcase_add_test(tc, spread_gradient_through_the_bridge_matches_finite_differences);
    tcase_add_test(tc, spread_term_acts_within_a_step_only);
    tcase_add_test(tc, spread_option_through_the_command);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
