/* The metrics of tasks whose answer the model writes:
 *
 *   SQuAD (v1.1's official evaluate-v1.1.py): both texts normalised by
 *   lower() (Python's full Unicode lowercasing), removing every ASCII
 *   punctuation character (string.punctuation), removing the words a / an /
 *   the (regex \b(a|an|the)\b, \b on Unicode word characters), and joining
 *   the white-space-split tokens with one space. EM is 1 when the normalised
 *   texts are equal; F1 is the token F1 over the normalised tokens (bag
 *   intersection; 0 when nothing is shared, so two empty texts have F1 0 and
 *   EM 1, as the script has it). A prediction scores the max over the golds.
 *
 *   GSM8K: the last number in the generated text (digits with optional
 *   sign, thousands commas and decimals; commas removed) compared
 *   numerically with the gold answer (commas removed too). No number in the
 *   text is wrong. */
#ifndef LW_ANSWER_METRICS_H
#define LW_ANSWER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* The normalised text, malloc'd. Invalid UTF-8 reads as U+FFFD. */
lw_status lw_squad_normalize(const char *text, char **out);

/* EM and F1 of pred against one gold. */
lw_status lw_squad_em_f1(const char *pred, const char *gold, double *em, double *f1);

/* The max EM and max F1 over n_gold >= 1 golds (separately, as the script). */
lw_status lw_squad_score(const char *pred, const char *const *golds, int n_gold, double *em, double *f1);

/* The last number of text into out (commas removed, a trailing '.' not
 * part of it); false when there is none or it does not fit in cap. */
bool lw_last_number(const char *text, char *out, size_t cap);

/* 1 when the last number of pred equals gold's number, else 0; gold that is
 * no number is an error (it names the text). */
lw_status lw_gsm8k_score(const char *pred, const char *gold, double *correct);

/* The scored part of a generated text: its first non-empty line when
 * first_line, trimmed of white space (malloc'd; NULL out of memory). What
 * every answer path scores (answer_eval.h, bridge_answer_run.h,
 * interlingua_run.h), so it is here, below them, with the metrics. */
char *lw_answer_extract(const char *generated, bool first_line);

#endif
