/* The communication layer's configuration, rendezvous and tcp collectives;
 * see comm.h. The nccl backend's collectives are in comm_nccl.c. */
#include "comm.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "comm_nccl.h"

enum {
    MAGIC = 0x4c57434d,          /* "LWCM" */
    VERSION = 1,
    MAX_WORLD = 4096,
    CHUNK_BYTES = 1 << 20,       /* a reduction's unit: bounds rank 0's scratch */
};
enum { OP_HELLO = 1, OP_WELCOME, OP_REDUCE_F32, OP_REDUCE_F64, OP_RESULT, OP_BCAST };

/* What precedes every payload. */
typedef struct {
    uint32_t magic, op;
    uint64_t bytes;
} msg_header;

static const char *op_name(uint32_t op)
{
    static const char *names[] = {"?", "hello", "welcome", "f32 reduction", "f64 reduction", "result", "broadcast"};
    return op < sizeof names / sizeof *names ? names[op] : "unknown message";
}

/* ---- configuration ---- */

/* The first of the named variables that is set; *name gets which. */
static const char *env_first(const char *a, const char *b, const char **name)
{
    const char *v = getenv(a);
    *name = a;
    if (!v && b) v = getenv(b), *name = b;
    return v;
}

static lw_status parse_int(const char *var, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return lw_fail(LW_ERR_INVALID, "comm: %s is '%s', expected an integer from %ld to %ld", var, v, lo, hi);
    *out = (int)x;
    return LW_OK;
}

/* host:port, or [v6 address]:port. */
static lw_status parse_master(const char *v, lw_comm_config *cfg)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return lw_fail(LW_ERR_INVALID, "comm: LW_MASTER is '%s', expected host:port (e.g. 10.0.0.1:29500)", v);
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2;
    if (hl == 0 || hl >= sizeof cfg->host)
        return lw_fail(LW_ERR_INVALID, "comm: LW_MASTER '%s': the host name is empty or too long", v);
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = '\0';
    return parse_int("the port of LW_MASTER", colon + 1, 0, 65535, &cfg->port);
}

lw_status lw_comm_config_from_env(lw_comm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->world = 1;
    cfg->timeout_s = 1800;
    snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
    cfg->port = 29500;
    const char *name, *v;
    lw_status st = LW_OK;
    /* LW_* first; OpenMPI's only when neither LW_ size nor rank is set, so a
     * half-set LW_ pair is an error rather than silently mixed with MPI's */
    bool lw_set = getenv("LW_WORLD_SIZE") || getenv("LW_RANK");
    const char *wv = lw_set ? env_first("LW_WORLD_SIZE", NULL, &name) : env_first("OMPI_COMM_WORLD_SIZE", NULL, &name);
    if (wv && (st = parse_int(name, wv, 1, MAX_WORLD, &cfg->world))) return st;
    const char *wname = name;
    const char *rv = lw_set ? env_first("LW_RANK", NULL, &name) : env_first("OMPI_COMM_WORLD_RANK", NULL, &name);
    if (rv && (st = parse_int(name, rv, 0, MAX_WORLD - 1, &cfg->rank))) return st;
    if (cfg->world > 1 && !rv)
        return lw_fail(LW_ERR_INVALID, "comm: %s is %d but %s is not set", wname, cfg->world,
                       lw_set ? "LW_RANK" : "OMPI_COMM_WORLD_RANK");
    if (cfg->rank >= cfg->world)
        return lw_fail(LW_ERR_INVALID, "comm: %s %d is outside the world of %d ranks (%s)", name, cfg->rank,
                       cfg->world, wname);
    if ((v = getenv("LW_MASTER")) && (st = parse_master(v, cfg))) return st;
    if ((v = getenv("LW_COMM_TIMEOUT"))) {
        char *end;
        errno = 0;
        double t = strtod(v, &end);
        if (errno || end == v || *end || !(t > 0) || t > 1e7)
            return lw_fail(LW_ERR_INVALID, "comm: LW_COMM_TIMEOUT is '%s', expected seconds above 0", v);
        cfg->timeout_s = t;
    }
    if ((v = env_first("LW_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", &name)) &&
        (st = parse_int(name, v, 0, 1023, &cfg->local_rank)))
        return st;
    cfg->backend = cfg->world > 1 ? LW_COMM_TCP : LW_COMM_LOCAL;
    return LW_OK;
}

