/* BERT's tokenizer, ids identical to Hugging Face `tokenizers` on a
 * tokenizer.json whose model is WordPiece:
 *
 *   added tokens ([CLS], [SEP], ...) written in the text are matched on the
 *   raw text first (leftmost, longest), as HF does for normalized=false;
 *   BertNormalizer: clean_text (drop NUL, U+FFFD and control/format
 *   characters, white space -> ' '), handle_chinese_chars (' ' around CJK
 *   ideographs), strip_accents (NFD, then drop non-spacing marks; null means
 *   "as lowercase"), lowercase (char::to_lowercase, one code point at a
 *   time, so no final-sigma rule);
 *   BertPreTokenizer: split on white space (dropped) and punctuation (kept as
 *   one-character words);
 *   WordPiece: greedy longest match first, continuation pieces carry the
 *   prefix ("##"), a word with more than max_input_chars_per_word code points
 *   or with a part no piece matches becomes the unknown token as a whole;
 *   the post-processor's single-sequence template (TemplateProcessing or
 *   BertProcessing): [CLS] ... [SEP] when add_special.
 *
 * Every step is one code point at a time, read off `tokenizers` into
 * wordpiece_tables.c. The one thing that is not: NFD's canonical reordering
 * of combining marks. Only marks that are not non-spacing survive
 * strip_accents, and reordering two of those next to each other would change
 * the result; no text we tokenize has that, and the goldens would show it.
 *
 * Truncation and padding in tokenizer.json are encode-time options of HF's
 * Python API and are not applied here: the encoder (bert.c) refuses
 * sequences longer than its position table, and callers cut text themselves. */
#include "tokenizer_wordpiece.h"
#include "jsonerr.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WP_MAX_AFFIX = 4 };

typedef struct {
    char *s;
    size_t len;
    int id;
} wp_added;

typedef struct {
    char **pieces;   /* [n_ids], NULL where no piece has the id */
    size_t *lens;
    int n_ids;
    int *slots;      /* open addressing: id + 1, 0 = empty */
    size_t n_slots;
    int unk_id;
    char prefix[16];
    size_t prefix_len;
    int max_chars;
    bool clean, chinese, strip, lower;
    wp_added *added;
    int n_added;
    int pre_ids[WP_MAX_AFFIX], n_pre;   /* post-processor: before the sequence */
    int post_ids[WP_MAX_AFFIX], n_post; /* and after it */
} wordpiece;

/* ---- vocabulary ------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int vocab_find(const wordpiece *w, const char *s, size_t len)
{
    size_t mask = w->n_slots - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int id = w->slots[i] - 1;
        if (id < 0) return -1;
        if (w->lens[id] == len && memcmp(w->pieces[id], s, len) == 0) return id;
    }
}

static void vocab_insert(wordpiece *w, int id)
{
    size_t mask = w->n_slots - 1;
    size_t i = hash_bytes(w->pieces[id], w->lens[id]) & mask;
    while (w->slots[i]) i = (i + 1) & mask;
    w->slots[i] = id + 1;
}

static void wp_free(void *impl)
{
    wordpiece *w = impl;
    if (!w) return;
    for (int i = 0; i < w->n_ids; i++) free(w->pieces[i]);
    for (int i = 0; i < w->n_added; i++) free(w->added[i].s);
    free(w->pieces);
    free(w->lens);
    free(w->slots);
    free(w->added);
    free(w);
}

/* ---- the per-code-point tables ---------------------------------------------- */

static bool in_ranges(const lw_uc_range *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid - 1;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return true;
    }
    return false;
}

static const lw_wp_map *map_find(const lw_wp_map *m, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < m[mid].cp) hi = mid - 1;
        else if (cp > m[mid].cp) lo = mid + 1;
        else return &m[mid];
    }
    return NULL;
}

/* ---- growable arrays ------------------------------------------------------- */

typedef struct {
    uint32_t *v;
    size_t n, cap;
    bool oom;
} cp_vec;

static void cp_push(cp_vec *a, uint32_t cp)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) { a->oom = true; return; }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = cp;
}

typedef struct {
    int *v;
    int n, cap;
    bool oom;
} id_vec;

static void id_push(id_vec *a, int id)
{
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 64;
        int *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) { a->oom = true; return; }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
}

/* ---- normalizer ------------------------------------------------------------ */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7, HANGUL_VC = 21, HANGUL_TC = 28,
       HANGUL_N = 19 * 21 * 28 };

