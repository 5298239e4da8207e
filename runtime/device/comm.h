/* One communication layer for data-parallel training: a rank, a world
 * size and the collectives the training loop needs, over one of three
 * backends.
 *
 *   local  world size 1; every collective is a no-op. The default.
 *   mpi    CPU processes started by mpirun (Open MPI; any MPI whose
 *          launcher sets the variables below): MPI_Allreduce, MPI_Bcast
 *          and MPI_Barrier on a duplicate of MPI_COMM_WORLD. Only in a
 *          build where configure found MPI (LWC_HAVE_MPI); elsewhere a
 *          world above 1 is refused with a message saying so.
 *   nccl   libnccl.so.2 loaded at run time (comm_nccl.c) over the mpi
 *          channel, which carries NCCL's unique id and the barrier.
 *
 * MPI is initialised only when the process was started by an MPI launcher
 * with more than one rank, so a world-1 run never touches MPI (no
 * singleton start-up, no MPI in the way of a plain `lw train`). The
 * communicator returns errors (MPI_ERRORS_RETURN) so they become lw_fail
 * messages; a rank that fails calls lw_comm_abort, which stops the whole
 * job (MPI_Abort) instead of leaving the others waiting in a collective.
 *
 * Configuration from the environment, as mpirun sets it:
 *   OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK      (Open MPI)
 *   PMI_SIZE, PMI_RANK                              (MPICH, Slurm)
 *   LW_LOCAL_RANK              the GPU of this rank for nccl (else
 *                              OMPI_COMM_WORLD_LOCAL_RANK, else 0) */
#ifndef LW_COMM_H
#define LW_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum { LW_COMM_LOCAL, LW_COMM_MPI, LW_COMM_NCCL } lw_comm_backend;

typedef struct {
    lw_comm_backend backend;
    int rank, world;            /* what the launcher said; MPI_Init must agree */
    int local_rank;             /* the GPU ordinal for nccl */
} lw_comm_config;

typedef struct lw_nccl lw_nccl;

typedef struct {
    lw_comm_backend backend;
    int rank, world;
    void *mpi;                  /* the mpi channel (an MPI_Comm, boxed so this header needs no mpi.h); NULL at world 1 */
    lw_nccl *nccl;              /* the nccl backend's state; NULL otherwise */
} lw_comm;

/* Reads the environment (above). backend is mpi when the world size is
 * above 1, else local. Bad values are refused with a message naming the
 * variable and what it should hold. */
lw_status lw_comm_config_from_env(lw_comm_config *cfg);
/* "local", "mpi" or "nccl"; -1 for anything else. */
int lw_comm_backend_from_name(const char *name);
const char *lw_comm_backend_name(lw_comm_backend b);
/* Whether this build has the mpi backend (configure found MPI). */
bool lw_comm_have_mpi(void);

/* World size 1, no MPI: what a NULL comm means to the training loop. */
void lw_comm_init_local(lw_comm *c);
/* World 1 with the local backend (or nccl at world 1): no MPI. Otherwise
 * MPI_Init (once a process) and the mpi channel; the rank and size MPI
 * reports must be cfg's. For nccl, the mpi channel only: call
 * lw_comm_nccl_attach (comm_nccl.h) once the GPU is open. Refused, with a
 * message, when this build has no MPI. */
lw_status lw_comm_init(lw_comm *c, const lw_comm_config *cfg);
/* A clean end: frees the channel and, if MPI was initialised, waits for
 * the other ranks in MPI_Finalize. Call it on every rank, or on none. */
void lw_comm_close(lw_comm *c);
/* A failed rank's end: above world 1, MPI_Abort with code (mpirun then
 * stops every rank and exits non-zero); at world 1 the same as close. */
void lw_comm_abort(lw_comm *c, int code);

/* buf[n] becomes the sum over the ranks of their buf, the same bits on
 * every rank. */
lw_status lw_comm_allreduce_sum_f32(lw_comm *c, float *buf, size_t n);
lw_status lw_comm_allreduce_sum_f64(lw_comm *c, double *buf, size_t n);
/* Every rank's buf[bytes] becomes root's. */
lw_status lw_comm_broadcast(lw_comm *c, void *buf, size_t bytes, int root);
/* Returns once every rank has called it. */
lw_status lw_comm_barrier(lw_comm *c);

#endif
