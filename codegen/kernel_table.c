#include "kernel_table.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The table is compiled in: stringifying each field keeps its text as
 * written (the preprocessor collapses the whitespace), so the parameter
 * lists are parsed by the same code that parses the templates. */
const lw_kernel_entry lw_kernel_table[] = {
#define LW_KERNEL(name, unit, sizes, grid_x, grid_y, block_x, params) \
    {#name, #unit, #sizes, #grid_x, #grid_y, #block_x, #params},
#include "../templates/kernels.def"
#undef LW_KERNEL
};
const int lw_kernel_table_len = (int)(sizeof lw_kernel_table / sizeof lw_kernel_table[0]);

static bool ident_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* One parameter, text [s, e): type tokens then the name; '*' is a token of
 * its own, so "const float* x" and "const float *x" are the same. */
static lw_status parse_one(const char *s, const char *e, const char *what, int index, lw_kernel_param *p)
{
    char tokens[16][48];
    int n = 0;
    for (const char *c = s; c < e;) {
        if (isspace((unsigned char)*c)) {
            c++;
            continue;
        }
        const char *t = c;
        if (*c == '*') c++;
        else if (ident_start(*c))
            while (c < e && ident_char(*c)) c++;
        else
            return lw_fail(LW_ERR_FORMAT, "%s: parameter %d: unexpected '%c' (expected a type and a name, as "
                           "\"const float *x\")", what, index + 1, *c);
        if (n == 16 || (size_t)(c - t) >= sizeof tokens[0])
            return lw_fail(LW_ERR_FORMAT, "%s: parameter %d is too long", what, index + 1);
        memcpy(tokens[n], t, (size_t)(c - t));
        tokens[n++][c - t] = '\0';
    }
    if (n < 2 || !ident_start(tokens[n - 1][0]))
        return lw_fail(LW_ERR_FORMAT, "%s: parameter %d '%.*s' is not a type followed by a name", what, index + 1,
                       (int)(e - s), s);
    if (strlen(tokens[n - 1]) >= sizeof p->name)
        return lw_fail(LW_ERR_FORMAT, "%s: parameter %d's name is too long", what, index + 1);
    memcpy(p->name, tokens[n - 1], strlen(tokens[n - 1]) + 1);   /* fits: checked above */
    size_t len = 0;
    p->type[0] = '\0';
    for (int i = 0; i < n - 1; i++) {
        size_t add = strlen(tokens[i]) + (i > 0);
        if (len + add >= sizeof p->type)
            return lw_fail(LW_ERR_FORMAT, "%s: parameter %d's type is too long", what, index + 1);
        len += (size_t)snprintf(p->type + len, sizeof p->type - len, "%s%s", i ? " " : "", tokens[i]);
    }
    return LW_OK;
}

lw_status lw_kernel_parse_params(const char *list, const char *what, lw_kernel_param *out, int max, int *n)
{
    *n = 0;
    const char *s = list, *e = list + strlen(list);
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    if (e - s < 2 || *s != '(' || e[-1] != ')')
        return lw_fail(LW_ERR_FORMAT, "%s: '%s' is not a parenthesised parameter list", what, list);
    s++, e--;
    const char *c = s;
    while (c < e && isspace((unsigned char)*c)) c++;
    if (c == e) return LW_OK;   /* "()" */
    for (const char *start = s;; ) {
        const char *comma = memchr(start, ',', (size_t)(e - start));
        const char *end = comma ? comma : e;
        if (memchr(start, '(', (size_t)(end - start)) || memchr(start, ')', (size_t)(end - start)))
            return lw_fail(LW_ERR_FORMAT, "%s: parameter %d has parentheses (function pointers and macros are not "
                           "kernel parameters here)", what, *n + 1);
        if (*n == max) return lw_fail(LW_ERR_FORMAT, "%s: more than %d parameters", what, max);
        lw_status st = parse_one(start, end, what, *n, &out[*n]);
        if (st) return st;
        ++*n;
        if (!comma) break;
        start = comma + 1;
    }
    return LW_OK;
}

const char *lw_kernel_host_type(const char *type)
{
    size_t len = strlen(type);
    if (len && type[len - 1] == '*') return "lw_cuda_ptr";
    static const char *const scalars[] = {"int", "unsigned", "float", "unsigned long long"};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (!strcmp(type, scalars[i])) return scalars[i];
    return NULL;
}

lw_status lw_kernel_table_validate(void)
{
    for (int i = 0; i < lw_kernel_table_len; i++) {
        const lw_kernel_entry *k = &lw_kernel_table[i];
        char what[128];
        if (strcmp(k->unit, "model") && strcmp(k->unit, "bridge"))
            return lw_fail(LW_ERR_FORMAT, "%s: kernel %s: unit '%s', expected model or bridge", LW_KERNEL_TABLE_FILE,
                           k->name, k->unit);
        for (int j = 0; j < i; j++)
            if (!strcmp(lw_kernel_table[j].name, k->name))
                return lw_fail(LW_ERR_FORMAT, "%s: kernel %s is listed twice", LW_KERNEL_TABLE_FILE, k->name);
        lw_kernel_param p[LW_KERNEL_MAX_PARAMS], z[LW_KERNEL_MAX_PARAMS];
        int n, nz;
        snprintf(what, sizeof what, "%s: kernel %s's parameters", LW_KERNEL_TABLE_FILE, k->name);
        lw_status st = lw_kernel_parse_params(k->params, what, p, LW_KERNEL_MAX_PARAMS, &n);
        if (st) return st;
        snprintf(what, sizeof what, "%s: kernel %s's launch sizes", LW_KERNEL_TABLE_FILE, k->name);
        if ((st = lw_kernel_parse_params(k->sizes, what, z, LW_KERNEL_MAX_PARAMS, &nz))) return st;
        for (int a = 0; a < n; a++) {
            if (!lw_kernel_host_type(p[a].type))
                return lw_fail(LW_ERR_FORMAT, "%s: kernel %s: parameter %s has type '%s', which has no host type "
                               "(expected a pointer, int, unsigned, float or unsigned long long)",
                               LW_KERNEL_TABLE_FILE, k->name, p[a].name, p[a].type);
            for (int b = 0; b < a; b++)
                if (!strcmp(p[a].name, p[b].name))
                    return lw_fail(LW_ERR_FORMAT, "%s: kernel %s: two parameters named %s", LW_KERNEL_TABLE_FILE,
                                   k->name, p[a].name);
        }
        for (int a = 0; a < nz; a++) {
            if (strcmp(z[a].type, "int"))
                return lw_fail(LW_ERR_FORMAT, "%s: kernel %s: launch size %s is '%s', expected int",
                               LW_KERNEL_TABLE_FILE, k->name, z[a].name, z[a].type);
            for (int b = 0; b < n; b++)
                if (!strcmp(z[a].name, p[b].name))
                    return lw_fail(LW_ERR_FORMAT, "%s: kernel %s: launch size %s is also a parameter (use the "
                                   "parameter in the shape)", LW_KERNEL_TABLE_FILE, k->name, z[a].name);
        }
    }
    return LW_OK;
}

static const lw_kernel_entry *find_entry(const char *name, size_t len)
{
    for (int i = 0; i < lw_kernel_table_len; i++)
        if (strlen(lw_kernel_table[i].name) == len && !strncmp(lw_kernel_table[i].name, name, len))
            return &lw_kernel_table[i];
    return NULL;
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *c = text; c < at; c++) line += *c == '\n';
    return line;
}

