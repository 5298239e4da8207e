/* Writes kernel_launchers.h from the kernel table (kernel_table.h): per
 * unit a struct of kernel handles and its *_kernels_find, and per kernel a
 * typed launcher lwk_<name> that packs the arguments and computes the launch
 * shape from the table's rule (runtime/device/cuda_launch.h says how to call them).
 *
 * The header is pair-independent (the kernels' arguments and shapes do not
 * depend on a manifest: the dimensions they bake in are constants of the
 * module, the shapes' sizes are arguments), so it is generated once when lwc
 * itself is built (the Makefile runs codegen/tools/gen_launchers.c into
 * out/gen) and liblwrt, which every pair links, is compiled against it. */
#ifndef LW_GEN_LAUNCHERS_H
#define LW_GEN_LAUNCHERS_H

#include "fileutil.h"

/* Validates the table, then appends the header's text to out. */
lw_status lw_gen_kernel_launchers(lw_strbuf *out);

#endif
