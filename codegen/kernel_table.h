/* The kernel table, templates/kernels.def, as data: each CUDA kernel's
 * name, unit, launch shape and parameters. Two readers: the check below,
 * which `lwc build` runs on every kernel template so that a signature that
 * drifted from the table stops the build with the kernel, the parameter and
 * the template line; and gen_launchers.c, which writes the typed launchers
 * the runtime calls. */
#ifndef LW_KERNEL_TABLE_H
#define LW_KERNEL_TABLE_H

#include "fileutil.h"
#include "status.h"

enum { LW_KERNEL_MAX_PARAMS = 24 };

/* One entry as the preprocessor stringified it (see kernels.def). */
typedef struct {
    const char *name, *unit;             /* unit: "model" or "bridge" */
    const char *sizes;                   /* "(int n_heads)" or "()" */
    const char *grid_x, *grid_y, *block_x;
    const char *params;                  /* "(float *y, const int *ids, int T)" */
} lw_kernel_entry;

typedef struct {
    char type[48];   /* tokens joined by one space: "const float *", "unsigned long long" */
    char name[32];
} lw_kernel_param;

extern const lw_kernel_entry lw_kernel_table[];
extern const int lw_kernel_table_len;

/* "templates/kernels.def", for messages. */
#define LW_KERNEL_TABLE_FILE "templates/kernels.def"

/* Parses a parameter list, "(float *y, int T)" or "()", into out (at most
 * max); what names the list in errors ("kernel glu_forward's parameters"). */
lw_status lw_kernel_parse_params(const char *list, const char *what, lw_kernel_param *out, int max, int *n);

/* The host type of a kernel parameter: lw_cuda_ptr for a pointer (a device
 * address), the type itself for int, unsigned, float, unsigned long long;
 * NULL for anything else. */
const char *lw_kernel_host_type(const char *type);

/* The table is well formed: known units, unique names, lists that parse,
 * host types for every parameter, sizes that are ints and do not shadow a
 * parameter. */
lw_status lw_kernel_table_validate(void);

/* The kernels of unit ("model" or "bridge") in a template's text (file
 * names it in errors) agree with the table: every extern "C" __global__
 * kernel is in the table under this unit with the same parameters (types
 * and names, in order), and every kernel the table gives this unit is
 * defined once. LW_ERR_FORMAT otherwise, naming file:line and what differs. */
lw_status lw_kernel_table_check_template(const char *file, const char *text, const char *unit);

/* Appends to a unit's generated CUDA source one static_assert per kernel of
 * unit that its type is the table's, so NVRTC itself refuses a kernel whose
 * signature, after the preprocessor, is not what the host's launcher packs
 * (the text check above sees the template before macros and #if). */
lw_status lw_kernel_table_type_checks(const char *unit, lw_strbuf *out);

#endif
