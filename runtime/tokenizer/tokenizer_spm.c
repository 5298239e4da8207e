/* SentencePiece BPE with byte fallback, giving the ids Hugging Face's
 * `tokenizers` gives for the same file: Llama 2 / Mistral tokenizer.json,
 * a SentencePiece tokenizer.model, and GGUF "llama" metadata (Gemma 3).
 *
 * Encoding, as HF does it:
 *   1. invalid UTF-8 becomes U+FFFD (Python's errors='replace'), since HF only
 *      ever sees Python strings;
 *   2. added tokens (<s>, <start_of_turn>, user-defined pieces ...) are cut out
 *      of the raw text, leftmost-longest;
 *   3. each remaining segment is normalized: an optional "▁" prefix, spaces
 *      become "▁";
 *   4. the segment is one BPE word: characters (or their <0xXX> bytes when a
 *      character is not a piece) merged pair by pair, lowest merge rank first,
 *      leftmost on ties, with the same queue and staleness rule as HF's
 *      Word::merge_all so even odd vocabularies agree.
 * The files differ only in where the merge ranks come from: tokenizer.json
 * lists them; tokenizer.model and GGUF give pieces and scores, from which we
 * derive the ranks exactly as transformers' generate_merges() does.
 *
 * What HF builds from each file (and so what we do):
 *   tokenizer.json  its own normalizer / pre-tokenizer / post-processor;
 *   tokenizer.model the legacy Llama conversion: Prepend("▁") + Replace,
 *                   control/user-defined/unknown pieces as added tokens
 *                   (agrees with the sentencepiece library on plain text);
 *   GGUF, Gemma     GemmaTokenizer: Replace only, runs of spaces respelled as
 *                   "▁" runs, merges ranked by piece order, no decoder Strip;
 *   GGUF, other     LlamaTokenizer: Metaspace(prepend_scheme=first) + Strip.
 *   In GGUFs, CONTROL and USER_DEFINED pieces and the bos/eos/unk/pad ids are
 *   added tokens. */
#include "tokenizer_impl.h"
#include "jsonerr.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "gguf.h"
#include "unicode.h"

#define SPACE_MARK "\xE2\x96\x81" /* U+2581 "▁", SentencePiece's space */

/* How a segment gets its "▁" prefix. */
typedef enum {
    PREFIX_NONE,    /* Gemma */
    PREFIX_ALWAYS,  /* normalizer Prepend("▁"): every non-empty segment */
    PREFIX_FIRST    /* Metaspace(prepend_scheme=first): the segment at offset 0, unless it has one */
} prefix_mode;

typedef struct {
    uint64_t key;  /* left id << 32 | right id; 0 marks an empty slot (ids are offset by 1) */
    uint32_t rank;
    int32_t new_id;
} merge_slot;

typedef struct {
    /* pieces: bytes of id i are arena[off[i] .. off[i]+len[i]); absent ids have len 0 */
    char *arena;
    uint32_t *off, *len;
    int n;
    int32_t *piece_slots;   /* open-addressed piece -> id, -1 empty */
    uint32_t piece_cap;

    merge_slot *merges;
    uint32_t merge_cap;

    /* added tokens: matched whole in the raw text */
    int32_t *added_slots;   /* open-addressed content -> id (an id whose piece is the content) */
    uint32_t added_cap;
    int n_added;
    int added_max_len;
    bool added_first[256];  /* bytes an added token can start with */

    int byte_id[256];       /* id of "<0xXX>" or -1 */
    bool byte_fallback;
    int unk_id;             /* -1 if none */
    bool fuse_unk;
    prefix_mode prefix;
    bool strip_leading_space; /* decoder Strip(" ", 1, 0) */

    int prefix_ids[4], n_prefix_ids;  /* what add_special puts before ... */
    int suffix_ids[4], n_suffix_ids;  /* ... and after the text */
} spm;

/* ---- hashing ---- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = lw_fnv1a(LW_FNV_INIT, s, n);
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* A power-of-two table size for n entries at most half full; 0 if too big. */
static uint32_t pow2_at_least(uint64_t n)
{
    if (n > (1u << 30))
        return 0;
    uint32_t c = 16;
    while (c < n * 2)
        c *= 2;
    return c;
}

static bool piece_is(const spm *m, int id, const char *s, size_t n)
{
    return m->len[id] == n && memcmp(m->arena + m->off[id], s, n) == 0;
}

/* Slot of piece s in a table of ids (either pieces or added tokens). */
static uint32_t find_slot(const spm *m, const int32_t *slots, uint32_t cap, const char *s, size_t n)
{
    uint32_t i = hash_bytes(s, n) & (cap - 1);
    while (slots[i] >= 0 && !piece_is(m, slots[i], s, n))
        i = (i + 1) & (cap - 1);
    return i;
}

static int lookup(const spm *m, const int32_t *slots, uint32_t cap, const char *s, size_t n)
{
    if (!slots)
        return -1;
    return slots[find_slot(m, slots, cap, s, n)];
}

static int piece_lookup(const spm *m, const char *s, size_t n)
{
    return lookup(m, m->piece_slots, m->piece_cap, s, n);
}

static const merge_slot *merge_lookup(const spm *m, int left, int right)
{
    if (!m->merges)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)(left + 1) << 32) | (uint32_t)(right + 1);
    uint32_t i = hash_u64(key) & (m->merge_cap - 1);
    while (m->merges[i].key && m->merges[i].key != key)
        i = (i + 1) & (m->merge_cap - 1);
    return m->merges[i].key ? &m->merges[i] : NULL;
}

/* ---- building ---- */

static void spm_free(void *impl)
{
    spm *m = impl;
    if (!m)
        return;
    free(m->arena);
    free(m->off);
    free(m->len);
    free(m->piece_slots);
    free(m->merges);
    free(m->added_slots);
    free(m);
}

/* Allocates n pieces and an arena of arena_bytes (filled by set_piece in any order). */
static lw_status spm_alloc(spm **out, int n, size_t arena_bytes)
{
    if (arena_bytes > UINT32_MAX)  /* offsets are 32-bit */
        return lw_fail(LW_ERR_INVALID, "tokenizer: %zu bytes of pieces are too many", arena_bytes);
    spm *m = calloc(1, sizeof *m);
    if (!m)
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory");
    m->n = n;
    m->unk_id = -1;
    m->arena = malloc(arena_bytes ? arena_bytes : 1);
    m->off = calloc((size_t)n, sizeof *m->off);
    m->len = calloc((size_t)n, sizeof *m->len);
    if (!m->arena || !m->off || !m->len) {
        spm_free(m);
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory for %d pieces", n);
    }
    *out = m;
    return LW_OK;
}

