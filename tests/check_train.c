/* The bridge training loop on a tiny synthetic pair: random in-memory
 * receiver (Gemma-3-like: qk-norm, post norms, scaled embeddings, sliding
 * window), synthetic sender states whose class is a direction in the
 * sender space, and two dimensions with large constant offsets like the
 * "massive activations" of real senders. Checks that the gradient reaching the bridge through the
 * receiver matches finite differences, that training separates the classes,
 * and that a resumed run ends bit for bit where the straight run ends. */
#include "testlib.h"
#include "bridge_grad_check.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "checkpoint.h"
#include "linear_probe.h"
#include "manifest.h"
#include "model_load.h"
#include "sender_states.h"
#include "train.h"

#include <sys/stat.h>
#include <unistd.h>

enum { S_HIDDEN = TL_SENDER_HIDDEN, N_EX = 48, M_SOFT = 2 };

typedef tl_synthetic_pair pair;

/* Label 1's verbalizer has two tokens, so multi-token scoring is exercised. */
static void setup(pair *p, float diversity, uint64_t data_seed)
{
    tl_synthetic_pair_open(p, M_SOFT, N_EX, diversity, data_seed);
}

static void teardown(pair *p) { tl_synthetic_pair_close(p); }

static const float *example(pair *p, int i, int *T)
{
    *T = p->states.tokens[i];
    return p->states.mem + p->states.offset[i];
}

static lw_train_options options(int steps)
{
    lw_train_options o;
    memset(&o, 0, sizeof o);
    o.cfg = (lw_train_config){.lr = 3e-3f, .steps = steps, .batch = 4, .grad_accum = 2, .warmup_steps = 3,
                              .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 5};
    o.quiet = true;
    return o;
}

static double mean_loss(pair *p)
{
    double total = 0.0;
    for (int i = 0; i < N_EX; i++) {
        int T;
        float loss;
        const float *x = example(p, i, &T);
        ck_assert_int_eq(lw_trainer_loss(&p->trainer, x, T, p->data.examples[i].label, &loss), LW_OK);
        total += loss;
    }
    return total / N_EX;
}

static double accuracy(pair *p)
{
    int right = 0;
    for (int i = 0; i < N_EX; i++) {
        int T;
        double s[2];
        const float *x = example(p, i, &T);
        ck_assert_int_eq(lw_trainer_score(&p->trainer, x, T, s), LW_OK);
        right += (s[1] > s[0]) == (p->data.examples[i].label == 1);
    }
    return (double)right / N_EX;
}

/* d(loss)/d(bridge params), loss through the receiver (and the diversity
 * term), against central differences at the largest-gradient entry of
 * every tensor. */
START_TEST(bridge_gradient_through_receiver_matches_finite_differences)
{
    pair p;
    setup(&p, 0.3f, 1);
    for (int i = 0; i < 4; i++) {   /* both labels, so both verbalizer lengths */
        int T;
        const float *x = example(&p, i, &T);
        tl_check_bridge_gradient(&p.trainer, &p.bridge, x, T, p.data.examples[i].label, i);
    }
    teardown(&p);
}
END_TEST

START_TEST(training_separates_the_classes)
{
    pair p;
    setup(&p, 0.0f, 2);
    double before = accuracy(&p), loss_before = mean_loss(&p);
    lw_train_options o = options(60);
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_OK);
    double after = accuracy(&p), loss_after = mean_loss(&p);
    ck_assert_int_eq(r.steps_done, 60);
    /* the run set input_norm from the data: offset dims centred, class dims'
     * std sqrt(0.5^2 + 1.5^2) */
    const float *mean = p.bridge.params + p.bridge.in_mean, *std = p.bridge.params + p.bridge.in_std;
    ck_assert_float_eq_tol(mean[7], 40.0f, 0.3f);
    ck_assert_float_eq_tol(mean[6], -20.0f, 0.3f);
    ck_assert_float_eq_tol(std[0], sqrtf(2.5f), 0.15f);
    ck_assert_float_eq_tol(std[5], 0.5f, 0.1f);
    ck_assert_msg(after >= 0.95, "accuracy %.3f after training (%.3f before, last loss %.4f)", after, before,
                  r.last_loss);
    /* a random receiver is very peaked, so the loss stays large; it must fall */
    ck_assert_msg(loss_after < 0.8 * loss_before, "mean loss %.3f before, %.3f after", loss_before, loss_after);
    teardown(&p);
}
END_TEST

