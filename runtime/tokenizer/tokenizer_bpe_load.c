/* Fills the byte-level BPE model (tokenizer_bpe.c) from HF tokenizer.json,
 * GPT-2's encoder.json + vocab.bpe, or GGUF "gpt2" tokenizer metadata.
 * Anything those formats can say that we do not implement is an error that
 * names the file and the JSON path / GGUF key, never a silent difference. */
#include "tokenizer_bpe.h"
#include "jsonerr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "gguf.h"

/* The Split regexes we implement by hand, as tokenizer.json writes them. */
static const struct {
    const char *regex;
    lw_split_kind kind;
} known_splits[] = {
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", LW_SPLIT_GPT2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", LW_SPLIT_LLAMA3},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", LW_SPLIT_QWEN2},
};

static const char *type_of(const json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "(no type)";
}

static bool is_true_key(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

static lw_status add_pretokenizer(lw_bpe *b, const char *path, const json_t *p, const char *where)
{
    const char *type = type_of(p);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return lw_fail(LW_ERR_FORMAT, "%s: %s.pretokenizers: expected an array", path, where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
            lw_status st = add_pretokenizer(b, path, json_array_get(list, i), sub);
            if (st)
                return st;
        }
        return LW_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (is_true_key(p, "add_prefix_space"))
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s.add_prefix_space=true is not supported", path, where);
        const json_t *use_regex = json_object_get(p, "use_regex");
        return use_regex && !json_is_true(use_regex) ? LW_OK : lw_bpe_add_split(b, LW_SPLIT_GPT2);
    }
    if (strcmp(type, "Digits") == 0)
        return lw_bpe_add_split(b, is_true_key(p, "individual_digits") ? LW_SPLIT_DIGITS : LW_SPLIT_DIGIT_RUNS);
    if (strcmp(type, "Split") == 0) {
        const char *regex = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        const char *behavior = json_string_value(json_object_get(p, "behavior"));
        if (!regex || !behavior || strcmp(behavior, "Isolated") != 0 || is_true_key(p, "invert"))
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s: only Split with a Regex pattern, behavior "
                           "Isolated and invert false is supported", path, where);
        for (size_t i = 0; i < sizeof known_splits / sizeof known_splits[0]; i++)
            if (strcmp(regex, known_splits[i].regex) == 0)
                return lw_bpe_add_split(b, known_splits[i].kind);
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s.pattern.Regex '%s' is not one of the GPT-2, Llama 3 "
                       "or Qwen2 patterns implemented", path, where, regex);
    }
    return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s: pre-tokenizer type %s is not supported", path, where, type);
}

/* Largest id in model.vocab and added_tokens, checked as integers. */
static lw_status max_id(const char *path, const json_t *vocab, const json_t *added, int *out)
{
    long long max = -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= LW_BPE_MAX_IDS)
            return lw_fail(LW_ERR_FORMAT, "%s: model.vocab['%s']: expected an id in 0..%d", path, key,
                           LW_BPE_MAX_IDS - 1);
        if (json_integer_value(v) > max)
            max = json_integer_value(v);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= LW_BPE_MAX_IDS)
            return lw_fail(LW_ERR_FORMAT, "%s: added_tokens[%zu].id: expected an id in 0..%d", path, i,
                           LW_BPE_MAX_IDS - 1);
        if (json_integer_value(id) > max)
            max = json_integer_value(id);
    }
    if (max < 0)
        return lw_fail(LW_ERR_FORMAT, "%s: model.vocab is empty", path);
    *out = (int)max + 1;
    return LW_OK;
}

static lw_status check_model(const char *path, const json_t *model)
{
    if (strcmp(type_of(model), "BPE") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: model.type is %s, expected BPE", path, type_of(model));
    if (is_true_key(model, "byte_fallback"))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: model.byte_fallback=true: not a byte-level BPE", path);
    const char *keys[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(model, keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: model.%s must be null", path, keys[i]);
    }
    if (!json_is_object(json_object_get(model, "vocab")) || !json_is_array(json_object_get(model, "merges")))
        return lw_fail(LW_ERR_FORMAT, "%s: model.vocab (object) and model.merges (array) expected", path);
    return LW_OK;
}

/* A merge is "left right" (older files) or ["left", "right"]. */
static lw_status add_json_merge(lw_bpe *b, const char *path, const json_t *m, size_t i)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || sp == s || strchr(sp + 1, ' ') || sp[1] == '\0')
            return lw_fail(LW_ERR_FORMAT, "%s: model.merges[%zu] '%s': expected 'left right'", path, i, s);
        return lw_bpe_add_merge(b, s, (size_t)(sp - s), sp + 1, strlen(sp + 1));
    }
    const json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
    if (json_array_size(m) != 2 || !json_is_string(l) || !json_is_string(r))
        return lw_fail(LW_ERR_FORMAT, "%s: model.merges[%zu]: expected two strings", path, i);
    return lw_bpe_add_merge(b, json_string_value(l), json_string_length(l), json_string_value(r),
                            json_string_length(r));
}

