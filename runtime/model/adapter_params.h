/* A flat buffer of named tensors with its AdamW: what every trainable
 * addition to the receiver (LoRA, deep prefix) keeps its parameters in, like
 * lw_bridge's. Its atomic safetensors save/load, which checks every name and
 * shape, is adapter_file.h. */
#ifndef LW_ADAPTER_PARAMS_H
#define LW_ADAPTER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "status.h"

enum { LW_ADAPTER_NAME_MAX = 96 };

typedef struct {
    char name[LW_ADAPTER_NAME_MAX];   /* the safetensors name */
    size_t offset, count;             /* into params / grads */
    int ndim;                         /* 1 or 2 */
    int64_t shape[2];                 /* PyTorch order: [out, in] */
    bool decay;                       /* weight decay applies (matrices) */
} lw_adapter_tensor;

typedef struct {
    size_t n_params;
    float *params;        /* [n_params] */
    float *grads;         /* [n_params], backward accumulates */
    int n_tensors, cap;
    lw_adapter_tensor *tensors;
} lw_adapter_params;

/* Appends a tensor of d0 (x d1 when ndim 2) floats; *offset gets its place.
 * Call before lw_adapter_params_alloc. */
lw_status lw_adapter_params_add(lw_adapter_params *p, const char *name, int ndim, int64_t d0, int64_t d1,
                                bool decay, size_t *offset);
/* Allocates params and grads (zeroed) for the tensors added so far. */
lw_status lw_adapter_params_alloc(lw_adapter_params *p);
void lw_adapter_params_free(lw_adapter_params *p);
void lw_adapter_params_zero_grad(lw_adapter_params *p);
const lw_adapter_tensor *lw_adapter_params_find(const lw_adapter_params *p, const char *name);
/* One AdamW update over every tensor (the caller has called
 * lw_adamw_begin_step on opt, sized n_params), decay only where decay. */
void lw_adapter_params_adamw(lw_adapter_params *p, lw_adamw *opt, float lr, float weight_decay);

#endif
