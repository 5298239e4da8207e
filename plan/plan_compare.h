/* Two plans compared record by record: the decoder's (lw_plan_compare,
 * plan_compare.c) and, through the macros, the bridge's (bridge_plan.c).
 * Inside a function returning lw_status with a `const char *what` naming the
 * two plans, DIFF_AS returns at the first field that differs, naming it and
 * showing both values as fmt (through show, e.g. a slot's name). Apart from
 * plan.c, so that the plan's records and their lowering stand on the config
 * alone (and the model's state, model.h, on them). */
#ifndef LW_PLAN_COMPARE_H
#define LW_PLAN_COMPARE_H

#include "plan.h"
#include "status.h"

#define DIFF_AS(field, fmt, show, x, y)                                                                          \
    do {                                                                                                         \
        if ((x) != (y))                                                                                          \
            return lw_fail(LW_ERR_INVALID, "%s: %s differs: " fmt " here, " fmt " in the other", what, field,   \
                           show(x), show(y));                                                                    \
    } while (0)
#define AS_IS(v) (v)
#define DIFF(field, fmt, x, y) DIFF_AS(field, fmt, AS_IS, x, y)

/* LW_OK when a and b are the same plan; otherwise an error naming the first
 * difference (which step, which field, both values), as context `what`. */
lw_status lw_plan_compare(const lw_plan *a, const lw_plan *b, const char *what);

#endif
