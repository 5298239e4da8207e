/* A classification task as data (tasks/<name>.json): its labels as they
 * appear in the data files, the verbalizer text per label, and the prompt
 * around the soft tokens. The receiver reads
 *     [primer tokens] [M soft tokens] [answer_prompt tokens]
 * and a label is scored by the likelihood of its verbalizer right after the
 * answer prompt; a verbalizer is the exact text that follows the answer
 * prompt (so it usually starts with a space: "Sentiment:" + " positive").
 *
 *   {"name": "sst2", "primer": "...", "answer_prompt": "Sentiment:",
 *    "labels": [{"label": "negative", "verbalizer": " negative"}, ...]} */
#ifndef LW_TASK_H
#define LW_TASK_H

#include <stddef.h>

#include "status.h"

enum { LW_TASK_MAX_LABELS = 1024, LW_TASK_NAME_MAX = 64 };

typedef struct {
    char name[LW_TASK_NAME_MAX];
    char *primer;
    char *answer_prompt;
    int n_labels;
    char **labels;        /* [n_labels], distinct */
    char **verbalizers;   /* [n_labels], distinct and non-empty */
} lw_task;

/* Errors name the file and the JSON path ("labels[3].verbalizer"). */
lw_status lw_task_load(const char *path, lw_task *out);
lw_status lw_task_parse(const char *text, size_t len, const char *path, lw_task *out);
void lw_task_free(lw_task *t);

/* The index of label in t->labels, or -1. */
int lw_task_label_index(const lw_task *t, const char *label);

#endif
