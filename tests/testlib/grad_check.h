/* Analytic gradients against central finite differences, for the adapter
 * suites: one tolerance for all of them, relative to the element and to the
 * largest difference in the set, so tiny gradients next to large ones do not
 * fail on the finite differences' own rounding. */
#ifndef LW_TL_GRAD_CHECK_H
#define LW_TL_GRAD_CHECK_H

#include <stddef.h>

/* Counts the n elements of an that differ from fd beyond
 * 3e-2 |fd| + 5e-3 max|fd| + 2e-4; raises *worst to the largest error /
 * tolerance seen (the caller starts it at 0). */
int tl_grad_mismatches(const float *an, const double *fd, size_t n, double *worst);

#endif
