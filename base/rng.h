/* A small seeded deterministic RNG (xoshiro256**, seeded through splitmix64).
 * Everything random in training (init, shuffling, sampling, bootstrap) draws
 * from one of these, so a run is reproducible from its seed and resumable
 * from the four state words, which the checkpoint stores. */
#ifndef LW_RNG_H
#define LW_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} lw_rng;

void lw_rng_seed(lw_rng *r, uint64_t seed);
uint64_t lw_rng_next(lw_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double lw_rng_uniform(lw_rng *r);
/* Uniform integer in [0, n), unbiased (rejection); n > 0. */
uint64_t lw_rng_below(lw_rng *r, uint64_t n);
/* Standard normal via Box-Muller (one draw per call: no cached spare, so
 * the state stays the four words). */
double lw_rng_normal(lw_rng *r);
/* Fisher-Yates shuffle of a[0..n). */
void lw_rng_shuffle(lw_rng *r, int *a, size_t n);

#endif