START_TEST(resumed_run_is_bit_exact)
{
    const char *dir = tl_tmpdir("train_resume");
    char straight_dir[4096], resume_from[4200];
    snprintf(straight_dir, sizeof straight_dir, "%s/straight", dir);
    snprintf(resume_from, sizeof resume_from, "%s/step-4", straight_dir);

    pair a;
    setup(&a, 0.1f, 3);
    lw_train_options o = options(8);
    o.out_dir = straight_dir;
    o.checkpoint_every = 4;
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &r), LW_OK);
    ck_assert_int_eq(r.steps_done, 8);

    /* a fresh process's view: new bridge (other init), resumed at step 4 */
    pair b;
    setup(&b, 0.1f, 3);
    lw_bridge_init(&b.bridge, 999);
    lw_train_options o2 = options(8);
    char resumed_dir[4200];
    snprintf(resumed_dir, sizeof resumed_dir, "%s/resumed", dir);
    o2.out_dir = resumed_dir;
    o2.resume_dir = resume_from;
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o2, &r), LW_OK);
    ck_assert_int_eq(r.steps_done, 4);
    ck_assert_int_eq(a.bridge.n_params, b.bridge.n_params);
    ck_assert(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) == 0);

    /* the final checkpoints agree too, step included */
    char final_a[4300], final_b[4300];
    snprintf(final_a, sizeof final_a, "%s/final", straight_dir);
    snprintf(final_b, sizeof final_b, "%s/final", resumed_dir);
    lw_adamw opt;
    lw_rng rng;
    long step = 0;
    ck_assert_int_eq(lw_adamw_init(&opt, b.bridge.n_params, lw_adamw_defaults()), LW_OK);
    ck_assert_int_eq(lw_checkpoint_load(final_a, &b.bridge, &opt, &rng, &step), LW_OK);
    ck_assert_int_eq(step, 8);
    ck_assert(memcmp(a.bridge.params, b.bridge.params, a.bridge.n_params * sizeof(float)) == 0);
    ck_assert_int_eq(lw_checkpoint_load(final_b, &b.bridge, &opt, &rng, &step), LW_OK);
    ck_assert_int_eq(step, 8);
    lw_adamw_free(&opt);
    teardown(&a);
    teardown(&b);
}
END_TEST

/* Packed steps (every micro-batch in one receiver pass) against one
 * example at a time from position 0 (no_head_cache): the same run to float
 * rounding over a few steps, diversity loss included. */
START_TEST(packed_steps_follow_one_example_at_a_time)
{
    pair a, b;
    setup(&a, 0.1f, 4);
    setup(&b, 0.1f, 4);
    b.trainer.rx.no_head_cache = true;
    lw_train_options o = options(4);
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &o, &ra), LW_OK);
    ck_assert_ptr_nonnull(a.trainer.rx.pack);   /* a ran packed ... */
    ck_assert_ptr_null(b.trainer.rx.pack);      /* ... b did not */
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &o, &rb), LW_OK);
    ck_assert_msg(fabs(ra.last_loss - rb.last_loss) <= 1e-4 * fabs(rb.last_loss), "last loss packed %.8g, alone %.8g",
                  ra.last_loss, rb.last_loss);
    ck_assert_double_eq(ra.train_acc, rb.train_acc);
    tl_assert_close_to_scale(a.bridge.params, b.bridge.params, a.bridge.n_params, 1e-4, "bridge parameters");
    teardown(&a);
    teardown(&b);
}
END_TEST

/* Two logged values of one quantity by two paths: equal to ~1e-5 relative
 * (the log keeps 6 decimals, hence the absolute floor). */
static void assert_logged_close(double got, double want, const char *what, int step)
{
    ck_assert_msg(fabs(got - want) <= 1e-5 * fabs(want) + 2e-6, "step %d %s: %.8g, expected %.8g", step, what, got,
                  want);
}

/* Gradient accumulation is the mean over the whole step: batch 4 x
 * grad_accum 2 and batch 8 x 1 draw the same 8 examples a step (one seed)
 * and, with clipping off, log the same loss and gradient norm and step to
 * the same parameters. A gradient scaled by 1/batch instead would log
 * twice the norm (and clip at the wrong point). */
