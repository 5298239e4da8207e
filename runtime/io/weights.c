/* runtime/io/weights.h over the three loaders. Each loader exposes its tensors
 * as lw_raw_tensor views under canonical names; this file converts them. */
#include "weights.h"
#include "dequant.h"
#include "family.h"
#include "gguf.h"
#include "llama2c_checkpoint.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lw_weights {
    char *path;
    lw_weights_format fmt;
    lw_gguf *gguf;
    lw_llama2c *l2c;
    lw_safetensors *st;
};

lw_status lw_weights_open(const char *path, lw_weights_format fmt, lw_weights **out)
{
    *out = NULL;
    lw_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return lw_fail(LW_ERR_NOMEM, "out of memory opening %s", path);
    }
    w->fmt = fmt;
    lw_status st;
    switch (fmt) {
    case LW_WEIGHTS_GGUF: st = lw_gguf_open(path, &w->gguf); break;
    case LW_WEIGHTS_LLAMA2C: st = lw_llama2c_open(path, &w->l2c); break;
    case LW_WEIGHTS_SAFETENSORS: st = lw_safetensors_open(path, &w->st); break;
    default: st = lw_fail(LW_ERR_INVALID, "%s: unknown weights format %d", path, (int)fmt);
    }
    if (st) {
        lw_weights_close(w);
        return st;
    }
    *out = w;
    return LW_OK;
}

void lw_weights_close(lw_weights *w)
{
    if (!w) return;
    lw_gguf_close(w->gguf);
    lw_llama2c_close(w->l2c);
    lw_safetensors_close(w->st);
    free(w->path);
    free(w);
}

const char *lw_weights_path(const lw_weights *w) { return w->path; }

/* --- tensor lookup --------------------------------------------------------- */

static void from_gguf(const lw_gguf_tensor *g, lw_raw_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->name = g->name;
    t->type = g->type;
    t->ndim = g->ndim;
    for (int d = 0; d < g->ndim; d++) t->shape[d] = g->ne[g->ndim - 1 - d];
    t->n_elements = g->n_elements;
    t->data = g->data;
    t->nbytes = g->nbytes;
}

static bool find(const lw_weights *w, const char *name, lw_raw_tensor *t)
{
    const lw_raw_tensor *r = NULL;
    if (w->gguf) {
        const lw_gguf_tensor *g = lw_gguf_find_tensor(w->gguf, name);
        if (g) from_gguf(g, t);
        return g != NULL;
    }
    if (w->l2c) r = lw_llama2c_find(w->l2c, name);
    if (w->st) r = lw_safetensors_find(w->st, name);
    if (r) *t = *r;
    return r != NULL;
}

static lw_status lookup(const lw_weights *w, const char *name, lw_raw_tensor *t)
{
    if (!find(w, name, t)) return lw_fail(LW_ERR_INVALID, "%s: no tensor named %s", w->path, name);
    return LW_OK;
}

lw_status lw_weights_raw(const lw_weights *w, const char *name, lw_raw_tensor *t) { return lookup(w, name, t); }

size_t lw_weights_n_tensors(const lw_weights *w)
{
    if (w->gguf) return lw_gguf_n_tensors(w->gguf);
    if (w->l2c) return lw_llama2c_n_tensors(w->l2c);
    return lw_safetensors_n_tensors(w->st);
}

const char *lw_weights_tensor_name(const lw_weights *w, size_t i)
{
    if (i >= lw_weights_n_tensors(w)) return NULL;
    if (w->gguf) return lw_gguf_tensor_at(w->gguf, i)->name;
    if (w->l2c) return lw_llama2c_tensor_at(w->l2c, i)->name;
    return lw_safetensors_tensor_at(w->st, i)->name;
}

bool lw_weights_has(const lw_weights *w, const char *name)
{
    lw_raw_tensor t;
    return find(w, name, &t);
}

static void fill_info(const lw_raw_tensor *t, lw_tensor_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->ndim = t->ndim;
    for (int d = 0; d < t->ndim && d < LW_MAX_DIMS; d++) info->shape[d] = t->shape[d];
    info->dtype = lw_ggml_type_name(t->type);
}

lw_status lw_weights_info(const lw_weights *w, const char *name, lw_tensor_info *info)
{
    lw_raw_tensor t;
    lw_status st = lookup(w, name, &t);
    if (st) return st;
    fill_info(&t, info);
    return LW_OK;
}

