/* The check of the baked plans against the run-time lowering: lwc build
 * emitted each model's plan and memory plan (codegen/gen_plan.c) from the
 * same lowering and layout (plan.c, plan_memory.c) this binary links, so
 * they differ only when the two were built from different sources. */
#include "pair.h"
#include "plan_compare.h"

lw_status lw_pair_memory_shape(const lw_manifest *m, int model, lw_plan_shape *out)
{
    if (model < 0 || model > 1)
        return lw_fail(LW_ERR_INVALID, "pair %s: memory plan of model %d (0 sender, 1 receiver)", m->name, model);
    /* soft_tokens is 1..64 (manifest.c), so the rows stay far below the layout's 2^20 */
    int rows = LW_PAIR_BAKED_SEQ + (model == 1 ? m->bridge.soft_tokens : 0);
    *out = (lw_plan_shape){.rows = rows, .att_rows = rows, .kv_len = rows, .training = model == 1, .lse = true};
    return LW_OK;
}

/* The bridge's plan and memory plan, the same way (perceiver only). */
static lw_status check_bridge_plan(const lw_pair *pair)
{
    const lw_manifest *m = &pair->manifest;
    if (m->bridge.kind != LW_BRIDGE_PERCEIVER) return LW_OK;
    if (!pair->bridge_plan || !pair->bridge_memory)
        return lw_fail(LW_ERR_INVALID, "pair %s: the binary holds no bridge plan (rebuild it with lwc build)", m->name);
    lw_bridge_plan lowered;
    lw_bridge_memory mem;
    lw_status st = lw_bridge_plan_lower(&m->bridge, m->sender.hidden, m->receiver.hidden, &lowered);
    if (!st) st = lw_bridge_plan_compare(&lowered, pair->bridge_plan, "lowered vs baked");
    if (st)
        return lw_fail_wrap(st, "pair %s: the bridge lowers to another plan than the one lwc build baked in (rebuild "
                            "the pair with this lwc)", m->name);
    st = lw_bridge_memory_layout(&lowered, LW_PAIR_BAKED_SEQ, true, &mem);
    if (!st) st = lw_bridge_memory_compare(&mem, pair->bridge_memory, "laid out vs baked");
    if (st)
        return lw_fail_wrap(st, "pair %s: the bridge lays out to another memory plan than the one lwc build baked in "
                            "(rebuild the pair with this lwc)", m->name);
    return LW_OK;
}

lw_status lw_pair_check_plans(const lw_pair *pair)
{
    if (!pair->plans || !pair->memory)
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
        lw_plan_shape shape;
        lw_plan_memory mem;
        st = lw_pair_memory_shape(&pair->manifest, i, &shape);
        if (!st) st = lw_plan_memory_layout(&lowered, &shape, &mem);
        if (!st) st = lw_plan_memory_compare(&mem, &pair->memory[i], "laid out vs baked");
        if (st)
            return lw_fail_wrap(st, "pair %s: %s %s lays out to another memory plan than the one lwc build baked in "
                                "(rebuild the pair with this lwc)", pair->manifest.name, roles[i], models[i]->name);
    }
    return check_bridge_plan(pair);
}
