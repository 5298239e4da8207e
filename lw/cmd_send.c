/* lw send: the sender and the bridge as a process of their own. Each text
 * (--text, or the "text" of each JSONL row of --input) goes through the
 * sender (sender_states.h) and the trained bridge; its M soft tokens go out
 * as one message (wire.h) to --out (a file or tcp:HOST:PORT) or stdout, for
 * lw receive. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_common.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "wire.h"
#include "wire_sender.h"
#include "wire_socket.h"

static void usage(const lw_pair *pair)
{
    printf("usage: lw send --task NAME --checkpoint DIR (--text TEXT | --input FILE) [options]\n\n"
           "Runs the sender and the trained bridge on each text and writes its M soft tokens as one\n"
           "message (docs/wire.md) for `lw receive`: messages follow one another in the output.\n\n"
           "  --task NAME          the task the bridge was trained for (named in the message)\n"
           "  --checkpoint DIR     a checkpoint folder (runs/<task>/final) or a bridge.safetensors\n"
           "  --text TEXT          one text\n"
           "  --input FILE         JSONL, one {\"text\": ...} object a line (other fields ignored, blank\n"
           "                       lines skipped); - reads stdin, one message out per line in\n"
           "  --limit N            the first N rows only\n"
           "  --out FILE           where the messages go (default stdout); a file appears whole or not at all\n"
           "  --out tcp:HOST:PORT  or a TCP stream to `lw receive --listen HOST:PORT` (docs/wire.md)\n"
           "  --dtype D            fp32 (default), bf16, fp16 or int8 (per-token scales)\n"
           "  --seq N              the first message's seq (default 0; each next one adds 1)\n"
           "  --soft-tokens M      M the bridge was trained with (default: run.json beside DIR, else %d)\n"
           "  --tasks-dir DIR      default <manifest dir>/../tasks\n"
           LW_THREADS_HELP
           "  --quiet              no progress line\n",
           pair->manifest.bridge.soft_tokens);
}

typedef struct {
    const char *task, *checkpoint, *text, *input, *out, *tasks_dir;
    lw_wire_dtype dtype;
    int limit, M, seq;
    int threads;               /* --threads; 0: $LWC_THREADS, else 1 */
    bool has_M, quiet;
} send_args;

static bool parse(const lw_pair *pair, int argc, char **argv, send_args *a)
{
    memset(a, 0, sizeof *a);
    a->dtype = LW_WIRE_FP32;
    a->M = pair->manifest.bridge.soft_tokens;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *dt = NULL;
        bool ok = true;
        if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--text")) ok = lw_opt_str(argc, argv, &i, &a->text);
        else if (!strcmp(o, "--input")) ok = lw_opt_str(argc, argv, &i, &a->input);
        else if (!strcmp(o, "--out")) ok = lw_opt_str(argc, argv, &i, &a->out);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--limit")) ok = lw_opt_int(argc, argv, &i, 1, 1 << 28, &a->limit);
        else if (!strcmp(o, "--seq")) ok = lw_opt_int(argc, argv, &i, 0, 2147483647L, &a->seq);
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--soft-tokens")) ok = a->has_M = lw_opt_int(argc, argv, &i, 1, LW_WIRE_MAX_M, &a->M);
        else if (!strcmp(o, "--quiet")) a->quiet = true;
        else if (!strcmp(o, "--dtype")) {
            ok = lw_opt_str(argc, argv, &i, &dt);
            if (ok && !lw_wire_dtype_from_name(dt, &a->dtype)) {
                fprintf(stderr, "lw send: --dtype is fp32, bf16, fp16 or int8, not '%s'\n", dt);
                return false;
            }
        } else {
            fprintf(stderr, "lw send: unknown option '%s' (see lw send --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (!a->task || !a->checkpoint || !a->text == !a->input) {
        fprintf(stderr, "lw send: --task, --checkpoint and one of --text or --input are required (see --help)\n");
        return false;
    }
    return true;
}

/* What sends: the sender and the bridge, and where the messages go. */
typedef struct {
    const send_args *a;
    lw_wire_sender w;
    bool open;
    FILE *out;
    const char *out_name;
    uint64_t seq;
    long sent;
} sender;

/* One text: sender, bridge, message out. */
static lw_status send_text(sender *s, const char *text)
{
    uint8_t *msg = NULL;
    size_t len;
    lw_status st = lw_wire_sender_encode(&s->w, text, s->seq, s->a->dtype, &msg, &len);
    if (!st) st = lw_wire_write_frame(s->out, s->out_name, msg, len);
    if (!st && fflush(s->out) != 0) st = lw_fail(LW_ERR_IO, "%s: writing: %s", s->out_name, strerror(errno));
    free(msg);
    if (!st) s->seq++, s->sent++;
    return st;
}

/* Each JSONL row's "text"; errors name the line. */
static lw_status send_rows(sender *s, FILE *in, const char *name)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    lw_status st = LW_OK;
    while (!st && (s->a->limit == 0 || s->sent < s->a->limit) && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
        if (len == 0) continue;
        json_error_t err;
        json_t *row = json_loadb(line, len, 0, &err);
        const char *text = json_string_value(json_object_get(row, "text"));
        if (!row) st = lw_fail(LW_ERR_FORMAT, "%s:%ld: malformed JSON: %s", name, lineno, err.text);
        else if (!text) st = lw_fail(LW_ERR_FORMAT, "%s:%ld: no \"text\" string", name, lineno);
        else if ((st = send_text(s, text))) lw_fail_wrap(st, "%s:%ld", name, lineno);
        json_decref(row);
        if (!st && !s->a->quiet && s->out != stdout)
            fprintf(stderr, "\rsend: %ld messages", s->sent);
    }
    if (!st && ferror(in)) st = lw_fail(LW_ERR_IO, "%s: reading: %s", name, strerror(errno));
    if (!s->a->quiet && s->out != stdout && s->sent) fputc('\n', stderr);
    free(line);
    return st;
}

