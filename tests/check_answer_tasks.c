/* Generate and choice tasks (task.h): the task files of tasks/, the errors
 * of bad ones (naming file and field), their data rows (answer_data.h) on
 * the shared dev files, the answer's extraction and which methods apply. */
#include "testlib.h"
#include "answer_data.h"
#include "answer_eval.h"
#include "answer_metrics.h"
#include "dataset.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void load_task(const char *name, lw_task *t)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tasks/%s.json", name);
    ck_assert_msg(lw_task_load(tl_src(rel), t) == LW_OK, "%s", lw_last_error());
}

START_TEST(task_files_load)
{
    const char *gen[] = {"squad", "hotpotqa", "gsm8k"}, *choice[] = {"boolq", "piqa", "csqa"};
    for (int i = 0; i < 3; i++) {
        lw_task t;
        load_task(gen[i], &t);
        ck_assert_int_eq(t.kind, LW_TASK_GENERATE);
        ck_assert_int_eq(t.n_labels, 0);
        ck_assert(t.max_new_tokens > 0 && strstr(t.prompt, "{question}"));
        ck_assert_int_eq(t.metric, i == 2 ? LW_METRIC_GSM8K_NUMBER : LW_METRIC_SQUAD_EM_F1);
        ck_assert(t.first_line == (i != 2));
        lw_task_free(&t);
        load_task(choice[i], &t);
        ck_assert_int_eq(t.kind, LW_TASK_CHOICE);
        ck_assert(t.choice_mean);
        ck_assert_str_eq(t.choice_prefix, " ");
        ck_assert_int_eq(t.n_fixed_choices, i == 0 ? 2 : 0);
        ck_assert(i == 0 ? !t.choices_field : !strcmp(t.choices_field, "choices"));
        lw_task_free(&t);
    }
    /* the classification tasks are what they were */
    lw_task t;
    load_task("sst2", &t);
    ck_assert_int_eq(t.kind, LW_TASK_CLASSIFY);
    ck_assert_int_eq(t.n_labels, 2);
    ck_assert_ptr_null(t.prompt);
    lw_task_free(&t);
}
END_TEST

static void bad(const char *json, const char *want)
{
    lw_task t;
    ck_assert_int_eq(lw_task_parse(json, strlen(json), "bad.json", &t), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "bad.json") && strstr(lw_last_error(), want), "%s: got \"%s\", want \"%s\"",
                  json, lw_last_error(), want);
}

START_TEST(bad_task_files)
{
    bad("{\"name\":\"x\",\"kind\":\"answer\"}", "kind must be");
    bad("{\"name\":\"x\",\"kind\":7}", "kind must be");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"answer_prompt\":\"A:\"}", "prompt is missing");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"no fields\",\"answer_prompt\":\"\"}", "names no {field}");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{a b}\",\"answer_prompt\":\"\"}", "opens no {field}");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q} }\",\"answer_prompt\":\"\"}", "lone '}'");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\"}", "answer_prompt is missing");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"metric\":\"squad_em_f1\"}",
        "answer_field is missing");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"bleu\"}", "metric must be");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"squad_em_f1\",\"max_new_tokens\":0}", "max_new_tokens must be");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"squad_em_f1\",\"first_line\":1}", "first_line must be");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"squad_em_f1\",\"labels\":[]}", "\"labels\" is not a field of a generate task");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"squad_em_f1\",\"budget_field\":\"context\"}", "budget_field \"context\": the prompt has no {context}");
    bad("{\"name\":\"x\",\"kind\":\"generate\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"answer_field\":\"a\","
        "\"metric\":\"squad_em_f1\",\"budget_field\":3}", "budget_field is missing or not a non-empty string");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"choices_field\":\"c\","
        "\"label_field\":\"l\",\"budget_field\":\"q\"}", "\"budget_field\" is not a field of a choice task");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"label_field\":\"l\"}",
        "not neither");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"label_field\":\"l\","
        "\"choices\":[\"a\"],\"choices_field\":\"c\"}", "not both");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"label_field\":\"l\","
        "\"choices\":[\"a\"]}", "choices must be an array of 2");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"label_field\":\"l\","
        "\"choices\":[\"a\",\"a\"]}", "choices[1] \"a\" repeats choices[0]");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"choices_field\":\"c\"}",
        "label_field is missing");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"choices_field\":\"c\","
        "\"label_field\":\"l\",\"choice_score\":\"max\"}", "choice_score must be");
    bad("{\"name\":\"x\",\"kind\":\"choice\",\"prompt\":\"{q}\",\"answer_prompt\":\"\",\"choices_field\":\"c\","
        "\"label_field\":\"l\",\"metric\":\"squad_em_f1\"}", "\"metric\" is not a field of a choice task");
    /* classification as before: "kind": "classify" is the same as none */
    const char *cls = "{\"name\":\"x\",\"kind\":\"classify\",\"primer\":\"\",\"answer_prompt\":\"A:\",\"labels\":"
                      "[{\"label\":\"a\",\"verbalizer\":\" a\"},{\"label\":\"b\",\"verbalizer\":\" b\"}]}";
    lw_task t;
    ck_assert_int_eq(lw_task_parse(cls, strlen(cls), "c.json", &t), LW_OK);
    ck_assert_int_eq(t.kind, LW_TASK_CLASSIFY);
    ck_assert_int_eq(t.n_labels, 2);
    lw_task_free(&t);
}
END_TEST

