/* Speed of the block products (runtime/ops/op_matmul_qn.h) on one matrix
 * of random blocks: the best of 7 CPU-clock timings of 20 calls each
 * (this thread's CPU clock: the machine is shared), on the process's path
 * (LWC_CPU_PATH lowers it).
 *
 *   bench_matmul_qn <ggml type> <T> [out in [mode]]
 *
 * mode: fwd (the default: the blocks decoded per call), packed (the forward
 * on the panels packed once, op_matmul_qp.h), bwd (dx += dy w, the exact
 * row decode), bwdpacked (dx through w^T requantised to int8). The packing
 * is outside the timing (it is done once, at load).
 *
 * Types: 8 Q8_0, 2 Q4_0, 3 Q4_1, 6 Q5_0, 7 Q5_1, 12 Q4_K, 13 Q5_K, 14 Q6_K.
 * Default shape 1536 x 576 (SmolLM2's up/gate halves), 576 x 1536 for the
 * K-quants (its down projection; their rows are blocks of 256). GOP/s
 * counts a multiply and an add per weight and row of x. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_time.h"
#include "op_matmul_qn.h"
#include "op_matmul_qp.h"
#include "rng.h"
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_matmul_qn <ggml type> <T> [out in]\n");
        return 2;
    }
    uint32_t type = (uint32_t)atoi(argv[1]);
    int T = atoi(argv[2]);
    bool k = type == LW_QN_Q4_K || type == LW_QN_Q5_K || type == LW_QN_Q6_K;
    int out = argc > 4 ? atoi(argv[3]) : k ? 576 : 1536, in = argc > 4 ? atoi(argv[4]) : k ? 1536 : 576;
    size_t rb = lw_qn_row_bytes(type, in);
    const char *mode = argc > 5 ? argv[5] : "fwd";
    bool packed = !strcmp(mode, "packed") || !strcmp(mode, "bwdpacked"), bwd = !strncmp(mode, "bwd", 3);
    if (!packed && !bwd && strcmp(mode, "fwd")) {
        fprintf(stderr, "bench_matmul_qn: mode %s: expected fwd, packed, bwd or bwdpacked\n", mode);
        return 2;
    }
    if (!rb || T < 1 || out < 1) {
        fprintf(stderr, "bench_matmul_qn: no product for type %u rows of %d (or T %d, out %d)\n", type, in, T, out);
        return 2;
    }
    lw_rng r;
    lw_rng_seed(&r, 1);
    uint8_t *d = malloc(rb * (size_t)out);
    float *x = malloc(sizeof(float) * (size_t)T * in), *y = malloc(sizeof(float) * (size_t)T * out);
    float *dy = malloc(sizeof(float) * (size_t)T * out), *dx = calloc((size_t)T * in, sizeof(float));
    if (!d || !x || !y || !dy || !dx) return 1;
    for (size_t i = 0; i < (size_t)T * out; i++) dy[i] = (float)(lw_rng_uniform(&r) - 0.5);
    /* random bytes, every odd one masked with 0x3b: no fp16 scale is then
     * infinite, NaN or huge (the timing does not depend on the values) */
    for (size_t i = 0; i < rb * (size_t)out; i++) d[i] = (uint8_t)(lw_rng_next(&r) & (i % 2 ? 0x3b : 0xff));
    for (size_t i = 0; i < (size_t)T * in; i++) x[i] = (float)(lw_rng_uniform(&r) - 0.5);
    lw_qn_matrix m;
    lw_qn_matrix_init(&m, in);
    if (lw_qn_matrix_append(&m, type, d, out)) return 1;
    if (packed && (bwd ? lw_qn_pack_backward(&m) : lw_qn_pack_forward(&m))) return 1;
    double best = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = bench_cpu_now();
        for (int i = 0; i < 20; i++)
            if (bwd ? matmul_qn_backward_x(dx, dy, &m, T) : matmul_qn_forward(y, x, &m, NULL, T)) return 1;
        double t = (bench_cpu_now() - t0) / 20;
        if (t < best) best = t;
    }
    printf("%s %s %d x %d, T %d: %.1f us a product, %.1f GOP/s\n", mode, lw_qn_type_name(type), out, in, T, best * 1e6,
           2.0 * T * (double)in * out / best / 1e9);
    lw_qn_matrix_free(&m);
    free(d), free(x), free(y), free(dy), free(dx);
    return 0;
}