static const char *skip_space(const char *c)
{
    while (isspace((unsigned char)*c)) c++;
    return c;
}

/* "const float *x", "int T": a parameter as C writes it. */
static const char *param_text(const lw_kernel_param *p, char *buf, size_t cap)
{
    size_t len = strlen(p->type);
    snprintf(buf, cap, "%s%s%s", p->type, len && p->type[len - 1] == '*' ? "" : " ", p->name);
    return buf;
}

/* Compares one template kernel (its parameter text [open, close]) with its
 * table entry k. */
static lw_status compare(const char *file, int line, const lw_kernel_entry *k, const char *open, const char *close)
{
    char list[2048], what[256];
    if ((size_t)(close - open + 1) >= sizeof list)
        return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %s's parameter list is too long", file, line, k->name);
    memcpy(list, open, (size_t)(close - open + 1));
    list[close - open + 1] = '\0';
    lw_kernel_param got[LW_KERNEL_MAX_PARAMS], want[LW_KERNEL_MAX_PARAMS];
    int n_got, n_want;
    snprintf(what, sizeof what, "%s:%d: kernel %s", file, line, k->name);
    lw_status st = lw_kernel_parse_params(list, what, got, LW_KERNEL_MAX_PARAMS, &n_got);
    if (!st) st = lw_kernel_parse_params(k->params, LW_KERNEL_TABLE_FILE, want, LW_KERNEL_MAX_PARAMS, &n_want);
    if (st) return st;
    for (int i = 0; i < n_got && i < n_want; i++)
        if (strcmp(got[i].type, want[i].type) || strcmp(got[i].name, want[i].name)) {
            char g[96], w[96];
            return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %s's parameter %d is '%s' here but '%s' in %s; the table "
                           "and the template must agree (the host launchers are generated from the table)", file,
                           line, k->name, i + 1, param_text(&got[i], g, sizeof g), param_text(&want[i], w, sizeof w),
                           LW_KERNEL_TABLE_FILE);
        }
    if (n_got != n_want)
        return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %s takes %d parameters here but %d in %s; the table and the "
                       "template must agree", file, line, k->name, n_got, n_want, LW_KERNEL_TABLE_FILE);
    return LW_OK;
}