static void load_rows(const char *task, int n, lw_task *t, lw_answer_data *d)
{
    char rel[128];
    load_task(task, t);
    snprintf(rel, sizeof rel, "data/%s/dev.jsonl", task);
    tl_require_file(tl_shared(rel));
    ck_assert_msg(lw_answer_data_load(tl_shared(rel), t, n, d) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(d->n, n);
}

START_TEST(rows_of_the_shared_dev_files)
{
    lw_task t;
    lw_answer_data d;
    load_rows("squad", 3, &t, &d);
    ck_assert(strstr(d.rows[0].prompt, "Context: Super Bowl 50") && strstr(d.rows[0].prompt, "\nQuestion: "));
    ck_assert(!strchr(d.rows[0].prompt, '{'));
    ck_assert(d.rows[0].n_gold >= 1);
    lw_answer_data_free(&d), lw_task_free(&t);
    load_rows("hotpotqa", 2, &t, &d);   /* contexts: "title: text" lines */
    ck_assert_msg(strstr(d.rows[0].prompt, "\nUngod: Ungod is the debut album"), "%s", d.rows[0].prompt);
    lw_answer_data_free(&d), lw_task_free(&t);
    load_rows("gsm8k", 2, &t, &d);
    ck_assert_str_eq(d.rows[0].golds[0], "540");
    lw_answer_data_free(&d), lw_task_free(&t);
    load_rows("boolq", 20, &t, &d);   /* "yes"/"no" labels index the fixed choices */
    int yes = 0;
    for (int i = 0; i < d.n; i++) {
        ck_assert_int_eq(d.rows[i].n_choices, 2);
        yes += d.rows[i].label == 0;
    }
    ck_assert(yes > 0 && yes < d.n);
    lw_answer_data_free(&d), lw_task_free(&t);
    load_rows("piqa", 2, &t, &d);
    ck_assert_int_eq(d.rows[0].n_choices, 2);
    ck_assert_int_eq(d.rows[0].label, 1);
    ck_assert_str_eq(d.rows[0].choices[1], "Blow into trash bag and tie with rubber band.");
    lw_answer_data_free(&d), lw_task_free(&t);
    load_rows("csqa", 2, &t, &d);
    ck_assert_int_eq(d.rows[1].n_choices, 5);
    ck_assert_int_eq(d.rows[1].label, 1);
    ck_assert_str_eq(d.rows[1].choices[1], "mexico");
    lw_answer_data_free(&d), lw_task_free(&t);
}
END_TEST

static void bad_rows(const char *task, const char *jsonl, const char *want)
{
    char path[] = "/tmp/lwc_answer_rowsXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(jsonl, f);
    fclose(f);
    lw_task t;
    lw_answer_data d;
    load_task(task, &t);
    ck_assert_int_ne(lw_answer_data_load(path, &t, 0, &d), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), path) && strstr(lw_last_error(), want), "got \"%s\", want \"%s\"",
                  lw_last_error(), want);
    lw_task_free(&t);
    unlink(path);
}

