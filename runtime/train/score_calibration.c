/* Mean-calibrated label scores (score_calibration.h). */
#include "score_calibration.h"

#include <stddef.h>

void lw_scores_calibrate_mean(double *scores, int n, int n_labels, double *offsets)
{
    if (n < 1) return;
    for (int l = 0; l < n_labels; l++) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += scores[(size_t)i * n_labels + l];
        double mean = sum / n;
        for (int i = 0; i < n; i++) scores[(size_t)i * n_labels + l] -= mean;
        if (offsets) offsets[l] = mean;
    }
}