/* Builds the piece hash; duplicate pieces are refused (no real SentencePiece
 * vocabulary has them, and HF's handling of them depends on dict order). */
static lw_status build_piece_index(spm *m, const char *what)
{
    m->piece_cap = pow2_at_least((uint64_t)m->n);
    if (!m->piece_cap)
        return lw_fail(LW_ERR_INVALID, "%s: %d pieces are too many", what, m->n);
    m->piece_slots = malloc(m->piece_cap * sizeof *m->piece_slots);
    if (!m->piece_slots)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for the piece index", what);
    memset(m->piece_slots, 0xff, m->piece_cap * sizeof *m->piece_slots);
    for (int i = 0; i < m->n; i++) {
        if (m->len[i] == 0)
            continue;
        uint32_t s = find_slot(m, m->piece_slots, m->piece_cap, m->arena + m->off[i], m->len[i]);
        if (m->piece_slots[s] >= 0)
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: piece %d \"%.*s\" duplicates piece %d", what, i,
                           (int)m->len[i], m->arena + m->off[i], m->piece_slots[s]);
        m->piece_slots[s] = i;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_id[b] = piece_lookup(m, name, 6);
    }
    return LW_OK;
}

static lw_status alloc_merges(spm *m, size_t n, const char *what)
{
    m->merge_cap = pow2_at_least(n);
    if (!m->merge_cap)
        return lw_fail(LW_ERR_INVALID, "%s: %zu merges are too many", what, n);
    m->merges = calloc(m->merge_cap, sizeof *m->merges);
    if (!m->merges)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %zu merges", what, n);
    return LW_OK;
}

/* A later merge of the same pair replaces the earlier one, as HF's HashMap collect does. */
static void add_merge(spm *m, int left, int right, uint32_t rank, int new_id)
{
    uint64_t key = ((uint64_t)(uint32_t)(left + 1) << 32) | (uint32_t)(right + 1);
    uint32_t i = hash_u64(key) & (m->merge_cap - 1);
    while (m->merges[i].key && m->merges[i].key != key)
        i = (i + 1) & (m->merge_cap - 1);
    m->merges[i].key = key;
    m->merges[i].rank = rank;
    m->merges[i].new_id = new_id;
}

/* Marks the ids as added tokens (their piece is their text). */
static lw_status build_added_index(spm *m, const int *ids, int n, const char *what)
{
    m->added_cap = pow2_at_least((uint64_t)(n > 0 ? n : 1));
    if (!m->added_cap)
        return lw_fail(LW_ERR_INVALID, "%s: %d added tokens are too many", what, n);
    m->added_slots = malloc(m->added_cap * sizeof *m->added_slots);
    if (!m->added_slots)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for added tokens", what);
    memset(m->added_slots, 0xff, m->added_cap * sizeof *m->added_slots);
    for (int k = 0; k < n; k++) {
        int id = ids[k];
        if (id < 0 || id >= m->n || m->len[id] == 0)
            return lw_fail(LW_ERR_FORMAT, "%s: added token id %d has no piece", what, id);
        const char *s = m->arena + m->off[id];
        uint32_t slot = find_slot(m, m->added_slots, m->added_cap, s, m->len[id]);
        m->added_slots[slot] = id;  /* the later of two equal contents wins */
        if ((int)m->len[id] > m->added_max_len)
            m->added_max_len = (int)m->len[id];
        m->added_first[(unsigned char)s[0]] = true;
    }
    m->n_added = n;
    return LW_OK;
}

/* ---- merges derived from scores, as transformers' generate_merges ---- */

typedef struct {
    double score;       /* of the merged piece; higher merges first */
    uint32_t len_l, len_r; /* in code points; longer first on equal score */
    uint32_t seq;       /* generation order, keeps the sort stable */
    int32_t left, right, merged;
} merge_cand;

static int cmp_cand(const void *a, const void *b)
{
    const merge_cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->len_l != y->len_l)
        return x->len_l > y->len_l ? -1 : 1;
    if (x->len_r != y->len_r)
        return x->len_r > y->len_r ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static uint32_t count_chars(const char *s, size_t n)
{
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Every split of every piece into two pieces is a merge; they are ranked by
 * the merged piece's score (descending), then by the lengths of the halves
 * (descending); within one piece, splits come in (left id, right id) order. */
static lw_status derive_merges(spm *m, const double *score, const char *what)
{
    size_t cap = 1024, n = 0;
    merge_cand *c = malloc(cap * sizeof *c);
    if (!c)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for merges", what);
    for (int id = 0; id < m->n; id++) {
        const char *p = m->arena + m->off[id];
        size_t first = n;
        for (uint32_t k = 1; k < m->len[id]; k++) {
            if (((unsigned char)p[k] & 0xC0) == 0x80)
                continue;  /* split only between characters */
            int l = piece_lookup(m, p, k), r = l < 0 ? -1 : piece_lookup(m, p + k, m->len[id] - k);
            if (r < 0)
                continue;
            if (n == cap) {
                merge_cand *g = cap > SIZE_MAX / 2 / sizeof *c ? NULL : realloc(c, 2 * cap * sizeof *c);
                if (!g) {
                    free(c);
                    return lw_fail(LW_ERR_NOMEM, "%s: out of memory for merges", what);
                }
                c = g;
                cap *= 2;
            }
            c[n++] = (merge_cand){score[id], count_chars(p, k), count_chars(p + k, m->len[id] - k), 0, l, r, id};
        }
        /* local order: by (left id, right id) */
        for (size_t i = first + 1; i < n; i++)
            for (size_t j = i; j > first && (c[j].left < c[j - 1].left ||
                                              (c[j].left == c[j - 1].left && c[j].right < c[j - 1].right)); j--) {
                merge_cand t = c[j];
                c[j] = c[j - 1];
                c[j - 1] = t;
            }
    }
    for (size_t i = 0; i < n; i++)
        c[i].seq = (uint32_t)i;
    qsort(c, n, sizeof *c, cmp_cand);
    lw_status st = alloc_merges(m, n, what);
    for (size_t i = 0; st == LW_OK && i < n; i++)
        add_merge(m, c[i].left, c[i].right, (uint32_t)i, c[i].merged);
    free(c);
    return st;
}

/* ---- encoding ---- */

typedef struct {
    int *ids;
    int n, cap;
} id_list;

static lw_status push_id(id_list *l, int id)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        if (cap < l->cap)
            return lw_fail(LW_ERR_INVALID, "tokenizer: too many tokens");
        int *g = realloc(l->ids, (size_t)cap * sizeof *g);
        if (!g)
            return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory for %d ids", cap);
        l->ids = g;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return LW_OK;
}

