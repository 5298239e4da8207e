/* The driver (cuda_driver.h) and cuBLAS (cuda_blas.h) of the host twin
 * build (twin.h): device memory is host memory, an lw_cuda_ptr its address;
 * uploads and downloads are memcpy; the products are CPU loops in the same
 * layout as the cuBLAS calls they stand for (row-major, fp32 accumulation). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "twin.h"

static void *at(lw_cuda_ptr p) { return (void *)(uintptr_t)p; }

lw_status lw_cuda_alloc(lw_cuda *cu, size_t bytes, const char *what, lw_cuda_ptr *out)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) return lw_fail(LW_ERR_NOMEM, "host twin: out of memory for %s (%zu bytes)", what, bytes);
    *out = (lw_cuda_ptr)(uintptr_t)p;
    return LW_OK;
}

void lw_cuda_free(lw_cuda *cu, lw_cuda_ptr p) { free(at(p)); }

lw_status lw_cuda_upload(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, const char *what)
{
    if (!dst) return lw_fail(LW_ERR_INVALID, "host twin: upload of %s to address 0", what);
    if (bytes) memcpy(at(dst), src, bytes);
    return LW_OK;
}

lw_status lw_cuda_download(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, const char *what)
{
    if (!src) return lw_fail(LW_ERR_INVALID, "host twin: download of %s from address 0", what);
    if (bytes) memcpy(dst, at(src), bytes);
    lw_twin_count.download_bytes += (long)bytes;
    return LW_OK;
}

lw_status lw_cuda_memset0(lw_cuda *cu, lw_cuda_ptr dst, size_t bytes, const char *what)
{
    if (!dst) return lw_fail(LW_ERR_INVALID, "host twin: memset of %s at address 0", what);
    memset(at(dst), 0, bytes);
    return LW_OK;
}

lw_status lw_cuda_mem_info(lw_cuda *cu, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = (size_t)8 << 30;
    return LW_OK;
}

lw_status lw_cuda_sync(lw_cuda *cu, const char *what) { return LW_OK; }

lw_status lw_cuda_get_kernel(lw_cuda *cu, const lw_cuda_module *m, const char *name, lw_cuda_kernel *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    out->unit = m ? m->unit : NULL;
    return LW_OK;
}

/* Streams and pinned memory: the twin runs every launch when it is made, so
 * a stream is a token, async copies are memcpy and pinned memory is malloc.
 * It has no graphs: a capture is refused, and the decode step falls back to
 * issuing its launches (gpu_decode.c), which is what the twin then runs. */
static char twin_stream;

lw_status lw_cuda_stream_create(lw_cuda *cu, void **stream)
{
    *stream = &twin_stream;
    return LW_OK;
}
void lw_cuda_stream_destroy(lw_cuda *cu, void *stream) {}
lw_status lw_cuda_stream_sync(lw_cuda *cu, void *stream, const char *what) { return LW_OK; }
lw_status lw_cuda_capture_begin(lw_cuda *cu, void *stream, const char *what)
{
    return lw_fail(LW_ERR_UNSUPPORTED, "host twin: no CUDA graphs (capturing %s)", what);
}
lw_status lw_cuda_capture_end(lw_cuda *cu, void *stream, const char *what, lw_cuda_graph *out)
{
    memset(out, 0, sizeof *out);
    return lw_fail(LW_ERR_UNSUPPORTED, "host twin: no CUDA graphs (capturing %s)", what);
}
lw_status lw_cuda_graph_launch(lw_cuda *cu, const lw_cuda_graph *g, void *stream, const char *what)
{
    return lw_fail(LW_ERR_UNSUPPORTED, "host twin: no CUDA graphs (replaying %s)", what);
}
void lw_cuda_graph_destroy(lw_cuda *cu, lw_cuda_graph *g) { memset(g, 0, sizeof *g); }
lw_status lw_cuda_host_alloc(lw_cuda *cu, size_t bytes, const char *what, void **out)
{
    *out = calloc(1, bytes ? bytes : 1);
    return *out ? LW_OK : lw_fail(LW_ERR_NOMEM, "host twin: out of memory for %s", what);
}
void lw_cuda_host_free(lw_cuda *cu, void *p) { free(p); }
lw_status lw_cuda_upload_async(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, void *stream,
                               const char *what)
{
    return lw_cuda_upload(cu, dst, src, bytes, what);
}
lw_status lw_cuda_download_async(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, void *stream,
                                 const char *what)
{
    return lw_cuda_download(cu, dst, src, bytes, what);
}

