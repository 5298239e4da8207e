/* The tokenizer front door: picks the implementation for a kind (and, for a
 * GGUF, for its tokenizer.ggml.model) and forwards calls through its ops. */
#include "tokenizer.h"
#include "tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

#include "gguf.h"

/* "gpt2" -> byte-level BPE, "llama" -> SentencePiece, as llama.cpp names them. */
static lw_status load_gguf(const char *path, lw_tokenizer *t)
{
    lw_gguf *g;
    lw_status st = lw_gguf_open(path, &g);
    if (st)
        return st;
    const char *model;
    size_t len;
    st = lw_gguf_get_string(g, "tokenizer.ggml.model", &model, &len);
    bool bpe = !st && len == 4 && memcmp(model, "gpt2", 4) == 0;
    bool spm = !st && len == 5 && memcmp(model, "llama", 5) == 0;
    if (!st && !bpe && !spm)
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (gpt2, llama are)",
                     path, (int)(len < 64 ? len : 64), model);
    lw_gguf_close(g);
    if (st)
        return st;
    return bpe ? lw_bpe_load_gguf(path, t) : lw_spm_load_gguf(path, t);
}

static lw_status load_kind(lw_tokenizer_kind kind, const char *path, lw_tokenizer *t)
{
    switch (kind) {
    case LW_TOKENIZER_BPE_JSON: return lw_bpe_load_json(path, t);
    case LW_TOKENIZER_SPM_JSON: return lw_spm_load_json(path, t);
    case LW_TOKENIZER_SPM_MODEL: return lw_spm_load_model(path, t);
    case LW_TOKENIZER_GGUF: return load_gguf(path, t);
    case LW_TOKENIZER_LLAMA2C: return lw_llama2c_tokenizer_load(path, t);
    case LW_TOKENIZER_GPT2_FILES: return lw_bpe_load_gpt2_files(path, t);
    case LW_TOKENIZER_WORDPIECE_JSON: return lw_wordpiece_load_json(path, t);
    }
    return lw_fail(LW_ERR_INVALID, "%s: unknown tokenizer kind %d", path, (int)kind);
}

lw_status lw_tokenizer_load(lw_tokenizer_kind kind, const char *path, lw_tokenizer **out)
{
    *out = NULL;
    lw_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return lw_fail(LW_ERR_NOMEM, "loading tokenizer %s: out of memory", path);
    t->bos_id = t->eos_id = -1;
    lw_status st = load_kind(kind, path, t);
    if (st) {
        if (t->ops && t->ops->free_impl)
            t->ops->free_impl(t->impl);
        free(t);
        return lw_fail_wrap(st, "loading %s tokenizer %s", lw_tokenizer_kind_name(kind), path);
    }
    *out = t;
    return LW_OK;
}

void lw_tokenizer_free(lw_tokenizer *t)
{
    if (!t)
        return;
    if (t->ops && t->ops->free_impl)
        t->ops->free_impl(t->impl);
    free(t);
}

lw_status lw_tokenizer_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                              int **ids, int *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!text && len)
        return lw_fail(LW_ERR_INVALID, "tokenizer encode: NULL text of %zu bytes", len);
    return t->ops->encode(t, text ? text : "", len, add_special, ids, n_ids);
}

lw_status lw_tokenizer_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    *text = NULL;
    if (n_ids < 0 || (!ids && n_ids))
        return lw_fail(LW_ERR_INVALID, "tokenizer decode: bad id list (%d ids)", n_ids);
    return t->ops->decode(t, ids, n_ids, text);
}

int lw_tokenizer_vocab_size(const lw_tokenizer *t) { return t->vocab_size; }
int lw_tokenizer_piece_id(const lw_tokenizer *t, const char *piece) { return t->ops->piece_id(t, piece); }
int lw_tokenizer_bos_id(const lw_tokenizer *t) { return t->bos_id; }
int lw_tokenizer_eos_id(const lw_tokenizer *t) { return t->eos_id; }
