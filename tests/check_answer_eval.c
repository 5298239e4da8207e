/* lw eval's answer path (answer_eval.h) on the stories260K pair's sender:
 * a choice is the argmax of its log-prob after the prompt (mean per token
 * or summed, as the task says), each checked against a fresh forward; a
 * generated answer is the first line of lw_generate's greedy text (the
 * early stop at the line's end changes nothing) scored by the metric. */
#include "testlib.h"

#include <stdbool.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_eval.h"
#include "answer_metrics.h"
#include "chat_template.h"
#include "manifest.h"
#include "tiny_models.h"
#include "model.h"
#include "random_weights.h"

typedef struct {
    lw_manifest m;
    lw_model *model;
    lw_tokenizer *tok;
} sender;

static void sender_open(sender *s)
{
    tl_require_file(tl_shared("models/stories260k/stories260K.bin"));
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &s->m) == LW_OK, "%s",
                  lw_last_error());
    ck_assert_int_eq(lw_config_load_model(&s->m.sender, &s->model), LW_OK);
    ck_assert_int_eq(lw_config_load_tokenizer(&s->m.sender, &s->tok), LW_OK);
}

static void sender_close(sender *s)
{
    lw_model_free(s->model);
    lw_tokenizer_free(s->tok);
}

static int *encode(const sender *s, const char *text, int *n)
{
    int *ids;
    ck_assert_int_eq(lw_tokenizer_encode(s->tok, text, strlen(text), false, &ids, n), LW_OK);
    return ids;
}

/* The prompt as the reference builds it: the chat turn, then the answer prompt. */
static int *prompt_ids(const sender *s, const lw_task *t, const char *user, int *n)
{
    char *turn, buf[8192];
    ck_assert_int_eq(lw_chat_render(s->model->cfg.chat_template, NULL, user, &turn), LW_OK);
    snprintf(buf, sizeof buf, "%s%s", turn, t->answer_prompt);
    free(turn);
    return encode(s, buf, n);
}

static void load_task(const char *json, lw_task *t)
{
    ck_assert_msg(lw_task_parse(json, strlen(json), "t.json", t) == LW_OK, "%s", lw_last_error());
}

static void check_choices(const char *score)
{
    sender s;
    sender_open(&s);
    char json[512];
    snprintf(json, sizeof json, "{\"name\":\"piqa\",\"kind\":\"choice\",\"prompt\":\"Goal: {goal}\",\"answer_prompt\":"
             "\"Solution:\",\"choices_field\":\"choices\",\"label_field\":\"label\",\"choice_score\":\"%s\"}", score);
    lw_task t;
    load_task(json, &t);
    tl_require_file(tl_shared("data/piqa/dev.jsonl"));
    lw_answer_data d;
    ck_assert_int_eq(lw_answer_data_load(tl_shared("data/piqa/dev.jsonl"), &t, 16, &d), LW_OK);
    lw_answer_result r[16];
    lw_answer_options o = {.sender = true, .quiet = true};
    ck_assert_msg(lw_answer_run(&s.m, &t, &d, &o, r) == LW_OK, "%s", lw_last_error());
    bool mean = !strcmp(score, "mean");
    int differ = 0;   /* rows where mean and sum choose differently: the test tells them apart */
    for (int i = 0; i < d.n; i++) {
        int n, *p = prompt_ids(&s, &t, d.rows[i].prompt, &n), best = 0;
        double want[2], raw[2], per_token[2];
        for (int k = 0; k < 2; k++) {
            char text[4096];
            snprintf(text, sizeof text, " %s", d.rows[i].choices[k]);
            int L, *c = encode(&s, text, &L);
            raw[k] = tl_continuation_logprob(s.model, p, n, c, L);
            per_token[k] = raw[k] / L;
            want[k] = mean ? per_token[k] : raw[k];
            free(c);
        }
        best = want[1] > want[0];
        differ += (per_token[1] > per_token[0]) != (raw[1] > raw[0]);
        ck_assert_msg(r[i].pred == best, "row %d (%s): chose %d, direct scores %.4f %.4f", i, score, r[i].pred,
                      want[0], want[1]);
        ck_assert(r[i].correct == (best == d.rows[i].label));
        ck_assert_int_eq(r[i].prompt_tokens, n);
        free(p);
    }
    ck_assert_msg(differ > 0, "no row tells mean from sum");
    lw_answer_results_free(r, d.n);
    lw_answer_data_free(&d);
    lw_task_free(&t);
    sender_close(&s);
}