/* ---- cuBLAS ---------------------------------------------------------------- */

lw_status lw_cublas_set_stream(lw_cublas *b, void *stream) { return LW_OK; }

void lw_bf16_from_f32_array(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = lw_bf16_from_f32(src[i]);
}

lw_status lw_cuda_upload_bf16(lw_cuda *cu, lw_cuda_ptr dst, const float *src, size_t n, const char *what)
{
    lw_bf16_from_f32_array(at(dst), src, n);
    return LW_OK;
}

static lw_status check_product(lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out, const char *what)
{
    if (!y || !x || !w || T <= 0 || in <= 0 || out <= 0)
        return lw_fail(LW_ERR_INVALID, "host twin: product %s: y %s, x %s, w %s, T %d, in %d, out %d", what,
                       y ? "set" : "0", x ? "set" : "0", w ? "set" : "0", T, in, out);
    lw_twin_count.products++;
    return LW_OK;
}

lw_status lw_cublas_matmul(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                           const char *what)
{
    lw_status st = check_product(y, x, w, T, in, out, what);
    if (st) return st;
    float *Y = at(y);
    const float *X = at(x), *W = at(w);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            float s = 0.f;
            for (int i = 0; i < in; i++) s += X[(size_t)t * in + i] * W[(size_t)o * in + i];
            Y[(size_t)t * out + o] = s;
        }
    return LW_OK;
}

lw_status lw_cublas_matmul_dx(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in, int out,
                              bool accumulate, const char *what)
{
    lw_status st = check_product(dx, dy, w, T, in, out, what);
    if (st) return st;
    float *DX = at(dx);
    const float *DY = at(dy), *W = at(w);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < in; i++) {
            float s = 0.f;
            for (int o = 0; o < out; o++) s += DY[(size_t)t * out + o] * W[(size_t)o * in + i];
            DX[(size_t)t * in + i] = accumulate ? DX[(size_t)t * in + i] + s : s;
        }
    return LW_OK;
}

lw_status lw_cublas_matmul_dw(lw_cublas *b, lw_cuda_ptr dw, lw_cuda_ptr dy, lw_cuda_ptr x, int T, int in, int out,
                              bool accumulate, const char *what)
{
    lw_status st = check_product(dw, dy, x, T, in, out, what);
    if (st) return st;
    float *DW = at(dw);
    const float *DY = at(dy), *X = at(x);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            float s = 0.f;
            for (int t = 0; t < T; t++) s += DY[(size_t)t * out + o] * X[(size_t)t * in + i];
            DW[(size_t)o * in + i] = accumulate ? DW[(size_t)o * in + i] + s : s;
        }
    return LW_OK;
}

lw_status lw_cublas_matmul_bf16(lw_cublas *b, lw_cuda_ptr y, lw_cuda_ptr x, lw_cuda_ptr w, int T, int in, int out,
                                const char *what)
{
    lw_status st = check_product(y, x, w, T, in, out, what);
    if (st) return st;
    float *Y = at(y);
    const uint16_t *X = at(x), *W = at(w);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            float s = 0.f;
            for (int i = 0; i < in; i++)
                s += lw_f32_from_bf16(X[(size_t)t * in + i]) * lw_f32_from_bf16(W[(size_t)o * in + i]);
            Y[(size_t)t * out + o] = s;
        }
    return LW_OK;
}

lw_status lw_cublas_matmul_dx_bf16(lw_cublas *b, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in,
                                   int out, bool accumulate, const char *what)
{
    lw_status st = check_product(dx, dy, w, T, in, out, what);
    if (st) return st;
    lw_twin_count.bf16_dx_products++;
    float *DX = at(dx);
    const uint16_t *DY = at(dy), *W = at(w);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < in; i++) {
            float s = 0.f;
            for (int o = 0; o < out; o++)
                s += lw_f32_from_bf16(DY[(size_t)t * out + o]) * lw_f32_from_bf16(W[(size_t)o * in + i]);
            DX[(size_t)t * in + i] = accumulate ? DX[(size_t)t * in + i] + s : s;
        }
    return LW_OK;
}
