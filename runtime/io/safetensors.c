/* safetensors reader. A file is an 8-byte little-endian header length, a
 * JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}},
 * then the data; every offset is checked against the data size and against
 * dtype x shape before a tensor view is made. */
#include "safetensors.h"
#include "family.h"
#include "jsonerr.h"
#include "dequant.h"
#include "fileutil.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { ST_NAME_CAP = 256 };

typedef struct {
    char *path;
    const uint8_t *data;
    size_t size;
    bool mapped;
} shard;

struct lw_safetensors {
    char *name;              /* the path given to open */
    char *dir;               /* where config.json would be */
    shard *shards;
    size_t n_shards;
    lw_raw_tensor *tensors;  /* names: malloc'd canonical names */
    char **hf_names;
    size_t n_tensors, cap;
};

/* --- name mapping ---------------------------------------------------------- */

typedef struct {
    const char *hf, *canonical;
} name_pair;

static const name_pair layer_names[] = {
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"input_layernorm.weight", "attn_norm.weight"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
};

static const char *strip_prefix(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

bool lw_hf_to_canonical(const char *hf, bool gemma, char *out, size_t cap)
{
    const char *s;
    /* Multimodal Gemma 3 checkpoints nest the text model. */
    if ((s = strip_prefix(hf, "language_model."))) hf = s;
    char buf[ST_NAME_CAP];
    if ((s = strip_prefix(hf, "model.language_model."))) {
        snprintf(buf, sizeof buf, "model.%s", s);
        hf = buf;
    }
    const char *top = NULL;
    if (strcmp(hf, "model.embed_tokens.weight") == 0) top = "token_embd.weight";
    else if (strcmp(hf, "model.norm.weight") == 0) top = "output_norm.weight";
    else if (strcmp(hf, "lm_head.weight") == 0) top = "output.weight";
    if (top) return snprintf(out, cap, "%s", top) < (int)cap;

    if (!(s = strip_prefix(hf, "model.layers."))) return false;
    char *end;
    long layer = strtol(s, &end, 10);
    if (end == s || *end != '.' || layer < 0 || layer > INT_MAX || (s[0] == '0' && end - s > 1)) return false;
    const char *rest = end + 1;
    const char *canon = NULL;
    if (strcmp(rest, "post_attention_layernorm.weight") == 0)
        canon = gemma ? "post_attention_norm.weight" : "ffn_norm.weight";
    for (size_t i = 0; !canon && i < sizeof layer_names / sizeof layer_names[0]; i++)
        if (strcmp(rest, layer_names[i].hf) == 0) canon = layer_names[i].canonical;
    if (!canon) return false;
    int n = snprintf(out, cap, "blk.%ld.%s", layer, canon);
    return n > 0 && (size_t)n < cap;
}

/* --- one file -------------------------------------------------------------- */

static bool dtype_of(const char *s, uint32_t *type, size_t *elem)
{
    if (strcmp(s, "F32") == 0) { *type = LW_GGML_F32; *elem = 4; return true; }
    if (strcmp(s, "F16") == 0) { *type = LW_GGML_F16; *elem = 2; return true; }
    if (strcmp(s, "BF16") == 0) { *type = LW_GGML_BF16; *elem = 2; return true; }
    return false;
}

static lw_status add_tensor(lw_safetensors *s, const char *hf, const lw_raw_tensor *t)
{
    if (s->n_tensors == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        lw_raw_tensor *nt = realloc(s->tensors, cap * sizeof *nt);
        if (nt) s->tensors = nt;
        char **nn = nt ? realloc(s->hf_names, cap * sizeof *nn) : NULL;
        if (nn) s->hf_names = nn;
        if (!nt || !nn) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", s->name);
        s->cap = cap;
    }
    char *name = strdup(hf);
    if (!name) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", s->name);
    s->hf_names[s->n_tensors] = name;
    s->tensors[s->n_tensors] = *t;
    s->tensors[s->n_tensors].name = NULL;
    s->n_tensors++;
    return LW_OK;
}

static lw_status bad_entry(const shard *f, const char *tensor, const char *what)
{
    return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: %s", f->path, tensor, what);
}

/* Checks one header entry and fills *t (data pointer into the shard). */
static lw_status read_entry(const shard *f, const char *key, json_t *v, const uint8_t *data, size_t data_size,
                            lw_raw_tensor *t, bool *skip)
{
    *skip = false;
    memset(t, 0, sizeof *t);
    if (!json_is_object(v)) return bad_entry(f, key, "header entry is not an object");
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
        return bad_entry(f, key, "expected dtype (string), shape (array) and data_offsets ([begin, end])");
    size_t elem;
    if (!dtype_of(json_string_value(dt), &t->type, &elem)) {
        *skip = true;   /* integer buffers and the like: not weights */
        return LW_OK;
    }
    size_t nd = json_array_size(shape);
    if (nd > 4) return bad_entry(f, key, "more than 4 dims");
    t->ndim = (int)nd;
    int64_t n = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *x = json_array_get(shape, d);
        json_int_t v = json_is_integer(x) ? json_integer_value(x) : -1;
        if (v < 0 || (v > 0 && n > INT64_MAX / v)) return bad_entry(f, key, "shape entry is not a valid size");
        t->shape[d] = v;
        n *= v;
    }
    t->n_elements = n;
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    json_int_t begin = json_is_integer(b) ? json_integer_value(b) : -1;
    json_int_t end = json_is_integer(e) ? json_integer_value(e) : -1;
    if (begin < 0 || end < begin || (uint64_t)end > data_size) {
        char msg[160];
        snprintf(msg, sizeof msg, "data_offsets [%lld, %lld] out of range (data is %zu bytes)", (long long)begin,
                 (long long)end, data_size);
        return bad_entry(f, key, msg);
    }
    if ((uint64_t)n > SIZE_MAX / elem || (uint64_t)(end - begin) != (uint64_t)n * elem) {
        char msg[160];
        snprintf(msg, sizeof msg, "data_offsets span %lld bytes, but dtype and shape need %lld",
                 (long long)(end - begin), (long long)n * (long long)elem);
        return bad_entry(f, key, msg);
    }
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    return LW_OK;
}

