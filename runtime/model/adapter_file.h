/* The adapters' parameter table (adapters.h) as a safetensors file: an
 * atomic save and a load that checks every name and shape, the AdamW
 * moments beside it, and the file's metadata. Apart from adapters.h so that
 * what only runs the adapters (the forward, the backward) does not stand
 * above the file readers. */
#ifndef LW_ADAPTER_FILE_H
#define LW_ADAPTER_FILE_H

#include "adamw.h"
#include "adapter_params.h"
#include "status.h"

typedef struct {
    const char *key, *value;
} lw_adapter_meta;

/* Writes every tensor (F32) to path atomically, with the metadata given. */
lw_status lw_adapter_params_save(const lw_adapter_params *p, const char *path, const lw_adapter_meta *meta,
                                 int n_meta);
/* Reads a file written by _save (or by PyTorch under the same names): every
 * tensor of p must be there, F32, with its exact shape, and nothing else.
 * On error p is unchanged. */
lw_status lw_adapter_params_load(lw_adapter_params *p, const char *path);
/* The AdamW moments as "adam_m.<name>" / "adam_v.<name>" and the step as
 * metadata "adam_step", so a resumed run continues bit for bit. */
lw_status lw_adapter_params_save_adamw(const lw_adapter_params *p, const lw_adamw *opt, const char *path);
lw_status lw_adapter_params_load_adamw(const lw_adapter_params *p, lw_adamw *opt, const char *path);
/* A string of a safetensors file's __metadata__ (malloc'd into *value; NULL
 * when the key is absent). */
lw_status lw_adapter_read_meta(const char *path, const char *key, char **value);

#endif