/* --- conversion ------------------------------------------------------------ */

/* Converts n elements starting at element `first` (a multiple of the block
 * size) of t into dst, then applies t->add. */
static lw_status convert(const lw_weights *w, const lw_raw_tensor *t, int64_t first, int64_t n, float *dst)
{
    size_t skip, len;
    if (!lw_ggml_nbytes(t->type, first, &skip) || !lw_ggml_nbytes(t->type, n, &len) || skip > t->nbytes ||
        len > t->nbytes - skip)
        return lw_fail(LW_ERR_INVALID, "%s: tensor %s: cannot read elements [%lld, +%lld) of type %s", w->path,
                       t->name, (long long)first, (long long)n,
                       lw_ggml_type_name(t->type) ? lw_ggml_type_name(t->type) : "unknown");
    lw_status st = lw_dequantize(t->type, (const uint8_t *)t->data + skip, dst, n);
    if (st) return lw_fail_wrap(st, "%s: tensor %s", w->path, t->name);
    if (t->add != 0)
        for (int64_t i = 0; i < n; i++) dst[i] += t->add;
    return LW_OK;
}

static lw_status alloc_floats(const lw_weights *w, const char *name, int64_t n, float **out)
{
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float))
        return lw_fail(LW_ERR_INVALID, "%s: tensor %s: %lld elements is too many", w->path, name, (long long)n);
    *out = malloc(n ? (size_t)n * sizeof(float) : 1);
    if (!*out)
        return lw_fail(LW_ERR_NOMEM, "%s: tensor %s: out of memory for %lld floats", w->path, name, (long long)n);
    return LW_OK;
}

lw_status lw_weights_get_f32(const lw_weights *w, const char *name, float **out, lw_tensor_info *info)
{
    *out = NULL;
    lw_raw_tensor t;
    lw_status st = lookup(w, name, &t);
    if (st) return st;
    float *buf;
    if ((st = alloc_floats(w, name, t.n_elements, &buf))) return st;
    if ((st = convert(w, &t, 0, t.n_elements, buf))) {
        free(buf);
        return st;
    }
    fill_info(&t, info);
    *out = buf;
    return LW_OK;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

lw_status lw_weights_get_f32_shaped(const lw_weights *w, const char *name, float **out, int64_t d0, int64_t d1)
{
    *out = NULL;
    lw_raw_tensor t;
    lw_status st = lookup(w, name, &t);
    if (st) return st;
    int64_t want[2] = {d0, d1};
    int want_nd = d1 ? 2 : 1;
    if (t.ndim != want_nd || t.shape[0] != d0 || (want_nd == 2 && t.shape[1] != d1)) {
        char a[96], b[96];
        shape_str(want, want_nd, a, sizeof a);
        shape_str(t.shape, t.ndim, b, sizeof b);
        return lw_fail(LW_ERR_INVALID, "%s: tensor %s has shape %s, expected %s", w->path, name, b, a);
    }
    return lw_weights_get_f32(w, name, out, NULL);
}

lw_status lw_weights_get_rows(const lw_weights *w, const char *name, int64_t row, int64_t n_rows, float *dst)
{
    lw_raw_tensor t;
    lw_status st = lookup(w, name, &t);
    if (st) return st;
    int64_t rows = t.shape[0], cols = t.n_elements / (rows ? rows : 1);
    if (row < 0 || n_rows < 0 || row > rows || n_rows > rows - row)
        return lw_fail(LW_ERR_INVALID, "%s: tensor %s: rows [%lld, +%lld) out of range (%lld rows)", w->path,
                       name, (long long)row, (long long)n_rows, (long long)rows);
    return convert(w, &t, row * cols, n_rows * cols, dst);
}

lw_status lw_weights_embed_rms(const lw_weights *w, const lw_model_config *m, float *rms)
{
    const char *name = "token_embd.weight";
    lw_raw_tensor t;
    lw_status st = lookup(w, name, &t);
    if (st) return st;
    enum { CHUNK = 64 };
    int64_t rows = t.shape[0], cols = t.n_elements / (rows ? rows : 1);
    float *buf;
    if ((st = alloc_floats(w, name, CHUNK * cols, &buf))) return st;
    double sum = 0;
    for (int64_t r = 0; r < rows; r += CHUNK) {
        int64_t n = rows - r < CHUNK ? rows - r : CHUNK;
        if ((st = convert(w, &t, r * cols, n * cols, buf))) break;
        for (int64_t i = 0; i < n * cols; i++) sum += (double)buf[i] * buf[i];
    }
    free(buf);
    if (st) return st;
    double v = t.n_elements ? sqrt(sum / (double)t.n_elements) : 0;
    if (m->scale_embeddings) v *= sqrt((double)m->hidden);
    *rms = (float)v;
    return LW_OK;
}

/* --- configuration --------------------------------------------------------- */

/* An integer key that must fit in int; absent -> *v = dflt. */
static lw_status gguf_int(const lw_gguf *g, const char *arch, const char *key, int dflt, int *v)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s%s", arch ? arch : "", arch ? "." : "", key);
    if (!lw_gguf_has(g, full)) {
        if (dflt == INT32_MIN) return lw_fail(LW_ERR_INVALID, "%s: missing metadata key %s", lw_gguf_name(g), full);
        *v = dflt;
        return LW_OK;
    }
    int64_t x;
    lw_status st = lw_gguf_get_int(g, full, &x);
    if (st) return st;
    if (x < INT32_MIN + 1 || x > INT32_MAX)
        return lw_fail(LW_ERR_INVALID, "%s: metadata key %s = %lld is out of range", lw_gguf_name(g), full,
                       (long long)x);
    *v = (int)x;
    return LW_OK;
}

