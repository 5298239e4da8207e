/* Two decoder plans compared record by record (lw_plan_compare,
 * plan_compare.c), their lists walked by lw_compare_records with the DIFF
 * macros (record_compare.h), as the bridge's plan is. Apart from plan.c, so
 * that the plan's records and their lowering stand on the config alone (and
 * the model's state, model.h, on them). */
#ifndef LW_PLAN_COMPARE_H
#define LW_PLAN_COMPARE_H

#include "plan.h"
#include "record_compare.h"
#include "status.h"

/* LW_OK when a and b are the same plan; otherwise an error naming the first
 * difference (which step, which field, both values), as context `what`. */
lw_status lw_plan_compare(const lw_plan *a, const lw_plan *b, const char *what);

#endif
