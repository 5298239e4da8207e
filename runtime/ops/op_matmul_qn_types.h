/* The types of the quantised-block products (op_matmul_qn.h): the block
 * formats, a matrix of segments and the quantised activations. Apart from
 * the functions so that the micro-kernels (op_matmul_qn_kernels.h) and the
 * block decoders (op_matmul_qn_decode.h) stand on the types alone, and the
 * products on them. */
#ifndef LW_OP_MATMUL_QN_TYPES_H
#define LW_OP_MATMUL_QN_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Block formats, numbered as ggml's ggml_type (and runtime/io/dequant.h's
 * lw_ggml_type, which this folder cannot include: tests check they agree). */
enum {
    LW_QN_Q4_0 = 2, LW_QN_Q4_1 = 3, LW_QN_Q5_0 = 6, LW_QN_Q5_1 = 7, LW_QN_Q8_0 = 8,
    LW_QN_Q4_K = 12, LW_QN_Q5_K = 13, LW_QN_Q6_K = 14
};
enum { LW_QN_MAX_SEGMENTS = 4 };

typedef struct {
    int row0, rows;        /* rows [row0, row0 + rows) of the matrix */
    uint32_t type;
    size_t row_bytes;
    const uint8_t *data;   /* rows * row_bytes bytes, as in the file */
} lw_qn_segment;

typedef struct lw_qn_matrix {
    int out, in;
    int ld;                /* columns as stored: in, or in rounded up to 32 for a
                              matrix quantised here (the padding is zeros) */
    int nseg;
    lw_qn_segment seg[LW_QN_MAX_SEGMENTS];
    bool owns;             /* false for a view (lw_qn_rows_view): frees nothing */
} lw_qn_matrix;

/* x quantised for the forward: made once per product, then read by every
 * output column range (the thread pool can split [0, out) among workers). */
typedef struct {
    int T, in;     /* in: the matrix's ld (x's rows are padded with zeros to it) */
    int8_t *qx;    /* T * in */
    float *sx;     /* T * in/32: the block scales */
    float *xf;     /* T * in/16: sx_b * X_g, the offsets' weight per 16 columns */
    float *sxl;    /* T * in/4: sx of each 4 columns (the AVX-512 lanes' scales) */
} lw_qn_act;

#endif
