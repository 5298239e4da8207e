/* The baselines of lw eval (baselines.h, label_scoring.h): label scores
 * equal a direct forward's log-probs (prefix reuse included, on a tiny
 * Gemma-like random model with a sliding window); k-shot prompts hold k
 * examples per class and respect the context cap without cutting the query;
 * token-budget keeps the first M text tokens; the --generate parser; the
 * relay feeds the sender's greedy text to the receiver (stories260K). */
#include "testlib.h"
#include "tiny_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "random_weights.h"

/* ---- label scoring on a tiny random model ------------------------------ */

START_TEST(scores_equal_a_direct_forward)
{
    lw_model_config c = tl_tiny_receiver_config(4, true);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, 3, &m), LW_OK);
    lw_label_scorer sc;
    ck_assert_int_eq(lw_label_scorer_init(&sc, m, 32), LW_OK);
    int v0[] = {5}, v1[] = {7, 2}, v2[] = {9, 9, 1};
    const int *verb[] = {v0, v1, v2};
    int verb_len[] = {1, 2, 3};
    /* the second prompt shares 6 tokens with the first (cache reuse), the
     * third is the first again after that, the fourth shares nothing */
    int prompts[4][12] = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
                          {1, 2, 3, 4, 5, 6, 20, 21, 22, 23, 11, 12},
                          {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
                          {4, 3, 2}};
    int lens[4] = {10, 12, 10, 3};
    for (int p = 0; p < 4; p++) {
        double scores[3];
        ck_assert_int_eq(lw_label_scorer_score(&sc, prompts[p], lens[p], 3, verb, verb_len, scores), LW_OK);
        for (int k = 0; k < 3; k++) {
            double want = tl_continuation_logprob(m, prompts[p], lens[p], verb[k], verb_len[k]);
            ck_assert_msg(fabs(scores[k] - want) < 1e-4, "prompt %d label %d: %.6f, direct %.6f", p, k, scores[k],
                          want);
        }
    }
    /* greedy generation after a cached prompt equals lw_generate's */
    int out[6], n_out, ref[6], n_ref;
    ck_assert_int_eq(lw_label_scorer_generate(&sc, prompts[1], 9, 6, NULL, 0, out, &n_out), LW_OK);
    lw_state *s;
    ck_assert_int_eq(lw_state_alloc(m, 32, false, &s), LW_OK);
    lw_generate_args g = {.max_new = 6};
    ck_assert_int_eq(lw_generate(m, s, prompts[1], 9, &g, ref, &n_ref), LW_OK);
    ck_assert_int_eq(n_out, n_ref);
    for (int i = 0; i < n_out; i++) ck_assert_int_eq(out[i], ref[i]);
    /* prompts that do not fit, ids outside the vocab */
    int big[40] = {0}, bad[] = {1, 99};
    double scores[3];
    ck_assert_int_eq(lw_label_scorer_score(&sc, big, 31, 3, verb, verb_len, scores), LW_ERR_INVALID);
    ck_assert_int_eq(lw_label_scorer_score(&sc, bad, 2, 3, verb, verb_len, scores), LW_ERR_INVALID);
    lw_state_free(s);
    lw_label_scorer_free(&sc);
    lw_model_free(m);
}
END_TEST

/* ---- the generate parser -------------------------------------------------- */

static void load_task(const char *json, lw_task *t)
{
    ck_assert_msg(lw_task_parse(json, strlen(json), "test.json", t) == LW_OK, "%s", lw_last_error());
}