typedef struct {
    int id;
    int prev, next; /* -1 at the ends */
    bool gone;      /* merged into its left neighbour */
} symbol;

typedef struct {
    uint32_t rank;
    int pos;
    int new_id;
} queued_merge;

/* Min-heap on (rank, pos): HF's Merge ordering. */
static bool qm_before(queued_merge a, queued_merge b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

typedef struct {
    queued_merge *q;
    size_t n, cap;
} merge_heap;

static lw_status heap_push(merge_heap *h, queued_merge x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        queued_merge *g = realloc(h->q, cap * sizeof *g);
        if (!g)
            return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory in BPE");
        h->q = g;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && qm_before(x, h->q[(i - 1) / 2])) {
        h->q[i] = h->q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->q[i] = x;
    return LW_OK;
}

static queued_merge heap_pop(merge_heap *h)
{
    queued_merge top = h->q[0], last = h->q[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && qm_before(h->q[c + 1], h->q[c]))
            c++;
        if (!qm_before(h->q[c], last))
            break;
        h->q[i] = h->q[c];
        i = c;
    }
    if (h->n)
        h->q[i] = last;
    return top;
}

static lw_status queue_pair(const spm *m, merge_heap *h, const symbol *sy, int pos)
{
    const merge_slot *mg = merge_lookup(m, sy[pos].id, sy[sy[pos].next].id);
    if (!mg)
        return LW_OK;
    return heap_push(h, (queued_merge){mg->rank, pos, mg->new_id});
}

/* Characters of the word as symbols: a piece if the character is one, else
 * its bytes as <0xXX>, else <unk> (consecutive unknowns fused). */
static lw_status word_symbols(const spm *m, const char *w, size_t n, symbol *sy, int *n_sym)
{
    int k = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n;) {
        size_t cl = 1;
        while (i + cl < n && ((unsigned char)w[i + cl] & 0xC0) == 0x80)
            cl++;
        int id = piece_lookup(m, w + i, cl);
        bool bytes_ok = m->byte_fallback;
        for (size_t b = 0; id < 0 && bytes_ok && b < cl; b++)
            bytes_ok = m->byte_id[(unsigned char)w[i + b]] >= 0;
        if (id >= 0) {
            sy[k++].id = id;
            last_unk = false;
        } else if (bytes_ok) {
            for (size_t b = 0; b < cl; b++)
                sy[k++].id = m->byte_id[(unsigned char)w[i + b]];
            last_unk = false;
        } else if (m->unk_id < 0) {
            return lw_fail(LW_ERR_INVALID, "tokenizer: character \"%.*s\" has no piece and no <unk>",
                           (int)cl, w + i);
        } else if (!(last_unk && m->fuse_unk)) {
            sy[k++].id = m->unk_id;
            last_unk = true;
        }
        i += cl;
    }
    for (int i = 0; i < k; i++) {
        sy[i].prev = i - 1;
        sy[i].next = i + 1 < k ? i + 1 : -1;
        sy[i].gone = false;
    }
    *n_sym = k;
    return LW_OK;
}

/* HF's Word::merge_all: pop the best (rank, position); skip entries whose
 * pair no longer yields the queued piece; merge; queue the new neighbours. */
static lw_status bpe_word(const spm *m, const char *w, size_t n, id_list *out)
{
    if (n == 0)
        return LW_OK;
    symbol *sy = malloc(n * sizeof *sy); /* at most one symbol per byte */
    merge_heap h = {0};
    if (!sy)
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte word", n);
    int k = 0;
    lw_status st = word_symbols(m, w, n, sy, &k);
    for (int i = 0; st == LW_OK && i + 1 < k; i++)
        st = queue_pair(m, &h, sy, i);
    while (st == LW_OK && h.n) {
        queued_merge top = heap_pop(&h);
        symbol *s = &sy[top.pos];
        if (s->gone || s->next < 0)
            continue;
        const merge_slot *now = merge_lookup(m, s->id, sy[s->next].id);
        if (!now || now->new_id != top.new_id)
            continue;
        int right = s->next;
        s->id = top.new_id;
        sy[right].gone = true;
        s->next = sy[right].next;
        if (s->next >= 0)
            sy[s->next].prev = top.pos;
        if (s->prev >= 0)
            st = queue_pair(m, &h, sy, s->prev);
        if (st == LW_OK && s->next >= 0)
            st = queue_pair(m, &h, sy, top.pos);
    }
    for (int i = 0; st == LW_OK && i >= 0 && k > 0; i = sy[i].next)
        st = push_id(out, sy[i].id);
    free(h.q);
    free(sy);
    return st;
}

/* Normalizes one segment (prefix, spaces -> "▁") into buf and runs BPE on it. */
static lw_status encode_segment(const spm *m, const char *s, size_t n, bool at_start, id_list *out)
{
    if (n == 0)
        return LW_OK;
    if (n > (SIZE_MAX - 3) / 3)
        return lw_fail(LW_ERR_INVALID, "tokenizer: text too long");
    char *buf = malloc(3 * n + 3);
    if (!buf)
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", n);
    size_t k = 0;
    bool prefix = m->prefix == PREFIX_ALWAYS ||
                  (m->prefix == PREFIX_FIRST && at_start && s[0] != ' ' &&
                   !(n >= 3 && memcmp(s, SPACE_MARK, 3) == 0));
    if (prefix) {
        memcpy(buf, SPACE_MARK, 3);
        k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(buf + k, SPACE_MARK, 3);
            k += 3;
        } else {
            buf[k++] = s[i];
        }
    }
    lw_status st = bpe_word(m, buf, k, out);
    free(buf);
    return st;
}

/* Longest added token starting at s (len bytes left); its id or -1. */
static int match_added(const spm *m, const char *s, size_t len, size_t *match_len)
{
    if (!m->n_added || !m->added_first[(unsigned char)s[0]])
        return -1;
    size_t max = len < (size_t)m->added_max_len ? len : (size_t)m->added_max_len;
    for (size_t l = max; l > 0; l--) {
        int id = lookup(m, m->added_slots, m->added_cap, s, l);
        if (id >= 0) {
            *match_len = l;
            return id;
        }
    }
    return -1;
}