START_TEST(grad_accum_matches_one_big_batch)
{
    const char *dir = tl_tmpdir("train_accum");
    char dir_a[4200], dir_b[4200];
    snprintf(dir_a, sizeof dir_a, "%s/accum", dir);
    snprintf(dir_b, sizeof dir_b, "%s/batch", dir);
    pair a, b;
    setup(&a, 0.1f, 6);
    setup(&b, 0.1f, 6);
    lw_train_options oa = options(2), ob = options(2);
    oa.cfg.grad_clip = ob.cfg.grad_clip = 0.0f;
    ob.cfg.batch = 8, ob.cfg.grad_accum = 1;
    oa.out_dir = dir_a, ob.out_dir = dir_b;
    lw_train_result ra, rb;
    ck_assert_int_eq(lw_train_run(&a.trainer, &a.states, &a.data, &oa, &ra), LW_OK);
    ck_assert_int_eq(lw_train_run(&b.trainer, &b.states, &b.data, &ob, &rb), LW_OK);
    double loss_a[2], loss_b[2], gn_a[2], gn_b[2];
    ck_assert_int_eq(tl_read_train_log(dir_a, 2, loss_a, gn_a), 2);
    ck_assert_int_eq(tl_read_train_log(dir_b, 2, loss_b, gn_b), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(gn_b[i] > 1e-3, "step %d: grad_norm %g is too small to compare", i + 1, gn_b[i]);
        assert_logged_close(loss_a[i], loss_b[i], "loss", i + 1);
        assert_logged_close(gn_a[i], gn_b[i], "grad_norm", i + 1);
    }
    ck_assert_msg(fabs(ra.last_loss - rb.last_loss) <= 1e-5 * fabs(rb.last_loss), "last loss %.8g, expected %.8g",
                  ra.last_loss, rb.last_loss);
    tl_assert_close_to_scale(a.bridge.params, b.bridge.params, a.bridge.n_params, 1e-5, "bridge parameters");
    teardown(&a);
    teardown(&b);
}
END_TEST

START_TEST(bad_options_are_refused)
{
    pair p;
    setup(&p, 0.0f, 4);
    lw_train_options o = options(0);
    lw_train_result r;
    ck_assert_int_eq(lw_train_run(&p.trainer, &p.states, &p.data, &o, &r), LW_ERR_INVALID);
    int T;
    const float *x = example(&p, 0, &T);
    float loss;
    ck_assert_int_eq(lw_trainer_example(&p.trainer, x, T, 2, 1.0f, &loss, NULL), LW_ERR_INVALID);
    ck_assert_int_eq(lw_trainer_example(&p.trainer, x, 0, 0, 1.0f, &loss, NULL), LW_ERR_INVALID);
    teardown(&p);
}
END_TEST


/* The sender cache with a real (tiny) sender, stories260K: built once,
 * equal to a direct forward, reused while valid, rebuilt when cut short. */
