/* Byte-level BPE as Hugging Face tokenizers runs it: added tokens are cut out
 * of the text first, the rest is pre-tokenized (pretokenize.c), each piece is
 * mapped byte by byte to GPT-2's printable characters and merged by rank.
 * Text is first made valid UTF-8 (invalid bytes -> U+FFFD as Python's
 * errors='replace'), because HF only ever sees Python str. */
#include "tokenizer_bpe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unicode.h"

typedef struct {
    char *s;
    size_t len;
} piece;

typedef struct {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX = empty */
    int rank, id;
} pair_slot;

typedef struct {
    char *s;
    size_t len;
    int id;
    lw_bpe_added_flags flags;
} added_token;

struct lw_bpe {
    char name[256];
    int n_ids;
    piece *pieces;          /* by id; s NULL where no piece */
    bool *is_added;         /* decoded as written, not byte-mapped */
    int *vocab;             /* open addressing: id + 1, 0 = empty */
    size_t vocab_cap;
    pair_slot *pairs;
    size_t pairs_cap;
    int n_merges, max_merges;
    added_token *added;
    int n_added;
    bool added_first[256];  /* bytes an added token can start with */
    lw_split_kind splits[LW_BPE_MAX_SPLITS];
    int n_splits;
    bool ignore_merges;
    int unk_id, prefix_id, suffix_id;
    int byte_id[256];       /* id of each byte's one-character piece, -1 if none */
    uint32_t byte_cp[256];  /* GPT-2 bytes_to_unicode */
    int cp_byte[512];       /* its inverse, -1 elsewhere */
};

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

static int vocab_find(const lw_bpe *b, const char *s, size_t len)
{
    size_t mask = b->vocab_cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        int v = b->vocab[i];
        if (v == 0)
            return -1;
        const piece *p = &b->pieces[v - 1];
        if (p->len == len && memcmp(p->s, s, len) == 0)
            return v - 1;
    }
}

static const pair_slot *pair_find(const lw_bpe *b, int left, int right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t mask = b->pairs_cap - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (b->pairs[i].key == key)
            return &b->pairs[i];
        if (b->pairs[i].key == UINT64_MAX)
            return NULL;
    }
}

/* ---- building ---- */

static void init_byte_map(lw_bpe *b)
{
    int extra = 0;
    for (int i = 0; i < 512; i++)
        b->cp_byte[i] = -1;
    for (int c = 0; c < 256; c++) {
        bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
        b->byte_cp[c] = printable ? (uint32_t)c : (uint32_t)(256 + extra++);
        b->cp_byte[b->byte_cp[c]] = c;
    }
}

lw_status lw_bpe_new(int n_ids, int n_merges, const char *name, lw_bpe **out)
{
    *out = NULL;
    if (n_ids <= 0 || n_ids > LW_BPE_MAX_IDS || n_merges < 0 || n_merges > LW_BPE_MAX_IDS)
        return lw_fail(LW_ERR_INVALID, "%s: %d ids and %d merges: expected 1..%d of each", name,
                       n_ids, n_merges, LW_BPE_MAX_IDS);
    lw_bpe *b = calloc(1, sizeof *b);
    if (!b)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", name);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->n_ids = n_ids;
    b->max_merges = n_merges;
    b->vocab_cap = pow2_at_least((size_t)n_ids * 2);
    b->pairs_cap = pow2_at_least((size_t)n_merges * 2);
    b->pieces = calloc((size_t)n_ids, sizeof *b->pieces);
    b->is_added = calloc((size_t)n_ids, sizeof *b->is_added);
    b->vocab = calloc(b->vocab_cap, sizeof *b->vocab);
    b->pairs = malloc(b->pairs_cap * sizeof *b->pairs);
    if (!b->pieces || !b->is_added || !b->vocab || !b->pairs) {
        lw_bpe_free(b);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %d ids", name, n_ids);
    }
    for (size_t i = 0; i < b->pairs_cap; i++)
        b->pairs[i].key = UINT64_MAX;
    b->unk_id = b->prefix_id = b->suffix_id = -1;
    init_byte_map(b);
    *out = b;
    return LW_OK;
}

