/* The adapters' flat parameter table and its AdamW (adapter_params.h). */
#include "adapter_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps n_params * 4 bytes and every count far from overflow. */
#define MAX_ADAPTER_PARAMS ((size_t)1 << 32)

lw_status lw_adapter_params_add(lw_adapter_params *p, const char *name, int ndim, int64_t d0, int64_t d1,
                                bool decay, size_t *offset)
{
    if (strlen(name) >= LW_ADAPTER_NAME_MAX)
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: name longer than %d", name, LW_ADAPTER_NAME_MAX - 1);
    if (ndim < 1 || ndim > 2 || d0 <= 0 || d0 > (1 << 24) || (ndim == 2 && (d1 <= 0 || d1 > (1 << 24))))
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: shape [%lld, %lld] (expected 1..2 dims of 1..2^24)", name,
                       (long long)d0, (long long)d1);
    size_t count = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    if (count > MAX_ADAPTER_PARAMS - p->n_params)
        return lw_fail(LW_ERR_INVALID, "adapter tensor %s: more than %zu parameters in all", name,
                       MAX_ADAPTER_PARAMS);
    if (p->n_tensors == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        lw_adapter_tensor *t = realloc(p->tensors, (size_t)cap * sizeof *t);
        if (!t) return lw_fail(LW_ERR_NOMEM, "adapter tensor %s: out of memory", name);
        p->tensors = t;
        p->cap = cap;
    }
    lw_adapter_tensor *t = &p->tensors[p->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = p->n_params;
    t->count = count;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->decay = decay;
    p->n_params += count;
    if (offset) *offset = t->offset;
    return LW_OK;
}

lw_status lw_adapter_params_alloc(lw_adapter_params *p)
{
    size_t n = p->n_params ? p->n_params : 1;
    p->params = calloc(n, sizeof(float));
    p->grads = calloc(n, sizeof(float));
    if (!p->params || !p->grads)
        return lw_fail(LW_ERR_NOMEM, "adapter: out of memory for %zu parameters", p->n_params);
    return LW_OK;
}

void lw_adapter_params_free(lw_adapter_params *p)
{
    free(p->params);
    free(p->grads);
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

void lw_adapter_params_zero_grad(lw_adapter_params *p)
{
    if (p->grads) memset(p->grads, 0, p->n_params * sizeof(float));
}

const lw_adapter_tensor *lw_adapter_params_find(const lw_adapter_params *p, const char *name)
{
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return &p->tensors[i];
    return NULL;
}

void lw_adapter_params_adamw(lw_adapter_params *p, lw_adamw *opt, float lr, float weight_decay)
{
    for (int i = 0; i < p->n_tensors; i++) {
        const lw_adapter_tensor *t = &p->tensors[i];
        lw_adamw_update(opt, p->params, p->grads, t->offset, t->count, lr, t->decay ? weight_decay : 0.0f);
    }
}