/* --- data_offsets of the whole header ---------------------------------------- */

typedef struct {
    const char *name;
    uint64_t begin, end;
} st_range;

static int range_cmp(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* What the file holds for data_offsets, as one-line ASCII JSON cut to fit. */
static void dump_offsets(const json_t *offs, char *buf, size_t cap)
{
    char *text = offs ? json_dumps(offs, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    snprintf(buf, cap, "%s", text ? text : "(missing)");
    if (text && strlen(text) >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
    free(text);
}

/* Rules as the safetensors reference implementation, except for gaps: it
 * also refuses bytes that no tensor covers, but a gap cannot make one tensor
 * read another's bytes, and weights converted by other tools than the
 * safetensors library are not known to be gapless, so gaps (and trailing
 * bytes) stay allowed. Overlaps are refused: no writer produces them, and a
 * checkpoint whose tensors alias each other is corrupt. */
lw_status lw_safetensors_check_offsets(const char *path, json_t *header, size_t data_size)
{
    size_t n = json_object_size(header), k = 0;
    st_range *r = calloc(n ? n : 1, sizeof *r);
    if (!r) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    lw_status st = LW_OK;
    const char *key;
    json_t *v;
    json_object_foreach(header, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        json_t *offs = json_is_object(v) ? json_object_get(v, "data_offsets") : NULL;
        json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
        if (!json_is_object(v)) {
            st = lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\": header entry is not an object", path, key);
            break;
        }
        if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
            json_integer_value(b) < 0 || json_integer_value(e) < 0) {
            char held[80];
            dump_offsets(offs, held, sizeof held);
            st = lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\": data_offsets is %s, expected two non-negative "
                         "integers [begin, end]", path, key, held);
            break;
        }
        uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
        if (end < begin || end > data_size) {
            st = lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu, %llu] %s the %zu data bytes "
                         "(expected begin <= end <= %zu; truncated?)", path, key, (unsigned long long)begin,
                         (unsigned long long)end, end < begin ? "run backwards in" : "run past", data_size,
                         data_size);
            break;
        }
        r[k++] = (st_range){key, begin, end};
    }
    if (!st) qsort(r, k, sizeof *r, range_cmp);
    for (size_t i = 1; !st && i < k; i++)
        if (r[i].begin < r[i - 1].end)
            st = lw_fail(LW_ERR_FORMAT, "%s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] overlap in the "
                         "data section (expected disjoint data_offsets)", path, r[i - 1].name,
                         (unsigned long long)r[i - 1].begin, (unsigned long long)r[i - 1].end, r[i].name,
                         (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
    free(r);
    return st;
}

static lw_status parse_shard(lw_safetensors *s, const shard *f)
{
    uint64_t hlen;
    if (f->size < 8) return lw_fail(LW_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes)", f->path, f->size);
    memcpy(&hlen, f->data, 8);
    if (hlen > f->size - 8)
        return lw_fail(LW_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", f->path,
                       (unsigned long long)hlen, f->size);
    json_error_t err;
    json_t *root = json_loadb((const char *)f->data + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root) return lw_fail(LW_ERR_FORMAT, "%s: bad header JSON at byte %d: %s", f->path, err.position,
                               lw_json_error(&err));
    lw_status st = LW_OK;
    if (!json_is_object(root)) st = lw_fail(LW_ERR_FORMAT, "%s: header JSON is not an object", f->path);
    const uint8_t *data = f->data + 8 + hlen;
    size_t data_size = f->size - 8 - (size_t)hlen;
    if (!st) st = lw_safetensors_check_offsets(f->path, root, data_size);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (st) break;
        if (strcmp(key, "__metadata__") == 0) continue;
        lw_raw_tensor t;
        bool skip;
        if (!(st = read_entry(f, key, v, data, data_size, &t, &skip)) && !skip) st = add_tensor(s, key, &t);
    }
    json_decref(root);
    return st;
}

