/* The learned mix of sender layers (layer_mix.h) and the stacked cache it
 * reads (sender_cache_layers.h): the logits' gradient against central
 * differences, alone and behind a tiny bridge (through the bridge's dx);
 * the stacked rows and the per-layer statistics; bad layer lists refused;
 * lw_train_run trains the logits, and a trainer rebuilt from the saved
 * checkpoint (bridge + layer_mix.safetensors) scores bit for bit as the
 * one that trained. */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "checkpoint.h"
#include "layer_mix_file.h"
#include <stdio.h>
#include "layer_mix.h"
#include "sender_cache_layers.h"
#include "train.h"

enum { K = 3, S = TL_SENDER_HIDDEN, T = 5 };

static void fill(float *x, size_t n, uint64_t seed, float scale, float offset)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)lw_rng_normal(&r) * scale + offset;
}

/* A mix with distinct per-layer statistics and non-uniform weights. */
static void make_mix(lw_layer_mix *m)
{
    const int layers[K] = {2, 5, 7};
    ck_assert_int_eq(lw_layer_mix_create(m, layers, K, S), LW_OK);
    for (int k = 0; k < K; k++) {
        float mean[S], std[S];
        fill(mean, S, 10 + k, 1.0f, 0.0f);
        fill(std, S, 20 + k, 0.2f, 1.0f + k);
        lw_layer_mix_set_norm(m, k, mean, std);
        m->logits[k] = 0.3f * (float)k - 0.2f;
    }
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

START_TEST(mix_gradient_matches_finite_differences)
{
    lw_layer_mix m;
    make_mix(&m);
    float x[T * K * S], out[T * S], r[T * S];
    fill(x, T * K * S, 1, 2.0f, 0.5f);
    fill(r, T * S, 2, 1.0f, 0.0f);
    lw_layer_mix_backward(&m, x, T, r);   /* loss = <out, r> */
    for (int k = 0; k < K; k++) {
        float keep = m.logits[k], eps = 1e-2f;
        m.logits[k] = keep + eps;
        lw_layer_mix_forward(&m, x, T, out);
        double p = dot(out, r, T * S);
        m.logits[k] = keep - eps;
        lw_layer_mix_forward(&m, x, T, out);
        double q = dot(out, r, T * S);
        m.logits[k] = keep;
        double fd = (p - q) / (2.0 * eps);
        ck_assert_msg(fabs(fd - m.grads[k]) <= 1e-3 + 1e-2 * fabs(fd), "logit %d: analytic %g, fd %g", k,
                      (double)m.grads[k], fd);
        ck_assert_msg(fabs(fd) > 1e-2, "logit %d: gradient ~0, nothing checked", k);
    }
    /* a dominant logit gives that layer, standardised */
    m.logits[0] = 0, m.logits[1] = 40, m.logits[2] = 0;
    lw_layer_mix_forward(&m, x, T, out);
    for (int t = 0; t < T; t++)
        for (int s = 0; s < S; s++) {
            double want = (x[(t * K + 1) * S + s] - m.mean[S + s]) / m.std[S + s];
            ck_assert_double_le(fabs(out[t * S + s] - want), 1e-5 * (1 + fabs(want)));
        }
    lw_layer_mix_free(&m);
}
END_TEST

/* mix -> bridge -> soft tokens, loss <soft, r>: the bridge's dx feeds the
 * mix's backward; the logits' gradient against finite differences. */
START_TEST(mix_behind_the_bridge_matches_finite_differences)
{
    lw_layer_mix m;
    make_mix(&m);
    lw_bridge_config bc = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = 2, .source_layer = 1, .width = 16,
                           .depth = 1, .heads = 2, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
    lw_bridge b;
    ck_assert_int_eq(lw_bridge_create(&b, &bc, S, 12, 1.0f), LW_OK);
    lw_bridge_init(&b, 3);
    lw_bridge_acts *acts;
    ck_assert_int_eq(lw_bridge_acts_create(&b, T, &acts), LW_OK);
    int MR = 2 * 12;
    float x[T * K * S], mixed[T * S], dx[T * S], soft[2 * 12], r[2 * 12];
    fill(x, T * K * S, 4, 2.0f, 0.5f);
    fill(r, MR, 5, 1.0f, 0.0f);
    lw_layer_mix_forward(&m, x, T, mixed);
    ck_assert_int_eq(lw_bridge_forward(&b, acts, mixed, T, soft), LW_OK);
    memset(dx, 0, sizeof dx);
    lw_bridge_zero_grad(&b);
    lw_bridge_backward(&b, acts, r, dx);
    lw_layer_mix_backward(&m, x, T, dx);
    for (int k = 0; k < K; k++) {
        float keep = m.logits[k], eps = 1e-2f;
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            m.logits[k] = keep + (sgn ? -eps : eps);
            lw_layer_mix_forward(&m, x, T, mixed);
            ck_assert_int_eq(lw_bridge_forward(&b, acts, mixed, T, soft), LW_OK);
            f[sgn] = dot(soft, r, MR);
        }
        m.logits[k] = keep;
        double fd = (f[0] - f[1]) / (2.0 * eps);
        ck_assert_msg(fabs(fd - m.grads[k]) <= 2e-3 + 3e-2 * fabs(fd), "logit %d: analytic %g, fd %g", k,
                      (double)m.grads[k], fd);
    }
    lw_bridge_acts_free(acts);
    lw_bridge_free(&b);
    lw_layer_mix_free(&m);
}
END_TEST

