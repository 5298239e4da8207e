/* The llama2.c tokenizer.bin (stories260K's tok512.bin): encode and decode
 * exactly as karpathy/llama2.c run.c does.
 *
 * File: int32 max_token_length, then per piece float score, int32 length,
 * bytes; pieces run to the end of the file. Spaces are stored as ' ' (not
 * "▁"), BOS/EOS as "\n<s>\n" / "\n</s>\n", bytes as "<0xXX>" at id byte+3.
 *
 * Encoding works on raw bytes like run.c (no U+FFFD replacement): a dummy
 * " " prefix for non-empty text, each UTF-8 character (up to 4 bytes, cut at
 * continuation bytes) as a piece or as its bytes, then repeatedly the
 * adjacent pair whose concatenation is the best-scoring piece is merged
 * (leftmost on ties). run.c stops at a NUL byte; here NUL is a byte like any
 * other (<0x00>), since the API takes a length. */
#include "tokenizer_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"

typedef struct {
    char *arena;
    uint32_t *off, *len;
    float *score;
    int n;
    int32_t *slots;  /* open-addressed piece -> id, -1 empty; the first of equal pieces wins */
    uint32_t cap;
} l2c;

static uint32_t hash_piece(const char *s, size_t n)
{
    uint64_t h = lw_fnv1a(LW_FNV_INIT, s, n);
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t find_slot(const l2c *m, const char *s, size_t n)
{
    uint32_t i = hash_piece(s, n) & (m->cap - 1);
    while (m->slots[i] >= 0 &&
           !(m->len[m->slots[i]] == n && memcmp(m->arena + m->off[m->slots[i]], s, n) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int lookup(const l2c *m, const char *s, size_t n)
{
    return m->slots[find_slot(m, s, n)];
}

static void l2c_free(void *impl)
{
    l2c *m = impl;
    if (!m)
        return;
    free(m->arena);
    free(m->off);
    free(m->len);
    free(m->score);
    free(m->slots);
    free(m);
}

/* ---- encoding ---- */

typedef struct {
    int *ids;
    int n, cap;
} id_list;

static lw_status push(id_list *l, int id)
{
    if (l->n == l->cap) {
        if (l->cap > INT32_MAX / 2)
            return lw_fail(LW_ERR_INVALID, "llama2.c tokenizer: too many tokens");
        int cap = l->cap ? 2 * l->cap : 64;
        int *g = realloc(l->ids, (size_t)cap * sizeof *g);
        if (!g)
            return lw_fail(LW_ERR_NOMEM, "llama2.c tokenizer: out of memory for %d ids", cap);
        l->ids = g;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return LW_OK;
}

/* The piece that pair (a, b) merges into, or -1. */
static int pair_piece(const l2c *m, int a, int b, char *buf)
{
    memcpy(buf, m->arena + m->off[a], m->len[a]);
    memcpy(buf + m->len[a], m->arena + m->off[b], m->len[b]);
    return lookup(m, buf, m->len[a] + m->len[b]);
}

/* run.c's merge loop picks, again and again, the adjacent pair whose merged
 * piece scores best (above -1e10), leftmost on ties. The same choice comes
 * from a heap of pairs ordered by (score desc, position asc) where pairs that
 * changed since they were queued are skipped: O(n log n), not run.c's O(n^2). */
typedef struct {
    float score;
    int pos, right;       /* symbol indices of the pair */
    unsigned ver_l, ver_r; /* their versions when queued */
    int merged;
} cand;

typedef struct {
    int id, next, prev;
    unsigned ver;   /* bumped when the symbol changes or disappears */
    bool gone;
} sym;

static bool cand_before(const cand *a, const cand *b)
{
    return a->score != b->score ? a->score > b->score : a->pos < b->pos;
}

static void heap_push(cand *h, size_t *n, cand x)
{
    size_t i = (*n)++;
    while (i > 0 && cand_before(&x, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static cand heap_pop(cand *h, size_t *n)
{
    cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (size_t c; (c = 2 * i + 1) < *n; i = c) {
        if (c + 1 < *n && cand_before(&h[c + 1], &h[c]))
            c++;
        if (!cand_before(&h[c], &last))
            break;
        h[i] = h[c];
    }
    if (*n)
        h[i] = last;
    return top;
}

static void queue(const l2c *m, const sym *s, int pos, cand *h, size_t *n, char *buf)
{
    int right = s[pos].next;
    int merged = pair_piece(m, s[pos].id, s[right].id, buf);
    if (merged >= 0 && m->score[merged] > -1e10f)
        heap_push(h, n, (cand){m->score[merged], pos, right, s[pos].ver, s[right].ver, merged});
}

static lw_status merge_all(const l2c *m, id_list *t, uint32_t max_len)
{
    if (t->n < 2)
        return LW_OK;
    size_t n = (size_t)t->n, nq = 0;
    char *buf = malloc(2 * (size_t)max_len + 1);
    sym *s = malloc(n * sizeof *s);
    /* n-1 pairs at first; each merge pops one and pushes at most two */
    cand *h = malloc(2 * n * sizeof *h);
    if (!buf || !s || !h) {
        free(buf);
        free(s);
        free(h);
        return lw_fail(LW_ERR_NOMEM, "llama2.c tokenizer: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (sym){t->ids[i], i + 1 < n ? (int)i + 1 : -1, (int)i - 1, 0, false};
    for (size_t i = 0; i + 1 < n; i++)
        queue(m, s, (int)i, h, &nq, buf);
    while (nq) {
        cand c = heap_pop(h, &nq);
        if (s[c.pos].gone || s[c.pos].next != c.right || s[c.pos].ver != c.ver_l || s[c.right].ver != c.ver_r)
            continue;
        s[c.pos].id = c.merged;
        s[c.pos].ver++;
        s[c.right].gone = true;
        s[c.right].ver++;
        s[c.pos].next = s[c.right].next;
        if (s[c.pos].next >= 0)
            s[s[c.pos].next].prev = c.pos;
        if (s[c.pos].prev >= 0)
            queue(m, s, s[c.pos].prev, h, &nq, buf);
        if (s[c.pos].next >= 0)
            queue(m, s, c.pos, h, &nq, buf);
    }
    t->n = 0;
    for (int i = 0; i >= 0; i = s[i].next)
        t->ids[t->n++] = s[i].id;
    free(buf);
    free(s);
    free(h);
    return LW_OK;
}

static uint32_t max_piece_len(const l2c *m)
{
    uint32_t mx = 4;
    for (int i = 0; i < m->n; i++)
        mx = m->len[i] > mx ? m->len[i] : mx;
    return mx;
}

static lw_status l2c_encode(const lw_tokenizer *t, const char *text, size_t len, bool add_special,
                            int **ids, int *n_ids)
{
    const l2c *m = t->impl;
    id_list out = {0};
    lw_status st = LW_OK;
    if (len > INT32_MAX / 4)
        return lw_fail(LW_ERR_INVALID, "llama2.c tokenizer: text of %zu bytes is too long", len);
    if (add_special && t->bos_id >= 0)
        st = push(&out, t->bos_id);
    int space = lookup(m, " ", 1);
    if (st == LW_OK && len > 0 && space >= 0)
        st = push(&out, space);
    const unsigned char *s = (const unsigned char *)text;
    size_t start = 0;
    for (size_t i = 0; st == LW_OK && i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            start = i;
        if (i + 1 < len && (s[i + 1] & 0xC0) == 0x80 && i + 1 - start < 4)
            continue;
        int id = lookup(m, text + start, i + 1 - start);
        if (id >= 0)
            st = push(&out, id);
        for (size_t b = start; id < 0 && st == LW_OK && b <= i; b++)
            st = push(&out, s[b] + 3);
        start = i + 1;
    }
    if (st == LW_OK)
        st = merge_all(m, &out, max_piece_len(m));
    if (st == LW_OK && !out.ids && !(out.ids = malloc(sizeof *out.ids)))
        st = lw_fail(LW_ERR_NOMEM, "llama2.c tokenizer: out of memory");
    if (st != LW_OK) {
        free(out.ids);
        return st;
    }
    *ids = out.ids;
    *n_ids = out.n;
    return LW_OK;
}

/* ---- decoding ---- */

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static lw_status l2c_decode(const lw_tokenizer *t, const int *ids, int n_ids, char **text)
{
    const l2c *m = t->impl;
    lw_strbuf sb = {0};
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= m->n) {
            lw_sb_free(&sb);
            return lw_fail(LW_ERR_INVALID, "llama2.c tokenizer: id %d at position %d is not in the vocabulary of %d",
                           ids[i], i, m->n);
        }
        const char *p = m->arena + m->off[ids[i]];
        size_t n = m->len[ids[i]];
        if (i > 0 && ids[i - 1] == t->bos_id && n > 0 && p[0] == ' ') {
            p++;  /* sentencepiece strips the space after BOS */
            n--;
        }
        if (n >= 5 && memcmp(p, "<0x", 3) == 0 && hex(p[3]) >= 0 && hex(p[4]) >= 0) {
            char byte = (char)(hex(p[3]) * 16 + hex(p[4]));
            lw_sb_append(&sb, &byte, 1);
        } else {
            lw_sb_append(&sb, p, n);
        }
    }
    lw_sb_append(&sb, "", 0);
    if (sb.failed) {
        lw_sb_free(&sb);
        return lw_fail(LW_ERR_NOMEM, "llama2.c tokenizer: out of memory decoding %d ids", n_ids);
    }
    *text = sb.data;
    return LW_OK;
}

static int l2c_piece_id(const lw_tokenizer *t, const char *piece)
{
    return lookup(t->impl, piece, strlen(piece));
}

static const lw_tokenizer_ops l2c_ops = {l2c_encode, l2c_decode, l2c_piece_id, l2c_free};

/* ---- loading ---- */

static uint32_t read_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Counts the pieces, checking every length against the file size. */
static lw_status count_pieces(const unsigned char *d, size_t size, const char *path, int *n, size_t *bytes)
{
    if (size < 4)
        return lw_fail(LW_ERR_FORMAT, "%s: %zu bytes, too short for the max_token_length header", path, size);
    *n = 0;
    *bytes = 0;
    for (size_t at = 4; at < size;) {
        if (size - at < 8)
            return lw_fail(LW_ERR_FORMAT, "%s: piece %d: record cut off at byte %zu", path, *n, at);
        uint32_t len = read_u32(d + at + 4);
        if (len > size - at - 8 || len > INT32_MAX)
            return lw_fail(LW_ERR_FORMAT, "%s: piece %d: length %u runs past the end of the file", path, *n, len);
        if (*n == INT32_MAX / 2)
            return lw_fail(LW_ERR_FORMAT, "%s: too many pieces", path);
        at += 8 + len;
        *bytes += len;
        (*n)++;
    }
    if (*bytes > UINT32_MAX)
        return lw_fail(LW_ERR_FORMAT, "%s: %zu bytes of pieces are too many", path, *bytes);
    if (*n < 3)
        return lw_fail(LW_ERR_FORMAT, "%s: %d pieces; expected <unk>, <s>, </s> and more", path, *n);
    return LW_OK;
}

static lw_status parse(const unsigned char *d, size_t size, const char *path, l2c **out)
{
    int n = 0;
    size_t bytes = 0;
    lw_status st = count_pieces(d, size, path, &n, &bytes);
    if (st != LW_OK)
        return st;
    l2c *m = calloc(1, sizeof *m);
    if (!m)
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    m->n = n;
    m->cap = 16;
    while (m->cap < 2 * (uint32_t)n)
        m->cap *= 2;
    m->arena = malloc(bytes ? bytes : 1);
    m->off = malloc((size_t)n * sizeof *m->off);
    m->len = malloc((size_t)n * sizeof *m->len);
    m->score = malloc((size_t)n * sizeof *m->score);
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->arena || !m->off || !m->len || !m->score || !m->slots) {
        l2c_free(m);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %d pieces", path, n);
    }
    memset(m->slots, 0xff, m->cap * sizeof *m->slots);
    size_t at = 4, used = 0;
    for (int i = 0; i < n; i++) {
        memcpy(&m->score[i], d + at, 4);
        m->len[i] = read_u32(d + at + 4);
        m->off[i] = (uint32_t)used;
        memcpy(m->arena + used, d + at + 8, m->len[i]);
        used += m->len[i];
        at += 8 + m->len[i];
        uint32_t s = find_slot(m, m->arena + m->off[i], m->len[i]);
        if (m->slots[s] < 0)
            m->slots[s] = i;
    }
    if (n < 3 + 256) {
        l2c_free(m);
        return lw_fail(LW_ERR_FORMAT, "%s: %d pieces; the 256 byte pieces <0x00>.. must follow id 2", path, n);
    }
    *out = m;
    return LW_OK;
}

lw_status lw_llama2c_tokenizer_load(const char *path, lw_tokenizer *t)
{
    char *data;
    size_t size;
    lw_status st = lw_read_file(path, &data, &size);
    if (st != LW_OK)
        return st;
    l2c *m = NULL;
    st = parse((const unsigned char *)data, size, path, &m);
    free(data);
    if (st != LW_OK)
        return st;
    t->ops = &l2c_ops;
    t->impl = m;
    t->vocab_size = m->n;
    t->bos_id = 1;  /* fixed by llama2.c */
    t->eos_id = 2;
    return LW_OK;
}