static lw_status gguf_float(const lw_gguf *g, const char *arch, const char *key, float dflt, float *v)
{
    char full[160];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!lw_gguf_has(g, full)) {
        *v = dflt;
        return LW_OK;
    }
    double x;
    lw_status st = lw_gguf_get_float(g, full, &x);
    if (!st) *v = (float)x;
    return st;
}

static bool str_is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Extra end-of-turn tokens named in the vocabulary. */
static void gguf_stop_ids(const lw_gguf *g, lw_model_config *m)
{
    static const char *stops[] = {"<|im_end|>", "<end_of_turn>", "<|eot_id|>"};
    const char *key = "tokenizer.ggml.tokens";
    uint64_t n;
    lw_gguf_kind kind;
    if (m->n_stop_ids != 0 || lw_gguf_get_array_len(g, key, &n) || lw_gguf_get_array_kind(g, key, &kind) ||
        kind != LW_GGUF_STRING)
        return;
    for (uint64_t i = 0; i < n && i < INT32_MAX && m->n_stop_ids < LW_MAX_SPECIAL; i++) {
        const char *s;
        size_t len;
        lw_gguf_get_array_string(g, key, i, &s, &len);
        for (size_t k = 0; k < sizeof stops / sizeof stops[0]; k++)
            if (str_is(s, len, stops[k])) m->stop_ids[m->n_stop_ids++] = (int)i;
    }
}

static lw_status gguf_rope_scaling(const lw_gguf *g, const char *arch, lw_model_config *m)
{
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *type;
    size_t len;
    m->rope_scaling.kind = LW_ROPE_SCALING_NONE;
    if (!lw_gguf_has(g, key)) return LW_OK;
    lw_status st = lw_gguf_get_string(g, key, &type, &len);
    if (st) return st;
    if (str_is(type, len, "none")) return LW_OK;
    if (str_is(type, len, "linear")) m->rope_scaling.kind = LW_ROPE_SCALING_LINEAR;
    else if (str_is(type, len, "llama3")) m->rope_scaling.kind = LW_ROPE_SCALING_LLAMA3;
    else
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s = '%.*s' is not supported (none, linear, llama3)",
                       lw_gguf_name(g), key, (int)(len > 64 ? 64 : len), type);
    if ((st = gguf_float(g, arch, "rope.scaling.factor", 1.0f, &m->rope_scaling.factor))) return st;
    return gguf_int(g, arch, "rope.scaling.original_context_length", 0, &m->rope_scaling.original_context);
}

