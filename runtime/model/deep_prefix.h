/* Deep prefix (P-tuning v2 / prefix tuning, driven by the bridge): the
 * calibrated soft tokens are turned into P keys and values for every layer
 * of the receiver, which its attention reads before the text.
 *
 *   s    = mean_m soft[m]                              [R]   (mean-pooled: P and M are independent)
 *   n    = LayerNorm(s)                                [R]
 *   z0_p = in_proj(n) + positions[p]                   [P, d]
 *   z_p  = z0_p + fc2(gelu_tanh(fc1(z0_p)))            [P, d]  (residual MLP, d -> d -> d)
 *   z    = dropout(z)                                  (training only)
 *   K_l  = z @ layers.l.key.weight^T,  V_l likewise    [P, n_kv_heads * head_dim] per layer (GQA)
 *
 * The keys are used as attention reads its keys: after the receiver's
 * qk-norm and RoPE, i.e. they are NOT rotated (a prefix has no position)
 * and not normed; the text keeps positions 0, 1, ... as without a prefix.
 * Attention runs with q_offset = P, so the prefix is before every query;
 * in sliding-window layers (Gemma 3 local layers) the prefix is exempt from
 * the window (attention_forward_sink), so every query sees it in every layer.
 *
 * Parameters (flat, named as in the safetensors file): norm.weight, norm.bias,
 * in_proj.weight [d, R], in_proj.bias, positions [P, d], mlp.fc1.weight,
 * mlp.fc1.bias, mlp.fc2.weight, mlp.fc2.bias, layers.{l}.key.weight [kvd, d],
 * layers.{l}.value.weight [kvd, d]. Init: normal(0, 0.02) for matrices and
 * positions, value projections 0 (a fresh prefix adds nothing to the
 * attention output, it only takes a little of its mass), biases 0, LN 1/0. */
#ifndef LW_DEEP_PREFIX_H
#define LW_DEEP_PREFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "adapter_params.h"
#include "adapter_view.h"
#include "manifest.h"
#include "model.h"
#include "status.h"

/* lw_deep_prefix_config (length, dropout, hidden) is in manifest.h. */

typedef struct {
    lw_deep_prefix_config cfg;
    int R, n_layers, kvd;
    lw_adapter_params p;
    size_t norm_w, norm_b, in_w, in_b, pos, fc1_w, fc1_b, fc2_w, fc2_b;
    size_t *key_w, *value_w;     /* [n_layers] offsets */
    /* the last forward, for backward */
    int M;
    float *pooled, ln_mean, ln_rstd, *n;   /* [R] */
    float *z0, *h1, *h2, *z, *zd, *keep;   /* [P, d]; keep: mask / (1 - p) or 1 */
    float *k, *v;                          /* [n_layers, P, kvd] the output (adapters' prefix_k / _v) */
    float *dk, *dv;                        /* [n_layers, P, kvd] their gradients (d_prefix_k / _v) */
    float *dz, *dz0, *dh, *dbase, *dn, *dpooled;  /* backward scratch */
} lw_deep_prefix;

/* Builds the table for a receiver of R = cfg->hidden with m's layers and kv width. */
lw_status lw_deep_prefix_create(lw_deep_prefix *dp, const lw_deep_prefix_config *cfg, const lw_model_config *m);
void lw_deep_prefix_free(lw_deep_prefix *dp);
void lw_deep_prefix_init(lw_deep_prefix *dp, uint64_t seed);

/* soft [M, R] -> dp->k, dp->v. seed draws the dropout mask when training. */
lw_status lw_deep_prefix_forward(lw_deep_prefix *dp, const float *soft, int M, bool training, uint64_t seed);
/* Reads dp->dk, dp->dv (which the receiver's backward filled); adds to
 * dp->p.grads and, if dsoft is not NULL, to dsoft [M, R]. */
void lw_deep_prefix_backward(lw_deep_prefix *dp, float *dsoft);
/* Zeroes dp->dk, dp->dv and the parameter gradients. */
void lw_deep_prefix_zero_grad(lw_deep_prefix *dp);

/* Points the adapters at dp's keys, values and their gradients. */
void lw_deep_prefix_attach(const lw_deep_prefix *dp, lw_receiver_adapters *ad);

/* Safetensors with metadata "deep_prefix" {"length","hidden","dropout"} (atomic). */
lw_status lw_deep_prefix_save(const lw_deep_prefix *dp, const char *path);
lw_status lw_deep_prefix_load(lw_deep_prefix *dp, const char *path);

#endif