static void push_lower(const wordpiece *w, cp_vec *out, uint32_t cp)
{
    const lw_wp_map *m = w->lower ? map_find(lw_wp_lower_map, lw_wp_lower_map_count, cp) : NULL;
    if (!m) { cp_push(out, cp); return; }
    for (int i = 0; i < m->n; i++) cp_push(out, m->out[i]);
}

/* strip_accents then lowercase, for one code point. */
static void push_stripped(const wordpiece *w, cp_vec *out, uint32_t cp)
{
    if (!w->strip) { push_lower(w, out, cp); return; }
    if (in_ranges(lw_wp_strip_drop, lw_wp_strip_drop_count, cp)) return;
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_N) {   /* Unicode's algorithmic decomposition */
        uint32_t s = cp - HANGUL_S;
        push_lower(w, out, HANGUL_L + s / (HANGUL_VC * HANGUL_TC));
        push_lower(w, out, HANGUL_V + s % (HANGUL_VC * HANGUL_TC) / HANGUL_TC);
        if (s % HANGUL_TC) push_lower(w, out, HANGUL_T + s % HANGUL_TC);
        return;
    }
    const lw_wp_map *m = map_find(lw_wp_strip_map, lw_wp_strip_map_count, cp);
    if (!m) { push_lower(w, out, cp); return; }
    for (int i = 0; i < m->n; i++) push_lower(w, out, m->out[i]);
}

/* BertNormalizer over valid UTF-8 text[0..len). */
static void normalize(const wordpiece *w, const char *text, size_t len, cp_vec *out)
{
    size_t i = 0;
    while (i < len) {
        size_t adv;
        uint32_t cp = lw_utf8_decode((const unsigned char *)text + i, len - i, &adv);
        i += adv;
        if (w->clean) {
            if (in_ranges(lw_wp_clean_drop, lw_wp_clean_drop_count, cp)) continue;
            if (in_ranges(lw_wp_clean_space, lw_wp_clean_space_count, cp)) cp = ' ';
        }
        bool chinese = w->chinese && in_ranges(lw_wp_chinese, lw_wp_chinese_count, cp);
        if (chinese) cp_push(out, ' ');
        push_stripped(w, out, cp);
        if (chinese) cp_push(out, ' ');
    }
}

/* ---- WordPiece --------------------------------------------------------------- */

/* One pre-tokenized word (n code points) to ids. text has room for 4n
 * bytes (the word's UTF-8), piece for the prefix and 4n more (the candidate
 * piece), offs for n + 1 byte offsets. */
static void wordpiece_word(const wordpiece *w, const uint32_t *word, size_t n, char *text, char *piece,
                           size_t *offs, id_vec *out)
{
    if (n > (size_t)w->max_chars) { id_push(out, w->unk_id); return; }
    offs[0] = 0;
    for (size_t k = 0; k < n; k++) offs[k + 1] = offs[k] + (size_t)lw_utf8_encode(word[k], text + offs[k]);
    int first = out->n;
    for (size_t start = 0; start < n;) {
        size_t pl = start ? w->prefix_len : 0;   /* continuation pieces carry the prefix */
        memcpy(piece, w->prefix, pl);
        int id = -1;
        size_t end = n;
        for (; end > start && id < 0; end--) {
            memcpy(piece + pl, text + offs[start], offs[end] - offs[start]);
            id = vocab_find(w, piece, pl + offs[end] - offs[start]);
        }
        if (id < 0) {   /* no piece fits: the whole word is unknown */
            out->n = first;
            id_push(out, w->unk_id);
            return;
        }
        id_push(out, id);
        start = end + 1;
    }
}

