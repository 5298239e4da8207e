/* Two lists of plan records compared record by record: the decoder's plan
 * (lw_plan_compare, plan_compare.c) and the bridge's (lw_bridge_plan_compare,
 * bridge_plan.c) walk their lists here, each with its own record compare.
 * Inside a function returning lw_status with a `const char *what` naming the
 * two plans, DIFF_AS returns at the first field that differs, naming it and
 * showing both values as fmt (through show, e.g. a slot's name). On the
 * status alone, so that the bridge's plan stands on neither the decoder's
 * plan nor its compare. */
#ifndef LW_RECORD_COMPARE_H
#define LW_RECORD_COMPARE_H

#include <stddef.h>

#include "status.h"

#define DIFF_AS(field, fmt, show, x, y)                                                                          \
    do {                                                                                                         \
        if ((x) != (y))                                                                                          \
            return lw_fail(LW_ERR_INVALID, "%s: %s differs: " fmt " here, " fmt " in the other", what, field,   \
                           show(x), show(y));                                                                    \
    } while (0)
#define AS_IS(v) (v)
#define DIFF(field, fmt, x, y) DIFF_AS(field, fmt, AS_IS, x, y)

/* One record of each list; where names it ("<what>: <list> op <i> (<kind>)"). */
typedef lw_status (*lw_record_compare_fn)(const void *a, const void *b, const char *where);
/* A record's kind, for where. */
typedef const char *(*lw_record_kind_fn)(const void *rec);

/* LW_OK when a[na] and b[nb] (records of `size` bytes) are the same list:
 * the same count, then compare on each pair in order, returning its first
 * error; "<what>: <na> <list> ops here, <nb> in the other" when the counts
 * differ. */
lw_status lw_compare_records(const void *a, int na, const void *b, int nb, size_t size, const char *list,
                             const char *what, lw_record_kind_fn kind, lw_record_compare_fn compare);

#endif
