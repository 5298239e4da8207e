/* A classification task as data (tasks/<name>.json): its labels as they
 * appear in the data files, the verbalizer text per label, and the prompt
 * around the soft tokens. The receiver reads
 *     [primer tokens] [M soft tokens] [answer_prompt tokens]
 * and a label is scored by the likelihood of its verbalizer right after the
 * answer prompt; a verbalizer is the exact text that follows the answer
 * prompt (so it usually starts with a space: "Sentiment:" + " positive").
 *
 *   {"name": "sst2", "primer": "...", "answer_prompt": "Sentiment:",
 *    "labels": [{"label": "negative", "verbalizer": " negative"}, ...]}
 *
 * A task whose answer the model writes or picks (issue 24) says its "kind":
 *
 *   "generate": the model reads the prompt and writes the answer greedily;
 *     {"name": "squad", "kind": "generate",
 *      "prompt": "Context: {context}\nQuestion: {question}",
 *      "answer_prompt": "Answer:", "answer_field": "answers",
 *      "metric": "squad_em_f1" | "gsm8k_number", "max_new_tokens": 24,
 *      "first_line": true}
 *     answer_field holds a string or an array of strings (the golds);
 *     first_line: only the generated text's first non-empty line is scored.
 *     "budget_field" (optional): the field the token-budget baseline cuts
 *     (to its first N tokens; the rest of the prompt, the question, stays).
 *
 *   "choice": every choice is scored by the model's log-prob of its text
 *     after the prompt; the best wins;
 *     {"name": "piqa", "kind": "choice", "prompt": "Goal: {goal}",
 *      "answer_prompt": "Solution:", "choices_field": "choices",
 *      "label_field": "label", "choice_score": "mean"}
 *     or fixed choices for every row ("choices": ["yes", "no"], BoolQ).
 *     The label field is an index into the choices or a choice's text.
 *     A choice is scored as the text choice_prefix (default " ") + choice
 *     right after the answer prompt; choice_score "mean" (default) divides
 *     its summed log-prob by its token count, "sum" does not.
 *
 * "prompt" is the user turn with {field} filled from each data row: a
 * string as it is, a number as written, an array of strings one a line, an
 * array of {"title", "text"} objects as "title: text" lines. "{{" is "{".
 * No "kind" (or "classify") is the classification task above, unchanged. */
#ifndef LW_TASK_H
#define LW_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

enum { LW_TASK_MAX_LABELS = 1024, LW_TASK_NAME_MAX = 64 };

typedef enum { LW_TASK_CLASSIFY, LW_TASK_GENERATE, LW_TASK_CHOICE } lw_task_kind;
typedef enum { LW_METRIC_SQUAD_EM_F1, LW_METRIC_GSM8K_NUMBER } lw_answer_metric;

enum { LW_TASK_MAX_CHOICES = 64 };

typedef struct {
    char name[LW_TASK_NAME_MAX];
    lw_task_kind kind;
    /* generate and choice (NULL for classification) */
    char *prompt;
    /* generate */
    char *answer_field;
    lw_answer_metric metric;
    int max_new_tokens;
    bool first_line;
    char *budget_field;   /* NULL: the token budget is not defined for the task */
    /* choice: choices_field, or n_fixed_choices fixed ones */
    char *choices_field;
    int n_fixed_choices;
    char **fixed_choices;
    char *label_field;
    char *choice_prefix;
    bool choice_mean;     /* length-normalised: mean log-prob per token */
    char *primer;         /* classification; "" for the others */
    char *answer_prompt;  /* every kind: the text that opens the model's reply */
    /* classification (n_labels 0 otherwise) */
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

/* "classify", "generate", "choice". */
const char *lw_task_kind_name(lw_task_kind k);

#endif
