/* The pre-tokenizer splits of byte-level BPE tokenizers, written out by hand
 * instead of with a regex library. Each kind cuts text into consecutive
 * pieces that cover it, as HF tokenizers' Split(..., Isolated) does with:
 *
 *   GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLAMA3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   QWEN2   as LLAMA3 with \p{N} (one number per piece)
 *   DIGITS      each numeric character alone (Digits individual_digits=true)
 *   DIGIT_RUNS  runs of numeric characters (Digits individual_digits=false)
 */
#ifndef LW_PRETOKENIZE_H
#define LW_PRETOKENIZE_H

#include <stddef.h>

typedef enum { LW_SPLIT_GPT2, LW_SPLIT_LLAMA3, LW_SPLIT_QWEN2, LW_SPLIT_DIGITS, LW_SPLIT_DIGIT_RUNS } lw_split_kind;

/* Byte length (>= 1) of the piece starting at text[pos]; text[pos..end) must
 * be valid UTF-8 and pos < end. Lookahead stops at end, as a regex run on
 * text[..end) alone would. */
size_t lw_split_next(lw_split_kind kind, const char *text, size_t pos, size_t end);

#endif