START_TEST(sender_cache_matches_the_sender_and_is_reused)
{
    const char *dir = tl_tmpdir("sender_cache");
    char data_path[4200], cache_dir[4200];
    snprintf(data_path, sizeof data_path, "%s/train.jsonl", dir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", dir);
    tl_write_file(data_path, "{\"text\": \"Once upon a time\", \"label\": \"positive\"}\n"
                             "{\"text\": \"The cat sat\", \"label\": \"negative\"}\n"
                             "{\"text\": \"Lily was sad and cried a lot\", \"label\": \"negative\"}\n"
                             "{\"text\": \"Tom liked the big red ball\", \"label\": \"positive\"}\n");
    lw_manifest m;
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &m) == LW_OK, "%s",
                  lw_last_error());
    tl_require_file(m.sender.weights_path);
    lw_task task;
    ck_assert_int_eq(lw_task_load(tl_src("tasks/sst2.json"), &task), LW_OK);
    lw_dataset d;
    ck_assert_int_eq(lw_dataset_load(data_path, &task, 0, &d), LW_OK);
    lw_sender_cache c;
    ck_assert_msg(lw_sender_cache_get(&m.sender, 3, data_path, &d, cache_dir, 1, &c) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(c.n, 4);
    ck_assert_int_eq(c.hidden, m.sender.hidden);
    struct stat st1, st2;
    ck_assert_int_eq(stat(c.path, &st1), 0);

    /* example 2 as the sender computes it directly */
    lw_model *model;
    lw_state *state;
    lw_tokenizer *tok;
    ck_assert_int_eq(lw_model_load(&m.sender, &model), LW_OK);
    ck_assert_int_eq(lw_state_alloc(model, 64, false, &state), LW_OK);
    ck_assert_int_eq(lw_tokenizer_load(m.sender.tokenizer_kind, m.sender.tokenizer_path, &tok), LW_OK);
    char *prompt;
    int *ids, n;
    ck_assert_int_eq(lw_chat_render(m.sender.chat_template, NULL, d.examples[2].text, &prompt), LW_OK);
    ck_assert_int_eq(lw_tokenizer_encode(tok, prompt, strlen(prompt), false, &ids, &n), LW_OK);
    float *want = calloc((size_t)n * c.hidden, sizeof(float)), *got = NULL;
    lw_forward_args a = {.ids = ids, .T = n, .capture_layer = 3, .hidden_out = want};
    ck_assert_int_eq(lw_forward(model, state, &a), LW_OK);
    size_t cap = 0;
    int T;
    ck_assert_int_eq(lw_sender_cache_read(&c, 2, &got, &cap, &T), LW_OK);
    /* no template here: all rows but the first (the attention sink) */
    ck_assert_int_eq(T, n - 1);
    ck_assert(memcmp(want + c.hidden, got, (size_t)(n - 1) * c.hidden * sizeof(float)) == 0);
    char path[4096];
    memcpy(path, c.path, sizeof path);
    lw_sender_cache_close(&c);

    /* again, and for a prefix of the file: the same file, not rewritten */
    ck_assert_int_eq(lw_sender_cache_get(&m.sender, 3, data_path, &d, cache_dir, 1, &c), LW_OK);
    ck_assert_str_eq(c.path, path);
    lw_sender_cache_close(&c);
    d.n = 2;
    ck_assert_int_eq(lw_sender_cache_get(&m.sender, 3, data_path, &d, cache_dir, 1, &c), LW_OK);
    ck_assert_int_eq(c.n, 2);
    lw_sender_cache_close(&c);
    d.n = 4;
    ck_assert_int_eq(stat(path, &st2), 0);
    ck_assert(st1.st_ino == st2.st_ino && st1.st_mtime == st2.st_mtime);

    /* another layer is another file; a file cut short is rebuilt */
    ck_assert_int_eq(lw_sender_cache_get(&m.sender, 2, data_path, &d, cache_dir, 1, &c), LW_OK);
    ck_assert_str_ne(c.path, path);
    lw_sender_cache_close(&c);
    ck_assert_int_eq(truncate(path, st1.st_size / 2), 0);
    ck_assert_int_eq(lw_sender_cache_get(&m.sender, 3, data_path, &d, cache_dir, 1, &c), LW_OK);
    ck_assert_int_eq(lw_sender_cache_read(&c, 2, &got, &cap, &T), LW_OK);
    ck_assert(memcmp(want + c.hidden, got, (size_t)(n - 1) * c.hidden * sizeof(float)) == 0);
    ck_assert_int_eq(lw_sender_cache_read(&c, 4, &got, &cap, &T), LW_ERR_INVALID);
    lw_sender_cache_close(&c);

    /* a stratified subset (one example per label) is a file of its own,
     * holding its own examples' rows, not the file's first two */
    lw_dataset sub;
    ck_assert_int_eq(lw_dataset_load_subset(data_path, &task, &(lw_subset){2, true, 7}, &sub), LW_OK);
    ck_assert_int_eq(sub.n, 2);
    ck_assert(sub.examples[0].label != sub.examples[1].label);
    ck_assert_int_eq(lw_sender_cache_get(&m.sender, 3, data_path, &sub, cache_dir, 1, &c), LW_OK);
    ck_assert_str_ne(c.path, path);
    ck_assert_int_eq(c.n, 2);
    for (int i = 0; i < 2; i++) {
        int k = 0;
        while (strcmp(d.examples[k].text, sub.examples[i].text)) k++;
        float *row = NULL;
        size_t rcap = 0;
        int Tk, Ti;
        lw_sender_cache other;
        ck_assert_int_eq(lw_sender_cache_get(&m.sender, 3, data_path, &d, cache_dir, 1, &other), LW_OK);
        ck_assert_int_eq(lw_sender_cache_read(&other, k, &row, &rcap, &Tk), LW_OK);
        ck_assert_int_eq(lw_sender_cache_read(&c, i, &got, &cap, &Ti), LW_OK);
        ck_assert_int_eq(Ti, Tk);
        ck_assert(memcmp(row, got, (size_t)Tk * c.hidden * sizeof(float)) == 0);
        lw_sender_cache_close(&other);
        free(row);
    }
    lw_sender_cache_close(&c);
    lw_dataset_free(&sub);

    free(want);
    free(got);
    free(prompt);
    free(ids);
    lw_tokenizer_free(tok);
    lw_state_free(state);
    lw_model_free(model);
    lw_dataset_free(&d);
    lw_task_free(&task);
}
END_TEST

