/* SQuAD's EM/F1 and GSM8K's final number (answer_metrics.h). */
#include "answer_metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_wordpiece.h"
#include "unicode.h"

/* ---- code point buffers -------------------------------------------------- */

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cps;

static bool cps_push(cps *a, uint32_t cp)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return false;
        a->v = v, a->cap = cap;
    }
    a->v[a->n++] = cp;
    return true;
}

static const lw_wp_map *lower_map(uint32_t cp)
{
    int lo = 0, hi = lw_wp_lower_map_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < lw_wp_lower_map[mid].cp) hi = mid - 1;
        else if (cp > lw_wp_lower_map[mid].cp) lo = mid + 1;
        else return &lw_wp_lower_map[mid];
    }
    return NULL;
}

/* Python's str.isspace() as str.split() uses it: Unicode White_Space plus
 * the information separators U+001C..U+001F. */
static bool py_space(uint32_t cp) { return lw_uc_is_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

/* Python re's \w on str: alphanumeric or underscore. */
static bool py_word(uint32_t cp) { return cp == '_' || lw_uc_is_letter(cp) || lw_uc_is_number(cp); }

static bool ascii_punct(uint32_t cp) { return cp < 128 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (int)cp) && cp; }

/* ---- normalisation ------------------------------------------------------- */

/* lower() and remove_punc(), into a. The lowercase map is Unicode's full
 * mapping (the one BertNormalizer's tables carry), as Python's lower(). */
static bool lower_no_punct(const char *text, cps *a)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    while (len > 0) {
        size_t adv;
        uint32_t cp = lw_utf8_decode(s, len, &adv);
        s += adv, len -= adv;
        const lw_wp_map *m = lower_map(cp);
        uint32_t out[3] = {cp};
        int n = 1;
        if (m) {
            n = m->n;
            memcpy(out, m->out, sizeof out);
        }
        for (int i = 0; i < n; i++)
            if (!ascii_punct(out[i]) && !cps_push(a, out[i])) return false;
    }
    return true;
}

static bool is_article(const uint32_t *w, size_t n)
{
    if (n == 1) return w[0] == 'a';
    if (n == 2) return w[0] == 'a' && w[1] == 'n';
    return n == 3 && w[0] == 't' && w[1] == 'h' && w[2] == 'e';
}

/* remove_articles (re.sub(r'\b(a|an|the)\b', ' ', s)) then white_space_fix,
 * as UTF-8 into out. An article is a maximal run of word characters, so
 * \b holds on both sides exactly when the run is one of the three words. */
static lw_status finish(const cps *a, char **out)
{
    /* each code point grows at most to 4 bytes; articles become one space */
    char *o = malloc(a->n * 4 + 1);
    if (!o) return lw_fail(LW_ERR_NOMEM, "squad metric: out of memory");
    size_t w = 0;
    bool pending_space = false;   /* a separator seen since the last token byte */
    size_t i = 0;
    while (i < a->n) {
        uint32_t cp = a->v[i];
        if (py_word(cp)) {
            size_t j = i;
            while (j < a->n && py_word(a->v[j])) j++;
            if (is_article(a->v + i, j - i)) {
                pending_space = true;
            } else {
                if (pending_space && w > 0) o[w++] = ' ';
                pending_space = false;
                for (size_t k = i; k < j; k++) w += (size_t)lw_utf8_encode(a->v[k], o + w);
            }
            i = j;
        } else if (py_space(cp)) {
            pending_space = true;
            i++;
        } else {
            if (pending_space && w > 0) o[w++] = ' ';
            pending_space = false;
            w += (size_t)lw_utf8_encode(cp, o + w);
            i++;
        }
    }
    o[w] = 0;
    *out = o;
    return LW_OK;
}

lw_status lw_squad_normalize(const char *text, char **out)
{
    cps a = {0};
    *out = NULL;
    lw_status st = lower_no_punct(text, &a) ? finish(&a, out) : lw_fail(LW_ERR_NOMEM, "squad metric: out of memory");
    free(a.v);
    return st;
}

/* ---- EM and F1 ------------------------------------------------------------ */

