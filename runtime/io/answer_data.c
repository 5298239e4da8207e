/* Loading the rows of a generate or choice task (answer_data.h). */
#include "answer_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonerr.h"

/* One field's value as prompt text, to f. */
static lw_status write_value(FILE *f, json_t *v, const char *where, const char *name)
{
    if (json_is_string(v)) { fputs(json_string_value(v), f); return LW_OK; }
    if (json_is_integer(v)) { fprintf(f, "%lld", (long long)json_integer_value(v)); return LW_OK; }
    if (json_is_real(v)) { fprintf(f, "%g", json_real_value(v)); return LW_OK; }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (i) fputc('\n', f);
            const char *title = json_string_value(json_object_get(e, "title"));
            const char *text = json_string_value(json_object_get(e, "text"));
            if (json_is_string(e)) fputs(json_string_value(e), f);
            else if (title && text) fprintf(f, "%s: %s", title, text);
            else return lw_fail(LW_ERR_FORMAT, "%s: %s[%zu] is neither a string nor a {\"title\", \"text\"} object",
                                where, name, i);
        }
        return LW_OK;
    }
    return lw_fail(LW_ERR_FORMAT, "%s: field \"%s\" is %s, not a string, number or array", where, name,
                   v ? "an object, boolean or null" : "missing");
}

lw_status lw_answer_render(const char *tpl, json_t *row, const char *where, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
    lw_status st = LW_OK;
    for (const char *p = tpl; *p && !st; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            fputc(*p++, f);
            continue;
        }
        if (*p != '{') { fputc(*p, f); continue; }
        const char *e = strchr(p, '}');   /* the task loader checked the template */
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
        st = write_value(f, json_object_get(row, name), where, name);
        p = e;
    }
    if (fclose(f) && !st) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
    if (st) free(buf);
    else *out = buf;
    return st;
}

static lw_status strings_of(json_t *v, const char *where, const char *field, int lo, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (json_is_string(v)) v = json_pack("[O]", v);
    else json_incref(v);
    size_t count = json_array_size(v);
    lw_status st = LW_OK;
    if (!json_is_array(v) || (int)count < lo || count > LW_TASK_MAX_CHOICES * 16)
        st = lw_fail(LW_ERR_FORMAT, "%s: field \"%s\" must be a string or an array of %d or more strings", where,
                     field, lo);
    else if (!(*out = calloc(count, sizeof(char *)))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
    for (size_t i = 0; !st && i < count; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) st = lw_fail(LW_ERR_FORMAT, "%s: %s[%zu] is not a string", where, field, i);
        else if (!((*out)[i] = strdup(s))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
        else *n = (int)i + 1;
    }
    json_decref(v);
    return st;
}

static lw_status choice_label(const lw_task *t, json_t *row, const char *where, lw_answer_row *r)
{
    json_t *v = json_object_get(row, t->label_field);
    if (json_is_integer(v)) {
        json_int_t k = json_integer_value(v);
        if (k < 0 || k >= r->n_choices)
            return lw_fail(LW_ERR_FORMAT, "%s: label field \"%s\" is %lld, outside the %d choices", where,
                           t->label_field, (long long)k, r->n_choices);
        r->label = (int)k;
        return LW_OK;
    }
    const char *s = json_string_value(v);
    for (int k = 0; s && k < r->n_choices; k++)
        if (!strcmp(s, r->choices[k])) {
            r->label = k;
            return LW_OK;
        }
    return lw_fail(LW_ERR_FORMAT, "%s: label field \"%s\" must be a choice's index or one of the choices' texts%s%s%s",
                   where, t->label_field, s ? " (got \"" : "", s ? s : "", s ? "\")" : "");
}

static lw_status parse_row(const lw_task *t, json_t *row, const char *where, lw_answer_row *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(row)) return lw_fail(LW_ERR_FORMAT, "%s: expected a JSON object", where);
    lw_status st = lw_answer_render(t->prompt, row, where, &r->prompt);
    if (!st) r->fields = json_incref(row);
    if (!st && t->kind == LW_TASK_GENERATE)
        st = strings_of(json_object_get(row, t->answer_field), where, t->answer_field, 1, &r->golds, &r->n_gold);
    if (!st && t->kind == LW_TASK_CHOICE) {
        if (t->choices_field)
            st = strings_of(json_object_get(row, t->choices_field), where, t->choices_field, 2, &r->choices,
                            &r->n_choices);
        else if (!(r->choices = calloc((size_t)t->n_fixed_choices, sizeof(char *))))
            st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
        for (int k = 0; !st && !t->choices_field && k < t->n_fixed_choices; k++)
            if (!(r->choices[k] = strdup(t->fixed_choices[k]))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", where);
            else r->n_choices = k + 1;
        if (!st) st = choice_label(t, row, where, r);
    }
    return st;
}

static void row_free(lw_answer_row *r)
{
    free(r->prompt);
    for (int i = 0; i < r->n_gold; i++) free(r->golds[i]);
    free(r->golds);
    for (int i = 0; i < r->n_choices; i++) free(r->choices[i]);
    free(r->choices);
    json_decref(r->fields);
    memset(r, 0, sizeof *r);
}

void lw_answer_data_free(lw_answer_data *d)
{
    for (int i = 0; i < d->n; i++) row_free(&d->rows[i]);
    free(d->rows);
    memset(d, 0, sizeof *d);
}

lw_status lw_answer_data_load(const char *path, const lw_task *task, int limit, lw_answer_data *out)
{
    memset(out, 0, sizeof *out);
    if (task->kind == LW_TASK_CLASSIFY)
        return lw_fail(LW_ERR_INVALID, "%s: task %s is a classification task", path, task->name);
    FILE *f = fopen(path, "r");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rows_cap = 0;
    lw_status st = LW_OK;
    while (!st && (limit <= 0 || out->n < limit) && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == (size_t)len) continue;
        json_error_t err;
        json_t *row = json_loadb(line, (size_t)len, 0, &err);
        if (!row) {
            st = lw_json_error_is_bom(&err) ? lw_fail(LW_ERR_FORMAT, "%s: " LW_BOM_MESSAGE, where)
                                            : lw_fail(LW_ERR_FORMAT, "%s: %s", where, lw_json_error(&err));
            break;
        }
        if (out->n == rows_cap) {
            int nc = rows_cap ? 2 * rows_cap : 64;
            lw_answer_row *r = realloc(out->rows, (size_t)nc * sizeof *r);
            if (!r) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
            else out->rows = r, rows_cap = nc;
        }
        if (!st) {
            st = parse_row(task, row, where, &out->rows[out->n]);
            if (st) row_free(&out->rows[out->n]);
            else out->n++;
        }
        json_decref(row);
    }
    if (!st && ferror(f)) st = lw_fail(LW_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    if (!st && out->n == 0) st = lw_fail(LW_ERR_FORMAT, "%s: no rows", path);
    if (st) lw_answer_data_free(out);
    return st;
}
