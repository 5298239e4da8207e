/* The field-by-field comparison of two plans' records (the decoder's in
 * plan.c, the bridge's in bridge_plan.c): inside a function returning
 * lw_status with a `const char *what` naming the two plans, DIFF_AS returns
 * at the first field that differs, naming it and showing both values as fmt
 * (through show, e.g. a slot's name). */
#ifndef LW_PLAN_COMPARE_H
#define LW_PLAN_COMPARE_H

#include "status.h"

#define DIFF_AS(field, fmt, show, x, y)                                                                          \
    do {                                                                                                         \
        if ((x) != (y))                                                                                          \
            return lw_fail(LW_ERR_INVALID, "%s: %s differs: " fmt " here, " fmt " in the other", what, field,   \
                           show(x), show(y));                                                                    \
    } while (0)
#define AS_IS(v) (v)
#define DIFF(field, fmt, x, y) DIFF_AS(field, fmt, AS_IS, x, y)

#endif
