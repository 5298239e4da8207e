/* Generates the C runtime of a pair: pair_runtime.c (the manifest baked in
 * as a const lw_pair, and main) and kernels_embed.c (the CUBINs as bytes). */
#ifndef LW_GEN_RUNTIME_H
#define LW_GEN_RUNTIME_H

#include "fileutil.h"
#include "manifest.h"

typedef struct {
    const char *unit;          /* "sender", "receiver", "bridge" */
    int arch;
    const unsigned char *cubin;
    size_t size;
} lw_cubin_ref;

lw_status lw_gen_pair_runtime(const lw_manifest *m, const char *stamp, const char *nvrtc_version, lw_strbuf *out);
lw_status lw_gen_kernels_embed(const lw_cubin_ref *cubins, int n, lw_strbuf *out);

#endif
