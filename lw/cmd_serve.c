/* lw serve: the sender, the receiver or both behind an HTTP server
 * (libmicrohttpd), JSON in and out, messages as application/octet-stream
 * (docs/wire.md, "HTTP"). The HTTP threads parse and check requests; all
 * model work runs on one worker thread (serve_queue.h: the models are not
 * thread-safe), which takes requests that arrive together as one batch. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_scorer.h"
#include "cmd_common.h"
#include "lw_cli.h"
#include "lwc_config.h"

#if LWC_HAVE_MHD
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "serve_queue.h"
#include "train_score_batch.h"
#include "wire.h"
#include "wire_receiver.h"
#include "wire_sender.h"
#include "wire_socket.h"
#endif

static void usage(void)
{
    printf("usage: lw serve --role sender|receiver|both --task NAME --checkpoint DIR [options]\n\n"
           "An HTTP server for the wire (docs/wire.md, \"HTTP\"): JSON in and out, soft-token messages as\n"
           "application/octet-stream. Endpoints by role:\n"
           "  GET  /health            all: {status, role, pair, task, bridge, M, requests, batches}\n"
           "  POST /v1/send           sender, both: {\"text\", \"dtype\"?, \"seq\"?} -> the message\n"
           "  POST /v1/receive        receiver, both: a message -> {seq, label, margin, scores}\n"
           "  POST /v1/classify       both: {\"text\", \"dtype\"?, \"seq\"?} -> send and receive in one process\n"
           "  POST /v1/receive-text   receiver, both: {\"text\", \"seq\"?} -> the receiver reading the text\n\n"
           "  --role R               sender, receiver or both (default both)\n"
           "  --task NAME            the task the bridge was trained for\n"
           "  --checkpoint DIR       a checkpoint folder (runs/<task>/final) or a bridge.safetensors\n"
           "  --listen HOST:PORT     default 127.0.0.1:8080; port 0 picks a free one. When ready, stdout\n"
           "                         gets \"lw serve: listening on HOST:PORT\"\n"
           "  --max-body BYTES       largest request body (default: the largest message, %zu); 413 above\n"
           "  --timeout-s S          a connection idle this long is closed (default 30)\n"
           "  --max-concurrent N     requests in flight at once (default 64); 503 above\n"
           "  --batch-window-ms MS   requests arriving within MS of the first are one batch (default 2)\n"
           "  --max-batch N          at most N requests a batch (default 8)\n"
           "  --packed               score a batch's /v1/receive and /v1/classify in one packed receiver\n"
           "                         pass (answers then equal lw eval --scores to float rounding, not bit\n"
           "                         for bit; docs/wire.md, \"One model worker, batches\")\n"
           "  --soft-tokens M        M the bridge was trained with (default: run.json beside DIR)\n"
           "  --tasks-dir DIR        default <manifest dir>/../tasks\n"
           "  --threads N            CPU threads of the model work (default $LWC_THREADS, else 1); any N\n"
           "                         gives bit-identical results\n"
           "SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0.\n",
#if LWC_HAVE_MHD
           (size_t)LW_WIRE_MAX_BYTES
#else
           (size_t)(208 + 64 * 65536 * 4 + 8)
#endif
    );
}

#if !LWC_HAVE_MHD

int lw_cmd_serve(const lw_pair *pair, int argc, char **argv)
{
    (void)pair;
    if (lw_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    fprintf(stderr, "lw serve: this build has no HTTP server (libmicrohttpd not found at configure): "
                    "apt-get install libmicrohttpd-dev, then ./configure && make\n");
    return 1;
}

#else

enum { ROLE_SENDER = 1, ROLE_RECEIVER = 2, ROLE_BOTH = 3 };
typedef enum { EP_HEALTH, EP_SEND, EP_RECEIVE, EP_CLASSIFY, EP_RECEIVE_TEXT, EP_NONE } endpoint;
static const struct {
    const char *path, *method;
    int roles;
} ENDPOINTS[] = {
    [EP_HEALTH] = {"/health", "GET", ROLE_BOTH},
    [EP_SEND] = {"/v1/send", "POST", ROLE_SENDER},
    [EP_RECEIVE] = {"/v1/receive", "POST", ROLE_RECEIVER},
    [EP_CLASSIFY] = {"/v1/classify", "POST", ROLE_BOTH},
    [EP_RECEIVE_TEXT] = {"/v1/receive-text", "POST", ROLE_RECEIVER},
};

typedef struct {
    const char *role_name, *task, *checkpoint, *listen, *tasks_dir;
    int role, M, max_concurrent, batch_window_ms, max_batch, timeout_s;
    int threads;               /* --threads; 0: $LWC_THREADS, else 1 */
    long max_body;
    bool packed;               /* a batch's scoring in one packed receiver pass */
} serve_args;

