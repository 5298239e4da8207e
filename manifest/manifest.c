/* Model-pair manifest: JSON (libjansson) to a validated lw_manifest.
 *
 * The schema is documented field by field in docs/manifest.md. Every error
 * reads "<file>: <json.path>: <what is wrong>; expected <what>", so a person
 * can fix the manifest from the message alone. The input is untrusted (the
 * fuzzer feeds it garbage): every value is type- and range-checked before it
 * is stored, and every string copy is bounded. */
#include "manifest.h"
#include "family.h"
#include "jsonerr.h"
#include "train_rules.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds that keep every later size computation (hidden * vocab,
 * n_layers * context * head_dim ...) far from integer overflow. */
enum {
    MAX_DIM = 1 << 16,       /* hidden, ffn per 4 (see below), head_dim, width */
    MAX_FFN = 1 << 18,
    MAX_LAYERS = 1024,
    MAX_HEADS = 1024,
    MAX_VOCAB = 1 << 22,
    MAX_CONTEXT = 1 << 24,
    JPATH = 256              /* a JSON path in messages ("sender.rope_scaling.factor") */
};

typedef struct {
    const char *file;        /* for messages */
    char dir[LW_PATH_MAX];   /* the manifest's folder, for relative paths */
} mctx;

/* ---- messages ---------------------------------------------------------- */

static lw_status bad(lw_status code, const mctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static lw_status bad(lw_status code, const mctx *c, const char *path, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lw_fail(code, "%s: %s: %s", c->file, path, msg);
}

/* JSON paths are for messages: truncating an absurdly long one is fine. */
static void path_printf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_printf(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, JPATH, fmt, ap);
    va_end(ap);
}

static void join_path(char *buf, const char *parent, const char *key)
{
    if (parent[0]) path_printf(buf, "%s.%s", parent, key);
    else path_printf(buf, "%s", key);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* ---- unknown keys, with a did-you-mean --------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Keys starting with "_" are comments and ignored everywhere. */
static lw_status check_keys(const mctx *c, json_t *obj, const char *parent, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (key[0] == '_') continue;
        const char *near = NULL;
        size_t best = (size_t)-1;
        bool known = false;
        for (const char *const *k = allowed; *k; k++) {
            if (strcmp(key, *k) == 0) { known = true; break; }
            size_t d = edit_distance(key, *k);
            if (d < best) { best = d; near = *k; }
        }
        if (known) continue;
        char list[1024] = "", path[JPATH];
        for (const char *const *k = allowed; *k; k++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *k);
        }
        join_path(path, parent, key);
        if (near && best <= 3 && best * 3 <= strlen(near))
            return bad(LW_ERR_FORMAT, c, path, "unknown key (did you mean \"%s\"?); expected one of: %s",
                       near, list);
        return bad(LW_ERR_FORMAT, c, path, "unknown key; expected one of: %s", list);
    }
    return LW_OK;
}

/* ---- typed field readers ------------------------------------------------
 * Each looks up `key` in `obj` (whose JSON path is `parent`). An absent
 * optional field leaves *out untouched, so callers preset the default. */

static lw_status lookup(const mctx *c, json_t *obj, const char *parent, const char *key,
                        bool required, const char *expect, json_t **v, char *path)
{
    join_path(path, parent, key);
    *v = json_object_get(obj, key);
    if (!*v && required) return bad(LW_ERR_FORMAT, c, path, "missing required field; expected %s", expect);
    return LW_OK;
}

/* The JSON kinds a field can be asked to be; a number is an integer or a real. */
typedef enum { KIND_INTEGER, KIND_NUMBER, KIND_BOOL, KIND_STRING, KIND_OBJECT } field_kind;

static bool is_kind(const json_t *v, field_kind k)
{
    switch (k) {
    case KIND_INTEGER: return json_is_integer(v);
    case KIND_NUMBER: return json_is_number(v);
    case KIND_BOOL: return json_is_boolean(v);
    case KIND_STRING: return json_is_string(v);
    case KIND_OBJECT: return json_is_object(v);
    }
    return false;
}

/* lookup, then the field's kind: one present of another kind is refused as
 * "got <its type>; expected <expect>". *v is NULL for an absent optional one. */
static lw_status lookup_kind(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                             field_kind kind, const char *expect, json_t **v, char *path)
{
    lw_status st = lookup(c, obj, parent, key, required, expect, v, path);
    if (st || !*v) return st;
    if (!is_kind(*v, kind)) return bad(LW_ERR_FORMAT, c, path, "got %s; expected %s", type_name(*v), expect);
    return LW_OK;
}

static lw_status get_int(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                         long long lo, long long hi, int *out)
{
    char path[JPATH], expect[96];
    json_t *v;
    snprintf(expect, sizeof expect, "an integer from %lld to %lld", lo, hi);
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_INTEGER, expect, &v, path);
    if (st || !v) return st;
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return bad(LW_ERR_INVALID, c, path, "%lld is out of range; expected %s", x, expect);
    *out = (int)x;
    return LW_OK;
}

/* An integer field of a block: its key, whether it must be there, its
 * range and where it goes. A block's run of them is one table, read in
 * order by get_ints, so that each field is written once. */
typedef struct {
    const char *key;
    bool required;
    long long lo, hi;
    int *out;
} int_field;

static lw_status get_ints(const mctx *c, json_t *obj, const char *parent, const int_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const int_field *f = &fields[i];
        lw_status st = get_int(c, obj, parent, f->key, f->required, f->lo, f->hi, f->out);
        if (st) return st;
    }
    return LW_OK;
}

/* A block's heads must divide its width (the bridge's, the interlingua's). */
static lw_status heads_divide_width(const mctx *c, const char *parent, int heads, int width)
{
    if (width % heads == 0) return LW_OK;
    char hp[JPATH];
    join_path(hp, parent, "heads");
    return bad(LW_ERR_INVALID, c, hp, "%d does not divide width %d; expected a divisor of width", heads, width);
}

