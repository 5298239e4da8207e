/* lw bench --method bridge-wire: the wire between two processes on one
 * machine (docs/wire.md, docs/perf.md). This process is the sender (the
 * sender model and the bridge, wire_sender.h); it starts the receiver as a
 * second process of the same binary and times each example from its text to
 * its label scores back here:
 *
 *   --transport http    the receiver is `lw serve --role receiver`; each
 *                       example is one POST /v1/receive of its message, and
 *                       the text relay baseline one POST /v1/receive-text of
 *                       its text (the receiver reads the text itself), both
 *                       to the same receiver process. C client threads post
 *                       at once; the sender model (not thread-safe) makes
 *                       one message at a time under a lock.
 *   --transport socket  the receiver is `lw receive --listen`: one TCP
 *                       stream of messages in, one scores line an example
 *                       back on its stdout (a pipe). C is how many examples
 *                       may be in flight on the stream at once. lw receive
 *                       reads only messages, so there is no text relay here.
 *
 * Per method and client count: latency percentiles (p50, p99) and mean per
 * example, examples/s, and bytes per example: the payload (message or text
 * JSON) and everything on the wire (HTTP headers both ways included). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "cmd_common.h"
#include "lw_cli.h"
#include "wire.h"
#include "wire_sender.h"
#include "wire_socket.h"

enum { MAX_CLIENT_COUNTS = 8, MAX_CLIENTS = 64 };

typedef struct {
    const char *task, *checkpoint, *split, *json, *transport, *clients_list;
    int limit, M, n_counts, counts[MAX_CLIENT_COUNTS];
    lw_wire_dtype dtype;
    bool has_M;
} wire_args;

static void usage(void)
{
    printf("usage: lw bench --method bridge-wire --task NAME --checkpoint DIR --split FILE [options]\n\n"
           "The wire between two processes on this machine: this one runs the sender and the bridge, a\n"
           "second one (started here) the receiver. Times each example from its text to its label\n"
           "scores back here, against the text relay (the receiver reads the text itself), and counts\n"
           "the bytes on the wire (docs/perf.md).\n\n"
           "  --transport T        http (lw serve --role receiver; default) or socket (lw receive --listen;\n"
           "                       the bridge only)\n"
           "  --clients LIST       concurrent clients (http) or examples in flight (socket); default 1,8\n"
           "  --split FILE         JSONL rows with a \"text\"\n"
           "  --limit N            the first N rows (default 40)\n"
           "  --dtype D            the messages' dtype: fp32 (default), bf16, fp16, int8\n"
           "  --json FILE          the results as JSON too\n");
}

static bool parse(const lw_pair *pair, int argc, char **argv, wire_args *a)
{
    memset(a, 0, sizeof *a);
    a->transport = "http";
    a->clients_list = "1,8";
    a->limit = 40;
    a->dtype = LW_WIRE_FP32;
    a->M = pair->manifest.bridge.soft_tokens;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        bool ok = true;
        if (!strcmp(o, "--method")) ok = lw_opt_str(argc, argv, &i, &v);
        else if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--split")) ok = lw_opt_str(argc, argv, &i, &a->split);
        else if (!strcmp(o, "--json")) ok = lw_opt_str(argc, argv, &i, &a->json);
        else if (!strcmp(o, "--transport")) ok = lw_opt_str(argc, argv, &i, &a->transport);
        else if (!strcmp(o, "--clients")) ok = lw_opt_str(argc, argv, &i, &a->clients_list);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 20, &a->limit);
        else if (!strcmp(o, "--dtype")) {
            ok = lw_opt_str(argc, argv, &i, &v);
            if (ok && !lw_wire_dtype_from_name(v, &a->dtype)) {
                fprintf(stderr, "lw bench: --dtype is fp32, bf16, fp16 or int8, not '%s'\n", v);
                return false;
            }
        } else {
            fprintf(stderr, "lw bench: --method bridge-wire: unknown option '%s' (see --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (strcmp(a->transport, "http") && strcmp(a->transport, "socket")) {
        fprintf(stderr, "lw bench: --transport is http or socket, not '%s'\n", a->transport);
        return false;
    }
    for (const char *p = a->clients_list; *p;) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || c < 1 || c > MAX_CLIENTS || a->n_counts == MAX_CLIENT_COUNTS || (*end && *end != ',')) {
            fprintf(stderr, "lw bench: --clients is a list of 1..%d (at most %d), not '%s'\n", MAX_CLIENTS,
                    MAX_CLIENT_COUNTS, a->clients_list);
            return false;
        }
        a->counts[a->n_counts++] = (int)c;
        p = *end ? end + 1 : end;
    }
    if (!a->task || !a->checkpoint || !a->split || a->n_counts == 0) {
        fprintf(stderr, "lw bench: --method bridge-wire needs --task, --checkpoint and --split (see --help)\n");
        return false;
    }
    int seed;
    bool has_seed = true;
    if (lw_run_json_read(a->checkpoint, &seed, &has_seed, &a->M, &a->has_M)) {
        fprintf(stderr, "lw bench: %s\n", lw_last_error());
        return false;
    }
    return true;
}

/* The texts of the first limit rows. */
static lw_status read_texts(const char *path, int limit, char ***texts, int *n)
{
    FILE *f = fopen(path, "r");
    if (!f) return lw_fail(LW_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    *n = 0;
    *texts = calloc((size_t)limit, sizeof **texts);
    lw_status st = *texts ? LW_OK : lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    while (!st && *n < limit && getline(&line, &cap, f) >= 0) {
        lineno++;
        json_error_t err;
        json_t *row = json_loads(line, 0, &err);
        const char *t = json_string_value(json_object_get(row, "text"));
        if (!row && strspn(line, " \r\n") == strlen(line)) continue;
        if (!t) st = lw_fail(LW_ERR_FORMAT, "%s:%ld: no \"text\" string", path, lineno);
        else if (!((*texts)[(*n)++] = strdup(t))) st = lw_fail(LW_ERR_NOMEM, "bench: out of memory");
        json_decref(row);
    }
    free(line);
    fclose(f);
    if (!st && *n == 0) st = lw_fail(LW_ERR_FORMAT, "%s: no rows", path);
    return st;
}

/* ---- the receiver process --------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    FILE *out;       /* its stdout (socket: the scores lines) */
} child;