static bool parse(const lw_pair *pair, int argc, char **argv, serve_args *a)
{
    memset(a, 0, sizeof *a);
    a->role_name = "both";
    a->listen = "127.0.0.1:8080";
    a->M = pair->manifest.bridge.soft_tokens;
    a->max_body = (long)LW_WIRE_MAX_BYTES;
    a->timeout_s = 30;
    a->max_concurrent = 64;
    a->batch_window_ms = 2;
    a->max_batch = 8;
    bool has_M = false;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool ok = true;
        int v;
        if (!strcmp(o, "--role")) ok = lw_opt_str(argc, argv, &i, &a->role_name);
        else if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--listen")) ok = lw_opt_str(argc, argv, &i, &a->listen);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--max-body")) {
            ok = lw_opt_int(argc, argv, &i, 1, (long)LW_WIRE_MAX_BYTES, &v);
            a->max_body = v;
        } else if (!strcmp(o, "--timeout-s")) ok = lw_opt_int(argc, argv, &i, 1, 3600, &a->timeout_s);
        else if (!strcmp(o, "--max-concurrent")) ok = lw_opt_int(argc, argv, &i, 1, 4096, &a->max_concurrent);
        else if (!strcmp(o, "--batch-window-ms")) ok = lw_opt_int(argc, argv, &i, 0, 10000, &a->batch_window_ms);
        else if (!strcmp(o, "--max-batch")) ok = lw_opt_int(argc, argv, &i, 1, 256, &a->max_batch);
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--packed")) a->packed = true;
        else if (!strcmp(o, "--soft-tokens")) ok = has_M = lw_opt_int(argc, argv, &i, 1, LW_WIRE_MAX_M, &a->M);
        else {
            fprintf(stderr, "lw serve: unknown option '%s' (see lw serve --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (!strcmp(a->role_name, "sender")) a->role = ROLE_SENDER;
    else if (!strcmp(a->role_name, "receiver")) a->role = ROLE_RECEIVER;
    else if (!strcmp(a->role_name, "both")) a->role = ROLE_BOTH;
    else {
        fprintf(stderr, "lw serve: --role is sender, receiver or both, not '%s'\n", a->role_name);
        return false;
    }
    if (!a->task || !a->checkpoint) {
        fprintf(stderr, "lw serve: --task and --checkpoint are required (see --help)\n");
        return false;
    }
    char host[256];
    int port;
    if (lw_socket_parse(a->listen, host, sizeof host, &port)) {
        fprintf(stderr, "lw serve: --listen %s\n", lw_last_error());
        return false;
    }
    int seed;
    bool has_seed = true;
    if (lw_run_json_read(a->checkpoint, &seed, &has_seed, &a->M, &has_M)) {
        fprintf(stderr, "lw serve: %s\n", lw_last_error());
        return false;
    }
    return true;
}

/* ---- the server's state ------------------------------------------------ */

typedef struct {
    const lw_pair *pair;
    const serve_args *a;
    lw_wire_sender snd;
    lw_wire_receiver rcv;
    lw_bridge_scorer sc;           /* the receiver's scorer (wire_receiver.h) */
    lw_trainer_batch_scorer batch; /* --packed batches on sc's trainer */
    bool has_snd, has_rcv, has_sc;
    const lw_wire_identity *id;    /* for /health: the receiver's, else the sender's */
    double *scores;
    lw_serve_queue q;
    atomic_int in_flight;
    atomic_long requests;
} server;

/* One request, from its first byte to its answer. */
typedef struct {
    endpoint ep;
    char *body;
    size_t len, cap;
    bool too_big, counted;
    /* what the worker does */
    char *text;
    lw_wire_dtype dtype;
    uint64_t seq;
    /* the answer */
    int status;
    char *reply;
    size_t reply_len;
    const char *type;
} request;

/* {"error": msg} as the answer. */
static void answer_error(request *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s}", "error", msg);
    free(r->reply);
    r->reply = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    r->reply_len = r->reply ? strlen(r->reply) : 0;
    r->status = status;
    r->type = "application/json";
}

