/* Random weights of a manifest's shapes, for timing where the model files
 * cannot go (a device machine gets the working tree, not models/).
 *
 *   LWC_RANDOM_WEIGHTS=<seed> lw bench ...
 *
 * The command layer reads the variable, once (lw_load_options_from_env,
 * lw_cli.h), and sets cfg->load on the pair's model configs; nothing below
 * it reads the environment. With cfg->load.random_weights set,
 * lw_config_load_model draws seeded random weights of the config's shapes
 * instead of reading weights_path, and lw_config_load_tokenizer returns the
 * byte tokenizer (tokenizer_bytes.h) instead of reading the tokenizer file.
 * Both say so on stderr, once per process: the outputs are meaningless, only
 * the work (shapes, token counts) is real. The loaded models carry no stop
 * tokens (eos_id = -1, n_stop_ids = 0), so generation always runs to its
 * max_new tokens: random weights would stop at a random step.
 * cfg->load.ignore_stop (LWC_IGNORE_STOP=1) does that last part alone, with
 * the real weights.
 *
 * Also here: lw_model_init_random, the seeded in-memory model of tests and
 * synthetic training runs that random mode builds on. */
#ifndef LW_RANDOM_WEIGHTS_H
#define LW_RANDOM_WEIGHTS_H

#include <stdint.h>

#include "model.h"
#include "model_load.h"
#include "status.h"
#include "tokenizer.h"
#include "tokenizer_bytes.h"

/* A model with seeded random weights in memory (tests, synthetic training):
 * projections normal(0, 1/sqrt(in)), embeddings normal(0, 1), norm gains
 * 1 + normal(0, 0.1) in cfg->norm's convention; weights_path is not read.
 * Freed with lw_model_free. */
lw_status lw_model_init_random(const lw_model_config *cfg, uint64_t seed, lw_model **out);

/* The model of random mode: lw_model_init_random of cfg with a seed drawn
 * from seed and cfg->name, the embeddings rescaled to the config's embed_rms
 * (as the first block sees them) when it is set, and no stop tokens. */
lw_status lw_random_model(const lw_model_config *cfg, uint64_t seed, lw_model **out);

/* The model cfg names, as cfg->load says: lw_model_load of its files, or
 * lw_random_model of cfg->load.seed; without stop tokens when
 * cfg->load.ignore_stop is set; with its narrow matrices alone (fp32 freed)
 * when cfg->load.dtype is bf16, q8 or native (narrow_weights.h; native
 * needs the file, so random weights refuse it). */
lw_status lw_config_load_model(const lw_model_config *cfg, lw_model **out);

/* The tokenizer cfg names, as cfg->load says: lw_tokenizer_load of its
 * kind and path, or the byte tokenizer. */
lw_status lw_config_load_tokenizer(const lw_model_config *cfg, lw_tokenizer **out);

#endif