/* BertPreTokenizer then WordPiece over normalized code points. */
static lw_status tokenize_normalized(const wordpiece *w, const cp_vec *cps, id_vec *out)
{
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < cps->n; i++) {
        run = cps->v[i] == ' ' ? 0 : run + 1;
        if (run > longest) longest = run;
    }
    char *buf = malloc(w->prefix_len + 8 * longest + 1);   /* the word, then the candidate piece */
    size_t *offs = malloc(sizeof *offs * (longest + 1));
    if (!buf || !offs) {
        free(buf);
        free(offs);
        return lw_fail(LW_ERR_NOMEM, "wordpiece: out of memory for a word of %zu code points", longest);
    }
    size_t start = 0;
    for (size_t i = 0; i <= cps->n; i++) {
        uint32_t cp = i < cps->n ? cps->v[i] : ' ';
        bool space = in_ranges(lw_wp_pre_space, lw_wp_pre_space_count, cp);
        bool punct = !space && in_ranges(lw_wp_pre_punct, lw_wp_pre_punct_count, cp);
        if (!space && !punct) continue;
        if (i > start) wordpiece_word(w, cps->v + start, i - start, buf, buf + 4 * longest, offs, out);
        if (punct) wordpiece_word(w, cps->v + i, 1, buf, buf + 4 * longest, offs, out);
        start = i + 1;
    }
    free(buf);
    free(offs);
    return out->oom ? lw_fail(LW_ERR_NOMEM, "wordpiece: out of memory") : LW_OK;
}

/* The added token that starts at text[pos], longest first; -1 if none. */
static int added_at(const wordpiece *w, const char *text, size_t pos, size_t len, size_t *match_len)
{
    int best = -1;
    *match_len = 0;
    for (int i = 0; i < w->n_added; i++) {
        const wp_added *a = &w->added[i];
        if (a->len > *match_len && a->len <= len - pos && memcmp(text + pos, a->s, a->len) == 0) {
            best = i;
            *match_len = a->len;
        }
    }
    return best < 0 ? -1 : w->added[best].id;
}

static lw_status segment(const wordpiece *w, const char *text, size_t len, id_vec *out)
{
    cp_vec cps = {0};
    normalize(w, text, len, &cps);
    lw_status st = cps.oom ? lw_fail(LW_ERR_NOMEM, "wordpiece: out of memory") : tokenize_normalized(w, &cps, out);
    free(cps.v);
    return st;
}

static lw_status wp_encode(const lw_tokenizer *t, const char *raw, size_t raw_len, bool add_special, int **ids,
                           int *n_ids)
{
    const wordpiece *w = t->impl;
    char *text;
    size_t len;
    lw_status st = lw_utf8_sanitize(raw, raw_len, &text, &len);
    if (st) return st;
    id_vec out = {0};
    if (add_special)
        for (int i = 0; i < w->n_pre; i++) id_push(&out, w->pre_ids[i]);
    size_t seg = 0;
    for (size_t pos = 0; pos < len && !st;) {
        size_t mlen;
        int id = added_at(w, text, pos, len, &mlen);
        if (id < 0) { pos++; continue; }
        if (pos > seg) st = segment(w, text + seg, pos - seg, &out);
        id_push(&out, id);
        pos += mlen;
        seg = pos;
    }
    if (!st && len > seg) st = segment(w, text + seg, len - seg, &out);
    if (add_special)
        for (int i = 0; i < w->n_post; i++) id_push(&out, w->post_ids[i]);
    free(text);
    if (!st && out.oom) st = lw_fail(LW_ERR_NOMEM, "wordpiece: out of memory");
    if (st) { free(out.v); return st; }
    if (!out.v) out.v = malloc(sizeof(int));   /* the caller frees even an empty result */
    if (!out.v) return lw_fail(LW_ERR_NOMEM, "wordpiece: out of memory");
    *ids = out.v;
    *n_ids = out.n;
    return LW_OK;
}

/* HF's WordPiece decoder: pieces joined with ' ', the prefix removed from
 * continuation pieces (not from the first), then its cleanup on each piece
 * (" ." -> "." and the like), as tokenizers' decode_chain does. */
static const char *const cleanup_from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " do not", " 's", " 've",
                                           " 're"};
static const char *const cleanup_to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};

static char *replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from)) n++;
    if (!n) return s;
    char *r = malloc(strlen(s) + n * tl + 1), *o = r;   /* tl <= fl for every pair but " do not" */
    if (!r) { free(s); return NULL; }
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(s);
    return r;
}

