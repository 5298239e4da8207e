/* A classification data file: JSONL, one {"text": ..., "label": ...} object
 * a line (other fields ignored, blank lines skipped), labels mapped to
 * indices through the task's label list. Errors name the file and the line.
 * The sampler hands out example indices in a deterministic order drawn from
 * its own RNG: epochs of a fresh shuffle, or class-balanced (label uniform
 * among the labels present, then that label's examples in shuffled order). */
#ifndef LW_DATASET_H
#define LW_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "status.h"
#include "task.h"

typedef struct {
    char *text;
    int label;
} lw_example;

typedef struct {
    int n;
    lw_example *examples;
    int n_labels;
    int *label_counts;    /* [n_labels] */
    uint64_t subset_key;  /* 0: the file's first n examples; else which subset (lw_subset_key) */
} lw_dataset;

/* max_examples > 0 keeps only the first max_examples lines with examples. */
lw_status lw_dataset_load(const char *path, const lw_task *task, int max_examples, lw_dataset *out);

/* Which examples of a file a run reads: the first n (n = 0: all), or n drawn
 * stratified by label with a seed. Stratified exists because some data files
 * are sorted by label (Banking77): their first n hold a few classes only. */
typedef struct {
    int n;
    bool stratified;
    uint64_t seed;
} lw_subset;

/* Loads path and keeps sel's examples, in file order. Stratified: each
 * label's examples are shuffled (seeded), then taken round-robin over the
 * labels in a shuffled order until n are kept, so every label present gets
 * n / labels examples, give or take one, while it has them. n at or above
 * the file's count keeps the whole file (subset_key 0). */
lw_status lw_dataset_load_subset(const char *path, const lw_task *task, const lw_subset *sel, lw_dataset *out);
/* What sel selects, for JSON and messages: "first 800", "stratified 800 (seed 1)", "all". */
void lw_subset_describe(const lw_subset *sel, char *out, size_t cap);
void lw_dataset_free(lw_dataset *d);

typedef struct {
    const lw_dataset *data;
    bool balanced;
    lw_rng rng;
    int *order;           /* uniform: a permutation of all examples */
    int pos;
    int *by_label;        /* balanced: example indices grouped by label */
    int *label_start;     /* [n_labels + 1] into by_label */
    int *label_pos;       /* [n_labels] next position inside each group */
    int *present;         /* labels with examples */
    int n_present;
} lw_sampler;

lw_status lw_sampler_init(lw_sampler *s, const lw_dataset *d, bool class_balanced, uint64_t seed);
int lw_sampler_next(lw_sampler *s);
/* Draws and drops n indices: what a resumed run does to reach its position. */
void lw_sampler_skip(lw_sampler *s, long n);
void lw_sampler_free(lw_sampler *s);

#endif
