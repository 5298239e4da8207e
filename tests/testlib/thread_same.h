/* What the threads tests (check_threads, check_threads_ops) share: random
 * inputs, setting the process's thread count, and a bit-for-bit comparison
 * that names the first differing element. */
#ifndef LW_TL_THREAD_SAME_H
#define LW_TL_THREAD_SAME_H

#include <stddef.h>
#include <stdint.h>

/* n uniform floats in [-1, 1) (malloc'd). */
float *tl_rand_floats(size_t n, uint64_t seed);
/* lw_cpu_threads_set(n), asserted. */
void tl_use_threads(int n);
/* got equals want bit for bit, or the first differing element is shown. */
void tl_assert_same(const float *got, const float *want, size_t n, const char *what, int threads);

#endif