/* --- opening --------------------------------------------------------------- */

static lw_status add_shard(lw_safetensors *s, const char *path, const void *data, size_t size, bool map)
{
    shard *ns = realloc(s->shards, (s->n_shards + 1) * sizeof *ns);
    if (!ns) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    s->shards = ns;
    shard *f = &s->shards[s->n_shards];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    s->n_shards++;
    lw_status st = LW_OK;
    if (map) {
        if ((st = lw_file_map(path, (const void **)&f->data, &f->size))) return st;
        f->mapped = true;
    } else {
        f->data = data;
        f->size = size;
    }
    return parse_shard(s, f);
}

static const lw_raw_tensor *find_hf(const lw_safetensors *s, const char *hf)
{
    for (size_t i = 0; i < s->n_tensors; i++)
        if (strcmp(s->hf_names[i], hf) == 0) return &s->tensors[i];
    return NULL;
}

/* Reads model.safetensors.index.json and opens each shard it names once. */
static lw_status open_index(lw_safetensors *s, const char *path)
{
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return lw_fail(LW_ERR_FORMAT, "%s: bad JSON at line %d: %s", path, err.line, lw_json_file_error(path, &err));
    json_t *map = json_object_get(root, "weight_map");
    lw_status st = LW_OK;
    if (!json_is_object(map)) st = lw_fail(LW_ERR_FORMAT, "%s: weight_map is missing or not an object", path);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        if (st) break;
        const char *file = json_string_value(v);
        if (!file || strchr(file, '/') || strcmp(file, "..") == 0) {
            st = lw_fail(LW_ERR_FORMAT, "%s: weight_map entry %s is not a file name in this directory", path, key);
            break;
        }
        char shard_path[LW_PATH_MAX];
        snprintf(shard_path, sizeof shard_path, "%s/%s", s->dir, file);
        bool seen = false;
        for (size_t i = 0; i < s->n_shards; i++) seen |= strcmp(s->shards[i].path, shard_path) == 0;
        if (!seen) st = add_shard(s, shard_path, NULL, 0, true);
    }
    json_object_foreach(map, key, v) {
        if (st) break;
        if (!find_hf(s, key))
            st = lw_fail(LW_ERR_FORMAT, "%s: tensor %s is in weight_map but not in %s", path, key,
                         json_string_value(v));
    }
    json_decref(root);
    return st;
}

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static lw_status open_path(lw_safetensors *s, const char *path)
{
    char p[LW_PATH_MAX];
    if (is_dir(path)) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (is_file(p)) return open_index(s, p);
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (is_file(p)) return add_shard(s, p, NULL, 0, true);
        return lw_fail(LW_ERR_IO, "%s: directory holds neither model.safetensors.index.json nor model.safetensors",
                       path);
    }
    if (ends_with(path, ".json")) return open_index(s, path);
    return add_shard(s, path, NULL, 0, true);
}

/* Gemma checkpoints are recognised by the tensor the family table names
 * (its pre-FFN norm, which Llama lacks). */
