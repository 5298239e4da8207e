/* NCCL through dlopen; see comm_nccl.h. Never run here (no GPU, no NCCL). */
#include "comm_nccl.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The few declarations of nccl.h we use, with NCCL's values (stable since
 * NCCL 2.0): results, ncclFloat32 = 7, ncclFloat64 = 8, ncclSum = 0. */
typedef int nccl_result;                        /* ncclResult_t; ncclSuccess = 0 */
typedef struct { char internal[128]; } nccl_unique_id;   /* NCCL_UNIQUE_ID_BYTES */
typedef void *nccl_comm;                        /* ncclComm_t */
enum { NCCL_SUCCESS = 0, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_SUM = 0 };

struct lw_nccl {
    void *lib;
    lw_cuda *cu;
    nccl_comm comm;
    lw_cuda_ptr stage;        /* device copy of a host buffer being reduced */
    size_t stage_bytes;
    nccl_result (*get_version)(int *);
    nccl_result (*get_unique_id)(nccl_unique_id *);
    nccl_result (*comm_init_rank)(nccl_comm *, int, nccl_unique_id, int);
    nccl_result (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm, void *);
    nccl_result (*comm_destroy)(nccl_comm);
    const char *(*error_string)(nccl_result);
};

static lw_status nccl_fail(const lw_nccl *n, nccl_result r, const char *what, int rank)
{
    const char *why = n->error_string ? n->error_string(r) : NULL;
    return lw_fail(LW_ERR_EXTERNAL, "comm: rank %d: %s failed: NCCL error %d (%s)", rank, what, r,
                   why ? why : "no description");
}

static lw_status load_symbols(lw_nccl *n, const char *lib_name)
{
    n->lib = dlopen(lib_name, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib)
        return lw_fail(LW_ERR_UNSUPPORTED, "comm: cannot load %s (%s): NCCL is not installed (Debian: libnccl2); "
                       "use --comm mpi", lib_name, dlerror());
    struct { void **slot; const char *name; } syms[] = {
        {(void **)&n->get_version, "ncclGetVersion"},       {(void **)&n->get_unique_id, "ncclGetUniqueId"},
        {(void **)&n->comm_init_rank, "ncclCommInitRank"},  {(void **)&n->all_reduce, "ncclAllReduce"},
        {(void **)&n->comm_destroy, "ncclCommDestroy"},     {(void **)&n->error_string, "ncclGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].slot = dlsym(n->lib, syms[i].name);
        if (!*syms[i].slot)
            return lw_fail(LW_ERR_UNSUPPORTED, "comm: %s lacks %s (NCCL 2 expected)", lib_name, syms[i].name);
    }
    return LW_OK;
}

static void free_nccl(lw_nccl *n)
{
    if (!n) return;
    if (n->comm && n->comm_destroy) n->comm_destroy(n->comm);
    if (n->stage && n->cu) lw_cuda_free(n->cu, n->stage);
    if (n->lib) dlclose(n->lib);
    free(n);
}

lw_status lw_comm_nccl_attach_from(lw_comm *c, lw_cuda *cu, const char *lib_name)
{
    if (c->nccl) return lw_fail(LW_ERR_INVALID, "comm: NCCL is already attached");
    if (c->world > 1 && !c->mpi)
        return lw_fail(LW_ERR_INVALID, "comm: NCCL needs the mpi channel first (lw_comm_init)");
    lw_nccl *n = calloc(1, sizeof *n);
    if (!n) return lw_fail(LW_ERR_NOMEM, "comm: out of memory for NCCL");
    lw_status st = load_symbols(n, lib_name);
    if (!st && (!cu || !cu->ctx))
        st = lw_fail(LW_ERR_UNSUPPORTED, "comm: rank %d: NCCL needs a GPU and none is open (lw_cuda_init: %s)",
                     c->rank, cu ? "failed" : "not called");
    int version = 0;
    nccl_result r;
    if (!st && (r = n->get_version(&version)) != NCCL_SUCCESS) st = nccl_fail(n, r, "ncclGetVersion", c->rank);
    nccl_unique_id id;
    memset(&id, 0, sizeof id);
    if (!st && c->rank == 0 && (r = n->get_unique_id(&id)) != NCCL_SUCCESS)
        st = nccl_fail(n, r, "ncclGetUniqueId", c->rank);
    /* a rank that failed above skips the broadcast and aborts the job
     * (lw_comm_abort): the others are stopped by mpirun, not left hanging */
    if (!st) st = lw_comm_broadcast(c, &id, sizeof id, 0);
    if (!st) {
        n->cu = cu;
        r = n->comm_init_rank(&n->comm, c->world, id, c->rank);
        if (r != NCCL_SUCCESS) {
            n->comm = NULL;
            st = nccl_fail(n, r, "ncclCommInitRank", c->rank);
        }
    }
    if (st) {
        free_nccl(n);
        return st;
    }
    c->nccl = n;
    c->backend = LW_COMM_NCCL;
    return LW_OK;
}

lw_status lw_comm_nccl_attach(lw_comm *c, lw_cuda *cu)
{
    return lw_comm_nccl_attach_from(c, cu, "libnccl.so.2");
}

void lw_comm_nccl_detach(lw_comm *c)
{
    free_nccl(c->nccl);
    c->nccl = NULL;
    if (c->backend == LW_COMM_NCCL) c->backend = c->mpi ? LW_COMM_MPI : LW_COMM_LOCAL;
}

lw_status lw_comm_nccl_allreduce_device(lw_comm *c, lw_cuda_ptr buf, size_t n, bool f64)
{
    lw_nccl *nc = c->nccl;
    if (!nc) return lw_fail(LW_ERR_INVALID, "comm: a device all-reduce needs the nccl backend");
    if (n == 0) return LW_OK;
    /* the default (legacy) stream, NULL: the one lw_cuda_launch uses, so the
     * reduction is ordered after the kernels that made the gradients */
    nccl_result r = nc->all_reduce((const void *)(uintptr_t)buf, (void *)(uintptr_t)buf, n,
                                   f64 ? NCCL_FLOAT64 : NCCL_FLOAT32, NCCL_SUM, nc->comm, NULL);
    if (r != NCCL_SUCCESS) return nccl_fail(nc, r, "ncclAllReduce", c->rank);
    return lw_cuda_sync(nc->cu, "the NCCL all-reduce");
}

lw_status lw_comm_nccl_allreduce_host(lw_comm *c, void *buf, size_t n, bool f64)
{
    lw_nccl *nc = c->nccl;
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    if (!nc) return lw_fail(LW_ERR_INVALID, "comm: the nccl backend is not attached (lw_comm_nccl_attach)");
    if (n > SIZE_MAX / elem) return lw_fail(LW_ERR_INVALID, "comm: an all-reduce of %zu elements overflows", n);
    size_t bytes = n * elem;
    lw_status st = LW_OK;
    if (bytes > nc->stage_bytes) {
        if (nc->stage) lw_cuda_free(nc->cu, nc->stage);
        nc->stage = 0, nc->stage_bytes = 0;
        if ((st = lw_cuda_alloc(nc->cu, bytes, "NCCL staging buffer", &nc->stage))) return st;
        nc->stage_bytes = bytes;
    }
    st = lw_cuda_upload(nc->cu, nc->stage, buf, bytes, "NCCL staging buffer");
    if (!st) st = lw_comm_nccl_allreduce_device(c, nc->stage, n, f64);
    if (!st) st = lw_cuda_download(nc->cu, buf, nc->stage, bytes, "NCCL staging buffer");
    return st;
}
