/* GGUF reader. The whole header is walked once at open with a bounds-checked
 * cursor; afterwards every key and tensor carries pointers that are known to
 * lie inside the buffer, so the getters only check kinds and indices. */
#include "gguf.h"
#include "dequant.h"
#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { GGUF_MAX_NAME = 65535, GGUF_MAX_DEPTH = 8, GGUF_DEFAULT_ALIGNMENT = 32 };

typedef struct {
    char *key;               /* NUL-ended copy */
    uint32_t kind;
    const uint8_t *val;      /* scalar: the value; string: its u64 length; array: first element */
    uint32_t elem_kind;      /* arrays */
    uint64_t count;          /* arrays */
    size_t *str_off;         /* string arrays: offset of each element's length from val */
} gguf_kv;

struct lw_gguf {
    char *name;
    const uint8_t *data;
    size_t size;
    bool mapped;
    uint32_t version;
    gguf_kv *kv;
    size_t n_kv;
    lw_gguf_tensor *tensors;
    size_t n_tensors;
    size_t alignment;
    size_t data_offset;
};

typedef struct {
    const lw_gguf *g;
    size_t pos;
    const char *what;        /* what is being read, for messages */
} cursor;

/* --- bounds-checked reading ------------------------------------------------ */

static lw_status truncated(const cursor *c, size_t need)
{
    return lw_fail(LW_ERR_FORMAT, "%s: truncated GGUF: need %zu bytes at offset %zu for %s, file has %zu",
                   c->g->name, need, c->pos, c->what, c->g->size);
}

static lw_status too_many(const cursor *c, uint64_t count)
{
    return lw_fail(LW_ERR_FORMAT, "%s: truncated GGUF: %s claims %llu elements at offset %zu, file has %zu bytes",
                   c->g->name, c->what, (unsigned long long)count, c->pos, c->g->size);
}

static lw_status take(cursor *c, size_t n, const uint8_t **p)
{
    if (n > c->g->size - c->pos) return truncated(c, n);
    if (p) *p = c->g->data + c->pos;
    c->pos += n;
    return LW_OK;
}

static lw_status read_u32(cursor *c, uint32_t *v)
{
    const uint8_t *p = NULL;
    lw_status st = take(c, 4, &p);
    if (st) return st;
    memcpy(v, p, 4);
    return LW_OK;
}

static lw_status read_u64(cursor *c, uint64_t *v)
{
    const uint8_t *p = NULL;
    lw_status st = take(c, 8, &p);
    if (st) return st;
    memcpy(v, p, 8);
    return LW_OK;
}

/* A gguf_string (u64 length + bytes); *s points into the buffer. */
static lw_status read_str(cursor *c, const uint8_t **s, uint64_t *len)
{
    lw_status st = read_u64(c, len);
    if (st) return st;
    if (*len > c->g->size - c->pos) return truncated(c, *len > SIZE_MAX ? SIZE_MAX : (size_t)*len);
    return take(c, (size_t)*len, s);
}

static lw_status read_name(cursor *c, char **out)
{
    const uint8_t *s = NULL;
    uint64_t len = 0;
    lw_status st = read_str(c, &s, &len);
    if (st) return st;
    if (len > GGUF_MAX_NAME)
        return lw_fail(LW_ERR_FORMAT, "%s: %s is %llu bytes long (max %d)", c->g->name, c->what,
                       (unsigned long long)len, GGUF_MAX_NAME);
    char *n = malloc(len + 1);
    if (!n) return lw_fail(LW_ERR_NOMEM, "%s: out of memory reading %s", c->g->name, c->what);
    memcpy(n, s, len);
    n[len] = 0;
    *out = n;
    return LW_OK;
}