static bool looks_like_gemma(const lw_safetensors *s)
{
    return lw_family_hf_norm_adds_one((const char *const *)s->hf_names, s->n_tensors);
}

/* Gives every tensor its canonical name; Gemma norms get +1 (see header). */
static lw_status assign_names(lw_safetensors *s)
{
    bool gemma = looks_like_gemma(s);
    for (size_t i = 0; i < s->n_tensors; i++) {
        char buf[ST_NAME_CAP];
        bool known = lw_hf_to_canonical(s->hf_names[i], gemma, buf, sizeof buf);
        char *name = strdup(known ? buf : s->hf_names[i]);
        if (!name) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", s->name);
        s->tensors[i].name = name;
        s->tensors[i].add = known && gemma && ends_with(buf, "norm.weight") ? 1.0f : 0.0f;
    }
    for (size_t i = 0; i < s->n_tensors; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->tensors[i].name, s->tensors[j].name) == 0)
                return lw_fail(LW_ERR_FORMAT, "%s: tensors %s and %s both map to %s", s->name, s->hf_names[j],
                               s->hf_names[i], s->tensors[i].name);
    return LW_OK;
}

static lw_status new_st(const char *name, lw_safetensors **out)
{
    lw_safetensors *s = calloc(1, sizeof *s);
    if (s) s->name = strdup(name);
    if (s && s->name) {
        /* config.json sits in the directory itself, or beside the file. */
        s->dir = strdup(name);
        if (s->dir && !is_dir(name)) {
            char *slash = strrchr(s->dir, '/');
            if (slash) *slash = 0;
            else strcpy(s->dir, ".");
        }
    }
    if (!s || !s->name || !s->dir) {
        lw_safetensors_close(s);
        return lw_fail(LW_ERR_NOMEM, "out of memory opening %s", name);
    }
    *out = s;
    return LW_OK;
}

lw_status lw_safetensors_open(const char *path, lw_safetensors **out)
{
    *out = NULL;
    lw_safetensors *s;
    lw_status st = new_st(path, &s);
    if (st) return st;
    if ((st = open_path(s, path)) || (st = assign_names(s))) {
        lw_safetensors_close(s);
        return st;
    }
    *out = s;
    return LW_OK;
}

lw_status lw_safetensors_parse(const void *data, size_t size, const char *name, lw_safetensors **out)
{
    *out = NULL;
    lw_safetensors *s;
    lw_status st = new_st(name ? name : "<memory>", &s);
    if (st) return st;
    if ((st = add_shard(s, s->name, data, size, false)) || (st = assign_names(s))) {
        lw_safetensors_close(s);
        return st;
    }
    *out = s;
    return LW_OK;
}

void lw_safetensors_close(lw_safetensors *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_shards; i++) {
        if (s->shards[i].mapped) lw_file_unmap(s->shards[i].data, s->shards[i].size);
        free(s->shards[i].path);
    }
    for (size_t i = 0; i < s->n_tensors; i++) {
        free((char *)s->tensors[i].name);
        free(s->hf_names[i]);
    }
    free(s->shards);
    free(s->tensors);
    free(s->hf_names);
    free(s->name);
    free(s->dir);
    free(s);
}

size_t lw_safetensors_n_tensors(const lw_safetensors *s) { return s->n_tensors; }

const lw_raw_tensor *lw_safetensors_tensor_at(const lw_safetensors *s, size_t i)
{
    return i < s->n_tensors ? &s->tensors[i] : NULL;
}

const lw_raw_tensor *lw_safetensors_find(const lw_safetensors *s, const char *canonical)
{
    for (size_t i = 0; i < s->n_tensors; i++)
        if (strcmp(s->tensors[i].name, canonical) == 0) return &s->tensors[i];
    return NULL;
}

/* --- config.json ----------------------------------------------------------- */

typedef struct {
    const char *path;
    json_t *obj;
} config;

static lw_status cfg_int(const config *c, const char *key, int dflt, int *v)
{
    json_t *x = json_object_get(c->obj, key);
    if (!x || json_is_null(x)) {
        if (dflt == INT_MIN) return lw_fail(LW_ERR_INVALID, "%s: missing field %s", c->path, key);
        *v = dflt;
        return LW_OK;
    }
    /* Some configs list several end ids; the first is the main one. */
    if (json_is_array(x) && json_array_size(x) > 0) x = json_array_get(x, 0);
    if (!json_is_integer(x) || json_integer_value(x) < INT_MIN + 1 || json_integer_value(x) > INT_MAX)
        return lw_fail(LW_ERR_INVALID, "%s: field %s is not an int", c->path, key);
    *v = (int)json_integer_value(x);
    return LW_OK;
}

