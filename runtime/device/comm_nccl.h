/* The nccl backend of the communication layer (comm.h): NCCL loaded at run
 * time, like the CUDA driver (cuda_driver.h), so lw links no NCCL library
 * and a machine without it gets a clear error only when it asks for nccl.
 *
 * The communicator is built over an lw_comm that already holds the mpi
 * channel: rank 0 draws NCCL's unique id and broadcasts it with MPI_Bcast,
 * so a launch is the same mpirun as a CPU run. The mpi channel stays open
 * for the broadcasts and the barrier.
 *
 * Status: written against NCCL's documented C API (nccl.h: ncclGetUniqueId,
 * ncclCommInitRank, ncclAllReduce, ncclBroadcast, ncclCommDestroy,
 * ncclGetErrorString) but never run here: the machine it was written on
 * has no GPU and no NCCL. */
#ifndef LW_COMM_NCCL_H
#define LW_COMM_NCCL_H

#include <stdbool.h>
#include <stddef.h>

#include "comm.h"
#include "cuda_driver.h"
#include "status.h"

/* Loads libnccl.so.2 and makes c a nccl communicator on cu's device (cu:
 * lw_cuda_init'ed on the rank's GPU). Every rank must call it. On failure c
 * is unchanged (still mpi) and the message says what is missing. */
lw_status lw_comm_nccl_attach(lw_comm *c, lw_cuda *cu);
/* The same with another library name (tests point it at a missing file). */
lw_status lw_comm_nccl_attach_from(lw_comm *c, lw_cuda *cu, const char *lib_name);
/* Destroys the NCCL communicator, if any; lw_comm_close calls it. */
void lw_comm_nccl_detach(lw_comm *c);

/* Sums n device floats (f64: doubles) over the ranks, in place, on the
 * default stream, and waits for it. */
lw_status lw_comm_nccl_allreduce_device(lw_comm *c, lw_cuda_ptr buf, size_t n, bool f64);
/* The same for a host buffer, staged through a device buffer: what the CPU
 * training loop's lw_comm_allreduce_sum_* use under nccl. */
lw_status lw_comm_nccl_allreduce_host(lw_comm *c, void *buf, size_t n, bool f64);

#endif
