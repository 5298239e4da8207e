/* The communication layer's configuration and its mpi collectives; see
 * comm.h. The nccl backend's collectives are in comm_nccl.c. */
#include "comm.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_nccl.h"
#include "lwc_config.h"

#if LWC_HAVE_MPI
#include <mpi.h>
#endif

enum { MAX_WORLD = 1 << 20 };

/* ---- configuration ---- */

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

/* The launcher's size and rank variables, Open MPI's first. */
static const char *const LAUNCHERS[][2] = {
    {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
    {"PMI_SIZE", "PMI_RANK"},
};

lw_status lw_comm_config_from_env(lw_comm_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->world = 1;
    lw_status st;
    for (size_t i = 0; i < sizeof LAUNCHERS / sizeof *LAUNCHERS; i++) {
        const char *sv = getenv(LAUNCHERS[i][0]), *rv = getenv(LAUNCHERS[i][1]);
        if (!sv && !rv) continue;
        if (!sv || !rv)
            return lw_fail(LW_ERR_INVALID, "comm: %s is set but %s is not (start the ranks with mpirun)",
                           sv ? LAUNCHERS[i][0] : LAUNCHERS[i][1], sv ? LAUNCHERS[i][1] : LAUNCHERS[i][0]);
        if ((st = parse_int(LAUNCHERS[i][0], sv, 1, MAX_WORLD, &cfg->world))) return st;
        if ((st = parse_int(LAUNCHERS[i][1], rv, 0, MAX_WORLD - 1, &cfg->rank))) return st;
        if (cfg->rank >= cfg->world)
            return lw_fail(LW_ERR_INVALID, "comm: %s %d is outside the world of %d ranks (%s)", LAUNCHERS[i][1],
                           cfg->rank, cfg->world, LAUNCHERS[i][0]);
        break;
    }
    const char *v = getenv("LW_LOCAL_RANK"), *name = "LW_LOCAL_RANK";
    if (!v) v = getenv(name = "OMPI_COMM_WORLD_LOCAL_RANK");
    if (v && (st = parse_int(name, v, 0, 1023, &cfg->local_rank))) return st;
    cfg->backend = cfg->world > 1 ? LW_COMM_MPI : LW_COMM_LOCAL;
    return LW_OK;
}

int lw_comm_backend_from_name(const char *name)
{
    if (!strcmp(name, "local")) return LW_COMM_LOCAL;
    if (!strcmp(name, "mpi")) return LW_COMM_MPI;
    if (!strcmp(name, "nccl")) return LW_COMM_NCCL;
    return -1;
}

const char *lw_comm_backend_name(lw_comm_backend b)
{
    return b == LW_COMM_MPI ? "mpi" : b == LW_COMM_NCCL ? "nccl" : "local";
}

bool lw_comm_have_mpi(void)
{
    return LWC_HAVE_MPI;
}

void lw_comm_init_local(lw_comm *c)
{
    memset(c, 0, sizeof *c);
    c->backend = LW_COMM_LOCAL;
    c->world = 1;
}

static bool is_single(const lw_comm *c)
{
    return c->world == 1 || !c->mpi;
}

#if LWC_HAVE_MPI

/* MPI's message for an error code. */
static lw_status mpi_fail(const lw_comm *c, int err, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", err);
    return lw_fail(LW_ERR_IO, "comm: rank %d: %s failed: %s", c->rank, what, msg);
}

static lw_status mpi_open(lw_comm *c, const lw_comm_config *cfg)
{
    int inited = 0, finalized = 0, err;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return lw_fail(LW_ERR_INVALID, "comm: MPI was already finalised in this process (one world a process)");
    if (!inited && (err = MPI_Init(NULL, NULL)) != MPI_SUCCESS) return mpi_fail(c, err, "MPI_Init");
    MPI_Comm *dup = malloc(sizeof *dup);
    if (!dup) return lw_fail(LW_ERR_NOMEM, "comm: out of memory");
    /* our own communicator: a library's collectives cannot meet a user's */
    if ((err = MPI_Comm_dup(MPI_COMM_WORLD, dup)) != MPI_SUCCESS) {
        free(dup);
        return mpi_fail(c, err, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(*dup, MPI_ERRORS_RETURN);
    c->mpi = dup;
    int rank = -1, size = 0;
    MPI_Comm_rank(*dup, &rank);
    MPI_Comm_size(*dup, &size);
    if (rank != cfg->rank || size != cfg->world)
        return lw_fail(LW_ERR_INVALID, "comm: MPI says rank %d of %d, the launcher's variables rank %d of %d "
                       "(start the ranks with one mpirun)", rank, size, cfg->rank, cfg->world);
    return LW_OK;
}

static void mpi_free(lw_comm *c)
{
    if (!c->mpi) return;
    MPI_Comm_free((MPI_Comm *)c->mpi);
    free(c->mpi);
    c->mpi = NULL;
}

/* MPI counts are ints: a long buffer goes in pieces of at most 2^30. */
enum { PIECE = 1 << 30 };

static lw_status mpi_allreduce(lw_comm *c, void *buf, size_t n, size_t elem, MPI_Datatype type)
{
    char *p = buf;
    for (size_t off = 0; off < n; off += PIECE) {
        int k = (int)(n - off < PIECE ? n - off : PIECE);
        int err = MPI_Allreduce(MPI_IN_PLACE, p + off * elem, k, type, MPI_SUM, *(MPI_Comm *)c->mpi);
        if (err != MPI_SUCCESS) return mpi_fail(c, err, "MPI_Allreduce");
    }
    return LW_OK;
}

static lw_status mpi_bcast(lw_comm *c, void *buf, size_t bytes, int root)
{
    char *p = buf;
    for (size_t off = 0; off < bytes; off += PIECE) {
        int k = (int)(bytes - off < PIECE ? bytes - off : PIECE);
        int err = MPI_Bcast(p + off, k, MPI_BYTE, root, *(MPI_Comm *)c->mpi);
        if (err != MPI_SUCCESS) return mpi_fail(c, err, "MPI_Bcast");
    }
    return LW_OK;
}

#endif

lw_status lw_comm_init(lw_comm *c, const lw_comm_config *cfg)
{
    lw_comm_init_local(c);
    if (cfg->world < 1 || cfg->world > MAX_WORLD || cfg->rank < 0 || cfg->rank >= cfg->world)
        return lw_fail(LW_ERR_INVALID, "comm: rank %d of a world of %d", cfg->rank, cfg->world);
    if (cfg->backend == LW_COMM_LOCAL && cfg->world > 1)
        return lw_fail(LW_ERR_INVALID, "comm: the local backend runs world size 1, not %d (use mpi or nccl)",
                       cfg->world);
    c->backend = cfg->backend == LW_COMM_NCCL ? LW_COMM_MPI : cfg->backend;   /* nccl: attach makes it so */
    c->rank = cfg->rank;
    c->world = cfg->world;
    if (cfg->world == 1) {
        if (c->backend == LW_COMM_MPI) c->backend = LW_COMM_LOCAL;   /* nothing to talk to */
        return LW_OK;
    }
#if LWC_HAVE_MPI
    lw_status st = mpi_open(c, cfg);
    if (st) {
        mpi_free(c);
        lw_comm_init_local(c);
    }
    return st;
#else
    lw_comm_init_local(c);
    return lw_fail(LW_ERR_UNSUPPORTED, "comm: a world of %d ranks needs MPI, and this lw was built without it "
                   "(configure found no MPI: apt-get install libopenmpi-dev openmpi-bin, then rerun ./configure "
                   "and make); world size 1 runs without it", cfg->world);
#endif
}

void lw_comm_close(lw_comm *c)
{
    lw_comm_nccl_detach(c);
#if LWC_HAVE_MPI
    bool had = c->mpi != NULL;
    mpi_free(c);
    int fin = 0;
    if (had && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
#endif
    lw_comm_init_local(c);
}

void lw_comm_abort(lw_comm *c, int code)
{
#if LWC_HAVE_MPI
    if (c->mpi) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    }
#else
    (void)code;
#endif
    lw_comm_close(c);
}

/* ---- collectives ---- */

lw_status lw_comm_allreduce_sum_f32(lw_comm *c, float *buf, size_t n)
{
    if (is_single(c) || n == 0) return LW_OK;
    if (c->backend == LW_COMM_NCCL) return lw_comm_nccl_allreduce_host(c, buf, n, false);
#if LWC_HAVE_MPI
    return mpi_allreduce(c, buf, n, sizeof(float), MPI_FLOAT);
#else
    return lw_fail(LW_ERR_UNSUPPORTED, "comm: built without MPI");
#endif
}

lw_status lw_comm_allreduce_sum_f64(lw_comm *c, double *buf, size_t n)
{
    if (is_single(c) || n == 0) return LW_OK;
    if (c->backend == LW_COMM_NCCL) return lw_comm_nccl_allreduce_host(c, buf, n, true);
#if LWC_HAVE_MPI
    return mpi_allreduce(c, buf, n, sizeof(double), MPI_DOUBLE);
#else
    return lw_fail(LW_ERR_UNSUPPORTED, "comm: built without MPI");
#endif
}

lw_status lw_comm_broadcast(lw_comm *c, void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= c->world)
        return lw_fail(LW_ERR_INVALID, "comm: broadcast from rank %d in a world of %d", root, c->world);
    if (is_single(c) || bytes == 0) return LW_OK;
#if LWC_HAVE_MPI
    return mpi_bcast(c, buf, bytes, root);   /* over mpi even for nccl: it is always there */
#else
    return lw_fail(LW_ERR_UNSUPPORTED, "comm: built without MPI");
#endif
}

lw_status lw_comm_barrier(lw_comm *c)
{
    if (is_single(c)) return LW_OK;
#if LWC_HAVE_MPI
    int err = MPI_Barrier(*(MPI_Comm *)c->mpi);
    return err == MPI_SUCCESS ? LW_OK : mpi_fail(c, err, "MPI_Barrier");
#else
    return lw_fail(LW_ERR_UNSUPPORTED, "comm: built without MPI");
#endif
}