START_TEST(stacked_cache_interleaves_the_layers_and_fits_their_statistics)
{
    const int tokens[3] = {2, 4, 3};
    lw_sender_cache c[K], st;
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(lw_sender_cache_init_memory(&c[k], 3, S, tokens), LW_OK);
        fill(c[k].mem, (size_t)9 * S, 30 + k, 1.0f + k, 10.0f * k);
    }
    ck_assert_int_eq(lw_sender_cache_stack(c, K, &st), LW_OK);
    ck_assert_int_eq(st.hidden, K * S);
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < tokens[i]; t++)
            for (int k = 0; k < K; k++)
                ck_assert(memcmp(st.mem + st.offset[i] + ((size_t)t * K + k) * S, c[k].mem + c[k].offset[i] + (size_t)t * S,
                                 S * sizeof(float)) == 0);
    lw_layer_mix m;
    const int layers[K] = {1, 2, 3};
    ck_assert_int_eq(lw_layer_mix_create(&m, layers, K, S), LW_OK);
    ck_assert_int_eq(lw_layer_mix_fit_norm(&m, &st, 3), LW_OK);
    for (int k = 0; k < K; k++)
        for (int s = 0; s < S; s++) {
            double sum = 0, sq = 0;
            for (int row = 0; row < 9; row++) {
                double v = c[k].mem[(size_t)row * S + s];
                sum += v, sq += v * v;
            }
            double mu = sum / 9, sd = sqrt(sq / 9 - mu * mu);
            ck_assert_double_le(fabs(m.mean[k * S + s] - mu), 1e-4 * (1 + fabs(mu)));
            ck_assert_double_le(fabs(m.std[k * S + s] - sd), 1e-4 * (1 + sd));
        }
    /* caches of different files (other row counts) are refused */
    c[2].tokens[1] = 3;
    lw_sender_cache bad;
    ck_assert_int_eq(lw_sender_cache_stack(c, K, &bad), LW_ERR_INVALID);
    c[2].tokens[1] = 4;
    lw_layer_mix_free(&m);
    lw_sender_cache_close(&st);
    for (int k = 0; k < K; k++) lw_sender_cache_close(&c[k]);
}
END_TEST

