#include "nvrtc_compile.h"

#include <stdio.h>
#include <stdlib.h>

#include "lwc_config.h"

#if LWC_HAVE_NVRTC
#include <nvrtc.h>

bool lw_nvrtc_available(void) { return true; }

const char *lw_nvrtc_version(void)
{
    static char buf[32];
    int major = 0, minor = 0;
    nvrtcVersion(&major, &minor);
    snprintf(buf, sizeof buf, "%d.%d", major, minor);
    return buf;
}

lw_status lw_nvrtc_compile(const char *source, const char *file_name, int arch, unsigned char **image,
                           size_t *size)
{
    nvrtcProgram prog;
    if (nvrtcCreateProgram(&prog, source, file_name, 0, NULL, NULL) != NVRTC_SUCCESS)
        return lw_fail(LW_ERR_EXTERNAL, "%s: NVRTC could not create a program", file_name);
    char arch_opt[64];
    snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=sm_%d", arch);
    const char *opts[] = {arch_opt, "-std=c++17", "-lineinfo"};
    nvrtcResult rc = nvrtcCompileProgram(prog, 3, opts);
    lw_status st = LW_OK;
    if (rc != NVRTC_SUCCESS) {
        size_t log_size = 0;
        nvrtcGetProgramLogSize(prog, &log_size);
        char *log = malloc(log_size + 1);
        if (log) { nvrtcGetProgramLog(prog, log); log[log_size] = 0; }
        st = lw_fail(LW_ERR_EXTERNAL, "NVRTC failed to compile %s for sm_%d:\n%s", file_name, arch,
                     log ? log : "(no log)");
        free(log);
    } else {
        size_t n = 0;
        nvrtcGetCUBINSize(prog, &n);
        unsigned char *buf = malloc(n ? n : 1);
        if (!buf) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory for the CUBIN", file_name);
        else if (nvrtcGetCUBIN(prog, (char *)buf) != NVRTC_SUCCESS) {
            free(buf);
            st = lw_fail(LW_ERR_EXTERNAL, "%s: NVRTC returned no CUBIN for sm_%d", file_name, arch);
        } else {
            *image = buf;
            *size = n;
        }
    }
    nvrtcDestroyProgram(&prog);
    return st;
}

#else

bool lw_nvrtc_available(void) { return false; }
const char *lw_nvrtc_version(void) { return "none"; }

lw_status lw_nvrtc_compile(const char *source, const char *file_name, int arch, unsigned char **image,
                           size_t *size)
{
    (void)source; (void)image; (void)size;
    return lw_fail(LW_ERR_UNSUPPORTED, "%s: cannot compile for sm_%d: this lwc was built without NVRTC",
                   file_name, arch);
}

#endif
