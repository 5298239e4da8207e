#include "task.h"
#include "jsonerr.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"

static lw_status get_string(json_t *obj, const char *key, const char *path, const char *where, bool allow_empty,
                            char **out)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s || (!allow_empty && !*s))
        return lw_fail(LW_ERR_FORMAT, "%s: %s%s is missing or not a non-empty string", path, where, key);
    *out = strdup(s);
    if (!*out) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    return LW_OK;
}

static lw_status parse_labels(json_t *arr, const char *path, lw_task *t)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n < 2 || n > LW_TASK_MAX_LABELS)
        return lw_fail(LW_ERR_FORMAT, "%s: labels must be an array of 2..%d objects", path, LW_TASK_MAX_LABELS);
    t->labels = calloc(n, sizeof(char *));
    t->verbalizers = calloc(n, sizeof(char *));
    if (!t->labels || !t->verbalizers) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        char where[48];
        snprintf(where, sizeof where, "labels[%zu].", i);
        if (!json_is_object(e)) return lw_fail(LW_ERR_FORMAT, "%s: labels[%zu] is not an object", path, i);
        lw_status st = get_string(e, "label", path, where, false, &t->labels[i]);
        if (!st) st = get_string(e, "verbalizer", path, where, false, &t->verbalizers[i]);
        t->n_labels = (int)i + 1;
        if (st) return st;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->labels[j], t->labels[i]) == 0)
                return lw_fail(LW_ERR_FORMAT, "%s: labels[%zu].label \"%s\" repeats labels[%zu]", path, i,
                               t->labels[i], j);
            if (strcmp(t->verbalizers[j], t->verbalizers[i]) == 0)
                return lw_fail(LW_ERR_FORMAT, "%s: labels[%zu].verbalizer \"%s\" repeats labels[%zu]'s", path, i,
                               t->verbalizers[i], j);
        }
    }
    return LW_OK;
}

lw_status lw_task_parse(const char *text, size_t len, const char *path, lw_task *out)
{
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    if (!root && lw_json_error_is_bom(&err)) return lw_fail(LW_ERR_FORMAT, "%s: " LW_BOM_MESSAGE, path);
    if (!root) return lw_fail(LW_ERR_FORMAT, "%s:%d:%d: %s", path, err.line, err.column, lw_json_error(&err));
    lw_status st = LW_OK;
    const char *name = json_string_value(json_object_get(root, "name"));
    if (!json_is_object(root)) st = lw_fail(LW_ERR_FORMAT, "%s: expected a JSON object", path);
    else if (!name || !*name || strlen(name) >= LW_TASK_NAME_MAX)
        st = lw_fail(LW_ERR_FORMAT, "%s: name is missing or longer than %d", path, LW_TASK_NAME_MAX - 1);
    if (!st) {
        snprintf(out->name, sizeof out->name, "%s", name);
        st = get_string(root, "primer", path, "", true, &out->primer);
    }
    if (!st) st = get_string(root, "answer_prompt", path, "", true, &out->answer_prompt);
    if (!st) st = parse_labels(json_object_get(root, "labels"), path, out);
    json_decref(root);
    if (st) lw_task_free(out);
    return st;
}

lw_status lw_task_load(const char *path, lw_task *out)
{
    char *text;
    size_t len;
    memset(out, 0, sizeof *out);
    lw_status st = lw_read_file(path, &text, &len);
    if (st) return st;
    st = lw_task_parse(text, len, path, out);
    free(text);
    return st;
}

void lw_task_free(lw_task *t)
{
    for (int i = 0; i < t->n_labels; i++) {
        if (t->labels) free(t->labels[i]);
        if (t->verbalizers) free(t->verbalizers[i]);
    }
    free(t->labels);
    free(t->verbalizers);
    free(t->primer);
    free(t->answer_prompt);
    memset(t, 0, sizeof *t);
}

int lw_task_label_index(const lw_task *t, const char *label)
{
    for (int i = 0; i < t->n_labels; i++)
        if (strcmp(t->labels[i], label) == 0) return i;
    return -1;
}