static lw_status spm_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                            int **ids, int *n_ids)
{
    const spm *m = t->impl;
    char *s = NULL;
    size_t n = 0;
    id_list out = {0};
    if (len > INT32_MAX / 4)  /* symbol positions are ints */
        return lw_fail(LW_ERR_INVALID, "tokenizer: text of %zu bytes is too long", len);
    lw_status st = lw_utf8_sanitize(text ? text : "", text ? len : 0, &s, &n);
    for (int i = 0; st == LW_OK && add_special && i < m->n_prefix_ids; i++)
        st = push_id(&out, m->prefix_ids[i]);
    size_t seg = 0;
    for (size_t i = 0; st == LW_OK && i < n;) {
        size_t ml = 0;
        int id = match_added(m, s + i, n - i, &ml);
        if (id < 0) {
            i++;
            continue;
        }
        st = encode_segment(m, s + seg, i - seg, seg == 0, &out);
        if (st == LW_OK)
            st = push_id(&out, id);
        i += ml;
        seg = i;
    }
    if (st == LW_OK)
        st = encode_segment(m, s + seg, n - seg, seg == 0, &out);
    for (int i = 0; st == LW_OK && add_special && i < m->n_suffix_ids; i++)
        st = push_id(&out, m->suffix_ids[i]);
    free(s);
    if (st != LW_OK) {
        free(out.ids);
        return st;
    }
    if (!out.ids && !(out.ids = malloc(sizeof *out.ids))) /* a valid pointer even for no ids */
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory");
    *ids = out.ids;
    *n_ids = out.n;
    return LW_OK;
}

/* ---- decoding: Replace("▁"," "), ByteFallback, Fuse, optional Strip ---- */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte of a "<0xXX>" piece (as Rust's u8::from_str_radix reads XX), or -1. */
static int byte_piece(const char *p, size_t n)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    int hi = p[3] == '+' ? 0 : hex_digit(p[3]), lo = hex_digit(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = lw_utf8_decode(s + i, n - i, &adv);
        if (cp == LW_UC_REPLACEMENT && !(adv == 3 && memcmp(s + i, "\xEF\xBF\xBD", 3) == 0))
            return false;
        i += adv;
    }
    return true;
}

static void flush_bytes(lw_strbuf *sb, const unsigned char *bytes, size_t *n)
{
    if (valid_utf8(bytes, *n))
        lw_sb_append(sb, (const char *)bytes, *n);
    else
        for (size_t i = 0; i < *n; i++)
            lw_sb_append(sb, "\xEF\xBF\xBD", 3);
    *n = 0;
}

static lw_status spm_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    const spm *m = t->impl;
    lw_strbuf sb = {0};
    unsigned char *bytes = malloc(n_ids > 0 ? (size_t)n_ids : 1);
    size_t nb = 0;
    if (!bytes)
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory");
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= m->n || m->len[ids[i]] == 0) {
            free(bytes);
            lw_sb_free(&sb);
            return lw_fail(LW_ERR_INVALID, "tokenizer: id %d at position %d is not in the vocabulary of %d",
                           ids[i], i, m->n);
        }
        const char *p = m->arena + m->off[ids[i]];
        size_t pl = m->len[ids[i]];
        int b = byte_piece(p, pl);
        if (b >= 0) {
            bytes[nb++] = (unsigned char)b;
            continue;
        }
        if (nb)
            flush_bytes(&sb, bytes, &nb);
        for (size_t k = 0; k < pl;) {
            if (k + 3 <= pl && memcmp(p + k, SPACE_MARK, 3) == 0) {
                lw_sb_append(&sb, " ", 1);
                k += 3;
            } else {
                lw_sb_append(&sb, p + k, 1);
                k++;
            }
        }
    }
    if (nb)
        flush_bytes(&sb, bytes, &nb);
    free(bytes);
    lw_sb_append(&sb, "", 0);
    if (sb.failed || !sb.data) {
        lw_sb_free(&sb);
        return lw_fail(LW_ERR_NOMEM, "tokenizer: out of memory decoding %d ids", n_ids);
    }
    if (m->strip_leading_space && sb.len && sb.data[0] == ' ')
        memmove(sb.data, sb.data + 1, sb.len--);
    sb.data[sb.len] = '\0';
    *text = sb.data;
    return LW_OK;
}

static int spm_piece_id(const lw_tokenizer *t, const char *piece)
{
    const spm *m = t->impl;
    size_t n = strlen(piece);
    int id = lookup(m, m->added_slots, m->added_cap, piece, n);
    return id >= 0 ? id : piece_lookup(m, piece, n);
}

static const lw_tokenizer_ops spm_ops = {spm_encode, spm_decode, spm_piece_id, spm_free};

static void finish(spm *m, lw_tokenizer *t, int bos, int eos)
{
    t->ops = &spm_ops;
    t->impl = m;
    t->vocab_size = m->n;
    t->bos_id = bos;
    t->eos_id = eos;
}

/* ===================== tokenizer.json ===================== */

static bool json_str_is(json_t *j, const char *s)
{
    return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/* Accepts the normalizer / pre-tokenizer shapes SentencePiece BPE files use:
 * [Prepend("▁")] + Replace(" ", "▁"), or Metaspace("▁", split=false). */
static lw_status json_normalization(spm *m, json_t *root, const char *path)
{
    json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
    bool replace = false;
    m->prefix = PREFIX_NONE;
    if (norm && !json_is_null(norm)) {
        json_t *list = json_object_get(norm, "normalizers");
        size_t n = json_str_is(json_object_get(norm, "type"), "Sequence") ? json_array_size(list) : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_is_array(list) ? json_array_get(list, i) : norm;
            json_t *type = json_object_get(x, "type"), *pat = json_object_get(json_object_get(x, "pattern"), "String");
            if (json_str_is(type, "Prepend") && json_str_is(json_object_get(x, "prepend"), "\u2581"))
                m->prefix = PREFIX_ALWAYS;
            else if (json_str_is(type, "Replace") && json_str_is(pat, " ") &&
                     json_str_is(json_object_get(x, "content"), "\u2581"))
                replace = true;
            else
                return lw_fail(LW_ERR_UNSUPPORTED, "%s: normalizer %zu (%s) is not one SentencePiece BPE uses",
                               path, i, json_is_string(type) ? json_string_value(type) : "?");
        }
    }
    if (pre && !json_is_null(pre)) {
        json_t *type = json_object_get(pre, "type");
        json_t *split_pat = json_object_get(json_object_get(pre, "pattern"), "String");
        if (json_str_is(type, "Metaspace") && json_str_is(json_object_get(pre, "replacement"), "\u2581") &&
            json_is_false(json_object_get(pre, "split"))) {
            json_t *scheme = json_object_get(pre, "prepend_scheme");
            m->prefix = json_str_is(scheme, "first") ? PREFIX_FIRST
                      : json_str_is(scheme, "never") ? PREFIX_NONE : PREFIX_ALWAYS;
            replace = true;
        } else if (!(json_str_is(type, "Split") && json_str_is(split_pat, " ") && replace)) {
            /* Split(" ") after Replace(" ", "▁") finds nothing: Gemma's files */
            return lw_fail(LW_ERR_UNSUPPORTED, "%s: pre_tokenizer %s is not supported for SentencePiece BPE", path,
                           json_is_string(type) ? json_string_value(type) : "?");
        }
    }
    if (!replace)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: no Replace(\" \", \"\u2581\") normalizer or Metaspace", path);
    json_t *dec = json_object_get(root, "decoder"), *list = json_object_get(dec, "decoders");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *x = json_array_get(list, i);
        if (json_str_is(json_object_get(x, "type"), "Strip") && json_integer_value(json_object_get(x, "start")) == 1)
            m->strip_leading_space = true;
    }
    return LW_OK;
}

