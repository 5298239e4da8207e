/* Label scores as lines and their summaries (score_line.h). */
#include "score_line.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int lw_scores_argmax(const double *scores, int n)
{
    int best = 0;
    for (int k = 1; k < n; k++)
        if (scores[k] > scores[best]) best = k;
    return best;
}

double lw_scores_margin(const double *scores, int n)
{
    int best = lw_scores_argmax(scores, n);
    double second = 0.0;
    bool have = false;
    for (int k = 0; k < n; k++)
        if (k != best && (!have || scores[k] > second)) second = scores[k], have = true;
    return have ? scores[best] - second : 0.0;
}

lw_status lw_scores_write_line(FILE *f, const char *what, const lw_task *task, uint64_t seq, const double *scores)
{
    int n = task->n_labels, best = lw_scores_argmax(scores, n);
    json_t *o = json_object(), *sc = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "label", json_string(task->labels[best]));
    json_object_set_new(o, "margin", json_real(lw_scores_margin(scores, n)));
    for (int k = 0; k < n; k++) json_object_set_new(sc, task->labels[k], json_real(scores[k]));
    json_object_set_new(o, "scores", sc);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text) return lw_fail(LW_ERR_NOMEM, "%s: building a scores line", what);
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0;
    free(text);
    return ok ? LW_OK : lw_fail(LW_ERR_IO, "%s: writing: %s", what, strerror(errno));
}
