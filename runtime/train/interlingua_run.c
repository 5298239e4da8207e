/* The interlingua on a generate task: loading, training, saving, answering. */
#include "interlingua_run.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer_loop.h"
#include "answer_metrics.h"
#include "chat_template.h"
#include "checkpoint.h"
#include "clock.h"
#include "fileutil.h"
#include "joint_rescore.h"
#include "message_spread.h"
#include "random_weights.h"
#include "run_dir.h"
#include "safetensors_write.h"

static const char *const ROLE[LW_IL_READERS] = {"sender", "receiver"};

static const lw_model_config *reader_cfg(const lw_manifest *m, int r) { return r ? &m->receiver : &m->sender; }

lw_status lw_il_session_open(lw_il_session *s, const lw_manifest *man, const lw_task *task, int max_answer,
                             uint64_t seed)
{
    return lw_il_session_open_field(s, man, task, max_answer, seed, NULL);
}

/* The task's prompt split around "{field}" (once, and only there). */
static lw_status split_template(lw_il_session *s, const char *field)
{
    char key[128];
    int k = snprintf(key, sizeof key, "{%s}", field);
    const char *tpl = s->task->prompt, *at = strstr(tpl, key);
    if (k <= 2 || k >= (int)sizeof key || !at || strstr(at + k, key))
        return lw_fail(LW_ERR_INVALID, "interlingua: the soft field \"%s\" must appear once in %s's prompt as %s",
                       field, s->task->name, key);
    s->tpl_before = strndup(tpl, (size_t)(at - tpl));
    s->tpl_after = strdup(at + k);
    if (!s->tpl_before || !s->tpl_after) return lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    s->soft_field = field;
    return LW_OK;
}

lw_status lw_il_session_open_field(lw_il_session *s, const lw_manifest *man, const lw_task *task, int max_answer,
                                   uint64_t seed, const char *soft_field)
{
    memset(s, 0, sizeof *s);
    s->man = man;
    s->task = task;
    s->max_answer = max_answer;
    if (!man->has_interlingua)
        return lw_fail(LW_ERR_INVALID, "interlingua: the pair %s has no \"interlingua\" block in its manifest", man->name);
    if (task->kind != LW_TASK_GENERATE)
        return lw_fail(LW_ERR_INVALID, "interlingua: %s is a %s task; only generate tasks are built", task->name,
                       lw_task_kind_name(task->kind));
    if (soft_field) {
        lw_status fs = split_template(s, soft_field);
        if (fs) {
            lw_il_session_close(s);
            return fs;
        }
    }
    const lw_interlingua_manifest *im = &man->interlingua;
    char tok_path[LW_PATH_MAX + 32];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", im->encoder);
    lw_status st = lw_tokenizer_load(LW_TOKENIZER_WORDPIECE_JSON, tok_path, &s->enc_tok);
    if (!st) st = lw_bert_open(im->encoder, &s->enc);
    if (st) {
        lw_il_session_close(s);
        return lw_fail_wrap(st, "interlingua: encoder %s", im->encoder);
    }
    int M = im->latents;
    for (int r = 0; !st && r < LW_IL_READERS; r++) {
        const lw_model_config *c = reader_cfg(man, r);
        st = lw_config_load_tokenizer(c, &s->toks[r]);
        if (!st) st = lw_config_load_model(c, &s->models[r]);
        /* the loaded model's stop ids: random mode and LWC_IGNORE_STOP leave
         * none, and then answers carry no stop id and run to max_new */
        const lw_model_config *lc = st ? c : &s->models[r]->cfg;
        for (int i = 0; !st && i < lc->n_stop_ids && i < LW_MAX_SPECIAL; i++) s->stop[r][s->n_stop[r]++] = lc->stop_ids[i];
        if (!st && lc->eos_id >= 0) s->stop[r][s->n_stop[r]++] = lc->eos_id;
        if (!st) st = lw_receiver_layout_build(task, c->chat_template, s->toks[r], M, c->vocab, &s->layouts[r]);
        if (st) st = lw_fail_wrap(st, "interlingua: %s %s", ROLE[r], c->name);
    }
    if (!st && !(s->feats = malloc((size_t)im->max_encoder_tokens * s->enc->cfg.hidden * sizeof(float))))
        st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory for the encoder features");
    if (!st) {
        lw_interlingua_config c = {.feat_dim = s->enc->cfg.hidden, .d_z = im->d_z, .adapter_ffn = im->adapter_ffn,
                                   .max_T = im->max_encoder_tokens, .n_readers = LW_IL_READERS};
        c.resampler = (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = M, .source_layer = 1,
                                         .width = im->width, .depth = im->depth, .heads = im->heads,
                                         .ffn_mult = im->ffn_mult, .calibration = LW_CALIB_NONE};
        for (int r = 0; r < LW_IL_READERS; r++) {
            c.reader_hidden[r] = s->models[r]->cfg.hidden;
            c.reader_embed_rms[r] = s->models[r]->cfg.embed_rms > 0 ? s->models[r]->cfg.embed_rms : 1.0f;
        }
        st = lw_interlingua_create(&s->il, &c);
        s->open_il = !st;
    }
    if (!st) {
        lw_interlingua_init(&s->il, seed);
        int max_T = 0, max_prefix = 0, min_ctx = 1 << 30;
        for (int r = 0; r < LW_IL_READERS; r++) {
            int P = lw_receiver_prefix_len(&s->layouts[r]);
            if (P > max_prefix) max_prefix = P;
            if (s->models[r]->cfg.context < min_ctx) min_ctx = s->models[r]->cfg.context;
        }
        if (s->soft_field) {   /* the prompt rows, the answer's, and the generation's after them */
            s->field_room = min_ctx - 2 * max_answer - max_prefix;
            if (s->field_room > LW_IL_FIELD_TEXT_MAX) s->field_room = LW_IL_FIELD_TEXT_MAX;
            if (s->field_room < 1)
                st = lw_fail(LW_ERR_INVALID, "interlingua: no room for the text around the soft field in %d positions",
                             min_ctx);
        }
        max_T = max_prefix + max_answer + s->field_room;
        if (!st) st = lw_il_trainer_create(&s->tr, &s->il, (const lw_model *const *)s->models, max_T, max_answer,
                                           im->first_token_weight);
        s->open_tr = !st;
    }
    if (st) lw_il_session_close(s);
    return st;
}