lw_status lw_kernel_table_check_template(const char *file, const char *text, const char *unit)
{
    static const char MARK[] = "extern \"C\" __global__";
    bool seen[256] = {0};
    if (lw_kernel_table_len > 256) return lw_fail(LW_ERR_INVALID, "%s: more than 256 kernels", LW_KERNEL_TABLE_FILE);
    for (const char *at = strstr(text, MARK); at; at = strstr(at + 1, MARK)) {
        const char *line_start = at;
        while (line_start > text && line_start[-1] != '\n') line_start--;
        const char *slashes = strstr(line_start, "//");
        if (slashes && slashes < at) continue;   /* in a line comment: prose, not a kernel */
        int line = line_of(text, at);
        const char *c = skip_space(at + sizeof MARK - 1);
        if (strncmp(c, "void", 4) || !isspace((unsigned char)c[4]))
            return lw_fail(LW_ERR_FORMAT, "%s:%d: a kernel must return void (extern \"C\" __global__ void name(...))",
                           file, line);
        const char *name = skip_space(c + 4), *e = name;
        while (ident_char(*e)) e++;
        const char *open = skip_space(e), *close = open;
        if (e == name || *open != '(')
            return lw_fail(LW_ERR_FORMAT, "%s:%d: expected a kernel name and its parameter list", file, line);
        while (*close && *close != ')' && *close != '{' && *close != ';') close++;
        if (*close != ')')
            return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %.*s: the parameter list does not end", file, line,
                           (int)(e - name), name);
        const lw_kernel_entry *k = find_entry(name, (size_t)(e - name));
        if (!k)
            return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %.*s is not in %s; add it there (its parameters and launch "
                           "shape) so the host gets a launcher", file, line, (int)(e - name), name,
                           LW_KERNEL_TABLE_FILE);
        if (strcmp(k->unit, unit))
            return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %s is in the %s unit's template but %s gives it to the %s unit",
                           file, line, k->name, unit, LW_KERNEL_TABLE_FILE, k->unit);
        int index = (int)(k - lw_kernel_table);
        if (seen[index]) return lw_fail(LW_ERR_FORMAT, "%s:%d: kernel %s is defined twice", file, line, k->name);
        seen[index] = true;
        lw_status st = compare(file, line, k, open, close);
        if (st) return st;
    }
    for (int i = 0; i < lw_kernel_table_len; i++)
        if (!seen[i] && !strcmp(lw_kernel_table[i].unit, unit))
            return lw_fail(LW_ERR_FORMAT, "%s: kernel %s of %s (unit %s) is not defined in this template", file,
                           lw_kernel_table[i].name, LW_KERNEL_TABLE_FILE, unit);
    return LW_OK;
}

lw_status lw_kernel_table_type_checks(const char *unit, lw_strbuf *out)
{
    lw_sb_printf(out, "\n// ---- generated from %s: each kernel's type is the one its host launcher\n"
                      "// packs arguments for; a signature that differs fails here.\n"
                      "template <class A, class B> struct lw_same_type { enum { value = 0 }; };\n"
                      "template <class A> struct lw_same_type<A, A> { enum { value = 1 }; };\n", LW_KERNEL_TABLE_FILE);
    for (int i = 0; i < lw_kernel_table_len; i++) {
        const lw_kernel_entry *k = &lw_kernel_table[i];
        if (strcmp(k->unit, unit)) continue;
        lw_kernel_param p[LW_KERNEL_MAX_PARAMS];
        int n;
        lw_status st = lw_kernel_parse_params(k->params, LW_KERNEL_TABLE_FILE, p, LW_KERNEL_MAX_PARAMS, &n);
        if (st) return st;
        lw_sb_printf(out, "static_assert(lw_same_type<decltype(&%s), void (*)(", k->name);
        for (int a = 0; a < n; a++) lw_sb_printf(out, "%s%s", a ? ", " : "", p[a].type);
        lw_sb_printf(out, ")>::value,\n              \"kernel %s: its signature differs from %s\");\n", k->name,
                     LW_KERNEL_TABLE_FILE);
    }
    return out->failed ? lw_fail(LW_ERR_NOMEM, "out of memory generating the kernel type checks") : LW_OK;
}
