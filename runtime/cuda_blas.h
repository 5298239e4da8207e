/* cuBLAS, loaded at run time, for the GPU's matrix products.
 *
 * As with the driver (cuda_driver.h), lw links no CUDA library: lw_cublas_init
 * dlopens the first of libcublas.so.13, .so.12, .so that loads, resolves the
 * few entry points used, and creates a handle in the current (primary)
 * context, so buffers from lw_cuda_alloc are used directly. Its work goes to
 * the default stream, the one lw_cuda_launch uses, so products and kernels
 * run in the order they were issued.
 * Built without cuBLAS headers (LWC_HAVE_CUBLAS 0) every call fails with
 * "built without cuBLAS". */
#ifndef LW_CUDA_BLAS_H
#define LW_CUDA_BLAS_H

#include <stdbool.h>

#include "cuda_driver.h"
#include "status.h"

typedef struct lw_cublas_api lw_cublas_api;   /* the resolved entry points */

typedef struct {
    void *lib;            /* dlopen handle */
    lw_cublas_api *api;
    void *handle;         /* cublasHandle_t */
    char lib_name[64];    /* the library that loaded */
} lw_cublas;

/* Loads cuBLAS and creates a handle; cu must be open (lw_cuda_init). On
 * failure b is left closed and the message names the library or the call. */
lw_status lw_cublas_init(lw_cublas *b, lw_cuda *cu);
/* The same from one given library name (tests point it at a missing file). */
lw_status lw_cublas_init_from(lw_cublas *b, lw_cuda *cu, const char *lib_name);
/* Destroys the handle; the library itself stays loaded until exit (see cuda_blas.c). */
void lw_cublas_close(lw_cublas *b);

/* y[T, out] = x[T, in] @ w[out, in]^T, all row-major fp32 on the device,
 * fp32 accumulation: op_matmul.c's matmul_forward without the bias. `what`
 * names the product in errors ("layer 3 wo"). Asynchronous, like a launch. */
lw_status lw_cublas_matmul(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                           const char *what);
/* Its input gradient: dx[T, in] = dy[T, out] @ w[out, in] (accumulate: dx +=),
 * op_matmul.c's matmul_backward for dx alone. */
lw_status lw_cublas_matmul_dx(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in, int out,
                              bool accumulate, const char *what);

#endif