/* A failure of model work: bad input the checks before could not see
 * (LW_ERR_INVALID, LW_ERR_FORMAT) is the client's (422); the rest is ours. */
static void answer_failure(request *r, lw_status st, const char *what)
{
    answer_error(r, st == LW_ERR_INVALID || st == LW_ERR_FORMAT ? 422 : 500, "%s: %s", what, lw_last_error());
}

static void answer_scores_of(server *s, request *r, uint64_t seq, const double *scores)
{
    char *line;
    size_t len;
    lw_status st = lw_wire_receiver_line(&s->rcv, seq, scores, &line, &len);
    if (st) {
        answer_failure(r, st, "writing the answer");
        return;
    }
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    r->reply = line;
    r->reply_len = len;
    r->status = 200;
    r->type = "application/json";
}

static void answer_scores(server *s, request *r, uint64_t seq) { answer_scores_of(s, r, seq, s->scores); }

/* A message's bytes into scores, or the refusal: 422 for a message that
 * does not read (cut, damaged, wrong checksum), 409 for one made with
 * another pair, task, bridge, model or shape. */
static void receive_message(server *s, request *r, const uint8_t *buf, size_t len)
{
    lw_wire_message msg;
    lw_status st = lw_wire_decode(buf, len, &msg);
    if (st) {
        answer_error(r, 422, "not a readable soft-token message: %s", lw_last_error());
        return;
    }
    if ((st = lw_wire_receiver_check(&s->rcv, &msg))) answer_error(r, 409, "message refused: %s", lw_last_error());
    else if ((st = lw_wire_receiver_score(&s->rcv, &msg, s->scores))) answer_failure(r, st, "scoring");
    else answer_scores(s, r, msg.seq);
    lw_wire_message_free(&msg);
}

static void work_one(server *s, request *r)
{
    uint8_t *msg = NULL;
    size_t len = 0;
    lw_status st;
    switch (r->ep) {
    case EP_SEND:
        if ((st = lw_wire_sender_encode(&s->snd, r->text, r->seq, r->dtype, &msg, &len))) {
            answer_failure(r, st, "sending");
            break;
        }
        r->reply = (char *)msg;
        r->reply_len = len;
        r->status = 200;
        r->type = "application/octet-stream";
        msg = NULL;
        break;
    case EP_RECEIVE: receive_message(s, r, (const uint8_t *)r->body, r->len); break;
    case EP_CLASSIFY:   /* the same bytes /v1/send would answer, read as /v1/receive reads them */
        if ((st = lw_wire_sender_encode(&s->snd, r->text, r->seq, r->dtype, &msg, &len))) answer_failure(r, st, "sending");
        else receive_message(s, r, msg, len);
        break;
    case EP_RECEIVE_TEXT:
        if ((st = lw_wire_receiver_score_text(&s->rcv, r->text, s->scores))) answer_failure(r, st, "reading the text");
        else answer_scores(s, r, r->seq);
        break;
    default: answer_error(r, 500, "no work for this endpoint"); break;
    }
    free(msg);
}

/* A batch's /v1/receive and /v1/classify requests (with --packed): each
 * message made (classify), read and checked as receive_message does, then
 * every good one's labels scored in one packed receiver pass
 * (lw_trainer_score_batch); the refused ones get their 4xx, the
 * other endpoints their own work. If the pass fails, each of its requests
 * is answered with the failure. */
