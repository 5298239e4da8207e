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

/* The placeholders of a prompt template: "{name}" with a non-empty name
 * of letters, digits and '_', "{{" and "}}" for braces. */
static lw_status check_template(const char *tpl, const char *path)
{
    int fields = 0;
    for (const char *p = tpl; *p; p++) {
        if (p[0] == '{' && p[1] == '{') { p++; continue; }
        if (p[0] == '}' && p[1] == '}') { p++; continue; }
        if (*p == '}') return lw_fail(LW_ERR_FORMAT, "%s: prompt has a lone '}' at byte %d (write }} for a brace)",
                                      path, (int)(p - tpl));
        if (*p != '{') continue;
        const char *e = p + 1;
        while ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') || (*e >= '0' && *e <= '9') || *e == '_') e++;
        if (*e != '}' || e == p + 1)
            return lw_fail(LW_ERR_FORMAT, "%s: prompt has a '{' at byte %d that opens no {field} (write {{ for a brace)",
                           path, (int)(p - tpl));
        fields++;
        p = e;
    }
    if (!fields) return lw_fail(LW_ERR_FORMAT, "%s: prompt names no {field} of the data rows", path);
    return LW_OK;
}

static lw_status get_int(json_t *obj, const char *key, const char *path, int lo, int hi, int dflt, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) { *out = dflt; return LW_OK; }
    json_int_t x = json_integer_value(v);
    if (!json_is_integer(v) || x < lo || x > hi)
        return lw_fail(LW_ERR_FORMAT, "%s: %s must be an integer %d..%d", path, key, lo, hi);
    *out = (int)x;
    return LW_OK;
}

static lw_status get_bool(json_t *obj, const char *key, const char *path, bool dflt, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) { *out = dflt; return LW_OK; }
    if (!json_is_boolean(v)) return lw_fail(LW_ERR_FORMAT, "%s: %s must be true or false", path, key);
    *out = json_is_true(v);
    return LW_OK;
}

/* The keys a kind may hold: a key of another kind is a mistake worth naming. */
static lw_status check_keys(json_t *root, const char *path, const char *kind, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(key, allowed[i]);
        if (!ok) return lw_fail(LW_ERR_FORMAT, "%s: \"%s\" is not a field of a %s task", path, key, kind);
    }
    return LW_OK;
}

static lw_status parse_generate(json_t *root, const char *path, lw_task *t)
{
    static const char *const keys[] = {"name", "kind", "prompt", "answer_prompt", "answer_field", "metric",
                                       "max_new_tokens", "first_line", "description", "budget_field", NULL};
    lw_status st = check_keys(root, path, "generate", keys);
    if (!st) st = get_string(root, "answer_field", path, "", false, &t->answer_field);
    const char *metric = json_string_value(json_object_get(root, "metric"));
    if (!st && (!metric || (strcmp(metric, "squad_em_f1") && strcmp(metric, "gsm8k_number"))))
        st = lw_fail(LW_ERR_FORMAT, "%s: metric must be \"squad_em_f1\" or \"gsm8k_number\"", path);
    if (!st) t->metric = !strcmp(metric, "squad_em_f1") ? LW_METRIC_SQUAD_EM_F1 : LW_METRIC_GSM8K_NUMBER;
    if (!st) st = get_int(root, "max_new_tokens", path, 1, 4096, 32, &t->max_new_tokens);
    if (!st) st = get_bool(root, "first_line", path, t->metric == LW_METRIC_SQUAD_EM_F1, &t->first_line);
    if (!st && json_object_get(root, "budget_field"))
        st = get_string(root, "budget_field", path, "", false, &t->budget_field);
    if (!st && t->budget_field) {   /* the field the cut applies to must be one the prompt fills */
        char ref[300];
        snprintf(ref, sizeof ref, "{%s}", t->budget_field);
        if (!strstr(t->prompt, ref))
            st = lw_fail(LW_ERR_FORMAT, "%s: budget_field \"%s\": the prompt has no %s to cut", path,
                         t->budget_field, ref);
    }
    return st;
}

