/* A bridge's shape as the manifest gives it (its "bridge" block, manifest.h)
 * and the one range check of it. Apart from the manifest's parser so that
 * the bridge, its parameters and its plan stand on the config alone, not on
 * the parser and the family table under it. */
#ifndef LW_BRIDGE_CONFIG_H
#define LW_BRIDGE_CONFIG_H

#include "status.h"

typedef enum { LW_BRIDGE_PERCEIVER, LW_BRIDGE_MLP, LW_BRIDGE_LINEAR } lw_bridge_kind;
typedef enum { LW_CALIB_RMS, LW_CALIB_NONE } lw_calibration;

typedef struct {
    lw_bridge_kind kind;
    int soft_tokens;        /* M, 1..64 (the design uses 4..32) */
    int source_layer;       /* sender layer whose output feeds the bridge, 1..n_layers */
    int width;              /* internal width d */
    int depth;              /* Perceiver blocks */
    int heads;              /* attention heads inside the bridge; divides width */
    int ffn_mult;           /* FFN width = ffn_mult * width */
    lw_calibration calibration;
    float dropout;
} lw_bridge_config;

/* The one range check of a bridge config against its two models' widths
 * (bridge_config.c), which the bridge (lw_bridge_create), its plan
 * (lw_bridge_plan_lower) and the GPU memory plan all call: widths 1..2^20,
 * soft_tokens 1..64, width 1..65536, and for the perceiver depth 1..64,
 * heads dividing width, ffn_mult 1..16. An error naming the field. */
lw_status lw_bridge_config_check(const lw_bridge_config *c, int sender_hidden, int receiver_hidden);

#endif