static size_t scalar_size(uint32_t kind)
{
    switch (kind) {
    case LW_GGUF_U8: case LW_GGUF_I8: case LW_GGUF_BOOL: return 1;
    case LW_GGUF_U16: case LW_GGUF_I16: return 2;
    case LW_GGUF_U32: case LW_GGUF_I32: case LW_GGUF_F32: return 4;
    case LW_GGUF_U64: case LW_GGUF_I64: case LW_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Skips one value of `kind` (used for nested array elements). */
static lw_status skip_value(cursor *c, uint32_t kind, int depth);

static lw_status skip_array(cursor *c, int depth)
{
    uint32_t ek = 0;
    uint64_t n = 0;
    lw_status st = read_u32(c, &ek);
    if (!st) st = read_u64(c, &n);
    if (st) return st;
    if (depth >= GGUF_MAX_DEPTH)
        return lw_fail(LW_ERR_FORMAT, "%s: %s: arrays nested deeper than %d", c->g->name, c->what,
                       GGUF_MAX_DEPTH);
    size_t es = scalar_size(ek);
    if (es) {
        if (n > (c->g->size - c->pos) / es) return too_many(c, n);
        return take(c, (size_t)n * es, NULL);
    }
    /* Every string or array element takes at least 8 bytes, so this loop is
     * bounded by the file size whatever n claims. */
    for (uint64_t i = 0; i < n; i++)
        if ((st = skip_value(c, ek, depth + 1))) return st;
    return LW_OK;
}

static lw_status skip_value(cursor *c, uint32_t kind, int depth)
{
    size_t es = scalar_size(kind);
    if (es) return take(c, es, NULL);
    if (kind == LW_GGUF_STRING) {
        const uint8_t *s = NULL;
        uint64_t len = 0;
        return read_str(c, &s, &len);
    }
    if (kind == LW_GGUF_ARRAY) return skip_array(c, depth);
    return lw_fail(LW_ERR_FORMAT, "%s: %s has unknown value kind %u", c->g->name, c->what, kind);
}

/* --- metadata -------------------------------------------------------------- */

static lw_status index_strings(cursor *c, gguf_kv *kv)
{
    if (kv->count > (c->g->size - c->pos) / 8) return too_many(c, kv->count);
    kv->str_off = malloc((kv->count ? kv->count : 1) * sizeof *kv->str_off);
    if (!kv->str_off) return lw_fail(LW_ERR_NOMEM, "%s: out of memory indexing %s", c->g->name, kv->key);
    size_t start = c->pos;
    for (uint64_t i = 0; i < kv->count; i++) {
        kv->str_off[i] = c->pos - start;
        const uint8_t *s = NULL;
        uint64_t len = 0;
        lw_status st = read_str(c, &s, &len);
        if (st) return st;
    }
    return LW_OK;
}

static lw_status read_kv(cursor *c, gguf_kv *kv, size_t index)
{
    c->what = "metadata key";
    lw_status st = read_name(c, &kv->key);
    if (!st) {
        c->what = kv->key;
        st = read_u32(c, &kv->kind);
    }
    if (st) return st;
    kv->val = c->g->data + c->pos;
    if (kv->kind != LW_GGUF_ARRAY) return skip_value(c, kv->kind, 0);

    if ((st = read_u32(c, &kv->elem_kind)) || (st = read_u64(c, &kv->count))) return st;
    kv->val = c->g->data + c->pos;
    size_t es = scalar_size(kv->elem_kind);
    if (es) {
        if (kv->count > (c->g->size - c->pos) / es) return too_many(c, kv->count);
        return take(c, (size_t)kv->count * es, NULL);
    }
    if (kv->elem_kind == LW_GGUF_STRING) return index_strings(c, kv);
    if (kv->elem_kind == LW_GGUF_ARRAY) {
        for (uint64_t i = 0; i < kv->count; i++)
            if ((st = skip_value(c, LW_GGUF_ARRAY, 1))) return st;
        return LW_OK;
    }
    return lw_fail(LW_ERR_FORMAT, "%s: array %s has unknown element kind %u", c->g->name, kv->key,
                   kv->elem_kind);
}

/* --- tensors --------------------------------------------------------------- */

static lw_status read_tensor_info(cursor *c, lw_gguf_tensor *t, size_t index)
{
    char *name = NULL;
    c->what = "tensor name";
    lw_status st = read_name(c, &name);
    if (st) return st;
    t->name = name;
    c->what = name;
    uint32_t nd = 0;
    if ((st = read_u32(c, &nd))) return st;
    if (nd < 1 || nd > LW_GGUF_MAX_DIMS)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s has %u dims (expected 1..%d)", c->g->name, name, nd,
                       LW_GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    int64_t n = 1;
    for (int d = 0; d < LW_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v = 0;
        if ((st = read_u64(c, &v))) return st;
        if (v == 0 || v > (uint64_t)INT64_MAX || (uint64_t)n > (uint64_t)INT64_MAX / v)
            return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: dim %u = %llu is zero or too large", c->g->name,
                           name, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
        n *= (int64_t)v;
    }
    t->n_elements = n;
    uint64_t off = 0;
    if ((st = read_u32(c, &t->type)) || (st = read_u64(c, &off))) return st;
    size_t be, bb;
    if (!lw_ggml_block_info(t->type, &be, &bb))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: tensor %s has unknown ggml type %u", c->g->name, name,
                       t->type);
    if (t->ne[0] % (int64_t)be != 0 || !lw_ggml_nbytes(t->type, n, &t->nbytes))
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: row length %lld is not a multiple of the %s block (%zu)",
                       c->g->name, name, (long long)t->ne[0], lw_ggml_type_name(t->type), be);
    /* Until the data offset is known, keep the relative offset in data. */
    if (off > SIZE_MAX)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: offset %llu too large", c->g->name, name,
                       (unsigned long long)off);
    t->data = (const void *)(uintptr_t)off;
    return LW_OK;
}

