#include "dataset.h"
#include "jsonerr.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
    return true;
}

static lw_status parse_line(const char *line, size_t len, const char *path, long lineno, const lw_task *task,
                            lw_example *ex)
{
    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);
    if (!o && lw_json_error_is_bom(&err))
        return lw_fail(LW_ERR_FORMAT, "%s:%ld: " LW_BOM_MESSAGE, path, lineno);
    if (!o) return lw_fail(LW_ERR_FORMAT, "%s:%ld: not valid JSON (%s)", path, lineno, lw_json_error(&err));
    lw_status st = LW_OK;
    const char *text = json_string_value(json_object_get(o, "text"));
    const char *label = json_string_value(json_object_get(o, "label"));
    if (!json_is_object(o) || !text || !label) {
        st = lw_fail(LW_ERR_FORMAT, "%s:%ld: expected an object with string fields \"text\" and \"label\"", path,
                     lineno);
    } else if ((ex->label = lw_task_label_index(task, label)) < 0) {
        st = lw_fail(LW_ERR_FORMAT, "%s:%ld: label \"%s\" is not one of task %s's %d labels", path, lineno, label,
                     task->name, task->n_labels);
    } else if (!(ex->text = strdup(text))) {
        st = lw_fail(LW_ERR_NOMEM, "%s:%ld: out of memory", path, lineno);
    }
    json_decref(o);
    return st;
}

static lw_status grow(lw_dataset *d, int *cap, const char *path)
{
    if (d->n < *cap) return LW_OK;
    if (*cap > (1 << 28)) return lw_fail(LW_ERR_INVALID, "%s: more than 2^28 examples", path);
    int ncap = *cap ? *cap * 2 : 1024;
    lw_example *e = realloc(d->examples, (size_t)ncap * sizeof *e);
    if (!e) return lw_fail(LW_ERR_NOMEM, "%s: out of memory at %d examples", path, d->n);
    d->examples = e;
    *cap = ncap;
    return LW_OK;
}

lw_status lw_dataset_load(const char *path, const lw_task *task, int max_examples, lw_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (task->kind != LW_TASK_CLASSIFY)   /* those rows load through answer_data.h */
        return lw_fail(LW_ERR_INVALID, "task %s is a %s task: only lw eval takes it (--method receiver-text or "
                       "sender-text); training on answers is not built yet (issue 24)", task->name,
                       lw_task_kind_name(task->kind));
    FILE *f = fopen(path, "rb");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    out->n_labels = task->n_labels;
    out->label_counts = calloc((size_t)task->n_labels, sizeof(int));
    lw_status st = out->label_counts ? LW_OK : lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    long lineno = 0;
    int cap = 0;
    while (!st && (max_examples <= 0 || out->n < max_examples) && (len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line)) {
            st = lw_fail(LW_ERR_FORMAT, "%s:%ld: contains a NUL byte", path, lineno);
            break;
        }
        if (blank(line)) continue;
        st = grow(out, &cap, path);
        if (!st) st = parse_line(line, (size_t)len, path, lineno, task, &out->examples[out->n]);
        if (!st) out->label_counts[out->examples[out->n++].label]++;
    }
    if (!st && ferror(f)) {
        /* fopen succeeds on a directory; only the first read says EISDIR. */
        st = errno == EISDIR ? lw_fail(LW_ERR_IO, "%s: is a directory, expected a JSONL data file", path)
                             : lw_fail(LW_ERR_IO, "%s: read error after line %ld: %s", path, lineno,
                                       strerror(errno));
    }
    if (!st && out->n == 0) st = lw_fail(LW_ERR_FORMAT, "%s: no examples", path);
    free(line);
    fclose(f);
    if (st) lw_dataset_free(out);
    return st;
}

void lw_dataset_free(lw_dataset *d)
{
    for (int i = 0; i < d->n; i++) free(d->examples[i].text);
    free(d->examples);
    free(d->label_counts);
    memset(d, 0, sizeof *d);
}

/* ---- sampling ----------------------------------------------------------- */

lw_status lw_sampler_init(lw_sampler *s, const lw_dataset *d, bool class_balanced, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->data = d;
    s->balanced = class_balanced;
    lw_rng_seed(&s->rng, seed);
    int L = d->n_labels;
    s->order = malloc((size_t)d->n * sizeof(int));
    s->by_label = malloc((size_t)d->n * sizeof(int));
    s->label_start = calloc((size_t)L + 1, sizeof(int));
    s->label_pos = calloc((size_t)L, sizeof(int));
    s->present = malloc((size_t)L * sizeof(int));
    if (!s->order || !s->by_label || !s->label_start || !s->label_pos || !s->present) {
        lw_sampler_free(s);
        return lw_fail(LW_ERR_NOMEM, "sampler: out of memory for %d examples", d->n);
    }
    for (int i = 0; i < d->n; i++) s->order[i] = i;
    lw_rng_shuffle(&s->rng, s->order, (size_t)d->n);
    for (int l = 0; l < L; l++) s->label_start[l + 1] = s->label_start[l] + d->label_counts[l];
    for (int l = 0; l < L; l++) s->label_pos[l] = s->label_start[l];
    for (int i = 0; i < d->n; i++) s->by_label[s->label_pos[d->examples[i].label]++] = i;
    for (int l = 0; l < L; l++) {
        s->label_pos[l] = 0;
        if (d->label_counts[l] > 0) {
            s->present[s->n_present++] = l;
            lw_rng_shuffle(&s->rng, s->by_label + s->label_start[l], (size_t)d->label_counts[l]);
        }
    }
    return LW_OK;
}

int lw_sampler_next(lw_sampler *s)
{
    if (!s->balanced) {
        if (s->pos == s->data->n) {
            lw_rng_shuffle(&s->rng, s->order, (size_t)s->data->n);
            s->pos = 0;
        }
        return s->order[s->pos++];
    }
    int l = s->present[lw_rng_below(&s->rng, (uint64_t)s->n_present)];
    int *group = s->by_label + s->label_start[l], count = s->data->label_counts[l];
    if (s->label_pos[l] == count) {
        lw_rng_shuffle(&s->rng, group, (size_t)count);
        s->label_pos[l] = 0;
    }
    return group[s->label_pos[l]++];
}

void lw_sampler_skip(lw_sampler *s, long n)
{
    for (long i = 0; i < n; i++) lw_sampler_next(s);
}

void lw_sampler_free(lw_sampler *s)
{
    free(s->order);
    free(s->by_label);
    free(s->label_start);
    free(s->label_pos);
    free(s->present);
    memset(s, 0, sizeof *s);
}
