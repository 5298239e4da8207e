/* cuBLAS through dlopen; see cuda_blas.h for why. */
#include "cuda_blas.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwc_config.h"

#if LWC_HAVE_CUBLAS

#include <cublas_v2.h>

/* The exported names: <cublas_v2.h> maps cublasCreate to cublasCreate_v2 and
 * so on, and dlsym needs the real symbol. */
struct lw_cublas_api {
    cublasStatus_t (*Create)(cublasHandle_t *);
    cublasStatus_t (*Destroy)(cublasHandle_t);
    cublasStatus_t (*SetStream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*GemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                             const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                             cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    const char *(*GetStatusString)(cublasStatus_t);   /* optional: cuBLAS >= 11.4 */
};

typedef struct {
    const char *symbol;
    size_t offset;
    int required;
} api_entry;

#define ENTRY(field, sym, req) { sym, offsetof(struct lw_cublas_api, field), req }
static const api_entry api_table[] = {
    ENTRY(Create, "cublasCreate_v2", 1),
    ENTRY(Destroy, "cublasDestroy_v2", 1),
    ENTRY(SetStream, "cublasSetStream_v2", 1),
    ENTRY(GemmEx, "cublasGemmEx", 1),
    ENTRY(GetStatusString, "cublasGetStatusString", 0),
};
#undef ENTRY

/* The libraries the CUDA 13 and 12 toolkits ship, then the unversioned link. */
static const char *const default_libs[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};

static lw_status check(const lw_cublas *b, cublasStatus_t r, const char *call, const char *what)
{
    if (r == CUBLAS_STATUS_SUCCESS) return LW_OK;
    const char *s = b->api && b->api->GetStatusString ? b->api->GetStatusString(r) : NULL;
    return lw_fail(LW_ERR_EXTERNAL, "%s (%s): cuBLAS error %d: %s", call, what, (int)r,
                   s ? s : "(no description: cuBLAS older than 11.4)");
}

static lw_status resolve(lw_cublas *b)
{
    for (size_t i = 0; i < sizeof api_table / sizeof api_table[0]; i++) {
        void *f = dlsym(b->lib, api_table[i].symbol);
        if (!f && api_table[i].required)
            return lw_fail(LW_ERR_UNSUPPORTED, "%s lacks %s: not cuBLAS, or a cuBLAS too old for lwc (needs 11+)",
                           b->lib_name, api_table[i].symbol);
        /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
        if (f) memcpy((char *)b->api + api_table[i].offset, &f, sizeof f);
    }
    return LW_OK;
}

/* After the library loaded: entry points, the device, the handle. */
static lw_status open_handle(lw_cublas *b, lw_cuda *cu)
{
    b->api = calloc(1, sizeof *b->api);
    if (!b->api) return lw_fail(LW_ERR_NOMEM, "cuBLAS: out of memory");
    lw_status st = resolve(b);
    if (st) return st;
    if (!cu || !cu->ctx)
        return lw_fail(LW_ERR_INVALID, "cuBLAS: the CUDA device is not initialised (call lw_cuda_init first)");
    cublasHandle_t h;
    if ((st = check(b, b->api->Create(&h), "cublasCreate", b->lib_name))) return st;
    b->handle = h;
    /* NULL: the legacy default stream, where lw_cuda_launch puts the kernels. */
    return check(b, b->api->SetStream(h, NULL), "cublasSetStream", "the default stream");
}

/* Loads the first of names[n] that exists; the error lists every name tried. */
static lw_status load_first(lw_cublas *b, const char *const *names, size_t n)
{
    const char *why = NULL;
    for (size_t i = 0; i < n && !b->lib; i++) {
        snprintf(b->lib_name, sizeof b->lib_name, "%s", names[i]);
        b->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!b->lib) why = dlerror();
    }
    if (b->lib) return LW_OK;
    char tried[192] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s%s", i ? ", " : "", names[i]);
    return lw_fail(LW_ERR_UNSUPPORTED, "no cuBLAS: cannot load %s (%s); --device cuda needs the CUDA toolkit's "
                   "libcublas on the library path", tried, why ? why : "not found");
}

static lw_status init_names(lw_cublas *b, lw_cuda *cu, const char *const *names, size_t n)
{
    memset(b, 0, sizeof *b);
    lw_status st = load_first(b, names, n);
    if (!st) st = open_handle(b, cu);
    if (st) lw_cublas_close(b);
    return st;
}

lw_status lw_cublas_init_from(lw_cublas *b, lw_cuda *cu, const char *lib_name)
{
    return init_names(b, cu, &lib_name, 1);
}

lw_status lw_cublas_init(lw_cublas *b, lw_cuda *cu)
{
    return init_names(b, cu, default_libs, sizeof default_libs / sizeof default_libs[0]);
}

lw_status lw_cublas_set_stream(lw_cublas *b, void *stream)
{
    if (!b->handle || !b->api) return lw_fail(LW_ERR_INVALID, "cuBLAS: no handle to set a stream on");
    return check(b, b->api->SetStream((cublasHandle_t)b->handle, (cudaStream_t)stream), "cublasSetStream",
                 stream ? "a capture stream" : "the default stream");
}

