/* What a soft-token message was made with, and the receiver's check of it
 * (wire.h, docs/wire.md "Identity").
 *
 * A message names its pair and task and carries the XXH64 (xxhash64.h) of
 * the bridge checkpoint file and of each model's weights and tokenizer
 * files. Each side hashes what it has: the bridge always (both sides load
 * it), its own model's files always, the other model's files when they are
 * where the manifest says (else 0, "not known"). The receiver refuses a
 * message whose pair, task, bridge or any model file both sides know
 * differs from its own, naming what differs, the two hashes and its file.
 *
 * Under LWC_RANDOM_WEIGHTS (cfg->load.random_weights, random_weights.h) the
 * models are not read from their files: their hashes are those of "random-weights:<seed>:<model
 * name>", so such messages never pass for the real models' ones. A file
 * whose XXH64 is 0 is recorded as 1 (0 means "not known"). Hashing runs at
 * memory speed (about 0.1 s for the 350 MB of the default pair's models, see
 * docs/wire.md), so nothing is cached. */
#ifndef LW_WIRE_IDENTITY_H
#define LW_WIRE_IDENTITY_H

#include <stdint.h>

#include "manifest.h"
#include "status.h"
#include "wire.h"

typedef enum { LW_WIRE_SENDER, LW_WIRE_RECEIVER } lw_wire_role;

/* XXH64 (seed 0) of a whole file, mapped to 1 if it is 0. */
lw_status lw_wire_hash_file(const char *path, uint64_t *h);

/* This side's identity: pair and task names, bridge_path's hash, and the
 * models' files (role's own required, the other's if present). */
lw_status lw_wire_identity_make(const lw_manifest *m, const char *task, const char *bridge_path, lw_wire_role role,
                                lw_wire_identity *id);

/* LW_OK if msg may be read by a side of identity mine; else the reason,
 * naming what differs (bridge_path: mine's bridge file, for the message). */
lw_status lw_wire_identity_check(const lw_wire_identity *msg, const lw_wire_identity *mine, const lw_manifest *m,
                                 const char *bridge_path);

#endif
