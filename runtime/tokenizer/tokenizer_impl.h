/* Internal: what each tokenizer implementation provides to tokenizer.c, which
 * dispatches on the kind (and, for GGUF, on tokenizer.ggml.model). */
#ifndef LW_TOKENIZER_IMPL_H
#define LW_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* The handle tokenizer.h hands out; its layout is defined here, for the
 * implementations below tokenizer.c (which includes this header, not the
 * other way round). */
typedef struct lw_tokenizer lw_tokenizer;

typedef struct {
    lw_status (*encode)(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                        int **ids, int *n_ids);
    lw_status (*decode)(const lw_tokenizer *t, const int *ids, int n_ids, char **text);
    int (*piece_id)(const lw_tokenizer *t, const char *piece);
    void (*free_impl)(void *impl);
} lw_tokenizer_ops;

struct lw_tokenizer {
    const lw_tokenizer_ops *ops;
    void *impl;
    int vocab_size;
    int bos_id, eos_id;
};

/* Byte-level BPE (tokenizer_bpe.c). */
lw_status lw_bpe_load_json(const char *path, lw_tokenizer *t);
lw_status lw_bpe_load_gpt2_files(const char *dir, lw_tokenizer *t);
lw_status lw_bpe_load_gguf(const char *path, lw_tokenizer *t);

/* SentencePiece BPE with byte fallback (tokenizer_spm.c). */
lw_status lw_spm_load_json(const char *path, lw_tokenizer *t);
lw_status lw_spm_load_model(const char *path, lw_tokenizer *t);
lw_status lw_spm_load_gguf(const char *path, lw_tokenizer *t);

/* llama2.c tokenizer.bin (tokenizer_llama2c.c). */
lw_status lw_llama2c_tokenizer_load(const char *path, lw_tokenizer *t);

/* WordPiece with BertNormalizer/BertPreTokenizer, HF tokenizer.json
 * (tokenizer_wordpiece.c). */
lw_status lw_wordpiece_load_json(const char *path, lw_tokenizer *t);

#endif