void lw_il_session_close(lw_il_session *s)
{
    if (s->open_tr) lw_il_trainer_free(&s->tr);
    if (s->open_il) lw_interlingua_free(&s->il);
    for (int r = 0; r < LW_IL_READERS; r++) {
        lw_model_free(s->models[r]);
        lw_tokenizer_free(s->toks[r]);
        if (s->layouts[r].before || s->layouts[r].after) lw_receiver_layout_free(&s->layouts[r]);
    }
    lw_bert_free(s->enc);
    lw_tokenizer_free(s->enc_tok);
    free(s->feats);
    free(s->tpl_before);
    free(s->tpl_after);
    memset(s, 0, sizeof *s);
}

lw_status lw_il_session_features(lw_il_session *s, const char *text)
{
    int *ids = NULL, n = 0, keep = s->man->interlingua.max_encoder_tokens;
    lw_status st = lw_tokenizer_encode(s->enc_tok, text, strlen(text), true, &ids, &n);
    if (st) return lw_fail_wrap(st, "interlingua: encoder tokens");
    if (n > keep) {   /* [CLS], the last keep - 2 tokens, [SEP] */
        memmove(ids + 1, ids + n - 1 - (keep - 2), (size_t)(keep - 1) * sizeof(int));
        n = keep;
    }
    st = lw_bert_forward(s->enc, ids, NULL, NULL, n, s->feats);
    free(ids);
    s->enc_tokens = n;
    return st ? lw_fail_wrap(st, "interlingua: encoder") : LW_OK;
}