static void work_packed(server *s, lw_serve_job **jobs, int n)
{
    int L = s->rcv.task.n_labels, m = 0;
    lw_wire_message *msgs = calloc((size_t)n, sizeof *msgs);
    request **held = calloc((size_t)n, sizeof *held);
    const float **soft = calloc((size_t)n, sizeof *soft);
    double *scores = calloc((size_t)n * L, sizeof *scores);
    if (!msgs || !held || !soft || !scores) {
        for (int i = 0; i < n; i++) answer_error(jobs[i]->data, 500, "out of memory for a batch of %d", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        request *r = jobs[i]->data;
        if (r->ep != EP_RECEIVE && r->ep != EP_CLASSIFY) {
            work_one(s, r);
            continue;
        }
        uint8_t *made = NULL;
        const uint8_t *buf = (const uint8_t *)r->body;
        size_t len = r->len;
        lw_status st;
        if (r->ep == EP_CLASSIFY) {
            if ((st = lw_wire_sender_encode(&s->snd, r->text, r->seq, r->dtype, &made, &len))) {
                answer_failure(r, st, "sending");
                continue;
            }
            buf = made;
        }
        if ((st = lw_wire_decode(buf, len, &msgs[m])))
            answer_error(r, 422, "not a readable soft-token message: %s", lw_last_error());
        else if ((st = lw_wire_receiver_check(&s->rcv, &msgs[m]))) {
            answer_error(r, 409, "message refused: %s", lw_last_error());
            lw_wire_message_free(&msgs[m]);
        } else {
            soft[m] = msgs[m].soft;
            held[m++] = r;
        }
        free(made);
    }
    if (m > 0) {
        lw_status st = lw_trainer_score_batch(&s->sc.tr, &s->batch, m, NULL, NULL, soft, scores);
        for (int j = 0; j < m; j++)
            if (st) answer_failure(held[j], st, "scoring");
            else answer_scores_of(s, held[j], msgs[j].seq, scores + (size_t)j * L);
    }
    for (int j = 0; j < m; j++) lw_wire_message_free(&msgs[j]);
done:
    free(msgs);
    free(held);
    free(soft);
    free(scores);
}

/* The worker's pass over a batch. By default a batch's requests are scored
 * one after another in this one pass: each answer is the one it would get
 * alone, bit for bit, and equal to lw eval --scores. With --packed (a
 * receiver) they go through one packed receiver pass instead (work_packed):
 * every weight read once for the batch, the answers equal to float
 * rounding (docs/wire.md). */
static void work_batch(void *ctx, lw_serve_job **jobs, int n)
{
    server *s = ctx;
    if (s->a->packed && s->has_rcv) {
        work_packed(s, jobs, n);
        return;
    }
    for (int i = 0; i < n; i++) work_one(ctx, jobs[i]->data);
}

/* ---- HTTP ---------------------------------------------------------------- */

static endpoint find_endpoint(const char *url)
{
    for (int e = 0; e < EP_NONE; e++)
        if (!strcmp(url, ENDPOINTS[e].path)) return (endpoint)e;
    return EP_NONE;
}

static void answer_health(server *s, request *r)
{
    char bridge[17];
    long jobs, batches;
    int largest;
    snprintf(bridge, sizeof bridge, "%016" PRIx64, s->id->bridge);
    lw_serve_queue_stats(&s->q, &jobs, &batches, &largest);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:i}", "status", "ok", "role", s->a->role_name, "pair",
                          s->id->pair, "task", s->id->task, "bridge", bridge, "M", s->a->M, "requests",
                          (json_int_t)atomic_load(&s->requests), "batches", (json_int_t)batches, "largest_batch",
                          largest);
    r->reply = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!r->reply) answer_error(r, 500, "out of memory");
    else {
        r->reply_len = strlen(r->reply);
        r->status = 200;
        r->type = "application/json";
    }
}

/* The JSON body of send, classify and receive-text: "text" (a string),
 * "dtype" and "seq" optional. false: r holds the 400. */
