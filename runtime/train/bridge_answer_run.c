/* The pair's bridge on a generate task: loading, training, saving, answering. */
#include "bridge_answer_run.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "answer_loop.h"
#include "answer_metrics.h"
#include "checkpoint.h"
#include "clock.h"
#include "fileutil.h"
#include "random_weights.h"
#include "run_dir.h"
#include "train_checks.h"
#include "train_log.h"

/* The run's streams from its seed (the bridge's init takes the seed itself). */
#define ORDER_SALT 0x42414f52ULL
#define RNG_SALT 0x42415247ULL

lw_status lw_ba_session_open(lw_ba_session *s, const lw_manifest *man, const lw_task *task, int M, int max_answer,
                             float first_token_weight, bool train, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->man = man;
    s->task = task;
    s->M = M;
    s->max_answer = max_answer;
    if (task->kind != LW_TASK_GENERATE)
        return lw_fail(LW_ERR_INVALID, "bridge on answers: %s is a %s task; only generate tasks are built", task->name,
                       lw_task_kind_name(task->kind));
    if (M < 1 || max_answer < 2)
        return lw_fail(LW_ERR_INVALID, "bridge on answers: %d soft tokens, %d answer tokens", M, max_answer);
    lw_model_config rc = man->receiver;
    rc.load.backward = train;   /* the bridge's gradient comes through the receiver */
    lw_status st = lw_sender_run_open(&man->sender, &s->sender);
    s->open_sender = !st;
    if (st) st = lw_fail_wrap(st, "bridge on answers: sender %s", man->sender.name);
    if (!st) st = lw_config_load_tokenizer(&rc, &s->tok);
    if (!st) st = lw_config_load_model(&rc, &s->receiver);
    /* the loaded model's stop ids: random mode and LWC_IGNORE_STOP leave
     * none; answers then carry no stop id and run to max_new */
    for (int i = 0; !st && i < s->receiver->cfg.n_stop_ids && i < LW_MAX_SPECIAL; i++)
        s->stop[s->n_stop++] = s->receiver->cfg.stop_ids[i];
    if (!st && s->receiver->cfg.eos_id >= 0) s->stop[s->n_stop++] = s->receiver->cfg.eos_id;
    if (!st) st = lw_receiver_layout_build(task, rc.chat_template, s->tok, M, rc.vocab, &s->layout);
    if (st && s->open_sender) st = lw_fail_wrap(st, "bridge on answers: receiver %s", rc.name);
    if (!st) {
        lw_bridge_config bc = man->bridge;
        bc.soft_tokens = M;
        st = lw_bridge_create(&s->bridge, &bc, man->sender.hidden, s->receiver->cfg.hidden,
                              s->receiver->cfg.embed_rms > 0 ? s->receiver->cfg.embed_rms : 1.0f);
        s->open_bridge = !st;
        if (!st) lw_bridge_init(&s->bridge, seed);
    }
    if (!st) {
        st = lw_answer_pass_alloc(&s->pass, s->receiver, lw_receiver_prefix_len(&s->layout) + max_answer, max_answer);
        s->open_pass = !st;
    }
    if (!st) {
        st = lw_bridge_answer_init(&s->ba, &s->bridge, &s->pass, LW_SENDER_MAX_TOKENS, first_token_weight);
        s->open_ba = !st;
    }
    if (st) lw_ba_session_close(s);
    return st;
}

void lw_ba_session_close(lw_ba_session *s)
{
    if (s->open_ba) lw_bridge_answer_free(&s->ba);
    if (s->open_pass) lw_answer_pass_free(&s->pass);
    if (s->open_bridge) lw_bridge_free(&s->bridge);
    if (s->layout.before || s->layout.after) lw_receiver_layout_free(&s->layout);
    lw_model_free(s->receiver);
    lw_tokenizer_free(s->tok);
    if (s->open_sender) lw_sender_run_close(&s->sender);
    memset(s, 0, sizeof *s);
}

lw_status lw_ba_session_states(lw_ba_session *s, const char *text)
{
    lw_status st = lw_sender_run_states(&s->sender, s->man->bridge.source_layer, text, &s->sender_tokens);
    return st ? lw_fail_wrap(st, "bridge on answers: sender states") : LW_OK;
}

