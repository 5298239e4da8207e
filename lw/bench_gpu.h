/* The GPU side of `lw bench --device cuda` (bench.h): both models' weights
 * on one GPU, and the two pieces of model work the benchmark needs that
 * gpu_model.h does not offer as such: the sender's forward stopped at the
 * bridge's source layer with the hidden states brought back, and the
 * labels' scoring continued from the GPU's KV cache.
 *
 * Only the models' forwards move to the GPU. Tokenization, the templates,
 * the bridge (M soft tokens from at most 512 rows: a few small products)
 * and sampling stay on the CPU, as in `lw train --device cuda`. Every call
 * here returns after the device finished its work (lw_gpu_forward waits
 * and downloads), so a clock read afterwards times the work. */
#ifndef LW_BENCH_GPU_H
#define LW_BENCH_GPU_H

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "model.h"
#include "pair.h"

typedef struct {
    lw_cuda cu;
    lw_cublas blas;
    lw_cuda_module mod[2];      /* the pair's "sender" and "receiver" units */
    lw_gpu_model *model[2];     /* [0] sender, [1] receiver */
    bool blas_open;
    lw_weight_dtype dtype;      /* of both models' weights */
} lw_bench_gpu;

/* The driver and cuBLAS, before any model is read: without a GPU this is
 * where `lw bench --device cuda` stops, with the driver's message. */
lw_status lw_bench_gpu_init(lw_bench_gpu *g);
/* Loads the pair's kernels for the device and uploads both models with
 * weights of dtype (fp32 or bf16, gpu_model.h). */
lw_status lw_bench_gpu_upload(lw_bench_gpu *g, const lw_pair *pair, const lw_model *sender, const lw_model *receiver,
                              lw_weight_dtype dtype);
/* Frees everything; safe on a zeroed or half-opened g. */
void lw_bench_gpu_close(lw_bench_gpu *g);
/* "NVIDIA H100 80GB HBM3, sm_90, driver 12.4, cuBLAS libcublas.so.12, bf16 weights". */
void lw_bench_gpu_describe(const lw_bench_gpu *g, char *out, size_t cap);

/* hidden_out[T, hidden] = the hidden states at layer (0..n_layers, as
 * lw_forward_args.capture_layer) of the T rows ids from position 0: one
 * lw_gpu_forward with capture_layer and no logits, which stops after that
 * layer. s is reset first. */
lw_status lw_bench_gpu_capture(lw_gpu_model *g, lw_gpu_state *s, const int *ids, int T, int layer,
                               float *hidden_out);

/* lw_score_verbalizers (label_scoring.h) over the GPU's cache: the prompt's
 * P rows are in s, its last row's logits in last; rows is scratch for
 * [max verb_len - 1, vocab]. */
lw_status lw_bench_gpu_score(lw_gpu_model *g, lw_gpu_state *s, int P, const float *last, float *rows, int n_labels,
                             const int *const *verb, const int *verb_len, double *scores);

#endif