/* Copies the receiver's stderr to ours until it closes. */
static void *forward(void *arg)
{
    FILE *f = arg;
    char buf[1024];
    while (fgets(buf, sizeof buf, f)) fputs(buf, stderr);
    fclose(f);
    return NULL;
}

/* Starts this binary with args; waits for "listening on ... PORT" on its
 * stdout (serve) or stderr (receive). */
static lw_status child_start(child *c, char *const args[], bool port_on_stderr)
{
    int out[2], err[2];
    memset(c, 0, sizeof *c);
    if (pipe(out) || pipe(err)) return lw_fail(LW_ERR_IO, "bench: pipe: %s", strerror(errno));
    c->pid = fork();
    if (c->pid < 0) return lw_fail(LW_ERR_IO, "bench: fork: %s", strerror(errno));
    if (c->pid == 0) {
        dup2(out[1], 1);
        if (port_on_stderr) dup2(err[1], 2);
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    c->out = fdopen(out[0], "r");
    FILE *ready = port_on_stderr ? fdopen(err[0], "r") : c->out;
    if (!port_on_stderr) close(err[0]);
    char line[512];
    const char *at;
    while (ready && fgets(line, sizeof line, ready))
        if ((at = strstr(line, "listening on"))) {
            const char *colon = strrchr(at, ':'), *word = strstr(at, "port ");
            c->port = atoi(word ? word + 5 : colon ? colon + 1 : "0");
            break;
        }
    if (port_on_stderr && ready) {   /* the rest of its stderr goes on to ours */
        pthread_t th;
        if (pthread_create(&th, NULL, forward, ready) == 0) pthread_detach(th);
        else fclose(ready);
    }
    return c->port > 0 ? LW_OK : lw_fail(LW_ERR_EXTERNAL, "bench: the receiver process did not start (see above)");
}

static int child_stop(child *c)
{
    int status = 0;
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        waitpid(c->pid, &status, 0);
    }
    if (c->out) fclose(c->out);
    c->pid = 0;
    c->out = NULL;
    return status;
}

/* ---- HTTP: one request a connection ----------------------------------- */

/* POST body to path; *code and the response body (malloc'd, NUL-ended);
 * *wire += bytes both ways. */