START_TEST(parser_takes_the_first_verbalizer)
{
    lw_task t;
    load_task("{\"name\": \"p\", \"primer\": \"Classify.\", \"answer_prompt\": \"Intent:\", \"labels\": ["
              "{\"label\": \"pos\", \"verbalizer\": \" positive\"}, {\"label\": \"neg\", \"verbalizer\": \" negative\"},"
              "{\"label\": \"card\", \"verbalizer\": \" card\"}, {\"label\": \"arr\", \"verbalizer\": \" card arrival \"}]}",
              &t);
    ck_assert_int_eq(lw_baseline_parse_label(&t, " positive"), 0);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "The answer: POSITIVE."), 0);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "Negative, not positive"), 1);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "positive or negative"), 0);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "Card Arrival<end_of_turn>"), 3);   /* longest at a position */
    ck_assert_int_eq(lw_baseline_parse_label(&t, "my card"), 2);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "no idea"), -1);
    ck_assert_int_eq(lw_baseline_parse_label(&t, ""), -1);
    ck_assert_int_eq(lw_baseline_parse_label(&t, "posit"), -1);
    /* unparsed answers are counted in the JSON */
    lw_baseline_result r[3] = {{.pred = 0, .prompt_tokens = 10}, {.pred = -1, .prompt_tokens = 20}, {.pred = -1}};
    lw_baseline_options o = lw_baseline_defaults();
    o.generate = true;
    json_t *j = lw_baseline_json(LW_BASELINE_RECEIVER_ZEROSHOT, &o, r, 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "unparsed")), 2);
    ck_assert(fabs(json_real_value(json_object_get(j, "mean_prompt_tokens")) - 10.0) < 1e-9);
    ck_assert(json_is_true(json_object_get(json_object_get(j, "method_options"), "generate")));
    json_decref(j);
    lw_task_free(&t);
}
END_TEST

/* ---- prompts and relays on stories260K ---------------------------------- */

static const char *TASK3 =
    "{\"name\": \"t3\", \"primer\": \"Which animal is it?\", \"answer_prompt\": \"Animal:\", \"labels\": ["
    "{\"label\": \"cat\", \"verbalizer\": \" cat\"}, {\"label\": \"dog\", \"verbalizer\": \" dog\"},"
    "{\"label\": \"bird\", \"verbalizer\": \" big bird\"}]}";

static const char *TEXTS[] = {"The cat sat on the mat.", "A dog ran in the park.", "The bird sang a song.",
                              "Lily saw a cat.", "Tom had a dog.", "A bird flew away.", "The cat was happy.",
                              "The dog was sad.", "The bird was big."};

typedef struct {
    lw_model *m;
    lw_tokenizer *tok;
    lw_task task;
    lw_dataset data;
} stories;

static void stories_open(stories *s)
{
    const char *bin = tl_shared("models/stories260k/stories260K.bin");
    tl_require_file(bin);
    ck_assert_int_eq(lw_model_open(bin, LW_WEIGHTS_LLAMA2C, &s->m), LW_OK);
    ck_assert_int_eq(lw_tokenizer_load(LW_TOKENIZER_LLAMA2C, tl_shared("models/stories260k/tok512.bin"), &s->tok),
                     LW_OK);
    load_task(TASK3, &s->task);
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/data.jsonl", tl_tmpdir("baselines_data"));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 9; i++) {
        snprintf(line, sizeof line, "{\"text\": \"%s\", \"label\": \"%s\"}\n", TEXTS[i],
                 s->task.labels[i % 3]);
        fputs(line, f);
    }
    fclose(f);
    ck_assert_int_eq(lw_dataset_load(path, &s->task, 0, &s->data), LW_OK);
}

static void stories_close(stories *s)
{
    lw_dataset_free(&s->data);
    lw_task_free(&s->task);
    lw_tokenizer_free(s->tok);
    lw_model_free(s->m);
}

static int *encode(const lw_tokenizer *tok, const char *text, int *n)
{
    int *ids;
    ck_assert_int_eq(lw_tokenizer_encode(tok, text, strlen(text), false, &ids, n), LW_OK);
    return ids;
}

static bool same(const int *a, const int *b, int n)
{
    return n == 0 || !memcmp(a, b, (size_t)n * sizeof *a);
}

