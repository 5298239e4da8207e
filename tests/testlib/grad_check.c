/* Gradient comparison for the suites; see grad_check.h. */
#include "grad_check.h"

#include <math.h>

int tl_grad_mismatches(const float *an, const double *fd, size_t n, double *worst)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(fd[i]));
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = 3e-2 * fabs(fd[i]) + 5e-3 * scale + 2e-4;
        double err = fabs(an[i] - fd[i]);
        *worst = fmax(*worst, err / tol);
        bad += err > tol;
    }
    return bad;
}