static bool parse_text_request(request *r)
{
    json_error_t err;
    json_t *o = json_loadb(r->body ? r->body : "", r->len, 0, &err);
    bool ok = false;
    const char *dt;
    json_t *seq = o ? json_object_get(o, "seq") : NULL, *dtype = o ? json_object_get(o, "dtype") : NULL;
    r->dtype = LW_WIRE_FP32;
    if (!o) answer_error(r, 400, "malformed JSON: %s (line %d, column %d)", err.text, err.line, err.column);
    else if (!json_is_object(o)) answer_error(r, 400, "the body is a JSON object {\"text\": ...}");
    else if (!json_is_string(json_object_get(o, "text")))
        answer_error(r, 400, "missing field \"text\" (a string)");
    else if (dtype && (!(dt = json_string_value(dtype)) || !lw_wire_dtype_from_name(dt, &r->dtype)))
        answer_error(r, 400, "\"dtype\" is \"fp32\", \"bf16\", \"fp16\" or \"int8\"");
    else if (seq && (!json_is_integer(seq) || json_integer_value(seq) < 0))
        answer_error(r, 400, "\"seq\" is an integer >= 0");
    else if (!(r->text = strdup(json_string_value(json_object_get(o, "text")))))
        answer_error(r, 500, "out of memory");
    else {
        r->seq = seq ? (uint64_t)json_integer_value(seq) : 0;
        ok = true;
    }
    json_decref(o);
    return ok;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, request *r, const char *allow)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->reply_len, r->reply ? r->reply : (char *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->type ? r->type : "application/json");
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    server *s = cls;
    request *r = *con_cls;
    (void)version;
    if (!r) {   /* the headers are in: count the request, refuse early what can be */
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        *con_cls = r;
        r->counted = true;
        atomic_fetch_add(&s->requests, 1);
        if (atomic_fetch_add(&s->in_flight, 1) >= s->a->max_concurrent) {
            answer_error(r, 503, "busy: %d requests in flight (--max-concurrent)", s->a->max_concurrent);
            return send_reply(c, r, NULL);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->a->max_body) {
            answer_error(r, 413, "body of %s bytes; this server takes at most %ld (--max-body)", cl, s->a->max_body);
            return send_reply(c, r, NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) {   /* more of the body */
        if (!r->too_big && r->len + *upload_size > (size_t)s->a->max_body) r->too_big = true;
        if (!r->too_big) {
            if (r->len + *upload_size > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + *upload_size) cap *= 2;
                char *b = realloc(r->body, cap);
                if (!b) return MHD_NO;
                r->body = b;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* the whole request is in */
    if (r->status) return send_reply(c, r, NULL);   /* answered already (a retry by MHD) */
    r->ep = find_endpoint(url);
    if (r->ep == EP_NONE) {
        answer_error(r, 404, "no endpoint %s (GET /health, POST /v1/send, /v1/receive, /v1/classify, "
                             "/v1/receive-text)", url);
        return send_reply(c, r, NULL);
    }
    if (strcmp(method, ENDPOINTS[r->ep].method)) {
        answer_error(r, 405, "%s takes %s, not %s", url, ENDPOINTS[r->ep].method, method);
        return send_reply(c, r, ENDPOINTS[r->ep].method);
    }
    if ((ENDPOINTS[r->ep].roles & s->a->role) == 0 || (r->ep == EP_CLASSIFY && s->a->role != ROLE_BOTH)) {
        answer_error(r, 404, "%s is not served by a %s (this server runs --role %s)", url,
                     s->a->role == ROLE_SENDER ? "sender" : "receiver", s->a->role_name);
        return send_reply(c, r, NULL);
    }
    if (r->too_big) {
        answer_error(r, 413, "body over %ld bytes (--max-body)", s->a->max_body);
        return send_reply(c, r, NULL);
    }
    if (r->ep == EP_HEALTH) answer_health(s, r);
    else if (r->ep == EP_RECEIVE && r->len == 0) answer_error(r, 422, "empty body: expected a soft-token message");
    else if (r->ep == EP_RECEIVE || parse_text_request(r)) {
        lw_serve_job job = {.data = r};
        lw_serve_queue_run(&s->q, &job);
    }
    if (!r->reply && !r->status) answer_error(r, 500, "no answer");
    return send_reply(c, r, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    server *s = cls;
    request *r = *con_cls;
    (void)c;
    (void)toe;
    if (!r) return;
    if (r->counted) atomic_fetch_sub(&s->in_flight, 1);
    free(r->body);
    free(r->text);
    free(r->reply);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("lw serve: libmicrohttpd: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* ---- the process ----------------------------------------------------------- */

static lw_status open_models(server *s)
{
    const serve_args *a = s->a;
    lw_status st = LW_OK;
    if (a->role & ROLE_SENDER) {
        char task_path[4096];
        lw_task task = {0};
        st = lw_task_file(&s->pair->manifest, a->tasks_dir, a->task, task_path, sizeof task_path);
        if (!st) st = lw_task_load(task_path, &task);   /* a task that does not exist is refused here */
        lw_task_free(&task);
        if (!st) st = lw_wire_sender_open(&s->snd, &s->pair->manifest, a->task, a->checkpoint, a->M);
        if (!st) s->has_snd = true, s->id = &s->snd.head.id;
    }
    if (!st && (a->role & ROLE_RECEIVER)) {
        st = lw_wire_receiver_open(&s->rcv, s->pair, a->checkpoint, a->task, a->tasks_dir, NULL);
        if (!st) s->has_rcv = true, s->id = &s->rcv.mine;
        if (!st) st = lw_bridge_scorer_open(&s->sc, s->pair, &s->rcv.task, s->rcv.M, a->checkpoint, "cpu");
        if (!st) s->has_sc = true, lw_wire_receiver_attach(&s->rcv, &s->sc.tr, s->sc.side.receiver, s->sc.side.tok);
        if (!st && s->rcv.M != a->M)
            st = lw_fail(LW_ERR_INVALID, "--soft-tokens %d; the checkpoint's run.json says %d", a->M, s->rcv.M);
        if (!st && !(s->scores = calloc((size_t)s->rcv.task.n_labels, sizeof *s->scores)))
            st = lw_fail(LW_ERR_NOMEM, "serve: out of memory");
    }
    return st;
}

static int run(const lw_pair *pair, const serve_args *a)
{
    server s = {.pair = pair, .a = a};
    atomic_init(&s.in_flight, 0);
    atomic_init(&s.requests, 0);
    struct MHD_Daemon *d = NULL;
    int lfd = -1, port = 0, sig = 0;
    /* SIGTERM and SIGINT are taken by sigwait below: blocked in every thread */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* the pool sized as lw eval sizes it (its workers started here, after
     * the mask, so that they leave the signals to sigwait): the products cut
     * into the same blocks, so /v1/classify gives lw eval --scores' scores */
    if (!lw_threads_apply("serve", a->threads)) return 2;
    lw_status st = open_models(&s);
    if (!st) st = lw_serve_queue_start(&s.q, a->max_batch, a->batch_window_ms, work_batch, &s);
    if (!st) st = lw_socket_listen(a->listen, 128, &lfd, &port);
    if (!st) {
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                                 MHD_USE_ERROR_LOG,
                             0, NULL, NULL, on_request, &s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                             MHD_OPTION_LISTEN_SOCKET, lfd,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                             (unsigned)(a->max_concurrent + 16), MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
                             MHD_OPTION_END);
        if (!d) st = lw_fail(LW_ERR_EXTERNAL, "libmicrohttpd would not start on %s", a->listen);
    }
    if (!st) {
        char host[256];
        int p;
        lw_socket_parse(a->listen, host, sizeof host, &p);
        printf("lw serve: listening on %s:%d (role %s, task %s)\n", host, port, a->role_name, a->task);
        fflush(stdout);
        while (sigwait(&stop, &sig) != 0) {}
        /* graceful: no new connections, the ones in flight finish */
        fprintf(stderr, "lw serve: %s: stopping (finishing %d requests in flight)\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&s.in_flight));
        MHD_socket q = MHD_quiesce_daemon(d);
        if (q != MHD_INVALID_SOCKET) close(q), lfd = -1;
        for (int waited = 0; atomic_load(&s.in_flight) > 0 && waited < a->timeout_s * 100; waited++) {
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(d);
    } else if (lfd >= 0) close(lfd);
    lw_serve_queue_stop(&s.q);
    long jobs = 0, batches = 0;
    int largest = 0;
    if (!st) {
        lw_serve_queue_stats(&s.q, &jobs, &batches, &largest);
        fprintf(stderr, "lw serve: stopped: %ld requests, %ld model jobs in %ld batches (largest %d)\n",
                atomic_load(&s.requests), jobs, batches, largest);
    }
    if (s.has_snd) lw_wire_sender_close(&s.snd);
    if (s.has_rcv) lw_wire_receiver_close(&s.rcv);
    lw_trainer_batch_scorer_free(&s.batch);
    if (s.has_sc) lw_bridge_scorer_close(&s.sc);
    free(s.scores);
    if (st) {
        fprintf(stderr, "lw serve: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}

int lw_cmd_serve(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    serve_args a;
    if (!parse(pair, argc, argv, &a)) return 2;
    return run(pair, &a);
}

#endif