lw_status lw_il_session_answer_ids(const lw_il_session *s, int r, const char *text, int **ids, int *L)
{
    size_t n = strlen(text);
    char *t = malloc(n + 2);
    if (!t) return lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    t[0] = ' ';
    memcpy(t + 1, text, n + 1);
    int *x = NULL, m = 0;
    lw_status st = lw_tokenizer_encode(s->toks[r], t, n + 1, false, &x, &m);
    free(t);
    if (st) return lw_fail_wrap(st, "interlingua: the %s's answer tokens", ROLE[r]);
    int *y = realloc(x, (size_t)(m + 1) * sizeof(int));
    if (!y) {
        free(x);
        return lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    }
    if (s->n_stop[r] > 0) y[m++] = s->stop[r][0];
    if (m == 0) {
        free(y);
        return lw_fail(LW_ERR_INVALID, "interlingua: an empty answer and no stop id for the %s", ROLE[r]);
    }
    for (int i = 0; i < m; i++)
        if (y[i] < 0 || y[i] >= s->models[r]->cfg.vocab) {
            int bad = y[i];
            free(y);
            return lw_fail(LW_ERR_INVALID, "interlingua: the %s's tokenizer gave id %d outside its vocab", ROLE[r], bad);
        }
    *ids = y;
    *L = m;
    return LW_OK;
}

/* What reader r reads around its soft tokens for one row: the layout's
 * template pieces, or with a soft field the row's prompt around it (owned). */
typedef struct {
    int *before, *after;
    int n_before, n_after;
    bool owned;
} il_prompt;

static void il_prompt_free(il_prompt *p)
{
    if (p->owned) {
        free(p->before);
        free(p->after);
    }
    memset(p, 0, sizeof *p);
}

static lw_status encode_text(const lw_il_session *s, int r, const char *text, int **ids, int *n)
{
    lw_status st = lw_tokenizer_encode(s->toks[r], text, strlen(text), false, ids, n);
    for (int i = 0; !st && i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= s->models[r]->cfg.vocab)
            st = lw_fail(LW_ERR_INVALID, "interlingua: the %s's tokenizer gave id %d outside its vocab", ROLE[r],
                         (*ids)[i]);
    if (st) {
        free(*ids);
        *ids = NULL;
    }
    return st;
}

/* *fits false when the text around the soft field is longer than
 * LW_IL_FIELD_TEXT_MAX tokens more than the layout's. */
static lw_status row_prompt(const lw_il_session *s, int r, const lw_answer_row *row, il_prompt *p, bool *fits)
{
    const lw_receiver_layout *Ly = &s->layouts[r];
    memset(p, 0, sizeof *p);
    *fits = true;
    if (!s->soft_field) {
        *p = (il_prompt){.before = Ly->before, .after = Ly->after, .n_before = Ly->n_before, .n_after = Ly->n_after};
        return LW_OK;
    }
    p->owned = true;
    char *ub = NULL, *ua = NULL, *before = NULL, *after = NULL, *tail = NULL;
    lw_status st = lw_answer_render(s->tpl_before, row->fields, "interlingua row", &ub);
    if (!st) st = lw_answer_render(s->tpl_after, row->fields, "interlingua row", &ua);
    if (!st) st = lw_chat_render_split(reader_cfg(s->man, r)->chat_template, NULL, ub, ua, &before, &after);
    if (!st) {
        size_t na = strlen(after), np = strlen(s->task->answer_prompt);
        if (!(tail = malloc(na + np + 1))) st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
        else {
            memcpy(tail, after, na);
            memcpy(tail + na, s->task->answer_prompt, np + 1);
        }
    }
    if (!st) st = encode_text(s, r, before, &p->before, &p->n_before);
    if (!st) st = encode_text(s, r, tail, &p->after, &p->n_after);
    if (!st && p->n_before + p->n_after > Ly->n_before + Ly->n_after + s->field_room) *fits = false;
    free(ub);
    free(ua);
    free(before);
    free(after);
    free(tail);
    if (st) il_prompt_free(p);
    return st ? lw_fail_wrap(st, "interlingua: the %s's prompt around the soft tokens", ROLE[r]) : LW_OK;
}

lw_status lw_il_session_reader_prompt(const lw_il_session *s, int r, const lw_answer_row *row, int *n_before,
                                      int *n_after, bool *fits)
{
    il_prompt p;
    lw_status st = row_prompt(s, r, row, &p, fits);
    if (!st) *n_before = p.n_before, *n_after = p.n_after;
    il_prompt_free(&p);
    return st;
}

static lw_il_rows prompt_rows(const il_prompt *p, const int *answer, int L)
{
    return (lw_il_rows){.before = p->before, .n_before = p->n_before, .after = p->after, .n_after = p->n_after,
                        .answer = answer, .L = L};
}

