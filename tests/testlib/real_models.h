/* The default pair's real models for the GPU suites, or random weights of
 * their shapes when the files are not on the machine (a device machine
 * gets the working tree, not models/): GPU against CPU on the same random
 * weights checks the same code at the same sizes. */
#ifndef LW_TL_REAL_MODELS_H
#define LW_TL_REAL_MODELS_H

#include <stdbool.h>

#include "model.h"

#define TL_DEFAULT_PAIR "pairs/smollm2-135m_to_gemma3-270m.json"

/* models/<file> (tl_model) when present; else the side of the default pair
 * whose weights file is named `file`, with lw_random_model's weights of its
 * config (seeded, embeddings at the manifest's RMS). *is_random (may be NULL)
 * says which; a note goes to stderr. Fails the test on error. */
lw_model *tl_real_or_random_model(const char *file, bool *is_random);

/* True when both of the default pair's weights files are in models/. */
bool tl_default_pair_present(void);

#endif
