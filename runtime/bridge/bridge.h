/* The trainable bridge: sender hidden states [T, sender_hidden] in, M soft
 * tokens [M, receiver_hidden] out, for the receiver to read as if they were
 * input embeddings.
 *
 * Every kind first standardises its input per dimension with fixed
 * buffers, xs = (x - input_norm.mean) / input_norm.std, set from the
 * training set's statistics (lw_bridge_set_input_norm) and saved with the
 * weights. A few of the sender's dimensions carry huge near-constant
 * offsets ("massive activations": |mean| > 100 against a typical std of 5
 * at SmolLM2's layer 20); unstandardised they dominate in_proj's output
 * and every token looks alike to the layers above.
 *
 * perceiver (the design):
 *   ctx = xs @ in_proj^T + b                                  [T, d]
 *   lat = queries                                             [M, d]
 *   per block: lat += cross_attn(LN(lat) -> LN(ctx))          (keys/values from ctx)
 *              lat += self_attn(LN(lat))
 *              lat += fc2(gelu_tanh(fc1(LN(lat))))            (d -> ffn_mult*d -> d)
 *   z = LN(lat) @ out_proj^T + b                              [M, R]
 * mlp (ablation):    z = out_proj(gelu_tanh(in_proj(mean_t xs)))  reshaped [M, R]
 * linear (ablation): z = out_proj(mean_t xs)                      reshaped [M, R]
 * calibration "rms": out = z / rms(z) per token * out_scale, out_scale learned
 * and initialised to the receiver's embed_rms, so the soft tokens start at
 * the size the receiver's own embeddings have; "none": out = z.
 *
 * Attention projections have no bias; LN is LayerNorm (eps 1e-5) with weight
 * and bias. One example at a time: T is that example's real length, so no
 * padding mask is needed. Dropout in the config is not applied (yet).
 *
 * All parameters live in one flat float buffer (params, with grads beside
 * it) described by a table of named tensors whose names are those of the
 * safetensors checkpoint ("in_proj.weight", "queries",
 * "blocks.0.cross_attn.q.weight", ...), so the optimiser and the checkpoint
 * treat them uniformly. The two input_norm buffers are in the table too (so
 * the checkpoint keeps them) but are not trainable: they get no gradient
 * and the optimiser skips them. */
#ifndef LW_BRIDGE_H
#define LW_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "bridge_params.h"
#include "bridge_config.h"
#include "status.h"

/* What one forward keeps for its backward (opaque; sized for max_T). */
typedef struct lw_bridge_acts lw_bridge_acts;

/* Builds the tensor table and allocates params and grads (zeroed); checks
 * the config (width % heads, positive sizes, overflow). */
lw_status lw_bridge_create(lw_bridge *b, const lw_bridge_config *cfg, int sender_hidden, int receiver_hidden,
                           float embed_rms);
void lw_bridge_free(lw_bridge *b);

/* Seeded init: weights normal(0, 0.02), biases 0, LN weights 1, out_scale =
 * embed_rms, input_norm the identity (mean 0, std 1); drawn tensor by tensor
 * in table order from lw_rng_seed(seed). */
void lw_bridge_init(lw_bridge *b, uint64_t seed);

/* Sets the input_norm buffers: mean[S], std[S] (a std below 1e-6 is taken
 * as 1e-6, so constant dimensions do not blow up). */
void lw_bridge_set_input_norm(lw_bridge *b, const float *mean, const float *std);

const lw_bridge_tensor *lw_bridge_find(const lw_bridge *b, const char *name);
void lw_bridge_zero_grad(lw_bridge *b);

lw_status lw_bridge_acts_create(const lw_bridge *b, int max_T, lw_bridge_acts **out);
void lw_bridge_acts_free(lw_bridge_acts *a);

/* x [T, S] -> out [M, R]; a keeps what backward needs (x is copied). */
lw_status lw_bridge_forward(const lw_bridge *b, lw_bridge_acts *a, const float *x, int T, float *out);

/* dout [M, R] -> accumulates (+=) into b->grads, and into dx [T, S] if not
 * NULL. Uses the activations of the last forward on a. */
void lw_bridge_backward(lw_bridge *b, lw_bridge_acts *a, const float *dout, float *dx);

/* One AdamW step over every trainable tensor, with weight_decay only where decay. */
void lw_bridge_adamw_step(lw_bridge *b, lw_adamw *opt, float lr, float weight_decay);

const char *lw_bridge_kind_name(lw_bridge_kind k);

#endif