/* The specials around "A" in post_processor.single (TemplateProcessing). */
static lw_status json_template(spm *m, json_t *root, const char *path)
{
    json_t *pp = json_object_get(root, "post_processor");
    if (!pp || json_is_null(pp))
        return LW_OK;
    json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens");
    if (!json_str_is(json_object_get(pp, "type"), "TemplateProcessing") || !json_is_array(single))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: post_processor is not a TemplateProcessing", path);
    bool after = false;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *x = json_array_get(single, i), *sp = json_object_get(x, "SpecialToken");
        if (json_object_get(x, "Sequence")) {
            after = true;
            continue;
        }
        json_t *ids = json_object_get(json_object_get(specials, json_string_value(json_object_get(sp, "id"))), "ids");
        for (size_t k = 0; k < json_array_size(ids); k++) {
            json_int_t id = json_integer_value(json_array_get(ids, k));
            int *n = after ? &m->n_suffix_ids : &m->n_prefix_ids;
            if (id < 0 || id >= m->n || *n >= 4)
                return lw_fail(LW_ERR_FORMAT, "%s: post_processor.single[%zu]: bad or too many special ids", path, i);
            (after ? m->suffix_ids : m->prefix_ids)[(*n)++] = (int)id;
        }
    }
    return LW_OK;
}

/* Vocab ids, added tokens (which may lie past the vocab) and the pieces. */
static lw_status json_pieces(spm **out, json_t *vocab, json_t *added, const char *path)
{
    json_int_t max_id = -1;
    size_t bytes = 0;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX / 2)
            return lw_fail(LW_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a valid id", path, key);
        max_id = json_integer_value(v) > max_id ? json_integer_value(v) : max_id;
        bytes += strlen(key);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id"), *c = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX / 2 ||
            !json_is_string(c) || json_string_length(c) == 0)
            return lw_fail(LW_ERR_FORMAT, "%s: added_tokens[%zu] needs an id and a non-empty content", path, i);
        max_id = json_integer_value(id) > max_id ? json_integer_value(id) : max_id;
        bytes += json_string_length(c);
    }
    if (max_id < 0)
        return lw_fail(LW_ERR_FORMAT, "%s: empty vocabulary", path);
    spm *m = NULL;
    lw_status st = spm_alloc(&m, (int)max_id + 1, bytes);
    if (st != LW_OK)
        return st;
    size_t at = 0;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        size_t n = strlen(key);
        if (n == 0 || m->len[id]) {
            spm_free(m);
            return lw_fail(LW_ERR_FORMAT, "%s: model.vocab: id %lld is empty or used twice", path, (long long)id);
        }
        memcpy(m->arena + at, key, n);
        m->off[id] = (uint32_t)at;
        m->len[id] = (uint32_t)n;
        at += n;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i), *c = json_object_get(a, "content");
        json_int_t id = json_integer_value(json_object_get(a, "id"));
        size_t n = json_string_length(c);
        if (m->len[id] && !piece_is(m, (int)id, json_string_value(c), n)) {
            spm_free(m);
            return lw_fail(LW_ERR_FORMAT, "%s: added_tokens[%zu] id %lld is another piece in model.vocab", path, i,
                           (long long)id);
        }
        memcpy(m->arena + at, json_string_value(c), n);
        m->off[id] = (uint32_t)at;
        m->len[id] = (uint32_t)n;
        at += n;
    }
    *out = m;
    return LW_OK;
}

/* One merge: "a b" or ["a", "b"]. */
static bool json_merge_pair(json_t *x, const char **a, size_t *al, const char **b, size_t *bl)
{
    if (json_is_array(x) && json_array_size(x) == 2 && json_is_string(json_array_get(x, 0)) &&
        json_is_string(json_array_get(x, 1))) {
        *a = json_string_value(json_array_get(x, 0));
        *al = json_string_length(json_array_get(x, 0));
        *b = json_string_value(json_array_get(x, 1));
        *bl = json_string_length(json_array_get(x, 1));
        return true;
    }
    if (!json_is_string(x))
        return false;
    const char *s = json_string_value(x), *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' '))
        return false;
    *a = s;
    *al = (size_t)(sp - s);
    *b = sp + 1;
    *bl = strlen(sp + 1);
    return true;
}

static lw_status json_merges(spm *m, json_t *merges, const char *path)
{
    size_t n = json_array_size(merges);
    if (n > UINT32_MAX / 4)
        return lw_fail(LW_ERR_FORMAT, "%s: too many merges", path);
    lw_status st = alloc_merges(m, n, path);
    char *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; st == LW_OK && i < n; i++) {
        const char *a, *b;
        size_t al, bl;
        if (!json_merge_pair(json_array_get(merges, i), &a, &al, &b, &bl)) {
            st = lw_fail(LW_ERR_FORMAT, "%s: model.merges[%zu] is not \"a b\" or [a, b]", path, i);
            break;
        }
        if (al + bl > cap) {
            cap = 2 * (al + bl);
            char *g = realloc(buf, cap);
            if (!g) {
                st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = g;
        }
        memcpy(buf, a, al);
        memcpy(buf + al, b, bl);
        int l = piece_lookup(m, a, al), r = piece_lookup(m, b, bl), id = piece_lookup(m, buf, al + bl);
        if (l < 0 || r < 0 || id < 0)
            st = lw_fail(LW_ERR_FORMAT, "%s: model.merges[%zu] \"%.*s %.*s\": a part or the result is not in the vocab",
                         path, i, (int)al, a, (int)bl, b);
        else
            add_merge(m, l, r, (uint32_t)i, id);
    }
    free(buf);
    return st;
}

static int id_of(const spm *m, json_t *s)
{
    return json_is_string(s) ? piece_lookup(m, json_string_value(s), json_string_length(s)) : -1;
}