static lw_status add_json_vocab(lw_bpe *b, const char *path, const json_t *model)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(model, "vocab"), key, v) {
        lw_status st = lw_bpe_set_piece(b, (int)json_integer_value(v), key, strlen(key));
        if (st)
            return st;
    }
    const json_t *merges = json_object_get(model, "merges");
    for (size_t i = 0; i < json_array_size(merges); i++) {
        lw_status st = add_json_merge(b, path, json_array_get(merges, i), i);
        if (st)
            return st;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk) {
        int id = lw_bpe_find(b, unk, strlen(unk));
        if (id < 0)
            return lw_fail(LW_ERR_FORMAT, "%s: model.unk_token '%s' is not in the vocabulary", path, unk);
        lw_bpe_set_unk(b, id);
    }
    lw_bpe_set_ignore_merges(b, is_true_key(model, "ignore_merges"));
    return LW_OK;
}

static lw_status add_json_added(lw_bpe *b, const char *path, const json_t *added)
{
    if (added && !json_is_array(added))
        return lw_fail(LW_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *content = json_object_get(a, "content");
        if (!json_is_string(content) || json_string_length(content) == 0)
            return lw_fail(LW_ERR_FORMAT, "%s: added_tokens[%zu].content: expected a string", path, i);
        lw_bpe_added_flags f = {is_true_key(a, "special"), is_true_key(a, "lstrip"), is_true_key(a, "rstrip"),
                                is_true_key(a, "single_word")};
        lw_status st = lw_bpe_add_token(b, (int)json_integer_value(json_object_get(a, "id")),
                                        json_string_value(content), json_string_length(content), f);
        if (st)
            return st;
    }
    return LW_OK;
}

/* Which ids encode(add_special_tokens=True) puts before and after the text. */
static lw_status add_json_post(lw_bpe *b, const char *path, const json_t *post)
{
    if (!post || json_is_null(post) || strcmp(type_of(post), "ByteLevel") == 0)
        return LW_OK; /* ByteLevel only trims offsets */
    if (strcmp(type_of(post), "TemplateProcessing") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: post_processor type %s is not supported", path, type_of(post));
    const json_t *single = json_object_get(post, "single");
    int ids[2] = {-1, -1}; /* before, after the sequence */
    bool seen_sequence = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *item = json_array_get(single, i);
        if (json_object_get(item, "Sequence")) {
            seen_sequence = true;
            continue;
        }
        const char *name = json_string_value(json_object_get(json_object_get(item, "SpecialToken"), "id"));
        const json_t *sp = json_object_get(json_object_get(post, "special_tokens"), name ? name : "");
        const json_t *sp_ids = json_object_get(sp, "ids");
        if (!name || json_array_size(sp_ids) != 1 || ids[seen_sequence] >= 0)
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: post_processor.single[%zu]: only one special token "
                           "(with one id) before and after the sequence is supported", path, i);
        ids[seen_sequence] = (int)json_integer_value(json_array_get(sp_ids, 0));
    }
    if (!seen_sequence)
        return lw_fail(LW_ERR_FORMAT, "%s: post_processor.single has no Sequence", path);
    lw_bpe_set_specials(b, ids[0], ids[1]);
    return LW_OK;
}

static lw_status check_json_parts(const char *path, const json_t *root)
{
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: normalizer type %s is not supported (only null)", path,
                       type_of(norm));
    const json_t *dec = json_object_get(root, "decoder");
    if (!dec || strcmp(type_of(dec), "ByteLevel") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: decoder type %s is not supported (only ByteLevel)", path,
                       dec ? type_of(dec) : "null");
    return check_model(path, json_object_get(root, "model"));
}

/* tokenizer.json says nothing about BOS/EOS; the model's config.json next to
 * it does. Missing file or keys leave -1. */