static lw_status gguf_config(const lw_weights *w, lw_model_config *m)
{
    const lw_gguf *g = w->gguf;
    const char *archs;
    size_t alen;
    lw_status st = lw_gguf_get_string(g, "general.architecture", &archs, &alen);
    if (st) return st;
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(alen < 63 ? alen : 63), archs);
    const lw_family_info *family = lw_family_by_gguf_arch(arch);
    if (!family) {
        char known[256];
        lw_family_list(LW_FAMILY_NAMES_GGUF, known, sizeof known);
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: general.architecture '%s' is not supported (%s)", w->path, arch,
                       known);
    }
    /* GGUF holds Gemma's norm gains as 1 + w already (the converter adds the 1) */
    lw_family_defaults(m, family, LW_FAMILY_AS_LOADED);
    const int REQUIRED = INT32_MIN;
    if ((st = gguf_int(g, arch, "embedding_length", REQUIRED, &m->hidden)) ||
        (st = gguf_int(g, arch, "block_count", REQUIRED, &m->n_layers)) ||
        (st = gguf_int(g, arch, "attention.head_count", REQUIRED, &m->n_heads)) ||
        (st = gguf_int(g, arch, "attention.head_count_kv", m->n_heads, &m->n_kv_heads)) ||
        (st = gguf_int(g, arch, "feed_forward_length", REQUIRED, &m->ffn)) ||
        (st = gguf_int(g, arch, "context_length", 2048, &m->context)) ||
        (st = gguf_int(g, arch, "attention.sliding_window", m->sliding_window, &m->sliding_window)))
        return st;
    if (m->hidden <= 0 || m->n_layers <= 0 || m->n_heads <= 0 || m->n_kv_heads <= 0 || m->ffn <= 0)
        return lw_fail(LW_ERR_INVALID, "%s: %s dims must be positive (hidden %d, layers %d, heads %d/%d, ffn %d)",
                       w->path, arch, m->hidden, m->n_layers, m->n_heads, m->n_kv_heads, m->ffn);
    if ((st = gguf_int(g, arch, "attention.key_length", m->hidden / m->n_heads, &m->head_dim)) ||
        (st = gguf_float(g, arch, "rope.freq_base", 10000.0f, &m->rope_base)) ||
        (st = gguf_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &m->norm_eps)) ||
        (st = gguf_rope_scaling(g, arch, m)))
        return st;
    /* Gemma 3's local base is fixed by the architecture, not stored; a
     * family without local layers ignores a window key. */
    m->rope_base_local = lw_family_local_base(family, m->rope_base);
    if (family->global_every == 0) m->sliding_window = 0;

    char key[96];
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    if (lw_gguf_has(g, key)) {
        if ((st = gguf_int(g, arch, "vocab_size", 0, &m->vocab))) return st;
    } else {
        uint64_t n;
        if ((st = lw_gguf_get_array_len(g, "tokenizer.ggml.tokens", &n))) return st;
        if (n > INT32_MAX) return lw_fail(LW_ERR_INVALID, "%s: %llu tokens is too many", w->path,
                                          (unsigned long long)n);
        m->vocab = (int)n;
    }
    if ((st = gguf_int(g, NULL, "tokenizer.ggml.bos_token_id", -1, &m->bos_id)) ||
        (st = gguf_int(g, NULL, "tokenizer.ggml.eos_token_id", -1, &m->eos_id)) ||
        (st = gguf_int(g, NULL, "tokenizer.ggml.padding_token_id", -1, &m->pad_id)))
        return st;
    gguf_stop_ids(g, m);
    m->tied_embeddings = !lw_gguf_find_tensor(g, "output.weight");
    return LW_OK;
}

static lw_status llama2c_config(const lw_weights *w, lw_model_config *m)
{
    const lw_llama2c_header *h = lw_llama2c_header_of(w->l2c);
    lw_family_defaults(m, lw_family_get(LW_FAMILY_LLAMA2C), LW_FAMILY_AS_LOADED);
    m->hidden = h->dim;
    m->n_layers = h->n_layers;
    m->n_heads = h->n_heads;
    m->n_kv_heads = h->n_kv_heads;
    m->head_dim = h->dim / h->n_heads;
    m->ffn = h->hidden_dim;
    m->vocab = h->vocab_size;
    m->context = h->seq_len;
    m->tied_embeddings = h->shared_classifier;
    /* run.c hard-codes these. */
    m->norm_eps = 1e-5f;
    m->rope_base = m->rope_base_local = 10000.0f;
    m->rope_scaling.kind = LW_ROPE_SCALING_NONE;
    m->sliding_window = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    return LW_OK;
}

lw_status lw_weights_read_config(const lw_weights *w, lw_model_config *m)
{
    lw_status st;
    if (w->gguf) st = gguf_config(w, m);
    else if (w->l2c) st = llama2c_config(w, m);
    else st = lw_safetensors_read_config(w->st, m);
    if (!st) m->weights_format = w->fmt;
    return st;
}