static lw_status parse_choice(json_t *root, const char *path, lw_task *t)
{
    static const char *const keys[] = {"name", "kind", "prompt", "answer_prompt", "choices_field", "choices",
                                       "label_field", "choice_prefix", "choice_score", "description", NULL};
    lw_status st = check_keys(root, path, "choice", keys);
    json_t *fixed = json_object_get(root, "choices");
    bool has_field = json_object_get(root, "choices_field") != NULL;
    if (!st && has_field == (fixed != NULL))
        st = lw_fail(LW_ERR_FORMAT, "%s: a choice task has either choices_field (the row's array of choices) or "
                     "choices (the same for every row), not %s", path, has_field ? "both" : "neither");
    if (!st && has_field) st = get_string(root, "choices_field", path, "", false, &t->choices_field);
    if (!st && fixed) {
        size_t n = json_array_size(fixed);
        if (!json_is_array(fixed) || n < 2 || n > LW_TASK_MAX_CHOICES)
            st = lw_fail(LW_ERR_FORMAT, "%s: choices must be an array of 2..%d strings", path, LW_TASK_MAX_CHOICES);
        else if (!(t->fixed_choices = calloc(n, sizeof(char *))))
            st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
        for (size_t i = 0; !st && i < n; i++) {
            const char *c = json_string_value(json_array_get(fixed, i));
            if (!c || !*c) st = lw_fail(LW_ERR_FORMAT, "%s: choices[%zu] is not a non-empty string", path, i);
            else if (!(t->fixed_choices[i] = strdup(c))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
            else t->n_fixed_choices = (int)i + 1;
            for (size_t j = 0; !st && j < i; j++)
                if (!strcmp(t->fixed_choices[j], c))
                    st = lw_fail(LW_ERR_FORMAT, "%s: choices[%zu] \"%s\" repeats choices[%zu]", path, i, c, j);
        }
    }
    if (!st) st = get_string(root, "label_field", path, "", false, &t->label_field);
    if (!st && json_object_get(root, "choice_prefix")) st = get_string(root, "choice_prefix", path, "", true,
                                                                         &t->choice_prefix);
    else if (!st && !(t->choice_prefix = strdup(" "))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    const char *score = json_string_value(json_object_get(root, "choice_score"));
    if (!st && json_object_get(root, "choice_score") && (!score || (strcmp(score, "mean") && strcmp(score, "sum"))))
        st = lw_fail(LW_ERR_FORMAT, "%s: choice_score must be \"mean\" (log-prob per token) or \"sum\"", path);
    if (!st) t->choice_mean = !score || !strcmp(score, "mean");
    return st;
}

/* generate and choice: the fields both have, then the kind's own. */
static lw_status parse_answer_task(json_t *root, const char *path, lw_task *t)
{
    lw_status st = get_string(root, "prompt", path, "", false, &t->prompt);
    if (!st) st = check_template(t->prompt, path);
    if (!st) st = get_string(root, "answer_prompt", path, "", true, &t->answer_prompt);
    if (!st && !(t->primer = strdup(""))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    if (!st) st = t->kind == LW_TASK_GENERATE ? parse_generate(root, path, t) : parse_choice(root, path, t);
    return st;
}

const char *lw_task_kind_name(lw_task_kind k)
{
    return k == LW_TASK_GENERATE ? "generate" : k == LW_TASK_CHOICE ? "choice" : "classify";
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
    json_t *kind = st ? NULL : json_object_get(root, "kind");
    const char *k = json_string_value(kind);
    if (!st && kind && (!k || (strcmp(k, "classify") && strcmp(k, "generate") && strcmp(k, "choice"))))
        st = lw_fail(LW_ERR_FORMAT, "%s: kind must be \"classify\", \"generate\" or \"choice\"", path);
    if (!st) {
        snprintf(out->name, sizeof out->name, "%s", name);
        out->kind = !k || !strcmp(k, "classify") ? LW_TASK_CLASSIFY
                    : !strcmp(k, "generate")     ? LW_TASK_GENERATE : LW_TASK_CHOICE;
    }
    if (!st && out->kind != LW_TASK_CLASSIFY) st = parse_answer_task(root, path, out);
    else {
        if (!st) st = get_string(root, "primer", path, "", true, &out->primer);
        if (!st) st = get_string(root, "answer_prompt", path, "", true, &out->answer_prompt);
        if (!st) st = parse_labels(json_object_get(root, "labels"), path, out);
    }
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
    free(t->prompt);
    free(t->answer_field);
    free(t->budget_field);
    free(t->choices_field);
    for (int i = 0; i < t->n_fixed_choices; i++) free(t->fixed_choices[i]);
    free(t->fixed_choices);
    free(t->label_field);
    free(t->choice_prefix);
    memset(t, 0, sizeof *t);
}

int lw_task_label_index(const lw_task *t, const char *label)
{
    for (int i = 0; i < t->n_labels; i++)
        if (strcmp(t->labels[i], label) == 0) return i;
    return -1;
}
