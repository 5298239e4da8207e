/* A layer mix (layer_mix.h) saved beside the bridge in a checkpoint folder,
 * as DIR/layer_mix.safetensors: F32 tensors "mix.layers" [K] (the sender
 * layers, exact small integers), "mix.logits" [K], "mix.mean" and "mix.std"
 * [K, S], "adam_m.mix.logits" and "adam_v.mix.logits" [K], "adam_step" [1];
 * __metadata__ "sender_layers": "8,12,16" for people. Written atomically
 * (safetensors_write.h). The bridge file of such a checkpoint names the same
 * layers in its own metadata (lw_bridge.sender_layers), so a bridge trained
 * on a mix is never run on one layer by mistake. */
#ifndef LW_LAYER_MIX_FILE_H
#define LW_LAYER_MIX_FILE_H

#include <stdbool.h>

#include "bridge.h"
#include "layer_mix.h"
#include "status.h"

#define LW_LAYER_MIX_FILE "layer_mix.safetensors"

lw_status lw_layer_mix_save(const lw_layer_mix *m, const char *dir);
/* Creates m from DIR/layer_mix.safetensors (logits, buffers and moments);
 * S must match the file's width. On error m is left empty. */
lw_status lw_layer_mix_load(lw_layer_mix *m, const char *dir, int S);
/* Whether DIR holds the file. */
bool lw_layer_mix_file_exists(const char *dir);

/* The sender layers a checkpoint's bridge reads: its layer mix's
 * (layer_mix.safetensors in the checkpoint folder, or beside the
 * .safetensors file), else the one default_layer (*K = 1). S: the sender's
 * width. */
lw_status lw_bridge_checkpoint_layers(const char *checkpoint, int S, int default_layer, int *layers, int *K);

/* The layer mix b (loaded from checkpoint) was trained behind, into mix
 * (*found); none for a one-layer bridge. Refused: a mix bridge without its
 * layer_mix.safetensors, or with another mix's, or a mix file beside a
 * one-layer bridge. */
lw_status lw_bridge_checkpoint_mix(const char *checkpoint, const lw_bridge *b, lw_layer_mix *mix, bool *found);

#endif
