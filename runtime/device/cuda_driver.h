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

/* Launches k on the default stream; args[i] points at the i-th kernel
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

#endif