/* One row's features, both readers' prompts and targets; *fits false when
 * an answer is longer than max_answer or a prompt does not fit. */
static lw_status example(lw_il_session *s, const lw_answer_row *row, int *ids[LW_IL_READERS], int L[LW_IL_READERS],
                         il_prompt pr[LW_IL_READERS], bool *fits)
{
    *fits = true;
    lw_status st = LW_OK;
    for (int r = 0; !st && r < LW_IL_READERS; r++) {
        bool ok = true;
        st = lw_il_session_answer_ids(s, r, row->golds[0], &ids[r], &L[r]);
        if (!st && L[r] > s->max_answer) *fits = false;
        if (!st) st = row_prompt(s, r, row, &pr[r], &ok);
        if (!ok) *fits = false;
    }
    if (!st && *fits) st = lw_il_session_features(s, row->prompt);
    return st;
}

lw_status lw_il_session_dev_loss(lw_il_session *s, const lw_answer_data *d, double *mean)
{
    double sum = 0, cos_sum = 0;
    int used = 0;
    size_t nz = (size_t)lw_interlingua_M(&s->il) * s->il.enc.receiver_hidden;
    lw_msg_spread sp;
    lw_status st = lw_msg_spread_init(&sp, nz);
    float *prev = st ? NULL : malloc(nz * sizeof *prev);
    if (!st && !prev) st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    for (int i = 0; !st && i < d->n; i++) {
        int *ids[LW_IL_READERS] = {NULL, NULL}, L[LW_IL_READERS] = {0, 0};
        il_prompt pr[LW_IL_READERS] = {{0}};
        bool fits;
        st = example(s, &d->rows[i], ids, L, pr, &fits);
        if (!st && fits) {
            lw_il_rows rows[LW_IL_READERS];
            float total;
            for (int r = 0; r < LW_IL_READERS; r++) rows[r] = prompt_rows(&pr[r], ids[r], L[r]);
            st = lw_il_trainer_loss(&s->tr, s->feats, s->enc_tokens, rows, &total);
            sum += total, used++;
            if (!st) {   /* the row's latents: how much they differ from row to row */
                const float *z = s->il.z;
                if (sp.n > 0) {
                    double dot = 0, n0 = 0, n1 = 0;
                    for (size_t q = 0; q < nz; q++)
                        dot += (double)z[q] * prev[q], n0 += (double)z[q] * z[q], n1 += (double)prev[q] * prev[q];
                    cos_sum += n0 > 0 && n1 > 0 ? dot / sqrt(n0 * n1) : 0.0;
                }
                lw_msg_spread_add(&sp, z);
                memcpy(prev, z, nz * sizeof *prev);
            }
        }
        for (int r = 0; r < LW_IL_READERS; r++) {
            free(ids[r]);
            il_prompt_free(&pr[r]);
        }
        if (st) st = lw_fail_wrap(st, "dev row %d", i);
    }
    if (!st && !used) st = lw_fail(LW_ERR_INVALID, "interlingua: no dev row fits (--max-answer %d)", s->max_answer);
    if (!st) {
        *mean = sum / used;
        s->dev_spread = lw_msg_spread_value(&sp);
        s->dev_cos = sp.n > 1 ? cos_sum / (sp.n - 1) : NAN;
    }
    lw_msg_spread_free(&sp);
    free(prev);
    return st;
}

lw_status lw_il_session_fit_norm(lw_il_session *s, const lw_answer_data *d, int n)
{
    int F = s->enc->cfg.hidden;
    if (n > d->n) n = d->n;
    double *sum = calloc((size_t)F * 2, sizeof *sum), *sq = sum ? sum + F : NULL;
    float *mean = malloc((size_t)F * 2 * sizeof *mean), *std = mean ? mean + F : NULL;
    long tokens = 0;
    lw_status st = sum && mean ? LW_OK : lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    for (int i = 0; !st && i < n; i++) {
        if ((st = lw_il_session_features(s, d->rows[i].prompt))) break;
        for (int t = 0; t < s->enc_tokens; t++)
            for (int c = 0; c < F; c++) {
                double v = s->feats[(size_t)t * F + c];
                sum[c] += v, sq[c] += v * v;
            }
        tokens += s->enc_tokens;
    }
    if (!st && tokens < 2) st = lw_fail(LW_ERR_INVALID, "interlingua: no encoder features to standardise with");
    for (int c = 0; !st && c < F; c++) {
        double mu = sum[c] / (double)tokens, var = sq[c] / (double)tokens - mu * mu;
        mean[c] = (float)mu;
        std[c] = (float)sqrt(var > 0 ? var : 0);
    }
    if (!st) lw_bridge_set_input_norm(&s->il.enc, mean, std);
    free(sum);
    free(mean);
    return st ? lw_fail_wrap(st, "interlingua: fitting the input norm") : LW_OK;
}

