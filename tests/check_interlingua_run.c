/* The interlingua's run on a generate task (interlingua_run.h) end to end:
 * the real MiniLM encoder, the pair's two readers as tiny random models of
 * the same families and chat templates (random mode: byte tokenizers, no
 * stop ids), SQuAD-shaped rows. Training steps log finite losses and move
 * the parameters, a saved checkpoint loads back bit for bit, and answering
 * gives each reader's greedy answer and a joint pick among the candidates. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer_data.h"
#include "answer_rig.h"
#include "chat_template.h"
#include "interlingua_run.h"
#include "lw_cli.h"
#include "manifest.h"
#include "task.h"

typedef struct {
    tl_answer_rig rig;
    lw_manifest *m;
    lw_il_session s;
} fixture;

static void open_all(fixture *f, bool session)
{
    tl_require_file(tl_model("minilm-l6-v2/model.safetensors"));
    tl_answer_rig_open(&f->rig, "pairs/minilm_to_smollm2-gemma3.json", "il_run", 5, 5);
    f->m = f->rig.m;
    ck_assert(f->m->has_interlingua);
    f->m->interlingua.latents = 4;
    f->m->interlingua.d_z = 16;
    f->m->interlingua.width = 16;
    f->m->interlingua.heads = 2;
    f->m->interlingua.depth = 1;
    f->m->interlingua.ffn_mult = 2;
    f->m->interlingua.adapter_ffn = 32;
    f->m->interlingua.max_encoder_tokens = 24;   /* the rows are longer: the cut is exercised */
    memset(&f->s, 0, sizeof f->s);
    if (session) ck_assert_msg(lw_il_session_open(&f->s, f->m, &f->rig.task, 16, 3) == LW_OK, "%s", lw_last_error());
}

static void close_all(fixture *f)
{
    lw_il_session_close(&f->s);
    tl_answer_rig_close(&f->rig);
}

START_TEST(features_keep_cls_the_last_tokens_and_sep)
{
    fixture f;
    open_all(&f, true);
    ck_assert_int_eq(lw_il_session_features(&f.s, f.rig.d.rows[0].prompt), LW_OK);
    ck_assert_int_eq(f.s.enc_tokens, 24);
    /* the features are the encoder's hidden states of [CLS] + the last 22 + [SEP] */
    int *ids, n;
    ck_assert_int_eq(lw_tokenizer_encode(f.s.enc_tok, f.rig.d.rows[0].prompt, strlen(f.rig.d.rows[0].prompt), true, &ids, &n),
                     LW_OK);
    ck_assert_int_gt(n, 24);
    memmove(ids + 1, ids + n - 23, 23 * sizeof(int));
    int H = f.s.enc->cfg.hidden;
    float *h = malloc((size_t)24 * H * sizeof(float));
    ck_assert_int_eq(lw_bert_forward(f.s.enc, ids, NULL, NULL, 24, h), LW_OK);
    for (int i = 0; i < 24 * H; i++) ck_assert_float_eq(h[i], f.s.feats[i]);
    free(h);
    free(ids);
    close_all(&f);
}
END_TEST