/* The library stays loaded (no dlclose): cuBLAS's C++ runtime registers
 * exit-time destructors and keeps buffers in its globals, so unloading it
 * would leave those destructors pointing into unmapped code and its buffers
 * reported as leaks. A later init finds it already loaded. */
void lw_cublas_close(lw_cublas *b)
{
    if (b->handle && b->api) b->api->Destroy((cublasHandle_t)b->handle);
    free(b->api);
    memset(b, 0, sizeof *b);
}

lw_status lw_cublas_matmul(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                           const char *what)
{
    if (!b->handle) return lw_fail(LW_ERR_INVALID, "matmul %s: cuBLAS is not initialised", what);
    if (T <= 0 || in <= 0 || out <= 0 || !x || !y || !w)
        return lw_fail(LW_ERR_INVALID, "matmul %s: [%d, %d] x [%d, %d]^T with a missing buffer or empty shape",
                       what, T, in, out, in);
    /* cuBLAS is column-major: a row-major [r, c] matrix is its [c, r]. So
     * y^T[out, T] = w[out, in] (that is, op T on the column-major [in, out])
     * times x^T[in, T]. */
    const float one = 1.f, zero = 0.f;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: [%d, %d] x [%d, %d]^T", what, T, in, out, in);
    return check(b, b->api->GemmEx((cublasHandle_t)b->handle, CUBLAS_OP_T, CUBLAS_OP_N, out, T, in, &one,
                                   (const void *)(uintptr_t)w, CUDA_R_32F, in, (const void *)(uintptr_t)x,
                                   CUDA_R_32F, in, &zero, (void *)(uintptr_t)y, CUDA_R_32F, out,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", ctx);
}

lw_status lw_cublas_matmul_dx(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in, int out,
                              bool accumulate, const char *what)
{
    if (!b->handle) return lw_fail(LW_ERR_INVALID, "matmul dx %s: cuBLAS is not initialised", what);
    if (T <= 0 || in <= 0 || out <= 0 || !dx || !dy || !w)
        return lw_fail(LW_ERR_INVALID, "matmul dx %s: [%d, %d] x [%d, %d] with a missing buffer or empty shape",
                       what, T, out, out, in);
    /* Column-major view: w[out, in] is W^T [in, out], dy is dy^T [out, T],
     * dx is dx^T [in, T]; so dx^T = W^T dy^T is a plain (N, N) product. */
    const float one = 1.f, beta = accumulate ? 1.f : 0.f;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: [%d, %d] x [%d, %d]", what, T, out, out, in);
    return check(b, b->api->GemmEx((cublasHandle_t)b->handle, CUBLAS_OP_N, CUBLAS_OP_N, in, T, out, &one,
                                   (const void *)(uintptr_t)w, CUDA_R_32F, in, (const void *)(uintptr_t)dy,
                                   CUDA_R_32F, out, &beta, (void *)(uintptr_t)dx, CUDA_R_32F, in,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", ctx);
}

lw_status lw_cublas_matmul_dw(lw_cublas *b, lw_cuda_ptr dw, lw_cuda_ptr dy, lw_cuda_ptr x, int T, int in, int out,
                              bool accumulate, const char *what)
{
    if (!b->handle) return lw_fail(LW_ERR_INVALID, "matmul dw %s: cuBLAS is not initialised", what);
    if (T <= 0 || in <= 0 || out <= 0 || !dw || !dy || !x)
        return lw_fail(LW_ERR_INVALID, "matmul dw %s: [%d, %d]^T x [%d, %d] with a missing buffer or empty shape",
                       what, T, out, T, in);
    /* Column-major view: x is x^T [in, T], dy is dy^T [out, T], dw[out, in]
     * is dw^T [in, out]; so dw^T = x^T (dy^T)^T is an (N, T) product over T. */
    const float one = 1.f, beta = accumulate ? 1.f : 0.f;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: [%d, %d]^T x [%d, %d]", what, T, out, T, in);
    return check(b, b->api->GemmEx((cublasHandle_t)b->handle, CUBLAS_OP_N, CUBLAS_OP_T, in, out, T, &one,
                                   (const void *)(uintptr_t)x, CUDA_R_32F, in, (const void *)(uintptr_t)dy,
                                   CUDA_R_32F, out, &beta, (void *)(uintptr_t)dw, CUDA_R_32F, in,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", ctx);
}

/* The same product as lw_cublas_matmul with bf16 operands; the accumulator
 * and y stay fp32 (CUBLAS_COMPUTE_32F), so only the inputs are rounded. */
lw_status lw_cublas_matmul_bf16(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                                const char *what)
{
    if (!b->handle) return lw_fail(LW_ERR_INVALID, "bf16 matmul %s: cuBLAS is not initialised", what);
    if (T <= 0 || in <= 0 || out <= 0 || !x || !y || !w)
        return lw_fail(LW_ERR_INVALID, "bf16 matmul %s: [%d, %d] x [%d, %d]^T with a missing buffer or empty shape",
                       what, T, in, out, in);
    const float one = 1.f, zero = 0.f;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: bf16 [%d, %d] x [%d, %d]^T", what, T, in, out, in);
    return check(b, b->api->GemmEx((cublasHandle_t)b->handle, CUBLAS_OP_T, CUBLAS_OP_N, out, T, in, &one,
                                   (const void *)(uintptr_t)w, CUDA_R_16BF, in, (const void *)(uintptr_t)x,
                                   CUDA_R_16BF, in, &zero, (void *)(uintptr_t)y, CUDA_R_32F, out,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", ctx);
}

/* The input gradient as lw_cublas_matmul_dx with bf16 operands: dy (from
 * f32_to_bf16) and w bf16, dx fp32 and the accumulation fp32. */
lw_status lw_cublas_matmul_dx_bf16(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in,
                                   int out, bool accumulate, const char *what)
{
    if (!b->handle) return lw_fail(LW_ERR_INVALID, "bf16 matmul dx %s: cuBLAS is not initialised", what);
    if (T <= 0 || in <= 0 || out <= 0 || !dx || !dy || !w)
        return lw_fail(LW_ERR_INVALID, "bf16 matmul dx %s: [%d, %d] x [%d, %d] with a missing buffer or empty shape",
                       what, T, out, out, in);
    const float one = 1.f, beta = accumulate ? 1.f : 0.f;
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: bf16 [%d, %d] x [%d, %d]", what, T, out, out, in);
    return check(b, b->api->GemmEx((cublasHandle_t)b->handle, CUBLAS_OP_N, CUBLAS_OP_N, in, T, out, &one,
                                   (const void *)(uintptr_t)w, CUDA_R_16BF, in, (const void *)(uintptr_t)dy,
                                   CUDA_R_16BF, out, &beta, (void *)(uintptr_t)dx, CUDA_R_32F, in,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx", ctx);
}

#else /* no <cublas_v2.h>: every entry point reports the same reason */

struct lw_cublas_api {
    int unused;
};

static lw_status no_cublas(void)
{
    return lw_fail(LW_ERR_UNSUPPORTED, "cuBLAS: lwc was built without cuBLAS (cublas_v2.h not found by "
                   "configure); use --device cpu");
}

lw_status lw_cublas_init_from(lw_cublas *b, lw_cuda *cu, const char *lib_name)
{
    memset(b, 0, sizeof *b);
    return no_cublas();
}
lw_status lw_cublas_init(lw_cublas *b, lw_cuda *cu) { return lw_cublas_init_from(b, cu, "libcublas.so"); }
void lw_cublas_close(lw_cublas *b) { memset(b, 0, sizeof *b); }
lw_status lw_cublas_set_stream(lw_cublas *b, void *stream) { return no_cublas(); }
lw_status lw_cublas_matmul(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                           const char *what)
{
    return no_cublas();
}
lw_status lw_cublas_matmul_dx(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in, int out,
                              bool accumulate, const char *what)
{
    return no_cublas();
}
lw_status lw_cublas_matmul_dw(lw_cublas *b, lw_cuda_ptr dw, lw_cuda_ptr dy, lw_cuda_ptr x, int T, int in, int out,
                              bool accumulate, const char *what)
{
    return no_cublas();
}

lw_status lw_cublas_matmul_bf16(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                                const char *what)
{
    return no_cublas();
}

lw_status lw_cublas_matmul_dx_bf16(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in,
                                   int out, bool accumulate, const char *what)
{
    return no_cublas();
}

#endif

/* ---- bf16 conversion (needs no cuBLAS) ----------------------------------- */

void lw_bf16_from_f32_array(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = lw_bf16_from_f32(src[i]);
}

enum { BF16_STAGE = 1 << 20 };   /* values per staged upload: 2 MiB of bf16 */

lw_status lw_cuda_upload_bf16(lw_cuda *cu, lw_cuda_ptr dst, const float *src, size_t n, const char *what)
{
    if (!dst || (n && !src)) return lw_fail(LW_ERR_INVALID, "bf16 upload %s: %zu values, missing buffer", what, n);
    if (n > SIZE_MAX / 2) return lw_fail(LW_ERR_INVALID, "bf16 upload %s: %zu values overflow", what, n);
    size_t chunk = n < BF16_STAGE ? n : BF16_STAGE;
    uint16_t *stage = malloc((chunk ? chunk : 1) * sizeof *stage);
    if (!stage) return lw_fail(LW_ERR_NOMEM, "bf16 upload %s: out of memory for %zu staged values", what, chunk);
    lw_status st = LW_OK;
    for (size_t i = 0; !st && i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        lw_bf16_from_f32_array(stage, src + i, k);
        /* lw_cuda_upload is synchronous (cuMemcpyHtoD), so stage is free to refill. */
        st = lw_cuda_upload(cu, dst + i * sizeof *stage, stage, k * sizeof *stage, what);
    }
    free(stage);
    return st;
}