static lw_status cfg_float(const config *c, const char *key, float dflt, float *v)
{
    json_t *x = json_object_get(c->obj, key);
    if (!x || json_is_null(x)) {
        *v = dflt;
        return LW_OK;
    }
    if (!json_is_number(x)) return lw_fail(LW_ERR_INVALID, "%s: field %s is not a number", c->path, key);
    *v = (float)json_number_value(x);
    return LW_OK;
}

/* transformers 5 writes rope_parameters {rope_theta, rope_type, factor...}
 * where 4.x wrote rope_theta and rope_scaling; a family with local layers
 * nests one such object per layer type (full_attention, sliding_attention).
 * Returns the object for `layer_type` (or the flat one), else NULL. */
static json_t *cfg_rope_parameters(const config *c, const char *layer_type)
{
    json_t *rp = json_object_get(c->obj, "rope_parameters");
    if (!json_is_object(rp)) return NULL;
    json_t *nested = json_object_get(rp, layer_type);
    return json_is_object(nested) ? nested : rp;
}

static lw_status cfg_rope_scaling(const config *c, lw_rope_scaling *r)
{
    json_t *rs = json_object_get(c->obj, "rope_scaling");
    if (!rs || json_is_null(rs)) rs = cfg_rope_parameters(c, "full_attention");
    r->kind = LW_ROPE_SCALING_NONE;
    if (!rs || json_is_null(rs)) return LW_OK;
    const char *type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type) type = json_string_value(json_object_get(rs, "type"));
    if (!type || strcmp(type, "default") == 0) return LW_OK;
    if (strcmp(type, "linear") == 0) r->kind = LW_ROPE_SCALING_LINEAR;
    else if (strcmp(type, "llama3") == 0) r->kind = LW_ROPE_SCALING_LLAMA3;
    else return lw_fail(LW_ERR_UNSUPPORTED, "%s: rope_scaling type %s is not supported (linear, llama3)", c->path, type);
    config sub = {c->path, rs};
    lw_status st;
    if ((st = cfg_float(&sub, "factor", 1.0f, &r->factor)) ||
        (st = cfg_float(&sub, "low_freq_factor", 1.0f, &r->low_freq_factor)) ||
        (st = cfg_float(&sub, "high_freq_factor", 4.0f, &r->high_freq_factor)) ||
        (st = cfg_int(&sub, "original_max_position_embeddings", 0, &r->original_context)))
        return st;
    return LW_OK;
}

static lw_status cfg_bool(const config *c, const char *key, bool *v)
{
    json_t *x = json_object_get(c->obj, key);
    *v = false;
    if (!x || json_is_null(x)) return LW_OK;
    if (!json_is_boolean(x)) return lw_fail(LW_ERR_INVALID, "%s: field %s is not true or false", c->path, key);
    *v = json_is_true(x);
    return LW_OK;
}

/* The family of model_type, and its defaults as loaded (family.h: the
 * reader already made Gemma's gains 1 + w); what the family cannot run is
 * refused here rather than ignored. */
static lw_status cfg_family(const config *c, lw_model_config *m, const lw_family_info **out)
{
    const char *type = json_string_value(json_object_get(c->obj, "model_type"));
    if (!type) return lw_fail(LW_ERR_INVALID, "%s: missing field model_type", c->path);
    const lw_family_info *f = lw_family_by_hf_type(type);
    if (!f) {
        char known[256];
        lw_family_list(LW_FAMILY_NAMES_HF, known, sizeof known);
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: model_type %s is not supported (%s)", c->path, type, known);
    }
    lw_family_defaults(m, f, LW_FAMILY_AS_LOADED);
    bool on;
    lw_status st;
    /* attention_bias (Llama, Qwen3) puts a bias on o_proj too, which no
     * family here has; Qwen2's q/k/v biases come from the family instead */
    if ((st = cfg_bool(c, "attention_bias", &on))) return st;
    if (on)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: attention_bias is true (biases on q/k/v/o); expected false: "
                       "family %s has no output-projection bias", c->path, f->name);
    /* Qwen's window applies to some layers only, by max_window_layers */
    if ((st = cfg_bool(c, "use_sliding_window", &on))) return st;
    if (on)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: use_sliding_window is true; expected false (family %s is "
                       "supported with global attention only)", c->path, f->name);
    *out = f;
    return LW_OK;
}

