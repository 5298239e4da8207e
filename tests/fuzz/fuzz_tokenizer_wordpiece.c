/* libFuzzer: BERT's WordPiece tokenizer (all-MiniLM-L6-v2's tokenizer.json,
 * if $LWC_SHARED has it) on arbitrary bytes. Encoding never fails on text:
 * [CLS] first, [SEP] last, every id in the vocabulary, at most three ids per
 * byte in between plus the specials written in the text; the ids decode. */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lw_tokenizer *minilm(void)
{
    static lw_tokenizer *tok;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *shared = getenv("LWC_SHARED");
        char path[4096];
        snprintf(path, sizeof path, "%s/models/minilm-l6-v2/tokenizer.json", shared ? shared : "/work/shared");
        if (lw_tokenizer_load(LW_TOKENIZER_WORDPIECE_JSON, path, &tok) != LW_OK)
            tok = NULL;
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    lw_tokenizer *tok = minilm();
    if (!tok)
        return 0;
    int *ids, n;
    if (lw_tokenizer_encode(tok, (const char *)data, size, true, &ids, &n) != LW_OK)
        abort();   /* any bytes are text: invalid UTF-8 is replaced, not refused */
    int cls = lw_tokenizer_bos_id(tok), sep = lw_tokenizer_eos_id(tok), V = lw_tokenizer_vocab_size(tok);
    if (n < 2 || ids[0] != cls || ids[n - 1] != sep || (size_t)n > 3 * size + 2)
        abort();
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            abort();
    char *text;
    if (lw_tokenizer_decode(tok, ids, n, &text) != LW_OK)
        abort();
    free(text);
    free(ids);
    return 0;
}
