/* libFuzzer: SentencePiece BPE (Gemma 3's GGUF tokenizer, if $LWC_MODELS has
 * it) and the llama2.c tokenizer (tok512.bin, if $LWC_SHARED has it) on
 * arbitrary bytes. Gemma must decode what it encodes back to the UTF-8-
 * repaired text (unless the text itself holds "▁" or NUL); llama2.c must give
 * back " " + the raw bytes, as run.c does. */
#include "tokenizer.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_tokenizer *load_once(lw_tokenizer_kind kind, const char *env, const char *dflt, const char *rel,
                               lw_tokenizer **slot, int *tried)
{
    if (!*tried) {
        *tried = 1;
        const char *base = getenv(env);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", base && *base ? base : dflt, rel);
        if (lw_tokenizer_load(kind, path, slot) != LW_OK)
            *slot = NULL;
    }
    return *slot;
}

static void check_gemma(const unsigned char *data, size_t size)
{
    static lw_tokenizer *tok;
    static int tried;
    if (!load_once(LW_TOKENIZER_GGUF, "LWC_MODELS", "/work/main/models", "gemma-3-270m-q4_k_m.gguf", &tok, &tried))
        return;
    char *clean;
    size_t len;
    int *ids, n_ids;
    if (lw_utf8_sanitize((const char *)data, size, &clean, &len) != LW_OK)
        return;
    if (lw_tokenizer_encode(tok, (const char *)data, size, true, &ids, &n_ids) == LW_OK) {
        char *text;
        if (n_ids < 1 || ids[0] != lw_tokenizer_bos_id(tok))
            abort();
        if (lw_tokenizer_decode(tok, ids + 1, n_ids - 1, &text) == LW_OK) {
            if (!memchr(clean, 0, len) && !memmem(clean, len, "\xE2\x96\x81", 3) && strcmp(text, clean) != 0)
                abort();
            free(text);
        }
        free(ids);
    }
    free(clean);
}

static void check_llama2c(const unsigned char *data, size_t size)
{
    static lw_tokenizer *tok;
    static int tried;
    if (!load_once(LW_TOKENIZER_LLAMA2C, "LWC_SHARED", "/work/shared", "models/stories260k/tok512.bin", &tok, &tried))
        return;
    int *ids, n_ids;
    if (lw_tokenizer_encode(tok, (const char *)data, size, false, &ids, &n_ids) != LW_OK)
        return;
    char *text;
    if (lw_tokenizer_decode(tok, ids, n_ids, &text) == LW_OK) {
        if (size > 0 && !memchr(data, 0, size) &&
            (strlen(text) != size + 1 || text[0] != ' ' || memcmp(text + 1, data, size) != 0))
            abort();
        free(text);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    check_gemma(data, size);
    check_llama2c(data, size);
    return 0;
}
