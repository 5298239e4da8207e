/* UTF-8 decoding with Python's error replacement, and the Unicode classes
 * (letter, number, white space) that tokenizer pre-tokenizers match. */
#ifndef LW_UNICODE_H
#define LW_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

enum { LW_UC_REPLACEMENT = 0xFFFD };

typedef struct { uint32_t lo, hi; } lw_uc_range;

/* Decodes the code point at s (len > 0 bytes left) and stores its byte length
 * in *adv. An invalid sequence decodes to U+FFFD and *adv is the length of its
 * maximal invalid subpart, exactly as Python's bytes.decode('utf-8',
 * errors='replace') does, so both sides see the same text. */
uint32_t lw_utf8_decode(const unsigned char *s, size_t len, size_t *adv);

/* Writes cp (<= 0x10FFFF) as UTF-8 into out; returns 1..4. */
int lw_utf8_encode(uint32_t cp, char out[4]);

/* A copy of text where each invalid UTF-8 subpart is replaced by U+FFFD
 * (malloc'd, NUL-ended, length in *out_len). */
lw_status lw_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len);

bool lw_uc_is_letter(uint32_t cp); /* \p{L} */
bool lw_uc_is_number(uint32_t cp); /* \p{N} */
bool lw_uc_is_space(uint32_t cp);  /* \s: Unicode White_Space */

/* Generated tables (base/unicode_tables.c). */
extern const lw_uc_range lw_uc_letter[], lw_uc_number[], lw_uc_space[];
extern const int lw_uc_letter_count, lw_uc_number_count, lw_uc_space_count;

#endif