START_TEST(kshot_prompt_has_k_per_class_within_the_cap)
{
    stories s;
    stories_open(&s);
    lw_text_model t;
    ck_assert_int_eq(lw_text_model_init(&t, s.m, s.tok, &s.task, 0, "receiver"), LW_OK);
    const int k = 2, C = 3;
    lw_shots shots, again, other;
    ck_assert_int_eq(lw_shots_pick(&shots, &t, &s.task, &s.data, k, 7), LW_OK);
    ck_assert_int_eq(shots.n, k * C);
    for (int r = 0; r < k; r++) {   /* every round holds each class once */
        int seen[3] = {0};
        for (int j = 0; j < C; j++) seen[shots.label[r * C + j]]++;
        ck_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    }
    for (int i = 0; i < shots.n; i++) {
        ck_assert_int_eq(s.data.examples[shots.example[i]].label, shots.label[i]);
        for (int j = 0; j < i; j++) ck_assert_int_ne(shots.example[i], shots.example[j]);
        /* text "\n" answer prompt verbalizer "\n\n" */
        char want[256];
        snprintf(want, sizeof want, "%s\nAnimal:%s\n\n", s.data.examples[shots.example[i]].text,
                 s.task.verbalizers[shots.label[i]]);
        int n, *ids = encode(s.tok, want, &n);
        ck_assert_int_eq(n, shots.len[i]);
        ck_assert(same(ids, shots.ids[i], n));
        free(ids);
    }
    ck_assert_int_eq(lw_shots_pick(&again, &t, &s.task, &s.data, k, 7), LW_OK);
    for (int i = 0; i < shots.n; i++) ck_assert_int_eq(again.example[i], shots.example[i]);
    ck_assert_int_eq(lw_shots_pick(&other, &t, &s.task, &s.data, 5, 7), LW_OK);
    ck_assert_int_eq(other.n, 9);   /* 3 examples of each class are all there is */

    /* every shot fits the model's context */
    const char *query = "The cat ran to the dog.";
    int nq, *q = encode(s.tok, query, &nq), *ids, n, used, room = t.layout.max_verb - 1;
    ck_assert_int_eq(lw_baseline_prompt(&t, &shots, query, 0, room, &ids, &n, &used), LW_OK);
    ck_assert_int_eq(used, k * C);
    int fixed = t.layout.n_before + nq + t.layout.n_after, all = fixed;
    for (int i = 0; i < shots.n; i++) all += shots.len[i];
    ck_assert_int_eq(n, all);
    int w = t.layout.n_before;
    ck_assert(same(ids, t.layout.before, t.layout.n_before));
    for (int i = 0; i < shots.n; i++) ck_assert(same(ids + w, shots.ids[i], shots.len[i])), w += shots.len[i];
    ck_assert(same(ids + w, q, nq));
    ck_assert(same(ids + w + nq, t.layout.after, t.layout.n_after));
    free(ids);
    lw_text_model_free(&t);

    /* a cap with room for exactly two shots: the last ones go, the query stays whole */
    int cap = fixed + shots.len[0] + shots.len[1] + room;
    ck_assert_int_eq(lw_text_model_init(&t, s.m, s.tok, &s.task, cap + shots.len[2] - 1, "receiver"), LW_OK);
    ck_assert_int_eq(lw_baseline_prompt(&t, &shots, query, 0, room, &ids, &n, &used), LW_OK);
    ck_assert_int_eq(used, 2);
    ck_assert_int_le(n + room, cap + shots.len[2] - 1);
    ck_assert(same(ids + n - t.layout.n_after - nq, q, nq));
    free(ids);
    lw_text_model_free(&t);
    /* no room even for the query: an error, never a cut query */
    ck_assert_int_eq(lw_text_model_init(&t, s.m, s.tok, &s.task, fixed + room - 1, "receiver"), LW_OK);
    ck_assert_int_eq(lw_baseline_prompt(&t, &shots, query, 0, room, &ids, &n, &used), LW_ERR_INVALID);
    ck_assert_ptr_null(ids);

    /* the k-shot loop puts them all in and predicts a label per example */
    lw_text_model_free(&t);
    ck_assert_int_eq(lw_text_model_init(&t, s.m, s.tok, &s.task, 0, "receiver"), LW_OK);
    lw_baseline_options o = lw_baseline_defaults();
    o.k = 1;
    o.quiet = true;
    lw_baseline_result r[9];
    ck_assert_int_eq(lw_baseline_kshot(&t, &s.task, &s.data, &s.data, &o, r), LW_OK);
    for (int i = 0; i < 9; i++) ck_assert(r[i].shots == 3 && r[i].pred >= 0 && r[i].pred < 3 && r[i].prompt_tokens > 0);
    free(q);
    lw_shots_free(&shots);
    lw_shots_free(&again);
    lw_shots_free(&other);
    lw_text_model_free(&t);
    stories_close(&s);
}
END_TEST

