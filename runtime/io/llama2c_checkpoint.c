/* llama2.c legacy checkpoint reader. The header is validated and the total
 * weight count computed with overflow checks before any tensor is placed. */
#include "llama2c_checkpoint.h"
#include "dequant.h"
#include "fileutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HEADER_BYTES = 7 * 4, NAME_CAP = 48 };

struct lw_llama2c {
    char *name;
    const uint8_t *data;
    size_t size;
    bool mapped;
    lw_llama2c_header h;
    lw_raw_tensor *tensors;
    char (*names)[NAME_CAP];
    size_t n_tensors;
};

/* a * b, false on overflow or negative operands. */
static bool mul_ok(int64_t a, int64_t b, int64_t *r)
{
    if (a < 0 || b < 0 || (a != 0 && b > INT64_MAX / a)) return false;
    *r = a * b;
    return true;
}

static lw_status check_header(const lw_llama2c *c)
{
    const lw_llama2c_header *h = &c->h;
    if (h->dim <= 0 || h->hidden_dim <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv_heads <= 0 ||
        h->vocab_size <= 0 || h->seq_len <= 0)
        return lw_fail(LW_ERR_FORMAT, "%s: llama2.c header has a non-positive field (dim %d, hidden_dim %d, "
                       "n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d)", c->name, h->dim,
                       h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab_size, h->seq_len);
    if (h->dim % h->n_heads != 0 || h->n_kv_heads > h->n_heads || h->n_heads % h->n_kv_heads != 0 ||
        (h->dim / h->n_heads) % 2 != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: llama2.c header: dim %d, n_heads %d, n_kv_heads %d do not divide",
                       c->name, h->dim, h->n_heads, h->n_kv_heads);
    return LW_OK;
}

/* Appends a tensor of `rows` x `cols` fp32 (cols == 0: 1-D) at float offset
 * *pos, advancing it; fails if it runs past the file. */
static lw_status place(lw_llama2c *c, const char *name, int64_t rows, int64_t cols, int64_t *pos)
{
    int64_t n = 0;
    int64_t avail = (int64_t)((c->size - HEADER_BYTES) / 4);
    if (!mul_ok(rows, cols ? cols : 1, &n) || n > avail || *pos > avail - n)
        return lw_fail(LW_ERR_FORMAT, "%s: llama2.c checkpoint is truncated: tensor %s needs floats [%lld, +%lld) "
                       "but the file holds %lld", c->name, name, (long long)*pos, (long long)n, (long long)avail);
    if (name) {
        lw_raw_tensor *t = &c->tensors[c->n_tensors];
        snprintf(c->names[c->n_tensors], NAME_CAP, "%s", name);
        t->name = c->names[c->n_tensors];
        t->type = LW_GGML_F32;
        t->ndim = cols ? 2 : 1;
        t->shape[0] = rows;
        t->shape[1] = cols;
        t->n_elements = n;
        t->data = c->data + HEADER_BYTES + (size_t)*pos * 4;
        t->nbytes = (size_t)n * 4;
        t->add = 0;
        c->n_tensors++;
    }
    *pos += n;
    return LW_OK;
}

/* The per-layer stacks in file order, with their canonical names and shapes. */
static lw_status place_layer_stack(lw_llama2c *c, const char *suffix, int64_t rows, int64_t cols, int64_t *pos)
{
    char name[NAME_CAP];
    for (int l = 0; l < c->h.n_layers; l++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix);
        lw_status st = place(c, name, rows, cols, pos);
        if (st) return st;
    }
    return LW_OK;
}