static lw_status wp_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    const wordpiece *w = t->impl;
    size_t cap = 1;
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= w->n_ids || !w->pieces[ids[i]])
            return lw_fail(LW_ERR_INVALID, "wordpiece decode: id %d at position %d is not in the vocabulary "
                           "(%d ids)", ids[i], i, w->n_ids);
        cap += w->lens[ids[i]] + 1;
    }
    char *out = malloc(cap);
    if (!out) return lw_fail(LW_ERR_NOMEM, "wordpiece decode: out of memory");
    size_t n = 0;
    for (int i = 0; i < n_ids; i++) {
        const char *p = w->pieces[ids[i]];
        size_t pl = w->lens[ids[i]];
        char *tok = malloc(pl + 2);
        if (!tok) { free(out); return lw_fail(LW_ERR_NOMEM, "wordpiece decode: out of memory"); }
        if (i > 0 && pl >= w->prefix_len && memcmp(p, w->prefix, w->prefix_len) == 0) {
            memcpy(tok, p + w->prefix_len, pl - w->prefix_len);
            tok[pl - w->prefix_len] = 0;
        } else if (i > 0) {
            tok[0] = ' ';
            memcpy(tok + 1, p, pl);
            tok[pl + 1] = 0;
        } else {
            memcpy(tok, p, pl);
            tok[pl] = 0;
        }
        for (size_t k = 0; tok && k < sizeof cleanup_from / sizeof cleanup_from[0]; k++)
            tok = replace_all(tok, cleanup_from[k], cleanup_to[k]);
        if (!tok) { free(out); return lw_fail(LW_ERR_NOMEM, "wordpiece decode: out of memory"); }
        size_t tl = strlen(tok);
        if (n + tl + 1 > cap) {   /* " do not" -> " don't" grows a piece by one byte */
            cap = 2 * (n + tl + 1);
            char *o = realloc(out, cap);
            if (!o) { free(tok); free(out); return lw_fail(LW_ERR_NOMEM, "wordpiece decode: out of memory"); }
            out = o;
        }
        memcpy(out + n, tok, tl);
        n += tl;
        free(tok);
    }
    out[n] = 0;
    *text = out;
    return LW_OK;
}

static int wp_piece_id(const lw_tokenizer *t, const char *piece)
{
    return vocab_find(t->impl, piece, strlen(piece));
}

static const lw_tokenizer_ops wordpiece_ops = {wp_encode, wp_decode, wp_piece_id, wp_free};

/* ---- tokenizer.json ------------------------------------------------------------ */

static const char *type_of(const json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "(no type)";
}

/* A boolean option; absent = dflt. */
static lw_status get_flag(const char *path, const json_t *obj, const char *where, const char *key, bool dflt,
                          bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) { *out = dflt; return LW_OK; }
    if (!json_is_boolean(v)) return lw_fail(LW_ERR_FORMAT, "%s: %s.%s: expected true or false", path, where, key);
    *out = json_is_true(v);
    return LW_OK;
}

static lw_status read_normalizer(const char *path, const json_t *n, wordpiece *w)
{
    if (!n || json_is_null(n)) return LW_OK;   /* no normalization at all */
    if (strcmp(type_of(n), "BertNormalizer") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: normalizer: type %s is not supported (BertNormalizer or null is)",
                       path, type_of(n));
    lw_status st;
    if ((st = get_flag(path, n, "normalizer", "clean_text", true, &w->clean))) return st;
    if ((st = get_flag(path, n, "normalizer", "handle_chinese_chars", true, &w->chinese))) return st;
    if ((st = get_flag(path, n, "normalizer", "lowercase", true, &w->lower))) return st;
    const json_t *strip = json_object_get(n, "strip_accents");
    if (!strip || json_is_null(strip)) w->strip = w->lower;   /* HF: unset means "as lowercase" */
    else if ((st = get_flag(path, n, "normalizer", "strip_accents", false, &w->strip))) return st;
    return LW_OK;
}

static lw_status special_id(const char *path, const wordpiece *w, const json_t *specials, const char *name,
                            const char *where, int *id)
{
    const json_t *ids = json_object_get(json_object_get(specials, name), "ids");
    if (json_is_array(ids) && json_array_size(ids) == 1 && json_is_integer(json_array_get(ids, 0))) {
        json_int_t v = json_integer_value(json_array_get(ids, 0));
        if (v >= 0 && v < w->n_ids) { *id = (int)v; return LW_OK; }
    }
    return lw_fail(LW_ERR_FORMAT, "%s: %s: special token '%s' needs \"ids\": [one id below %d] in "
                   "post_processor.special_tokens", path, where, name, w->n_ids);
}