int lw_comm_backend_from_name(const char *name)
{
    if (!strcmp(name, "local")) return LW_COMM_LOCAL;
    if (!strcmp(name, "tcp")) return LW_COMM_TCP;
    if (!strcmp(name, "nccl")) return LW_COMM_NCCL;
    return -1;
}

const char *lw_comm_backend_name(lw_comm_backend b)
{
    return b == LW_COMM_TCP ? "tcp" : b == LW_COMM_NCCL ? "nccl" : "local";
}

/* ---- socket I/O: every call checked, every wait bounded ---- */

static void set_timeouts(int fd, double seconds)
{
    struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = (suseconds_t)(fmod(seconds, 1.0) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static lw_status send_all(const lw_comm *c, int fd, const void *buf, size_t n, int peer)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return lw_fail(LW_ERR_IO, "comm: rank %d: rank %d accepted no data for %.0f s (LW_COMM_TIMEOUT)", c->rank,
                           peer, c->timeout_s);
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET))
            return lw_fail(LW_ERR_IO, "comm: rank %d: rank %d closed the connection (it failed or exited early)",
                           c->rank, peer);
        if (k <= 0)
            return lw_fail(LW_ERR_IO, "comm: rank %d: sending to rank %d: %s", c->rank, peer,
                           k < 0 ? strerror(errno) : "nothing sent");
        p += k, n -= (size_t)k;
    }
    return LW_OK;
}

static lw_status recv_all(const lw_comm *c, int fd, void *buf, size_t n, int peer)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return lw_fail(LW_ERR_IO, "comm: rank %d: nothing from rank %d for %.0f s (LW_COMM_TIMEOUT)", c->rank,
                           peer, c->timeout_s);
        if (k == 0 || (k < 0 && errno == ECONNRESET))
            return lw_fail(LW_ERR_IO, "comm: rank %d: rank %d closed the connection (it failed or exited early)",
                           c->rank, peer);
        if (k < 0) return lw_fail(LW_ERR_IO, "comm: rank %d: receiving from rank %d: %s", c->rank, peer, strerror(errno));
        p += k, n -= (size_t)k;
    }
    return LW_OK;
}

static lw_status send_msg(const lw_comm *c, int fd, uint32_t op, const void *payload, size_t bytes, int peer)
{
    msg_header h = {.magic = MAGIC, .op = op, .bytes = bytes};
    lw_status st = send_all(c, fd, &h, sizeof h, peer);
    return st || !bytes ? st : send_all(c, fd, payload, bytes, peer);
}

/* Receives a message that must be op with exactly `bytes` of payload. */
static lw_status recv_msg(const lw_comm *c, int fd, uint32_t op, void *payload, size_t bytes, int peer)
{
    msg_header h;
    lw_status st = recv_all(c, fd, &h, sizeof h, peer);
    if (st) return st;
    if (h.magic != MAGIC)
        return lw_fail(LW_ERR_FORMAT, "comm: rank %d: rank %d sent a message without the magic (0x%08x)", c->rank,
                       peer, (unsigned)h.magic);
    if (h.op != op || h.bytes != bytes)
        return lw_fail(LW_ERR_INVALID,
                       "comm: rank %d: rank %d sent a %s of %llu bytes where a %s of %zu bytes was expected "
                       "(the ranks run different collectives: different options?)",
                       c->rank, peer, op_name(h.op), (unsigned long long)h.bytes, op_name(op), bytes);
    return bytes ? recv_all(c, fd, payload, bytes, peer) : LW_OK;
}

