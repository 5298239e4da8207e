/* Label scores calibrated against each label's average score (lw eval
 * --calibrate mean; docs/objectives.md, "Calibrated scoring").
 *
 * A bridge that has learned the training set's label prior before the
 * input (docs/results.md, "Why Banking77 sits at chance") gives every
 * example nearly the same ranking: the labels whose first token the
 * training set favours, and the shortest continuations inside them. As in
 * contextual calibration (Zhao et al. 2021), the part of a label's score
 * that does not depend on the input is estimated and removed: here by the
 * label's mean score over the evaluated examples (no extra forward), so
 *
 *   calibrated[i][l] = scores[i][l] - (1/n) sum_j scores[j][l].
 *
 * It is transductive: the n examples scored together set the offsets (the
 * same examples in any order give the same offsets; one example alone is
 * left with all-zero scores, so it needs a batch). */
#ifndef LW_SCORE_CALIBRATION_H
#define LW_SCORE_CALIBRATION_H

/* scores [n, n_labels] in place; offsets[n_labels] (may be NULL) gets the
 * means subtracted. n < 1 leaves everything as it is. */
void lw_scores_calibrate_mean(double *scores, int n, int n_labels, double *offsets);

#endif