START_TEST(train_save_load_answer)
{
    fixture f;
    open_all(&f, true);
    lw_il_optim opt;
    ck_assert_int_eq(lw_il_optim_init(&opt, &f.s.il), LW_OK);
    float *before = malloc(f.s.il.readers[1].n_params * sizeof(float));
    memcpy(before, f.s.il.readers[1].params, f.s.il.readers[1].n_params * sizeof(float));
    const char *dir = tl_tmpdir("il_run_ckpt");
    char logp[600], ck[600];
    snprintf(logp, sizeof logp, "%s/log.jsonl", dir);
    snprintf(ck, sizeof ck, "%s/final", dir);
    FILE *log = fopen(logp, "w");
    ck_assert(log != NULL);
    lw_il_train_options o = {.steps = 3, .batch = 2, .warmup_steps = 1, .lr = 1e-2f, .grad_clip = 1.0f, .seed = 2,
                             .quiet = true};
    int skipped = -1;
    ck_assert_msg(lw_il_session_train(&f.s, &f.rig.d, &o, &opt, log, &skipped) == LW_OK, "%s", lw_last_error());
    fclose(log);
    ck_assert_int_eq(skipped, 0);
    char *text = tl_read_file(logp, NULL);
    int lines = 0;
    for (char *p = text; (p = strstr(p, "\"loss_receiver\": ")); p++) {
        double l = atof(p + strlen("\"loss_receiver\": "));
        ck_assert(isfinite(l) && l > 0);
        lines++;
    }
    ck_assert_int_eq(lines, 3);
    free(text);
    bool moved = false;
    for (size_t i = 0; i < f.s.il.readers[1].n_params; i++) moved |= before[i] != f.s.il.readers[1].params[i];
    ck_assert(moved);
    ck_assert_msg(lw_il_session_save(&f.s, ck, &opt, 3) == LW_OK, "%s", lw_last_error());

    /* a second session from another seed loads the same parameters */
    lw_il_session s2;
    ck_assert_int_eq(lw_il_session_open(&s2, f.m, &f.rig.task, 16, 99), LW_OK);
    ck_assert_msg(lw_il_session_load(&s2, ck) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(memcmp(s2.il.enc.params, f.s.il.enc.params, f.s.il.enc.n_params * sizeof(float)), 0);
    for (int r = 0; r < 2; r++)
        ck_assert_int_eq(memcmp(s2.il.readers[r].params, f.s.il.readers[r].params,
                                f.s.il.readers[r].n_params * sizeof(float)),
                         0);
    /* answering: both sessions agree, each reader's greedy answer is a candidate */
    lw_il_answer a, b;
    ck_assert_msg(lw_il_session_answer(&f.s, &f.rig.d.rows[1], 1, 2, &a) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_il_session_answer(&s2, &f.rig.d.rows[1], 1, 2, &b), LW_OK);
    ck_assert_str_eq(a.joint, b.joint);
    for (int r = 0; r < 2; r++) ck_assert_str_eq(a.alone[r], b.alone[r]);
    ck_assert_int_ge(a.n_candidates, 1);
    ck_assert_int_le(a.n_candidates, 4);
    ck_assert(a.enc_tokens == 24 && a.prompt_tokens[0] > 24 && a.prompt_tokens[1] > 24);
    lw_il_answer_free(&a);
    lw_il_answer_free(&b);
    /* a checkpoint of other shapes is refused */
    lw_il_session_close(&s2);
    f.m->interlingua.adapter_ffn = 16;
    ck_assert_int_eq(lw_il_session_open(&s2, f.m, &f.rig.task, 16, 99), LW_OK);
    ck_assert_int_eq(lw_il_session_load(&s2, ck), LW_ERR_INVALID);
    lw_il_session_close(&s2);
    lw_il_optim_free(&opt);
    free(before);
    close_all(&f);
}
END_TEST

/* With the soft field "context" each reader reads the task's prompt as text
 * with the soft tokens in place of the context: with byte tokens, exactly
 * the full text turn's bytes less the context's. A checkpoint records its
 * soft field, and loading it into a whole-prompt session is refused. */
START_TEST(soft_field_reads_the_rest_as_text)
{
    fixture f;
    open_all(&f, false);
    ck_assert_msg(lw_il_session_open_field(&f.s, f.m, &f.rig.task, 16, 3, "context") == LW_OK, "%s", lw_last_error());
    for (int i = 0; i < f.rig.d.n; i++)
        for (int r = 0; r < 2; r++) {
            int nb = -1, na = -1;
            bool fits = false;
            ck_assert_msg(lw_il_session_reader_prompt(&f.s, r, &f.rig.d.rows[i], &nb, &na, &fits) == LW_OK, "%s",
                          lw_last_error());
            ck_assert(fits);
            char *turn = NULL;
            ck_assert_int_eq(lw_chat_render(r ? f.m->receiver.chat_template : f.m->sender.chat_template, NULL,
                                            f.rig.d.rows[i].prompt, &turn),
                             LW_OK);
            const char *ctx = json_string_value(json_object_get(f.rig.d.rows[i].fields, "context"));
            ck_assert_int_eq(nb + na, (int)(strlen(turn) + strlen(f.rig.task.answer_prompt) - strlen(ctx)));
            ck_assert_int_lt(nb + na, (int)(strlen(turn) + strlen(f.rig.task.answer_prompt)));
            free(turn);
        }
    /* two steps with early stopping every step: a dev line each, best/ and final/ carry the field */
    lw_il_optim opt;
    ck_assert_int_eq(lw_il_optim_init(&opt, &f.s.il), LW_OK);
    const char *dir = tl_tmpdir("il_field");
    char devp[600], ck[600], best[600];
    snprintf(devp, sizeof devp, "%s/dev_log.jsonl", dir);
    snprintf(ck, sizeof ck, "%s/final", dir);
    snprintf(best, sizeof best, "%s/best", dir);
    FILE *dev_log = fopen(devp, "w");
    lw_il_train_result res;
    lw_il_train_options o = {.steps = 2, .batch = 2, .warmup_steps = 1, .lr = 1e-2f, .grad_clip = 1.0f, .seed = 2,
                             .quiet = true, .dev = &f.rig.d, .eval_every = 1, .dev_log = dev_log, .out_dir = dir,
                             .result = &res};
    int skipped = -1;
    ck_assert_msg(lw_il_session_train(&f.s, &f.rig.d, &o, &opt, NULL, &skipped) == LW_OK, "%s", lw_last_error());
    fclose(dev_log);
    ck_assert_int_eq(skipped, 0);
    ck_assert_int_eq(res.steps_done, 2);
    ck_assert(res.best_step >= 1 && res.best_step <= 2 && isfinite(res.best_dev_loss) && !res.stopped_early);
    char *text = tl_read_file(devp, NULL);
    ck_assert(strstr(text, "\"step\": 1,") && strstr(text, "\"step\": 2,") && strstr(text, "\"dev_loss\": "));
    free(text);
    double dl = 0;
    ck_assert_int_eq(lw_il_session_dev_loss(&f.s, &f.rig.d, &dl), LW_OK);
    ck_assert(isfinite(dl) && dl > 0);
    ck_assert_msg(lw_il_session_publish(&f.s, dir, "final", &opt, 2) == LW_OK, "%s", lw_last_error());
    char *field = NULL;
    ck_assert_int_eq(lw_il_checkpoint_soft_field(ck, &field), LW_OK);
    ck_assert_str_eq(field, "context");
    free(field);
    ck_assert_int_eq(lw_il_checkpoint_soft_field(best, &field), LW_OK);
    ck_assert_str_eq(field, "context");
    free(field);
    /* the same field loads and answers as the trained session; the whole prompt is refused */
    lw_il_session s2;
    ck_assert_int_eq(lw_il_session_open_field(&s2, f.m, &f.rig.task, 16, 99, "context"), LW_OK);
    ck_assert_msg(lw_il_session_load(&s2, ck) == LW_OK, "%s", lw_last_error());
    lw_il_answer a, b;
    ck_assert_msg(lw_il_session_answer(&f.s, &f.rig.d.rows[2], 2, 2, &a) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_il_session_answer(&s2, &f.rig.d.rows[2], 2, 2, &b), LW_OK);
    ck_assert_str_eq(a.joint, b.joint);
    for (int r = 0; r < 2; r++) ck_assert_str_eq(a.alone[r], b.alone[r]);
    lw_il_answer_free(&a);
    lw_il_answer_free(&b);
    lw_il_session_close(&s2);
    ck_assert_int_eq(lw_il_session_open(&s2, f.m, &f.rig.task, 16, 99), LW_OK);
    ck_assert_int_eq(lw_il_session_load(&s2, ck), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "stand for the field context") != NULL);
    lw_il_session_close(&s2);
    /* a whole-prompt checkpoint has no layout.json, and a field session refuses it */
    char whole[600];
    snprintf(whole, sizeof whole, "%s/whole", dir);
    ck_assert_int_eq(lw_il_session_open(&s2, f.m, &f.rig.task, 16, 99), LW_OK);
    ck_assert_int_eq(lw_il_session_save(&s2, whole, &opt, 0), LW_OK);
    lw_il_session_close(&s2);
    ck_assert_int_eq(lw_il_checkpoint_soft_field(whole, &field), LW_OK);
    ck_assert(field == NULL);
    ck_assert_int_eq(lw_il_session_load(&f.s, whole), LW_ERR_INVALID);
    lw_il_optim_free(&opt);
    /* a field the prompt does not hold as {field} */
    ck_assert_int_eq(lw_il_session_open_field(&s2, f.m, &f.rig.task, 16, 1, "title"), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "must appear once") != NULL);
    close_all(&f);
}
END_TEST

