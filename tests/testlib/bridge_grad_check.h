/* The bridge's gradient through the receiver against finite differences,
 * for the suites that train a bridge on the tiny pair (check_train.c, and
 * check_objectives.c with its extra loss terms on). */
#ifndef LW_TL_BRIDGE_GRAD_CHECK_H
#define LW_TL_BRIDGE_GRAD_CHECK_H

#include "bridge.h"
#include "train.h"

/* Example i (sender rows x, T of them, and its label) through t, whose
 * bridge is b: d(loss)/d(params) of lw_trainer_example against central
 * differences of lw_trainer_loss (eps 1e-3) at the largest-gradient entry
 * of every trainable tensor (the input_norm buffers have no gradient by
 * design), where that entry is at least 0.02; within 1e-2 + 3e-2 |fd|.
 * At least half the trainable tensors must be checked. */
void tl_check_bridge_gradient(lw_trainer *t, lw_bridge *b, const float *x, int T, int label, int i);

/* The same check of a gradient g already taken (b->n_params floats) against
 * central differences of loss(ctx), which reads b's parameters: for losses
 * with terms beside lw_trainer_loss's (check_objectives.c's spread term). */
void tl_check_bridge_gradient_of(lw_bridge *b, const float *g, double (*loss)(void *ctx), void *ctx, const char *what);

#endif
