/* The pair's bridge on a generate task (bridge_answer_run.h) end to end: the
 * default pair's sender and receiver as tiny random models of their
 * families and chat templates (random mode: byte tokenizers, no stop ids),
 * a small perceiver, SQuAD-shaped rows. Training lowers the answer loss,
 * a checkpoint loads back bit for bit and answers the same, and the
 * commands (lw train on a generate task, lw eval --method bridge, the token
 * budget) run, write what they say, and refuse bad input clearly. */
#include "testlib.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "answer_data.h"
#include "answer_rig.h"
#include "bridge_answer_run.h"
#include "lw_cli.h"
#include "manifest.h"
#include "task.h"

typedef tl_answer_rig fixture;

static void open_all(fixture *f, const char *name)
{
    tl_answer_rig_open(f, "pairs/smollm2-135m_to_gemma3-270m.json", name, 5, 6);
    ck_assert(!f->m->has_interlingua);
    f->m->bridge.soft_tokens = 4;
    f->m->bridge.source_layer = 2;
    f->m->bridge.width = 16;
    f->m->bridge.heads = 2;
    f->m->bridge.depth = 1;
    f->m->bridge.ffn_mult = 2;
}

static void close_all(fixture *f) { tl_answer_rig_close(f); }

static double mean_loss(lw_ba_session *s, const lw_answer_data *d)
{
    double sum = 0;
    for (int i = 0; i < d->n; i++) {
        float l;
        bool fits;
        ck_assert_msg(lw_ba_session_loss(s, &d->rows[i], &l, &fits) == LW_OK, "%s", lw_last_error());
        ck_assert(fits && isfinite(l) && l > 0);
        sum += l;
    }
    return sum / d->n;
}

/* Training on three rows lowers their answer loss; the checkpoint loads
 * back bit for bit into a session of another seed, which answers the same. */
START_TEST(train_lowers_the_loss_and_the_checkpoint_loads_back)
{
    fixture f;
    open_all(&f, "ba_run");
    lw_ba_session s, s2;
    ck_assert_msg(lw_ba_session_open(&s, f.m, &f.task, 4, 16, 0.5f, true, 3) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_ba_session_fit_norm(&s, &f.d), LW_OK);
    double before = mean_loss(&s, &f.d);
    const char *out = tl_tmpdir("ba_run_out");
    lw_ba_train_options o = {.steps = 120, .batch = 3, .warmup_steps = 2, .lr = 2e-2f, .grad_clip = 1.0f, .seed = 2,
                             .quiet = true};
    lw_ba_train_result r;
    ck_assert_msg(lw_ba_session_train(&s, &f.d, &o, out, &r) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(r.steps_done, 120);
    ck_assert_int_eq(r.skipped, 0);
    double after = mean_loss(&s, &f.d);
    /* the tiny random receiver reads the soft tokens mostly through its one
     * global layer: the loss falls slowly (19.6 -> 15.7 here), steadily */
    ck_assert_msg(after < 0.85 * before, "answer loss %.4f -> %.4f: fell by less than 15%%", before, after);
    char path[700];
    snprintf(path, sizeof path, "%s/train_log.jsonl", out);
    char *log = tl_read_file(path, NULL);
    ck_assert(strstr(log, "\"step\": 120") != NULL || strstr(log, "\"step\":120") != NULL);
    free(log);

    snprintf(path, sizeof path, "%s/final", out);
    ck_assert_int_eq(lw_ba_session_open(&s2, f.m, &f.task, 4, 16, 0.5f, false, 99), LW_OK);
    ck_assert_msg(lw_ba_session_load(&s2, path) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(memcmp(s2.bridge.params, s.bridge.params, s.bridge.n_params * sizeof(float)), 0);
    for (int i = 0; i < f.d.n; i++) {
        char *a = NULL, *b = NULL;
        int P1, P2, g1, g2;
        ck_assert_msg(lw_ba_session_answer(&s, &f.d.rows[i], i, &a, &P1, &g1) == LW_OK, "%s", lw_last_error());
        ck_assert_int_eq(lw_ba_session_answer(&s2, &f.d.rows[i], i, &b, &P2, &g2), LW_OK);
        ck_assert_str_eq(a, b);
        ck_assert_int_eq(P1, lw_receiver_prefix_len(&s.layout));
        ck_assert(g1 == g2 && g1 >= 0 && g1 <= f.task.max_new_tokens);
        free(a);
        free(b);
    }
    lw_ba_session_close(&s2);
    /* a bridge of other shapes does not load */
    ck_assert_int_eq(lw_ba_session_open(&s2, f.m, &f.task, 5, 16, 0.5f, false, 99), LW_OK);
    ck_assert_int_ne(lw_ba_session_load(&s2, path), LW_OK);
    lw_ba_session_close(&s2);
    lw_ba_session_close(&s);
    close_all(&f);
}
END_TEST

START_TEST(refusals)
{
    fixture f;
    open_all(&f, "ba_refuse");
    lw_ba_session s;
    lw_task boolq;
    ck_assert_int_eq(lw_task_load(tl_src("tasks/boolq.json"), &boolq), LW_OK);
    ck_assert_int_eq(lw_ba_session_open(&s, f.m, &boolq, 4, 16, 1.0f, true, 1), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "only generate tasks") != NULL);
    lw_task_free(&boolq);
    /* an answer longer than max_answer is skipped, and a set where none fits is refused */
    ck_assert_int_eq(lw_ba_session_open(&s, f.m, &f.task, 4, 2, 1.0f, true, 1), LW_OK);
    lw_ba_train_options o = {.steps = 1, .batch = 1, .lr = 1e-3f, .grad_clip = 1.0f, .seed = 1, .quiet = true};
    lw_ba_train_result r;
    ck_assert_int_eq(lw_ba_session_train(&s, &f.d, &o, NULL, &r), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "--max-answer") != NULL);
    lw_ba_session_close(&s);
    close_all(&f);
}
END_TEST

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    ck_assert_msg(j != NULL, "%s: %s", path, e.text);
    return j;
}