static lw_status place_all(lw_llama2c *c)
{
    const lw_llama2c_header *h = &c->h;
    int64_t dim = h->dim, hid = h->hidden_dim, head = h->dim / h->n_heads;
    int64_t kv = (int64_t)h->n_kv_heads * head, pos = 0;
    lw_status st;
    if ((st = place(c, "token_embd.weight", h->vocab_size, dim, &pos)) ||
        (st = place_layer_stack(c, "attn_norm", dim, 0, &pos)) ||
        (st = place_layer_stack(c, "attn_q", dim, dim, &pos)) ||
        (st = place_layer_stack(c, "attn_k", kv, dim, &pos)) ||
        (st = place_layer_stack(c, "attn_v", kv, dim, &pos)) ||
        (st = place_layer_stack(c, "attn_output", dim, dim, &pos)) ||
        (st = place_layer_stack(c, "ffn_norm", dim, 0, &pos)) ||
        (st = place_layer_stack(c, "ffn_gate", hid, dim, &pos)) ||
        (st = place_layer_stack(c, "ffn_down", dim, hid, &pos)) ||
        (st = place_layer_stack(c, "ffn_up", hid, dim, &pos)) ||
        (st = place(c, "output_norm.weight", dim, 0, &pos)) ||
        (st = place(c, NULL, h->seq_len, head, &pos)))   /* freq_cis_real, imag: unused */
        return st;
    if (!h->shared_classifier) return place(c, "output.weight", h->vocab_size, dim, &pos);
    return LW_OK;
}

lw_status lw_llama2c_parse(const void *data, size_t size, const char *name, lw_llama2c **out)
{
    *out = NULL;
    lw_llama2c *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name ? name : "<memory>"))) {
        free(c);
        return lw_fail(LW_ERR_NOMEM, "out of memory opening %s", name ? name : "<memory>");
    }
    c->data = data;
    c->size = size;
    lw_status st = LW_OK;
    if (size < HEADER_BYTES) {
        st = lw_fail(LW_ERR_FORMAT, "%s: llama2.c checkpoint is truncated: %zu bytes, header needs %d", c->name,
                     size, HEADER_BYTES);
        goto fail;
    }
    int32_t f[7];
    memcpy(f, data, sizeof f);
    c->h = (lw_llama2c_header){f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[5] > 0};
    if (f[5] < 0 && f[5] != INT32_MIN) c->h.vocab_size = -f[5];
    if ((st = check_header(c))) goto fail;
    size_t cap = 12 + 9 * (size_t)c->h.n_layers;
    if ((size_t)c->h.n_layers > (size - HEADER_BYTES) / 4) {
        st = lw_fail(LW_ERR_FORMAT, "%s: llama2.c checkpoint: %d layers cannot fit in %zu bytes", c->name,
                     c->h.n_layers, size);
        goto fail;
    }
    c->tensors = calloc(cap, sizeof *c->tensors);
    c->names = calloc(cap, sizeof *c->names);
    if (!c->tensors || !c->names) {
        st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", c->name);
        goto fail;
    }
    if ((st = place_all(c))) goto fail;
    *out = c;
    return LW_OK;
fail:
    lw_llama2c_close(c);
    return st;
}

lw_status lw_llama2c_open(const char *path, lw_llama2c **out)
{
    *out = NULL;
    const void *p;
    size_t size;
    lw_status st = lw_file_map(path, &p, &size);
    if (st) return st;
    lw_llama2c *c = NULL;
    if ((st = lw_llama2c_parse(p, size, path, &c))) {
        lw_file_unmap(p, size);
        return st;
    }
    c->mapped = true;
    *out = c;
    return LW_OK;
}

void lw_llama2c_close(lw_llama2c *c)
{
    if (!c) return;
    if (c->mapped) lw_file_unmap(c->data, c->size);
    free(c->tensors);
    free(c->names);
    free(c->name);
    free(c);
}

const lw_llama2c_header *lw_llama2c_header_of(const lw_llama2c *c) { return &c->h; }
size_t lw_llama2c_n_tensors(const lw_llama2c *c) { return c->n_tensors; }

const lw_raw_tensor *lw_llama2c_tensor_at(const lw_llama2c *c, size_t i)
{
    return i < c->n_tensors ? &c->tensors[i] : NULL;
}

const lw_raw_tensor *lw_llama2c_find(const lw_llama2c *c, const char *name)
{
    for (size_t i = 0; i < c->n_tensors; i++)
        if (strcmp(c->tensors[i].name, name) == 0) return &c->tensors[i];
    return NULL;
}
