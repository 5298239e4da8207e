/* Writing F32 tensors as a .safetensors file that PyTorch's
 * safetensors.torch.load_file reads as-is:
 *   8-byte little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [...],
 *    "data_offsets": [begin, end]}, ...} padded with spaces to a multiple of
 *   8, then the tensor bytes back to back in the order given.
 * The file is written to "<path>.tmp", fsync'd and renamed over path, so a
 * reader sees either the old file or the complete new one. */
#ifndef LW_SAFETENSORS_WRITE_H
#define LW_SAFETENSORS_WRITE_H

#include <stdint.h>

#include "status.h"

enum { LW_ST_MAX_DIMS = 4 };

typedef struct {
    const char *name;
    const float *data;
    int ndim;                          /* 0 (scalar) .. LW_ST_MAX_DIMS */
    int64_t shape[LW_ST_MAX_DIMS];
} lw_st_tensor;

typedef struct {
    const char *key;
    const char *value;
} lw_st_meta;

lw_status lw_safetensors_write(const char *path, const lw_st_tensor *tensors, int n_tensors,
                               const lw_st_meta *meta, int n_meta);

#endif
