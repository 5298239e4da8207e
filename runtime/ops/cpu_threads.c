/* The ops' use of the thread pool (cpu_threads.h). */
#include "cpu_threads.h"

/* OpenBLAS's own switch, when the BLAS linked is OpenBLAS: weak, so a build
 * on another BLAS (or none) links and simply has nothing to pin. */
extern void openblas_set_num_threads(int) __attribute__((weak));

#include <stdatomic.h>

/* Below ~1 MFLOP (tens of microseconds on one core) a fork-join's wake-up
 * and wait cost more than the second core gives back. Atomic: set by a
 * test's main thread, read by whichever thread runs a product. */
static _Atomic double split_min = 1 << 20;

void lw_cpu_split_threshold_set(double flops) { atomic_store(&split_min, flops); }
double lw_cpu_split_threshold(void) { return atomic_load(&split_min); }
#define SPLIT_MIN_FLOPS lw_cpu_split_threshold()

lw_status lw_cpu_threads_set(int n)
{
    lw_status st = lw_threads_set(n);
    if (st != LW_OK) return st;
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    return LW_OK;
}

int lw_fixed_blocks(double flops, int cols, int *width)
{
    *width = cols;
    if (flops < 4.0 * SPLIT_MIN_FLOPS || cols < 64) return 1;
    /* 8 blocks: an even share for 2 and 4 threads and 3/3/2 for 3; each at
     * least 32 wide, a multiple of 16 so the BLAS's column tails are those
     * of the whole product */
    int w = (cols + 7) / 8;
    w = (w + 15) / 16 * 16;
    if (w < 32) w = 32;
    *width = w;
    return (cols + w - 1) / w;
}

int lw_row_split(double flops, int T)
{
    int n = lw_threads_get();
    if (n > T / 2) n = T / 2;
    if (n < 2 || flops < SPLIT_MIN_FLOPS) return 1;
    return n;
}

int lw_out_split(double flops, int out)
{
    int n = lw_threads_get(), blocks = (out + 15) / 16;
    if (n > blocks) n = blocks;
    if (n < 2 || flops < SPLIT_MIN_FLOPS) return 1;
    return n;
}