/* The input norm: each MiniLM feature's mean and std over all tokens of
 * the rows, as the bridge's input_norm; the resampler then reads the
 * standardised features (before it: the identity). */
START_TEST(input_norm_from_the_features)
{
    fixture f;
    open_all(&f, true);
    int F = f.s.enc->cfg.hidden;
    ck_assert_float_eq(f.s.il.enc.params[f.s.il.enc.in_mean + 7], 0.0f);
    ck_assert_float_eq(f.s.il.enc.params[f.s.il.enc.in_std + 7], 1.0f);
    double *sum = calloc((size_t)F * 2, sizeof(double)), *sq = sum + F;
    long tokens = 0;
    for (int i = 0; i < f.rig.d.n; i++) {
        ck_assert_int_eq(lw_il_session_features(&f.s, f.rig.d.rows[i].prompt), LW_OK);
        for (int t = 0; t < f.s.enc_tokens; t++)
            for (int c = 0; c < F; c++) {
                double v = f.s.feats[(size_t)t * F + c];
                sum[c] += v, sq[c] += v * v;
            }
        tokens += f.s.enc_tokens;
    }
    ck_assert_msg(lw_il_session_fit_norm(&f.s, &f.rig.d, 99) == LW_OK, "%s", lw_last_error());   /* 99: all 3 rows */
    double common = 0, all = 0;
    for (int c = 0; c < F; c++) {
        double mu = sum[c] / tokens, sd = sqrt(sq[c] / tokens - mu * mu);
        ck_assert_msg(fabs(f.s.il.enc.params[f.s.il.enc.in_mean + c] - mu) <= 1e-4 * (1 + fabs(mu)), "mean %d: %g vs %g", c,
                      (double)f.s.il.enc.params[f.s.il.enc.in_mean + c], mu);
        ck_assert_msg(fabs(f.s.il.enc.params[f.s.il.enc.in_std + c] - sd) <= 1e-3 * (1 + sd), "std %d: %g vs %g", c,
                      (double)f.s.il.enc.params[f.s.il.enc.in_std + c], sd);
        common += mu * mu, all += sq[c] / tokens;
    }
    /* the part every token shares (16% of the features' energy on these rows) is what the norm takes out */
    ck_assert(common > 0.05 * all && common < all);
    free(sum);
    /* training with norm_rows fits it first (from the first row only here) */
    lw_il_session s2;
    ck_assert_int_eq(lw_il_session_open(&s2, f.m, &f.rig.task, 16, 3), LW_OK);
    lw_il_optim opt;
    ck_assert_int_eq(lw_il_optim_init(&opt, &s2.il), LW_OK);
    lw_il_train_options o = {.steps = 1, .batch = 1, .lr = 1e-2f, .grad_clip = 1.0f, .seed = 2, .quiet = true,
                             .norm_rows = 1};
    int skipped;
    ck_assert_int_eq(lw_il_session_train(&s2, &f.rig.d, &o, &opt, NULL, &skipped), LW_OK);
    ck_assert(s2.il.enc.params[s2.il.enc.in_mean + 7] != 0.0f && s2.il.enc.params[s2.il.enc.in_std + 7] != 1.0f);
    lw_il_optim_free(&opt);
    lw_il_session_close(&s2);
    close_all(&f);
}
END_TEST