typedef struct {
    lw_il_session *s;
    const lw_answer_data *d;
    const lw_il_train_options *o;
    lw_il_optim *opt;
    FILE *log;
} il_loop;

static void il_zero_grad(void *u)
{
    lw_il_session *s = ((il_loop *)u)->s;
    lw_interlingua_zero_grad(&s->il);
    lw_spread_term_reset(&s->tr.spread);   /* the step's latents only */
}

static lw_status il_example(void *u, int i, float scale, double *losses, bool *fits)
{
    il_loop *c = u;
    lw_il_session *s = c->s;
    int *ids[LW_IL_READERS] = {NULL, NULL}, L[LW_IL_READERS] = {0, 0};
    il_prompt pr[LW_IL_READERS] = {{0}};
    lw_status st = example(s, &c->d->rows[i], ids, L, pr, fits);
    if (!st && *fits) {
        lw_il_rows rows[LW_IL_READERS];
        float l[LW_IL_READERS];
        for (int r = 0; r < LW_IL_READERS; r++) rows[r] = prompt_rows(&pr[r], ids[r], L[r]);
        st = lw_il_trainer_example(&s->tr, s->feats, s->enc_tokens, rows, scale, l);
        for (int r = 0; !st && r < LW_IL_READERS; r++) losses[r] = l[r];
    }
    for (int r = 0; r < LW_IL_READERS; r++) {
        free(ids[r]);
        il_prompt_free(&pr[r]);
    }
    return st;
}

static double il_clip(void *u, float max_norm) { return lw_interlingua_clip_grads(&((il_loop *)u)->s->il, max_norm); }

static void il_step(void *u, float lr)
{
    il_loop *c = u;
    lw_interlingua_adamw_step(&c->s->il, c->opt, lr, c->o->weight_decay);
}

static lw_status il_dev_loss(void *u, double *mean)
{
    il_loop *c = u;
    return lw_il_session_dev_loss(c->s, c->o->dev, mean);
}

static void il_dev_message(void *u, double *spread, double *cos)
{
    il_loop *c = u;
    *spread = c->s->dev_spread, *cos = c->s->dev_cos;
}

static lw_status il_save(void *u, const char *name, long step)
{
    il_loop *c = u;
    return lw_il_session_publish(c->s, c->o->out_dir, name, c->opt, step);
}

static void il_log(void *u, long step, float lr, const double *loss, double norm, double secs, bool nonfinite)
{
    il_loop *c = u;
    if (!c->log || nonfinite) return;
    fprintf(c->log,
            "{\"step\": %ld, \"lr\": %.6g, \"loss_sender\": %.6f, \"loss_receiver\": %.6f, \"grad_norm\": %.6g, "
            "\"examples\": %d, \"seconds\": %.2f}\n",
            step, lr, loss[0], loss[1], norm, c->o->batch, secs);
    fflush(c->log);
}

