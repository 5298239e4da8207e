/* Random GGUF-style quantised blocks for the tests of the block products
 * (check_matmul_qn.c: decode-per-call products, check_matmul_qp.c: the
 * int8 panels packed at load), and the references both hold them to. */
#ifndef TL_QN_BLOCKS_H
#define TL_QN_BLOCKS_H

#include "rng.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every block format the products take, in one list. */
extern const uint32_t tl_qn_types[];
enum { TL_QN_N_TYPES = 8 };

/* Q4_K, Q5_K, Q6_K: 256-wide super-blocks with sub-block scales. */
bool tl_qn_k_quant(uint32_t type);

/* rows rows of `in` values as random blocks of `type`: random bytes, with
 * the fp16 fields set to finite values of magnitude in [2^-6, 2^-1) (random
 * bytes there could be NaN or huge). Freed with free(). */
uint8_t *tl_qn_rand_blocks(lw_rng *rng, uint32_t type, int rows, int in);

/* n uniform floats in [-1, 1) drawn from rng (thread_same.h's tl_rand_floats seeds its own). */
float *tl_rng_floats(lw_rng *rng, size_t n);

/* The weights as runtime/io/dequant.c reads them, [out][in]. */
float *tl_qn_dequantised(uint32_t type, const uint8_t *blocks, int out, int in);

/* The bound n u / (1 - n u) on the relative error of an n-term fp32 sum. */
double tl_gamma_n(int n);

#endif
