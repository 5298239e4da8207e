/* The bridge's CUDA executor (runtime/model/bridge_cuda.h) against the CPU
 * executor, shared by tests/check_bridge_cuda_host.c (over the host twin)
 * and tests/gpu/check_bridge_gpu.c (on a device): a random bridge, its
 * CPU forward and backward, the device side's buffers, and the comparison
 * of the soft tokens, every tensor's gradient and dx. */
#ifndef LW_TL_BRIDGE_RIG_H
#define LW_TL_BRIDGE_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "bridge_cuda.h"

/* A bridge of cfg over S -> R with every parameter random (LayerNorm
 * weights near 1, out_scale 2), input_norm far from the identity and
 * dimension 3's std 0 (floored on read). */
void tl_bridge_random(lw_bridge *b, const lw_bridge_config *cfg, int S, int R, uint64_t seed);

/* T context rows for b: N(0, 1), dimension 3 near-constant at its mean
 * (+- 1e-7: ~0.1 once standardised through the floor), dimension 5 offset
 * by 40 (a "massive activation"). */
void tl_bridge_rows(const lw_bridge *b, float *x, int T, uint64_t seed);

/* The CPU's soft tokens [M R], every gradient [n_params] and dx [T S] for
 * x and dout (malloc'd; tl_bridge_cpu_free). */
typedef struct {
    float *out, *grads, *dx;
} tl_bridge_cpu;
void tl_bridge_cpu_run(lw_bridge *b, const float *x, int T, int max_T, const float *dout, tl_bridge_cpu *c);
void tl_bridge_cpu_free(tl_bridge_cpu *c);

/* The device side: b's plan at max_T rows, its arena, params (uploaded)
 * and grads on the device, the weight table. */
typedef struct {
    lw_bridge_plan plan;
    lw_bridge_memory mem;
    size_t *w_at;
    lw_bridge_cuda x;
} tl_bridge_dev;
void tl_bridge_dev_open(tl_bridge_dev *d, const lw_bridge *b, int max_T, lw_cuda *cu, lw_cublas *blas,
                        const lw_bridge_kernels *k);
void tl_bridge_dev_close(tl_bridge_dev *d);

/* The device's forward and backward (want dx) of x and dout; the largest
 * error of the soft tokens over max(1, max |cpu|) into *fwd, of dx or any
 * trainable tensor's gradient over max |cpu| of that tensor into *bwd
 * (its name into worst); the input_norm buffers' gradients must be 0.
 * TL_BRIDGE_VERBOSE=1 prints each tensor's error. */
void tl_bridge_dev_compare(tl_bridge_dev *d, const lw_bridge *b, const float *x, int T, const float *dout,
                           const tl_bridge_cpu *c, double *fwd, double *bwd, char *worst, size_t worst_len);

/* The largest |got - want| over max(floor, max |want|); NaN counts as infinite. */
double tl_bridge_rel_err(const float *got, const float *want, size_t n, double floor);

#endif