/* A number in [lo, hi] (lo excluded if lo_open; hi = INFINITY for none). */
static lw_status get_float(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                           double lo, bool lo_open, double hi, float *out)
{
    char path[JPATH], expect[96];
    json_t *v;
    if (isinf(hi)) snprintf(expect, sizeof expect, "a number %s %g", lo_open ? ">" : ">=", lo);
    else snprintf(expect, sizeof expect, "a number in %c%g, %g]", lo_open ? '(' : '[', lo, hi);
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_NUMBER, expect, &v, path);
    if (st || !v) return st;
    double x = json_number_value(v);
    float f = (float)x;
    if (!(x > lo || (!lo_open && x == lo)) || x > hi || !isfinite(f))
        return bad(LW_ERR_INVALID, c, path, "%g is out of range; expected %s", x, expect);
    *out = f;
    return LW_OK;
}

static lw_status get_bool(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                          bool *out)
{
    char path[JPATH];
    json_t *v;
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_BOOL, "true or false", &v, path);
    if (!st && v) *out = json_is_true(v);
    return st;
}

static lw_status get_string(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                            const char **out)
{
    char path[JPATH];
    json_t *v;
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_STRING, "a string", &v, path);
    if (!st && v) *out = json_string_value(v);
    return st;
}

/* A string naming one of names[0..n); *out gets its index. */
static lw_status get_enum(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                          const char *const *names, int n, int *out)
{
    char path[JPATH], expect[256] = "one of";
    json_t *v;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(expect);
        snprintf(expect + len, sizeof expect - len, "%s \"%s\"", i ? "," : "", names[i]);
    }
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_STRING, expect, &v, path);
    if (st || !v) return st;
    const char *s = json_string_value(v);
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) { *out = i; return LW_OK; }
    return bad(LW_ERR_INVALID, c, path, "\"%.64s\" is not a valid value; expected %s", s, expect);
}

/* An object field; absent optional ones give *out = NULL. Checks its keys. */
static lw_status get_object(const mctx *c, json_t *obj, const char *parent, const char *key, bool required,
                            const char *const *allowed, json_t **out, char *path)
{
    json_t *v;
    *out = NULL;
    lw_status st = lookup_kind(c, obj, parent, key, required, KIND_OBJECT, "an object", &v, path);
    if (st || !v) return st;
    *out = v;
    return check_keys(c, v, path, allowed);
}

/* ---- paths: $VAR, ${VAR}, ${VAR:-default}, $$, then relative to the manifest */

static lw_status put(const mctx *c, const char *path, char *buf, size_t *n, const char *s, size_t len)
{
    if (*n + len >= LW_PATH_MAX)
        return bad(LW_ERR_INVALID, c, path, "path too long after expansion; expected at most %d bytes",
                   LW_PATH_MAX - 1);
    memcpy(buf + *n, s, len);
    *n += len;
    buf[*n] = 0;
    return LW_OK;
}

static bool var_char(char ch, bool first)
{
    return ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (!first && ch >= '0' && ch <= '9');
}

static lw_status expand_vars(const mctx *c, const char *path, const char *raw, char *buf, size_t *n)
{
    const char *syntax = "$NAME, ${NAME}, ${NAME:-default} or $$";
    *n = 0;
    buf[0] = 0;
    for (const char *p = raw; *p;) {
        if (*p != '$') {
            size_t run = strcspn(p, "$");
            lw_status st = put(c, path, buf, n, p, run);
            if (st) return st;
            p += run;
            continue;
        }
        p++;
        if (*p == '$') { lw_status st = put(c, path, buf, n, "$", 1); if (st) return st; p++; continue; }
        bool braced = *p == '{';
        if (braced) p++;
        const char *name = p;
        if (!var_char(*p, true))
            return bad(LW_ERR_INVALID, c, path, "bad variable reference in \"%.200s\"; expected %s", raw, syntax);
        while (var_char(*p, false)) p++;
        size_t name_len = (size_t)(p - name);
        const char *def = NULL;
        size_t def_len = 0;
        if (braced) {
            if (p[0] == ':' && p[1] == '-') {
                def = p + 2;
                def_len = strcspn(def, "}");
                p = def + def_len;
            }
            if (*p != '}')
                return bad(LW_ERR_INVALID, c, path, "unterminated ${ in \"%.200s\"; expected %s", raw, syntax);
            p++;
        }
        char var[128];
        if (name_len >= sizeof var)
            return bad(LW_ERR_INVALID, c, path, "variable name too long; expected at most %zu characters",
                       sizeof var - 1);
        memcpy(var, name, name_len);
        var[name_len] = 0;
        const char *value = getenv(var);
        if (!value || !*value) {
            if (!def)
                return bad(LW_ERR_INVALID, c, path,
                           "environment variable %s is not set; expected it set (export %s=...) or a default "
                           "written ${%s:-default}", var, var, var);
            value = NULL;
        }
        lw_status st = value ? put(c, path, buf, n, value, strlen(value)) : put(c, path, buf, n, def, def_len);
        if (st) return st;
    }
    return LW_OK;
}

/* Expands variables, then makes a relative result relative to the
 * manifest's folder (so it is relative to the cwd, or absolute). */
static lw_status resolve_path(const mctx *c, const char *path, const char *raw, char *out)
{
    char buf[LW_PATH_MAX];
    size_t n;
    if (!raw[0]) return bad(LW_ERR_INVALID, c, path, "empty path; expected a file path");
    lw_status st = expand_vars(c, path, raw, buf, &n);
    if (st) return st;
    if (n == 0) return bad(LW_ERR_INVALID, c, path, "\"%.200s\" expands to an empty path; expected a file path", raw);
    int len = buf[0] == '/' || strcmp(c->dir, ".") == 0
                  ? snprintf(out, LW_PATH_MAX, "%s", buf)
                  : snprintf(out, LW_PATH_MAX, "%s/%s", c->dir, buf);
    if (len < 0 || len >= LW_PATH_MAX)
        return bad(LW_ERR_INVALID, c, path, "path too long; expected at most %d bytes", LW_PATH_MAX - 1);
    return LW_OK;
}

/* ---- the MODEL block --------------------------------------------------- */