lw_status lw_ba_session_answer_ids(const lw_ba_session *s, const char *text, int **ids, int *L)
{
    size_t n = strlen(text);
    char *t = malloc(n + 2);
    if (!t) return lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    t[0] = ' ';
    memcpy(t + 1, text, n + 1);
    int *x = NULL, m = 0;
    lw_status st = lw_tokenizer_encode(s->tok, t, n + 1, false, &x, &m);
    free(t);
    if (st) return lw_fail_wrap(st, "bridge on answers: the answer's tokens");
    int *y = realloc(x, (size_t)(m + 1) * sizeof(int));
    if (!y) {
        free(x);
        return lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    }
    if (s->n_stop > 0) y[m++] = s->stop[0];
    for (int i = 0; i < m; i++)
        if (y[i] < 0 || y[i] >= s->receiver->cfg.vocab) {
            int bad = y[i];
            free(y);
            return lw_fail(LW_ERR_INVALID, "bridge on answers: the receiver's tokenizer gave id %d outside its vocab",
                           bad);
        }
    *ids = y;
    *L = m;
    return LW_OK;
}

static lw_bridge_answer_rows rows_of(const lw_ba_session *s, const int *answer, int L)
{
    return (lw_bridge_answer_rows){.before = s->layout.before, .n_before = s->layout.n_before,
                                   .after = s->layout.after, .n_after = s->layout.n_after, .answer = answer, .L = L};
}

lw_status lw_ba_session_fit_norm(lw_ba_session *s, const lw_answer_data *d)
{
    int S = s->bridge.sender_hidden, n = d->n < LW_BA_NORM_ROWS ? d->n : LW_BA_NORM_ROWS;
    double *sum = calloc((size_t)S * 2, sizeof *sum), *sq = sum ? sum + S : NULL;
    float *mean = malloc((size_t)S * 2 * sizeof *mean), *std = mean ? mean + S : NULL;
    long rows = 0;
    lw_status st = sum && mean ? LW_OK : lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    for (int i = 0; !st && i < n; i++) {
        if ((st = lw_ba_session_states(s, d->rows[i].prompt))) break;
        for (int t = 0; t < s->sender_tokens; t++)
            for (int c = 0; c < S; c++) {
                double v = s->sender.hidden[(size_t)t * S + c];
                sum[c] += v, sq[c] += v * v;
            }
        rows += s->sender_tokens;
    }
    if (!st && rows < 1) st = lw_fail(LW_ERR_INVALID, "bridge on answers: no sender states to standardise with");
    for (int c = 0; !st && c < S; c++) {
        double mu = sum[c] / (double)rows, var = sq[c] / (double)rows - mu * mu;
        mean[c] = (float)mu;
        std[c] = (float)sqrt(var > 0 ? var : 0);
    }
    if (!st) lw_bridge_set_input_norm(&s->bridge, mean, std);
    free(sum);
    free(mean);
    return st;
}

/* One row's sender states and target; *fits false when the answer is too long. */
static lw_status example(lw_ba_session *s, const lw_answer_row *row, int **ids, int *L, bool *fits)
{
    lw_status st = lw_ba_session_answer_ids(s, row->golds[0], ids, L);
    *fits = !st && *L >= 1 && *L <= s->max_answer;
    if (!st && *L < 1)
        st = lw_fail(LW_ERR_INVALID, "bridge on answers: an empty answer and no stop id for the receiver");
    if (!st && *fits) st = lw_ba_session_states(s, row->prompt);
    return st;
}

lw_status lw_ba_session_loss(lw_ba_session *s, const lw_answer_row *row, float *loss, bool *fits)
{
    int *ids = NULL, L = 0;
    lw_status st = example(s, row, &ids, &L, fits);
    if (!st && *fits) {
        lw_bridge_answer_rows r = rows_of(s, ids, L);
        st = lw_bridge_answer_loss(&s->ba, s->sender.hidden, s->sender_tokens, &r, loss);
    }
    free(ids);
    return st;
}

static lw_status save(const lw_ba_session *s, const char *out, const char *name, const lw_adamw *opt,
                      const lw_rng *rng, long step)
{
    char dir[4096], tmp[4200];
    if (!lw_pathf(dir, sizeof dir, "%s/%s", out, name))
        return lw_fail(LW_ERR_INVALID, "bridge on answers: checkpoint path too long under %s", out);
    lw_status st = lw_check_bridge_finite(&s->bridge, opt);
    if (!st) st = lw_checkpoint_temp_dir(out, name, tmp, sizeof tmp);
    if (st) return lw_fail_wrap(st, "bridge on answers: step %ld: checkpoint %s not written", step, dir);
    if ((st = lw_checkpoint_save(tmp, &s->bridge, opt, rng, step))) {
        lw_remove_tree(tmp);
        return lw_fail_wrap(st, "bridge on answers: step %ld: checkpoint %s not written", step, dir);
    }
    return lw_checkpoint_publish(tmp, dir);
}

