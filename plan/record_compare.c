/* Two lists of plan records compared in order (record_compare.h). */
#include "record_compare.h"

#include <stdio.h>

lw_status lw_compare_records(const void *a, int na, const void *b, int nb, size_t size, const char *list,
                             const char *what, lw_record_kind_fn kind, lw_record_compare_fn compare)
{
    if (na != nb) return lw_fail(LW_ERR_INVALID, "%s: %d %s ops here, %d in the other", what, na, list, nb);
    const char *x = a, *y = b;
    for (int i = 0; i < na; i++) {
        char where[160];
        snprintf(where, sizeof where, "%s: %s op %d (%s)", what, list, i, kind(x + (size_t)i * size));
        lw_status st = compare(x + (size_t)i * size, y + (size_t)i * size, where);
        if (st) return st;
    }
    return LW_OK;
}
