/* Tokenizers in C, ids identical to Hugging Face's: byte-level BPE
 * (tokenizer.json, GPT-2 encoder.json + vocab.bpe, GGUF "gpt2" metadata),
 * SentencePiece BPE with byte fallback (tokenizer.json, tokenizer.model,
 * GGUF "llama" metadata) and the llama2.c tokenizer.bin. */
#ifndef LW_TOKENIZER_H
#define LW_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>

#include "model_config.h"
#include "status.h"

typedef struct lw_tokenizer lw_tokenizer;

/* kind as in the manifest; path is the tokenizer file (or the GGUF, or for
 * LW_TOKENIZER_GPT2_FILES the folder holding encoder.json and vocab.bpe). */
lw_status lw_tokenizer_load(lw_tokenizer_kind kind, const char *path, lw_tokenizer **out);
void lw_tokenizer_free(lw_tokenizer *t);

/* Encodes len bytes of text (any bytes, invalid UTF-8 included) to ids.
 * Special/added tokens written in the text are matched as HF does.
 * add_special: add what HF's encode(add_special_tokens=True) adds (BOS for
 * Llama 2/Gemma; nothing for GPT-2/SmolLM2). *ids is malloc'd. */
lw_status lw_tokenizer_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                              int **ids, int *n_ids);

/* Decodes ids to UTF-8 text (malloc'd, NUL-ended), as HF decode with
 * skip_special_tokens=False. */
lw_status lw_tokenizer_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text);

int lw_tokenizer_vocab_size(const lw_tokenizer *t);
/* id of an exact piece / special token string, or -1. */
int lw_tokenizer_piece_id(const lw_tokenizer *t, const char *piece);
int lw_tokenizer_bos_id(const lw_tokenizer *t);   /* -1 if none */
int lw_tokenizer_eos_id(const lw_tokenizer *t);

#endif