/* The single-sequence template: the special tokens around "A". */
static lw_status read_post_processor(const char *path, const json_t *p, wordpiece *w)
{
    if (!p || json_is_null(p)) return LW_OK;
    const char *type = type_of(p);
    if (strcmp(type, "BertProcessing") == 0) {
        const json_t *cls = json_object_get(p, "cls"), *sep = json_object_get(p, "sep");
        if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1)))
            return lw_fail(LW_ERR_FORMAT, "%s: post_processor: BertProcessing needs cls and sep as [token, id]",
                           path);
        json_int_t c = json_integer_value(json_array_get(cls, 1)), s = json_integer_value(json_array_get(sep, 1));
        if (c < 0 || c >= w->n_ids || s < 0 || s >= w->n_ids)
            return lw_fail(LW_ERR_FORMAT, "%s: post_processor: cls/sep ids outside the vocabulary", path);
        w->pre_ids[w->n_pre++] = (int)c;
        w->post_ids[w->n_post++] = (int)s;
        return LW_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: post_processor: type %s is not supported (TemplateProcessing, "
                       "BertProcessing or null is)", path, type);
    const json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
    if (!json_is_array(single))
        return lw_fail(LW_ERR_FORMAT, "%s: post_processor.single: expected an array", path);
    bool seen_seq = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *e = json_array_get(single, i);
        char where[64];
        snprintf(where, sizeof where, "post_processor.single[%zu]", i);
        if (json_object_get(e, "Sequence")) {
            if (seen_seq) return lw_fail(LW_ERR_FORMAT, "%s: %s: a second Sequence", path, where);
            seen_seq = true;
            continue;
        }
        const char *name = json_string_value(json_object_get(json_object_get(e, "SpecialToken"), "id"));
        if (!name) return lw_fail(LW_ERR_FORMAT, "%s: %s: expected SpecialToken or Sequence", path, where);
        int *n = seen_seq ? &w->n_post : &w->n_pre;
        if (*n == WP_MAX_AFFIX)
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s: more than %d special tokens on one side", path, where,
                           WP_MAX_AFFIX);
        int id = -1;
        lw_status st = special_id(path, w, specials, name, where, &id);
        if (st) return st;
        (seen_seq ? w->post_ids : w->pre_ids)[(*n)++] = id;
    }
    if (!seen_seq) return lw_fail(LW_ERR_FORMAT, "%s: post_processor.single: no Sequence", path);
    return LW_OK;
}

static lw_status set_piece(const char *path, wordpiece *w, const char *key, size_t len, json_int_t id,
                           const char *where)
{
    if (id < 0 || id >= w->n_ids)
        return lw_fail(LW_ERR_FORMAT, "%s: %s: id %lld out of range", path, where, (long long)id);
    if (w->pieces[id]) {
        if (w->lens[id] == len && memcmp(w->pieces[id], key, len) == 0) return LW_OK;   /* added token in vocab */
        return lw_fail(LW_ERR_FORMAT, "%s: %s: id %lld is given to two pieces", path, where, (long long)id);
    }
    if (!(w->pieces[id] = malloc(len + 1))) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    memcpy(w->pieces[id], key, len);
    w->pieces[id][len] = 0;
    w->lens[id] = len;
    return LW_OK;
}

static lw_status read_vocab(const char *path, const json_t *vocab, const json_t *added, wordpiece *w)
{
    json_int_t max = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v))
            return lw_fail(LW_ERR_FORMAT, "%s: model.vocab[\"%s\"]: expected an integer id", path, key);
        if (json_integer_value(v) > max) max = json_integer_value(v);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *id = json_object_get(json_array_get(added, i), "id");
        if (!json_is_integer(id))
            return lw_fail(LW_ERR_FORMAT, "%s: added_tokens[%zu].id: expected an integer", path, i);
        if (json_integer_value(id) > max) max = json_integer_value(id);
    }
    if (max < 0 || max >= (1 << 24))
        return lw_fail(LW_ERR_FORMAT, "%s: model.vocab: expected 1 to %d pieces, largest id is %lld", path, 1 << 24,
                       (long long)max);
    w->n_ids = (int)max + 1;
    w->n_slots = 1;
    while (w->n_slots < 2 * (size_t)w->n_ids) w->n_slots *= 2;
    w->pieces = calloc((size_t)w->n_ids, sizeof *w->pieces);
    w->lens = calloc((size_t)w->n_ids, sizeof *w->lens);
    w->slots = calloc(w->n_slots, sizeof *w->slots);
    w->added = calloc(json_array_size(added) + 1, sizeof *w->added);
    if (!w->pieces || !w->lens || !w->slots || !w->added) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    lw_status st;
    json_object_foreach((json_t *)vocab, key, v) {
        if ((st = set_piece(path, w, key, strlen(key), json_integer_value(v), "model.vocab"))) return st;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        const char *content = json_string_value(json_object_get(a, "content"));
        if (!content || !*content)
            return lw_fail(LW_ERR_FORMAT, "%s: %s.content: expected a non-empty string", path, where);
        /* HF matches such tokens on the normalized text, or with white space
         * around them; BERT's are none of these, and we refuse rather than differ. */
        static const char *const flags[] = {"normalized", "lstrip", "rstrip", "single_word"};
        for (size_t k = 0; k < 4; k++)
            if (json_is_true(json_object_get(a, flags[k])))
                return lw_fail(LW_ERR_UNSUPPORTED, "%s: %s (%s): %s=true is not supported", path, where, content,
                               flags[k]);
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        if ((st = set_piece(path, w, content, strlen(content), id, where))) return st;
        w->added[w->n_added++] = (wp_added){strdup(content), strlen(content), (int)id};
        if (!w->added[w->n_added - 1].s) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int id = 0; id < w->n_ids; id++)
        if (w->pieces[id]) {
            if (vocab_find(w, w->pieces[id], w->lens[id]) >= 0)
                return lw_fail(LW_ERR_FORMAT, "%s: piece '%s' has two ids", path, w->pieces[id]);
            vocab_insert(w, id);
        }
    return LW_OK;
}

