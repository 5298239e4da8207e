/* TCP endpoints of the wire (wire_socket.h). */
#include "wire_socket.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

lw_status lw_socket_parse(const char *spec, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return lw_fail(LW_ERR_INVALID, "'%s': expected HOST:PORT (e.g. 127.0.0.1:0)", spec);
    size_t n = (size_t)(colon - spec);
    if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']') spec++, n -= 2;   /* [::1]:port */
    if (n == 0 || n >= cap) return lw_fail(LW_ERR_INVALID, "'%s': bad host", spec);
    memcpy(host, spec, n);
    host[n] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || errno || p < 0 || p > 65535)
        return lw_fail(LW_ERR_INVALID, "'%s': the port is 0..65535", colon + 1);
    *port = (int)p;
    return LW_OK;
}

static lw_status resolve(const char *spec, bool passive, struct addrinfo **res)
{
    char host[256], port_s[8];
    int port;
    lw_status st = lw_socket_parse(spec, host, sizeof host, &port);
    if (st) return st;
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    int rc = getaddrinfo(host, port_s, &hints, res);
    if (rc) return lw_fail(LW_ERR_IO, "%s: cannot resolve host '%s': %s", spec, host, gai_strerror(rc));
    return LW_OK;
}

/* What listen and connect share: a socket on the first of spec's addresses
 * that takes it, bound and listening (listening; SO_REUSEADDR) or connected
 * (TCP_NODELAY). *fd = -1 when none did, with the last failure's errno in
 * *err; the status is resolve's alone. */
static lw_status open_first(const char *spec, bool listening, int backlog, int *fd, int *err)
{
    struct addrinfo *res;
    lw_status st = resolve(spec, listening, &res);
    if (st) return st;
    *err = 0;
    *fd = -1;
    for (struct addrinfo *a = res; a && *fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol), one = 1;
        if (s < 0) {
            *err = errno;
            continue;
        }
        bool ok;
        if (listening) {
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            ok = bind(s, a->ai_addr, a->ai_addrlen) == 0 && listen(s, backlog) == 0;
        } else {
            ok = connect(s, a->ai_addr, a->ai_addrlen) == 0;
            if (ok) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (ok) *fd = s;
        else {
            *err = errno;
            close(s);
        }
    }
    freeaddrinfo(res);
    return LW_OK;
}

lw_status lw_socket_listen(const char *spec, int backlog, int *fd, int *port)
{
    int err;
    lw_status st = open_first(spec, true, backlog, fd, &err);
    if (st) return st;
    if (*fd < 0) return lw_fail(LW_ERR_IO, "cannot listen on %s: %s", spec, strerror(err));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(*fd, (struct sockaddr *)&ss, &sl) != 0) {
        err = errno;
        close(*fd);
        *fd = -1;
        return lw_fail(LW_ERR_IO, "%s: getsockname: %s", spec, strerror(err));
    }
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return LW_OK;
}

lw_status lw_socket_connect(const char *spec, int *fd)
{
    int err;
    lw_status st = open_first(spec, false, 0, fd, &err);
    if (st) return st;
    return *fd < 0 ? lw_fail(LW_ERR_IO, "cannot connect to %s: %s", spec, strerror(err)) : LW_OK;
}
