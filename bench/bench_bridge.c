/* The bridge's forward + backward on one example, thread CPU time (a
 * loaded machine slows the wall clock, not this):
 *
 *   OPENBLAS_NUM_THREADS=1 out/bench/bench_bridge [T [reps]]
 *
 * The default pair's perceiver (pairs/smollm2-135m_to_gemma3-270m.json:
 * sender 576, receiver 640, width 256, depth 2, 4 heads, ffn_mult 4, 16
 * soft tokens, rms calibration), seeded weights and input; prints the
 * fastest and the mean of reps runs over T context rows, and a checksum of
 * the output (the same on two builds that compute the same floats). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bridge.h"
#include "rng.h"

static double thread_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    enum { S = 576, R = 640, M = 16 };
    int T = argc > 1 ? atoi(argv[1]) : 128, reps = argc > 2 ? atoi(argv[2]) : 20;
    if (T < 1 || T > 65536 || reps < 1) {
        fprintf(stderr, "usage: bench_bridge [T 1..65536 [reps >= 1]]\n");
        return 2;
    }
    lw_bridge_config c = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = M, .source_layer = 20, .width = 256,
                          .depth = 2, .heads = 4, .ffn_mult = 4, .calibration = LW_CALIB_RMS};
    lw_bridge b;
    lw_bridge_acts *a = NULL;
    if (lw_bridge_create(&b, &c, S, R, 1.0f) || (lw_bridge_init(&b, 1), lw_bridge_acts_create(&b, T, &a))) {
        fprintf(stderr, "bench_bridge: %s\n", lw_last_error());
        return 1;
    }
    float *x = malloc(sizeof(float) * (size_t)T * S), *out = malloc(sizeof(float) * M * R);
    float *dx = calloc((size_t)T * S, sizeof(float));
    if (!x || !out || !dx) return 1;
    lw_rng rng;
    lw_rng_seed(&rng, 2);
    for (size_t i = 0; i < (size_t)T * S; i++) x[i] = (float)lw_rng_normal(&rng);
    double best = 1e300, sum = 0.0;
    for (int k = 0; k < reps; k++) {
        double t0 = thread_us();
        if (lw_bridge_forward(&b, a, x, T, out)) return 1;
        lw_bridge_backward(&b, a, out, dx);
        double t = thread_us() - t0;
        sum += t;
        if (t < best) best = t;
    }
    double check = 0.0;
    for (int i = 0; i < M * R; i++) check += out[i];
    printf("bridge forward+backward, T %d: fastest %.0f us, mean %.0f us of %d (checksum %.9g)\n", T, best,
           sum / reps, reps, check);
    lw_bridge_acts_free(a);
    lw_bridge_free(&b);
    free(x), free(out), free(dx);
    return 0;
}
