/* UTF-8 and Unicode class lookups for the tokenizers. */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

uint32_t lw_utf8_decode(const unsigned char *s, size_t len, size_t *adv)
{
    unsigned char c = s[0];
    *adv = 1;
    if (c < 0x80)
        return c;
    int need;
    uint32_t cp;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;       /* no overlong forms */
        if (c == 0xED) hi = 0x9F;       /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;       /* nothing above U+10FFFF */
    } else {
        return LW_UC_REPLACEMENT;       /* 0x80..0xC1, 0xF5..0xFF */
    }
    for (int i = 1; i <= need; i++) {
        unsigned char b = i < (int)len ? s[i] : 0;
        bool ok = i < (int)len && (i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF));
        if (!ok) {
            *adv = (size_t)i;           /* the maximal subpart: lead + good continuations */
            return LW_UC_REPLACEMENT;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    *adv = (size_t)need + 1;
    return cp;
}

int lw_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

lw_status lw_utf8_sanitize(const char *text, size_t len, char **out, size_t *out_len)
{
    /* each invalid byte becomes at most 3 bytes */
    if (len > (SIZE_MAX - 1) / 3)
        return lw_fail(LW_ERR_INVALID, "utf8: text of %zu bytes is too long", len);
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return lw_fail(LW_ERR_NOMEM, "utf8: out of memory for %zu bytes", len);
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t adv;
        uint32_t cp = lw_utf8_decode(s + i, len - i, &adv);
        if (cp == LW_UC_REPLACEMENT) { /* an invalid subpart, or U+FFFD itself: same bytes */
            n += (size_t)lw_utf8_encode(cp, buf + n);
        } else {
            memcpy(buf + n, s + i, adv);
            n += adv;
        }
        i += adv;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return LW_OK;
}

static bool in_ranges(const lw_uc_range *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid - 1;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool lw_uc_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(lw_uc_letter, lw_uc_letter_count, cp);
}

bool lw_uc_is_number(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    return in_ranges(lw_uc_number, lw_uc_number_count, cp);
}

bool lw_uc_is_space(uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return in_ranges(lw_uc_space, lw_uc_space_count, cp);
}
