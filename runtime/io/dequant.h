/* Dequantization of ggml tensor types to fp32, bit-for-bit the same as
 * gguf-py's gguf.quants.dequantize (numpy), so goldens made in Python hold.
 * Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. */
#ifndef LW_DEQUANT_H
#define LW_DEQUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Tensor element types, numbered as ggml's ggml_type. Only the ones
 * runtime/io/dequant.c can convert are named; others load as "type N". */
typedef enum {
    LW_GGML_F32 = 0, LW_GGML_F16 = 1, LW_GGML_Q4_0 = 2, LW_GGML_Q4_1 = 3,
    LW_GGML_Q5_0 = 6, LW_GGML_Q5_1 = 7, LW_GGML_Q8_0 = 8, LW_GGML_Q8_1 = 9,
    LW_GGML_Q2_K = 10, LW_GGML_Q3_K = 11, LW_GGML_Q4_K = 12, LW_GGML_Q5_K = 13,
    LW_GGML_Q6_K = 14, LW_GGML_Q8_K = 15, LW_GGML_BF16 = 30, LW_GGML_TYPE_COUNT = 40
} lw_ggml_type;

/* "Q4_K", "F32", ... or NULL for an unknown type. */
const char *lw_ggml_type_name(uint32_t type);

/* A typed view of one tensor's bytes inside a mapped file, as the three
 * weight loaders (GGUF, safetensors, llama2.c) hand it to runtime/io/weights.c. */
typedef struct {
    const char *name;        /* canonical (GGUF) name */
    uint32_t type;           /* lw_ggml_type */
    int ndim;
    int64_t shape[4];        /* PyTorch order: shape[0] slowest */
    int64_t n_elements;
    const void *data;
    size_t nbytes;
    float add;               /* added to every value after conversion (Gemma norms from HF: 1) */
} lw_raw_tensor;

/* Elements per block and bytes per block of a ggml type (1 and the element
 * size for plain floats). False for types this module cannot convert. */
bool lw_dequant_supported(uint32_t type);
bool lw_ggml_block_info(uint32_t type, size_t *block_elems, size_t *block_bytes);

/* Bytes that n elements of `type` take; false if unsupported, if n is not a
 * multiple of the block size, or on overflow. */
bool lw_ggml_nbytes(uint32_t type, int64_t n, size_t *nbytes);

/* Dequantizes n elements (a multiple of the block size) starting at src.
 * The caller has checked that src holds lw_ggml_nbytes(type, n) bytes.
 * A row of a [rows, row_len] tensor starts at byte row * nbytes(row_len). */
lw_status lw_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/* IEEE half / bfloat16 to float, exact. */
float lw_fp16_to_f32(uint16_t h);
float lw_bf16_to_f32(uint16_t h);

#endif