/* ---- rendezvous ---- */

void lw_comm_init_local(lw_comm *c)
{
    memset(c, 0, sizeof *c);
    c->backend = LW_COMM_LOCAL;
    c->world = 1;
    c->listen_fd = -1;
}

static lw_status resolve(const lw_comm_config *cfg, bool passive, struct addrinfo **out)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    int e = getaddrinfo(cfg->host, port, &hints, out);
    if (e) return lw_fail(LW_ERR_INVALID, "comm: cannot resolve the master %s:%s: %s", cfg->host, port, gai_strerror(e));
    return LW_OK;
}

static lw_status listen_on(lw_comm *c, const lw_comm_config *cfg)
{
    struct addrinfo *ai;
    lw_status st = resolve(cfg, true, &ai);
    if (st) return st;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, MAX_WORLD) != 0)
        st = lw_fail(LW_ERR_IO, "comm: rank 0 cannot listen on %s:%d: %s (LW_MASTER must name this host and a free "
                     "port)", cfg->host, cfg->port, strerror(errno));
    freeaddrinfo(ai);
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (!st && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        c->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                                  : ((struct sockaddr_in *)&sa)->sin_port);
    if (st && fd >= 0) close(fd);
    if (!st) c->listen_fd = fd;
    return st;
}

lw_status lw_comm_open(lw_comm *c, const lw_comm_config *cfg)
{
    lw_comm_init_local(c);
    if (cfg->world < 1 || cfg->world > MAX_WORLD || cfg->rank < 0 || cfg->rank >= cfg->world)
        return lw_fail(LW_ERR_INVALID, "comm: rank %d of a world of %d", cfg->rank, cfg->world);
    if (cfg->backend == LW_COMM_LOCAL && cfg->world > 1)
        return lw_fail(LW_ERR_INVALID, "comm: the local backend runs world size 1, not %d (use tcp or nccl)",
                       cfg->world);
    if (!(cfg->timeout_s > 0)) return lw_fail(LW_ERR_INVALID, "comm: timeout %g s must be positive", cfg->timeout_s);
    c->backend = cfg->backend;
    c->rank = cfg->rank;
    c->world = cfg->world;
    c->timeout_s = cfg->timeout_s;
    c->cfg = cfg;
    if (cfg->backend == LW_COMM_LOCAL || cfg->world == 1) return LW_OK;
    c->fds = malloc((size_t)cfg->world * sizeof *c->fds);
    c->scratch = cfg->rank == 0 ? malloc(CHUNK_BYTES) : NULL;
    if (!c->fds || (cfg->rank == 0 && !c->scratch)) {
        lw_comm_close(c);
        return lw_fail(LW_ERR_NOMEM, "comm: out of memory for %d ranks", cfg->world);
    }
    for (int r = 0; r < cfg->world; r++) c->fds[r] = -1;
    lw_status st = cfg->rank == 0 ? listen_on(c, cfg) : LW_OK;
    if (st) lw_comm_close(c);
    return st;
}

/* Rank 0: accepts a connection from every other rank, checks its hello,
 * then welcomes them all (so every rank leaves the rendezvous knowing the
 * world is complete). */