void lw_bpe_free(lw_bpe *b)
{
    if (!b)
        return;
    if (b->pieces)
        for (int i = 0; i < b->n_ids; i++)
            free(b->pieces[i].s);
    for (int i = 0; i < b->n_added; i++)
        free(b->added[i].s);
    free(b->pieces);
    free(b->is_added);
    free(b->vocab);
    free(b->pairs);
    free(b->added);
    free(b);
}

lw_status lw_bpe_set_piece(lw_bpe *b, int id, const char *s, size_t len)
{
    if (id < 0 || id >= b->n_ids)
        return lw_fail(LW_ERR_INVALID, "%s: id %d of piece '%.*s' is outside 0..%d", b->name, id,
                       (int)(len < 64 ? len : 64), s, b->n_ids - 1);
    if (b->pieces[id].s)
        return lw_fail(LW_ERR_INVALID, "%s: id %d is given twice", b->name, id);
    char *copy = malloc(len + 1);
    if (!copy)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", b->name);
    memcpy(copy, s, len);
    copy[len] = '\0';
    b->pieces[id] = (piece){copy, len};
    if (vocab_find(b, s, len) >= 0)
        return LW_OK; /* a duplicate piece: the first id wins */
    size_t mask = b->vocab_cap - 1, i = hash_bytes(s, len) & mask;
    while (b->vocab[i])
        i = (i + 1) & mask;
    b->vocab[i] = id + 1;
    return LW_OK;
}

lw_status lw_bpe_add_merge(lw_bpe *b, const char *left, size_t left_len, const char *right,
                           size_t right_len)
{
    int rank = b->n_merges;
    if (rank >= b->max_merges)
        return lw_fail(LW_ERR_INVALID, "%s: more merges than the %d announced", b->name, b->max_merges);
    int l = vocab_find(b, left, left_len), r = vocab_find(b, right, right_len);
    char joined[1024];
    if (left_len + right_len > sizeof joined)
        return lw_fail(LW_ERR_INVALID, "%s: merge %d is too long", b->name, rank);
    memcpy(joined, left, left_len);
    memcpy(joined + left_len, right, right_len);
    int id = vocab_find(b, joined, left_len + right_len);
    if (l < 0 || r < 0 || id < 0)
        return lw_fail(LW_ERR_INVALID, "%s: merge %d '%.*s %.*s': %s is not in the vocabulary",
                       b->name, rank, (int)left_len, left, (int)right_len, right,
                       l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged piece");
    b->n_merges++;
    pair_slot *old = (pair_slot *)pair_find(b, l, r);
    if (old) { /* HF's merge map keeps the last rank of a repeated merge */
        old->rank = rank;
        return LW_OK;
    }
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    size_t mask = b->pairs_cap - 1, i = hash_u64(key) & mask;
    while (b->pairs[i].key != UINT64_MAX)
        i = (i + 1) & mask;
    b->pairs[i] = (pair_slot){key, rank, id};
    return LW_OK;
}

lw_status lw_bpe_add_token(lw_bpe *b, int id, const char *s, size_t len, lw_bpe_added_flags flags)
{
    if (id < 0 || id >= b->n_ids || len == 0)
        return lw_fail(LW_ERR_INVALID, "%s: added token %d '%.*s': bad id or empty", b->name, id,
                       (int)(len < 64 ? len : 64), s);
    if (!b->pieces[id].s) {
        lw_status st = lw_bpe_set_piece(b, id, s, len);
        if (st)
            return st;
    }
    added_token *grown = realloc(b->added, (size_t)(b->n_added + 1) * sizeof *grown);
    char *copy = malloc(len);
    if (!grown || !copy) {
        free(copy);
        if (grown)
            b->added = grown;
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", b->name);
    }
    memcpy(copy, s, len);
    b->added = grown;
    b->added[b->n_added++] = (added_token){copy, len, id, flags};
    b->added_first[(unsigned char)s[0]] = true;
    b->is_added[id] = true;
    return LW_OK;
}

lw_status lw_bpe_add_split(lw_bpe *b, lw_split_kind kind)
{
    if (b->n_splits == LW_BPE_MAX_SPLITS)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", b->name,
                       LW_BPE_MAX_SPLITS);
    b->splits[b->n_splits++] = kind;
    return LW_OK;
}

