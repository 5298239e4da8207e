/* The linear-probe baseline: multinomial logistic regression on the
 * sender's layer-l states, mean-pooled over the tokens of each example.
 * Features are standardised with the training set's mean and standard
 * deviation; the weights are fitted by full-batch AdamW on the mean
 * cross-entropy plus l2/2 * |W|^2 (biases not penalised), from zeros, so
 * the fit is deterministic. */
#ifndef LW_LINEAR_PROBE_H
#define LW_LINEAR_PROBE_H

#include "sender_cache.h"
#include "status.h"

typedef struct {
    int n_classes, dim;
    float *w;       /* [n_classes, dim] */
    float *b;       /* [n_classes] */
    float *mean;    /* [dim] standardisation */
    float *inv_std; /* [dim] */
} lw_linear_probe;

typedef struct {
    int steps;      /* full-batch steps (default 300) */
    float lr;       /* default 0.05 */
    float l2;       /* default 1e-3 */
} lw_probe_options;

lw_probe_options lw_probe_defaults(void);

/* feats [n, dim] (malloc'd): the mean over tokens of each of the first n
 * examples' states. */
lw_status lw_probe_features(const lw_sender_cache *c, int n, float **feats);

/* Fits on feats [n, dim] with labels y[n] in [0, n_classes). */
lw_status lw_linear_probe_train(lw_linear_probe *p, const float *feats, const int *y, int n, int dim, int n_classes,
                                const lw_probe_options *o);
/* The argmax class of one feature row (raw, unstandardised). */
int lw_linear_probe_predict(const lw_linear_probe *p, const float *feat);
void lw_linear_probe_free(lw_linear_probe *p);

#endif
