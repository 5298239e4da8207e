/* The check of the baked plans against the run-time lowering: lwc build
 * emitted each model's plan (codegen/gen_plan.c) from the same lowering
 * (plan.c) this binary links, so they differ only when the two were built
 * from different sources. */
#include "pair.h"

lw_status lw_pair_check_plans(const lw_pair *pair)
{
    if (!pair->plans)
        return lw_fail(LW_ERR_INVALID, "pair %s: the binary holds no plans (rebuild it with lwc build)",
                       pair->manifest.name);
    const lw_model_config *models[2] = {&pair->manifest.sender, &pair->manifest.receiver};
    const char *roles[2] = {"sender", "receiver"};
    for (int i = 0; i < 2; i++) {
        lw_plan lowered;
        lw_plan_lower(models[i], &lowered);
        lw_status st = lw_plan_compare(&lowered, &pair->plans[i], "lowered vs baked");
        if (st)
            return lw_fail_wrap(st, "pair %s: %s %s lowers to another plan than the one lwc build baked in "
                                "(rebuild the pair with this lwc)", pair->manifest.name, roles[i], models[i]->name);
    }
    return LW_OK;
}
