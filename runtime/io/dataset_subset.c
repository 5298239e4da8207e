/* A stratified, seeded subset of a loaded data file (dataset.h, lw_subset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fileutil.h"
#include "rng.h"

void lw_subset_describe(const lw_subset *sel, char *out, size_t cap)
{
    if (sel->n <= 0) snprintf(out, cap, "all");
    else if (sel->stratified) snprintf(out, cap, "stratified %d (seed %llu)", sel->n, (unsigned long long)sel->seed);
    else snprintf(out, cap, "first %d", sel->n);
}

/* keep[i] = 1 for the n examples the stratified draw picks. */
static lw_status pick_stratified(const lw_dataset *d, int n, uint64_t seed, char *keep)
{
    int L = d->n_labels;
    int *by_label = malloc((size_t)d->n * sizeof(int)), *start = calloc((size_t)L + 1, sizeof(int));
    int *order = malloc((size_t)L * sizeof(int));
    if (!by_label || !start || !order) {
        free(by_label), free(start), free(order);
        return lw_fail(LW_ERR_NOMEM, "stratified subset: out of memory for %d examples", d->n);
    }
    for (int l = 0; l < L; l++) start[l + 1] = start[l] + d->label_counts[l];
    int *fill = order;   /* borrowed as per-label fill positions before it is the label order */
    for (int l = 0; l < L; l++) fill[l] = start[l];
    for (int i = 0; i < d->n; i++) by_label[fill[d->examples[i].label]++] = i;
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    for (int l = 0; l < L; l++) lw_rng_shuffle(&rng, by_label + start[l], (size_t)d->label_counts[l]);
    for (int l = 0; l < L; l++) order[l] = l;
    lw_rng_shuffle(&rng, order, (size_t)L);
    int kept = 0;
    for (int round = 0; kept < n; round++)
        for (int j = 0; j < L && kept < n; j++) {
            int l = order[j];
            if (round < d->label_counts[l]) keep[by_label[start[l] + round]] = 1, kept++;
        }
    free(by_label), free(start), free(order);
    return LW_OK;
}

/* Drops the examples not in keep, keeping file order, and recounts labels. */
static void compact(lw_dataset *d, const char *keep)
{
    int m = 0;
    for (int l = 0; l < d->n_labels; l++) d->label_counts[l] = 0;
    for (int i = 0; i < d->n; i++) {
        if (!keep[i]) {
            free(d->examples[i].text);
            continue;
        }
        d->examples[m++] = d->examples[i];
        d->label_counts[d->examples[i].label]++;
    }
    d->n = m;
}

lw_status lw_dataset_load_subset(const char *path, const lw_task *task, const lw_subset *sel, lw_dataset *out)
{
    if (!sel->stratified || sel->n <= 0) return lw_dataset_load(path, task, sel->n, out);
    lw_status st = lw_dataset_load(path, task, 0, out);
    if (st || sel->n >= out->n) return st;
    char *keep = calloc((size_t)out->n, 1);
    st = keep ? pick_stratified(out, sel->n, sel->seed, keep)
              : lw_fail(LW_ERR_NOMEM, "%s: out of memory for a subset of %d examples", path, out->n);
    if (!st) {
        compact(out, keep);
        /* the cache of sender states is keyed by this: the same file's other subsets differ */
        int64_t v[2] = {sel->n, (int64_t)sel->seed};
        out->subset_key = lw_fnv1a(lw_fnv1a(LW_FNV_INIT, "stratified", 10), v, sizeof v) | 1;
    }
    free(keep);
    if (st) lw_dataset_free(out);
    return st;
}
