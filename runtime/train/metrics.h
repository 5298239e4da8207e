/* Classification metrics: accuracy, per-class precision/recall/F1, macro-F1,
 * the confusion matrix, and a percentile bootstrap interval (seeded).
 * Undefined ratios (a class never predicted, or never gold) count as 0, and
 * macro-F1 averages over the classes that occur in gold or predictions: the
 * conventions of scikit-learn's f1_score(average="macro", zero_division=0). */
#ifndef LW_METRICS_H
#define LW_METRICS_H

#include <stdint.h>

#include "status.h"

typedef struct {
    int n_classes;
    int n;
    long *confusion;      /* [gold * n_classes + predicted] */
    double accuracy;
    double macro_f1;
    double *precision;    /* [n_classes] */
    double *recall;
    double *f1;
} lw_metrics;

typedef enum { LW_METRIC_ACCURACY, LW_METRIC_MACRO_F1 } lw_metric;

/* gold and pred hold class indices in [0, n_classes); n >= 1. */
lw_status lw_metrics_compute(const int *gold, const int *pred, int n, int n_classes, lw_metrics *out);
void lw_metrics_free(lw_metrics *m);

/* The 2.5th and 97.5th percentiles (linear interpolation) of `which` over
 * `resamples` resamples of the n pairs with replacement. */
lw_status lw_bootstrap_ci(const int *gold, const int *pred, int n, int n_classes, lw_metric which, int resamples,
                          uint64_t seed, double *lo, double *hi);

/* The same percentile bootstrap for the mean of per-example scores (EM, F1,
 * 0/1 correctness of tasks whose answer is written or chosen): n >= 1. */
lw_status lw_bootstrap_mean_ci(const double *values, int n, int resamples, uint64_t seed, double *lo, double *hi);

/* How the answer tasks report a mean (lw eval on a generate or choice task,
 * the bridge on answers, the interlingua): the mean of the per-example
 * scores and its 95% percentile-bootstrap interval, always with the same
 * resamples and seed (written into each JSON beside the figures). */
enum { LW_ANSWER_RESAMPLES = 1000, LW_ANSWER_BOOT_SEED = 1 };
typedef struct {
    double mean, lo, hi;
} lw_mean_ci;
lw_status lw_answer_mean_ci(const double *values, int n, lw_mean_ci *out);

#endif