START_TEST(bad_rows_name_line_and_field)
{
    bad_rows("piqa", "{\"goal\":\"g\",\"choices\":[\"a\",\"b\"],\"label\":0}\n\n{\"goal\":\"g\",\"choices\":[\"a\",\"b\"],"
             "\"label\":2}\n", ":3: label field \"label\" is 2, outside the 2 choices");
    bad_rows("piqa", "{\"goal\":\"g\",\"choices\":[\"a\"],\"label\":0}\n", ":1: field \"choices\" must be");
    bad_rows("piqa", "{\"choices\":[\"a\",\"b\"],\"label\":0}\n", ":1: field \"goal\" is missing");
    bad_rows("boolq", "{\"question\":\"q\",\"passage\":\"p\",\"label\":\"maybe\"}\n", "(got \"maybe\")");
    bad_rows("squad", "{\"context\":\"c\",\"question\":\"q\",\"answers\":[1]}\n", ":1: answers[0] is not a string");
    bad_rows("squad", "{\"context\":\"c\",\"question\":\"q\"}\n", ":1: field \"answers\" must be");
    bad_rows("squad", "{\"context\":\"c\",\"question\":{}}\n", ":1: field \"question\" is an object");
    bad_rows("squad", "not json\n", ":1:");
    bad_rows("squad", "\n\n", "no rows");
    /* a classification task's rows are not answer rows, and the reverse */
    lw_task t;
    lw_answer_data d;
    lw_dataset ds;
    load_task("sst2", &t);
    ck_assert_int_eq(lw_answer_data_load(tl_shared("data/sst2/dev.jsonl"), &t, 1, &d), LW_ERR_INVALID);
    lw_task_free(&t);
    load_task("squad", &t);
    ck_assert_int_eq(lw_dataset_load(tl_shared("data/squad/dev.jsonl"), &t, 1, &ds), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "generate task"));
    lw_task_free(&t);
}
END_TEST

START_TEST(render_fields)
{
    json_t *row = json_pack("{s:s, s:i, s:[s, s], s:[{s:s, s:s}]}", "q", "why?", "n", 7, "list", "a", "b", "ctx",
                            "title", "T", "text", "body");
    char *out;
    ck_assert_int_eq(lw_answer_render("{{{q}}} {n}\n{list}\n{ctx}", row, "r:1", &out), LW_OK);
    ck_assert_str_eq(out, "{why?} 7\na\nb\nT: body");
    free(out);
    ck_assert_int_ne(lw_answer_render("{missing}", row, "r:1", &out), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "r:1: field \"missing\" is missing"));
    json_decref(row);
}
END_TEST

START_TEST(extract_and_methods)
{
    char *s = lw_answer_extract("  \n Denver Broncos \nThe Broncos won.", true);
    ck_assert_str_eq(s, "Denver Broncos");
    free(s);
    s = lw_answer_extract(" 3 + 4 = 7\nThe answer is 7. ", false);
    ck_assert_str_eq(s, "3 + 4 = 7\nThe answer is 7.");
    free(s);
    s = lw_answer_extract("   ", true);
    ck_assert_str_eq(s, "");
    free(s);
    lw_task t;
    load_task("squad", &t);
    ck_assert_int_eq(lw_answer_method(&t, "receiver-text"), 0);
    ck_assert_int_eq(lw_answer_method(&t, "receiver-zeroshot"), 0);
    ck_assert_int_eq(lw_answer_method(&t, "sender-text"), 1);
    /* the token budget: SQuAD names its budget_field; the bit is LW_ANSWER_BUDGET */
    ck_assert_int_eq(lw_answer_method(&t, "token-budget"), LW_ANSWER_BUDGET);
    ck_assert_int_eq(lw_answer_method(&t, "receiver-token-budget"), LW_ANSWER_BUDGET);
    ck_assert_int_eq(lw_answer_method(&t, "sender-token-budget"), LW_ANSWER_BUDGET + 1);
    const char *refused[] = {"bridge", "bridge-fallback", "linear-probe", "receiver-kshot", "text-relay", "cot-relay",
                             "prompt-tuning", "lora", "nonsense"};
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(lw_answer_method(&t, refused[i]), -1);
        ck_assert_msg(strstr(lw_last_error(), refused[i]) && strstr(lw_last_error(), "a generate task") &&
                      strstr(lw_last_error(), "use receiver-text or sender-text"), "%s", lw_last_error());
    }
    lw_task_free(&t);
    /* a choice task names no budget_field: the budget is refused, saying so */
    load_task("piqa", &t);
    ck_assert_int_eq(lw_answer_method(&t, "token-budget"), -1);
    ck_assert_msg(strstr(lw_last_error(), "budget_field"), "%s", lw_last_error());
    lw_task_free(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("answer_tasks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, task_files_load);
    tcase_add_test(tc, bad_task_files);
    tcase_add_test(tc, rows_of_the_shared_dev_files);
    tcase_add_test(tc, bad_rows_name_line_and_field);
    tcase_add_test(tc, render_fields);
    tcase_add_test(tc, extract_and_methods);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
