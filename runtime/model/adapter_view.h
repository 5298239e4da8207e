/* What the receiver's forward and backward read of its adapters: the set's
 * types only, so that LoRA (lora.h), which the set holds, can take the set
 * without the set's functions (adapters.h) and LoRA standing on each other. */
#ifndef LW_ADAPTER_VIEW_H
#define LW_ADAPTER_VIEW_H

#include <stdbool.h>
#include <stdint.h>

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

/* The scratch, for forward.c, model_backward.c and lora.c. */
struct lw_adapter_scratch {
    int max_tokens;       /* text rows per call */
    int kv_rows;          /* prefix_len + max_tokens */
    float *k, *v;         /* [kv_rows, kv_dim] the prefix then the text's keys / values */
    float *dk, *dv;       /* [kv_rows, kv_dim] their gradients */
    float *u, *du;        /* [max_tokens, rank] LoRA's A x and its gradient */
    float *xd, *y;        /* [max_tokens, widest projection] dropped-out input, B u */
};

#endif
