/* Trainable additions to the frozen receiver (issue 7): LoRA on its
 * projections (lora.h) and a deep prefix of per-layer keys and values
 * (deep_prefix.h). lw_forward reads them through lw_forward_args.adapters
 * and lw_model_backward_adapted writes their gradients; a NULL adapters
 * pointer is exactly the plain model.
 *
 * Also here: lw_adapter_params, the flat parameter buffer with a table of
 * named tensors that both adapters keep (like lw_bridge's), with AdamW over
 * it; its atomic safetensors save/load, which checks every name and shape,
 * is adapter_file.h. */
#ifndef LW_ADAPTERS_H
#define LW_ADAPTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "model.h"
#include "status.h"

/* ---- a flat buffer of named tensors ------------------------------------- */

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

/* ---- what the receiver's forward and backward read ---------------------- */

typedef struct lw_lora lw_lora;                  /* lora.h */
typedef struct lw_adapter_scratch lw_adapter_scratch;

typedef struct lw_receiver_adapters {
    lw_lora *lora;               /* NULL: none; backward adds to its grads */
    int prefix_len;              /* P, 0: no deep prefix */
    const float *prefix_k;       /* [n_layers, P, n_kv_heads * head_dim], as attention reads keys */
    const float *prefix_v;       /* [n_layers, P, n_kv_heads * head_dim] */
    float *d_prefix_k;           /* backward accumulates (+=) here; NULL skips */
    float *d_prefix_v;
    int prefix_segments;         /* 0: every row, of every segment, reads the one prefix (label
                                  * scoring); n: a segmented pass's (packed examples') segment g
                                  * reads its own, at g * n_layers * P * kvd into all four arrays
                                  * above (n >= the pass's segments) */
    bool training;               /* LoRA dropout on */
    uint64_t dropout_seed;       /* draws the masks: backward must see the forward's */
    lw_adapter_scratch *scratch; /* from lw_adapters_init */
} lw_receiver_adapters;

/* Whether ad changes what the receiver computes (LoRA or a deep prefix):
 * then every row, the prompt's shared head too, depends on trained
 * parameters, so no cached head can stand in for it. NULL: false. */
bool lw_adapters_active(const lw_receiver_adapters *ad);

/* Sizes the scratch for calls of up to max_tokens rows of text (the state
 * must hold max_tokens + prefix_len positions). lora may be NULL. */
lw_status lw_adapters_init(lw_receiver_adapters *ad, const lw_model *m, int max_tokens, lw_lora *lora,
                           int prefix_len);
void lw_adapters_free(lw_receiver_adapters *ad);
/* Grows the scratch (never shrinks it) for calls of up to rows rows: a
 * packed training pass runs several examples' rows at once. The scratch is
 * the adapters' workspace, so a const view may grow it. */
lw_status lw_adapters_reserve(const lw_receiver_adapters *ad, const lw_model *m, int rows);

/* The scratch, for forward.c, model_backward.c and lora.c. */
struct lw_adapter_scratch {
    int max_tokens;       /* text rows per call */
    int kv_rows;          /* prefix_len + max_tokens */
    float *k, *v;         /* [kv_rows, kv_dim] the prefix then the text's keys / values */
    float *dk, *dv;       /* [kv_rows, kv_dim] their gradients */
    float *u, *du;        /* [max_tokens, rank] LoRA's A x and its gradient */
    float *xd, *y;        /* [max_tokens, widest projection] dropped-out input, B u */
};

/* Fails unless ad fits m, passes of `rows` rows, text up to position end
 * (exclusive) and a state of max_positions (which must also hold the prefix). */
lw_status lw_adapters_check(const lw_receiver_adapters *ad, const lw_model *m, int rows, int end,
                            int max_positions);

#endif