static const char *const activation_names[] = {"silu", "gelu_tanh"};
static const char *const norm_names[] = {"rmsnorm", "rmsnorm_gemma"};
static const char *const scaling_names[] = {"none", "linear", "llama3"};
static const char *const format_names[] = {"gguf", "safetensors", "llama2c"};
static const char *const tokenizer_names[] = {"bpe_json", "spm_json", "spm_model", "gguf", "llama2c", "gpt2_files"};
static const char *const chat_names[] = {"none", "chatml", "gemma", "llama3", "mistral"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const model_keys[] = {
    "name", "family", "hidden", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn", "activation", "norm",
    "norm_eps", "rope_theta", "rope_theta_local", "rope_scaling", "sliding_window", "global_every", "qk_norm",
    "post_norms", "scale_embeddings", "qkv_bias", "query_scale", "vocab", "context", "tied_embeddings",
    "embed_rms", "weights", "tokenizer", "chat_template", "special_tokens", NULL};

/* What a family implies unless the manifest says otherwise: the family
 * table (family.c, docs/manifest.md), in the architecture's own norm
 * convention. */
static void family_defaults(lw_model_config *m, const lw_family_info *f)
{
    lw_family_defaults(m, f, LW_FAMILY_AS_WRITTEN);
    m->chat_template = LW_CHAT_NONE;
    m->bos_id = m->eos_id = m->pad_id = -1;
}

static lw_status parse_rope_scaling(const mctx *c, json_t *model, const char *parent, lw_rope_scaling *rs)
{
    static const char *const keys[] = {"type", "factor", "low_freq_factor", "high_freq_factor",
                                       "original_context", NULL};
    char path[JPATH];
    json_t *v = json_object_get(model, "rope_scaling");
    rs->kind = LW_ROPE_SCALING_NONE;
    if (!v || json_is_null(v)) return LW_OK;
    lw_status st = get_object(c, model, parent, "rope_scaling", false, keys, &v, path);
    if (st) return st;
    int kind = 0;
    if ((st = get_enum(c, v, path, "type", true, scaling_names, COUNT(scaling_names), &kind))) return st;
    rs->kind = (lw_rope_scaling_kind)kind;
    if (rs->kind == LW_ROPE_SCALING_NONE) {
        for (int i = 1; keys[i]; i++)
            if (json_object_get(v, keys[i])) {
                char fp[JPATH];
                join_path(fp, path, keys[i]);
                return bad(LW_ERR_INVALID, c, fp, "given with type \"none\"; expected type \"linear\" or "
                           "\"llama3\", or no %s", keys[i]);
            }
        return LW_OK;
    }
    if ((st = get_float(c, v, path, "factor", true, 0, true, 1e6, &rs->factor))) return st;
    if (rs->kind == LW_ROPE_SCALING_LINEAR) {
        for (int i = 2; keys[i]; i++)
            if (json_object_get(v, keys[i])) {
                char fp[JPATH];
                join_path(fp, path, keys[i]);
                return bad(LW_ERR_INVALID, c, fp, "given with type \"linear\"; expected it only with "
                           "type \"llama3\"");
            }
        return LW_OK;
    }
    if ((st = get_float(c, v, path, "low_freq_factor", true, 0, true, 1e6, &rs->low_freq_factor))) return st;
    if ((st = get_float(c, v, path, "high_freq_factor", true, 0, true, 1e6, &rs->high_freq_factor))) return st;
    if ((st = get_int(c, v, path, "original_context", true, 1, MAX_CONTEXT, &rs->original_context))) return st;
    if (rs->high_freq_factor <= rs->low_freq_factor) {
        char hp[JPATH];
        join_path(hp, path, "high_freq_factor");
        return bad(LW_ERR_INVALID, c, hp, "%g is not above low_freq_factor %g; expected high_freq_factor > "
                   "low_freq_factor", rs->high_freq_factor, rs->low_freq_factor);
    }
    return LW_OK;
}

static lw_status parse_files(const mctx *c, json_t *model, const char *parent, lw_model_config *m)
{
    static const char *const weight_keys[] = {"path", "format", NULL};
    static const char *const tok_keys[] = {"path", "kind", NULL};
    char path[JPATH], fp[JPATH];
    json_t *w, *t;
    const char *raw = NULL;
    int fmt = 0, kind = 0;
    lw_status st = get_object(c, model, parent, "weights", true, weight_keys, &w, path);
    if (st) return st;
    if ((st = get_enum(c, w, path, "format", true, format_names, COUNT(format_names), &fmt))) return st;
    m->weights_format = (lw_weights_format)fmt;
    if ((st = get_string(c, w, path, "path", true, &raw))) return st;
    join_path(fp, path, "path");
    if ((st = resolve_path(c, fp, raw, m->weights_path))) return st;

    if ((st = get_object(c, model, parent, "tokenizer", true, tok_keys, &t, path))) return st;
    if ((st = get_enum(c, t, path, "kind", true, tokenizer_names, COUNT(tokenizer_names), &kind))) return st;
    m->tokenizer_kind = (lw_tokenizer_kind)kind;
    /* A GGUF carries its own vocabulary, so its tokenizer path may be left out. */
    bool from_weights = m->tokenizer_kind == LW_TOKENIZER_GGUF && m->weights_format == LW_WEIGHTS_GGUF;
    raw = NULL;
    if ((st = get_string(c, t, path, "path", !from_weights, &raw))) return st;
    if (!raw) {
        memcpy(m->tokenizer_path, m->weights_path, sizeof m->tokenizer_path);
        return LW_OK;
    }
    join_path(fp, path, "path");
    return resolve_path(c, fp, raw, m->tokenizer_path);
}

static lw_status get_token_id(const mctx *c, json_t *obj, const char *parent, const char *key, int vocab,
                              int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) { *out = -1; return LW_OK; }
    char path[JPATH];
    join_path(path, parent, key);
    if (!json_is_integer(v))
        return bad(LW_ERR_FORMAT, c, path, "got %s; expected a token id from 0 to %d, or null", type_name(v),
                   vocab - 1);
    return get_int(c, obj, parent, key, false, 0, vocab - 1, out);
}

