/* Hand-written matchers for the pre-tokenizer regexes (see pretokenize.h).
 * Each alternative is tried in the regex's order at the current position;
 * the first that matches gives the piece, as a backtracking engine would. */
#include "pretokenize.h"

#include <stdbool.h>
#include <stdint.h>

#include "unicode.h"

enum { NONE = 0xFFFFFFFFu }; /* "code point" past the end of the text */

typedef struct {
    const unsigned char *s;
    size_t end;
} span;

static uint32_t cp_at(const span *t, size_t pos, size_t *len)
{
    if (pos >= t->end) {
        *len = 0;
        return NONE;
    }
    return lw_utf8_decode(t->s + pos, t->end - pos, len);
}

static bool is_l(uint32_t c) { return c != NONE && lw_uc_is_letter(c); }
static bool is_n(uint32_t c) { return c != NONE && lw_uc_is_number(c); }
static bool is_s(uint32_t c) { return c != NONE && lw_uc_is_space(c); }
static bool is_other(uint32_t c) { return c != NONE && !is_l(c) && !is_n(c) && !is_s(c); }
static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

/* End of the run of code points from pos that satisfy pred. */
static size_t run_end(const span *t, size_t pos, bool (*pred)(uint32_t))
{
    size_t len;
    uint32_t c;
    while ((c = cp_at(t, pos, &len)) != NONE && pred(c))
        pos += len;
    return pos;
}

/* 's 't 're 've 'm 'll 'd at pos (pos holds '\''); 0 if none. fold: (?i). */
static size_t contraction(const span *t, size_t pos, bool fold)
{
    size_t l1, l2;
    uint32_t a = cp_at(t, pos + 1, &l1);
    uint32_t b = l1 ? cp_at(t, pos + 1 + l1, &l2) : NONE;
    if (fold) {
        if (a == 0x17F) /* LATIN SMALL LETTER LONG S folds to s */
            return 1 + l1;
        if (a < 0x80) a |= 0x20;
        if (b < 0x80) b |= 0x20;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S) then \s+, at pos holding white space. */
static size_t spaces(const span *t, size_t pos)
{
    size_t end = run_end(t, pos, is_s);
    if (end == t->end)
        return end - pos;
    /* followed by non-space: give back the last white space, if any is left */
    size_t last = pos, len;
    for (size_t p = pos; p < end; p += len) {
        cp_at(t, p, &len);
        last = p;
    }
    return last > pos ? last - pos : end - pos;
}

static size_t gpt2(const span *t, size_t pos)
{
    size_t len, len2;
    uint32_t c = cp_at(t, pos, &len);
    if (c == '\'') {
        size_t n = contraction(t, pos, false);
        if (n)
            return n;
    }
    size_t start = pos; /* the optional leading ' ' */
    uint32_t d = c;
    if (c == ' ') {
        d = cp_at(t, pos + 1, &len2);
        if (is_l(d) || is_n(d) || is_other(d))
            pos += 1;
        else
            d = c;
    }
    if (is_l(d))
        return run_end(t, pos, is_l) - start;
    if (is_n(d))
        return run_end(t, pos, is_n) - start;
    if (is_other(d))
        return run_end(t, pos, is_other) - start;
    return spaces(t, start);
}

static bool not_crlf_l_n(uint32_t c) { return c != NONE && !is_crlf(c) && !is_l(c) && !is_n(c); }

static size_t llama3(const span *t, size_t pos, int max_digits)
{
    size_t len, len2;
    uint32_t c = cp_at(t, pos, &len);
    if (c == '\'') {
        size_t n = contraction(t, pos, true);
        if (n)
            return n;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (is_l(c))
        return run_end(t, pos, is_l) - pos;
    if (not_crlf_l_n(c) && is_l(cp_at(t, pos + len, &len2)))
        return run_end(t, pos + len, is_l) - pos;
    /* \p{N}{1,max_digits} */
    if (is_n(c)) {
        size_t p = pos;
        for (int i = 0; i < max_digits && is_n(cp_at(t, p, &len2)); i++)
            p += len2;
        return p - pos;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t p = pos;
    if (c == ' ' && is_other(cp_at(t, pos + 1, &len2)))
        p += 1;
    if (is_other(cp_at(t, p, &len2))) {
        p = run_end(t, p, is_other);
        return run_end(t, p, is_crlf) - pos;
    }
    /* \s*[\r\n]+ : up to and including the last CR/LF of the white space run */
    size_t end = run_end(t, pos, is_s), after_crlf = 0;
    for (size_t q = pos; q < end; q += len2)
        if (is_crlf(cp_at(t, q, &len2)))
            after_crlf = q + len2;
    if (after_crlf)
        return after_crlf - pos;
    return spaces(t, pos);
}

static bool not_number(uint32_t c) { return c != NONE && !is_n(c); }

static size_t digits(const span *t, size_t pos, bool individual)
{
    size_t len;
    uint32_t c = cp_at(t, pos, &len);
    if (is_n(c))
        return individual ? len : run_end(t, pos, is_n) - pos;
    return run_end(t, pos, not_number) - pos;
}

size_t lw_split_next(lw_split_kind kind, const char *text, size_t pos, size_t end)
{
    span t = {(const unsigned char *)text, end};
    size_t n = 0;
    switch (kind) {
    case LW_SPLIT_GPT2: n = gpt2(&t, pos); break;
    case LW_SPLIT_LLAMA3: n = llama3(&t, pos, 3); break;
    case LW_SPLIT_QWEN2: n = llama3(&t, pos, 1); break;
    case LW_SPLIT_DIGITS: n = digits(&t, pos, true); break;
    case LW_SPLIT_DIGIT_RUNS: n = digits(&t, pos, false); break;
    }
    if (n == 0) { /* cannot happen for valid UTF-8; never loop forever */
        size_t len;
        cp_at(&t, pos, &len);
        n = len ? len : 1;
    }
    return n;
}