static lw_status http_post(int port, const char *path, const char *type, const void *body, size_t len, int *code,
                           char **reply, long *wire)
{
    char spec[64], head[512];
    int fd;
    snprintf(spec, sizeof spec, "127.0.0.1:%d", port);
    lw_status st = lw_socket_connect(spec, &fd);
    if (st) return st;
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      path, port, type, len);
    const char *parts[2] = {head, body};
    size_t sizes[2] = {(size_t)hl, len};
    for (int p = 0; p < 2 && !st; p++)
        for (size_t off = 0; off < sizes[p];) {
            ssize_t k = send(fd, parts[p] + off, sizes[p] - off, MSG_NOSIGNAL);
            if (k <= 0) {
                st = lw_fail(LW_ERR_IO, "bench: sending to %s: %s", spec, strerror(errno));
                break;
            }
            off += (size_t)k;
        }
    *wire += hl + (long)len;
    size_t cap = 4096, n = 0;
    char *buf = st ? NULL : malloc(cap);
    if (!st && !buf) st = lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    for (ssize_t k; !st && (k = recv(fd, buf + n, cap - n - 1, 0)) != 0;) {
        if (k < 0) {
            if (errno == EINTR) continue;
            st = lw_fail(LW_ERR_IO, "bench: reading from %s: %s", spec, strerror(errno));
            break;
        }
        n += (size_t)k;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) st = lw_fail(LW_ERR_NOMEM, "bench: out of memory");
            else buf = b;
        }
    }
    close(fd);
    *wire += (long)n;
    char *sep = st ? NULL : (buf[n] = '\0', strstr(buf, "\r\n\r\n"));
    if (!st && (!sep || sscanf(buf, "HTTP/1.%*d %d", code) != 1))
        st = lw_fail(LW_ERR_FORMAT, "bench: not an HTTP answer from %s", spec);
    if (!st && !(*reply = strdup(sep + 4))) st = lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    free(buf);
    return st;
}

/* ---- timing ------------------------------------------------------------ */

typedef struct {
    const char *method;
    int clients, n, errors;
    double wall_s, *lat;     /* [n] seconds */
    long payload, wire;      /* bytes, all examples */
} result;

typedef struct {
    const wire_args *a;
    lw_wire_sender *snd;
    pthread_mutex_t *snd_lock;
    char **texts;
    int n, port;
    bool relay;
    atomic_int next;
    result *r;
    pthread_mutex_t mu;      /* r's sums */
} http_round;

static void *http_client(void *arg)
{
    http_round *h = arg;
    int i;
    while ((i = atomic_fetch_add(&h->next, 1)) < h->n) {
        double t0 = lw_now_s();
        long wire = 0, payload = 0;
        int code = 0;
        char *reply = NULL, *body = NULL;
        uint8_t *msg = NULL;
        size_t len = 0;
        lw_status st;
        if (h->relay) {
            json_t *o = json_pack("{s:s,s:i}", "text", h->texts[i], "seq", i);
            body = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            st = body ? LW_OK : lw_fail(LW_ERR_NOMEM, "bench: out of memory");
            if (!st) st = http_post(h->port, "/v1/receive-text", "application/json", body, payload = (long)strlen(body),
                                    &code, &reply, &wire);
        } else {
            pthread_mutex_lock(h->snd_lock);
            st = lw_wire_sender_encode(h->snd, h->texts[i], (uint64_t)i, h->a->dtype, &msg, &len);
            pthread_mutex_unlock(h->snd_lock);
            if (!st) st = http_post(h->port, "/v1/receive", "application/octet-stream", msg, payload = (long)len,
                                    &code, &reply, &wire);
        }
        double t = lw_now_s() - t0;
        pthread_mutex_lock(&h->mu);
        h->r->lat[i] = t;
        h->r->payload += payload;
        h->r->wire += wire;
        if (st || code != 200 || !reply || strncmp(reply, "{\"seq\":", 7)) {
            if (h->r->errors++ == 0)
                fprintf(stderr, "lw bench: example %d: %s\n", i, st ? lw_last_error() : reply ? reply : "no answer");
        }
        pthread_mutex_unlock(&h->mu);
        free(reply);
        free(body);
        free(msg);
    }
    return NULL;
}