static lw_status dev_loss(lw_ba_session *s, const lw_answer_data *dev, double *mean)
{
    double sum = 0;
    int used = 0;
    for (int i = 0; i < dev->n; i++) {
        float l;
        bool fits;
        lw_status st = lw_ba_session_loss(s, &dev->rows[i], &l, &fits);
        if (st) return lw_fail_wrap(st, "dev row %d", i);
        if (fits) sum += l, used++;
    }
    if (!used) return lw_fail(LW_ERR_INVALID, "bridge on answers: no dev row's answer fits %d tokens", s->max_answer);
    *mean = sum / used;
    return LW_OK;
}

typedef struct {
    lw_ba_session *s;
    const lw_answer_data *d;
    const lw_ba_train_options *o;
    const char *out;
    lw_adamw opt;
    lw_rng rng;
    FILE *log;
} ba_loop;

static void ba_zero_grad(void *u)
{
    lw_ba_session *s = ((ba_loop *)u)->s;
    lw_bridge_zero_grad(&s->bridge);
    lw_spread_term_reset(&s->ba.spread);   /* the step's messages only */
}

static lw_status ba_example(void *u, int i, float scale, double *losses, bool *fits)
{
    ba_loop *c = u;
    lw_ba_session *s = c->s;
    int *ids = NULL, L = 0;
    lw_status st = example(s, &c->d->rows[i], &ids, &L, fits);
    if (!st && *fits) {
        lw_bridge_answer_rows rw = rows_of(s, ids, L);
        float l;
        st = lw_bridge_answer_example(&s->ba, s->sender.hidden, s->sender_tokens, &rw, scale, &l);
        losses[0] = l;
    }
    free(ids);
    return st;
}

static double ba_clip(void *u, float max_norm)
{
    lw_bridge *b = &((ba_loop *)u)->s->bridge;
    return lw_clip_grad_norm(b->grads, b->n_params, max_norm);
}

static void ba_step(void *u, float lr)
{
    ba_loop *c = u;
    lw_bridge_adamw_step(&c->s->bridge, &c->opt, lr, c->o->weight_decay);
}

static lw_status ba_dev_loss(void *u, double *mean)
{
    ba_loop *c = u;
    return dev_loss(c->s, c->o->dev, mean);
}

static lw_status ba_save(void *u, const char *name, long step)
{
    ba_loop *c = u;
    return save(c->s, c->out, name, &c->opt, &c->rng, step);
}

static void ba_log(void *u, long step, float lr, const double *loss, double norm, double el, bool nonfinite)
{
    ba_loop *c = u;
    if (!c->log) return;
    lw_train_log_line line = {step, loss[0], lr, norm, NAN, (double)step * c->o->batch / (el > 0 ? el : 1e-9), el,
                              nonfinite};
    lw_train_log_write(c->log, &line);
    fflush(c->log);
}

