/* Which CPU code path the narrow-weight kernels take, chosen once per process
 * from the CPU's features (__builtin_cpu_supports) and the environment switch
 * LWC_CPU_PATH=scalar|avx2|avx512, which can only force a LOWER path than the
 * CPU has: the point of the switch is to test the fallbacks on a machine that
 * has everything, and asking for more than the CPU has would fault (SIGILL). */
#ifndef LW_CPU_PATH_H
#define LW_CPU_PATH_H

#include "status.h"

typedef enum {
    LW_CPU_SCALAR = 0, /* plain C: the reference every other path is tested against */
    LW_CPU_AVX2 = 1,   /* AVX2 + FMA: bf16 widened to fp32 in registers */
    LW_CPU_AVX512 = 2  /* AVX-512 F/BW/VL + BF16 (vdpbf16ps) + VNNI (vpdpbusd) */
} lw_cpu_path;

/* The best path this CPU can run (no environment involved). */
lw_cpu_path lw_cpu_path_detected(void);

/* The path in use: min(detected, LWC_CPU_PATH), decided on the first call and
 * fixed after that, so one process never mixes paths. A value of LWC_CPU_PATH
 * that is not a path name fails (LW_ERR_INVALID) on every call, rather than
 * silently running a path nobody asked for. */
lw_status lw_cpu_path_get(lw_cpu_path *path);

/* The pure rule behind lw_cpu_path_get, for tests: env may be NULL or "". */
lw_status lw_cpu_path_choose(const char *env, lw_cpu_path detected, lw_cpu_path *path);

/* "scalar", "avx2", "avx512". */
const char *lw_cpu_path_name(lw_cpu_path path);

#endif
