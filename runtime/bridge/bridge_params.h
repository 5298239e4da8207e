/* The bridge's parameters as the executor and the optimiser see them: one
 * flat float buffer (params, with grads beside it), a table of named tensors
 * (the safetensors checkpoint's names), and the offsets of each tensor the
 * forward reads. Below bridge.h (the bridge's operations) and bridge_exec.h
 * (the CPU executor of its plan), which both read this layout and nothing
 * more of each other. */
#ifndef LW_BRIDGE_PARAMS_H
#define LW_BRIDGE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_config.h"

enum { LW_BRIDGE_NAME_MAX = 64 };

/* How lw_bridge_init fills a tensor. */
typedef enum { LW_INIT_NORMAL, LW_INIT_ZERO, LW_INIT_ONE, LW_INIT_EMBED_RMS } lw_bridge_init_kind;

typedef struct {
    char name[LW_BRIDGE_NAME_MAX];
    size_t offset;        /* into params / grads */
    size_t count;
    int ndim;             /* 1 or 2 */
    int64_t shape[2];     /* PyTorch order: a projection is [out, in] */
    bool decay;           /* weight decay applies (matrices and queries) */
    bool trainable;       /* false for the input_norm buffers */
    lw_bridge_init_kind init;
} lw_bridge_tensor;

/* Offsets of one Perceiver block's tensors in the flat buffers. */
typedef struct {
    size_t cross_norm_q_w, cross_norm_q_b, cross_norm_kv_w, cross_norm_kv_b;
    size_t cross_q, cross_k, cross_v, cross_o;
    size_t self_norm_w, self_norm_b, self_q, self_k, self_v, self_o;
    size_t ffn_norm_w, ffn_norm_b, ffn_fc1_w, ffn_fc1_b, ffn_fc2_w, ffn_fc2_b;
} lw_bridge_block;

typedef struct {
    lw_bridge_config cfg;
    int sender_hidden;     /* S */
    int receiver_hidden;   /* R */
    float embed_rms;       /* the receiver's; initial out_scale */
    size_t n_params;
    float *params;
    float *grads;
    int n_tensors;
    lw_bridge_tensor *tensors;
    /* Offsets of the tensors outside the blocks (unused ones are 0 and not
     * in the table). */
    size_t in_mean, in_std;    /* input_norm buffers [S] */
    size_t in_w, in_b, queries, final_norm_w, final_norm_b, out_w, out_b, out_scale;
    lw_bridge_block *blocks;   /* [depth], perceiver only */
    char sender_layers[96];    /* "8,12,16": trained behind a layer mix (layer_mix_file.h), kept in the
                                * checkpoint's metadata; "": one sender layer */
} lw_bridge;

#endif
