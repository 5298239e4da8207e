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

/* The same values repacked once at load for the AVX-512 VNNI panel kernel
 * (op_matmul_qp.h): rows in panels of 16, u of 4 columns of the 16 rows
 * side by side ([rows/16][ldp/4][16][4] bytes: one vpdpbusd operand), the
 * scales s and offset factors c of the 16 rows per group of 16 * gs columns
 * ([rows/16][ldp/(16 gs)][16] floats; gs = 2 when every group's scale spans
 * a block of 32, 1 for Q6_K's per-16 scales). A view starts at a panel
 * (forward: rows from a multiple of 16) or a block of columns (c0, a
 * multiple of 32: the transposed copy's view of some rows of w). u == NULL:
 * no packed copy.
 *
 * nib: the 4-bit formats (every segment Q4_0, Q4_1 or Q4_K: u < 16) keep
 * two u a byte, halving what decode streams: [rows/16][ldp/8][16][4] bytes,
 * the low nibbles columns 8h..8h+3 and the high ones 8h+4..8h+7 of each
 * output (the kernel masks and shifts them back to the byte operands).
 *
 * cz: the symmetric formats (every segment Q4_0, Q5_0, Q6_K or Q8_0 with
 * the same zero point z: 8, 16, 32, 128) have c = -(z s) for every output
 * and group, so c is not stored (c == NULL, cz = z) and the kernel makes it
 * from s: z is a power of two, so s * -z is the stored value exactly (the
 * same bits), and a quarter of the forward copy's bytes (Q8_0's: 1.25 ->
 * 1.125 a weight; Q6_K's 1.5 -> 1.25) is not streamed. 0: c stored. */
typedef struct {
    uint8_t *u;
    float *s, *c;
    float cz;
    int rows;       /* outputs of this view */
    int cols;       /* columns x has (a multiple of 32) */
    int c0, ldp;    /* first stored column read; stored columns */
    int gs;
    int nib;        /* 1: two 4-bit u a byte (above); forward copies only */
} lw_qp;

/* Bytes of u in one panel of 16 rows (halved for nibbles). */
static inline size_t lw_qp_panel_u_bytes(const lw_qp *p) { return (size_t)p->ldp * 16 >> p->nib; }

typedef struct lw_qn_matrix {
    int out, in;
    int ld;                /* columns as stored: in, or in rounded up to 32 for a
                              matrix quantised here (the padding is zeros) */
    int nseg;
    lw_qn_segment seg[LW_QN_MAX_SEGMENTS];
    bool owns;             /* false for a view (lw_qn_rows_view): frees nothing */
    lw_qp fwd;             /* w packed for the forward (AVX-512 only), or empty */
    lw_qp bwd;             /* w^T requantised to int8 blocks of 32 along out and
                              packed, for dx = dy w (lw train's receiver), or empty */
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
