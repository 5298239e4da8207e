/* libFuzzer: byte-level BPE on arbitrary bytes. The UTF-8 repair must give
 * valid UTF-8, every pre-tokenizer split must cover the text with non-empty
 * pieces, and SmolLM2's tokenizer (if $LWC_SHARED has it) must decode what it
 * encodes back to the repaired text, less the bytes its vocabulary lacks
 * (HF drops those too: SmolLM2 has no piece for 0x04, 0x16, 0xF1, ...). */
#include "pretokenize.h"
#include "tokenizer.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_tokenizer *smollm2(void)
{
    static lw_tokenizer *tok;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *shared = getenv("LWC_SHARED");
        char path[4096];
        snprintf(path, sizeof path, "%s/models/smollm2-135m-instruct/tokenizer.json",
                 shared ? shared : "/work/shared");
        if (lw_tokenizer_load(LW_TOKENIZER_BPE_JSON, path, &tok) != LW_OK)
            tok = NULL;
    }
    return tok;
}

/* Whether the vocabulary has GPT-2's one-character piece for byte c. */
static int has_byte(const lw_tokenizer *tok, unsigned char c)
{
    static int known[256];
    if (!known[c]) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174, extra = 0;
        for (int b = 0; b < c; b++)
            extra += !((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174);
        char piece[5] = {0};
        lw_utf8_encode(printable ? c : 256u + (unsigned)extra, piece);
        known[c] = lw_tokenizer_piece_id(tok, piece) >= 0 ? 1 : 2;
    }
    return known[c] == 1;
}

/* The repaired text as the tokenizer can represent it. */
static char *representable(const lw_tokenizer *tok, const char *clean, size_t len)
{
    char *kept = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (has_byte(tok, (unsigned char)clean[i]))
            kept[n++] = clean[i];
    kept[n] = '\0';
    char *out;
    size_t out_len;
    lw_status st = lw_utf8_sanitize(kept, n, &out, &out_len); /* decode is lossy, too */
    free(kept);
    return st == LW_OK ? out : NULL;
}

static void check_splits(const char *text, size_t len)
{
    for (int k = LW_SPLIT_GPT2; k <= LW_SPLIT_DIGIT_RUNS; k++) {
        for (size_t pos = 0; pos < len;) {
            size_t n = lw_split_next((lw_split_kind)k, text, pos, len);
            if (n == 0 || n > len - pos)
                abort();
            pos += n;
        }
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *clean;
    size_t len;
    if (lw_utf8_sanitize((const char *)data, size, &clean, &len) != LW_OK)
        return 0;
    for (size_t i = 0, adv; i < len; i += adv)
        if (lw_utf8_decode((const unsigned char *)clean + i, len - i, &adv) == LW_UC_REPLACEMENT &&
            (adv != 3 || memcmp(clean + i, "\xef\xbf\xbd", 3) != 0))
            abort(); /* the repair left invalid UTF-8 */
    check_splits(clean, len);
    lw_tokenizer *tok = smollm2();
    int *ids, n_ids;
    if (tok && lw_tokenizer_encode(tok, (const char *)data, size, false, &ids, &n_ids) == LW_OK) {
        char *text;
        if (lw_tokenizer_decode(tok, ids, n_ids, &text) == LW_OK) {
            char *want = representable(tok, clean, len);
            if (want && !memchr(clean, 0, len) && strcmp(text, want) != 0)
                abort();
            free(want);
            free(text);
        }
        free(ids);
    }
    free(clean);
    return 0;
}