static void read_config_ids(const char *path, int *bos, int *eos)
{
    char cfg[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    if (snprintf(cfg, sizeof cfg, "%.*sconfig.json", dir_len, path) >= (int)sizeof cfg)
        return;
    json_t *root = json_load_file(cfg, 0, NULL);
    const json_t *b = json_object_get(root, "bos_token_id"), *e = json_object_get(root, "eos_token_id");
    if (json_is_integer(b))
        *bos = (int)json_integer_value(b);
    if (json_is_integer(e))
        *eos = (int)json_integer_value(e);
    json_decref(root);
}

static lw_status fill_from_json(lw_bpe **bp, const char *path, const json_t *root)
{
    const json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    int n_ids = 0;
    lw_status st = max_id(path, json_object_get(model, "vocab"), added, &n_ids);
    if (!st)
        st = lw_bpe_new(n_ids, (int)json_array_size(json_object_get(model, "merges")), path, bp);
    if (!st)
        st = add_json_vocab(*bp, path, model);
    if (!st)
        st = add_json_added(*bp, path, added);
    if (!st)
        st = add_pretokenizer(*bp, path, json_object_get(root, "pre_tokenizer"), "pre_tokenizer");
    if (!st)
        st = add_json_post(*bp, path, json_object_get(root, "post_processor"));
    return st;
}

lw_status lw_bpe_load_json(const char *path, lw_tokenizer *t)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return lw_fail(LW_ERR_FORMAT, "%s:%d: %s", path, err.line, lw_json_file_error(path, &err));
    lw_bpe *b = NULL;
    lw_status st = check_json_parts(path, root);
    if (!st)
        st = fill_from_json(&b, path, root);
    json_decref(root);
    if (st) {
        lw_bpe_free(b);
        return st;
    }
    int bos = -1, eos = -1;
    read_config_ids(path, &bos, &eos);
    return lw_bpe_install(b, t, bos, eos);
}

/* ---- GPT-2's encoder.json + vocab.bpe ---- */

static lw_status add_gpt2_merges(lw_bpe *b, const char *path, char *text, size_t len)
{
    size_t line_no = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        char *end = nl ? nl : text + len;
        line_no++;
        size_t n = (size_t)(end - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (n && !(line_no == 1 && line[0] == '#')) {
            char *sp = memchr(line, ' ', n);
            if (!sp || sp == line || sp == line + n - 1)
                return lw_fail(LW_ERR_FORMAT, "%s:%zu: expected 'left right'", path, line_no);
            lw_status st = lw_bpe_add_merge(b, line, (size_t)(sp - line), sp + 1, (size_t)(line + n - sp - 1));
            if (st)
                return st;
        }
        line = end + 1;
    }
    return LW_OK;
}

static size_t count_lines(const char *text, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

lw_status lw_bpe_load_gpt2_files(const char *dir, lw_tokenizer *t)
{
    char enc_path[4096], bpe_path[4096];
    snprintf(enc_path, sizeof enc_path, "%s/encoder.json", dir);
    snprintf(bpe_path, sizeof bpe_path, "%s/vocab.bpe", dir);
    json_error_t err;
    json_t *vocab = json_load_file(enc_path, 0, &err);
    if (!vocab)
        return lw_fail(LW_ERR_FORMAT, "%s:%d: %s", enc_path, err.line, lw_json_file_error(enc_path, &err));
    char *merges = NULL;
    size_t merges_len = 0;
    lw_bpe *b = NULL;
    int n_ids = 0;
    lw_status st = json_is_object(vocab) ? max_id(enc_path, vocab, NULL, &n_ids)
                                         : lw_fail(LW_ERR_FORMAT, "%s: expected an object", enc_path);
    if (!st)
        st = lw_read_file(bpe_path, &merges, &merges_len);
    size_t n_merges = merges ? count_lines(merges, merges_len) : 0;
    if (!st)
        st = lw_bpe_new(n_ids, n_merges > LW_BPE_MAX_IDS ? -1 : (int)n_merges, bpe_path, &b);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!st)
            st = lw_bpe_set_piece(b, (int)json_integer_value(v), key, strlen(key));
    }
    if (!st)
        st = add_gpt2_merges(b, bpe_path, merges, merges_len);
    if (!st)
        st = lw_bpe_add_split(b, LW_SPLIT_GPT2);
    int eot = b ? lw_bpe_find(b, "<|endoftext|>", 13) : -1;
    if (!st && eot >= 0) /* what GPT-2's tokenizer.json declares as its one added token */
        st = lw_bpe_add_token(b, eot, "<|endoftext|>", 13, (lw_bpe_added_flags){.special = true});
    json_decref(vocab);
    free(merges);
    if (st) {
        lw_bpe_free(b);
        return st;
    }
    return lw_bpe_install(b, t, eot, eot);
}

/* ---- GGUF tokenizer.ggml.* ---- */

enum { GGUF_TOKEN_CONTROL = 3, GGUF_TOKEN_USER_DEFINED = 4 };

