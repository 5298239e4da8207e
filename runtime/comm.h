/* One communication layer for data-parallel training: a rank, a world
 * size and the collectives the training loop needs, over one of three
 * backends.
 *
 *   local  world size 1; every collective is a no-op. The default.
 *   tcp    CPU processes over plain sockets. Rank 0 listens at the master
 *          address (host:port), every other rank connects to it (a star).
 *          A sum is reduced at rank 0 in rank order (((r0 + r1) + r2) ...)
 *          and rank 0's result is sent back, so every rank gets the same
 *          bits and the same inputs always give the same sum.
 *   nccl   libnccl.so.2 loaded at run time (comm_nccl.c) over the tcp
 *          channel, which carries NCCL's unique id and the barrier.
 *
 * Every message carries a header (magic, operation, payload bytes) that the
 * receiver checks against what it expects: a peer is untrusted input, and a
 * rank that calls another collective than the others gets a clear error.
 * Every socket read and write has a timeout (LW_COMM_TIMEOUT seconds, 1800
 * by default, long enough for a rank to wait while rank 0 builds a sender
 * cache); a peer that dies closes its sockets, which the others see at once.
 * Peers must share the byte order (they do on any one cluster).
 *
 * Configuration from the environment, like torchrun and MPI:
 *   LW_WORLD_SIZE, LW_RANK     (else OpenMPI's OMPI_COMM_WORLD_SIZE / _RANK)
 *   LW_MASTER                  host:port of rank 0 (default 127.0.0.1:29500)
 *   LW_COMM_TIMEOUT            seconds (default 1800)
 *   LW_LOCAL_RANK              the GPU of this rank for nccl (else
 *                              OMPI_COMM_WORLD_LOCAL_RANK, else 0) */
#ifndef LW_COMM_H
#define LW_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum { LW_COMM_LOCAL, LW_COMM_TCP, LW_COMM_NCCL } lw_comm_backend;

typedef struct {
    lw_comm_backend backend;
    int rank, world;
    int local_rank;             /* the GPU ordinal for nccl */
    char host[256];             /* of rank 0 */
    int port;                   /* 0: rank 0 binds an ephemeral port (tests) */
    double timeout_s;
} lw_comm_config;

typedef struct lw_nccl lw_nccl;

typedef struct {
    lw_comm_backend backend;
    int rank, world;
    double timeout_s;
    int listen_fd;              /* rank 0 of tcp: the listening socket until everyone joined */
    int port;                   /* rank 0: the port it listens on */
    int *fds;                   /* rank 0: fds[r] talks to rank r (fds[0] = -1); others: fds[0] talks to rank 0 */
    void *scratch;              /* rank 0: one incoming chunk of a reduction */
    const lw_comm_config *cfg;  /* between lw_comm_open and lw_comm_connect */
    lw_nccl *nccl;              /* the nccl backend's state; NULL otherwise */
} lw_comm;

/* Reads the environment (above). backend is tcp when the world size is
 * above 1, else local. Bad values are refused with a message naming the
 * variable and what it should hold. */
lw_status lw_comm_config_from_env(lw_comm_config *cfg);
/* "local", "tcp" or "nccl"; -1 for anything else. */
int lw_comm_backend_from_name(const char *name);
const char *lw_comm_backend_name(lw_comm_backend b);

/* World size 1, no sockets: what a NULL comm means to the training loop. */
void lw_comm_init_local(lw_comm *c);
/* lw_comm_open then lw_comm_connect. For nccl, the tcp channel only: call
 * lw_comm_nccl_attach (comm_nccl.h) once the GPU is open. */
lw_status lw_comm_init(lw_comm *c, const lw_comm_config *cfg);
/* The two halves of lw_comm_init: open binds and listens on rank 0 (after
 * it c->port holds the port, an ephemeral one if cfg->port is 0); connect
 * makes the rendezvous (rank 0 accepts every rank, the others connect,
 * retrying until rank 0 listens) and returns once every rank has joined or
 * the timeout passed. cfg must live until connect returns. */
lw_status lw_comm_open(lw_comm *c, const lw_comm_config *cfg);
lw_status lw_comm_connect(lw_comm *c);
/* Closes the sockets (peers blocked on us then see the connection end). */
void lw_comm_close(lw_comm *c);

/* buf[n] becomes the sum over the ranks of their buf, the same bits on
 * every rank. */
lw_status lw_comm_allreduce_sum_f32(lw_comm *c, float *buf, size_t n);
lw_status lw_comm_allreduce_sum_f64(lw_comm *c, double *buf, size_t n);
/* Every rank's buf[bytes] becomes root's. */
lw_status lw_comm_broadcast(lw_comm *c, void *buf, size_t bytes, int root);
/* Returns once every rank has called it. */
lw_status lw_comm_barrier(lw_comm *c);

#endif