/* lw train on a generate task trains the bridge on answers (log, final/,
 * run.json; early stopping's dev_log and best/), lw eval --method bridge
 * reads it back and writes EM/F1 with intervals and every row's answer; the
 * token budget cuts the context to its first N tokens; bad input exits
 * non-zero with a message naming it. */
START_TEST(the_commands)
{
    fixture f;
    open_all(&f, "ba_cmd");
    lw_pair *pair = calloc(1, sizeof *pair);
    pair->manifest = *f.m;
    const char *dir = tl_tmpdir("ba_cmd_run");
    char out[600], ck[600], json[600], path[700];
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(ck, sizeof ck, "%s/run/final", dir);
    snprintf(json, sizeof json, "%s/eval.json", dir);
    char *train[] = {"--task", "squad", "--split", f.rows, "--out", out, "--steps", "4", "--batch", "2",
                     "--max-answer", "16", "--soft-tokens", "4", "--eval-every", "2", "--dev", f.rows,
                     "--dev-slice", "2", "--quiet", "--spread", "0.5"};
    char *err = NULL;
    int rc = tl_run_command(lw_cmd_train, pair, &err, 23, train);
    ck_assert_msg(rc == 0, "lw train: rc %d\n%s", rc, err);
    free(err);
    snprintf(path, sizeof path, "%s/train_log.jsonl", out);
    char *log = tl_read_file(path, NULL);
    ck_assert(strstr(log, "\"step\": 4") != NULL && strstr(log, "\"step\": 5") == NULL);
    free(log);
    snprintf(path, sizeof path, "%s/dev_log.jsonl", out);
    log = tl_read_file(path, NULL);
    ck_assert(strstr(log, "\"step\": 2") != NULL && strstr(log, "\"step\": 4") != NULL);
    free(log);
    struct stat sb;
    snprintf(path, sizeof path, "%s/best/bridge.safetensors", out);
    ck_assert_int_eq(stat(path, &sb), 0);
    snprintf(path, sizeof path, "%s/run.json", out);
    json_t *run = load_json(path);
    ck_assert_str_eq(json_string_value(json_object_get(run, "objective")), "answer");
    ck_assert_int_eq(json_integer_value(json_object_get(run, "soft_tokens")), 4);
    ck_assert_double_eq(json_real_value(json_object_get(run, "spread_weight")), 0.5);
    json_decref(run);
    char *neg[] = {"--task", "squad", "--split", f.rows, "--out", out, "--spread", "-0.5"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, neg), 2);
    ck_assert_msg(err && strstr(err, "--spread -0.5: expected a number in [0, 100]"), "%s", err);
    free(err);


    char *eval[] = {"--task", "squad", "--split", f.rows, "--method", "bridge", "--checkpoint", ck,
                    "--max-answer", "16", "--json", json, "--quiet"};
    rc = tl_run_command(lw_cmd_eval, pair, &err, 13, eval);
    ck_assert_msg(rc == 0, "lw eval: rc %d\n%s", rc, err);
    free(err);
    json_t *j = load_json(json);
    ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "bridge");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "soft_tokens")), 4);
    double f1 = json_real_value(json_object_get(j, "f1"));
    json_t *ci = json_object_get(j, "f1_ci95");
    ck_assert(f1 >= 0 && f1 <= 1 && json_array_size(ci) == 2);
    ck_assert(json_real_value(json_array_get(ci, 0)) <= f1 && f1 <= json_real_value(json_array_get(ci, 1)));
    ck_assert_int_eq(json_array_size(json_object_get(j, "rows")), 3);
    /* the row's F1 is the metric of its answer against its gold */
    double sum = 0;
    for (size_t i = 0; i < 3; i++) sum += json_real_value(json_object_get(json_array_get(json_object_get(j, "rows"), i), "f1"));
    ck_assert_double_eq_tol(sum / 3, f1, 1e-12);
    json_decref(j);

    /* the token budget: with byte tokens, the context cut to its first 5
     * bytes shortens the prompt by exactly what was cut */
    char tjson[700], bjson[700];
    snprintf(tjson, sizeof tjson, "%s/text.json", dir);
    snprintf(bjson, sizeof bjson, "%s/budget.json", dir);
    char *text[] = {"--task", "squad", "--split", f.rows, "--method", "receiver-text", "--json", tjson, "--quiet"};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 9, text), 0);
    free(err);
    char *budget[] = {"--task", "squad", "--split", f.rows, "--method", "token-budget", "--budget", "5",
                      "--json", bjson, "--quiet"};
    rc = tl_run_command(lw_cmd_eval, pair, &err, 11, budget);
    ck_assert_msg(rc == 0, "token budget: rc %d\n%s", rc, err);
    free(err);
    json_t *jt = load_json(tjson), *jb = load_json(bjson);
    ck_assert_int_eq(json_integer_value(json_object_get(jb, "budget")), 5);
    ck_assert_str_eq(json_string_value(json_object_get(jb, "budget_field")), "context");
    double field = json_real_value(json_object_get(jb, "mean_field_tokens_before_cut"));
    double contexts = 0;
    for (int i = 0; i < f.d.n; i++) contexts += strlen(json_string_value(json_object_get(f.d.rows[i].fields, "context")));
    ck_assert_double_eq_tol(field, contexts / 3, 1e-9);
    double pt = json_real_value(json_object_get(jt, "mean_prompt_tokens"));
    double pb = json_real_value(json_object_get(jb, "mean_prompt_tokens"));
    ck_assert_double_eq_tol(pt - pb, field - 5, 1e-9);
    json_decref(jt);
    json_decref(jb);
    /* the sender's budget defaults to the bridge's M */
    char *sbudget[] = {"--task", "squad", "--split", f.rows, "--method", "sender-token-budget", "--json", bjson,
                       "--limit", "1", "--quiet"};
    rc = tl_run_command(lw_cmd_eval, pair, &err, 11, sbudget);
    ck_assert_msg(rc == 0, "sender token budget: rc %d\n%s", rc, err);
    free(err);
    jb = load_json(bjson);
    ck_assert_int_eq(json_integer_value(json_object_get(jb, "budget")), 4);
    ck_assert_str_eq(json_string_value(json_object_get(jb, "reader")), "sender");
    json_decref(jb);

    /* bad input */
    char *stray[] = {"--task", "squad", "--split", f.rows, "--out", out, "--k", "3"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, stray), 2);
    ck_assert(strstr(err, "option '--k' does not apply") != NULL);
    free(err);
    char *exists[] = {"--task", "squad", "--split", f.rows, "--out", out, "--steps", "1", "--quiet"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 9, exists), 1);
    ck_assert_msg(strstr(err, out) != NULL, "%s", err);
    free(err);
    char *no_ck[] = {"--task", "squad", "--split", f.rows, "--method", "bridge"};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 6, no_ck), 2);
    ck_assert(strstr(err, "--checkpoint") != NULL);
    free(err);
    char *half_es[] = {"--task", "squad", "--split", f.rows, "--out", out, "--eval-every", "2"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, half_es), 2);
    ck_assert(strstr(err, "--dev") != NULL);
    free(err);
    char *missing[] = {"--task", "squad", "--split", "/nonexistent/rows.jsonl", "--method", "bridge", "--checkpoint",
                       ck};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 8, missing), 1);
    ck_assert(strstr(err, "/nonexistent/rows.jsonl") != NULL);
    free(err);
    char *budget_wrong[] = {"--task", "squad", "--split", f.rows, "--method", "receiver-text", "--budget", "4"};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 8, budget_wrong), 2);
    ck_assert(strstr(err, "--budget applies to") != NULL);
    free(err);
    char *boolq[] = {"--task", "boolq", "--train", f.rows, "--out", out, "--force"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 7, boolq), 1);
    ck_assert_msg(strstr(err, "generate tasks only") != NULL, "%s", err);
    free(err);
    free(pair);
    close_all(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bridge_answer_run");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_lowers_the_loss_and_the_checkpoint_loads_back);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, the_commands);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