static lw_status round_http(const wire_args *a, lw_wire_sender *snd, char **texts, int n, int port, bool relay,
                            int clients, result *r)
{
    pthread_mutex_t snd_lock = PTHREAD_MUTEX_INITIALIZER;
    http_round h = {.a = a, .snd = snd, .snd_lock = &snd_lock, .texts = texts, .n = n, .port = port,
                    .relay = relay, .r = r};
    atomic_init(&h.next, 0);
    pthread_mutex_init(&h.mu, NULL);
    pthread_t th[MAX_CLIENTS];
    int started = 0;
    double t0 = lw_now_s();
    for (; started < clients; started++)
        if (pthread_create(&th[started], NULL, http_client, &h)) break;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    r->wall_s = lw_now_s() - t0;
    pthread_mutex_destroy(&h.mu);
    return started == clients ? LW_OK : lw_fail(LW_ERR_EXTERNAL, "bench: cannot start %d client threads", clients);
}

/* socket: up to `clients` examples in flight on one stream. */
static lw_status round_socket(const wire_args *a, lw_wire_sender *snd, char **texts, int n, child *c, FILE *sock,
                              int clients, result *r)
{
    double *t0 = calloc((size_t)n, sizeof *t0);
    char *line = NULL;
    size_t cap = 0;
    int sent = 0, got = 0;
    lw_status st = t0 ? LW_OK : lw_fail(LW_ERR_NOMEM, "bench: out of memory");
    double start = lw_now_s();
    while (!st && got < n) {
        if (sent < n && sent - got < clients) {
            uint8_t *msg = NULL;
            size_t len;
            t0[sent] = lw_now_s();
            st = lw_wire_sender_encode(snd, texts[sent], (uint64_t)sent, a->dtype, &msg, &len);
            if (!st) st = lw_wire_write_frame(sock, "the socket", msg, len);
            if (!st && fflush(sock)) st = lw_fail(LW_ERR_IO, "bench: writing to the socket: %s", strerror(errno));
            free(msg);
            r->payload += (long)len;
            r->wire += (long)len;
            sent++;
            continue;
        }
        if (getline(&line, &cap, c->out) < 0) {
            st = lw_fail(LW_ERR_IO, "bench: the receiver stopped after %d lines", got);
            break;
        }
        long seq = -1;
        if (sscanf(line, "{\"seq\":%ld", &seq) != 1 || seq < 0 || seq >= sent) {
            r->errors++;
            continue;
        }
        r->lat[seq] = lw_now_s() - t0[seq];
        r->wire += (long)strlen(line);
        got++;
    }
    r->wall_s = lw_now_s() - start;
    free(line);
    free(t0);
    return st;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The p-quantile of sorted v[n]: the smallest value with at least p * n at or below it. */
static double quantile(const double *v, int n, double p)
{
    int i = (int)(p * n + 0.999999) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static json_t *result_json(result *r, double *p50, double *p99, double *mean)
{
    qsort(r->lat, (size_t)r->n, sizeof *r->lat, cmp_double);
    double s = 0;
    for (int i = 0; i < r->n; i++) s += r->lat[i];
    *p50 = quantile(r->lat, r->n, 0.5) * 1e3;
    *p99 = quantile(r->lat, r->n, 0.99) * 1e3;
    *mean = s / r->n * 1e3;
    return json_pack("{s:s,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:f,s:f}", "method", r->method, "clients", r->clients,
                     "examples", r->n, "errors", r->errors, "p50_ms", *p50, "p99_ms", *p99, "mean_ms", *mean,
                     "examples_per_s", r->n / r->wall_s, "payload_bytes_per_example", (double)r->payload / r->n,
                     "wire_bytes_per_example", (double)r->wire / r->n);
}

static int run(const lw_pair *pair, const wire_args *a, const char *self_argv0)
{
    (void)self_argv0;
    const lw_manifest *m = &pair->manifest;
    char **texts = NULL, M_s[16];
    int n = 0, errors = 0;
    bool http = !strcmp(a->transport, "http"), snd_open = false;
    lw_wire_sender snd;
    child c = {0};
    FILE *sock = NULL;
    json_t *rows = json_array();
    snprintf(M_s, sizeof M_s, "%d", a->M);
    signal(SIGPIPE, SIG_IGN);   /* a receiver process that died is a write error, not a kill */
    lw_status st = read_texts(a->split, a->limit, &texts, &n);
    if (!st) st = lw_wire_sender_open(&snd, m, a->task, a->checkpoint, a->M);
    if (!st) snd_open = true;
    if (!st && http) {
        char *const args[] = {"lw", "serve", "--role", "receiver", "--task", (char *)a->task, "--checkpoint",
                              (char *)a->checkpoint, "--listen", "127.0.0.1:0", "--soft-tokens", M_s,
                              "--max-concurrent", "256", NULL};
        st = child_start(&c, args, false);
    } else if (!st) {
        char *const args[] = {"lw", "receive", "--checkpoint", (char *)a->checkpoint, "--task", (char *)a->task,
                              "--listen", "127.0.0.1:0", NULL};
        st = child_start(&c, args, true);
        char spec[64];
        int fd;
        snprintf(spec, sizeof spec, "127.0.0.1:%d", c.port);
        if (!st) st = lw_socket_connect(spec, &fd);
        if (!st && !(sock = fdopen(fd, "wb"))) st = lw_fail(LW_ERR_IO, "bench: fdopen: %s", strerror(errno));
    }
    printf("lw bench --method bridge-wire --transport %s: pair %s, task %s, %d examples, %s messages of %d x %d\n",
           a->transport, m->name, a->task, n, lw_wire_dtype_name(a->dtype), a->M, m->receiver.hidden);
    printf("%-12s %7s %9s %9s %9s %10s %15s %15s\n", "method", "clients", "p50 ms", "p99 ms", "mean ms", "examples/s",
           "payload B/ex", "wire B/ex");
    /* warm-up: one example each way (first-touch of buffers, the receiver's text model) */
    if (!st && http) {
        result w = {.method = "warm-up", .clients = 1, .n = 1, .lat = (double[1]){0}};
        st = round_http(a, &snd, texts, 1, c.port, false, 1, &w);
        if (!st) st = round_http(a, &snd, texts, 1, c.port, true, 1, &w);
    }
    for (int k = 0; !st && k < a->n_counts; k++)
        for (int relay = 0; !st && relay <= (http ? 1 : 0); relay++) {
            result r = {.method = relay ? "text-relay" : "bridge-wire", .clients = a->counts[k], .n = n};
            if (!(r.lat = calloc((size_t)n, sizeof *r.lat))) {
                st = lw_fail(LW_ERR_NOMEM, "bench: out of memory");
                break;
            }
            st = http ? round_http(a, &snd, texts, n, c.port, relay, r.clients, &r)
                      : round_socket(a, &snd, texts, n, &c, sock, r.clients, &r);
            double p50, p99, mean;
            json_t *j = st ? NULL : result_json(&r, &p50, &p99, &mean);
            if (j) {
                json_object_set_new(j, "transport", json_string(a->transport));
                json_array_append_new(rows, j);
                printf("%-12s %7d %9.1f %9.1f %9.1f %10.2f %15.1f %15.1f\n", r.method, r.clients, p50, p99, mean,
                       n / r.wall_s, (double)r.payload / n, (double)r.wire / n);
                fflush(stdout);
            }
            errors += r.errors;
            free(r.lat);
        }
    if (sock) fclose(sock);   /* the end of the stream: lw receive exits */
    int cs = child_stop(&c);
    (void)cs;
    if (!st && a->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:o}", "benchmark", "bridge-wire", "transport", a->transport,
                              "pair", m->name, "task", a->task, "examples", n, "M", a->M, "results", json_incref(rows));
        if (!o || json_dump_file(o, a->json, JSON_INDENT(2) | JSON_PRESERVE_ORDER))
            st = lw_fail(LW_ERR_IO, "cannot write %s", a->json);
        json_decref(o);
    }
    json_decref(rows);
    if (snd_open) lw_wire_sender_close(&snd);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    if (!st && errors) st = lw_fail(LW_ERR_EXTERNAL, "%d examples failed (the first is above)", errors);
    if (st) {
        fprintf(stderr, "lw bench: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}

int lw_bench_wire(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    wire_args a;
    if (!parse(pair, argc, argv, &a)) return 2;
    return run(pair, &a, argv[0]);
}