lw_status lw_ba_session_train(lw_ba_session *s, const lw_answer_data *d, const lw_ba_train_options *o,
                              const char *out, lw_ba_train_result *r)
{
    memset(r, 0, sizeof *r);
    r->best_dev_loss = INFINITY;
    if (d->n < 1) return lw_fail(LW_ERR_INVALID, "bridge on answers: no training rows");
    if (o->steps < 1 || o->batch < 1 || !(o->lr > 0.0f) || o->warmup_steps < 0 || o->grad_clip < 0.0f ||
        o->weight_decay < 0.0f || (o->dev && o->eval_every < 1))
        return lw_fail(LW_ERR_INVALID, "bridge on answers: steps %d, batch %d, lr %g, warmup %d, clip %g, eval every %d",
                       o->steps, o->batch, (double)o->lr, o->warmup_steps, (double)o->grad_clip, o->eval_every);
    ba_loop c = {.s = s, .d = d, .o = o, .out = out};
    lw_rng_seed(&c.rng, o->seed ^ RNG_SALT);
    lw_status st = lw_adamw_init(&c.opt, s->bridge.n_params, lw_adamw_defaults());
    if (!st) st = lw_ba_session_fit_norm(s, d);
    if (!st) st = lw_bridge_answer_set_spread(&s->ba, o->spread_weight);
    c.log = !st && out ? lw_train_log_open(out, -1, &st) : NULL;
    FILE *dev_log = !st && out && o->dev ? lw_jsonl_open(out, "dev_log.jsonl", -1, &st) : NULL;
    char fit[64];
    snprintf(fit, sizeof fit, "its answer within %d tokens (--max-answer)", s->max_answer);
    lw_answer_loop_options lo = {.steps = o->steps, .batch = o->batch, .warmup_steps = o->warmup_steps,
                                 .log_every = o->log_every, .lr = o->lr, .grad_clip = o->grad_clip,
                                 .order_seed = o->seed ^ ORDER_SALT, .eval_every = o->dev ? o->eval_every : 0,
                                 .patience = o->patience, .checkpoint_every = o->checkpoint_every, .quiet = o->quiet,
                                 .what = "bridge on answers", .fit_limit = fit};
    lw_answer_loop_hooks h = {.user = &c, .n_losses = 1, .zero_grad = ba_zero_grad, .example = ba_example,
                              .clip = ba_clip, .step = ba_step, .dev_loss = o->dev ? ba_dev_loss : NULL,
                              .save = out ? ba_save : NULL, .log = ba_log};
    lw_answer_loop_result lr = {.best_dev_loss = INFINITY};
    if (!st) st = lw_answer_loop_run(d->n, &lo, &h, dev_log, &lr);
    *r = (lw_ba_train_result){.steps_done = lr.steps_done, .last_loss = lr.last_losses[0], .seconds = lr.seconds,
                              .skipped = lr.skipped, .best_dev_loss = lr.best_dev_loss, .best_step = lr.best_step,
                              .stopped_early = lr.stopped_early};
    if (!st && out) st = save(s, out, "final", &c.opt, &c.rng, r->steps_done);
    if (c.log) fclose(c.log);
    if (dev_log) fclose(dev_log);
    lw_adamw_free(&c.opt);
    return st;
}

lw_status lw_ba_session_load(lw_ba_session *s, const char *checkpoint)
{
    char path[4096];
    bool is_dir;
    lw_bridge_checkpoint_file(checkpoint, path, sizeof path, &is_dir);
    lw_status st = lw_checkpoint_load_bridge(path, &s->bridge);
    return st ? lw_fail_wrap(st, "bridge on answers: loading %s", checkpoint) : LW_OK;
}

/* first_line tasks: stop once a non-empty line is complete. */
static bool line_open(void *u, const int *out, int n)
{
    const lw_tokenizer *tok = u;
    char *text = NULL;
    if (lw_tokenizer_decode(tok, out, n, &text)) return true;
    const char *p = text;
    while (*p && isspace((unsigned char)*p)) p++;
    bool done = strchr(p, '\n') != NULL;
    free(text);
    return !done;
}

lw_status lw_ba_session_answer(lw_ba_session *s, const lw_answer_row *row, int row_index, char **answer,
                               int *prompt_rows, int *gen_tokens)
{
    *answer = NULL;
    int max_new = s->task->max_new_tokens < s->max_answer ? s->task->max_new_tokens : s->max_answer;
    int *gen = malloc((size_t)max_new * sizeof(int)), m = 0;
    char *text = NULL;
    lw_status st = gen ? lw_ba_session_states(s, row->prompt) : lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    lw_bridge_answer_rows rw = rows_of(s, NULL, 0);
    if (!st) st = lw_bridge_answer_fill(&s->ba, s->sender.hidden, s->sender_tokens, &rw);
    lw_answer_gen_args ga = {.max_new = max_new, .temperature = 0.0f, .stop_ids = s->stop, .n_stop = s->n_stop,
                             .keep_going = s->task->first_line ? line_open : NULL, .user = s->tok};
    if (!st) st = lw_answer_pass_generate(&s->pass, &ga, gen, &m);
    if (!st) st = m ? lw_tokenizer_decode(s->tok, gen, m, &text)
                    : ((text = calloc(1, 1)) ? LW_OK : lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory"));
    if (!st && !(*answer = lw_answer_extract(text, s->task->first_line)))
        st = lw_fail(LW_ERR_NOMEM, "bridge on answers: out of memory");
    *prompt_rows = s->pass.P;
    *gen_tokens = m;
    free(text);
    free(gen);
    return st ? lw_fail_wrap(st, "bridge on answers: row %d", row_index) : LW_OK;
}