static const gguf_kv *find_kv(const lw_gguf *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static lw_status read_alignment(lw_gguf *g)
{
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = find_kv(g, "general.alignment");
    if (!kv) return LW_OK;
    uint32_t a = 0;
    if (kv->kind != LW_GGUF_U32)
        return lw_fail(LW_ERR_FORMAT, "%s: general.alignment has kind %u, expected u32", g->name, kv->kind);
    memcpy(&a, kv->val, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: general.alignment = %u is not a power of two", g->name, a);
    g->alignment = a;
    return LW_OK;
}

static int by_data(const void *a, const void *b)
{
    const lw_gguf_tensor *x = *(const lw_gguf_tensor *const *)a, *y = *(const lw_gguf_tensor *const *)b;
    uintptr_t p = (uintptr_t)x->data, q = (uintptr_t)y->data;
    if (p != q) return p < q ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* No two tensors may share data bytes (llama.cpp writes them one after the
 * other). Gaps stay allowed: alignment padding is one. */
static lw_status check_overlaps(const lw_gguf *g)
{
    if (g->n_tensors < 2) return LW_OK;
    const lw_gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
    if (!order) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", g->name);
    for (size_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, by_data);
    lw_status st = LW_OK;
    for (size_t i = 1; !st && i < g->n_tensors; i++) {
        const lw_gguf_tensor *a = order[i - 1], *b = order[i];
        size_t a_off = (size_t)((const uint8_t *)a->data - g->data - g->data_offset);
        size_t b_off = (size_t)((const uint8_t *)b->data - g->data - g->data_offset);
        if (b_off < a_off + a->nbytes)
            st = lw_fail(LW_ERR_FORMAT, "%s: tensors %s [%zu, +%zu) and %s [%zu, +%zu) overlap in the data "
                         "section (expected disjoint ranges)", g->name, a->name, a_off, a->nbytes, b->name, b_off,
                         b->nbytes);
    }
    free(order);
    return st;
}

static lw_status place_tensors(lw_gguf *g, size_t header_end)
{
    size_t a = g->alignment;
    if (header_end > SIZE_MAX - a) return lw_fail(LW_ERR_FORMAT, "%s: header too large", g->name);
    g->data_offset = (header_end + a - 1) / a * a;
    if (g->data_offset > g->size && g->n_tensors > 0)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor data would start at %zu, past the end of the file (%zu)",
                       g->name, g->data_offset, g->size);
    for (size_t i = 0; i < g->n_tensors; i++) {
        lw_gguf_tensor *t = &g->tensors[i];
        size_t off = (size_t)(uintptr_t)t->data;
        if (off % a != 0)
            return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: offset %zu is not aligned to %zu", g->name, t->name,
                           off, a);
        size_t room = g->size - g->data_offset;
        if (off > room || t->nbytes > room - off)
            return lw_fail(LW_ERR_FORMAT,
                           "%s: tensor %s: data [%zu, +%zu) runs past the end of the file (%zu bytes of data)",
                           g->name, t->name, off, t->nbytes, room);
        t->data = g->data + g->data_offset + off;
        for (size_t j = 0; j < i; j++)
            if (strcmp(g->tensors[j].name, t->name) == 0)
                return lw_fail(LW_ERR_FORMAT, "%s: tensor %s appears twice", g->name, t->name);
    }
    return check_overlaps(g);
}

static lw_status parse_header(lw_gguf *g)
{
    cursor c = {g, 0, "magic"};
    const uint8_t *magic = NULL;
    lw_status st = take(&c, 4, &magic);
    if (st) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: not a GGUF file (bad magic)", g->name);
    c.what = "version";
    if ((st = read_u32(&c, &g->version))) return st;
    if (g->version != 2 && g->version != 3)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (expected 2 or 3)", g->name,
                       g->version);
    uint64_t nt = 0, nkv = 0;
    c.what = "tensor count";
    if ((st = read_u64(&c, &nt))) return st;
    c.what = "metadata count";
    if ((st = read_u64(&c, &nkv))) return st;
    /* A key/value takes at least 8+4+1 bytes and a tensor info 8+4+8+4+8. */
    size_t left = g->size - c.pos;
    if (nkv > left / 13 || nt > left / 32)
        return lw_fail(LW_ERR_FORMAT, "%s: %llu tensors and %llu keys cannot fit in %zu bytes", g->name,
                       (unsigned long long)nt, (unsigned long long)nkv, g->size);
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", g->name);
    for (size_t i = 0; i < nkv; i++) {
        g->n_kv = i + 1;
        if ((st = read_kv(&c, &g->kv[i], i))) return st;
    }
    for (size_t i = 0; i < nt; i++) {
        g->n_tensors = i + 1;
        if ((st = read_tensor_info(&c, &g->tensors[i], i))) return st;
    }
    if ((st = read_alignment(g))) return st;
    return place_tensors(g, c.pos);
}

