/* The CUDA driver API through dlopen; see cuda_driver.h for why. */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lwc_config.h"

int lw_cuda_arch(const lw_cuda *cu) { return cu->cc_major * 10 + cu->cc_minor; }

#if LWC_HAVE_CUDA_H

#include <cuda.h>

/* The versioned names are spelled out: <cuda.h> maps cuMemAlloc to
 * cuMemAlloc_v2 and so on, and dlsym needs the exported symbol. */
struct lw_cuda_api {
    CUresult (*Init)(unsigned int);
    CUresult (*DriverGetVersion)(int *);
    CUresult (*DeviceGetCount)(int *);
    CUresult (*DeviceGet)(CUdevice *, int);
    CUresult (*DeviceGetName)(char *, int, CUdevice);
    CUresult (*DeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxSynchronize)(void);
    CUresult (*ModuleLoadData)(CUmodule *, const void *);
    CUresult (*ModuleUnload)(CUmodule);
    CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
    CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
    CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
    CUresult (*MemGetInfo)(size_t *, size_t *);
    CUresult (*GetErrorString)(CUresult, const char **);
    CUresult (*StreamCreate)(CUstream *, unsigned int);
    CUresult (*StreamDestroy)(CUstream);
    CUresult (*StreamSynchronize)(CUstream);
    CUresult (*StreamBeginCapture)(CUstream, CUstreamCaptureMode);
    CUresult (*StreamEndCapture)(CUstream, CUgraph *);
    CUresult (*GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
    CUresult (*GraphLaunch)(CUgraphExec, CUstream);
    CUresult (*GraphExecDestroy)(CUgraphExec);
    CUresult (*GraphDestroy)(CUgraph);
    CUresult (*MemAllocHost)(void **, size_t);
    CUresult (*MemFreeHost)(void *);
    CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
};

typedef struct {
    const char *symbol;
    size_t offset;
} api_entry;

#define ENTRY(field, sym) { sym, offsetof(struct lw_cuda_api, field) }
static const api_entry api_table[] = {
    ENTRY(Init, "cuInit"),
    ENTRY(DriverGetVersion, "cuDriverGetVersion"),
    ENTRY(DeviceGetCount, "cuDeviceGetCount"),
    ENTRY(DeviceGet, "cuDeviceGet"),
    ENTRY(DeviceGetName, "cuDeviceGetName"),
    ENTRY(DeviceGetAttribute, "cuDeviceGetAttribute"),
    ENTRY(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    ENTRY(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    ENTRY(CtxSetCurrent, "cuCtxSetCurrent"),
    ENTRY(CtxSynchronize, "cuCtxSynchronize"),
    ENTRY(ModuleLoadData, "cuModuleLoadData"),
    ENTRY(ModuleUnload, "cuModuleUnload"),
    ENTRY(ModuleGetFunction, "cuModuleGetFunction"),
    ENTRY(LaunchKernel, "cuLaunchKernel"),
    ENTRY(MemAlloc, "cuMemAlloc_v2"),
    ENTRY(MemFree, "cuMemFree_v2"),
    ENTRY(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    ENTRY(MemcpyDtoH, "cuMemcpyDtoH_v2"),
    ENTRY(MemsetD8, "cuMemsetD8_v2"),
    ENTRY(MemGetInfo, "cuMemGetInfo_v2"),
    ENTRY(GetErrorString, "cuGetErrorString"),
    ENTRY(StreamCreate, "cuStreamCreate"),
    ENTRY(StreamDestroy, "cuStreamDestroy_v2"),
    ENTRY(StreamSynchronize, "cuStreamSynchronize"),
    ENTRY(StreamBeginCapture, "cuStreamBeginCapture_v2"),
    ENTRY(StreamEndCapture, "cuStreamEndCapture"),
    ENTRY(GraphInstantiate, "cuGraphInstantiateWithFlags"),
    ENTRY(GraphLaunch, "cuGraphLaunch"),
    ENTRY(GraphExecDestroy, "cuGraphExecDestroy"),
    ENTRY(GraphDestroy, "cuGraphDestroy"),
    ENTRY(MemAllocHost, "cuMemAllocHost_v2"),
    ENTRY(MemFreeHost, "cuMemFreeHost"),
    ENTRY(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    ENTRY(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
};
#undef ENTRY

/* "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"-like text for r. */
static const char *error_text(const lw_cuda *cu, CUresult r, char *buf, size_t n)
{
    const char *s = NULL;
    if (cu->api && cu->api->GetErrorString && cu->api->GetErrorString(r, &s) != CUDA_SUCCESS) s = NULL;
    /* The toolkit's link stub describes nothing, and is a common mix-up. */
    if (!s && r == CUDA_ERROR_STUB_LIBRARY) s = "this is the CUDA toolkit's stub libcuda, not an NVIDIA driver";
    snprintf(buf, n, "CUDA error %d: %s", (int)r, s ? s : "(no description from the driver)");
    return buf;
}

/* One place turns a CUresult into an lw_status with the call and its context. */
static lw_status check(const lw_cuda *cu, CUresult r, const char *call, const char *what)
{
    if (r == CUDA_SUCCESS) return LW_OK;
    char buf[256];
    return lw_fail(LW_ERR_EXTERNAL, "%s (%s): %s", call, what, error_text(cu, r, buf, sizeof buf));
}

static lw_status resolve(lw_cuda *cu, const char *lib_name)
{
    for (size_t i = 0; i < sizeof api_table / sizeof api_table[0]; i++) {
        void *f = dlsym(cu->lib, api_table[i].symbol);
        if (!f)
            return lw_fail(LW_ERR_UNSUPPORTED, "%s lacks %s: not a CUDA driver, or one too old for lwc", lib_name,
                           api_table[i].symbol);
        /* POSIX guarantees a data pointer from dlsym converts to a function pointer. */
        memcpy((char *)cu->api + api_table[i].offset, &f, sizeof f);
    }
    return LW_OK;
}

static lw_status open_device(lw_cuda *cu, int ordinal)
{
    lw_cuda_api *a = cu->api;
    lw_status st = check(cu, a->Init(0), "cuInit", "initialising the CUDA driver");
    if (st) return st;
    if ((st = check(cu, a->DriverGetVersion(&cu->driver_version), "cuDriverGetVersion", "driver"))) return st;
    int count = 0;
    if ((st = check(cu, a->DeviceGetCount(&count), "cuDeviceGetCount", "listing devices"))) return st;
    if (ordinal < 0 || ordinal >= count)
        return lw_fail(LW_ERR_INVALID, "CUDA device %d requested, this machine has %d", ordinal, count);
    CUdevice dev;
    if ((st = check(cu, a->DeviceGet(&dev, ordinal), "cuDeviceGet", "device"))) return st;
    cu->device = ordinal;
    if ((st = check(cu, a->DeviceGetName(cu->name, (int)sizeof cu->name, dev), "cuDeviceGetName", "device")))
        return st;
    cu->name[sizeof cu->name - 1] = '\0';
    st = check(cu, a->DeviceGetAttribute(&cu->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
               "cuDeviceGetAttribute", "compute capability major");
    if (st) return st;
    st = check(cu, a->DeviceGetAttribute(&cu->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
               "cuDeviceGetAttribute", "compute capability minor");
    if (st) return st;
    /* The primary context, not a private one: cuBLAS and NCCL (runtime API)
     * use the primary context, so buffers are shared without copies. */
    CUcontext ctx;
    if ((st = check(cu, a->DevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain", "device context")))
        return st;
    cu->ctx = ctx;
    return check(cu, a->CtxSetCurrent(ctx), "cuCtxSetCurrent", "device context");
}

lw_status lw_cuda_init_from(lw_cuda *cu, const char *lib_name, int ordinal)
{
    memset(cu, 0, sizeof *cu);
    cu->lib = dlopen(lib_name, RTLD_NOW | RTLD_LOCAL);
    if (!cu->lib) {
        const char *why = dlerror();
        return lw_fail(LW_ERR_UNSUPPORTED, "no CUDA driver: cannot load %s (%s); --device cuda needs an NVIDIA "
                       "driver, use --device cpu here", lib_name, why ? why : "not found");
    }
    cu->api = calloc(1, sizeof *cu->api);
    lw_status st = cu->api ? resolve(cu, lib_name) : lw_fail(LW_ERR_NOMEM, "CUDA driver: out of memory");
    if (!st) st = open_device(cu, ordinal);
    if (st) lw_cuda_close(cu);
    return st;
}

lw_status lw_cuda_init(lw_cuda *cu, int ordinal) { return lw_cuda_init_from(cu, "libcuda.so.1", ordinal); }

void lw_cuda_close(lw_cuda *cu)
{
    if (cu->ctx && cu->api) {
        CUdevice dev;
        if (cu->api->DeviceGet(&dev, cu->device) == CUDA_SUCCESS) cu->api->DevicePrimaryCtxRelease(dev);
    }
    free(cu->api);
    if (cu->lib) dlclose(cu->lib);
    memset(cu, 0, sizeof *cu);
}

static lw_status need_open(const lw_cuda *cu, const char *what)
{
    if (cu && cu->api && cu->ctx) return LW_OK;
    return lw_fail(LW_ERR_INVALID, "%s: the CUDA device is not initialised (call lw_cuda_init first)", what);
}

lw_status lw_cuda_load_image(lw_cuda *cu, const char *unit, int arch, const void *image, lw_cuda_module *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = need_open(cu, unit);
    if (st) return st;
    CUmodule mod;
    char what[96];
    snprintf(what, sizeof what, "loading the %s kernels, sm_%d, on an sm_%d device", unit, arch, lw_cuda_arch(cu));
    if ((st = check(cu, cu->api->ModuleLoadData(&mod, image), "cuModuleLoadData", what))) return st;
    out->module = mod;
    out->unit = unit;
    out->arch = arch;
    return LW_OK;
}

lw_status lw_cuda_check_open(const lw_cuda *cu, const char *what) { return need_open(cu, what); }

void lw_cuda_unload(lw_cuda *cu, lw_cuda_module *m)
{
    if (m->module && cu->api) cu->api->ModuleUnload((CUmodule)m->module);
    memset(m, 0, sizeof *m);
}

lw_status lw_cuda_get_kernel(lw_cuda *cu, const lw_cuda_module *m, const char *name, lw_cuda_kernel *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = need_open(cu, name);
    if (st) return st;
    if (strlen(name) >= sizeof out->name)
        return lw_fail(LW_ERR_INVALID, "kernel name %.40s... is longer than %zu", name, sizeof out->name - 1);
    CUfunction fn;
    char what[128];
    snprintf(what, sizeof what, "kernel %s in the %s module", name, m->unit ? m->unit : "?");
    if ((st = check(cu, cu->api->ModuleGetFunction(&fn, (CUmodule)m->module, name), "cuModuleGetFunction", what)))
        return st;
    out->fn = fn;
    out->unit = m->unit;
    snprintf(out->name, sizeof out->name, "%s", name);
    return LW_OK;
}

lw_status lw_cuda_launch(lw_cuda *cu, const lw_cuda_kernel *k, unsigned grid_x, unsigned grid_y,
                         unsigned grid_z, unsigned block_x, unsigned block_y, unsigned block_z,
                         unsigned shared_bytes, void **args)
{
    lw_status st = need_open(cu, k->name);
    if (st) return st;
    unsigned long long threads = (unsigned long long)block_x * block_y * block_z;
    if (!grid_x || !grid_y || !grid_z || !threads || threads > 1024 || grid_y > 65535 || grid_z > 65535)
        return lw_fail(LW_ERR_INVALID, "launching %s (%s): grid (%u, %u, %u) block (%u, %u, %u) is out of range",
                       k->name, k->unit, grid_x, grid_y, grid_z, block_x, block_y, block_z);
    char what[128];
    snprintf(what, sizeof what, "kernel %s of %s, grid (%u, %u, %u) block (%u, %u, %u)", k->name, k->unit,
             grid_x, grid_y, grid_z, block_x, block_y, block_z);
    return check(cu, cu->api->LaunchKernel((CUfunction)k->fn, grid_x, grid_y, grid_z, block_x, block_y, block_z,
                                           shared_bytes, (CUstream)cu->stream, args, NULL), "cuLaunchKernel", what);
}

lw_status lw_cuda_sync(lw_cuda *cu, const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->CtxSynchronize(), "cuCtxSynchronize", what);
}

lw_status lw_cuda_alloc(lw_cuda *cu, size_t bytes, const char *what, lw_cuda_ptr *out)
{
    *out = 0;
    lw_status st = need_open(cu, what);
    if (st) return st;
    if (bytes == 0) return lw_fail(LW_ERR_INVALID, "allocating %s on the GPU: 0 bytes", what);
    CUdeviceptr p;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%zu bytes for %s", bytes, what);
    if ((st = check(cu, cu->api->MemAlloc(&p, bytes), "cuMemAlloc", ctx))) return st;
    *out = (lw_cuda_ptr)p;
    return LW_OK;
}

void lw_cuda_free(lw_cuda *cu, lw_cuda_ptr p)
{
    if (p && cu->api) cu->api->MemFree((CUdeviceptr)p);
}

lw_status lw_cuda_upload(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->MemcpyHtoD((CUdeviceptr)dst, src, bytes), "cuMemcpyHtoD", what);
}

lw_status lw_cuda_download(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->MemcpyDtoH(dst, (CUdeviceptr)src, bytes), "cuMemcpyDtoH", what);
}

lw_status lw_cuda_memset0(lw_cuda *cu, lw_cuda_ptr dst, size_t bytes, const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->MemsetD8((CUdeviceptr)dst, 0, bytes), "cuMemsetD8", what);
}

lw_status lw_cuda_mem_info(lw_cuda *cu, size_t *free_bytes, size_t *total_bytes)
{
    lw_status st = need_open(cu, "memory info");
    return st ? st : check(cu, cu->api->MemGetInfo(free_bytes, total_bytes), "cuMemGetInfo", "device memory");
}

lw_status lw_cuda_stream_create(lw_cuda *cu, void **stream)
{
    *stream = NULL;
    lw_status st = need_open(cu, "a stream");
    CUstream s;
    if (!st) st = check(cu, cu->api->StreamCreate(&s, CU_STREAM_NON_BLOCKING), "cuStreamCreate", "a stream");
    if (!st) *stream = s;
    return st;
}

void lw_cuda_stream_destroy(lw_cuda *cu, void *stream)
{
    if (stream && cu->api) cu->api->StreamDestroy((CUstream)stream);
}

lw_status lw_cuda_stream_sync(lw_cuda *cu, void *stream, const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->StreamSynchronize((CUstream)stream), "cuStreamSynchronize", what);
}

lw_status lw_cuda_capture_begin(lw_cuda *cu, void *stream, const char *what)
{
    lw_status st = need_open(cu, what);
    if (!st && !stream) st = lw_fail(LW_ERR_INVALID, "capturing %s: not on the legacy default stream", what);
    /* thread-local: only this thread's unsafe calls (a synchronous copy, a sync) break the capture */
    return st ? st : check(cu, cu->api->StreamBeginCapture((CUstream)stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                           "cuStreamBeginCapture", what);
}

lw_status lw_cuda_capture_end(lw_cuda *cu, void *stream, const char *what, lw_cuda_graph *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = need_open(cu, what);
    if (st) return st;
    CUgraph graph = NULL;
    st = check(cu, cu->api->StreamEndCapture((CUstream)stream, &graph), "cuStreamEndCapture", what);
    if (st) {
        if (graph) cu->api->GraphDestroy(graph);
        return st;
    }
    CUgraphExec exec = NULL;
    st = check(cu, cu->api->GraphInstantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags", what);
    if (st) {
        cu->api->GraphDestroy(graph);
        return st;
    }
    out->graph = graph, out->exec = exec;
    return LW_OK;
}

lw_status lw_cuda_graph_launch(lw_cuda *cu, const lw_cuda_graph *g, void *stream, const char *what)
{
    lw_status st = need_open(cu, what);
    if (!st && !g->exec) st = lw_fail(LW_ERR_INVALID, "replaying %s: no graph was captured", what);
    return st ? st : check(cu, cu->api->GraphLaunch((CUgraphExec)g->exec, (CUstream)stream), "cuGraphLaunch", what);
}

void lw_cuda_graph_destroy(lw_cuda *cu, lw_cuda_graph *g)
{
    if (cu->api && g->exec) cu->api->GraphExecDestroy((CUgraphExec)g->exec);
    if (cu->api && g->graph) cu->api->GraphDestroy((CUgraph)g->graph);
    memset(g, 0, sizeof *g);
}

lw_status lw_cuda_host_alloc(lw_cuda *cu, size_t bytes, const char *what, void **out)
{
    *out = NULL;
    lw_status st = need_open(cu, what);
    if (st) return st;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%zu pinned host bytes for %s", bytes, what);
    return check(cu, cu->api->MemAllocHost(out, bytes ? bytes : 1), "cuMemAllocHost", ctx);
}

void lw_cuda_host_free(lw_cuda *cu, void *p)
{
    if (p && cu->api) cu->api->MemFreeHost(p);
}

lw_status lw_cuda_upload_async(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, void *stream,
                               const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->MemcpyHtoDAsync((CUdeviceptr)dst, src, bytes, (CUstream)stream),
                           "cuMemcpyHtoDAsync", what);
}

lw_status lw_cuda_download_async(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, void *stream,
                                 const char *what)
{
    lw_status st = need_open(cu, what);
    return st ? st : check(cu, cu->api->MemcpyDtoHAsync(dst, (CUdeviceptr)src, bytes, (CUstream)stream),
                           "cuMemcpyDtoHAsync", what);
}

#else /* no <cuda.h>: every entry point reports the same reason */

struct lw_cuda_api {
    int unused;
};

static lw_status no_cuda(void)
{
    return lw_fail(LW_ERR_UNSUPPORTED, "CUDA: lwc was built without CUDA headers (cuda.h not found by configure); "
                   "use --device cpu");
}

lw_status lw_cuda_init_from(lw_cuda *cu, const char *lib_name, int ordinal)
{
    memset(cu, 0, sizeof *cu);
    return no_cuda();
}
lw_status lw_cuda_init(lw_cuda *cu, int ordinal) { return lw_cuda_init_from(cu, "libcuda.so.1", ordinal); }
void lw_cuda_close(lw_cuda *cu) { memset(cu, 0, sizeof *cu); }
lw_status lw_cuda_check_open(const lw_cuda *cu, const char *what) { return no_cuda(); }
lw_status lw_cuda_load_image(lw_cuda *cu, const char *unit, int arch, const void *image, lw_cuda_module *out)
{
    memset(out, 0, sizeof *out);
    return no_cuda();
}
void lw_cuda_unload(lw_cuda *cu, lw_cuda_module *m) { memset(m, 0, sizeof *m); }
lw_status lw_cuda_get_kernel(lw_cuda *cu, const lw_cuda_module *m, const char *name, lw_cuda_kernel *out)
{
    memset(out, 0, sizeof *out);
    return no_cuda();
}
lw_status lw_cuda_launch(lw_cuda *cu, const lw_cuda_kernel *k, unsigned grid_x, unsigned grid_y,
                         unsigned grid_z, unsigned block_x, unsigned block_y, unsigned block_z,
                         unsigned shared_bytes, void **args)
{
    return no_cuda();
}
lw_status lw_cuda_sync(lw_cuda *cu, const char *what) { return no_cuda(); }
lw_status lw_cuda_alloc(lw_cuda *cu, size_t bytes, const char *what, lw_cuda_ptr *out)
{
    *out = 0;
    return no_cuda();
}
void lw_cuda_free(lw_cuda *cu, lw_cuda_ptr p) {}
lw_status lw_cuda_upload(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, const char *what)
{
    return no_cuda();
}
lw_status lw_cuda_download(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, const char *what)
{
    return no_cuda();
}
lw_status lw_cuda_memset0(lw_cuda *cu, lw_cuda_ptr dst, size_t bytes, const char *what) { return no_cuda(); }
lw_status lw_cuda_mem_info(lw_cuda *cu, size_t *free_bytes, size_t *total_bytes) { return no_cuda(); }
lw_status lw_cuda_stream_create(lw_cuda *cu, void **stream)
{
    *stream = NULL;
    return no_cuda();
}
void lw_cuda_stream_destroy(lw_cuda *cu, void *stream) {}
lw_status lw_cuda_stream_sync(lw_cuda *cu, void *stream, const char *what) { return no_cuda(); }
lw_status lw_cuda_capture_begin(lw_cuda *cu, void *stream, const char *what) { return no_cuda(); }
lw_status lw_cuda_capture_end(lw_cuda *cu, void *stream, const char *what, lw_cuda_graph *out)
{
    memset(out, 0, sizeof *out);
    return no_cuda();
}
lw_status lw_cuda_graph_launch(lw_cuda *cu, const lw_cuda_graph *g, void *stream, const char *what)
{
    return no_cuda();
}
void lw_cuda_graph_destroy(lw_cuda *cu, lw_cuda_graph *g) { memset(g, 0, sizeof *g); }
lw_status lw_cuda_host_alloc(lw_cuda *cu, size_t bytes, const char *what, void **out)
{
    *out = NULL;
    return no_cuda();
}
void lw_cuda_host_free(lw_cuda *cu, void *p) {}
lw_status lw_cuda_upload_async(lw_cuda *cu, lw_cuda_ptr dst, const void *src, size_t bytes, void *stream,
                               const char *what)
{
    return no_cuda();
}
lw_status lw_cuda_download_async(lw_cuda *cu, void *dst, lw_cuda_ptr src, size_t bytes, void *stream,
                                 const char *what)
{
    return no_cuda();
}

#endif
