/* The data rows of a generate or choice task (task.h): JSONL, one object a
 * line, blank lines skipped. Each row becomes the task's prompt filled from
 * its fields and, by kind, its gold answers or its choices and the right
 * one. Errors name the file, the line and the field. */
#ifndef LW_ANSWER_DATA_H
#define LW_ANSWER_DATA_H

#include <jansson.h>

#include "status.h"
#include "task.h"

typedef struct {
    char *prompt;         /* the task's prompt with the row's fields */
    int n_gold;           /* generate: >= 1 */
    char **golds;
    int n_choices;        /* choice: >= 2 */
    char **choices;
    int label;            /* choice: the right choice's index */
    json_t *fields;       /* the row's JSON object (a reference): what a baseline that re-renders the
                           * prompt with a field changed reads (the token budget's cut) */
} lw_answer_row;

typedef struct {
    int n;
    lw_answer_row *rows;
} lw_answer_data;

/* limit > 0 keeps the first limit rows. */
lw_status lw_answer_data_load(const char *path, const lw_task *task, int limit, lw_answer_data *out);
void lw_answer_data_free(lw_answer_data *d);

/* tpl with each {field} replaced by row's field (task.h says how each JSON
 * type is written); where names the row in errors ("dev.jsonl:3"). */
lw_status lw_answer_render(const char *tpl, json_t *row, const char *where, char **out);

#endif
