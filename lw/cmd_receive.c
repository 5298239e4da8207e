/* lw receive: the receiver as a process of its own. It reads soft-token
 * messages (wire.h) from --in, a TCP stream (--listen) or stdin, checks each one against its own
 * bridge checkpoint and models (wire_identity.h), and prints the label
 * scores of each as one JSON line (lw_scores_write_line), the same line
 * lw eval --scores prints for the in-process bridge. --inspect prints the
 * messages themselves instead, without loading a model. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "bridge_scorer.h"
#include "cmd_common.h"
#include "fileutil.h"
#include "lw_cli.h"
#include "score_line.h"
#include "wire.h"
#include "wire_receiver.h"
#include "wire_socket.h"

static void usage(void)
{
    printf("usage: lw receive --checkpoint DIR [options]\n"
           "       lw receive --inspect [--in FILE]\n\n"
           "Reads soft-token messages of `lw send` (docs/wire.md), one after another, and prints each\n"
           "one's label scores as a JSON line: {\"seq\", \"label\", \"margin\", \"scores\": {label: score}}.\n"
           "A message made with another pair, task, bridge or model, or damaged, is refused with the\n"
           "reason (exit 1; on stdout the lines before it stand, an --out file is not written).\n\n"
           "  --checkpoint DIR     the same checkpoint folder (or bridge.safetensors) the sender used\n"
           "  --task NAME          the task to read (default: the one the first message names)\n"
           "  --in FILE            where the messages come from (default stdin)\n"
           "  --listen HOST:PORT   read the messages from a TCP stream instead: the first connection\n"
           "                       (lw send --out tcp:HOST:PORT), to its end; port 0 picks a free port,\n"
           "                       printed to stderr as \"lw receive: listening on port N\"\n"
           "  --out FILE           where the lines go (default stdout); the file appears whole or not at all\n"
           "  --device cpu|cuda    where the receiver runs (default cpu; cuda: GPU 0)\n"
           "  --tasks-dir DIR      default <manifest dir>/../tasks\n"
           LW_THREADS_HELP
           "  --inspect            print each message's header and values as JSON (no model loaded)\n");
}

typedef struct {
    const char *checkpoint, *task, *in, *listen, *out, *device, *tasks_dir;
    int threads;               /* --threads; 0: $LWC_THREADS, else 1 */
    bool inspect;
} receive_args;

static bool parse(int argc, char **argv, receive_args *a)
{
    memset(a, 0, sizeof *a);
    a->device = "cpu";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        bool ok = true;
        if (!strcmp(o, "--checkpoint")) ok = lw_opt_str(argc, argv, &i, &a->checkpoint);
        else if (!strcmp(o, "--task")) ok = lw_opt_str(argc, argv, &i, &a->task);
        else if (!strcmp(o, "--in")) ok = lw_opt_str(argc, argv, &i, &a->in);
        else if (!strcmp(o, "--listen")) ok = lw_opt_str(argc, argv, &i, &a->listen);
        else if (!strcmp(o, "--out")) ok = lw_opt_str(argc, argv, &i, &a->out);
        else if (!strcmp(o, "--device")) ok = lw_opt_str(argc, argv, &i, &a->device);
        else if (!strcmp(o, "--tasks-dir")) ok = lw_opt_str(argc, argv, &i, &a->tasks_dir);
        else if (!strcmp(o, "--threads")) ok = lw_opt_int(argc, argv, &i, 1, LW_THREADS_MAX, &a->threads);
        else if (!strcmp(o, "--inspect")) a->inspect = true;
        else {
            fprintf(stderr, "lw receive: unknown option '%s' (see lw receive --help)\n", o);
            return false;
        }
        if (!ok) return false;
    }
    if (a->in && a->listen) {
        fprintf(stderr, "lw receive: --in and --listen are two sources; give one\n");
        return false;
    }
    if (!a->inspect && !a->checkpoint) {
        fprintf(stderr, "lw receive: --checkpoint DIR is required (see --help)\n");
        return false;
    }
    if (strcmp(a->device, "cpu") && strcmp(a->device, "cuda")) {
        fprintf(stderr, "lw receive: --device is cpu or cuda, not '%s'\n", a->device);
        return false;
    }
    return true;
}

static json_t *hex64(uint64_t v)
{
    char s[17];
    snprintf(s, sizeof s, "%016" PRIx64, v);
    return json_string(s);
}

/* --inspect: the header, and the values as float (17 digits: exact). */
static lw_status inspect_line(FILE *f, const char *what, const lw_wire_message *msg)
{
    json_t *o = json_object(), *v = json_array();
    json_object_set_new(o, "seq", json_integer((json_int_t)msg->seq));
    json_object_set_new(o, "version", json_integer(msg->version));
    json_object_set_new(o, "pair", json_string(msg->id.pair));
    json_object_set_new(o, "task", json_string(msg->id.task));
    json_object_set_new(o, "sender_layer", json_integer(msg->sender_layer));
    json_object_set_new(o, "M", json_integer(msg->M));
    json_object_set_new(o, "width", json_integer(msg->width));
    json_object_set_new(o, "dtype", json_string(lw_wire_dtype_name(msg->dtype)));
    json_object_set_new(o, "bridge", hex64(msg->id.bridge));
    json_object_set_new(o, "sender_weights", hex64(msg->id.sender_weights));
    json_object_set_new(o, "sender_tokenizer", hex64(msg->id.sender_tokenizer));
    json_object_set_new(o, "receiver_weights", hex64(msg->id.receiver_weights));
    json_object_set_new(o, "receiver_tokenizer", hex64(msg->id.receiver_tokenizer));
    json_object_set_new(o, "checksum", hex64(msg->checksum));
    for (size_t i = 0; i < (size_t)msg->M * msg->width; i++) json_array_append_new(v, json_real(msg->soft[i]));
    json_object_set_new(o, "values", v);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text) return lw_fail(LW_ERR_NOMEM, "%s: building JSON", what);
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    free(text);
    return ok ? LW_OK : lw_fail(LW_ERR_IO, "%s: writing: %s", what, strerror(errno));
}