static lw_status accept_all(lw_comm *c)
{
    double deadline = lw_now_s() + c->timeout_s;
    for (int joined = 1; joined < c->world;) {
        double left = deadline - lw_now_s();
        struct pollfd p = {.fd = c->listen_fd, .events = POLLIN};
        int k = left > 0 ? poll(&p, 1, (int)fmin(left * 1000 + 1, INT_MAX)) : 0;
        if (k < 0 && errno == EINTR) continue;
        if (k == 0)
            return lw_fail(LW_ERR_IO, "comm: rank 0: only %d of %d ranks joined within %.0f s (LW_COMM_TIMEOUT); are "
                           "the others started with LW_MASTER pointing here (port %d)?", joined, c->world,
                           c->timeout_s, c->port);
        if (k < 0) return lw_fail(LW_ERR_IO, "comm: rank 0: waiting for ranks: %s", strerror(errno));
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return lw_fail(LW_ERR_IO, "comm: rank 0: accept: %s", strerror(errno));
        }
        set_timeouts(fd, fmax(deadline - lw_now_s(), 1.0));
        uint32_t hello[3];   /* version, world, rank */
        lw_status st = recv_msg(c, fd, OP_HELLO, hello, sizeof hello, -1);
        if (!st && (hello[0] != VERSION || hello[1] != (uint32_t)c->world))
            st = lw_fail(LW_ERR_INVALID, "comm: rank 0: a peer says version %u, world %u; this rank has version %d, "
                         "world %d (LW_WORLD_SIZE must agree)", hello[0], hello[1], VERSION, c->world);
        if (!st && (hello[2] == 0 || hello[2] >= (uint32_t)c->world || c->fds[hello[2]] >= 0))
            st = lw_fail(LW_ERR_INVALID, "comm: rank 0: a peer claims rank %u, which is %s", hello[2],
                         hello[2] == 0 || hello[2] >= (uint32_t)c->world ? "out of range" : "taken (LW_RANK twice?)");
        if (st) {
            close(fd);
            return st;
        }
        c->fds[hello[2]] = fd;
        joined++;
    }
    for (int r = 1; r < c->world; r++) {
        set_timeouts(c->fds[r], c->timeout_s);
        uint32_t w = (uint32_t)c->world;
        lw_status st = send_msg(c, c->fds[r], OP_WELCOME, &w, sizeof w, r);
        if (st) return st;
    }
    return LW_OK;
}

/* Others: connect to rank 0, retrying while it is not listening yet. */
static lw_status connect_master(lw_comm *c, const lw_comm_config *cfg)
{
    struct addrinfo *ai;
    lw_status st = resolve(cfg, false, &ai);
    if (st) return st;
    double deadline = lw_now_s() + c->timeout_s;
    int fd = -1, err = 0;
    while (fd < 0 && lw_now_s() < deadline) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) break;
        set_timeouts(fd, fmax(fmin(deadline - lw_now_s(), c->timeout_s), 0.1));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
        usleep(50 * 1000);
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return lw_fail(LW_ERR_IO, "comm: rank %d cannot reach rank 0 at %s:%d within %.0f s (LW_COMM_TIMEOUT): %s",
                       c->rank, cfg->host, cfg->port, c->timeout_s, strerror(err ? err : errno));
    c->fds[0] = fd;
    uint32_t hello[3] = {VERSION, (uint32_t)c->world, (uint32_t)c->rank}, w;
    st = send_msg(c, fd, OP_HELLO, hello, sizeof hello, 0);
    if (!st) {
        set_timeouts(fd, fmax(deadline - lw_now_s(), 1.0));   /* the welcome waits for the slowest rank */
        st = recv_msg(c, fd, OP_WELCOME, &w, sizeof w, 0);
    }
    if (!st) set_timeouts(fd, c->timeout_s);
    return st;
}

lw_status lw_comm_connect(lw_comm *c)
{
    if (c->world == 1 || c->backend == LW_COMM_LOCAL) return LW_OK;
    lw_status st = c->rank == 0 ? accept_all(c) : connect_master(c, c->cfg);
    if (c->listen_fd >= 0) close(c->listen_fd);
    c->listen_fd = -1;
    c->cfg = NULL;
    return st;
}

lw_status lw_comm_init(lw_comm *c, const lw_comm_config *cfg)
{
    lw_status st = lw_comm_open(c, cfg);
    if (!st) st = lw_comm_connect(c);
    if (st) lw_comm_close(c);
    return st;
}

void lw_comm_close(lw_comm *c)
{
    lw_comm_nccl_detach(c);
    if (c->listen_fd >= 0) close(c->listen_fd);
    for (int r = 0; c->fds && r < c->world; r++)
        if (c->fds[r] >= 0) close(c->fds[r]);
    free(c->fds);
    free(c->scratch);
    lw_comm_init_local(c);
}

