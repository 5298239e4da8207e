/* The equal-work benchmark's pipelines and timing (bench.h). */
#include "bench.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpu.h"
#include "chat_template.h"
#include "clock.h"
#include "label_scoring.h"
#include "receiver_input.h"
#include "sender_cache.h"

enum { BENCH_MAX_POSITIONS = 1024 };

/* What the relay's sender is asked to write: the text-relay baseline's
 * default request (baselines.c), so both time the same generation. */
static const char RELAY_INSTRUCTION[] = "Summarize the following text in one sentence:\n";

static const char *const METHOD_NAMES[LW_BENCH_N_METHODS] = {"bridge", "text-relay", "receiver-zeroshot",
                                                             "sender-zeroshot"};
static const char *const STAGE_NAMES[LW_STAGE_COUNT] = {"tokenize", "sender_forward", "bridge", "generate",
                                                        "receiver_score"};

const char *lw_bench_method_name(lw_bench_method m)
{
    return m >= 0 && m < LW_BENCH_N_METHODS ? METHOD_NAMES[m] : "?";
}

int lw_bench_method_parse(const char *name)
{
    for (int m = 0; m < LW_BENCH_N_METHODS; m++)
        if (!strcmp(name, METHOD_NAMES[m])) return m;
    return -1;
}

const char *lw_bench_stage_name(lw_bench_stage s) { return s >= 0 && s < LW_STAGE_COUNT ? STAGE_NAMES[s] : "?"; }

int lw_bench_uses_stage(lw_bench_method m, lw_bench_stage s)
{
    static const unsigned USES[LW_BENCH_N_METHODS] = {
        [LW_BENCH_BRIDGE] = 1u << LW_STAGE_TOKENIZE | 1u << LW_STAGE_SENDER_FORWARD | 1u << LW_STAGE_BRIDGE |
                            1u << LW_STAGE_RECEIVER_SCORE,
        [LW_BENCH_TEXT_RELAY] = 1u << LW_STAGE_TOKENIZE | 1u << LW_STAGE_GENERATE | 1u << LW_STAGE_RECEIVER_SCORE,
        [LW_BENCH_RECEIVER_ZEROSHOT] = 1u << LW_STAGE_TOKENIZE | 1u << LW_STAGE_RECEIVER_SCORE,
        [LW_BENCH_SENDER_ZEROSHOT] = 1u << LW_STAGE_TOKENIZE | 1u << LW_STAGE_SENDER_FORWARD,
    };
    if (m < 0 || m >= LW_BENCH_N_METHODS || s < 0 || s >= LW_STAGE_COUNT) return 0;
    return (USES[m] >> s) & 1u;
}

/* ---- statistics -------------------------------------------------------- */
static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

lw_bench_stats lw_bench_stats_of(const double *x, int n)
{
    lw_bench_stats s = {0};
    if (n < 1) return s;
    double *v = malloc((size_t)n * sizeof *v);
    s.n = n;
    s.min = s.max = x[0];
    for (int i = 0; i < n; i++) {
        if (x[i] < s.min) s.min = x[i];
        if (x[i] > s.max) s.max = x[i];
    }
    if (!v) {  /* no memory for the sort: midrange rather than nothing */
        s.median = 0.5 * (s.min + s.max);
        return s;
    }
    memcpy(v, x, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, by_value);
    s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    free(v);
    return s;
}

size_t lw_bench_soft_bytes(int M, int hidden, int bytes_per_value)
{
    if (M < 1 || hidden < 1 || bytes_per_value < 1) return 0;
    size_t a = (size_t)M, b = (size_t)hidden, c = (size_t)bytes_per_value;
    if (a > SIZE_MAX / b || a * b > SIZE_MAX / c) return 0;
    return a * b * c;
}

