/* Sender features from several layers: a learned softmax-weighted mix of
 * K sender layers in front of the bridge (as ELMo's scalar mix):
 *
 *   out[t] = sum_k w_k (x_k[t] - mean_k) / std_k,   w = softmax(logits)
 *
 * Each layer is standardised by its own per-dimension buffers first
 * (layers of one transformer differ in scale by orders of magnitude, and
 * their "massive activation" dimensions differ), so the weights compare
 * like with like; the logits start at 0 (the plain mean). The sender is
 * frozen: the mix's only gradient is the logits'. The input row t of an
 * example holds the K layers' S values one after the other ([T, K*S]), as
 * the stacked cache gives them (sender_cache_layers.h).
 *
 * lw train --sender-layers 8,12,16 trains the logits with the bridge (their
 * own AdamW moments, no weight decay, clipped with the bridge's gradient)
 * and saves them beside it (layer_mix_file.h); lw eval / lw send load them
 * from the checkpoint folder. */
#ifndef LW_LAYER_MIX_H
#define LW_LAYER_MIX_H

#include <stddef.h>

#include "adamw.h"
#include "status.h"

enum { LW_LAYER_MIX_MAX = 16 };

typedef struct {
    int K, S;
    int layers[LW_LAYER_MIX_MAX];   /* the sender layers, for checks and messages */
    float logits[LW_LAYER_MIX_MAX]; /* trainable */
    float grads[LW_LAYER_MIX_MAX];
    float *mean, *std;              /* [K, S] standardisation buffers (fixed) */
    lw_adamw opt;                   /* the logits' moments (training) */
} lw_layer_mix;

/* "8,12,16" -> layers[K] (distinct, 0 <= layer < n_layers, K in 1..LW_LAYER_MIX_MAX). */
lw_status lw_layer_mix_parse(const char *spec, int n_layers, int *layers, int *K);
/* Logits 0, mean 0, std 1, moments 0. */
lw_status lw_layer_mix_create(lw_layer_mix *m, const int *layers, int K, int S);
void lw_layer_mix_free(lw_layer_mix *m);
/* Layer k's buffers (a std below 1e-6 is taken as 1e-6). */
void lw_layer_mix_set_norm(lw_layer_mix *m, int k, const float *mean, const float *std);
/* w[K] = softmax(logits). */
void lw_layer_mix_weights(const lw_layer_mix *m, float *w);
/* x [T, K*S] -> out [T, S]. */
void lw_layer_mix_forward(const lw_layer_mix *m, const float *x, int T, float *out);
/* dout [T, S] (the bridge's dx) -> grads += d(loss)/d(logits). */
void lw_layer_mix_backward(lw_layer_mix *m, const float *x, int T, const float *dout);
/* "8,12,16": the layers as lw_layer_mix_parse reads them. */
void lw_layer_mix_describe(const lw_layer_mix *m, char *out, size_t cap);
/* One AdamW step of the logits on m->grads (no weight decay: they only
 * weigh the layers against each other). */
void lw_layer_mix_adamw_step(lw_layer_mix *m, float lr);

#endif
