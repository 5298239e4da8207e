/* Training checkpoints. A checkpoint is a directory of two safetensors files:
 *   bridge.safetensors       the bridge tensors by name ("in_proj.weight",
 *                            "queries", ...), F32, loadable as-is by
 *                            safetensors.torch.load_file; __metadata__ holds
 *                            the bridge config and the step.
 *   train_state.safetensors  the AdamW moments as "adam_m.<name>" and
 *                            "adam_v.<name>"; __metadata__ holds "step",
 *                            "adam_step", "rng" (four hex words) and betas/eps.
 * Each file is written atomically (tmp + fsync + rename), train state first,
 * so a crash leaves at worst a new train state beside an old bridge, which
 * lw_checkpoint_load refuses (their steps differ). */
#ifndef LW_CHECKPOINT_H
#define LW_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "bridge.h"
#include "rng.h"
#include "status.h"

/* Creates dir if needed and writes both files. */
lw_status lw_checkpoint_save(const char *dir, const lw_bridge *b, const lw_adamw *opt, const lw_rng *rng,
                             long step);

/* Loads the bridge weights of a bridge.safetensors file (ours or one written
 * from PyTorch) into b, which must already be created with the matching
 * config: every tensor of b must be present with its exact shape and dtype
 * F32, and the file must hold no others. On error b is left unchanged. */
lw_status lw_checkpoint_load_bridge(const char *path, lw_bridge *b);

/* Loads a whole checkpoint directory: weights into b, moments into opt
 * (created for b->n_params), and the rng and step. */
lw_status lw_checkpoint_load(const char *dir, lw_bridge *b, lw_adamw *opt, lw_rng *rng, long *step);

/* Reads one F32 tensor of a safetensors file into a malloc'd buffer (for
 * goldens and tools); shape gets ndim entries. */
lw_status lw_safetensors_read_f32(const char *path, const char *name, float **data, int64_t shape[4], int *ndim);

/* The bridge file of a checkpoint given on the command line: a checkpoint
 * folder (runs/<task>/final: its bridge.safetensors, *is_dir true) or a
 * .safetensors file itself. */
void lw_bridge_checkpoint_file(const char *checkpoint, char *out, size_t cap, bool *is_dir);

#endif