/* ---- collectives over tcp ---- */

static bool is_single(const lw_comm *c)
{
    return c->world == 1 || c->backend == LW_COMM_LOCAL;
}

static void add_f32(void *dst, const void *src, size_t n)
{
    float *d = dst;
    const float *s = src;
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}

static void add_f64(void *dst, const void *src, size_t n)
{
    double *d = dst;
    const double *s = src;
    for (size_t i = 0; i < n; i++) d[i] += s[i];
}

/* Chunk by chunk: rank 0 adds the others' chunks to its own in rank order
 * and sends the sum back. Others send, then wait, so no two ranks ever
 * wait on each other in a cycle. */
static lw_status tcp_allreduce(lw_comm *c, void *buf, size_t n, size_t elem, uint32_t op,
                               void (*add)(void *, const void *, size_t))
{
    if (n > SIZE_MAX / elem) return lw_fail(LW_ERR_INVALID, "comm: an all-reduce of %zu elements overflows", n);
    char *p = buf;
    size_t total = n * elem, per = CHUNK_BYTES / elem * elem;
    for (size_t off = 0; off < total; off += per) {
        size_t bytes = total - off < per ? total - off : per;
        lw_status st = LW_OK;
        if (c->rank == 0) {
            for (int r = 1; !st && r < c->world; r++) {
                st = recv_msg(c, c->fds[r], op, c->scratch, bytes, r);
                if (!st) add(p + off, c->scratch, bytes / elem);
            }
            for (int r = 1; !st && r < c->world; r++) st = send_msg(c, c->fds[r], OP_RESULT, p + off, bytes, r);
        } else {
            st = send_msg(c, c->fds[0], op, p + off, bytes, 0);
            if (!st) st = recv_msg(c, c->fds[0], OP_RESULT, p + off, bytes, 0);
        }
        if (st) return st;
    }
    return LW_OK;
}

lw_status lw_comm_allreduce_sum_f32(lw_comm *c, float *buf, size_t n)
{
    if (is_single(c) || n == 0) return LW_OK;
    if (c->backend == LW_COMM_NCCL) return lw_comm_nccl_allreduce_host(c, buf, n, false);
    return tcp_allreduce(c, buf, n, sizeof(float), OP_REDUCE_F32, add_f32);
}

lw_status lw_comm_allreduce_sum_f64(lw_comm *c, double *buf, size_t n)
{
    if (is_single(c) || n == 0) return LW_OK;
    if (c->backend == LW_COMM_NCCL) return lw_comm_nccl_allreduce_host(c, buf, n, true);
    return tcp_allreduce(c, buf, n, sizeof(double), OP_REDUCE_F64, add_f64);
}

lw_status lw_comm_broadcast(lw_comm *c, void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= c->world)
        return lw_fail(LW_ERR_INVALID, "comm: broadcast from rank %d in a world of %d", root, c->world);
    if (is_single(c) || bytes == 0) return LW_OK;
    lw_status st = LW_OK;
    if (c->rank == 0) {   /* every broadcast goes through rank 0, the hub */
        if (root != 0) st = recv_msg(c, c->fds[root], OP_BCAST, buf, bytes, root);
        for (int r = 1; !st && r < c->world; r++)
            if (r != root) st = send_msg(c, c->fds[r], OP_BCAST, buf, bytes, r);
    } else if (c->rank == root) {
        st = send_msg(c, c->fds[0], OP_BCAST, buf, bytes, 0);
    } else {
        st = recv_msg(c, c->fds[0], OP_BCAST, buf, bytes, 0);
    }
    return st;
}

lw_status lw_comm_barrier(lw_comm *c)
{
    if (is_single(c)) return LW_OK;
    double token = 0;   /* over the tcp channel even for nccl: it is always there */
    return tcp_allreduce(c, &token, 1, sizeof token, OP_REDUCE_F64, add_f64);
}
