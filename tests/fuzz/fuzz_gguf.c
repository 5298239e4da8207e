/* libFuzzer: the GGUF reader on arbitrary bytes. Whatever parses must be
 * safe to query: every key through every getter, every tensor dequantized
 * (the reader promised each tensor's bytes lie inside the buffer). */
#include "dequant.h"
#include "gguf.h"

#include <stdlib.h>

static void query_key(const lw_gguf *g, const char *key)
{
    const char *s;
    size_t len;
    int64_t i;
    double f;
    bool b;
    uint64_t n;
    lw_gguf_kind k;
    lw_gguf_get_kind(g, key, &k);
    lw_gguf_get_string(g, key, &s, &len);
    lw_gguf_get_int(g, key, &i);
    lw_gguf_get_float(g, key, &f);
    lw_gguf_get_bool(g, key, &b);
    if (lw_gguf_get_array_len(g, key, &n) != LW_OK) return;
    for (uint64_t e = 0; e < n && e < 64; e++) {
        lw_gguf_get_array_string(g, key, e, &s, &len);
        lw_gguf_get_array_int(g, key, e, &i);
        lw_gguf_get_array_float(g, key, e, &f);
    }
    lw_gguf_get_array_string(g, key, n, &s, &len);   /* one past the end */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lw_gguf *g;
    lw_fail(LW_OK, "%s", "");
    if (lw_gguf_parse(data, size, "fuzz.gguf", &g) != LW_OK) {
        if (lw_last_error()[0] == 0) abort();   /* every failure explains itself */
        return 0;
    }
    for (size_t i = 0; i < lw_gguf_n_kv(g); i++) query_key(g, lw_gguf_kv_key(g, i));
    query_key(g, "general.alignment");
    for (size_t i = 0; i < lw_gguf_n_tensors(g); i++) {
        const lw_gguf_tensor *t = lw_gguf_tensor_at(g, i);
        if (!lw_dequant_supported(t->type) || t->n_elements > (1 << 20)) continue;
        float *out = malloc((size_t)t->n_elements * sizeof *out);
        if (out) lw_dequantize(t->type, t->data, out, t->n_elements);
        free(out);
        (void)lw_gguf_find_tensor(g, t->name);
    }
    lw_gguf_close(g);
    return 0;
}