/* --- open / close ---------------------------------------------------------- */

static lw_status new_gguf(const char *name, lw_gguf **out)
{
    lw_gguf *g = calloc(1, sizeof *g);
    if (g) g->name = strdup(name ? name : "<memory>");
    if (!g || !g->name) {
        free(g);
        return lw_fail(LW_ERR_NOMEM, "out of memory opening %s", name ? name : "<memory>");
    }
    *out = g;
    return LW_OK;
}

lw_status lw_gguf_parse(const void *data, size_t size, const char *name, lw_gguf **out)
{
    *out = NULL;
    lw_gguf *g = NULL;
    lw_status st = new_gguf(name, &g);
    if (st) return st;
    g->data = data;
    g->size = size;
    if ((st = parse_header(g))) {
        lw_gguf_close(g);
        return st;
    }
    *out = g;
    return LW_OK;
}

lw_status lw_gguf_open(const char *path, lw_gguf **out)
{
    *out = NULL;
    const void *p;
    size_t size;
    lw_status st = lw_file_map_as(path, "a GGUF file", &p, &size);
    if (st) return st;
    lw_gguf *g = NULL;
    if ((st = lw_gguf_parse(p, size, path, &g))) {
        lw_file_unmap(p, size);
        return st;
    }
    g->mapped = true;
    *out = g;
    return LW_OK;
}

void lw_gguf_close(lw_gguf *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_off);
    }
    for (size_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    if (g->mapped) lw_file_unmap(g->data, g->size);
    free(g->name);
    free(g);
}

const char *lw_gguf_name(const lw_gguf *g) { return g->name; }
uint32_t lw_gguf_version(const lw_gguf *g) { return g->version; }
size_t lw_gguf_n_kv(const lw_gguf *g) { return g->n_kv; }
const char *lw_gguf_kv_key(const lw_gguf *g, size_t i) { return i < g->n_kv ? g->kv[i].key : NULL; }
size_t lw_gguf_n_tensors(const lw_gguf *g) { return g->n_tensors; }

