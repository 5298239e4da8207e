/* The threads tests' shared checks (thread_same.h). */
#include "thread_same.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_threads.h"
#include "rng.h"
#include "testlib.h"

float *tl_rand_floats(size_t n, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    float *a = malloc((n ? n : 1) * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) a[i] = (float)(2.0 * lw_rng_uniform(&r) - 1.0);
    return a;
}

void tl_use_threads(int n)
{
    ck_assert_msg(lw_cpu_threads_set(n) == LW_OK, "%s", lw_last_error());
}

void tl_assert_same(const float *got, const float *want, size_t n, const char *what, int threads)
{
    if (!memcmp(got, want, n * sizeof *got)) return;
    size_t i = 0;
    while (i < n && !memcmp(got + i, want + i, sizeof *got)) i++;
    ck_abort_msg("%s: %d threads differ from 1 at element %zu of %zu (%.9g vs %.9g)", what, threads, i, n,
                 (double)got[i], (double)want[i]);
}