static lw_status spm_from_json(json_t *root, const char *path, spm **out)
{
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(root, "added_tokens");
    if (!json_str_is(json_object_get(model, "type"), "BPE") || !json_is_object(vocab))
        return lw_fail(LW_ERR_FORMAT, "%s: model is not a BPE with a vocab object", path);
    if (added && !json_is_array(added))
        return lw_fail(LW_ERR_FORMAT, "%s: added_tokens is not an array", path);
    spm *m = NULL;
    lw_status st = json_pieces(&m, vocab, added, path);
    if (st != LW_OK)
        return st;
    int n_added = (int)json_array_size(added);
    int *added_ids = malloc((size_t)(n_added > 0 ? n_added : 1) * sizeof *added_ids);
    if (!added_ids)
        st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; st == LW_OK && i < n_added; i++)
        added_ids[i] = (int)json_integer_value(json_object_get(json_array_get(added, (size_t)i), "id"));
    if (st == LW_OK)
        st = build_piece_index(m, path);
    if (st == LW_OK)
        st = build_added_index(m, added_ids, n_added, path);
    free(added_ids);
    if (st == LW_OK)
        st = json_merges(m, json_object_get(model, "merges"), path);
    if (st == LW_OK)
        st = json_normalization(m, root, path);
    if (st == LW_OK)
        st = json_template(m, root, path);
    if (st == LW_OK) {
        m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
        m->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
        m->unk_id = id_of(m, json_object_get(model, "unk_token"));
    }
    if (st != LW_OK) {
        spm_free(m);
        return st;
    }
    *out = m;
    return LW_OK;
}

lw_status lw_spm_load_json(const char *path, lw_tokenizer *t)
{
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return lw_fail(LW_ERR_FORMAT, "%s:%d: %s", path, err.line, lw_json_file_error(path, &err));
    spm *m = NULL;
    lw_status st = spm_from_json(root, path, &m);
    if (st == LW_OK) {
        /* BOS/EOS: the first special the template adds, and "</s>" if present */
        int bos = m->n_prefix_ids ? m->prefix_ids[0] : piece_lookup(m, "<s>", 3);
        int eos = piece_lookup(m, "</s>", 4);
        if (eos < 0)
            eos = piece_lookup(m, "<eos>", 5);
        finish(m, t, bos, eos);
    }
    json_decref(root);
    return st;
}

/* ===================== tokenizer.model (protobuf) ===================== */

/* Piece types of sentencepiece_model.proto. */
enum { PIECE_NORMAL = 1, PIECE_UNKNOWN = 2, PIECE_CONTROL = 3, PIECE_USER_DEFINED = 4, PIECE_UNUSED = 5, PIECE_BYTE = 6 };

typedef struct {
    const unsigned char *p, *end;
    const char *path;
} pb_reader;

static lw_status pb_varint(pb_reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return lw_fail(LW_ERR_FORMAT, "%s: truncated varint", r->path);
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return LW_OK;
        }
    }
    return lw_fail(LW_ERR_FORMAT, "%s: varint longer than 10 bytes", r->path);
}

/* One field: its number, wire type, and either its varint/fixed value or its bytes. */
typedef struct {
    uint32_t num, wire;
    uint64_t v;
    const unsigned char *data;
    size_t len;
} pb_field;

static lw_status pb_next(pb_reader *r, pb_field *f)
{
    uint64_t tag;
    lw_status st = pb_varint(r, &tag);
    if (st != LW_OK)
        return st;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (uint32_t)(tag & 7);
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire) {
    case 0:
        return pb_varint(r, &f->v);
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if (left < n)
            return lw_fail(LW_ERR_FORMAT, "%s: truncated fixed field %u", r->path, f->num);
        f->v = 0;
        for (size_t i = 0; i < n; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return LW_OK;
    }
    case 2:
        if ((st = pb_varint(r, &f->v)) != LW_OK)
            return st;
        if (f->v > (uint64_t)(r->end - r->p))
            return lw_fail(LW_ERR_FORMAT, "%s: field %u of %llu bytes runs past the end", r->path, f->num,
                           (unsigned long long)f->v);
        f->data = r->p;
        f->len = (size_t)f->v;
        r->p += f->len;
        return LW_OK;
    default:
        return lw_fail(LW_ERR_FORMAT, "%s: field %u has unsupported wire type %u", r->path, f->num, f->wire);
    }
}

typedef struct {
    int n_pieces;
    size_t piece_bytes;
    int model_type;   /* 1 unigram, 2 BPE */
    bool byte_fallback;
    int unk_id, bos_id, eos_id;
    bool add_dummy_prefix, remove_extra_whitespaces;
    const unsigned char *norm_name;
    size_t norm_name_len;
    size_t charsmap_len;
} spm_model_info;

static lw_status pb_trainer(const unsigned char *d, size_t n, spm_model_info *info, const char *path)
{
    pb_reader r = {d, d + n, path};
    pb_field f;
    while (r.p < r.end) {
        lw_status st = pb_next(&r, &f);
        if (st != LW_OK)
            return st;
        if (f.wire != 0)
            continue;
        switch (f.num) {
        case 3: info->model_type = (int)f.v; break;
        case 35: info->byte_fallback = f.v != 0; break;
        case 40: info->unk_id = (int32_t)f.v; break;
        case 41: info->bos_id = (int32_t)f.v; break;
        case 42: info->eos_id = (int32_t)f.v; break;
        default: break;
        }
    }
    return LW_OK;
}

static lw_status pb_normalizer(const unsigned char *d, size_t n, spm_model_info *info, const char *path)
{
    pb_reader r = {d, d + n, path};
    pb_field f;
    while (r.p < r.end) {
        lw_status st = pb_next(&r, &f);
        if (st != LW_OK)
            return st;
        if (f.num == 1 && f.wire == 2) {
            info->norm_name = f.data;
            info->norm_name_len = f.len;
        } else if (f.num == 2 && f.wire == 2) {
            info->charsmap_len = f.len;
        } else if (f.num == 3 && f.wire == 0) {
            info->add_dummy_prefix = f.v != 0;
        } else if (f.num == 4 && f.wire == 0) {
            info->remove_extra_whitespaces = f.v != 0;
        }
    }
    return LW_OK;
}

/* A SentencePiece message: piece (1), score (2, float), type (3). */
static lw_status pb_piece(const unsigned char *d, size_t n, const unsigned char **s, size_t *len, float *score,
                          int *type, const char *path)
{
    pb_reader r = {d, d + n, path};
    pb_field f;
    *s = NULL;
    *len = 0;
    *score = 0;
    *type = PIECE_NORMAL;
    while (r.p < r.end) {
        lw_status st = pb_next(&r, &f);
        if (st != LW_OK)
            return st;
        if (f.num == 1 && f.wire == 2) {
            *s = f.data;
            *len = f.len;
        } else if (f.num == 2 && f.wire == 5) {
            uint32_t bits = (uint32_t)f.v;
            memcpy(score, &bits, sizeof bits);
        } else if (f.num == 3 && f.wire == 0) {
            *type = (int)f.v;
        }
    }
    return LW_OK;
}

