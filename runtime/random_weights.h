/* Random weights of a manifest's shapes, for timing where the model files
 * cannot go (a device machine gets the working tree, not models/).
 *
 *   LWC_RANDOM_WEIGHTS=<seed> lw bench ...
 *
 * With the variable set, lw_model_load draws seeded random weights of the
 * config's shapes instead of reading weights_path, and lw_tokenizer_load
 * returns a byte tokenizer (id = byte + LW_BYTE_TOKEN_OFFSET) instead of
 * reading the tokenizer file. Both say so on stderr, once per process:
 * the outputs are meaningless, only the work (shapes, token counts) is real.
 * The loaded models carry no stop tokens (eos_id = -1, n_stop_ids = 0), so
 * generation always runs to its max_new tokens: random weights would stop
 * at a random step. LWC_IGNORE_STOP=1 does that last part alone, with the
 * real weights. Neither is ever on unless the variable is set. */
#ifndef LW_RANDOM_WEIGHTS_H
#define LW_RANDOM_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "status.h"
#include "tokenizer.h"

enum { LW_BYTE_TOKEN_OFFSET = 3, LW_BYTE_TOKENIZER_VOCAB = 256 + LW_BYTE_TOKEN_OFFSET };

/* *on: LWC_RANDOM_WEIGHTS is set (non-empty); *seed its value. A value that
 * is not a decimal integer is an error. */
lw_status lw_random_weights_mode(bool *on, uint64_t *seed);

/* The model lw_model_load gives in random mode: lw_model_init_random of cfg
 * with a seed drawn from seed and cfg->name, the embeddings rescaled to the
 * config's embed_rms (as the first block sees them) when it is set, and no
 * stop tokens. */
lw_status lw_random_model(const lw_model_config *cfg, uint64_t seed, lw_model **out);

/* LWC_IGNORE_STOP=1, or random mode: clears cfg's eos and stop ids. */
void lw_apply_ignore_stop(lw_model_config *cfg);

/* The byte tokenizer: encode maps each byte b to b + LW_BYTE_TOKEN_OFFSET
 * (no special tokens, add_special ignored); decode maps an id back to its
 * byte when that is printable ASCII or '\n', else to '?', one character per
 * id whatever the id, so a relay's text is as long as its tokens. */
lw_status lw_byte_tokenizer_load(lw_tokenizer **out);

/* Prints the warning (stderr, once per process). */
void lw_random_weights_warn(void);

#endif