/* The trainer with a mix: the synthetic pair's states as K layers (each a
 * scaled, shifted, noisier copy), the receiver's loss, and the logits'
 * gradient (through receiver, bridge and the bridge's dx) against central
 * differences of lw_trainer_loss. */
START_TEST(mix_gradient_through_the_receiver_matches_finite_differences)
{
    tl_synthetic_pair p;
    tl_synthetic_pair_open(&p, 2, 8, 0.0f, 1);
    lw_sender_cache c[K], st;
    for (int k = 0; k < K; k++) {
        ck_assert_int_eq(lw_sender_cache_init_memory(&c[k], p.states.n, S, p.states.tokens), LW_OK);
        size_t rows = 0;
        for (int i = 0; i < p.states.n; i++) rows += (size_t)p.states.tokens[i];
        float *noise = malloc(rows * S * sizeof(float));
        fill(noise, rows * S, 40 + k, 0.5f * k, 0.0f);
        for (size_t j = 0; j < rows * S; j++) c[k].mem[j] = p.states.mem[j] * (1.0f + k) + 3.0f * k + noise[j];
        free(noise);
    }
    ck_assert_int_eq(lw_sender_cache_stack(c, K, &st), LW_OK);
    lw_layer_mix m;
    const int layers[K] = {1, 2, 3};
    ck_assert_int_eq(lw_layer_mix_create(&m, layers, K, S), LW_OK);
    ck_assert_int_eq(lw_layer_mix_fit_norm(&m, &st, st.n), LW_OK);
    m.logits[0] = 0.4f, m.logits[2] = -0.3f;
    ck_assert_int_eq(lw_trainer_attach_layer_mix(&p.trainer, &m), LW_OK);
    float *x = NULL;
    size_t cap = 0;
    int checked = 0;
    for (int i = 0; i < 3; i++) {
        int T, label = p.data.examples[i].label;
        ck_assert_int_eq(lw_sender_cache_read(&st, i, &x, &cap, &T), LW_OK);
        memset(m.grads, 0, sizeof m.grads);
        lw_bridge_zero_grad(&p.bridge);
        float loss;
        ck_assert_int_eq(lw_trainer_example(&p.trainer, x, T, label, 1.0f, &loss, NULL), LW_OK);
        for (int k = 0; k < K; k++) {
            float keep = m.logits[k], eps = 1e-2f, lp, lm;
            m.logits[k] = keep + eps;
            ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, label, &lp), LW_OK);
            m.logits[k] = keep - eps;
            ck_assert_int_eq(lw_trainer_loss(&p.trainer, x, T, label, &lm), LW_OK);
            m.logits[k] = keep;
            double fd = ((double)lp - lm) / (2.0 * eps);
            ck_assert_msg(fabs(fd - m.grads[k]) <= 2e-3 + 3e-2 * fabs(fd), "example %d logit %d: analytic %g, fd %g",
                          i, k, (double)m.grads[k], fd);
            checked += fabs(fd) > 1e-3;
        }
    }
    ck_assert_int_ge(checked, 3);
    /* lw_train_run steps the logits with the bridge and saves them beside
     * it; a trainer built from the saved checkpoint scores as this one */
    const char *dir = tl_tmpdir("layer_mix_train");
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 5e-2f, .steps = 3, .batch = 2, .grad_accum = 1, .grad_clip = 1.0f, .seed = 1};
    o.quiet = true;
    o.out_dir = dir;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &st, &p.data, &o, &r), LW_OK);
    ck_assert_int_eq(r.steps_done, 3);
    ck_assert_str_eq(p.bridge.sender_layers, "1,2,3");
    ck_assert_int_eq(m.opt.step, 3);
    float moved = 0;
    for (int k = 0; k < K; k++) moved += fabsf(m.logits[k]);   /* a fresh run starts them at 0 */
    ck_assert_float_gt(moved, 1e-3f);
    char final[4200], bridge_file[4300];
    snprintf(final, sizeof final, "%s/final", dir);
    snprintf(bridge_file, sizeof bridge_file, "%s/bridge.safetensors", final);
    lw_bridge b2;
    lw_trainer t2;
    lw_layer_mix m2;
    ck_assert_int_eq(lw_bridge_create(&b2, &p.bridge.cfg, p.bridge.sender_hidden, p.bridge.receiver_hidden,
                                      p.bridge.embed_rms), LW_OK);
    ck_assert_int_eq(lw_checkpoint_load_bridge(bridge_file, &b2), LW_OK);
    ck_assert_str_eq(b2.sender_layers, "1,2,3");
    ck_assert_int_eq(lw_layer_mix_load(&m2, final, S), LW_OK);
    ck_assert_int_eq(m2.K, K);
    ck_assert_int_eq(m2.opt.step, 3);
    ck_assert_int_eq(lw_trainer_create(&t2, p.trainer.receiver, p.trainer.layout, &b2, 0.0f), LW_OK);
    ck_assert_int_eq(lw_trainer_attach_layer_mix(&t2, &m2), LW_OK);
    int n_labels = p.trainer.layout->n_labels;
    double *s1 = malloc((size_t)n_labels * sizeof *s1), *s2 = malloc((size_t)n_labels * sizeof *s2);
    for (int i = 0; i < 4; i++) {
        int Tx;
        ck_assert_int_eq(lw_sender_cache_read(&st, i, &x, &cap, &Tx), LW_OK);
        ck_assert_int_eq(lw_trainer_score(&p.trainer, x, Tx, s1), LW_OK);
        ck_assert_int_eq(lw_trainer_score(&t2, x, Tx, s2), LW_OK);
        for (int l = 0; l < n_labels; l++)
            ck_assert_msg(s1[l] == s2[l], "example %d label %d: in-process %.17g, from the checkpoint %.17g", i, l,
                          s1[l], s2[l]);
    }
    free(s1), free(s2);
    /* a mix file whose width is not the bridge's is refused */
    lw_layer_mix m3;
    ck_assert_int_eq(lw_layer_mix_load(&m3, final, S + 1), LW_ERR_FORMAT);
    lw_trainer_free(&t2);
    lw_layer_mix_free(&m2);
    lw_bridge_free(&b2);
    free(x);
    lw_layer_mix_free(&m);
    lw_sender_cache_close(&st);
    for (int k = 0; k < K; k++) lw_sender_cache_close(&c[k]);
    tl_synthetic_pair_close(&p);
}
END_TEST