static lw_status cfg_read(const config *c, const lw_safetensors *s, lw_model_config *m)
{
    lw_status st;
    const int REQUIRED = INT_MIN;
    const lw_family_info *f = NULL;
    if ((st = cfg_family(c, m, &f)) ||
        (st = cfg_int(c, "hidden_size", REQUIRED, &m->hidden)) ||
        (st = cfg_int(c, "num_hidden_layers", REQUIRED, &m->n_layers)) ||
        (st = cfg_int(c, "num_attention_heads", REQUIRED, &m->n_heads)) ||
        (st = cfg_int(c, "num_key_value_heads", m->n_heads, &m->n_kv_heads)) ||
        (st = cfg_int(c, "intermediate_size", REQUIRED, &m->ffn)) ||
        (st = cfg_int(c, "vocab_size", REQUIRED, &m->vocab)) ||
        (st = cfg_int(c, "max_position_embeddings", 2048, &m->context)) ||
        (st = cfg_float(c, "rms_norm_eps", 1e-6f, &m->norm_eps)) ||
        (st = cfg_float(c, "rope_theta", 10000.0f, &m->rope_base)) ||
        (st = cfg_rope_scaling(c, &m->rope_scaling)))
        return st;
    json_t *rp = cfg_rope_parameters(c, "full_attention");
    config rope = {c->path, rp};
    if (rp && !json_object_get(c->obj, "rope_theta") &&
        (st = cfg_float(&rope, "rope_theta", m->rope_base, &m->rope_base)))
        return st;
    if (m->hidden <= 0 || m->n_heads <= 0)
        return lw_fail(LW_ERR_INVALID, "%s: hidden_size and num_attention_heads must be positive", c->path);
    int qpas;
    if ((st = cfg_int(c, "head_dim", m->hidden / m->n_heads, &m->head_dim)) ||
        (st = cfg_int(c, "bos_token_id", -1, &m->bos_id)) ||
        (st = cfg_int(c, "eos_token_id", -1, &m->eos_id)) ||
        (st = cfg_int(c, "pad_token_id", -1, &m->pad_id)) ||
        (st = cfg_int(c, "query_pre_attn_scalar", m->head_dim, &qpas)))
        return st;
    if (qpas > 0 && qpas != m->head_dim) m->query_scale = 1.0f / sqrtf((float)qpas);
    m->rope_base_local = lw_family_local_base(f, m->rope_base);
    if (f->global_every > 0) {
        /* a family with local layers: the file's window, pattern and local base */
        json_t *rl = cfg_rope_parameters(c, "sliding_attention");
        config local = {c->path, rl};
        if (rl && rl != rp && (st = cfg_float(&local, "rope_theta", m->rope_base_local, &m->rope_base_local)))
            return st;
        if ((st = cfg_float(c, "rope_local_base_freq", m->rope_base_local, &m->rope_base_local)) ||
            (st = cfg_int(c, "sliding_window", m->sliding_window, &m->sliding_window)) ||
            (st = cfg_int(c, "sliding_window_pattern", f->global_every, &m->global_every)))
            return st;
    }
    m->tied_embeddings = !lw_safetensors_find(s, "output.weight");
    return LW_OK;
}

lw_status lw_safetensors_read_config(const lw_safetensors *s, lw_model_config *m)
{
    char path[LW_PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", s->dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return lw_fail(LW_ERR_IO, "%s: cannot read config: %s (line %d)", path, lw_json_file_error(path, &err),
                       err.line);
    config c = {path, root};
    /* Multimodal Gemma 3 keeps the language model's fields in text_config. */
    json_t *text = json_object_get(root, "text_config");
    if (json_is_object(text)) {
        c.obj = text;
        if (!json_object_get(text, "model_type")) json_object_set_new(text, "model_type", json_string("gemma3"));
    }
    lw_status st = json_is_object(c.obj) ? cfg_read(&c, s, m)
                                          : lw_fail(LW_ERR_FORMAT, "%s: not a JSON object", path);
    json_decref(root);
    return st;
}