START_TEST(token_budget_keeps_the_first_m_tokens)
{
    stories s;
    stories_open(&s);
    lw_text_model t;
    ck_assert_int_eq(lw_text_model_init(&t, s.m, s.tok, &s.task, 0, "receiver"), LW_OK);
    const char *text = "  Once upon a time there was a little cat who liked to play.\n";
    int nf, *full = encode(s.tok, "Once upon a time there was a little cat who liked to play.", &nf), *ids, n, used;
    ck_assert_int_gt(nf, 6);
    ck_assert_int_eq(lw_baseline_prompt(&t, NULL, text, 5, 0, &ids, &n, &used), LW_OK);
    ck_assert_int_eq(n, t.layout.n_before + 5 + t.layout.n_after);
    ck_assert(same(ids + t.layout.n_before, full, 5));
    ck_assert(same(ids + t.layout.n_before + 5, t.layout.after, t.layout.n_after));
    free(ids);
    ck_assert_int_eq(lw_baseline_prompt(&t, NULL, text, 1000, 0, &ids, &n, &used), LW_OK);
    ck_assert_int_eq(n, t.layout.n_before + nf + t.layout.n_after);
    ck_assert(same(ids + t.layout.n_before, full, nf));
    free(ids);
    /* the method: every prompt is within the budget */
    lw_baseline_options o = lw_baseline_defaults();
    o.quiet = true;
    lw_baseline_result r[9];
    ck_assert_int_eq(lw_baseline_zeroshot(&t, &s.task, &s.data, 3, &o, r), LW_OK);
    for (int i = 0; i < 9; i++) ck_assert_int_le(r[i].prompt_tokens, t.layout.n_before + 3 + t.layout.n_after);
    free(full);
    lw_text_model_free(&t);
    stories_close(&s);
}
END_TEST

START_TEST(relay_feeds_the_senders_text_to_the_receiver)
{
    stories s;
    stories_open(&s);
    lw_text_model snd, rcv;
    ck_assert_int_eq(lw_text_model_init(&snd, s.m, s.tok, &s.task, 0, "sender"), LW_OK);
    ck_assert_int_eq(lw_text_model_init(&rcv, s.m, s.tok, &s.task, 0, "receiver"), LW_OK);
    lw_baseline_options o = lw_baseline_defaults();
    o.relay_tokens = 12;
    o.quiet = true;
    o.relay_prompt = "Tell me:";

    /* the sender's text is its greedy continuation of instruction "\n" text */
    char *relayed;
    int gen;
    ck_assert_int_eq(lw_baseline_relay_text(&snd, &s.task, TEXTS[0], false, &o, &relayed, &gen), LW_OK);
    char prompt[256];
    snprintf(prompt, sizeof prompt, "Tell me:\n%s", TEXTS[0]);
    int np, *p = encode(s.tok, prompt, &np), out[12], n_out;
    lw_state *st;
    ck_assert_int_eq(lw_state_alloc(s.m, np + 12, false, &st), LW_OK);
    lw_generate_args g = {.max_new = 12, .stop_ids = snd.stop_ids, .n_stop = snd.n_stop};
    ck_assert_int_eq(lw_generate(s.m, st, p, np, &g, out, &n_out), LW_OK);
    ck_assert_int_eq(gen, n_out);
    ck_assert_int_gt(gen, 0);
    char *want;
    if (n_out > 0 && (out[n_out - 1] == snd.stop_ids[0])) n_out--;
    ck_assert_int_eq(lw_tokenizer_decode(s.tok, out, n_out, &want), LW_OK);
    ck_assert_msg(strstr(want, relayed) != NULL && strlen(relayed) > 0, "relayed '%s', greedy '%s'", relayed, want);

    /* the relay method: the receiver reads exactly that text */
    lw_baseline_result r[9];
    ck_assert_int_eq(lw_baseline_relay(&snd, &rcv, &s.task, &s.data, false, &o, r), LW_OK);
    ck_assert_int_eq(r[0].gen_tokens, gen);
    ck_assert_int_eq(r[0].payload_bytes, (int)strlen(relayed));
    int *ids, n, used;
    ck_assert_int_eq(lw_baseline_prompt(&rcv, NULL, relayed, 0, 0, &ids, &n, &used), LW_OK);
    ck_assert_int_eq(r[0].prompt_tokens, n);
    double scores[3];
    ck_assert_int_eq(lw_label_scorer_score(&rcv.scorer, ids, n, 3, (const int *const *)rcv.layout.verb,
                                           rcv.layout.verb_len, scores),
                     LW_OK);
    int best = 0;
    for (int k = 1; k < 3; k++) best = scores[k] > scores[best] ? k : best;
    ck_assert_int_eq(r[0].pred, best);
    /* cot-relay's default instruction lists the labels */
    o.relay_prompt = NULL;
    ck_assert_int_eq(lw_baseline_relay(&snd, &rcv, &s.task, &s.data, true, &o, r), LW_OK);
    for (int i = 0; i < 9; i++) ck_assert(r[i].gen_tokens > 0 && r[i].gen_tokens <= 12 && r[i].pred >= 0);
    o.relay_tokens = 0;
    ck_assert_int_eq(lw_baseline_relay(&snd, &rcv, &s.task, &s.data, false, &o, r), LW_ERR_INVALID);

    /* --generate: a parsed answer or unparsed, never out of range */
    o = lw_baseline_defaults();
    o.generate = true;
    o.quiet = true;
    ck_assert_int_eq(lw_baseline_zeroshot(&rcv, &s.task, &s.data, 0, &o, r), LW_OK);
    for (int i = 0; i < 9; i++) ck_assert(r[i].pred >= -1 && r[i].pred < 3);
    free(ids);
    free(want);
    free(p);
    free(relayed);
    lw_state_free(st);
    lw_text_model_free(&snd);
    lw_text_model_free(&rcv);
    stories_close(&s);
}
END_TEST

