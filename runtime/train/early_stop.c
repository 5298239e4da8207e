/* Early stopping on a dev slice (early_stop.h). */
#include "early_stop.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "train_log.h"

/* The state after resume_step: the last line of the log with a step at or
 * below it (lines after it belong to steps the resumed run makes again;
 * every rank reads the file, only rank 0 cuts it, so none relies on the cut). */
static lw_status restore(lw_early_stop *e, const char *path, long resume_step)
{
    if (!lw_file_exists(path)) return LW_OK;
    char *text;
    size_t len;
    lw_status st = lw_read_file(path, &text, &len);
    if (st) return lw_fail_wrap(st, "early stopping: reading %s", path);
    for (size_t at = 0; !st && at < len;) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break;   /* torn by a kill: not a whole evaluation */
        json_t *o = json_loadb(text + at, (size_t)(nl - (text + at)), 0, NULL);
        json_t *step = json_object_get(o, "step"), *b = json_object_get(o, "best_dev_loss"),
               *s = json_object_get(o, "best_step"), *k = json_object_get(o, "bad_evals");
        if (!json_is_integer(step) || json_integer_value(step) > resume_step) {
            json_decref(o);
            break;
        }
        if (json_is_number(b) && json_is_integer(s) && json_is_integer(k)) {
            e->best = json_number_value(b);
            e->best_step = (long)json_integer_value(s);
            e->bad = (int)json_integer_value(k);
        } else if (json_is_null(b) && json_is_integer(s) && json_is_integer(k)) {   /* no finite loss yet */
            e->best = INFINITY, e->best_step = 0, e->bad = (int)json_integer_value(k);
        } else
            st = lw_fail(LW_ERR_FORMAT, "early stopping: %s: a line lacks best_dev_loss, best_step, bad_evals", path);
        json_decref(o);
        at = (size_t)(nl - text) + 1;
    }
    free(text);
    return st;
}

lw_status lw_early_stop_open(lw_early_stop *e, const lw_early_stop_options *o, const char *out_dir, bool writer,
                             long resume_step)
{
    memset(e, 0, sizeof *e);
    e->o = *o;
    e->best = INFINITY;
    if (o->every < 1 || o->patience < 0 || !o->states || !o->data || o->data->n < 1)
        return lw_fail(LW_ERR_INVALID, "early stopping: --eval-every %d (>= 1), --patience %d (>= 0) and a dev "
                       "slice of at least one example are needed", o->every, o->patience);
    if (o->states->n < o->data->n)
        return lw_fail(LW_ERR_INVALID, "early stopping: %d sender states for %d dev examples", o->states->n,
                       o->data->n);
    if (!out_dir) return LW_OK;
    lw_status st = LW_OK;
    char path[4200];
    if (!lw_pathf(path, sizeof path, "%s/dev_log.jsonl", out_dir))
        return lw_fail(LW_ERR_INVALID, "early stopping: path too long under %s", out_dir);
    if (resume_step >= 0 && (st = restore(e, path, resume_step))) return st;
    if (writer && !(e->log = lw_jsonl_open(out_dir, "dev_log.jsonl", resume_step, &st)))
        return lw_fail_wrap(st, "early stopping");
    return LW_OK;
}

static void put_number(FILE *f, const char *key, const char *fmt, double v)
{
    fprintf(f, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("null", f);
}

lw_status lw_early_stop_eval(lw_early_stop *e, long step, const lw_dev_stats *d, bool *improved, bool *stop)
{
    double loss = d->loss;
    /* a non-finite dev loss is never a best; it counts against the patience */
    *improved = isfinite(loss) && loss < e->best;
    if (*improved) e->best = loss, e->best_step = step, e->bad = 0;
    else e->bad++;
    *stop = e->o.patience > 0 && e->bad >= e->o.patience;
    if (e->log) {
        fprintf(e->log, "{\"step\": %ld", step);
        put_number(e->log, "dev_loss", "%.6f", loss);
        put_number(e->log, "dev_first_acc", "%.6f", d->first_acc);
        put_number(e->log, "msg_spread", "%.6f", d->spread);
        fprintf(e->log, ", \"best_step\": %ld, \"best_dev_loss\": ", e->best_step);
        if (isfinite(e->best)) fprintf(e->log, "%.9g", e->best);
        else fputs("null", e->log);
        fprintf(e->log, ", \"bad_evals\": %d}\n", e->bad);
        if (fflush(e->log) != 0) return lw_fail(LW_ERR_IO, "early stopping: writing dev_log.jsonl: %s", strerror(errno));
    }
    return LW_OK;
}

void lw_early_stop_close(lw_early_stop *e)
{
    if (e->log) fclose(e->log);
    free(e->x);
    e->log = NULL;
    e->x = NULL;
}