/* First pass: counts pieces and reads the specs (defaults as in the .proto). */
static lw_status pb_scan(const unsigned char *d, size_t n, spm_model_info *info, const char *path)
{
    *info = (spm_model_info){.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2,
                             .add_dummy_prefix = true, .remove_extra_whitespaces = true};
    pb_reader r = {d, d + n, path};
    pb_field f;
    while (r.p < r.end) {
        lw_status st = pb_next(&r, &f);
        if (st != LW_OK)
            return st;
        if (f.wire != 2)
            continue;
        if (f.num == 1) {
            const unsigned char *s;
            size_t len;
            float score;
            int type;
            if ((st = pb_piece(f.data, f.len, &s, &len, &score, &type, path)) != LW_OK)
                return st;
            if (!s || len == 0 || info->n_pieces >= INT32_MAX / 2)
                return lw_fail(LW_ERR_FORMAT, "%s: piece %d has no text", path, info->n_pieces);
            info->n_pieces++;
            info->piece_bytes += len;
        } else if (f.num == 2) {
            st = pb_trainer(f.data, f.len, info, path);
        } else if (f.num == 3) {
            st = pb_normalizer(f.data, f.len, info, path);
        }
        if (st != LW_OK)
            return st;
    }
    if (info->n_pieces == 0)
        return lw_fail(LW_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", path);
    return LW_OK;
}

static lw_status spm_from_model(const unsigned char *d, size_t n, const char *path, spm **out, int *bos, int *eos)
{
    spm_model_info info;
    lw_status st = pb_scan(d, n, &info, path);
    if (st != LW_OK)
        return st;
    if (info.model_type != 2)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: trainer_spec.model_type is %d, only BPE (2) is supported", path,
                       info.model_type);
    if (info.charsmap_len || info.remove_extra_whitespaces ||
        (info.norm_name && !(info.norm_name_len == 8 && memcmp(info.norm_name, "identity", 8) == 0)))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: normalizer_spec \"%.*s\" rewrites text; only identity is supported",
                       path, (int)info.norm_name_len, info.norm_name ? (const char *)info.norm_name : "");
    spm *m = NULL;
    if ((st = spm_alloc(&m, info.n_pieces, info.piece_bytes)) != LW_OK)
        return st;
    double *score = malloc((size_t)info.n_pieces * sizeof *score);
    int *added = malloc((size_t)info.n_pieces * sizeof *added), n_added = 0;
    if (!score || !added)
        st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    pb_reader r = {d, d + n, path};
    pb_field f;
    size_t at = 0;
    for (int id = 0; st == LW_OK && r.p < r.end;) {
        if ((st = pb_next(&r, &f)) != LW_OK || f.num != 1 || f.wire != 2)
            continue;
        const unsigned char *s;
        size_t len;
        float sc;
        int type;
        if ((st = pb_piece(f.data, f.len, &s, &len, &sc, &type, path)) != LW_OK)
            break;
        memcpy(m->arena + at, s, len);
        m->off[id] = (uint32_t)at;
        m->len[id] = (uint32_t)len;
        at += len;
        score[id] = sc;
        /* HF's converter: control and user-defined pieces are added tokens; so is
         * <unk>, which the Llama tokenizer.json lists among them */
        if (type == PIECE_CONTROL || type == PIECE_USER_DEFINED || type == PIECE_UNKNOWN)
            added[n_added++] = id;
        id++;
    }
    if (st == LW_OK)
        st = build_piece_index(m, path);
    if (st == LW_OK)
        st = build_added_index(m, added, n_added, path);
    if (st == LW_OK)
        st = derive_merges(m, score, path);
    free(score);
    free(added);
    if (st != LW_OK) {
        spm_free(m);
        return st;
    }
    m->byte_fallback = info.byte_fallback;
    m->fuse_unk = true;
    m->unk_id = info.unk_id >= 0 && info.unk_id < m->n ? info.unk_id : -1;
    m->prefix = info.add_dummy_prefix ? PREFIX_ALWAYS : PREFIX_NONE;
    m->strip_leading_space = info.add_dummy_prefix;
    *bos = info.bos_id >= 0 && info.bos_id < m->n ? info.bos_id : -1;
    *eos = info.eos_id >= 0 && info.eos_id < m->n ? info.eos_id : -1;
    if (*bos >= 0)
        m->prefix_ids[m->n_prefix_ids++] = *bos;
    *out = m;
    return LW_OK;
}

lw_status lw_spm_load_model(const char *path, lw_tokenizer *t)
{
    char *data;
    size_t n;
    lw_status st = lw_read_file(path, &data, &n);
    if (st != LW_OK)
        return st;
    spm *m = NULL;
    int bos, eos;
    st = spm_from_model((const unsigned char *)data, n, path, &m, &bos, &eos);
    free(data);
    if (st == LW_OK)
        finish(m, t, bos, eos);
    return st;
}

/* ===================== GGUF "llama" metadata ===================== */

static bool all_spaces(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ')
            return false;
    return true;
}

static lw_status gguf_opt_id(const lw_gguf *g, const char *key, int n, int *id)
{
    int64_t v;
    *id = -1;
    if (!lw_gguf_has(g, key))
        return LW_OK;
    lw_status st = lw_gguf_get_int(g, key, &v);
    if (st != LW_OK)
        return st;
    if (v < 0 || v >= n)
        return lw_fail(LW_ERR_INVALID, "%s: %s = %lld is outside the vocabulary of %d", lw_gguf_name(g), key,
                       (long long)v, n);
    *id = (int)v;
    return LW_OK;
}

static lw_status gguf_opt_bool(const lw_gguf *g, const char *key, bool dflt, bool *v)
{
    *v = dflt;
    return lw_gguf_has(g, key) ? lw_gguf_get_bool(g, key, v) : LW_OK;
}

/* Pieces as transformers' GGUF loader spells them: Gemma's runs of spaces
 * become runs of "▁" (one per space), which is how its BPE words spell them. */