static int run(const lw_pair *pair, const send_args *a)
{
    const lw_manifest *m = &pair->manifest;
    sender s = {.a = a, .out = stdout, .out_name = "stdout", .seq = (uint64_t)a->seq};
    char task_path[4096], tmp[4200] = "";
    lw_task task = {0};
    FILE *in = NULL;
    lw_status st = lw_task_file(m, a->tasks_dir, a->task, task_path, sizeof task_path);
    if (!st) st = lw_task_load(task_path, &task);   /* a task that does not exist is refused here */
    if (!st && a->input && strcmp(a->input, "-") && !(in = fopen(a->input, "r")))
        st = lw_fail(LW_ERR_IO, "cannot read %s: %s", a->input, strerror(errno));
    if (!st) st = lw_wire_sender_open(&s.w, m, a->task, a->checkpoint, a->M);
    if (!st) s.open = true;
    if (!st && a->out && !strncmp(a->out, "tcp:", 4)) {   /* a stream of messages over TCP */
        int fd;
        signal(SIGPIPE, SIG_IGN);   /* a receiver that hung up is a write error with its reason, not a kill */
        st = lw_socket_connect(a->out + 4, &fd);
        if (!st && !(s.out = fdopen(fd, "wb"))) {
            close(fd);
            st = lw_fail(LW_ERR_IO, "%s: fdopen: %s", a->out, strerror(errno));
        }
        s.out_name = a->out;
    } else if (!st && a->out && strcmp(a->out, "-")) {
        lw_pathf(tmp, sizeof tmp, "%s.tmp.%ld", a->out, (long)getpid());
        if (!(s.out = fopen(tmp, "wb"))) st = lw_fail(LW_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        s.out_name = a->out;
    }
    if (!st) st = a->text ? send_text(&s, a->text) : send_rows(&s, in ? in : stdin, in ? a->input : "stdin");
    if (s.out && s.out != stdout && !tmp[0]) {
        if (fclose(s.out) != 0 && !st) st = lw_fail(LW_ERR_IO, "%s: writing: %s", a->out, strerror(errno));
    } else if (s.out && s.out != stdout) {
        if (fclose(s.out) != 0 && !st) st = lw_fail(LW_ERR_IO, "%s: writing: %s", tmp, strerror(errno));
        if (!st && rename(tmp, a->out) != 0)
            st = lw_fail(LW_ERR_IO, "renaming %s to %s: %s", tmp, a->out, strerror(errno));
        if (st) unlink(tmp);
    }
    if (in) fclose(in);
    if (s.open) lw_wire_sender_close(&s.w);
    lw_task_free(&task);
    if (st) {
        fprintf(stderr, "lw send: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}

int lw_cmd_send(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage(pair);
        return 0;
    }
    send_args a;
    /* the pool sized as lw eval and lw train size it: the same products in
     * the same blocks, so the sender states are those of their cache */
    if (!parse(pair, argc, argv, &a) || !lw_threads_apply("send", a.threads)) return 2;
    int seed;
    bool has_seed = true;
    if (lw_run_json_read(a.checkpoint, &seed, &has_seed, &a.M, &a.has_M)) {
        fprintf(stderr, "lw send: %s\n", lw_last_error());
        return 1;
    }
    return run(pair, &a);
}