/* Splits s (normalised: single spaces) in place into tokens. */
static int split_tokens(char *s, char ***tok)
{
    int n = 0;
    for (char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == ' ')) n++;
    *tok = malloc(((size_t)n + 1) * sizeof **tok);
    if (!*tok) return -1;
    int k = 0;
    for (char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == ' ')) (*tok)[k++] = p;
    for (char *p = s; *p; p++)
        if (*p == ' ') *p = 0;
    return n;
}

lw_status lw_squad_em_f1(const char *pred, const char *gold, double *em, double *f1)
{
    char *p = NULL, *g = NULL, **pt = NULL, **gt = NULL;
    bool *used = NULL;
    lw_status st = lw_squad_normalize(pred, &p);
    if (!st) st = lw_squad_normalize(gold, &g);
    if (st) goto done;
    *em = strcmp(p, g) == 0;
    int np = split_tokens(p, &pt), ng = split_tokens(g, &gt);
    if (np < 0 || ng < 0 || !(used = calloc((size_t)ng + 1, 1))) {
        st = lw_fail(LW_ERR_NOMEM, "squad metric: out of memory");
        goto done;
    }
    int same = 0;   /* Counter(pred) & Counter(gold): each gold token matched once */
    for (int i = 0; i < np; i++)
        for (int j = 0; j < ng; j++)
            if (!used[j] && !strcmp(pt[i], gt[j])) {
                used[j] = true;
                same++;
                break;
            }
    if (same == 0) *f1 = 0;
    else {
        double prec = (double)same / np, rec = (double)same / ng;
        *f1 = 2 * prec * rec / (prec + rec);
    }
done:
    free(p), free(g), free(pt), free(gt), free(used);
    return st;
}

lw_status lw_squad_score(const char *pred, const char *const *golds, int n_gold, double *em, double *f1)
{
    if (n_gold < 1) return lw_fail(LW_ERR_INVALID, "squad metric: no gold answer");
    *em = 0, *f1 = 0;
    for (int i = 0; i < n_gold; i++) {
        double e, f;
        lw_status st = lw_squad_em_f1(pred, golds[i], &e, &f);
        if (st) return st;
        if (e > *em) *em = e;
        if (f > *f1) *f1 = f;
    }
    return LW_OK;
}

/* ---- GSM8K ---------------------------------------------------------------- */

static bool digit(char c) { return c >= '0' && c <= '9'; }

bool lw_last_number(const char *text, char *out, size_t cap)
{
    const char *best = NULL;
    size_t best_len = 0;
    for (const char *p = text; *p;) {
        if (!digit(*p)) { p++; continue; }
        /* a run: digits, commas between digits, one '.' followed by digits */
        const char *s = p, *e = p;
        bool dot = false;
        while (*e) {
            if (digit(*e)) e++;
            else if (*e == ',' && digit(e[1]) && e > s) e++;
            else if (*e == '.' && !dot && digit(e[1])) dot = true, e++;
            else break;
        }
        if (s > text && s[-1] == '-') s--;
        best = s, best_len = (size_t)(e - s);
        p = e;
    }
    if (!best) return false;
    size_t w = 0;
    for (size_t i = 0; i < best_len; i++) {
        if (best[i] == ',') continue;
        if (w + 1 >= cap) return false;
        out[w++] = best[i];
    }
    out[w] = 0;
    return true;
}

lw_status lw_gsm8k_score(const char *pred, const char *gold, double *correct)
{
    char g[128], p[128];
    *correct = 0;
    if (!lw_last_number(gold, g, sizeof g))
        return lw_fail(LW_ERR_FORMAT, "gsm8k metric: the gold answer \"%.60s\" holds no number", gold);
    if (!lw_last_number(pred, p, sizeof p)) return LW_OK;
    double a = strtod(p, NULL), b = strtod(g, NULL);
    *correct = fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b));
    return LW_OK;
}

char *lw_answer_extract(const char *text, bool first_line)
{
    const char *s = text;
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = first_line ? strcspn(s, "\n") : strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
    }
    return out;
}