/* ---- the runner -------------------------------------------------------- */
struct lw_bench {
    lw_bench_setup s;
    lw_receiver_layout rlay;  /* receiver prompt: before [M soft | text] after, verbalizers */
    lw_receiver_layout slay;  /* the same in the sender's template and tokenizer (M unused) */
    int *head;                /* the sender template's head tokens (dropped before the bridge) */
    int n_head;
    int s_cap, r_cap;         /* KV positions */
    lw_state *sstate, *rstate;
    lw_gpu_state *gsstate, *grstate;   /* with gpu_sender / gpu_receiver */
    lw_status sync_st;        /* the first failed wait for the device, reported by lw_bench_example */
    lw_bridge_acts *acts;
    float *hidden;            /* [s_cap, sender hidden] */
    float *embeds;            /* [r_cap, receiver hidden] */
    bool *is_embed;           /* [max cap] */
    int *ids;                 /* [max cap] */
    float *last;              /* [max vocab] */
    float *logits;            /* [max verbalizer, max vocab] */
    int *gen;                 /* [relay_tokens + 1] */
};

static bool on_gpu(const lw_bench *b) { return b->s.gpu_sender != NULL; }

/* The clock after the device finished what was issued: lw_gpu_forward
 * already waits, but a stage's time must not depend on that. */
static double stamp(lw_bench *b)
{
    if (on_gpu(b)) {
        lw_status st = lw_cuda_sync(b->s.gpu_sender->cu, "bench: before reading the clock");
        if (st && !b->sync_st) b->sync_st = st;
    }
    return lw_now_s();
}

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

static lw_status head_ids(lw_bench *b)
{
    char *head = NULL, *tail = NULL;
    lw_status st = lw_chat_render_split(b->s.sender->cfg.chat_template, NULL, "", "", &head, &tail);
    if (!st) st = lw_tokenizer_encode(b->s.sender_tok, head, strlen(head), false, &b->head, &b->n_head);
    free(head);
    free(tail);
    return st;
}

static lw_status alloc_scratch(lw_bench *b)
{
    const lw_model_config *sc = &b->s.sender->cfg, *rc = &b->s.receiver->cfg;
    size_t cap = (size_t)max_int(b->s_cap, b->r_cap), V = (size_t)max_int(sc->vocab, rc->vocab);
    size_t L = (size_t)max_int(b->rlay.max_verb, b->slay.max_verb);
    b->hidden = malloc((size_t)b->s_cap * sc->hidden * sizeof(float));
    b->embeds = calloc((size_t)b->r_cap * rc->hidden, sizeof(float));
    b->is_embed = calloc(cap, sizeof *b->is_embed);
    b->ids = calloc(cap, sizeof *b->ids);
    b->last = malloc(V * sizeof(float));
    b->logits = malloc(L * V * sizeof(float));
    b->gen = malloc((size_t)(b->s.relay_tokens + 1) * sizeof *b->gen);
    if (!b->hidden || !b->embeds || !b->is_embed || !b->ids || !b->last || !b->logits || !b->gen)
        return lw_fail(LW_ERR_NOMEM, "bench: out of memory for scratch (%zu positions, vocab %zu)", cap, V);
    return LW_OK;
}

