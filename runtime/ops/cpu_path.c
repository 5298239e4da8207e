/* The CPU path switch (cpu_path.h). */
#include "cpu_path.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lw_cpu_path lw_cpu_path_detected(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* vdpbf16ps needs avx512bf16; the 16-bit loads and masks need bw/vl;
     * the int8 kernels need avx512vnni. All-or-nothing keeps one AVX-512 path. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16") &&
        __builtin_cpu_supports("avx512vnni"))
        return LW_CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LW_CPU_AVX2;
#endif
    return LW_CPU_SCALAR;
}

const char *lw_cpu_path_name(lw_cpu_path path)
{
    switch (path) {
    case LW_CPU_SCALAR: return "scalar";
    case LW_CPU_AVX2: return "avx2";
    case LW_CPU_AVX512: return "avx512";
    }
    return "?";
}

lw_status lw_cpu_path_choose(const char *env, lw_cpu_path detected, lw_cpu_path *path)
{
    *path = detected;
    if (!env || !*env) return LW_OK;
    for (int p = LW_CPU_SCALAR; p <= LW_CPU_AVX512; p++) {
        if (!strcmp(env, lw_cpu_path_name((lw_cpu_path)p))) {
            if ((lw_cpu_path)p < detected) *path = (lw_cpu_path)p;
            return LW_OK;
        }
    }
    return lw_fail(LW_ERR_INVALID, "LWC_CPU_PATH=%s: expected scalar, avx2 or avx512", env);
}

static pthread_once_t path_once = PTHREAD_ONCE_INIT;
static lw_cpu_path path_chosen;
static char path_bad_env[64]; /* the rejected value (a copy: setenv may free getenv's) */

static void path_init(void)
{
    const char *env = getenv("LWC_CPU_PATH");
    if (lw_cpu_path_choose(env, lw_cpu_path_detected(), &path_chosen) != LW_OK)
        snprintf(path_bad_env, sizeof path_bad_env, "%s", env);
}

lw_status lw_cpu_path_get(lw_cpu_path *path)
{
    pthread_once(&path_once, path_init);
    *path = path_chosen;
    if (path_bad_env[0])
        return lw_fail(LW_ERR_INVALID, "LWC_CPU_PATH=%s: expected scalar, avx2 or avx512", path_bad_env);
    return LW_OK;
}
