/* TCP endpoints of the wire: lw send --out tcp:HOST:PORT, lw receive
 * --listen HOST:PORT, lw serve --listen and the bench's clients. HOST:PORT
 * is a name or numeric address (IPv4, or IPv6 in brackets) and a port;
 * port 0 asks the kernel for a free one, which *port then gets. */
#ifndef LW_WIRE_SOCKET_H
#define LW_WIRE_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* "HOST:PORT" into host (cap bytes) and port 0..65535; errors name spec. */
lw_status lw_socket_parse(const char *spec, char *host, size_t cap, int *port);
/* A listening TCP socket on HOST:PORT (SO_REUSEADDR, close-on-exec);
 * *port gets the port bound. */
lw_status lw_socket_listen(const char *spec, int backlog, int *fd, int *port);
/* A connected TCP socket to HOST:PORT (TCP_NODELAY: messages go out whole,
 * not held back for more). */
lw_status lw_socket_connect(const char *spec, int *fd);

#endif