/* A TCP stream of messages (lw send --out tcp:...): the first connection
 * to HOST:PORT, read to its end. The port bound is printed to stderr first,
 * so a test or script can pass port 0 and read the one the kernel gave. */
static lw_status accept_stream(const char *spec, FILE **in)
{
    int lfd, port, fd;
    lw_status st = lw_socket_listen(spec, 1, &lfd, &port);
    if (st) return st;
    fprintf(stderr, "lw receive: listening on port %d\n", port);
    fflush(stderr);
    while ((fd = accept(lfd, NULL, NULL)) < 0 && errno == EINTR) {}
    int err = errno;
    close(lfd);
    if (fd < 0) return lw_fail(LW_ERR_IO, "%s: accept: %s", spec, strerror(err));
    if (!(*in = fdopen(fd, "rb"))) {
        close(fd);
        return lw_fail(LW_ERR_IO, "%s: fdopen: %s", spec, strerror(errno));
    }
    return LW_OK;
}

static int run(const lw_pair *pair, const receive_args *a)
{
    lw_wire_receiver r = {0};
    lw_bridge_scorer sc;
    bool sc_open = false;
    double *scores = NULL;
    FILE *in = stdin, *out = stdout;
    const char *in_name = a->listen ? a->listen : a->in ? a->in : "stdin", *out_name = a->out ? a->out : "stdout";
    char tmp[4200] = "";
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    long count = 0;
    lw_status st = LW_OK;
    if (a->listen) st = accept_stream(a->listen, &in);
    else if (a->in && strcmp(a->in, "-") && !(in = fopen(a->in, "rb")))
        st = lw_fail(LW_ERR_IO, "cannot read %s: %s", a->in, strerror(errno));
    if (!st && a->out && strcmp(a->out, "-")) {   /* a file appears whole or not at all */
        lw_pathf(tmp, sizeof tmp, "%s.tmp.%ld", a->out, (long)getpid());
        if (!(out = fopen(tmp, "w"))) st = lw_fail(LW_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    while (!st) {
        lw_wire_message msg;
        if ((st = lw_wire_read_frame(in, in_name, &buf, &cap, &len)) || len == 0) break;
        if ((st = lw_wire_decode(buf, len, &msg))) {
            lw_fail_wrap(st, "%s, message %ld", in_name, count);
            break;
        }
        if (a->inspect) st = inspect_line(out, out_name, &msg);
        else {
            if (!r.open) {   /* identity first, then the models (wire_receiver.h) */
                st = lw_wire_receiver_open(&r, pair, a->checkpoint, a->task, a->tasks_dir, &msg);
                if (!st) st = lw_bridge_scorer_open(&sc, pair, &r.task, r.M, a->checkpoint, a->device);
                if (!st) sc_open = true, lw_wire_receiver_attach(&r, &sc.tr, sc.side.receiver, sc.side.tok);
                if (!st && !(scores = calloc((size_t)r.task.n_labels, sizeof *scores)))
                    st = lw_fail(LW_ERR_NOMEM, "receive: out of memory");
            }
            if (!st) st = lw_wire_receiver_check(&r, &msg);
            if (!st) st = lw_wire_receiver_score(&r, &msg, scores);
            if (!st) st = lw_scores_write_line(out, out_name, &r.task, msg.seq, scores);
            if (st) lw_fail_wrap(st, "%s, message %ld (seq %" PRIu64 ")", in_name, count, msg.seq);
        }
        lw_wire_message_free(&msg);
        count++;
    }
    if (!st && count == 0) st = lw_fail(LW_ERR_FORMAT, "%s: no message", in_name);
    if (in && in != stdin) fclose(in);
    if (out && out != stdout) {
        if (fclose(out) != 0 && !st) st = lw_fail(LW_ERR_IO, "%s: writing", out_name);
        if (!st && rename(tmp, a->out) != 0)
            st = lw_fail(LW_ERR_IO, "renaming %s to %s: %s", tmp, a->out, strerror(errno));
        if (st) unlink(tmp);
    }
    free(buf);
    lw_wire_receiver_close(&r);
    if (sc_open) lw_bridge_scorer_close(&sc);
    free(scores);
    if (st) {
        fprintf(stderr, "lw receive: %s\n", lw_last_error());
        return 1;
    }
    return 0;
}

int lw_cmd_receive(const lw_pair *pair, int argc, char **argv)
{
    if (lw_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    receive_args a;
    /* the pool sized as lw eval sizes it: the receiver's products cut into
     * the same blocks as the in-process bridge's, so the scores are its own */
    if (!parse(argc, argv, &a) || !lw_threads_apply("receive", a.threads)) return 2;
    return run(pair, &a);
}
