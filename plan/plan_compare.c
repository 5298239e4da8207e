/* Two decoder plans compared record by record (plan_compare.h). */
#include "plan_compare.h"

static lw_status compare_op(const void *pa, const void *pb, const char *what)
{
    const lw_plan_op *a = pa, *b = pb;
    DIFF_AS("kind", "%s", lw_op_kind_name, a->kind, b->kind);
    DIFF_AS("in", "%s", lw_plan_slot_name, a->in, b->in);
    DIFF_AS("out", "%s", lw_plan_slot_name, a->out, b->out);
    DIFF_AS("aux", "%s", lw_plan_slot_name, a->aux, b->aux);
    DIFF_AS("keep", "%s", lw_plan_slot_name, a->keep, b->keep);
    DIFF_AS("weight", "%s", lw_plan_weight_name, a->w, b->w);
    DIFF_AS("bias", "%s", lw_plan_weight_name, a->b, b->b);
    DIFF_AS("din", "%s", lw_plan_grad_name, a->din, b->din);
    DIFF_AS("dout", "%s", lw_plan_grad_name, a->dout, b->dout);
    DIFF("width", "%d", a->width, b->width);
    DIFF("rows", "%d", a->rows, b->rows);
    DIFF("kv_heads", "%d", a->kv_heads, b->kv_heads);
    DIFF("head_dim", "%d", a->head_dim, b->head_dim);
    DIFF("flags", "%u", a->flags, b->flags);
    DIFF("parts", "%d", a->n_parts, b->n_parts);
    for (int i = 0; i < a->n_parts && i < LW_PLAN_MAX_PARTS; i++) {
        const lw_plan_part *x = &a->parts[i], *y = &b->parts[i];
        DIFF_AS("part slot", "%s", lw_plan_slot_name, x->slot, y->slot);
        DIFF_AS("part gradient", "%s", lw_plan_grad_name, x->grad, y->grad);
        DIFF_AS("part weight", "%s", lw_plan_weight_name, x->w, y->w);
        DIFF("part width", "%d", x->width, y->width);
        DIFF("part lora", "%d", (int)x->lora, (int)y->lora);
    }
    return LW_OK;
}

static const char *op_kind(const void *op) { return lw_op_kind_name(((const lw_plan_op *)op)->kind); }

lw_status lw_plan_compare(const lw_plan *a, const lw_plan *b, const char *what)
{
    DIFF("layer count", "%d", a->n_layers, b->n_layers);
    DIFF("sliding window", "%d", a->sliding_window, b->sliding_window);
    DIFF("global_every", "%d", a->global_every, b->global_every);
    DIFF_AS("norm", "%s", lw_norm_name, a->norm, b->norm);
    /* compared as bits: the baked table prints floats exactly */
    DIFF("norm_eps", "%.9g", (double)a->norm_eps, (double)b->norm_eps);
    DIFF_AS("activation", "%s", lw_activation_name, a->activation, b->activation);
    DIFF("rope layout (interleaved)", "%d", (int)a->rope_interleaved, (int)b->rope_interleaved);
    lw_status st = lw_compare_records(a->model_ops, a->n_model_ops, b->model_ops, b->n_model_ops,
                                      sizeof *a->model_ops, "model", what, op_kind, compare_op);
    if (!st)
        st = lw_compare_records(a->ops, a->n_ops, b->ops, b->n_ops, sizeof *a->ops, "block", what, op_kind, compare_op);
    return st;
}