static lw_status parse_special(const mctx *c, json_t *model, const char *parent, lw_model_config *m)
{
    static const char *const keys[] = {"bos", "eos", "pad", "stop", NULL};
    char path[JPATH], sp[JPATH];
    json_t *s, *stop;
    lw_status st = get_object(c, model, parent, "special_tokens", false, keys, &s, path);
    if (st || !s) return st;
    if ((st = get_token_id(c, s, path, "bos", m->vocab, &m->bos_id))) return st;
    if ((st = get_token_id(c, s, path, "eos", m->vocab, &m->eos_id))) return st;
    if ((st = get_token_id(c, s, path, "pad", m->vocab, &m->pad_id))) return st;
    stop = json_object_get(s, "stop");
    if (!stop) return LW_OK;
    join_path(sp, path, "stop");
    if (!json_is_array(stop))
        return bad(LW_ERR_FORMAT, c, sp, "got %s; expected an array of token ids", type_name(stop));
    if (json_array_size(stop) > LW_MAX_SPECIAL)
        return bad(LW_ERR_INVALID, c, sp, "%zu ids is too many; expected at most %d", json_array_size(stop),
                   LW_MAX_SPECIAL);
    size_t i;
    json_t *id;
    json_array_foreach(stop, i, id) {
        char ip[JPATH];
        path_printf(ip, "%s[%zu]", sp, i);
        if (!json_is_integer(id))
            return bad(LW_ERR_FORMAT, c, ip, "got %s; expected a token id from 0 to %d", type_name(id), m->vocab - 1);
        json_int_t x = json_integer_value(id);
        if (x < 0 || x >= m->vocab)
            return bad(LW_ERR_INVALID, c, ip, "%lld is not a token id; expected a token id from 0 to %d (vocab %d)",
                       (long long)x, m->vocab - 1, m->vocab);
        m->stop_ids[m->n_stop_ids++] = (int)x;
    }
    return LW_OK;
}

static lw_status parse_dims(const mctx *c, json_t *v, const char *p, lw_model_config *m)
{
    lw_status st;
    char path[JPATH];
    const int_field shape[] = {
        {"hidden", true, 1, MAX_DIM, &m->hidden},
        {"n_layers", true, 1, MAX_LAYERS, &m->n_layers},
        {"n_heads", true, 1, MAX_HEADS, &m->n_heads},
    };
    if ((st = get_ints(c, v, p, shape, COUNT(shape)))) return st;
    m->n_kv_heads = m->n_heads;
    if ((st = get_int(c, v, p, "n_kv_heads", false, 1, MAX_HEADS, &m->n_kv_heads))) return st;
    if (m->n_heads % m->n_kv_heads) {
        join_path(path, p, "n_kv_heads");
        return bad(LW_ERR_INVALID, c, path, "%d does not divide n_heads %d; expected a divisor of n_heads",
                   m->n_kv_heads, m->n_heads);
    }
    if (!json_object_get(v, "head_dim") && m->hidden % m->n_heads) {
        join_path(path, p, "head_dim");
        return bad(LW_ERR_INVALID, c, path, "missing, and hidden %d is not a multiple of n_heads %d; expected "
                   "head_dim given explicitly", m->hidden, m->n_heads);
    }
    m->head_dim = m->hidden / m->n_heads;
    if ((st = get_int(c, v, p, "head_dim", false, 2, MAX_DIM, &m->head_dim))) return st;
    if (m->head_dim % 2) {
        join_path(path, p, "head_dim");
        return bad(LW_ERR_INVALID, c, path, "%d is odd; expected an even head_dim (RoPE rotates pairs)",
                   m->head_dim);
    }
    const int_field sizes[] = {
        {"ffn", true, 1, MAX_FFN, &m->ffn},
        {"vocab", true, 1, MAX_VOCAB, &m->vocab},
        {"context", true, 1, MAX_CONTEXT, &m->context},
    };
    return get_ints(c, v, p, sizes, COUNT(sizes));
}

