/* A manifest against its weights files: what `lwc build` checks before it
 * bakes a pair (lwc/main.c). Apart from manifest.c, so that parsing a
 * manifest needs no weight reader. */
#ifndef LW_MANIFEST_WEIGHTS_H
#define LW_MANIFEST_WEIGHTS_H

#include "manifest.h"
#include "status.h"

/* Checks the values the weights carry (dims, layers, heads, vocab, RoPE ...)
 * against the manifest's model block `which` ("sender"/"receiver"); errors
 * name both the manifest field and the value in the file. */
lw_status lw_manifest_check_weights(const lw_manifest *m, const char *which);

#endif