/* tokenizer.ggml.pre names (as llama.cpp gives them) -> our splits. */
static lw_status gguf_pre(lw_bpe *b, const lw_gguf *g)
{
    const char *pre = "default";
    size_t len = 7;
    if (lw_gguf_has(g, "tokenizer.ggml.pre") && lw_gguf_get_string(g, "tokenizer.ggml.pre", &pre, &len))
        return LW_ERR_INVALID;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), pre);
    if (strcmp(name, "smollm") == 0) {
        lw_status st = lw_bpe_add_split(b, LW_SPLIT_DIGITS);
        return st ? st : lw_bpe_add_split(b, LW_SPLIT_GPT2);
    }
    if (strcmp(name, "gpt-2") == 0 || strcmp(name, "gpt2") == 0)
        return lw_bpe_add_split(b, LW_SPLIT_GPT2);
    if (strcmp(name, "llama-bpe") == 0 || strcmp(name, "llama3") == 0) {
        lw_bpe_set_ignore_merges(b, true);
        return lw_bpe_add_split(b, LW_SPLIT_LLAMA3);
    }
    if (strcmp(name, "qwen2") == 0)
        return lw_bpe_add_split(b, LW_SPLIT_QWEN2);
    return lw_fail(LW_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported (smollm, gpt-2, "
                   "llama-bpe, qwen2 are)", lw_gguf_name(g), name);
}

static lw_status gguf_tokens(lw_bpe *b, const lw_gguf *g, uint64_t n)
{
    bool typed = lw_gguf_has(g, "tokenizer.ggml.token_type");
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        int64_t type = 1;
        lw_status st = lw_gguf_get_array_string(g, "tokenizer.ggml.tokens", i, &s, &len);
        if (!st && typed)
            st = lw_gguf_get_array_int(g, "tokenizer.ggml.token_type", i, &type);
        if (!st)
            st = lw_bpe_set_piece(b, (int)i, s, len);
        if (!st && len && (type == GGUF_TOKEN_CONTROL || type == GGUF_TOKEN_USER_DEFINED))
            st = lw_bpe_add_token(b, (int)i, s, len, (lw_bpe_added_flags){.special = type == GGUF_TOKEN_CONTROL});
        if (st)
            return st;
    }
    return LW_OK;
}

static lw_status gguf_merges(lw_bpe *b, const lw_gguf *g, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        lw_status st = lw_gguf_get_array_string(g, "tokenizer.ggml.merges", i, &s, &len);
        if (st)
            return st;
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp || sp == s + len - 1)
            return lw_fail(LW_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu]: expected 'left right'",
                           lw_gguf_name(g), (unsigned long long)i);
        st = lw_bpe_add_merge(b, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1));
        if (st)
            return st;
    }
    return LW_OK;
}

static int gguf_int_or(const lw_gguf *g, const char *key, int fallback)
{
    int64_t v;
    if (!lw_gguf_has(g, key) || lw_gguf_get_int(g, key, &v) || v < -1 || v > INT32_MAX)
        return fallback;
    return (int)v;
}

static lw_status fill_from_gguf(lw_bpe **bp, const lw_gguf *g)
{
    uint64_t n_tokens, n_merges;
    lw_status st = lw_gguf_get_array_len(g, "tokenizer.ggml.tokens", &n_tokens);
    if (!st)
        st = lw_gguf_get_array_len(g, "tokenizer.ggml.merges", &n_merges);
    if (st)
        return st;
    if (n_tokens > LW_BPE_MAX_IDS || n_merges > LW_BPE_MAX_IDS)
        return lw_fail(LW_ERR_INVALID, "%s: %llu tokens, %llu merges: too many", lw_gguf_name(g),
                       (unsigned long long)n_tokens, (unsigned long long)n_merges);
    st = lw_bpe_new((int)n_tokens, (int)n_merges, lw_gguf_name(g), bp);
    if (!st)
        st = gguf_tokens(*bp, g, n_tokens);
    if (!st)
        st = gguf_merges(*bp, g, n_merges);
    if (!st)
        st = gguf_pre(*bp, g);
    return st;
}

lw_status lw_bpe_load_gguf(const char *path, lw_tokenizer *t)
{
    lw_gguf *g;
    lw_status st = lw_gguf_open(path, &g);
    if (st)
        return st;
    const char *model = "";
    size_t len = 0;
    lw_bpe *b = NULL;
    st = lw_gguf_get_string(g, "tokenizer.ggml.model", &model, &len);
    if (!st && !(len == 4 && memcmp(model, "gpt2", 4) == 0))
        st = lw_fail(LW_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is '%.*s', expected 'gpt2'", path,
                     (int)len, model);
    if (!st)
        st = fill_from_gguf(&b, g);
    int bos = gguf_int_or(g, "tokenizer.ggml.bos_token_id", -1);
    int eos = gguf_int_or(g, "tokenizer.ggml.eos_token_id", -1);
    bool add_bos = gguf_int_or(g, "tokenizer.ggml.add_bos_token", 0) == 1;
    bool add_eos = gguf_int_or(g, "tokenizer.ggml.add_eos_token", 0) == 1;
    lw_gguf_close(g);
    if (st) {
        lw_bpe_free(b);
        return st;
    }
    lw_bpe_set_specials(b, add_bos ? bos : -1, add_eos ? eos : -1);
    return lw_bpe_install(b, t, bos, eos);
}