static lw_status parse_model(const mctx *c, json_t *root, const char *which, lw_model_config *m)
{
    char p[JPATH];
    json_t *v;
    const char *name = NULL;
    int e = 0;
    lw_status st = get_object(c, root, "", which, true, model_keys, &v, p);
    if (st) return st;
    if ((st = get_string(c, v, p, "name", true, &name))) return st;
    if (!name[0] || strlen(name) >= LW_NAME_MAX) {
        char np[JPATH];
        join_path(np, p, "name");
        return bad(LW_ERR_INVALID, c, np, "length %zu; expected a name of 1 to %d bytes", strlen(name),
                   LW_NAME_MAX - 1);
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    const char *family_names[LW_FAMILY_COUNT];
    for (int f = 0; f < LW_FAMILY_COUNT; f++) family_names[f] = lw_family_get((lw_family)f)->name;
    if ((st = get_enum(c, v, p, "family", true, family_names, LW_FAMILY_COUNT, &e))) return st;
    const lw_family_info *family = lw_family_get((lw_family)e);
    family_defaults(m, family);
    if ((st = parse_dims(c, v, p, m))) return st;

    e = (int)m->activation;
    if ((st = get_enum(c, v, p, "activation", false, activation_names, COUNT(activation_names), &e))) return st;
    m->activation = (lw_activation)e;
    e = (int)m->norm;
    if ((st = get_enum(c, v, p, "norm", false, norm_names, COUNT(norm_names), &e))) return st;
    m->norm = (lw_norm_kind)e;
    if ((st = get_float(c, v, p, "norm_eps", true, 0, true, 1, &m->norm_eps))) return st;
    if ((st = get_float(c, v, p, "rope_theta", true, 0, true, 1e12, &m->rope_base))) return st;
    m->rope_base_local = lw_family_local_base(family, m->rope_base);
    if ((st = get_float(c, v, p, "rope_theta_local", false, 0, true, 1e12, &m->rope_base_local))) return st;
    if ((st = parse_rope_scaling(c, v, p, &m->rope_scaling))) return st;
    if ((st = get_int(c, v, p, "sliding_window", false, 0, MAX_CONTEXT, &m->sliding_window))) return st;
    if ((st = get_int(c, v, p, "global_every", false, 0, MAX_LAYERS, &m->global_every))) return st;
    if (m->sliding_window > 0 && m->global_every == 0) {
        char gp[JPATH];
        join_path(gp, p, "global_every");
        return bad(LW_ERR_INVALID, c, gp, "0 with sliding_window %d; expected every Nth layer global (N >= 1) "
                   "when sliding_window is set", m->sliding_window);
    }
    if ((st = get_bool(c, v, p, "qk_norm", false, &m->qk_norm))) return st;
    if ((st = get_bool(c, v, p, "post_norms", false, &m->post_norms))) return st;
    if ((st = get_bool(c, v, p, "scale_embeddings", false, &m->scale_embeddings))) return st;
    if ((st = get_bool(c, v, p, "qkv_bias", false, &m->qkv_bias))) return st;
    if ((st = get_float(c, v, p, "query_scale", false, 0, false, 1e6, &m->query_scale))) return st;
    if ((st = get_bool(c, v, p, "tied_embeddings", true, &m->tied_embeddings))) return st;
    if ((st = get_float(c, v, p, "embed_rms", true, 0, true, 1e6, &m->embed_rms))) return st;
    if ((st = parse_files(c, v, p, m))) return st;
    e = (int)m->chat_template;
    if ((st = get_enum(c, v, p, "chat_template", false, chat_names, COUNT(chat_names), &e))) return st;
    m->chat_template = (lw_chat_template)e;
    return parse_special(c, v, p, m);
}

/* ---- bridge, train, build ---------------------------------------------- */

static lw_status parse_bridge(const mctx *c, json_t *root, int sender_layers, lw_bridge_config *b)
{
    static const char *const keys[] = {"kind", "soft_tokens", "source_layer", "width", "depth", "heads",
                                       "ffn_mult", "calibration", "dropout", NULL};
    static const char *const kinds[] = {"perceiver", "mlp", "linear"};
    static const char *const calibs[] = {"rms", "none"};
    char p[JPATH];
    json_t *v;
    int e = 0;
    *b = (lw_bridge_config){.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = 16, .width = 256, .depth = 2,
                            .heads = 4, .ffn_mult = 4, .calibration = LW_CALIB_RMS, .dropout = 0.0f};
    lw_status st = get_object(c, root, "", "bridge", true, keys, &v, p);
    if (st) return st;
    if ((st = get_enum(c, v, p, "kind", false, kinds, COUNT(kinds), &e))) return st;
    b->kind = (lw_bridge_kind)e;
    const int_field ints[] = {
        {"soft_tokens", false, 1, 64, &b->soft_tokens},
        {"source_layer", true, 1, sender_layers, &b->source_layer},
        {"width", false, 1, MAX_DIM, &b->width},
        {"depth", false, 1, 64, &b->depth},
        {"heads", false, 1, MAX_HEADS, &b->heads},
    };
    if ((st = get_ints(c, v, p, ints, COUNT(ints)))) return st;
    if ((st = heads_divide_width(c, p, b->heads, b->width))) return st;
    if ((st = get_int(c, v, p, "ffn_mult", false, 1, 16, &b->ffn_mult))) return st;
    e = (int)b->calibration;
    if ((st = get_enum(c, v, p, "calibration", false, calibs, COUNT(calibs), &e))) return st;
    b->calibration = (lw_calibration)e;
    float drop = 0;
    if ((st = get_float(c, v, p, "dropout", false, 0, false, 0.99, &drop))) return st;
    b->dropout = drop;
    return LW_OK;
}

/* A train.<key> field by its rule in train_rules.c (the same table lw
 * train's options are checked with). */
static lw_status get_ruled(const mctx *c, json_t *obj, const char *parent, const char *key, double *out)
{
    const lw_train_rule *r = lw_train_rule_find(key);
    char path[JPATH], expect[96], why[160];
    json_t *v;
    lw_train_rule_expect(r, expect, sizeof expect);
    lw_status st = lookup_kind(c, obj, parent, key, false, r->integer ? KIND_INTEGER : KIND_NUMBER, expect, &v, path);
    if (st || !v) return st;
    double x = json_number_value(v);
    if (!lw_train_rule_allows(r, x)) {
        lw_train_rule_refusal(r, x, why, sizeof why);
        return bad(LW_ERR_INVALID, c, path, "%s", why);
    }
    *out = x;
    return LW_OK;
}

static lw_status parse_train(const mctx *c, json_t *root, lw_train_config *t)
{
    static const char *const keys[] = {"lr", "steps", "batch", "grad_accum", "warmup_steps", "weight_decay",
                                       "grad_clip", "seed", "diversity_weight", "class_balanced", NULL};
    char p[JPATH];
    json_t *v;
    *t = (lw_train_config){.lr = 1e-4f, .steps = 1000, .batch = 8, .grad_accum = 1, .warmup_steps = 50,
                           .weight_decay = 0.01f, .grad_clip = 1.0f, .seed = 1};
    lw_status st = get_object(c, root, "", "train", false, keys, &v, p);
    if (st || !v) return st;
    double x[9] = {t->lr, t->steps, t->batch, t->grad_accum, t->warmup_steps, t->weight_decay, t->grad_clip,
                   t->diversity_weight, (double)t->seed};
    static const char *const ruled[9] = {"lr", "steps", "batch", "grad_accum", "warmup_steps", "weight_decay",
                                         "grad_clip", "diversity_weight", "seed"};
    for (int i = 0; i < 9; i++)
        if ((st = get_ruled(c, v, p, ruled[i], &x[i]))) return st;
    t->lr = (float)x[0], t->steps = (int)x[1], t->batch = (int)x[2], t->grad_accum = (int)x[3];
    t->warmup_steps = (int)x[4], t->weight_decay = (float)x[5], t->grad_clip = (float)x[6];
    t->diversity_weight = (float)x[7], t->seed = (unsigned long long)x[8];
    return get_bool(c, v, p, "class_balanced", false, &t->class_balanced);
}

/* "sm_NN" with NN in 50..120 -> NN. */
static bool parse_arch(const char *s, int *out)
{
    if (strncmp(s, "sm_", 3) != 0) return false;
    int n = 0, digits = 0;
    for (const char *p = s + 3; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 3) return false;
        n = n * 10 + (*p - '0');
    }
    if (digits < 2 || n < 50 || n > 120) return false;
    *out = n;
    return true;
}