/* lw eval's hook on the stories260K pair's sender: loads it from the
 * manifest; unparsed answers become a wrong label and are counted. */
START_TEST(eval_hook_runs_the_senders_zeroshot)
{
    stories s;
    stories_open(&s);
    lw_manifest m;
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &m) == LW_OK, "%s",
                  lw_last_error());
    lw_baseline_options o = lw_baseline_defaults();
    o.quiet = true;
    int pred[9];
    json_t *extra;
    for (int gen = 0; gen < 2; gen++) {
        o.generate = gen;
        ck_assert_msg(lw_baseline_predict(&m, &s.task, &s.data, NULL, NULL, LW_BASELINE_SENDER_ZEROSHOT, &o, pred,
                                          &extra) == LW_OK, "%s", lw_last_error());
        for (int i = 0; i < 9; i++) ck_assert(pred[i] >= 0 && pred[i] < 3);
        json_t *unparsed = json_object_get(extra, "unparsed");
        ck_assert(gen ? json_is_integer(unparsed) : unparsed == NULL);
        ck_assert(json_real_value(json_object_get(extra, "mean_prompt_tokens")) > 0);
        json_decref(extra);
    }
    o.budget_tokens = 0;
    ck_assert_int_eq(lw_baseline_predict(&m, &s.task, &s.data, NULL, NULL, LW_BASELINE_TOKEN_BUDGET, &o, pred, &extra),
                     LW_ERR_INVALID);
    ck_assert_ptr_null(extra);
    stories_close(&s);
}
END_TEST

START_TEST(method_names_round_trip)
{
    for (int m = 0; m < LW_BASELINE_COUNT; m++) ck_assert_int_eq(lw_baseline_from_name(lw_baseline_name(m)), m);
    ck_assert_int_eq(lw_baseline_from_name("bridge"), -1);
    ck_assert_int_eq(lw_baseline_from_name(""), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("baselines");
    TCase *tc = tcase_create("baselines");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, scores_equal_a_direct_forward);
    tcase_add_test(tc, parser_takes_the_first_verbalizer);
    tcase_add_test(tc, kshot_prompt_has_k_per_class_within_the_cap);
    tcase_add_test(tc, token_budget_keeps_the_first_m_tokens);
    tcase_add_test(tc, relay_feeds_the_senders_text_to_the_receiver);
    tcase_add_test(tc, eval_hook_runs_the_senders_zeroshot);
    tcase_add_test(tc, method_names_round_trip);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
