/* Internal: the byte-level BPE model that tokenizer_bpe_load.c fills from
 * tokenizer.json, GPT-2's encoder.json + vocab.bpe or GGUF metadata. */
#ifndef LW_TOKENIZER_BPE_H
#define LW_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>

#include "pretokenize.h"
#include "tokenizer_impl.h"

typedef struct lw_bpe lw_bpe;

enum { LW_BPE_MAX_IDS = 1 << 24, LW_BPE_MAX_SPLITS = 4 };

/* An added token: matched in the raw text before pre-tokenization. */
typedef struct {
    bool special, lstrip, rstrip, single_word;
} lw_bpe_added_flags;

/* Ids run over [0, n_ids); merges get ranks 0, 1, ... in the order added. */
lw_status lw_bpe_new(int n_ids, int n_merges, const char *name, lw_bpe **out);
void lw_bpe_free(lw_bpe *b);

/* Vocabulary piece (in byte-level form, "Ġthe") for an id. */
lw_status lw_bpe_set_piece(lw_bpe *b, int id, const char *s, size_t len);
/* The next merge (rank = number added so far); a and b must be pieces and
 * so must their concatenation. */
lw_status lw_bpe_add_merge(lw_bpe *b, const char *left, size_t left_len, const char *right,
                           size_t right_len);
lw_status lw_bpe_add_token(lw_bpe *b, int id, const char *s, size_t len, lw_bpe_added_flags flags);
lw_status lw_bpe_add_split(lw_bpe *b, lw_split_kind kind);
/* id of a piece, or -1. */
int lw_bpe_find(const lw_bpe *b, const char *s, size_t len);
void lw_bpe_set_ignore_merges(lw_bpe *b, bool on);
void lw_bpe_set_unk(lw_bpe *b, int id);
/* What encode(add_special=true) puts around the ids (-1 = nothing). */
void lw_bpe_set_specials(lw_bpe *b, int prefix_id, int suffix_id);

/* Checks the model is usable and hands it to t (t owns it from then on,
 * also on failure). */
lw_status lw_bpe_install(lw_bpe *b, lw_tokenizer *t, int bos_id, int eos_id);

#endif
