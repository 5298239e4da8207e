/* Decode's attention (one query row over Tk cached keys, attention_forward
 * with att NULL: the online softmax) on one thread: the CPU-clock time a
 * call, best of 7 timings of 200 calls, and its rate in GFLOP/s counting
 * 4 Hq Tk D (the q.k dots and the weighted sum of v). The rate against the
 * products' (bench_matmul_qn) is what op_attention.c's split rule weighs a
 * one-row call's flops by (docs/perf.md, "stop 22").
 *
 *   bench_attention_decode          (SmolLM2: 9 / 3 heads of 64; Gemma-3: 4 / 1 of 256) */
#include <stdio.h>
#include <stdlib.h>

#include "bench_time.h"
#include "ops.h"

int main(void)
{
    static const int cfg[2][3] = {{9, 3, 64}, {4, 1, 256}};
    for (int c = 0; c < 2; c++)
        for (int Tk = 32; Tk <= 256; Tk *= 2) {
            const int Hq = cfg[c][0], Hkv = cfg[c][1], D = cfg[c][2];
            float *q = malloc(sizeof(float) * Hq * D), *o = malloc(sizeof(float) * Hq * D);
            float *k = malloc(sizeof(float) * Tk * Hkv * D), *v = malloc(sizeof(float) * Tk * Hkv * D);
            if (!q || !o || !k || !v) return 1;
            for (int i = 0; i < Hq * D; i++) q[i] = (float)(i % 7) * 0.1f;
            for (int i = 0; i < Tk * Hkv * D; i++) k[i] = (float)(i % 5) * 0.1f, v[i] = (float)(i % 3) * 0.2f;
            lw_attention_params p = {.causal = true, .q_offset = Tk - 1, .scale = 0.125f};
            double best = 1e9;
            for (int r = 0; r < 7; r++) {
                double t = bench_cpu_now();
                for (int n = 0; n < 200; n++) attention_forward(o, NULL, q, k, v, 1, Tk, Hq, Hkv, D, &p);
                t = (bench_cpu_now() - t) / 200;
                if (t < best) best = t;
            }
            double fl = 4.0 * Hq * Tk * D;
            printf("Hq %d Hkv %d D %d Tk %d: %.2f us a call, %.0f kflop, %.1f GFLOP/s\n", Hq, Hkv, D, Tk, best * 1e6,
                   fl / 1e3, fl / best / 1e9);
            free(q), free(o), free(k), free(v);
        }
    return 0;
}