/* The receiver's prompt with a real tokenizer (SmolLM2's, ChatML): the
 * pieces decode to the chat template's split rendering around the soft
 * tokens, the answer prompt opening the reply. */
START_TEST(receiver_layout_renders_the_chat_template)
{
    lw_tokenizer *tok;
    const char *tj = tl_shared("models/smollm2-135m-instruct/tokenizer.json");
    tl_require_file(tj);
    ck_assert_int_eq(lw_tokenizer_load(LW_TOKENIZER_BPE_JSON, tj, &tok), LW_OK);
    lw_task task;
    ck_assert_int_eq(lw_task_load(tl_src("tasks/sst2.json"), &task), LW_OK);
    lw_receiver_layout L;
    ck_assert_msg(lw_receiver_layout_build(&task, LW_CHAT_CHATML, tok, 4, 49152, &L) == LW_OK, "%s", lw_last_error());
    char *before, *after, *got_before, *got_after;
    ck_assert_int_eq(lw_chat_render_split(LW_CHAT_CHATML, NULL, "Classify the sentiment of this review.\n", "",
                                          &before, &after), LW_OK);
    ck_assert_int_eq(lw_tokenizer_decode(tok, L.before, L.n_before, &got_before), LW_OK);
    ck_assert_int_eq(lw_tokenizer_decode(tok, L.after, L.n_after, &got_after), LW_OK);
    ck_assert_str_eq(got_before, before);
    ck_assert_int_eq(strncmp(got_after, after, strlen(after)), 0);
    ck_assert_str_eq(got_after + strlen(after), "Sentiment:");
    ck_assert_int_eq(L.n_labels, 2);
    int ids[256];
    bool emb[256];
    int T = lw_receiver_fill(&L, 1, 99, ids, emb);
    ck_assert_int_eq(T, lw_receiver_prefix_len(&L) + L.verb_len[1]);
    ck_assert(emb[L.n_before] && emb[L.n_before + 3] && !emb[L.n_before + 4] && !emb[0]);
    free(before);
    free(after);
    free(got_before);
    free(got_after);
    lw_receiver_layout_free(&L);
    lw_task_free(&task);
    lw_tokenizer_free(tok);
}
END_TEST

/* Three Gaussian blobs in 6 dimensions: the probe separates them. */
START_TEST(linear_probe_fits_separable_classes)
{
    enum { N = 90, D = 6, C = 3 };
    float X[N * D];
    int y[N];
    lw_rng r;
    lw_rng_seed(&r, 9);
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int k = 0; k < D; k++) X[i * D + k] = (float)lw_rng_normal(&r) * 0.5f + (k == y[i] ? 3.0f : 0.0f) + 10.0f;
    }
    lw_linear_probe p;
    lw_probe_options o = lw_probe_defaults();
    ck_assert_int_eq(lw_linear_probe_train(&p, X, y, N, D, C, &o), LW_OK);
    int right = 0;
    for (int i = 0; i < N; i++) right += lw_linear_probe_predict(&p, X + i * D) == y[i];
    ck_assert_int_ge(right, N - 2);
    lw_linear_probe_free(&p);
    y[0] = 7;
    ck_assert_int_eq(lw_linear_probe_train(&p, X, y, N, D, C, &o), LW_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bridge_gradient_through_receiver_matches_finite_differences);
    tcase_add_test(tc, training_separates_the_classes);
    tcase_add_test(tc, packed_steps_follow_one_example_at_a_time);
    tcase_add_test(tc, resumed_run_is_bit_exact);
    tcase_add_test(tc, grad_accum_matches_one_big_batch);
    tcase_add_test(tc, bad_options_are_refused);
    tcase_add_test(tc, sender_cache_matches_the_sender_and_is_reused);
    tcase_add_test(tc, receiver_layout_renders_the_chat_template);
    tcase_add_test(tc, linear_probe_fits_separable_classes);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