int lw_bpe_find(const lw_bpe *b, const char *s, size_t len) { return vocab_find(b, s, len); }

void lw_bpe_set_ignore_merges(lw_bpe *b, bool on) { b->ignore_merges = on; }
void lw_bpe_set_unk(lw_bpe *b, int id) { b->unk_id = id; }

void lw_bpe_set_specials(lw_bpe *b, int prefix_id, int suffix_id)
{
    b->prefix_id = prefix_id;
    b->suffix_id = suffix_id;
}

/* ---- encoding ---- */

typedef struct {
    int *data;
    size_t len, cap;
    bool failed;
} id_vec;

static void push_id(id_vec *v, int id)
{
    if (v->failed)
        return;
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int *grown = realloc(v->data, cap * sizeof *grown);
        if (!grown) {
            v->failed = true;
            return;
        }
        v->data = grown;
        v->cap = cap;
    }
    v->data[v->len++] = id;
}

typedef struct {
    int rank, pos, right;
} merge_cand;

/* Per-call scratch for merging one word: symbols as a linked list, and a
 * min-heap of candidate merges ordered by (rank, position) as HF's is. */
typedef struct {
    int *id, *prev, *next;
    merge_cand *heap;
    size_t n_heap, cap, heap_cap;
    bool failed;
} scratch;

static bool scratch_fit(scratch *w, size_t n)
{
    if (n <= w->cap)
        return true;
    size_t cap = n * 2;
    int *id = realloc(w->id, cap * sizeof *id);
    if (id) w->id = id;
    int *prev = realloc(w->prev, cap * sizeof *prev);
    if (prev) w->prev = prev;
    int *next = realloc(w->next, cap * sizeof *next);
    if (next) w->next = next;
    if (!id || !prev || !next)
        return !(w->failed = true);
    w->cap = cap;
    return true;
}

