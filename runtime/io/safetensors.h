/* safetensors reader: one .safetensors file, a sharded
 * model.safetensors.index.json (weight_map), or a directory holding either.
 * Hugging Face llama/mistral/gemma3 names are mapped onto the canonical GGUF
 * names (see lw_hf_to_canonical); Gemma norm weights get +1 so that they are
 * stored as llama.cpp's converter stores them in GGUF (1 + w). */
#ifndef LW_SAFETENSORS_H
#define LW_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>

#include "dequant.h"
#include "model_config.h"
#include "status.h"

typedef struct lw_safetensors lw_safetensors;

lw_status lw_safetensors_open(const char *path, lw_safetensors **out);
/* One safetensors file image held by the caller (the fuzzer). */
lw_status lw_safetensors_parse(const void *data, size_t size, const char *name, lw_safetensors **out);
void lw_safetensors_close(lw_safetensors *s);

size_t lw_safetensors_n_tensors(const lw_safetensors *s);
const lw_raw_tensor *lw_safetensors_tensor_at(const lw_safetensors *s, size_t i);
const lw_raw_tensor *lw_safetensors_find(const lw_safetensors *s, const char *canonical); /* NULL if absent */

/* Checks the data_offsets of every entry of a safetensors header (all of
 * them, not only those a caller will ask for) against a data section of
 * data_size bytes: each is two integers with 0 <= begin <= end <= data_size,
 * and sorted by begin no two ranges overlap. The message names the file, the
 * tensor(s) and what was expected. Used by this reader and the strict F32
 * checkpoint reader (checkpoint.c). */
struct json_t;
lw_status lw_safetensors_check_offsets(const char *path, struct json_t *header, size_t data_size);

/* Reads config.json beside the weights (Hugging Face names). */
lw_status lw_safetensors_read_config(const lw_safetensors *s, lw_model_config *m);

/* Maps a Hugging Face tensor name to its canonical GGUF name; false for names
 * it does not know (they are kept under their own name). Gemma's
 * post_attention_layernorm is a post-norm (post_attention_norm), Llama's is
 * the pre-FFN norm (ffn_norm), hence the flag. */
bool lw_hf_to_canonical(const char *hf, bool gemma, char *out, size_t cap);

#endif
