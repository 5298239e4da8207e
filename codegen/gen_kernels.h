/* Generates the CUDA C of a pair: one translation unit per model (sender,
 * receiver) and one for the bridge, each = a constants block rendered from
 * the manifest + templates/common.cuh + the kernel template. A kernel
 * template whose signatures differ from templates/kernels.def is refused
 * (LW_ERR_FORMAT, naming the line; kernel_table.h), and each unit ends with
 * the table's static_asserts of its kernels' types, which NVRTC checks. */
#ifndef LW_GEN_KERNELS_H
#define LW_GEN_KERNELS_H

#include "fileutil.h"
#include "manifest.h"

lw_status lw_gen_model_kernels(const char *templates_dir, const lw_model_config *m, int soft_tokens,
                               lw_strbuf *out);
lw_status lw_gen_bridge_kernels(const char *templates_dir, const lw_manifest *m, lw_strbuf *out);

#endif