static bool cand_less(merge_cand a, merge_cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(scratch *w, merge_cand c)
{
    if (w->n_heap == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        merge_cand *grown = realloc(w->heap, cap * sizeof *grown);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->heap = grown;
        w->heap_cap = cap;
    }
    size_t i = w->n_heap++;
    while (i > 0 && cand_less(c, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
}

static merge_cand heap_pop(scratch *w)
{
    merge_cand top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && cand_less(w->heap[c + 1], w->heap[c]))
            c++;
        if (!cand_less(w->heap[c], last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static void push_pair(const lw_bpe *b, scratch *w, int pos)
{
    if (pos < 0 || w->next[pos] < 0)
        return;
    const pair_slot *p = pair_find(b, w->id[pos], w->id[w->next[pos]]);
    if (p)
        heap_push(w, (merge_cand){p->rank, pos, w->next[pos]});
}

/* The piece as GPT-2 byte-level characters, for the ignore_merges lookup. */
static int whole_word_id(const lw_bpe *b, const unsigned char *s, size_t len)
{
    char buf[512];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n + 2 > sizeof buf)
            return -1;
        n += (size_t)lw_utf8_encode(b->byte_cp[s[i]], buf + n);
    }
    return vocab_find(b, buf, n);
}

static void bpe_word(const lw_bpe *b, const unsigned char *s, size_t len, scratch *w, id_vec *out)
{
    if (b->ignore_merges) {
        int id = whole_word_id(b, s, len);
        if (id >= 0) {
            push_id(out, id);
            return;
        }
    }
    if (!scratch_fit(w, len))
        return;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        int id = b->byte_id[s[i]] >= 0 ? b->byte_id[s[i]] : b->unk_id;
        if (id < 0)
            continue; /* HF drops characters it has no piece for when there is no unk */
        w->id[n] = id;
        w->prev[n] = n - 1;
        w->next[n] = n + 1;
        n++;
    }
    if (n == 0)
        return;
    w->next[n - 1] = -1;
    w->n_heap = 0;
    for (int i = 0; i + 1 < n; i++)
        push_pair(b, w, i);
    while (w->n_heap > 0 && !w->failed) {
        merge_cand c = heap_pop(w);
        /* stale if either side was merged away or changed since it was pushed */
        if (w->id[c.pos] < 0 || w->next[c.pos] != c.right || w->id[c.right] < 0)
            continue;
        const pair_slot *p = pair_find(b, w->id[c.pos], w->id[c.right]);
        if (!p || p->rank != c.rank)
            continue;
        w->id[c.pos] = p->id;
        w->id[c.right] = -1;
        w->next[c.pos] = w->next[c.right];
        if (w->next[c.pos] >= 0)
            w->prev[w->next[c.pos]] = c.pos;
        push_pair(b, w, w->prev[c.pos]);
        push_pair(b, w, c.pos);
    }
    for (int i = 0; i >= 0; i = w->next[i])
        push_id(out, w->id[i]);
}

/* Applies pre-tokenizer step `level` to text[start..end) and the later steps
 * to each piece it makes; the last level merges. */
static void split_and_merge(const lw_bpe *b, const char *text, size_t start, size_t end, int level,
                            scratch *w, id_vec *out)
{
    if (level == b->n_splits) {
        bpe_word(b, (const unsigned char *)text + start, end - start, w, out);
        return;
    }
    for (size_t pos = start; pos < end;) {
        size_t n = lw_split_next(b->splits[level], text, pos, end);
        split_and_merge(b, text, pos, pos + n, level + 1, w, out);
        pos += n;
    }
}

static bool is_word_byte(unsigned char c)
{
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static bool is_ws_byte(unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0D); }

typedef struct {
    size_t start, end; /* bytes the match takes, stripped white space included */
    int id;
} added_match;

/* The leftmost, then longest, added token in text[pos..len). */
static bool next_added(const lw_bpe *b, const char *text, size_t pos, size_t len, added_match *m)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = pos; i < len; i++) {
        if (!b->added_first[s[i]])
            continue;
        const added_token *best = NULL;
        for (int k = 0; k < b->n_added; k++) {
            const added_token *a = &b->added[k];
            if (a->len > len - i || (best && a->len <= best->len) || memcmp(text + i, a->s, a->len) != 0)
                continue;
            if (a->flags.single_word && ((i > 0 && is_word_byte(s[i - 1])) ||
                                         (i + a->len < len && is_word_byte(s[i + a->len]))))
                continue;
            best = a;
        }
        if (!best)
            continue;
        m->start = i;
        m->end = i + best->len;
        m->id = best->id;
        if (best->flags.lstrip)
            while (m->start > pos && is_ws_byte(s[m->start - 1]))
                m->start--;
        if (best->flags.rstrip)
            while (m->end < len && is_ws_byte(s[m->end]))
                m->end++;
        return true;
    }
    return false;
}

static lw_status bpe_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                            int **ids, int *n_ids)
{
    const lw_bpe *b = t->impl;
    *ids = NULL;
    *n_ids = 0;
    char *clean;
    size_t n;
    lw_status st = lw_utf8_sanitize(text, len, &clean, &n);
    if (st)
        return st;
    id_vec out = {0};
    scratch w = {0};
    if (add_special && b->prefix_id >= 0)
        push_id(&out, b->prefix_id);
    added_match m;
    size_t pos = 0;
    while (pos < n && next_added(b, clean, pos, n, &m)) {
        split_and_merge(b, clean, pos, m.start, 0, &w, &out);
        push_id(&out, m.id);
        pos = m.end;
    }
    split_and_merge(b, clean, pos, n, 0, &w, &out);
    if (add_special && b->suffix_id >= 0)
        push_id(&out, b->suffix_id);
    free(clean);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    if (!out.data) /* callers get a buffer to free even for no ids */
        out.data = malloc(sizeof *out.data), out.failed = !out.data;
    if (out.failed || w.failed || out.len > INT32_MAX) {
        free(out.data);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory encoding %zu bytes", b->name, len);
    }
    *ids = out.data;
    *n_ids = (int)out.len;
    return LW_OK;
}