static lw_status parse_build(const mctx *c, json_t *root, lw_manifest *m)
{
    static const char *const keys[] = {"gpu_archs", NULL};
    char p[JPATH], ap[JPATH];
    json_t *v, *archs;
    m->n_archs = 2;
    m->gpu_archs[0] = 80;
    m->gpu_archs[1] = 90;
    lw_status st = get_object(c, root, "", "build", false, keys, &v, p);
    if (st || !v) return st;
    archs = json_object_get(v, "gpu_archs");
    if (!archs) return LW_OK;
    join_path(ap, p, "gpu_archs");
    if (!json_is_array(archs))
        return bad(LW_ERR_FORMAT, c, ap, "got %s; expected an array of \"sm_NN\" strings", type_name(archs));
    size_t n = json_array_size(archs);
    if (n < 1 || n > LW_MAX_ARCHS)
        return bad(LW_ERR_INVALID, c, ap, "%zu entries; expected 1 to %d", n, LW_MAX_ARCHS);
    m->n_archs = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(archs, i);
        char ip[JPATH];
        int arch = 0;
        path_printf(ip, "%s[%zu]", ap, i);
        if (!json_is_string(a))
            return bad(LW_ERR_FORMAT, c, ip, "got %s; expected a string \"sm_NN\"", type_name(a));
        if (!parse_arch(json_string_value(a), &arch))
            return bad(LW_ERR_INVALID, c, ip, "\"%.32s\" is not a GPU architecture; expected \"sm_NN\" with NN "
                       "from 50 to 120 (\"sm_80\", \"sm_90\")", json_string_value(a));
        for (int j = 0; j < m->n_archs; j++)
            if (m->gpu_archs[j] == arch)
                return bad(LW_ERR_INVALID, c, ip, "sm_%d listed twice; expected each architecture once", arch);
        m->gpu_archs[m->n_archs++] = arch;
    }
    return LW_OK;
}

/* ---- adapters on the receiver (optional) ------------------------------ */

static const char *const lora_targets[] = {"q", "k", "v", "o", "gate", "up", "down"};

static lw_status parse_lora_targets(const mctx *c, json_t *v, const char *p, unsigned *out)
{
    char tp[JPATH];
    join_path(tp, p, "targets");
    json_t *a = json_object_get(v, "targets");
    if (!a) return LW_OK;
    const char *expect = "a non-empty array of distinct \"q\", \"k\", \"v\", \"o\", \"gate\", \"up\", \"down\"";
    if (!json_is_array(a)) return bad(LW_ERR_FORMAT, c, tp, "got %s; expected %s", type_name(a), expect);
    if (json_array_size(a) == 0) return bad(LW_ERR_INVALID, c, tp, "empty; expected %s", expect);
    *out = 0;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *t = json_array_get(a, i);
        char ip[JPATH];
        path_printf(ip, "%s[%zu]", tp, i);
        if (!json_is_string(t)) return bad(LW_ERR_FORMAT, c, ip, "got %s; expected a target name", type_name(t));
        int k = -1;
        for (int j = 0; j < COUNT(lora_targets); j++)
            if (strcmp(json_string_value(t), lora_targets[j]) == 0) k = j;
        if (k < 0)
            return bad(LW_ERR_INVALID, c, ip, "\"%.32s\" is not a target; expected one of \"q\", \"k\", \"v\", "
                       "\"o\", \"gate\", \"up\", \"down\"", json_string_value(t));
        if (*out & (1u << k)) return bad(LW_ERR_INVALID, c, ip, "\"%s\" listed twice; expected each target once",
                                          lora_targets[k]);
        *out |= 1u << k;
    }
    return LW_OK;
}

/* "layers": N (the first N) or a list of distinct layer indices. */
static lw_status parse_lora_layers(const mctx *c, json_t *v, const char *p, int n_layers, lw_lora_config *l)
{
    char lp[JPATH];
    join_path(lp, p, "layers");
    json_t *a = json_object_get(v, "layers");
    if (!a) return LW_OK;
    if (json_is_integer(a)) return get_int(c, v, p, "layers", false, 1, n_layers, &l->first_layers);
    if (!json_is_array(a))
        return bad(LW_ERR_FORMAT, c, lp, "got %s; expected a count of first layers or an array of layer indices",
                   type_name(a));
    size_t n = json_array_size(a);
    if (n < 1 || n > LW_LORA_MAX_LIST || n > (size_t)n_layers)
        return bad(LW_ERR_INVALID, c, lp, "%zu entries; expected 1 to %d", n,
                   n_layers < LW_LORA_MAX_LIST ? n_layers : LW_LORA_MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(a, i);
        char ip[JPATH];
        path_printf(ip, "%s[%zu]", lp, i);
        if (!json_is_integer(x)) return bad(LW_ERR_FORMAT, c, ip, "got %s; expected a layer index", type_name(x));
        long long k = json_integer_value(x);
        if (k < 0 || k >= n_layers)
            return bad(LW_ERR_INVALID, c, ip, "%lld is out of range; expected a layer index from 0 to %d", k,
                       n_layers - 1);
        for (size_t j = 0; j < i; j++)
            if (l->layer_list[j] == k)
                return bad(LW_ERR_INVALID, c, ip, "layer %lld listed twice; expected each layer once", k);
        l->layer_list[l->n_layer_list++] = (int)k;
    }
    return LW_OK;
}

static lw_status parse_lora(const mctx *c, json_t *root, int n_layers, lw_manifest *m)
{
    static const char *const keys[] = {"rank", "alpha", "dropout", "targets", "layers", NULL};
    char p[JPATH];
    json_t *v;
    lw_lora_config *l = &m->lora;
    *l = (lw_lora_config){.rank = 8, .alpha = 0, .dropout = 0.0f, .targets = (1u << 0) | (1u << 2)};
    lw_status st = get_object(c, root, "", "lora", false, keys, &v, p);
    if (st || !v) return st;
    m->has_lora = true;
    if ((st = get_int(c, v, p, "rank", false, 1, 1024, &l->rank))) return st;
    l->alpha = 2.0f * (float)l->rank;
    if ((st = get_float(c, v, p, "alpha", false, 0, true, 1e6, &l->alpha))) return st;
    if ((st = get_float(c, v, p, "dropout", false, 0, false, 0.99, &l->dropout))) return st;
    if ((st = parse_lora_targets(c, v, p, &l->targets))) return st;
    return parse_lora_layers(c, v, p, n_layers, l);
}