lw_status lw_bench_open(const lw_bench_setup *setup, lw_bench **out)
{
    *out = NULL;
    const lw_model_config *sc = &setup->sender->cfg, *rc = &setup->receiver->cfg;
    if (setup->source_layer < 1 || setup->source_layer > sc->n_layers)
        return lw_fail(LW_ERR_INVALID, "bench: source layer %d outside 1..%d of %s", setup->source_layer,
                       sc->n_layers, sc->name);
    if (setup->relay_tokens < 1 || setup->relay_tokens > 4096)
        return lw_fail(LW_ERR_INVALID, "bench: %d relay tokens (1..4096)", setup->relay_tokens);
    if (setup->bridge && (setup->bridge->sender_hidden != sc->hidden || setup->bridge->receiver_hidden != rc->hidden))
        return lw_fail(LW_ERR_INVALID, "bench: the bridge maps %d -> %d, the models are %d -> %d",
                       setup->bridge->sender_hidden, setup->bridge->receiver_hidden, sc->hidden, rc->hidden);
    lw_bench *b = calloc(1, sizeof *b);
    if (!b) return lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    b->s = *setup;
    b->s_cap = min_int(sc->context, BENCH_MAX_POSITIONS);
    b->r_cap = min_int(rc->context, BENCH_MAX_POSITIONS);
    int M = setup->bridge ? setup->bridge->cfg.soft_tokens : 1;
    lw_status st = lw_receiver_layout_build(setup->task, rc->chat_template, setup->receiver_tok, M, rc->vocab,
                                            &b->rlay);
    if (!st) st = lw_receiver_layout_build(setup->task, sc->chat_template, setup->sender_tok, 1, sc->vocab, &b->slay);
    if (!st) st = head_ids(b);
    if ((setup->gpu_sender == NULL) != (setup->gpu_receiver == NULL))
        st = lw_fail(LW_ERR_INVALID, "bench: both models on the GPU or neither (one GPU model given)");
    if (!st && !on_gpu(b)) st = lw_state_alloc(setup->sender, b->s_cap, false, &b->sstate);
    if (!st && !on_gpu(b)) st = lw_state_alloc(setup->receiver, b->r_cap, false, &b->rstate);
    if (!st && on_gpu(b)) st = lw_gpu_state_alloc(setup->gpu_sender, b->s_cap, &b->gsstate);
    if (!st && on_gpu(b)) st = lw_gpu_state_alloc(setup->gpu_receiver, b->r_cap, &b->grstate);
    if (!st && setup->bridge) st = lw_bridge_acts_create(setup->bridge, LW_SENDER_MAX_TOKENS, &b->acts);
    if (!st) st = alloc_scratch(b);
    if (st) {
        lw_bench_close(b);
        return lw_fail_wrap(st, "bench");
    }
    *out = b;
    return LW_OK;
}

void lw_bench_close(lw_bench *b)
{
    if (!b) return;
    lw_receiver_layout_free(&b->rlay);
    lw_receiver_layout_free(&b->slay);
    free(b->head);
    lw_state_free(b->sstate);
    lw_state_free(b->rstate);
    lw_gpu_state_free(b->gsstate);
    lw_gpu_state_free(b->grstate);
    lw_bridge_acts_free(b->acts);
    free(b->hidden);
    free(b->embeds);
    free(b->is_embed);
    free(b->ids);
    free(b->last);
    free(b->logits);
    free(b->gen);
    free(b);
}

/* scores[k] = sum of log-probs of label k's verbalizer after the P prompt
 * rows in b->ids (and b->embeds where b->is_embed, when embeds): the prompt
 * runs once, each longer verbalizer continues from its KV cache. */
static lw_status score_labels(lw_bench *b, bool on_sender, const lw_receiver_layout *Ly, int P, const float *embeds,
                              double *scores)
{
    lw_forward_args a = {.ids = b->ids, .embeds = embeds, .is_embed = embeds ? b->is_embed : NULL, .T = P,
                         .logits = b->last, .capture_layer = -1};
    const int *const *verb = (const int *const *)Ly->verb;
    if (on_gpu(b)) {
        lw_gpu_model *g = on_sender ? b->s.gpu_sender : b->s.gpu_receiver;
        lw_gpu_state *s = on_sender ? b->gsstate : b->grstate;
        lw_gpu_state_reset(s);
        lw_status st = lw_gpu_forward(g, s, &a);
        if (st) return st;
        return lw_bench_gpu_score(g, s, P, b->last, b->logits, Ly->n_labels, verb, Ly->verb_len, scores);
    }
    const lw_model *m = on_sender ? b->s.sender : b->s.receiver;
    lw_state *s = on_sender ? b->sstate : b->rstate;
    lw_state_reset(s);
    return lw_score_after_prompt(m, s, &a, Ly->n_labels, verb, Ly->verb_len, scores);
}

/* The sender's first n rows up to the bridge's source layer, into b->hidden. */
static lw_status sender_capture(lw_bench *b, const int *ids, int n)
{
    if (on_gpu(b))
        return lw_bench_gpu_capture(b->s.gpu_sender, b->gsstate, ids, n, b->s.source_layer, b->hidden);
    lw_state_reset(b->sstate);
    lw_forward_args a = {.ids = ids, .T = n, .capture_layer = b->s.source_layer, .hidden_out = b->hidden};
    return lw_forward(b->s.sender, b->sstate, &a);
}

/* b->ids = Ly's before + text's tokens (at most LW_SENDER_MAX_TOKENS, the
 * cap the sender's states have too) + after; *P the row count, *n_text the
 * text's tokens. */
