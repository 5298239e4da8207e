/* `lwc build`: manifest -> build/<pair>/ with generated kernels, their CUBINs,
 * the generated runtime and the linked binary lw. Rebuilds only what changed:
 * a stamp over the manifest, the templates, the toolchain and the runtime
 * library decides whether anything is to do; NVRTC reruns only for kernel
 * sources whose text changed. */
#ifndef LW_BUILD_H
#define LW_BUILD_H

#include <stdbool.h>

#include "status.h"

typedef struct {
    const char *manifest_path;
    const char *out_root;    /* "build" by default: writes <out_root>/<name>/ */
    const char *lwc_root;    /* holds include/lwc, lib/lwc/liblwrt.a, share/lwc/{templates,toolchain.conf} */
    bool force;              /* rebuild even if the stamp matches */
    bool quiet;
} lw_build_options;

lw_status lw_build_pair(const lw_build_options *opt);

#endif
