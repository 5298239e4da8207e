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
#include <stddef.h>
#include <stdint.h>

#include <string.h>

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
/* The stream the products go to from now on (NULL: the legacy default
 * stream, where they start): a graph's capture stream (cuda_driver.h). */
lw_status lw_cublas_set_stream(lw_cublas *b, void *stream);

/* y[T, out] = x[T, in] @ w[out, in]^T, all row-major fp32 on the device,
 * fp32 accumulation: op_matmul.c's matmul_forward without the bias. `what`
 * names the product in errors ("layer 3 wo"). Asynchronous, like a launch. */
lw_status lw_cublas_matmul(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                           const char *what);
/* Its input gradient: dx[T, in] = dy[T, out] @ w[out, in] (accumulate: dx +=),
 * op_matmul.c's matmul_backward for dx alone. */
lw_status lw_cublas_matmul_dx(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in, int out,
                              bool accumulate, const char *what);
/* Its weight gradient: dw[out, in] = dy[T, out]^T @ x[T, in] (accumulate:
 * dw +=), op_matmul.c's matmul_backward for dW (the bridge's trained
 * projections, runtime/model/bridge_cuda.c). */
lw_status lw_cublas_matmul_dw(lw_cublas *b, lw_cuda_ptr dw, lw_cuda_ptr dy, lw_cuda_ptr x, int T, int in, int out,
                              bool accumulate, const char *what);

/* ---- bf16 ---------------------------------------------------------------
 * bf16 products read bf16 weights and bf16 activations and accumulate and
 * write fp32 (cublasGemmEx, CUBLAS_COMPUTE_32F): the weights are converted
 * once on the host at upload (lw_cuda_upload_bf16), the activations on the
 * device before each product by the model template's f32_to_bf16 kernel
 * (cuBLAS has no mixed fp32 x bf16 product, and converting inside the GEMM
 * with CUBLAS_COMPUTE_32F_FAST_16BF would keep fp32 weights in memory, so
 * the memory-bound decode would read twice the bytes). */

/* bf16.h (runtime/ops, which this folder may not include) declares the
 * same two conversions, defined out of line by bf16.c with the same
 * rounding; a file that sees both (a test, or one that includes
 * narrow_store.h) calls those: a static definition after their extern
 * declaration would not compile. */
#ifndef LW_BF16_H
/* fp32 -> bf16 bits, round to nearest, ties to even (as torch's
 * .to(torch.bfloat16) and the f32_to_bf16 kernel): finite values too large
 * for bf16 round to infinity; a NaN stays a (quiet) NaN of the same sign. */
static inline uint16_t lw_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float lw_f32_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
#endif
/* dst[i] = lw_bf16_from_f32(src[i]) for i < n. */
void lw_bf16_from_f32_array(uint16_t *dst, const float *src, size_t n);

/* Converts n fp32 values on the host to bf16 and uploads them to dst (2n
 * bytes), through a bounded staging buffer (no full-size host copy). */
lw_status lw_cuda_upload_bf16(lw_cuda *cu, lw_cuda_ptr dst, const float *src, size_t n, const char *what);

/* y[T, out] (fp32) = x[T, in] (bf16) @ w[out, in]^T (bf16), fp32
 * accumulation; row-major like lw_cublas_matmul. x comes from f32_to_bf16. */
lw_status lw_cublas_matmul_bf16(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                                const char *what);
/* Its input gradient: dx[T, in] (fp32) = dy[T, out] (bf16) @ w[out, in]
 * (bf16), fp32 accumulation (accumulate: dx +=); the backward through bf16
 * frozen weights. dy comes from f32_to_bf16 of the fp32 gradient (cuBLAS
 * has no fp32 x bf16 product), so dy is rounded to bf16 as x is forward. */
lw_status lw_cublas_matmul_dx_bf16(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in,
                                   int out, bool accumulate, const char *what);

#endif
