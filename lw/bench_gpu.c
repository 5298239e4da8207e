/* The GPU side of lw bench (bench_gpu.h). */
#include "bench_gpu.h"

#include <stdio.h>
#include <string.h>

#include "cuda_pair.h"
#include "label_scoring.h"

static const char *const UNIT[2] = {"sender", "receiver"};

lw_status lw_bench_gpu_init(lw_bench_gpu *g)
{
    memset(g, 0, sizeof *g);
    g->dtype = LW_DTYPE_F32;   /* until an upload says otherwise (0 is bf16) */
    lw_status st = lw_cuda_init(&g->cu, 0);
    if (!st) st = lw_cublas_init(&g->blas, &g->cu);
    if (!st) g->blas_open = true;
    if (st) lw_bench_gpu_close(g);
    return st;
}

lw_status lw_bench_gpu_upload(lw_bench_gpu *g, const lw_pair *pair, const lw_model *sender, const lw_model *receiver,
                              lw_weight_dtype dtype)
{
    const lw_model *m[2] = {sender, receiver};
    lw_status st = LW_OK;
    g->dtype = dtype;
    for (int i = 0; !st && i < 2; i++) {
        st = lw_cuda_load_unit(&g->cu, pair, UNIT[i], &g->mod[i]);
        if (!st) st = lw_gpu_model_upload_dtype(&g->cu, &g->blas, &g->mod[i], m[i], dtype, &g->model[i]);
        if (st) st = lw_fail_wrap(st, "bench: the %s on the GPU", UNIT[i]);
    }
    return st;
}

void lw_bench_gpu_close(lw_bench_gpu *g)
{
    for (int i = 0; i < 2; i++) {
        lw_gpu_model_free(g->model[i]);
        if (g->mod[i].module) lw_cuda_unload(&g->cu, &g->mod[i]);
    }
    if (g->blas_open) lw_cublas_close(&g->blas);
    lw_cuda_close(&g->cu);
    memset(g, 0, sizeof *g);
}

void lw_bench_gpu_describe(const lw_bench_gpu *g, char *out, size_t cap)
{
    snprintf(out, cap, "%s, sm_%d, driver %d.%d, cuBLAS %s, %s weights", g->cu.name, lw_cuda_arch(&g->cu),
             g->cu.driver_version / 1000, g->cu.driver_version % 1000 / 10, g->blas.lib_name,
             lw_gpu_dtype_name(g->dtype));
}

lw_status lw_bench_gpu_capture(lw_gpu_model *g, lw_gpu_state *s, const int *ids, int T, int layer,
                               float *hidden_out)
{
    lw_gpu_state_reset(s);
    lw_forward_args a = {.ids = ids, .T = T, .capture_layer = layer, .hidden_out = hidden_out};
    lw_status st = lw_gpu_forward(g, s, &a);
    return st ? lw_fail_wrap(st, "bench GPU capture of %s at layer %d", g->cfg.name, layer) : LW_OK;
}

lw_status lw_bench_gpu_score(lw_gpu_model *g, lw_gpu_state *s, int P, const float *last, float *rows, int n_labels,
                             const int *const *verb, const int *verb_len, double *scores)
{
    int V = g->cfg.vocab;
    for (int k = 0; k < n_labels; k++) {
        const int *v = verb[k];
        int L = verb_len[k];
        scores[k] = lw_log_prob(last, V, v[0]);
        if (L < 2) continue;
        lw_forward_args a = {.ids = v, .T = L - 1, .pos0 = P, .logits = rows, .all_logits = true,
                             .capture_layer = -1};
        lw_status st = lw_gpu_forward(g, s, &a);
        if (st) return st;
        for (int i = 1; i < L; i++) scores[k] += lw_log_prob(rows + (size_t)(i - 1) * V, V, v[i]);
    }
    return LW_OK;
}