const lw_gguf_tensor *lw_gguf_tensor_at(const lw_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const lw_gguf_tensor *lw_gguf_find_tensor(const lw_gguf *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

lw_status lw_gguf_get_tensor(const lw_gguf *g, const char *name, const lw_gguf_tensor **t)
{
    *t = lw_gguf_find_tensor(g, name);
    if (!*t) return lw_fail(LW_ERR_INVALID, "%s: no tensor named %s", g->name, name);
    return LW_OK;
}

/* --- getters --------------------------------------------------------------- */

static const char *kind_name(uint32_t k)
{
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                  "string", "array", "u64", "i64", "f64"};
    return k < LW_GGUF_KIND_COUNT ? names[k] : "unknown";
}

static lw_status lookup(const lw_gguf *g, const char *key, const gguf_kv **kv)
{
    *kv = find_kv(g, key);
    if (!*kv) return lw_fail(LW_ERR_INVALID, "%s: missing metadata key %s", g->name, key);
    return LW_OK;
}

static lw_status wrong_kind(const lw_gguf *g, const char *key, uint32_t kind, const char *expected)
{
    return lw_fail(LW_ERR_INVALID, "%s: metadata key %s has kind %s, expected %s", g->name, key,
                   kind_name(kind), expected);
}

/* Reads one integer-kind value at p; false if kind is not integral. */
static bool int_at(uint32_t kind, const uint8_t *p, int64_t *v, bool *overflow)
{
    *overflow = false;
    switch (kind) {
    case LW_GGUF_U8: *v = p[0]; return true;
    case LW_GGUF_BOOL: *v = p[0] != 0; return true;
    case LW_GGUF_I8: { int8_t x; memcpy(&x, p, 1); *v = x; return true; }
    case LW_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); *v = x; return true; }
    case LW_GGUF_I16: { int16_t x; memcpy(&x, p, 2); *v = x; return true; }
    case LW_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); *v = x; return true; }
    case LW_GGUF_I32: { int32_t x; memcpy(&x, p, 4); *v = x; return true; }
    case LW_GGUF_I64: { int64_t x; memcpy(&x, p, 8); *v = x; return true; }
    case LW_GGUF_U64: {
        uint64_t x;
        memcpy(&x, p, 8);
        *overflow = x > (uint64_t)INT64_MAX;
        *v = (int64_t)(x & (uint64_t)INT64_MAX);
        return true;
    }
    default: return false;
    }
}

static bool float_at(uint32_t kind, const uint8_t *p, double *v)
{
    if (kind == LW_GGUF_F32) { float x; memcpy(&x, p, 4); *v = x; return true; }
    if (kind == LW_GGUF_F64) { memcpy(v, p, 8); return true; }
    if (kind == LW_GGUF_U64) { uint64_t x; memcpy(&x, p, 8); *v = (double)x; return true; }
    int64_t i;
    bool ovf;
    if (!int_at(kind, p, &i, &ovf)) return false;
    *v = (double)i;
    return true;
}

bool lw_gguf_has(const lw_gguf *g, const char *key) { return find_kv(g, key) != NULL; }

lw_status lw_gguf_get_kind(const lw_gguf *g, const char *key, lw_gguf_kind *kind)
{
    const gguf_kv *kv;
    lw_status st = lookup(g, key, &kv);
    if (st) return st;
    *kind = (lw_gguf_kind)kv->kind;
    return LW_OK;
}

lw_status lw_gguf_get_string(const lw_gguf *g, const char *key, const char **s, size_t *len)
{
    const gguf_kv *kv;
    lw_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->kind != LW_GGUF_STRING) return wrong_kind(g, key, kv->kind, "string");
    uint64_t n = 0;
    memcpy(&n, kv->val, 8);
    *s = (const char *)kv->val + 8;
    *len = (size_t)n;
    return LW_OK;
}

lw_status lw_gguf_get_int(const lw_gguf *g, const char *key, int64_t *v)
{
    const gguf_kv *kv;
    lw_status st = lookup(g, key, &kv);
    if (st) return st;
    bool ovf;
    if (!int_at(kv->kind, kv->val, v, &ovf)) return wrong_kind(g, key, kv->kind, "an integer");
    if (ovf) return lw_fail(LW_ERR_INVALID, "%s: metadata key %s: u64 value exceeds INT64_MAX", g->name, key);
    return LW_OK;
}

