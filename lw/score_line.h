/* A task's label scores as lw eval --scores and lw receive print them, and
 * what is read off them (the best label, its margin). Below the scorers and
 * the wire receiver, which all print the same lines. */
#ifndef LW_SCORE_LINE_H
#define LW_SCORE_LINE_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"
#include "task.h"

/* The best label: the first of the highest scores. */
int lw_scores_argmax(const double *scores, int n_labels);

/* The best score minus the second best (0 for one label). */
double lw_scores_margin(const double *scores, int n_labels);

/* One line of label scores, as lw eval --scores and lw receive print them:
 *   {"seq": 3, "label": "positive", "margin": 1.25, "scores": {"negative": -2.5, "positive": -1.25}}
 * margin = best score - second best (n_labels >= 2; else 0); every number
 * printed to round-trip (17 significant digits), so two lines are equal
 * exactly when the scores are. what names f for messages. */
lw_status lw_scores_write_line(FILE *f, const char *what, const lw_task *task, uint64_t seq, const double *scores);

#endif
