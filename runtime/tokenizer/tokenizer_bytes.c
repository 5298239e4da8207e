/* The byte tokenizer of LWC_RANDOM_WEIGHTS (random_weights.h): a stand-in
 * for timing when the real tokenizer file is not on the machine. */
#include "tokenizer_bytes.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

static lw_status byte_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special, int **ids,
                             int *n_ids)
{
    if (len > (size_t)1 << 30) return lw_fail(LW_ERR_INVALID, "byte tokenizer: %zu bytes of text", len);
    int *p = malloc((len ? len : 1) * sizeof *p);
    if (!p) return lw_fail(LW_ERR_NOMEM, "byte tokenizer: out of memory");
    for (size_t i = 0; i < len; i++) p[i] = (unsigned char)text[i] + LW_BYTE_TOKEN_OFFSET;
    *ids = p;
    *n_ids = (int)len;
    return LW_OK;
}

static lw_status byte_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    char *s = malloc((size_t)n_ids + 1);
    if (!s) return lw_fail(LW_ERR_NOMEM, "byte tokenizer: out of memory");
    for (int i = 0; i < n_ids; i++) {
        int b = ids[i] - LW_BYTE_TOKEN_OFFSET;
        s[i] = (b >= 32 && b < 127) || b == '\n' ? (char)b : '?';
    }
    s[n_ids] = 0;
    *text = s;
    return LW_OK;
}

static int byte_piece_id(const lw_tokenizer *t, const char *piece)
{
    return piece[0] && !piece[1] ? (unsigned char)piece[0] + LW_BYTE_TOKEN_OFFSET : -1;
}

void lw_random_weights_warn(void)
{
    static bool said;
    if (said) return;
    said = true;
    fprintf(stderr, "lw: LWC_RANDOM_WEIGHTS is set: random weights and a byte tokenizer, no stop tokens: "
                    "for timing only (outputs and accuracies are meaningless)\n");
}

static const lw_tokenizer_ops byte_ops = {byte_encode, byte_decode, byte_piece_id, NULL};

lw_status lw_byte_tokenizer_load(lw_tokenizer **out)
{
    *out = NULL;
    lw_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lw_fail(LW_ERR_NOMEM, "byte tokenizer: out of memory");
    lw_random_weights_warn();
    t->ops = &byte_ops;
    t->vocab_size = LW_BYTE_TOKENIZER_VOCAB;
    t->bos_id = t->eos_id = -1;
    *out = t;
    return LW_OK;
}