lw_status lw_gguf_get_float(const lw_gguf *g, const char *key, double *v)
{
    const gguf_kv *kv;
    lw_status st = lookup(g, key, &kv);
    if (st) return st;
    if (!float_at(kv->kind, kv->val, v)) return wrong_kind(g, key, kv->kind, "a number");
    return LW_OK;
}

lw_status lw_gguf_get_bool(const lw_gguf *g, const char *key, bool *v)
{
    const gguf_kv *kv;
    lw_status st = lookup(g, key, &kv);
    if (st) return st;
    if (kv->kind != LW_GGUF_BOOL) return wrong_kind(g, key, kv->kind, "bool");
    *v = kv->val[0] != 0;
    return LW_OK;
}

static lw_status lookup_array(const lw_gguf *g, const char *key, const gguf_kv **kv)
{
    lw_status st = lookup(g, key, kv);
    if (st) return st;
    if ((*kv)->kind != LW_GGUF_ARRAY) return wrong_kind(g, key, (*kv)->kind, "array");
    return LW_OK;
}

static lw_status array_elem(const lw_gguf *g, const char *key, uint64_t i, const gguf_kv **kv)
{
    lw_status st = lookup_array(g, key, kv);
    if (st) return st;
    if (i >= (*kv)->count)
        return lw_fail(LW_ERR_INVALID, "%s: metadata array %s: index %llu out of range (length %llu)", g->name,
                       key, (unsigned long long)i, (unsigned long long)(*kv)->count);
    if ((*kv)->elem_kind == LW_GGUF_ARRAY)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: metadata array %s holds nested arrays", g->name, key);
    return LW_OK;
}

lw_status lw_gguf_get_array_len(const lw_gguf *g, const char *key, uint64_t *count)
{
    const gguf_kv *kv;
    lw_status st = lookup_array(g, key, &kv);
    if (st) return st;
    *count = kv->count;
    return LW_OK;
}

lw_status lw_gguf_get_array_kind(const lw_gguf *g, const char *key, lw_gguf_kind *elem_kind)
{
    const gguf_kv *kv;
    lw_status st = lookup_array(g, key, &kv);
    if (st) return st;
    *elem_kind = (lw_gguf_kind)kv->elem_kind;
    return LW_OK;
}

lw_status lw_gguf_get_array_string(const lw_gguf *g, const char *key, uint64_t i, const char **s, size_t *len)
{
    const gguf_kv *kv;
    lw_status st = array_elem(g, key, i, &kv);
    if (st) return st;
    if (kv->elem_kind != LW_GGUF_STRING) return wrong_kind(g, key, kv->elem_kind, "array of string");
    const uint8_t *p = kv->val + kv->str_off[i];
    uint64_t n = 0;
    memcpy(&n, p, 8);
    *s = (const char *)p + 8;
    *len = (size_t)n;
    return LW_OK;
}

lw_status lw_gguf_get_array_int(const lw_gguf *g, const char *key, uint64_t i, int64_t *v)
{
    const gguf_kv *kv;
    lw_status st = array_elem(g, key, i, &kv);
    if (st) return st;
    size_t es = scalar_size(kv->elem_kind);
    bool ovf;
    if (!es || !int_at(kv->elem_kind, kv->val + i * es, v, &ovf))
        return wrong_kind(g, key, kv->elem_kind, "array of integers");
    if (ovf)
        return lw_fail(LW_ERR_INVALID, "%s: metadata array %s[%llu]: u64 value exceeds INT64_MAX", g->name, key,
                       (unsigned long long)i);
    return LW_OK;
}

lw_status lw_gguf_get_array_float(const lw_gguf *g, const char *key, uint64_t i, double *v)
{
    const gguf_kv *kv;
    lw_status st = array_elem(g, key, i, &kv);
    if (st) return st;
    size_t es = scalar_size(kv->elem_kind);
    if (!es || !float_at(kv->elem_kind, kv->val + i * es, v))
        return wrong_kind(g, key, kv->elem_kind, "array of numbers");
    return LW_OK;
}