/* ---- decoding ---- */

/* Writes a vocabulary piece as bytes: each character mapped back through
 * bytes_to_unicode, or (as HF's ByteLevel decoder does when one cannot be)
 * the piece's own UTF-8. Returns the bytes written (<= p->len). */
static size_t piece_bytes(const lw_bpe *b, const piece *p, char *dst)
{
    size_t n = 0, len;
    for (size_t i = 0; i < p->len; i += len) {
        uint32_t cp = lw_utf8_decode((const unsigned char *)p->s + i, p->len - i, &len);
        if (cp >= 512 || b->cp_byte[cp] < 0) {
            memcpy(dst, p->s, p->len);
            return p->len;
        }
        dst[n++] = (char)b->cp_byte[cp];
    }
    return n;
}

static lw_status bpe_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    const lw_bpe *b = t->impl;
    *text = NULL;
    size_t total = 0;
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= b->n_ids)
            return lw_fail(LW_ERR_INVALID, "%s: decoding id %d at %d: expected 0..%d", b->name,
                           ids[i], i, b->n_ids - 1);
        total += b->pieces[ids[i]].len;
    }
    char *bytes = malloc(total + 1);
    if (!bytes)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory decoding %d ids", b->name, n_ids);
    size_t n = 0;
    for (int i = 0; i < n_ids; i++) {
        const piece *p = &b->pieces[ids[i]];
        if (!p->s)
            continue; /* an id with no piece decodes to nothing, as in HF */
        if (b->is_added[ids[i]]) {
            memcpy(bytes + n, p->s, p->len);
            n += p->len;
        } else {
            n += piece_bytes(b, p, bytes + n);
        }
    }
    size_t out_len;
    lw_status st = lw_utf8_sanitize(bytes, n, text, &out_len); /* String::from_utf8_lossy */
    free(bytes);
    return st;
}

static int bpe_piece_id(const lw_tokenizer *t, const char *piece_text)
{
    return vocab_find(t->impl, piece_text, strlen(piece_text));
}

static void bpe_free_impl(void *impl) { lw_bpe_free(impl); }

static const lw_tokenizer_ops bpe_ops = {bpe_encode, bpe_decode, bpe_piece_id, bpe_free_impl};

lw_status lw_bpe_install(lw_bpe *b, lw_tokenizer *t, int bos_id, int eos_id)
{
    for (int c = 0; c < 256; c++) {
        char buf[4];
        int len = lw_utf8_encode(b->byte_cp[c], buf);
        b->byte_id[c] = vocab_find(b, buf, (size_t)len);
    }
    if (b->n_splits == 0) {
        lw_fail(LW_ERR_UNSUPPORTED, "%s: no pre-tokenizer", b->name);
        lw_bpe_free(b);
        return LW_ERR_UNSUPPORTED;
    }
    int ids[4] = {bos_id, eos_id, b->prefix_id, b->suffix_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= b->n_ids) {
            lw_fail(LW_ERR_INVALID, "%s: special id %d is outside 0..%d", b->name, ids[i], b->n_ids - 1);
            lw_bpe_free(b);
            return LW_ERR_INVALID;
        }
    t->ops = &bpe_ops;
    t->impl = b;
    t->vocab_size = b->n_ids;
    t->bos_id = bos_id;
    t->eos_id = eos_id;
    return LW_OK;
}