lw_status lw_il_session_train(lw_il_session *s, const lw_answer_data *d, const lw_il_train_options *o,
                              lw_il_optim *opt, FILE *log, int *skipped)
{
    static const char *const names[LW_IL_READERS] = {"sender", "receiver"};
    il_loop c = {.s = s, .d = d, .o = o, .opt = opt, .log = log};
    char fit[96];
    snprintf(fit, sizeof fit, "(its answer within --max-answer %d tokens, its prompt in the room)", s->max_answer);
    lw_answer_loop_options lo = {.steps = o->steps, .batch = o->batch, .warmup_steps = o->warmup_steps,
                                 .log_every = o->log_every, .lr = o->lr, .grad_clip = o->grad_clip,
                                 .order_seed = o->seed, .eval_every = o->dev ? o->eval_every : 0,
                                 .patience = o->patience, .quiet = o->quiet, .what = "interlingua", .fit_limit = fit};
    lw_answer_loop_hooks h = {.user = &c, .n_losses = LW_IL_READERS, .loss_names = names, .zero_grad = il_zero_grad,
                              .example = il_example, .clip = il_clip, .step = il_step,
                              .dev_loss = o->dev ? il_dev_loss : NULL, .dev_message = il_dev_message,
                              .save = o->out_dir ? il_save : NULL, .log = il_log};
    if (o->dev && o->eval_every < 1) return lw_fail(LW_ERR_INVALID, "interlingua: early stopping needs eval_every >= 1");
    lw_answer_loop_result lr = {.best_dev_loss = INFINITY};
    lw_status st = o->norm_rows > 0 ? lw_il_session_fit_norm(s, d, o->norm_rows) : LW_OK;
    if (!st) st = lw_il_trainer_set_spread(&s->tr, o->spread_weight);
    if (!st) st = lw_answer_loop_run(d->n, &lo, &h, o->dev_log, &lr);
    *skipped = lr.skipped;
    if (o->result)
        *o->result = (lw_il_train_result){.steps_done = lr.steps_done, .best_step = lr.best_step,
                                          .best_dev_loss = lr.best_dev_loss, .stopped_early = lr.stopped_early};
    return st;
}

lw_status lw_il_session_save(const lw_il_session *s, const char *dir, const lw_il_optim *opt, long step)
{
    char path[LW_PATH_MAX + 64];
    lw_status st = lw_mkdir_p(dir);
    snprintf(path, sizeof path, "%s/encoder", dir);
    lw_rng rng;
    lw_rng_seed(&rng, 0);
    if (!st) st = lw_checkpoint_save(path, &s->il.enc, &opt->enc, &rng, step);
    lw_st_tensor t[LW_IL_READERS];
    char names[LW_IL_READERS][24];
    for (int r = 0; r < s->il.n_readers; r++) {
        snprintf(names[r], sizeof names[r], "reader%d", r);
        t[r] = (lw_st_tensor){.name = names[r], .data = s->il.readers[r].params, .ndim = 1,
                              .shape = {(int64_t)s->il.readers[r].n_params}};
    }
    snprintf(path, sizeof path, "%s/readers.safetensors", dir);
    if (!st) st = lw_safetensors_write(path, t, s->il.n_readers, NULL, 0);
    snprintf(path, sizeof path, "%s/layout.json", dir);
    if (!st && s->soft_field) {
        json_t *o = json_pack("{s:s}", "soft_field", s->soft_field);
        if (!o || json_dump_file(o, path, JSON_INDENT(2))) st = lw_fail(LW_ERR_IO, "cannot write %s", path);
        json_decref(o);
    } else if (!st && remove(path) && errno != ENOENT)
        st = lw_fail(LW_ERR_IO, "cannot remove a stale %s", path);
    return st ? lw_fail_wrap(st, "interlingua: saving %s", dir) : LW_OK;
}

lw_status lw_il_session_publish(const lw_il_session *s, const char *out, const char *name, const lw_il_optim *opt,
                                long step)
{
    char dir[LW_PATH_MAX + 64], tmp[LW_PATH_MAX + 128];
    if (snprintf(dir, sizeof dir, "%s/%s", out, name) >= (int)sizeof dir)
        return lw_fail(LW_ERR_INVALID, "interlingua: checkpoint path too long under %s", out);
    lw_status st = lw_checkpoint_temp_dir(out, name, tmp, sizeof tmp);
    if (!st && (st = lw_il_session_save(s, tmp, opt, step))) lw_remove_tree(tmp);
    if (!st) st = lw_checkpoint_publish(tmp, dir);
    return st ? lw_fail_wrap(st, "interlingua: step %ld: checkpoint %s not written", step, dir) : LW_OK;
}

lw_status lw_il_checkpoint_soft_field(const char *dir, char **field)
{
    char path[LW_PATH_MAX + 64];
    *field = NULL;
    snprintf(path, sizeof path, "%s/layout.json", dir);
    if (access(path, F_OK)) return LW_OK;
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    if (!o) return lw_fail(LW_ERR_FORMAT, "%s:%d: malformed JSON: %s", path, err.line, err.text);
    json_t *f = json_object_get(o, "soft_field");
    lw_status st = LW_OK;
    if (!json_is_string(f) || !json_string_length(f))
        st = lw_fail(LW_ERR_FORMAT, "%s: \"soft_field\" must be a field name", path);
    else if (!(*field = strdup(json_string_value(f))))
        st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    json_decref(o);
    return st;
}

