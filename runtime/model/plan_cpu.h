/* The CPU backend of the plan (plan.h): an executor that runs a model's plan
 * forward over lw_state and walks it in reverse over the backward scratch,
 * calling the ops of ops.h, and the attention op's CPU side (the KV cache,
 * a deep prefix, segments), which is more than one call of ops.h.
 * lw_forward (forward.c) and the lw_model_backward family
 * (model_backward.c) check their arguments and call these. */
#ifndef LW_PLAN_CPU_H
#define LW_PLAN_CPU_H

#include "adapters.h"
#include "backward_scratch.h"
#include "model.h"
#include "plan.h"

/* ---- plan_cpu.c ---- */

/* Rows [r0, r0 + T) of the call a: the model-level ops (embed, the blocks,
 * output_norm, logits) with capture. *complete is false when it stopped
 * early after the captured layer. Products on the frozen matrices go
 * through frozen_matmul.h (fp32 or bf16 weights); a bf16 product can fail
 * (its scratch), hence the status. */
lw_status lw_plan_cpu_forward_chunk(const lw_plan *p, const lw_model *m, lw_state *s, const lw_forward_args *a,
                                    int r0, int T, bool *complete);

/* The reverse walk from the loss rows' dlogits (row rows[i]'s at
 * dl + (dense ? rows[i] : i) * vocab) to d_embeds [T, hidden], through the
 * last forward's saved activations; ad: the adapters it ran with. */
lw_status lw_plan_cpu_backward(const lw_plan *p, const lw_model *m, const lw_state *s, lw_backward_scratch *g,
                          const int *rows, int n_rows, const float *dl, bool dense, float *d_embeds,
                          const lw_receiver_adapters *ad);

/* ---- plan_attend.c: LW_OP_ATTENTION ---- */

/* out[T, Hq * D] (and att, the probabilities) for the T query rows q of
 * layer l at positions pos0.. over the layer's cache (which already holds
 * these rows' keys and values), one sequence or args' segments, after
 * args' deep prefix if any; window: 0 or the layer's sliding window. */
void lw_cpu_attention_forward(const lw_model *m, lw_state *s, int l, int T, int pos0, const lw_forward_args *args,
                              float *out, float *att, const float *q, int window);

/* dq, dk, dv [T, ...] (written, not accumulated) from dout for the last
 * forward's rows of layer l; a deep prefix's gradients are added to
 * ad->d_prefix_k / d_prefix_v. v: the rows' values (a->v). */
void lw_cpu_attention_backward(const lw_model *m, const lw_state *s, int l, int T, lw_backward_scratch *g,
                               const lw_receiver_adapters *ad, float *dq, float *dk, float *dv, const float *dout,
                               const float *att, const float *q, const float *v, int window);

#endif