static lw_status parse_deep_prefix(const mctx *c, json_t *root, lw_manifest *m)
{
    static const char *const keys[] = {"length", "dropout", "hidden", NULL};
    char p[JPATH];
    json_t *v;
    lw_deep_prefix_config *d = &m->deep_prefix;
    *d = (lw_deep_prefix_config){.length = 8, .dropout = 0.0f, .hidden = 128};
    lw_status st = get_object(c, root, "", "deep_prefix", false, keys, &v, p);
    if (st || !v) return st;
    m->has_deep_prefix = true;
    if ((st = get_int(c, v, p, "length", false, 1, 256, &d->length))) return st;
    if ((st = get_float(c, v, p, "dropout", false, 0, false, 0.99, &d->dropout))) return st;
    return get_int(c, v, p, "hidden", false, 1, MAX_DIM, &d->hidden);
}

/* ---- the shared interlingua (optional) ---------------------------------- */

static lw_status parse_interlingua(const mctx *c, json_t *root, lw_manifest *m)
{
    static const char *const keys[] = {"encoder", "latents", "d_z", "width", "depth", "heads", "ffn_mult",
                                       "adapter_ffn", "max_encoder_tokens", "first_token_weight", NULL};
    char p[JPATH], fp[JPATH];
    json_t *v;
    lw_interlingua_manifest *il = &m->interlingua;
    *il = (lw_interlingua_manifest){.latents = 16, .d_z = 256, .width = 256, .depth = 2, .heads = 4, .ffn_mult = 4,
                                    .adapter_ffn = 1024, .max_encoder_tokens = 256, .first_token_weight = 0.0f};
    lw_status st = get_object(c, root, "", "interlingua", false, keys, &v, p);
    if (st || !v) return st;
    m->has_interlingua = true;
    const char *raw = NULL;
    if ((st = get_string(c, v, p, "encoder", true, &raw))) return st;
    join_path(fp, p, "encoder");
    if ((st = resolve_path(c, fp, raw, il->encoder))) return st;
    const int_field shape[] = {
        {"latents", false, 1, 256, &il->latents},
        {"d_z", false, 1, MAX_DIM, &il->d_z},
        {"width", false, 1, MAX_DIM, &il->width},
        {"depth", false, 1, 64, &il->depth},
        {"heads", false, 1, MAX_HEADS, &il->heads},
    };
    if ((st = get_ints(c, v, p, shape, COUNT(shape)))) return st;
    if ((st = heads_divide_width(c, p, il->heads, il->width))) return st;
    const int_field sizes[] = {
        {"ffn_mult", false, 1, 16, &il->ffn_mult},
        {"adapter_ffn", false, 1, MAX_DIM, &il->adapter_ffn},
        {"max_encoder_tokens", false, 2, 512, &il->max_encoder_tokens},
    };
    if ((st = get_ints(c, v, p, sizes, COUNT(sizes)))) return st;
    return get_float(c, v, p, "first_token_weight", false, 0, false, 100, &il->first_token_weight);
}

/* ---- the whole manifest ------------------------------------------------- */

static bool valid_pair_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n >= LW_NAME_MAX || s[0] == '.') return false;
    for (; *s; s++)
        if (!(var_char(*s, false) || *s == '.' || *s == '-')) return false;
    return true;
}

static lw_status parse_root(const mctx *c, json_t *root, lw_manifest *m)
{
    static const char *const keys[] = {"lwc_manifest", "name", "sender", "receiver", "bridge", "train",
                                       "build", "lora", "deep_prefix", "interlingua", NULL};
    if (!json_is_object(root))
        return bad(LW_ERR_FORMAT, c, "(top level)", "got %s; expected an object", type_name(root));
    /* The version comes first: a newer manifest may use keys this build does not know. */
    json_t *ver = json_object_get(root, "lwc_manifest");
    if (!ver) return bad(LW_ERR_FORMAT, c, "lwc_manifest", "missing required field; expected the schema version 1");
    if (!json_is_integer(ver))
        return bad(LW_ERR_FORMAT, c, "lwc_manifest", "got %s; expected the schema version 1", type_name(ver));
    if (json_integer_value(ver) != 1)
        return bad(LW_ERR_UNSUPPORTED, c, "lwc_manifest", "unsupported schema version %lld; expected 1",
                   (long long)json_integer_value(ver));
    lw_status st = check_keys(c, root, "", keys);
    if (st) return st;
    const char *name = NULL;
    if ((st = get_string(c, root, "", "name", true, &name))) return st;
    if (!valid_pair_name(name))
        return bad(LW_ERR_INVALID, c, "name", "\"%.80s\" is not a valid pair name; expected 1 to %d characters "
                   "from A-Z a-z 0-9 . _ -, not starting with a dot", name, LW_NAME_MAX - 1);
    snprintf(m->name, sizeof m->name, "%s", name);
    if ((st = parse_model(c, root, "sender", &m->sender))) return st;
    if ((st = parse_model(c, root, "receiver", &m->receiver))) return st;
    if ((st = parse_bridge(c, root, m->sender.n_layers, &m->bridge))) return st;
    if ((st = parse_train(c, root, &m->train))) return st;
    if ((st = parse_lora(c, root, m->receiver.n_layers, m))) return st;
    if ((st = parse_deep_prefix(c, root, m))) return st;
    if ((st = parse_interlingua(c, root, m))) return st;
    return parse_build(c, root, m);
}