lw_status lw_il_session_load(lw_il_session *s, const char *dir)
{
    char path[LW_PATH_MAX + 64], *field = NULL;
    lw_status st = lw_il_checkpoint_soft_field(dir, &field);
    if (!st && (field ? !s->soft_field || strcmp(field, s->soft_field) : s->soft_field != NULL))
        st = lw_fail(LW_ERR_INVALID, "the checkpoint's soft tokens stand for %s%s, the session's for %s%s",
                     field ? "the field " : "the whole prompt", field ? field : "",
                     s->soft_field ? "the field " : "the whole prompt", s->soft_field ? s->soft_field : "");
    free(field);
    if (st) return lw_fail_wrap(st, "interlingua: loading %s", dir);
    snprintf(path, sizeof path, "%s/encoder/bridge.safetensors", dir);
    st = lw_checkpoint_load_bridge(path, &s->il.enc);
    snprintf(path, sizeof path, "%s/readers.safetensors", dir);
    for (int r = 0; !st && r < s->il.n_readers; r++) {
        char name[24];
        snprintf(name, sizeof name, "reader%d", r);
        float *data = NULL;
        int64_t shape[4];
        int ndim = 0;
        st = lw_safetensors_read_f32(path, name, &data, shape, &ndim);
        if (!st && (ndim != 1 || shape[0] != (int64_t)s->il.readers[r].n_params))
            st = lw_fail(LW_ERR_INVALID, "%s: %s has %lld values, the manifest's adapter %zu", path, name,
                         ndim == 1 ? (long long)shape[0] : -1LL, s->il.readers[r].n_params);
        if (!st) memcpy(s->il.readers[r].params, data, s->il.readers[r].n_params * sizeof(float));
        free(data);
    }
    return st ? lw_fail_wrap(st, "interlingua: loading %s", dir) : LW_OK;
}

void lw_il_answer_free(lw_il_answer *a)
{
    for (int r = 0; r < LW_IL_READERS; r++) free(a->alone[r]);
    free(a->joint);
    memset(a, 0, sizeof *a);
}

typedef struct {
    const lw_tokenizer *tok;
} line_ctx;

/* first_line tasks: stop once a non-empty line is complete. */
static bool line_open(void *u, const int *out, int n)
{
    const line_ctx *c = u;
    char *text = NULL;
    if (lw_tokenizer_decode(c->tok, out, n, &text)) return true;
    const char *p = text;
    while (*p && isspace((unsigned char)*p)) p++;
    bool done = strchr(p, '\n') != NULL;
    free(text);
    return !done;
}

/* The text reader r would read without the interlingua: its chat turn with
 * the prompt and the answer prompt, in tokens. */
static int text_prompt_tokens(const lw_il_session *s, int r, const char *prompt)
{
    char *turn = NULL;
    int *ids = NULL, n = -1;
    if (lw_chat_render(s->models[r]->cfg.chat_template, NULL, prompt, &turn)) return -1;
    size_t cap = strlen(turn) + strlen(s->task->answer_prompt) + 1;
    char *full = malloc(cap);
    if (full) {
        snprintf(full, cap, "%s%s", turn, s->task->answer_prompt);
        if (lw_tokenizer_encode(s->toks[r], full, strlen(full), false, &ids, &n)) n = -1;
    }
    free(ids);
    free(full);
    free(turn);
    return n;
}

