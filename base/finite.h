/* Finite-value checks for trained numbers: every value of a checkpoint is
 * checked before it is loaded (bytes from a file) or written (values in
 * memory), so a diverged run's NaN never replaces or becomes a good model.
 * Each failure names the tensor and the first bad element. Kept at the
 * bottom of the tree: the checkpoint, adapter and training code all use it. */
#ifndef LW_FINITE_H
#define LW_FINITE_H

#include <stddef.h>

#include "status.h"

/* n little-endian F32 values at bytes (any alignment), read from path:
 * refused (LW_ERR_FORMAT) at the first NaN or infinity, naming the tensor. */
lw_status lw_check_finite(const char *path, const char *tensor, const void *bytes, size_t n);

/* x[n] in memory: refused (LW_ERR_INVALID) naming what and the first bad index. */
lw_status lw_check_values_finite(const char *what, const float *x, size_t n);

#endif
