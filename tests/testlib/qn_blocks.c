#include "qn_blocks.h"

#include "dequant.h"
#include "op_matmul_qn.h"
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const uint32_t tl_qn_types[TL_QN_N_TYPES] = {LW_QN_Q8_0, LW_QN_Q4_0, LW_QN_Q4_1, LW_QN_Q5_0,
                                             LW_QN_Q5_1, LW_QN_Q4_K, LW_QN_Q5_K, LW_QN_Q6_K};

bool tl_qn_k_quant(uint32_t t) { return t == LW_QN_Q4_K || t == LW_QN_Q5_K || t == LW_QN_Q6_K; }

static uint16_t rand_half(lw_rng *rng, bool sign)
{
    uint32_t r = (uint32_t)lw_rng_next(rng);
    uint16_t e = (uint16_t)(9 + r % 5), man = (uint16_t)((r >> 8) & 0x3ff);
    return (uint16_t)((sign && (r >> 20) & 1 ? 0x8000 : 0) | e << 10 | man);
}

static void put_half(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }

uint8_t *tl_qn_rand_blocks(lw_rng *rng, uint32_t type, int rows, int in)
{
    size_t rb = lw_qn_row_bytes(type, in), be, bb;
    ck_assert(rb > 0);
    ck_assert(lw_ggml_block_info(type, &be, &bb));
    uint8_t *d = malloc((size_t)rows * rb);
    ck_assert_ptr_nonnull(d);
    for (size_t i = 0; i < (size_t)rows * rb; i++) d[i] = (uint8_t)lw_rng_next(rng);
    for (size_t b = 0; b < (size_t)rows * rb / bb; b++) {
        uint8_t *blk = d + b * bb;
        switch (type) {
        case LW_QN_Q4_1:
        case LW_QN_Q5_1: put_half(blk, rand_half(rng, true)), put_half(blk + 2, rand_half(rng, true)); break;
        case LW_QN_Q4_K:
        case LW_QN_Q5_K: put_half(blk, rand_half(rng, false)), put_half(blk + 2, rand_half(rng, false)); break;
        case LW_QN_Q6_K: put_half(blk + 208, rand_half(rng, false)); break;
        default: put_half(blk, rand_half(rng, true)); break;
        }
    }
    return d;
}

float *tl_rng_floats(lw_rng *rng, size_t n)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = (float)(2.0 * lw_rng_uniform(rng) - 1.0);
    return a;
}

float *tl_qn_dequantised(uint32_t type, const uint8_t *blocks, int out, int in)
{
    float *w = malloc((size_t)out * in * sizeof *w);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(lw_dequantize(type, blocks, w, (int64_t)out * in), LW_OK);
    return w;
}

double tl_gamma_n(int n)
{
    double u = ldexp(1.0, -24);
    return n * u / (1.0 - n * u);
}