lw_status lw_il_session_answer(lw_il_session *s, const lw_answer_row *row, int row_index, int k, lw_il_answer *out)
{
    memset(out, 0, sizeof *out);
    if (k < 1 || k * LW_IL_READERS > LW_IL_MAX_CANDIDATES)
        return lw_fail(LW_ERR_INVALID, "interlingua: %d candidates a reader (1..%d)", k,
                       LW_IL_MAX_CANDIDATES / LW_IL_READERS);
    char *cand[LW_IL_MAX_CANDIDATES];
    int owner[LW_IL_MAX_CANDIDATES], n = 0;
    double scores[LW_IL_READERS * LW_IL_MAX_CANDIDATES];
    int *gen = malloc((size_t)s->max_answer * sizeof(int));
    il_prompt pr[LW_IL_READERS] = {{0}};
    lw_status st = gen ? lw_il_session_features(s, row->prompt)
                       : lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    for (int r = 0; !st && r < LW_IL_READERS; r++) {
        bool fits = true;
        st = row_prompt(s, r, row, &pr[r], &fits);
        if (!st && !fits)
            st = lw_fail(LW_ERR_INVALID, "the %s's text around the soft tokens is over %d tokens more than the template's",
                         ROLE[r], s->field_room);
    }
    if (!st) st = lw_il_trainer_encode(&s->tr, s->feats, s->enc_tokens);
    out->enc_tokens = s->enc_tokens;
    for (int r = 0; !st && r < LW_IL_READERS; r++) {
        out->prompt_tokens[r] = text_prompt_tokens(s, r, row->prompt);
        lw_il_rows rows = prompt_rows(&pr[r], NULL, 0);
        if ((st = lw_il_trainer_fill(&s->tr, r, &rows))) break;
        line_ctx lc = {s->toks[r]};
        for (int j = 0; !st && j < k; j++) {
            /* room to score it again: a leading space and the stop id */
            int max_new = s->task->max_new_tokens < s->max_answer - 2 ? s->task->max_new_tokens : s->max_answer - 2;
            lw_answer_gen_args ga = {.max_new = max_new, .temperature = j ? 0.7f : 0.0f,
                                     .seed = (uint64_t)row_index * 1000003u + (uint64_t)(r * 97 + j),
                                     .stop_ids = s->stop[r], .n_stop = s->n_stop[r],
                                     .keep_going = s->task->first_line ? line_open : NULL, .user = &lc};
            int m = 0;
            char *text = NULL;
            st = lw_answer_pass_generate(&s->tr.pass[r], &ga, gen, &m);
            if (!st) st = m ? lw_tokenizer_decode(s->toks[r], gen, m, &text)
                            : ((text = calloc(1, 1)) ? LW_OK : lw_fail(LW_ERR_NOMEM, "interlingua: out of memory"));
            char *ans = st ? NULL : lw_answer_extract(text, s->task->first_line);
            free(text);
            if (!st && !ans) st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
            if (st) break;
            if (j == 0 && !(out->alone[r] = strdup(ans))) st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
            bool dup = !ans[0];   /* an empty answer is no candidate */
            for (int c = 0; !dup && c < n; c++) dup = !strcmp(cand[c], ans);
            if (dup) free(ans);
            else cand[n] = ans, owner[n++] = r;
        }
    }
    /* every reader scores every candidate in its own tokens */
    for (int r = 0; !st && r < LW_IL_READERS; r++)
        for (int c = 0; !st && c < n; c++) {
            int *ids = NULL, L = 0;
            double sc = -INFINITY;
            st = lw_il_session_answer_ids(s, r, cand[c], &ids, &L);
            if (!st && L <= s->max_answer) {
                lw_il_rows rows = prompt_rows(&pr[r], ids, L);
                st = lw_il_trainer_fill(&s->tr, r, &rows);
                if (!st) st = lw_answer_pass_score(&s->tr.pass[r], &sc);
            }
            scores[(size_t)r * n + c] = sc;
            free(ids);
        }
    out->n_candidates = n;
    /* no candidate at all, or none every reader can score: no joint answer (scored as wrong) */
    lw_joint_pick pk = {.joint = -1};
    if (!st && n > 0 && lw_joint_rescore(scores, LW_IL_READERS, n, owner, &pk)) pk.joint = -1;
    if (!st && !(out->joint = strdup(pk.joint >= 0 ? cand[pk.joint] : "")))
        st = lw_fail(LW_ERR_NOMEM, "interlingua: out of memory");
    for (int c = 0; c < n; c++) free(cand[c]);
    for (int r = 0; r < LW_IL_READERS; r++) il_prompt_free(&pr[r]);
    free(gen);
    if (st) lw_il_answer_free(out);
    return st ? lw_fail_wrap(st, "interlingua: row %d", row_index) : LW_OK;
}
