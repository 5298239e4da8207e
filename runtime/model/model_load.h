/* Loading a model's weights from files (GGUF, safetensors, llama2.c,
 * through weights.h) into an lw_model. Apart from model.h so that what only
 * runs a model (forward, adapters, scoring) does not stand above the weight
 * readers. */
#ifndef LW_MODEL_LOAD_H
#define LW_MODEL_LOAD_H

#include "model.h"
#include "status.h"

/* Loads every tensor cfg describes from cfg->weights_path, checking shapes.
 * The config is copied; norm weights are brought to cfg->norm's convention
 * (llama.cpp stores Gemma's gains as 1 + w, Hugging Face as w). cfg->load
 * is not looked at: lw_config_load_model (random_weights.h) honours it. */
lw_status lw_model_load(const lw_model_config *cfg, lw_model **out);
/* Reads the config the file carries (lw_weights_read_config), then loads. */
lw_status lw_model_open(const char *path, lw_weights_format fmt, lw_model **out);

#endif
