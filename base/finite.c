#include "finite.h"

#include <math.h>
#include <string.h>

lw_status lw_check_finite(const char *path, const char *tensor, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) {
        float x;
        memcpy(&x, p + i * sizeof x, sizeof x);
        if (!isfinite(x))
            return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" holds %s at index %zu (expected finite values; "
                           "saved from a diverged run?)", path, tensor, isnan(x) ? "NaN" : x > 0 ? "+inf" : "-inf",
                           i);
    }
    return LW_OK;
}

lw_status lw_check_values_finite(const char *what, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return lw_fail(LW_ERR_INVALID, "%s: element %zu of %zu is %g (non-finite)", what, i, n, (double)x[i]);
    return LW_OK;
}
