#include "train_checks.h"

#include <stdio.h>

/* One named tensor's values and moments. */
static lw_status tensor_finite(const char *kind, const char *name, size_t offset, size_t count, const float *params,
                               const lw_adamw *opt)
{
    char what[160];
    snprintf(what, sizeof what, "%s tensor \"%s\"", kind, name);
    lw_status st = lw_check_values_finite(what, params + offset, count);
    if (!st && opt && opt->m) {
        snprintf(what, sizeof what, "%s tensor \"%s\"'s AdamW first moment", kind, name);
        st = lw_check_values_finite(what, opt->m + offset, count);
    }
    if (!st && opt && opt->v) {
        snprintf(what, sizeof what, "%s tensor \"%s\"'s AdamW second moment", kind, name);
        st = lw_check_values_finite(what, opt->v + offset, count);
    }
    return st;
}

lw_status lw_check_bridge_finite(const lw_bridge *b, const lw_adamw *opt)
{
    lw_status st = LW_OK;
    for (int i = 0; !st && i < b->n_tensors; i++)
        st = tensor_finite("bridge", b->tensors[i].name, b->tensors[i].offset, b->tensors[i].count, b->params, opt);
    return st;
}

lw_status lw_check_adapter_params_finite(const char *what, const lw_adapter_params *p, const lw_adamw *opt)
{
    lw_status st = LW_OK;
    for (int i = 0; !st && i < p->n_tensors; i++)
        st = tensor_finite(what, p->tensors[i].name, p->tensors[i].offset, p->tensors[i].count, p->params, opt);
    return st;
}

lw_status lw_check_adapter_set_finite(const lw_adapter_set *s)
{
    lw_status st = LW_OK;
    if (s->has_lora) st = lw_check_adapter_params_finite("LoRA", &s->lora.p, &s->opt_lora);
    if (!st && s->has_prefix) st = lw_check_adapter_params_finite("deep prefix", &s->prefix.p, &s->opt_prefix);
    return st;
}
