/* The confidence-gated fallback (bridge_fallback.h). */
#include "bridge_fallback.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Examples in order of rising margin (ties by index: a stable order). */
static const double *sort_margins;
static int by_margin(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_margins[i] != sort_margins[j]) return sort_margins[i] < sort_margins[j] ? -1 : 1;
    return i - j;
}

static double accuracy(const lw_dataset *d, const int *pred)
{
    int right = 0;
    for (int i = 0; i < d->n; i++) right += pred[i] == d->examples[i].label;
    return d->n ? (double)right / d->n : 0.0;
}

lw_status lw_bridge_fallback(const lw_manifest *m, const lw_task *task, const lw_dataset *d, const double *margins,
                             float threshold, bool curve, const lw_baseline_options *o, double bridge_seconds,
                             int *pred, json_t **extra)
{
    int n = d->n, k = 0;
    int *idx = malloc((size_t)n * sizeof *idx), *text_pred = malloc((size_t)n * sizeof *text_pred),
        *bridge_pred = malloc((size_t)n * sizeof *bridge_pred);
    lw_dataset sub = {.n_labels = d->n_labels};
    sub.examples = malloc((size_t)n * sizeof *sub.examples);
    sub.label_counts = calloc((size_t)(d->n_labels > 0 ? d->n_labels : 1), sizeof *sub.label_counts);
    lw_status st = LW_OK;
    json_t *base_extra = NULL;
    if (!idx || !text_pred || !bridge_pred || !sub.examples || !sub.label_counts)
        st = lw_fail(LW_ERR_NOMEM, "fallback: out of memory");
    for (int i = 0; !st && i < n; i++) {
        bridge_pred[i] = pred[i];
        text_pred[i] = -1;
        if (curve || margins[i] < threshold) {   /* the texts the receiver reads */
            idx[k] = i;
            sub.examples[k] = d->examples[i];    /* shares the text: freed with d only */
            sub.label_counts[d->examples[i].label]++;
            k++;
        }
    }
    sub.n = k;
    double t0 = lw_now_s();
    int *sub_pred = k && !st ? malloc((size_t)k * sizeof *sub_pred) : NULL;
    if (k && !st && !sub_pred) st = lw_fail(LW_ERR_NOMEM, "fallback: out of memory");
    if (k && !st)
        st = lw_baseline_predict(m, task, &sub, NULL, &(lw_subset){0}, LW_BASELINE_RECEIVER_ZEROSHOT, o, sub_pred,
                                 &base_extra);
    double text_seconds = lw_now_s() - t0;
    for (int j = 0; !st && j < k; j++) text_pred[idx[j]] = sub_pred[j];
    int fell = 0;
    for (int i = 0; !st && i < n; i++)
        if (margins[i] < threshold) pred[i] = text_pred[i], fell++;
    if (!st) {
        json_t *o_ = json_object();
        json_object_set_new(o_, "threshold", json_real(threshold));
        json_object_set_new(o_, "fallback_n", json_integer(fell));
        json_object_set_new(o_, "fallback_fraction", json_real(n ? (double)fell / n : 0.0));
        json_object_set_new(o_, "bridge_accuracy", json_real(accuracy(d, bridge_pred)));
        json_object_set_new(o_, "bridge_seconds_per_example", json_real(n ? bridge_seconds / n : 0.0));
        json_object_set_new(o_, "fallback_seconds_per_text", json_real(k ? text_seconds / k : 0.0));
        if (curve) {
            /* fall back the j least sure examples, j = 0..n */
            json_t *c = json_array();
            int *order = malloc((size_t)n * sizeof *order), *p = malloc((size_t)n * sizeof *p);
            if (!order || !p) st = lw_fail(LW_ERR_NOMEM, "fallback: out of memory");
            for (int i = 0; !st && i < n; i++) order[i] = i, p[i] = bridge_pred[i];
            sort_margins = margins;
            if (!st) qsort(order, (size_t)n, sizeof *order, by_margin);
            for (int j = 0; !st && j <= n; j++) {
                if (j > 0) p[order[j - 1]] = text_pred[order[j - 1]];
                json_array_append_new(c, json_pack("{s:f, s:f, s:f}", "fraction", (double)j / n, "accuracy",
                                                   accuracy(d, p), "below_margin",
                                                   j < n ? margins[order[j]] : margins[order[n - 1]] + 1.0));
            }
            free(order);
            free(p);
            json_object_set_new(o_, "fallback_curve", c);
        }
        *extra = o_;
    }
    json_decref(base_extra);
    free(sub_pred);
    free(idx);
    free(text_pred);
    free(bridge_pred);
    free(sub.examples);
    free(sub.label_counts);
    return st;
}