START_TEST(choice_mean_equals_a_direct_forward) { check_choices("mean"); }
END_TEST

START_TEST(choice_sum_equals_a_direct_forward) { check_choices("sum"); }
END_TEST

static void check_generated(bool first_line)
{
    sender s;
    sender_open(&s);
    lw_task t;
    char json[512];
    snprintf(json, sizeof json, "{\"name\":\"g\",\"kind\":\"generate\",\"prompt\":\"{question}\",\"answer_prompt\":"
             "\"\",\"answer_field\":\"answers\",\"metric\":\"squad_em_f1\",\"max_new_tokens\":40,"
             "\"first_line\":%s}", first_line ? "true" : "false");
    load_task(json, &t);
    char path[4200];
    snprintf(path, sizeof path, "%s/rows.jsonl", tl_tmpdir("answer_eval"));
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"question\":\"Once upon a time, there was a little girl named\",\"answers\":[\"Lily\",\"Sue\"]}\n"
          "{\"question\":\"The cat sat on the\",\"answers\":[\"mat\"]}\n"
          "{\"question\":\"One day, Tom went to the park. He saw a big\",\"answers\":[\"dog\"]}\n", f);
    fclose(f);
    lw_answer_data d;
    ck_assert_int_eq(lw_answer_data_load(path, &t, 0, &d), LW_OK);
    lw_answer_result r[3];
    lw_answer_options o = {.sender = true, .quiet = true};
    ck_assert_msg(lw_answer_run(&s.m, &t, &d, &o, r) == LW_OK, "%s", lw_last_error());
    int multiline = 0;   /* rows whose greedy text has a second line: first_line matters on them */
    for (int i = 0; i < d.n; i++) {
        int n, *p = prompt_ids(&s, &t, d.rows[i].prompt, &n), out[40], n_out;
        lw_state *st;
        ck_assert_int_eq(lw_state_alloc(s.model, n + 40, false, &st), LW_OK);
        lw_generate_args g = {.max_new = 40};
        ck_assert_int_eq(lw_generate(s.model, st, p, n, &g, out, &n_out), LW_OK);
        int keep = n_out;   /* without a trailing stop token */
        if (keep > 0 && s.model->cfg.eos_id >= 0 && out[keep - 1] == s.model->cfg.eos_id) keep--;
        char *text = NULL;
        if (keep > 0) ck_assert_int_eq(lw_tokenizer_decode(s.tok, out, keep, &text), LW_OK);
        char *want = lw_answer_extract(text ? text : "", first_line), *all = lw_answer_extract(text ? text : "", false);
        multiline += strchr(all, '\n') != NULL;
        free(all);
        ck_assert_msg(!strcmp(r[i].answer, want), "row %d: \"%s\", greedy text \"%s\"", i, r[i].answer, want);
        ck_assert(r[i].gen_tokens >= 1 && r[i].gen_tokens <= n_out);
        double em, f1;
        ck_assert_int_eq(lw_squad_score(want, (const char *const *)d.rows[i].golds, d.rows[i].n_gold, &em, &f1), LW_OK);
        ck_assert(r[i].em == em && r[i].f1 == f1);
        free(text), free(want), free(p);
        lw_state_free(st);
    }
    ck_assert_msg(multiline > 0, "no greedy text has two lines");
    lw_answer_results_free(r, d.n);
    lw_answer_data_free(&d);
    lw_task_free(&t);
    sender_close(&s);
}

START_TEST(generated_answer_is_greedy_first_line) { check_generated(true); }
END_TEST

START_TEST(generated_answer_is_the_whole_greedy_text) { check_generated(false); }
END_TEST

int main(void)
{
    Suite *s = suite_create("answer_eval");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, choice_mean_equals_a_direct_forward);
    tcase_add_test(tc, choice_sum_equals_a_direct_forward);
    tcase_add_test(tc, generated_answer_is_greedy_first_line);
    tcase_add_test(tc, generated_answer_is_the_whole_greedy_text);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
