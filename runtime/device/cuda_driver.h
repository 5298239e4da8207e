/* The CUDA driver API, loaded at run time.
 *
 * lw links no CUDA library: lw_cuda_init() dlopens libcuda.so.1 and resolves
 * the few driver entry points it uses, so the same binary runs on a CPU-only
 * machine and simply reports that --device cuda is unavailable there. The
 * handles below are the driver's (CUcontext, CUmodule, CUfunction,
 * CUdeviceptr) kept as opaque values, so this header needs no <cuda.h>.
 * Built without CUDA headers (LWC_HAVE_CUDA_H 0) every call fails with
 * "built without CUDA headers". Which of a pair's embedded images to load is
 * cuda_pair.h's.
 *
 * Launches are asynchronous: an error inside a kernel surfaces at the next
 * lw_cuda_sync(), which names what it was waiting for. */
#ifndef LW_CUDA_DRIVER_H
#define LW_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

typedef uint64_t lw_cuda_ptr;      /* CUdeviceptr; 0 = none */

typedef struct lw_cuda_api lw_cuda_api;   /* the resolved entry points */

typedef struct {
    void *lib;                     /* dlopen handle of the driver */
    lw_cuda_api *api;
    int device;                    /* ordinal */
    int cc_major, cc_minor;        /* compute capability: 9, 0 for sm_90 */
    char name[128];                /* "NVIDIA H100 80GB HBM3" */
    int driver_version;            /* 12040 for 12.4 */
    void *ctx;                     /* the device's primary CUcontext */
    void *stream;                  /* the CUstream launches and async copies go to; NULL: the legacy default */
} lw_cuda;

typedef struct {
    void *module;                  /* CUmodule */
    const char *unit;              /* "sender", "receiver", "bridge" */
    int arch;                      /* of the image that was loaded */
} lw_cuda_module;

typedef struct {
    void *fn;                      /* CUfunction */
    const char *unit;
    char name[64];                 /* the extern "C" kernel name */
} lw_cuda_kernel;

/* Loads libcuda.so.1, initialises the driver and makes the primary context
 * of device `ordinal` current on this thread. On failure cu is left closed
 * (lw_cuda_close on it is a no-op) and the message says what is missing. */
lw_status lw_cuda_init(lw_cuda *cu, int ordinal);
/* The same with another library name (tests point it at a missing file). */
lw_status lw_cuda_init_from(lw_cuda *cu, const char *lib_name, int ordinal);
void lw_cuda_close(lw_cuda *cu);

/* sm number of the device: 90 for compute capability 9.0. */
int lw_cuda_arch(const lw_cuda *cu);

/* LW_OK when cu is open (lw_cuda_init succeeded), else an error naming
 * `what` (or, built without CUDA headers, why there is no CUDA). */
lw_status lw_cuda_check_open(const lw_cuda *cu, const char *what);

/* Loads one given CUBIN (or PTX) image; cuda_pair.h picks the pair's. */
lw_status lw_cuda_load_image(lw_cuda *cu, const char *unit, int arch, const void *image, lw_cuda_module *out);
void lw_cuda_unload(lw_cuda *cu, lw_cuda_module *m);
lw_status lw_cuda_get_kernel(lw_cuda *cu, const lw_cuda_module *m, const char *name, lw_cuda_kernel *out);

/* Launches k on cu->stream (the legacy default stream when NULL); args[i] points at the i-th kernel
 * argument (as cuLaunchKernel wants). Grid and block sizes are checked. */
lw_status lw_cuda_launch(lw_cuda *cu, const lw_cuda_kernel *k, unsigned grid_x, unsigned grid_y,
                         unsigned grid_z, unsigned block_x, unsigned block_y, unsigned block_z,
                         unsigned shared_bytes, void **args);
/* Waits for all work; `what` names it in the error ("after attention_forward"). */
lw_status lw_cuda_sync(lw_cuda *cu, const char *what);

lw_status lw_cuda_alloc(lw_cuda *cu, size_t bytes, const char *what, lw_cuda_ptr *out);
void lw_cuda_free(lw_cuda *cu, lw_cuda_ptr p);
lw_status lw_cuda_upload(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, const char *what);
lw_status lw_cuda_download(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, const char *what);
lw_status lw_cuda_memset0(lw_cuda *cu, lw_cuda_ptr dst, size_t bytes, const char *what);
lw_status lw_cuda_mem_info(lw_cuda *cu, size_t *free_bytes, size_t *total_bytes);

/* ---- streams, graphs and pinned memory --------------------------------------
 * A stream of its own (non-blocking: it does not wait for the legacy
 * default stream) is what a CUDA graph is captured on: between
 * lw_cuda_capture_begin and _end, the launches and async copies issued on
 * it (cu->stream set to it, and cuBLAS through lw_cublas_set_stream) are
 * recorded, not run; lw_cuda_graph_launch replays them with the arguments
 * they were captured with. A synchronous copy, a sync or an allocation
 * during a capture makes it fail, at the call or at _end. */
typedef struct {
    void *graph;                   /* CUgraph */
    void *exec;                    /* CUgraphExec */
} lw_cuda_graph;

lw_status lw_cuda_stream_create(lw_cuda *cu, void **stream);
void lw_cuda_stream_destroy(lw_cuda *cu, void *stream);
/* Waits for the work on stream; `what` names it in the error. */
lw_status lw_cuda_stream_sync(lw_cuda *cu, void *stream, const char *what);
lw_status lw_cuda_capture_begin(lw_cuda *cu, void *stream, const char *what);
/* Ends the capture on stream (also after a failure inside it, so the
 * stream is usable again) and instantiates the graph into *out. */
lw_status lw_cuda_capture_end(lw_cuda *cu, void *stream, const char *what, lw_cuda_graph *out);
lw_status lw_cuda_graph_launch(lw_cuda *cu, const lw_cuda_graph *g, void *stream, const char *what);
void lw_cuda_graph_destroy(lw_cuda *cu, lw_cuda_graph *g);
/* Page-locked host memory (what an async copy needs to be async). */
lw_status lw_cuda_host_alloc(lw_cuda *cu, size_t bytes, const char *what, void **out);
void lw_cuda_host_free(lw_cuda *cu, void *p);
/* Copies queued on stream; src / dst on the host should be pinned. */
lw_status lw_cuda_upload_async(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, void *stream,
                               const char *what);
lw_status lw_cuda_download_async(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, void *stream,
                                 const char *what);

#endif