static lw_status gguf_pieces(const lw_gguf *g, bool gemma, spm **out)
{
    const char *path = lw_gguf_name(g), *key = "tokenizer.ggml.tokens";
    uint64_t n;
    lw_status st = lw_gguf_get_array_len(g, key, &n);
    if (st != LW_OK)
        return st;
    if (n == 0 || n > INT32_MAX / 2)
        return lw_fail(LW_ERR_INVALID, "%s: %s has %llu entries", path, key, (unsigned long long)n);
    size_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        if ((st = lw_gguf_get_array_string(g, key, i, &s, &len)) != LW_OK)
            return st;
        if (len == 0 || len > UINT32_MAX / 4)
            return lw_fail(LW_ERR_INVALID, "%s: %s[%llu] is empty or too long", path, key, (unsigned long long)i);
        bytes += gemma && all_spaces(s, len) ? 3 * len : len;
    }
    spm *m = NULL;
    if ((st = spm_alloc(&m, (int)n, bytes)) != LW_OK)
        return st;
    size_t at = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        lw_gguf_get_array_string(g, key, i, &s, &len);
        m->off[i] = (uint32_t)at;
        if (gemma && all_spaces(s, len)) {
            for (size_t k = 0; k < len; k++, at += 3)
                memcpy(m->arena + at, SPACE_MARK, 3);
        } else {
            memcpy(m->arena + at, s, len);
            at += len;
        }
        m->len[i] = (uint32_t)(at - m->off[i]);
    }
    *out = m;
    return LW_OK;
}

/* Scores for ranking merges: Gemma's merge order is its piece order (its
 * scores do not follow it), others use tokenizer.ggml.scores. Added tokens:
 * CONTROL pieces, and USER_DEFINED ones whose spelling is a piece. */
static lw_status gguf_scores_and_added(const lw_gguf *g, spm *m, bool gemma, double *score, int *added, int *n_added)
{
    const char *path = lw_gguf_name(g);
    uint64_t nt = 0, ns = 0;
    lw_status st = lw_gguf_get_array_len(g, "tokenizer.ggml.token_type", &nt);
    if (st == LW_OK && !gemma)
        st = lw_gguf_get_array_len(g, "tokenizer.ggml.scores", &ns);
    if (st != LW_OK)
        return st;
    if (nt != (uint64_t)m->n || (!gemma && ns != (uint64_t)m->n))
        return lw_fail(LW_ERR_INVALID, "%s: token_type/scores have %llu/%llu entries, tokens %d", path,
                       (unsigned long long)nt, (unsigned long long)ns, m->n);
    *n_added = 0;
    for (int i = 0; i < m->n; i++) {
        int64_t type;
        if ((st = lw_gguf_get_array_int(g, "tokenizer.ggml.token_type", (uint64_t)i, &type)) != LW_OK)
            return st;
        if (gemma)
            score[i] = -(double)i;
        else if ((st = lw_gguf_get_array_float(g, "tokenizer.ggml.scores", (uint64_t)i, &score[i])) != LW_OK)
            return st;
        if (type == PIECE_CONTROL)
            added[(*n_added)++] = i;
        else if (type == PIECE_USER_DEFINED) {
            const char *s;
            size_t len;
            lw_gguf_get_array_string(g, "tokenizer.ggml.tokens", (uint64_t)i, &s, &len);
            if (piece_lookup(m, s, len) == i)
                added[(*n_added)++] = i;
        }
    }
    return LW_OK;
}

static lw_status spm_from_gguf(const lw_gguf *g, spm **out, int *bos, int *eos)
{
    const char *path = lw_gguf_name(g), *s;
    size_t len;
    lw_status st = lw_gguf_get_string(g, "tokenizer.ggml.model", &s, &len);
    if (st != LW_OK)
        return st;
    if (!(len == 5 && memcmp(s, "llama", 5) == 0))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is \"%.*s\", expected \"llama\"", path, (int)len, s);
    if (lw_gguf_has(g, "tokenizer.ggml.merges"))
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: a \"llama\" tokenizer with tokenizer.ggml.merges", path);
    bool gemma = false;
    if (lw_gguf_has(g, "general.architecture")) {
        if ((st = lw_gguf_get_string(g, "general.architecture", &s, &len)) != LW_OK)
            return st;
        gemma = len >= 5 && memcmp(s, "gemma", 5) == 0 && !(len == 6 && s[5] == '4');
    }
    spm *m = NULL;
    if ((st = gguf_pieces(g, gemma, &m)) != LW_OK)
        return st;
    double *score = malloc((size_t)m->n * sizeof *score);
    int *added = malloc(((size_t)m->n + 4) * sizeof *added), n_added = 0, pad = -1;
    bool add_bos = true, add_eos = false;
    if (!score || !added)
        st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    if (st == LW_OK)
        st = build_piece_index(m, path);
    if (st == LW_OK)
        st = gguf_scores_and_added(g, m, gemma, score, added, &n_added);
    if (st == LW_OK)
        st = gguf_opt_id(g, "tokenizer.ggml.bos_token_id", m->n, bos);
    if (st == LW_OK)
        st = gguf_opt_id(g, "tokenizer.ggml.eos_token_id", m->n, eos);
    if (st == LW_OK)
        st = gguf_opt_id(g, "tokenizer.ggml.unknown_token_id", m->n, &m->unk_id);
    if (st == LW_OK)
        st = gguf_opt_id(g, "tokenizer.ggml.padding_token_id", m->n, &pad);
    /* transformers makes these special tokens whatever their token type */
    int specials[4] = {*bos, *eos, m->unk_id, pad};
    for (int k = 0; st == LW_OK && k < 4; k++)
        if (specials[k] >= 0)
            added[n_added++] = specials[k];
    if (st == LW_OK)
        st = build_added_index(m, added, n_added, path);
    if (st == LW_OK)
        st = derive_merges(m, score, path);
    if (st == LW_OK)
        st = gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", true, &add_bos);
    if (st == LW_OK)
        st = gguf_opt_bool(g, "tokenizer.ggml.add_eos_token", false, &add_eos);
    free(score);
    free(added);
    if (st != LW_OK) {
        spm_free(m);
        return st;
    }
    if (m->unk_id < 0)
        m->unk_id = piece_lookup(m, "<unk>", 5);
    m->byte_fallback = true;
    m->fuse_unk = true;
    /* GemmaTokenizer: Replace(" ", "▁") only. LlamaTokenizer: Metaspace(first)
     * and Strip; transformers does not read tokenizer.ggml.add_space_prefix for
     * it (llama.cpp does), and we follow transformers. */
    m->prefix = gemma ? PREFIX_NONE : PREFIX_FIRST;
    m->strip_leading_space = !gemma;
    if (add_bos && *bos >= 0)
        m->prefix_ids[m->n_prefix_ids++] = *bos;
    if (add_eos && *eos >= 0)
        m->suffix_ids[m->n_suffix_ids++] = *eos;
    *out = m;
    return LW_OK;
}

lw_status lw_spm_load_gguf(const char *path, lw_tokenizer *t)
{
    lw_gguf *g;
    lw_status st = lw_gguf_open(path, &g);
    if (st != LW_OK)
        return st;
    spm *m = NULL;
    int bos = -1, eos = -1;
    st = spm_from_gguf(g, &m, &bos, &eos);
    lw_gguf_close(g);
    if (st == LW_OK)
        finish(m, t, bos, eos);
    return st;
}