lw_status lw_manifest_parse(const char *text, size_t len, const char *path, lw_manifest *out)
{
    mctx c;
    memset(out, 0, sizeof *out);
    c.file = path && path[0] ? path : "<manifest>";
    if (strlen(c.file) >= LW_PATH_MAX)
        return lw_fail(LW_ERR_INVALID, "%.200s...: manifest path too long; expected at most %d bytes", c.file,
                       LW_PATH_MAX - 1);
    snprintf(out->path, sizeof out->path, "%s", c.file);
    const char *slash = strrchr(c.file, '/');
    if (!slash) snprintf(c.dir, sizeof c.dir, ".");
    else if (slash == c.file) snprintf(c.dir, sizeof c.dir, "/");
    else snprintf(c.dir, sizeof c.dir, "%.*s", (int)(slash - c.file), c.file);
    /* An absolute folder keeps resolved paths valid wherever the built
     * binary later runs from; a folder that does not exist (a manifest
     * parsed from memory) stays as written. */
    char *abs = realpath(c.dir, NULL);
    if (abs && strlen(abs) < sizeof c.dir) snprintf(c.dir, sizeof c.dir, "%s", abs);
    free(abs);

    json_error_t err;
    json_t *root = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (lw_json_error_is_bom(&err)) return lw_fail(LW_ERR_FORMAT, "%s: " LW_BOM_MESSAGE, c.file);
        if (json_error_code(&err) == json_error_duplicate_key)
            return lw_fail(LW_ERR_FORMAT, "%s: line %d, column %d: %s; expected each key once per object",
                           c.file, err.line, err.column, lw_json_error(&err));
        return lw_fail(LW_ERR_FORMAT, "%s: line %d, column %d: JSON syntax error: %s; expected valid JSON",
                       c.file, err.line, err.column, lw_json_error(&err));
    }
    lw_status st = parse_root(&c, root, out);
    json_decref(root);
    return st;
}

lw_status lw_manifest_load(const char *path, lw_manifest *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open manifest; expected a readable JSON file", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    for (;;) {
        if (n == cap) {
            if (cap >= (64u << 20)) { ok = false; break; }   /* a manifest is a few KB */
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (!grown) { free(buf); fclose(f); return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path); }
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    ok = ok && !ferror(f);
    fclose(f);
    if (!ok) {
        free(buf);
        return lw_fail(LW_ERR_IO, "%s: read failed or file over 64 MiB; expected a manifest of a few KB", path);
    }
    lw_status st = lw_manifest_parse(buf, n, path, out);
    free(buf);
    return st;
}

/* ---- writing a MODEL block ---------------------------------------------- */

/* The shortest decimal that reads back as the same float, so `lwc inspect`
 * prints 1e-05 rather than 9.99999975e-06 and the block round-trips. */
static json_t *json_float(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

/* Paths are written as resolved; a literal '$' is doubled so the parser
 * does not expand it. */
static json_t *json_path(const char *path)
{
    size_t n = strlen(path), dollars = 0;
    for (size_t i = 0; i < n; i++) dollars += path[i] == '$';
    char *buf = malloc(n + dollars + 1);
    if (!buf) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        buf[j++] = path[i];
        if (path[i] == '$') buf[j++] = '$';
    }
    buf[j] = 0;
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

static json_t *json_token(int id) { return id < 0 ? json_null() : json_integer(id); }

static json_t *rope_scaling_json(const lw_rope_scaling *rs)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(lw_rope_scaling_name(rs->kind)));
    if (rs->kind == LW_ROPE_SCALING_NONE) return o;
    json_object_set_new(o, "factor", json_float(rs->factor));
    if (rs->kind != LW_ROPE_SCALING_LLAMA3) return o;
    json_object_set_new(o, "low_freq_factor", json_float(rs->low_freq_factor));
    json_object_set_new(o, "high_freq_factor", json_float(rs->high_freq_factor));
    json_object_set_new(o, "original_context", json_integer(rs->original_context));
    return o;
}

/* Every field explicitly, so the block means the same whatever the family
 * defaults of a later version are. */
char *lw_model_config_to_json(const lw_model_config *c)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "family", json_string(lw_family_name(c->family)));
    json_object_set_new(o, "hidden", json_integer(c->hidden));
    json_object_set_new(o, "n_layers", json_integer(c->n_layers));
    json_object_set_new(o, "n_heads", json_integer(c->n_heads));
    json_object_set_new(o, "n_kv_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "ffn", json_integer(c->ffn));
    json_object_set_new(o, "activation", json_string(lw_activation_name(c->activation)));
    json_object_set_new(o, "norm", json_string(lw_norm_name(c->norm)));
    json_object_set_new(o, "norm_eps", json_float(c->norm_eps));
    json_object_set_new(o, "rope_theta", json_float(c->rope_base));
    json_object_set_new(o, "rope_theta_local", json_float(c->rope_base_local));
    json_object_set_new(o, "rope_scaling", rope_scaling_json(&c->rope_scaling));
    json_object_set_new(o, "sliding_window", json_integer(c->sliding_window));
    json_object_set_new(o, "global_every", json_integer(c->global_every));
    json_object_set_new(o, "qk_norm", json_boolean(c->qk_norm));
    json_object_set_new(o, "post_norms", json_boolean(c->post_norms));
    json_object_set_new(o, "scale_embeddings", json_boolean(c->scale_embeddings));
    json_object_set_new(o, "qkv_bias", json_boolean(c->qkv_bias));
    json_object_set_new(o, "query_scale", json_float(c->query_scale));
    json_object_set_new(o, "vocab", json_integer(c->vocab));
    json_object_set_new(o, "context", json_integer(c->context));
    json_object_set_new(o, "tied_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(o, "embed_rms", json_float(c->embed_rms));
    json_t *w = json_object(), *t = json_object(), *s = json_object(), *stop = json_array();
    json_object_set_new(w, "path", json_path(c->weights_path));
    json_object_set_new(w, "format", json_string(lw_weights_format_name(c->weights_format)));
    json_object_set_new(o, "weights", w);
    json_object_set_new(t, "path", json_path(c->tokenizer_path));
    json_object_set_new(t, "kind", json_string(lw_tokenizer_kind_name(c->tokenizer_kind)));
    json_object_set_new(o, "tokenizer", t);
    json_object_set_new(o, "chat_template", json_string(lw_chat_template_name(c->chat_template)));
    json_object_set_new(s, "bos", json_token(c->bos_id));
    json_object_set_new(s, "eos", json_token(c->eos_id));
    json_object_set_new(s, "pad", json_token(c->pad_id));
    for (int i = 0; i < c->n_stop_ids && i < LW_MAX_SPECIAL; i++)
        json_array_append_new(stop, json_integer(c->stop_ids[i]));
    json_object_set_new(s, "stop", stop);
    json_object_set_new(o, "special_tokens", s);
    /* A failed allocation makes set_new drop its key; the count catches it at
     * the top level, and a hole deeper down fails the next parse loudly. */
    char *text = json_object_size(o) == 29 ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(o);
    return text;
}