START_TEST(layer_lists_are_checked)
{
    int layers[LW_LAYER_MIX_MAX], n;
    ck_assert_int_eq(lw_layer_mix_parse("8,12,16", 30, layers, &n), LW_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(layers[2], 16);
    ck_assert_int_eq(lw_layer_mix_parse("8,8", 30, layers, &n), LW_ERR_INVALID);
    ck_assert_int_eq(lw_layer_mix_parse("30", 30, layers, &n), LW_ERR_INVALID);
    ck_assert_int_eq(lw_layer_mix_parse("", 30, layers, &n), LW_ERR_INVALID);
    ck_assert_int_eq(lw_layer_mix_parse("4;5", 30, layers, &n), LW_ERR_INVALID);
    ck_assert_int_eq(lw_layer_mix_parse("-1", 30, layers, &n), LW_ERR_INVALID);
    ck_assert_int_eq(lw_layer_mix_parse("0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", 30, layers, &n), LW_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layer_mix");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, mix_gradient_matches_finite_differences);
    tcase_add_test(tc, mix_behind_the_bridge_matches_finite_differences);
    tcase_add_test(tc, stacked_cache_interleaves_the_layers_and_fits_their_statistics);
    tcase_add_test(tc, mix_gradient_through_the_receiver_matches_finite_differences);
    tcase_add_test(tc, layer_lists_are_checked);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
