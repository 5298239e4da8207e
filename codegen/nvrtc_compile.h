/* Compiles generated CUDA C to a CUBIN with NVRTC (no GPU needed). Without
 * NVRTC in the build (configure found none) lw_nvrtc_available() is false
 * and lwc builds CPU-only binaries. */
#ifndef LW_NVRTC_COMPILE_H
#define LW_NVRTC_COMPILE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

bool lw_nvrtc_available(void);
/* "13.0", or "none" */
const char *lw_nvrtc_version(void);

/* Compiles source (named file_name in diagnostics, so the log points at the
 * generated file and line) for sm_<arch>; *image is malloc'd. A compile
 * error is LW_ERR_EXTERNAL with NVRTC's log in the message. */
lw_status lw_nvrtc_compile(const char *source, const char *file_name, int arch, unsigned char **image,
                           size_t *size);

#endif