START_TEST(refusals)
{
    fixture f;
    open_all(&f, false);
    lw_il_session s;
    f.m->has_interlingua = false;
    ck_assert_int_eq(lw_il_session_open(&s, f.m, &f.rig.task, 8, 1), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "no \"interlingua\" block") != NULL);
    f.m->has_interlingua = true;
    lw_task boolq;
    ck_assert_int_eq(lw_task_load(tl_src("tasks/boolq.json"), &boolq), LW_OK);
    ck_assert_int_eq(lw_il_session_open(&s, f.m, &boolq, 8, 1), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "only generate tasks") != NULL);
    lw_task_free(&boolq);
    close_all(&f);
}
END_TEST

/* The commands: lw train on a generate task of a pair with the block runs
 * the interlingua (log, checkpoint, run.json), lw eval --method interlingua
 * reads the checkpoint back and writes its JSON; what does not apply is
 * refused with exit code 2. */
START_TEST(the_commands)
{
    fixture f;
    open_all(&f, false);
    lw_pair *pair = calloc(1, sizeof *pair);
    pair->manifest = *f.m;
    const char *dir = tl_tmpdir("il_cmd");
    char rows[600], out[600], ck[600], json[600], logp[600];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tl_write_file(rows, TL_SQUAD_ROWS);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(ck, sizeof ck, "%s/run/final", dir);
    snprintf(json, sizeof json, "%s/eval.json", dir);
    snprintf(logp, sizeof logp, "%s/run/train_log.jsonl", dir);
    char *train[] = {"--task", "squad", "--split", rows, "--out", out, "--steps", "2", "--batch", "2",
                     "--max-answer", "16", "--quiet"};
    char *err = NULL;
    int rc = tl_run_command(lw_cmd_train, pair, &err, 13, train);
    ck_assert_msg(rc == 0, "lw train: rc %d\n%s", rc, err);
    free(err);
    char *log = tl_read_file(logp, NULL);
    ck_assert(strstr(log, "\"step\": 2") != NULL && strstr(log, "\"step\": 3") == NULL);
    free(log);
    char *eval[] = {"--task", "squad", "--split", rows, "--method", "interlingua", "--checkpoint", ck,
                    "--max-answer", "16", "--limit", "2", "--json", json, "--quiet"};
    rc = tl_run_command(lw_cmd_eval, pair, &err, 15, eval);
    ck_assert_msg(rc == 0, "lw eval: rc %d\n%s", rc, err);
    free(err);
    char *j = tl_read_file(json, NULL);
    ck_assert(strstr(j, "\"joint\"") && strstr(j, "\"fp32_bytes\": 256") && strstr(j, "\"bf16_bytes\": 128"));
    free(j);
    /* the soft field, the narrow dtype and early stopping through the command */
    char out2[600], ck2[600], json2[600], devp[600], runp[600];
    snprintf(out2, sizeof out2, "%s/run2", dir);
    snprintf(ck2, sizeof ck2, "%s/run2/best", dir);
    snprintf(json2, sizeof json2, "%s/eval2.json", dir);
    snprintf(devp, sizeof devp, "%s/run2/dev_log.jsonl", dir);
    snprintf(runp, sizeof runp, "%s/run2/run.json", dir);
    char *train2[] = {"--task", "squad", "--split", rows, "--out", out2, "--steps", "2", "--batch", "2",
                      "--max-answer", "16", "--quiet", "--soft-field", "context", "--dtype", "bf16", "--dev", rows,
                      "--dev-slice", "2", "--eval-every", "1", "--first-token-weight", "0.5", "--spread", "0.25"};
    rc = tl_run_command(lw_cmd_train, pair, &err, 27, train2);
    ck_assert_msg(rc == 0, "lw train: rc %d\n%s", rc, err);
    free(err);
    char *rj = tl_read_file(runp, NULL);
    ck_assert(strstr(rj, "\"soft_field\": \"context\"") && strstr(rj, "\"dtype\": \"bf16\"") &&
              strstr(rj, "\"first_token_weight\": 0.5") && strstr(rj, "\"early_stopping\": {\"step\": ") &&
              strstr(rj, "\"spread_weight\": 0.25"));
    free(rj);
    char *dl = tl_read_file(devp, NULL);
    ck_assert(strstr(dl, "\"step\": 1,") && strstr(dl, "\"step\": 2,"));
    /* the dev rows' latents: their spread in (0, 1] and their consecutive cosine below 1 (two rows that differ) */
    const char *sp = strstr(dl, "\"msg_spread\": "), *mc = strstr(dl, "\"msg_cos\": ");
    ck_assert(sp && mc);
    double spv = atof(sp + strlen("\"msg_spread\": ")), mcv = atof(mc + strlen("\"msg_cos\": "));
    ck_assert_msg(spv > 0.0 && spv <= 1.0 && mcv >= -1.0 && mcv < 0.999999, "spread %g, cosine %g", spv, mcv);
    free(dl);
    char *eval2[] = {"--task", "squad", "--split", rows, "--method", "interlingua", "--checkpoint", ck2,
                     "--max-answer", "16", "--limit", "2", "--json", json2, "--quiet", "--dtype", "bf16"};
    rc = tl_run_command(lw_cmd_eval, pair, &err, 17, eval2);
    ck_assert_msg(rc == 0, "lw eval: rc %d\n%s", rc, err);
    free(err);
    j = tl_read_file(json2, NULL);
    ck_assert(strstr(j, "\"soft_field\": \"context\"") && strstr(j, "\"dtype\": \"bf16\""));
    /* two rows: one cosine between their latents, in [-1, 1] and not 1 (the rows differ) */
    const char *cz = strstr(j, "\"latent_cosine_consecutive_rows\": ");
    ck_assert(cz != NULL);
    double cosz = atof(cz + strlen("\"latent_cosine_consecutive_rows\": "));
    ck_assert(cosz >= -1.0 && cosz < 0.999999);
    free(j);
    char *half[] = {"--task", "squad", "--split", rows, "--out", out2, "--eval-every", "2"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, half), 2);
    ck_assert(strstr(err, "--eval-every and --dev go together") != NULL);
    free(err);
    char *neg[] = {"--task", "squad", "--split", rows, "--out", out2, "--spread", "-1"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, neg), 2);
    ck_assert(strstr(err, "--spread -1: expected 0..100") != NULL);
    free(err);
    char *on_eval[] = {"--task", "squad", "--split", rows, "--method", "interlingua", "--checkpoint", ck2,
                       "--spread", "1"};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 10, on_eval), 2);   /* a training term */
    ck_assert(strstr(err, "option '--spread' does not apply") != NULL);
    free(err);
    char *stray[] = {"--task", "squad", "--split", rows, "--out", out, "--k", "3"};
    ck_assert_int_eq(tl_run_command(lw_cmd_train, pair, &err, 8, stray), 2);
    ck_assert(strstr(err, "option '--k' does not apply") != NULL);
    free(err);
    char *no_ck[] = {"--task", "squad", "--split", rows, "--method", "interlingua"};
    ck_assert_int_eq(tl_run_command(lw_cmd_eval, pair, &err, 6, no_ck), 2);
    ck_assert(strstr(err, "--checkpoint") != NULL);
    free(err);
    free(pair);
    close_all(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("interlingua_run");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, features_keep_cls_the_last_tokens_and_sep);
    tcase_add_test(tc, train_save_load_answer);
    tcase_add_test(tc, soft_field_reads_the_rest_as_text);
    tcase_add_test(tc, input_norm_from_the_features);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, the_commands);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