static lw_status read_model(const char *path, const json_t *root, wordpiece *w)
{
    const json_t *model = json_object_get(root, "model");
    if (strcmp(type_of(model), "WordPiece") != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: model.type is %s, expected WordPiece", path, type_of(model));
    const json_t *vocab = json_object_get(model, "vocab"), *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab)) return lw_fail(LW_ERR_FORMAT, "%s: model.vocab: expected an object", path);
    if (added && !json_is_array(added)) return lw_fail(LW_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    lw_status st = read_vocab(path, vocab, added, w);
    if (st) return st;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (!unk || (w->unk_id = vocab_find(w, unk, strlen(unk))) < 0)
        return lw_fail(LW_ERR_FORMAT, "%s: model.unk_token: expected a piece of the vocabulary", path);
    const json_t *prefix = json_object_get(model, "continuing_subword_prefix");
    const char *pf = prefix ? json_string_value(prefix) : "##";
    if (!pf || strlen(pf) >= sizeof w->prefix)
        return lw_fail(LW_ERR_FORMAT, "%s: model.continuing_subword_prefix: expected a string of at most %zu bytes",
                       path, sizeof w->prefix - 1);
    strcpy(w->prefix, pf);
    w->prefix_len = strlen(pf);
    const json_t *mx = json_object_get(model, "max_input_chars_per_word");
    w->max_chars = 100;
    if (mx) {
        if (!json_is_integer(mx) || json_integer_value(mx) < 1 || json_integer_value(mx) > 1000000)
            return lw_fail(LW_ERR_FORMAT, "%s: model.max_input_chars_per_word: expected 1 to 1000000", path);
        w->max_chars = (int)json_integer_value(mx);
    }
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    if (strcmp(type_of(pre), "BertPreTokenizer") != 0)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: pre_tokenizer: type %s is not supported (BertPreTokenizer is)", path,
                       type_of(pre));
    if ((st = read_normalizer(path, json_object_get(root, "normalizer"), w))) return st;
    return read_post_processor(path, json_object_get(root, "post_processor"), w);
}

lw_status lw_wordpiece_load_json(const char *path, lw_tokenizer *t)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return lw_fail(LW_ERR_FORMAT, "%s:%d: %s", path, err.line, lw_json_file_error(path, &err));
    wordpiece *w = calloc(1, sizeof *w);
    lw_status st = w ? LW_OK : lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    if (!st) {
        t->ops = &wordpiece_ops;   /* so that lw_tokenizer_load frees w on failure */
        t->impl = w;
        st = read_model(path, root, w);
    }
    json_decref(root);
    if (st) return st;
    t->vocab_size = w->n_ids;
    /* an encoder has no BOS/EOS; the template's first and last specials
     * ([CLS], [SEP]) are what stands at the two ends */
    t->bos_id = w->n_pre ? w->pre_ids[0] : -1;
    t->eos_id = w->n_post ? w->post_ids[w->n_post - 1] : -1;
    return LW_OK;
}