static lw_status text_prompt(lw_bench *b, const lw_tokenizer *tok, const lw_receiver_layout *Ly, int cap,
                             const char *text, int *P, int *n_text)
{
    size_t len = strlen(text);
    while (len && (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')) text++, len--;
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\t' || text[len - 1] == '\r'))
        len--;
    int *ids = NULL, n = 0;
    lw_status st = lw_tokenizer_encode(tok, text, len, false, &ids, &n);
    if (st) return lw_fail_wrap(st, "bench: tokenizing a text");
    if (n > LW_SENDER_MAX_TOKENS) n = LW_SENDER_MAX_TOKENS;
    int rows = Ly->n_before + n + Ly->n_after;
    if (rows + Ly->max_verb > cap) {
        free(ids);
        return lw_fail(LW_ERR_INVALID, "bench: a prompt of %d rows and a %d-token label exceed %d positions", rows,
                       Ly->max_verb, cap);
    }
    /* pieces may be empty (and NULL): no memcpy from them */
    for (int i = 0; i < Ly->n_before; i++) b->ids[i] = Ly->before[i];
    for (int i = 0; i < n; i++) b->ids[Ly->n_before + i] = ids[i];
    for (int i = 0; i < Ly->n_after; i++) b->ids[Ly->n_before + n + i] = Ly->after[i];
    free(ids);
    *P = rows;
    *n_text = n;
    return LW_OK;
}

/* The sender's chat prompt for user text, tokenized into a malloc'd *ids. */
static lw_status sender_prompt(lw_bench *b, const char *user, int **ids, int *n)
{
    char *prompt = NULL;
    lw_status st = lw_chat_render(b->s.sender->cfg.chat_template, NULL, user, &prompt);
    if (!st) st = lw_tokenizer_encode(b->s.sender_tok, prompt, strlen(prompt), false, ids, n);
    free(prompt);
    if (!st && *n < 1) st = lw_fail(LW_ERR_INVALID, "bench: the sender prompt has no tokens");
    return st;
}

/* As the sender-state cache builds its rows (sender_cache.c): the rows after
 * the template head (at least the first, the attention sink), at most
 * LW_SENDER_MAX_TOKENS of them. */
static int head_skip(const lw_bench *b, const int *ids, int n)
{
    int skip = 1;
    if (b->n_head > 1 && b->n_head < n && !memcmp(ids, b->head, (size_t)b->n_head * sizeof *ids)) skip = b->n_head;
    return n > skip ? skip : 0;
}

static lw_status run_bridge(lw_bench *b, const char *text, double *scores, double *t, lw_bench_traffic *tr)
{
    const lw_model *S = b->s.sender, *R = b->s.receiver;
    double t0 = stamp(b);
    int *ids = NULL, n = 0;
    lw_status st = sender_prompt(b, text, &ids, &n);
    if (st) return st;
    int skip = head_skip(b, ids, n);
    if (n - skip > LW_SENDER_MAX_TOKENS) n = skip + LW_SENDER_MAX_TOKENS;
    if (n > b->s_cap) n = b->s_cap;
    double t1 = stamp(b);
    if (n <= skip) st = lw_fail(LW_ERR_INVALID, "bench: the sender's template head of %d tokens leaves no rows", skip);
    if (!st) st = sender_capture(b, ids, n);
    free(ids);
    if (st) return st;
    double t2 = stamp(b);
    int H = R->cfg.hidden, soft_row = lw_receiver_soft_row(&b->rlay);
    st = lw_bridge_forward(b->s.bridge, b->acts, b->hidden + (size_t)skip * S->cfg.hidden, n - skip,
                           b->embeds + (size_t)soft_row * H);
    if (st) return st;
    double t3 = stamp(b);
    int P = lw_receiver_fill(&b->rlay, -1, 0, b->ids, b->is_embed);
    st = score_labels(b, false, &b->rlay, P, b->embeds, scores);
    double t4 = stamp(b);
    t[LW_STAGE_TOKENIZE] += t1 - t0;
    t[LW_STAGE_SENDER_FORWARD] += t2 - t1;
    t[LW_STAGE_BRIDGE] += t3 - t2;
    t[LW_STAGE_RECEIVER_SCORE] += t4 - t3;
    *tr = (lw_bench_traffic){.payload_bytes = (double)lw_bench_soft_bytes(b->rlay.M, H, 4),
                             .content_tokens = b->rlay.M, .prompt_tokens = P, .sender_tokens = n};
    return st;
}

/* The sender writes up to relay_tokens (greedy, ending at its end-of-turn
 * or eos); *text gets it decoded, without the stop token. */
static lw_status relay_generate(lw_bench *b, const int *prompt, int n, char **text, int *n_gen)
{
    const lw_model_config *c = &b->s.sender->cfg;
    int stop[LW_MAX_SPECIAL + 1], n_stop = 0;
    if (c->eos_id >= 0) stop[n_stop++] = c->eos_id;
    for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++) stop[n_stop++] = c->stop_ids[i];
    if (n + b->s.relay_tokens > b->s_cap)
        return lw_fail(LW_ERR_INVALID, "bench: a relay prompt of %d tokens and %d new ones exceed %d positions", n,
                       b->s.relay_tokens, b->s_cap);
    lw_generate_args g = {.max_new = b->s.relay_tokens, .stop_ids = stop, .n_stop = n_stop};
    int got = 0;
    lw_status st = on_gpu(b) ? lw_gpu_generate(b->s.gpu_sender, b->gsstate, prompt, n, &g, b->gen, &got)
                             : lw_generate(b->s.sender, b->sstate, prompt, n, &g, b->gen, &got);
    if (st) return st;
    for (int i = 0; got > 0 && i < n_stop; i++)
        if (b->gen[got - 1] == stop[i]) {
            got--;
            break;
        }
    *n_gen = got;
    return lw_tokenizer_decode(b->s.sender_tok, b->gen, got, text);
}

static lw_status run_relay(lw_bench *b, const char *text, double *scores, double *t, lw_bench_traffic *tr)
{
    double t0 = stamp(b);
    size_t ni = strlen(RELAY_INSTRUCTION), nt = strlen(text);
    char *user = malloc(ni + nt + 1), *relay = NULL;
    if (!user) return lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    memcpy(user, RELAY_INSTRUCTION, ni);
    memcpy(user + ni, text, nt + 1);
    int *ids = NULL, n = 0, n_gen = 0, P = 0, n_text = 0;
    lw_status st = sender_prompt(b, user, &ids, &n);
    free(user);
    double t1 = stamp(b);
    if (!st) st = relay_generate(b, ids, n, &relay, &n_gen);
    free(ids);
    double t2 = stamp(b);
    if (!st) st = text_prompt(b, b->s.receiver_tok, &b->rlay, b->r_cap, relay, &P, &n_text);
    double t3 = stamp(b);
    if (!st) st = score_labels(b, false, &b->rlay, P, NULL, scores);
    double t4 = stamp(b);
    t[LW_STAGE_TOKENIZE] += (t1 - t0) + (t3 - t2);
    t[LW_STAGE_GENERATE] += t2 - t1;
    t[LW_STAGE_RECEIVER_SCORE] += t4 - t3;
    *tr = (lw_bench_traffic){.payload_bytes = relay ? (double)strlen(relay) : 0, .content_tokens = n_gen,
                             .prompt_tokens = P, .sender_tokens = n + n_gen};
    free(relay);
    return st;
}

/* receiver-zeroshot (on the receiver) or sender-zeroshot (on the sender). */
static lw_status run_zeroshot(lw_bench *b, bool on_sender, const char *text, double *scores, double *t,
                              lw_bench_traffic *tr)
{
    const lw_receiver_layout *Ly = on_sender ? &b->slay : &b->rlay;
    double t0 = stamp(b);
    int P = 0, n_text = 0;
    lw_status st = text_prompt(b, on_sender ? b->s.sender_tok : b->s.receiver_tok, Ly, on_sender ? b->s_cap : b->r_cap,
                               text, &P, &n_text);
    double t1 = stamp(b);
    if (!st) st = score_labels(b, on_sender, Ly, P, NULL, scores);
    double t2 = stamp(b);
    t[LW_STAGE_TOKENIZE] += t1 - t0;
    t[on_sender ? LW_STAGE_SENDER_FORWARD : LW_STAGE_RECEIVER_SCORE] += t2 - t1;
    *tr = (lw_bench_traffic){.content_tokens = n_text, .prompt_tokens = P, .sender_tokens = on_sender ? P : 0};
    return st;
}

lw_status lw_bench_example(lw_bench *b, lw_bench_method m, const char *text, double *scores, double *stage_s,
                           lw_bench_traffic *traffic)
{
    lw_bench_traffic tr;
    lw_status st;
    switch (m) {
    case LW_BENCH_BRIDGE:
        if (!b->s.bridge) return lw_fail(LW_ERR_INVALID, "bench: the bridge method needs a bridge");
        st = run_bridge(b, text, scores, stage_s, &tr);
        break;
    case LW_BENCH_TEXT_RELAY: st = run_relay(b, text, scores, stage_s, &tr); break;
    case LW_BENCH_RECEIVER_ZEROSHOT: st = run_zeroshot(b, false, text, scores, stage_s, &tr); break;
    case LW_BENCH_SENDER_ZEROSHOT: st = run_zeroshot(b, true, text, scores, stage_s, &tr); break;
    default: return lw_fail(LW_ERR_INVALID, "bench: method %d", (int)m);
    }
    if (!st && b->sync_st) st = b->sync_st;   /* a wait for the device failed: the times are not the work's */
    b->sync_st = LW_OK;
    if (st) return lw_fail_wrap(st, "bench %s", lw_bench_method_name(m));
    if (traffic) *traffic = tr;
    return LW_OK;
}

lw_status lw_bench_measure(lw_bench *b, lw_bench_method m, const char *const *texts, int n_texts, int batch,
                           int runs, int warmup, lw_bench_result *out)
{
    memset(out, 0, sizeof *out);
    if (n_texts < 1 || batch < 1 || batch > 1 << 20 || runs < 1 || runs > 1 << 20 || warmup < 0 || warmup > 1 << 20)
        return lw_fail(LW_ERR_INVALID, "bench: %d texts, batch %d, %d runs, %d warm-up", n_texts, batch, runs, warmup);
    int nl = b->s.task->n_labels;
    double *run_s = calloc((size_t)runs, sizeof *run_s), *eps = calloc((size_t)runs, sizeof *eps);
    double *stage = calloc((size_t)runs * LW_STAGE_COUNT, sizeof *stage);
    double *scores = calloc((size_t)nl, sizeof *scores);
    lw_status st = run_s && eps && stage && scores ? LW_OK : lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    lw_bench_traffic sum = {0};
    for (int r = 0; !st && r < warmup + runs; r++) {
        double t[LW_STAGE_COUNT] = {0}, t0 = lw_now_s();
        for (int j = 0; !st && j < batch; j++) {
            lw_bench_traffic tr;
            st = lw_bench_example(b, m, texts[((size_t)r * batch + j) % (size_t)n_texts], scores, t, &tr);
            if (!st && r >= warmup) {
                sum.payload_bytes += tr.payload_bytes;
                sum.content_tokens += tr.content_tokens;
                sum.prompt_tokens += tr.prompt_tokens;
                sum.sender_tokens += tr.sender_tokens;
            }
        }
        double el = lw_now_s() - t0;
        if (st || r < warmup) continue;
        int k = r - warmup;
        run_s[k] = el;
        eps[k] = el > 0 ? batch / el : 0;
        for (int s = 0; s < LW_STAGE_COUNT; s++) stage[(size_t)s * runs + k] = 1e3 * t[s] / batch;
    }
    if (!st) {
        out->method = m;
        out->batch = batch;
        out->runs = runs;
        out->warmup = warmup;
        out->run_s = lw_bench_stats_of(run_s, runs);
        out->examples_per_s = lw_bench_stats_of(eps, runs);
        for (int s = 0; s < LW_STAGE_COUNT; s++) out->stage_ms[s] = lw_bench_stats_of(stage + (size_t)s * runs, runs);
        double n = (double)runs * batch;
        out->traffic = (lw_bench_traffic){sum.payload_bytes / n, sum.content_tokens / n, sum.prompt_tokens / n,
                                          sum.sender_tokens / n};
    }
    free(run_s);
    free(eps);
    free(stage);
    free(scores);
    return st;
}

/* ---- JSON -------------------------------------------------------------- */
static json_t *stats_json(lw_bench_stats s)
{
    return json_pack("{s:f, s:f, s:f, s:i}", "median", s.median, "min", s.min, "max", s.max, "n", s.n);
}

static json_t *result_json(const lw_bench_result *r)
{
    json_t *o = json_object(), *stages = json_object();
    json_object_set_new(o, "method", json_string(lw_bench_method_name(r->method)));
    json_object_set_new(o, "batch", json_integer(r->batch));
    json_object_set_new(o, "runs", json_integer(r->runs));
    json_object_set_new(o, "warmup", json_integer(r->warmup));
    if (r->batch == 1) json_object_set_new(o, "latency_s", stats_json(r->run_s));
    json_object_set_new(o, "run_s", stats_json(r->run_s));
    json_object_set_new(o, "examples_per_s", stats_json(r->examples_per_s));
    for (int s = 0; s < LW_STAGE_COUNT; s++)
        if (lw_bench_uses_stage(r->method, (lw_bench_stage)s))
            json_object_set_new(stages, lw_bench_stage_name((lw_bench_stage)s), stats_json(r->stage_ms[s]));
    json_object_set_new(o, "stages_ms_per_example", stages);
    json_object_set_new(o, "traffic", json_pack("{s:f, s:f, s:f, s:f}", "payload_bytes", r->traffic.payload_bytes,
                                                 "content_tokens", r->traffic.content_tokens, "prompt_tokens",
                                                 r->traffic.prompt_tokens, "sender_tokens", r->traffic.sender_tokens));
    return o;
}

char *lw_bench_to_json(const lw_bench_report *r)
{
    json_t *o = json_object(), *results = json_array();
    json_object_set_new(o, "pair", json_string(r->pair ? r->pair : ""));
    json_object_set_new(o, "task", json_string(r->task ? r->task : ""));
    json_object_set_new(o, "split", json_string(r->split ? r->split : ""));
    json_object_set_new(o, "checkpoint", r->checkpoint ? json_string(r->checkpoint) : json_null());
    json_object_set_new(o, "bridge_weights", json_string(r->checkpoint ? "checkpoint" : "fresh init (same work)"));
    if (r->machine) json_object_set_new(o, "machine", json_string(r->machine));
    json_object_set_new(o, "end_point", json_string("label scores ready"));
    json_object_set_new(o, "batching", json_string("back to back: a batch of B is B examples one after another; "
                                                   "examples_per_s = B / run seconds"));
    json_object_set_new(o, "clock", json_string("CLOCK_MONOTONIC"));
    bool gpu = r->device && !strcmp(r->device, "cuda");
    json_object_set_new(o, "device", json_string(gpu ? "cuda" : "cpu"));
    json_object_set_new(o, "on_the_device", json_string(gpu ? "sender and receiver forwards (cuBLAS products); "
                                                              "tokenization, the bridge and sampling on the CPU; "
                                                              "each stage synchronised before the clock"
                                                            : "everything"));
    json_object_set_new(o, "weights", json_string(gpu && r->dtype ? r->dtype : "fp32"));
    json_object_set_new(o, "sender_states_cached", json_false());
    json_object_set_new(o, "source_layer", json_integer(r->source_layer));
    json_object_set_new(o, "relay_tokens_max", json_integer(r->relay_tokens));
    json_object_set_new(o, "payload", json_pack("{s:i, s:i, s:I, s:I}", "soft_tokens", r->soft_tokens,
                                                "receiver_hidden", r->receiver_hidden, "soft_bytes_fp32",
                                                (json_int_t)lw_bench_soft_bytes(r->soft_tokens, r->receiver_hidden, 4),
                                                "soft_bytes_bf16",
                                                (json_int_t)lw_bench_soft_bytes(r->soft_tokens, r->receiver_hidden, 2)));
    for (int i = 0; i < r->n_results; i++) json_array_append_new(results, result_json(&r->results[i]));
    json_object_set_new(o, "results", results);
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    return text;
}
