#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

static lw_status check_inputs(const int *gold, const int *pred, int n, int n_classes)
{
    if (n < 1 || n_classes < 1 || n_classes > 100000)
        return lw_fail(LW_ERR_INVALID, "metrics: %d examples of %d classes, expected at least 1 of 1..100000", n,
                       n_classes);
    for (int i = 0; i < n; i++)
        if (gold[i] < 0 || gold[i] >= n_classes || pred[i] < 0 || pred[i] >= n_classes)
            return lw_fail(LW_ERR_INVALID, "metrics: example %d has gold %d, prediction %d; expected 0..%d", i,
                           gold[i], pred[i], n_classes - 1);
    return LW_OK;
}

static double ratio(long a, long b) { return b > 0 ? (double)a / (double)b : 0.0; }

/* Fills the per-class scores from the confusion matrix; returns macro-F1.
 * gold_n/pred_n are scratch [n_classes]. */
static double scores(const long *conf, int C, long *gold_n, long *pred_n, double *p, double *r, double *f)
{
    memset(gold_n, 0, (size_t)C * sizeof(long));
    memset(pred_n, 0, (size_t)C * sizeof(long));
    for (int g = 0; g < C; g++)
        for (int q = 0; q < C; q++) gold_n[g] += conf[(size_t)g * C + q], pred_n[q] += conf[(size_t)g * C + q];
    double sum = 0.0;
    int present = 0;
    for (int c = 0; c < C; c++) {
        long tp = conf[(size_t)c * C + c];
        double pc = ratio(tp, pred_n[c]), rc = ratio(tp, gold_n[c]);
        double fc = pc + rc > 0 ? 2 * pc * rc / (pc + rc) : 0.0;
        if (p) p[c] = pc, r[c] = rc, f[c] = fc;
        if (gold_n[c] || pred_n[c]) sum += fc, present++;
    }
    return present ? sum / present : 0.0;
}

lw_status lw_metrics_compute(const int *gold, const int *pred, int n, int n_classes, lw_metrics *out)
{
    memset(out, 0, sizeof *out);
    lw_status st = check_inputs(gold, pred, n, n_classes);
    if (st) return st;
    size_t C = (size_t)n_classes;
    out->n_classes = n_classes;
    out->n = n;
    out->confusion = calloc(C * C, sizeof(long));
    out->precision = calloc(C, sizeof(double));
    out->recall = calloc(C, sizeof(double));
    out->f1 = calloc(C, sizeof(double));
    long *scratch = calloc(2 * C, sizeof(long));
    if (!out->confusion || !out->precision || !out->recall || !out->f1 || !scratch) {
        free(scratch);
        lw_metrics_free(out);
        return lw_fail(LW_ERR_NOMEM, "metrics: out of memory for %d classes", n_classes);
    }
    long correct = 0;
    for (int i = 0; i < n; i++) {
        out->confusion[(size_t)gold[i] * C + pred[i]]++;
        correct += gold[i] == pred[i];
    }
    out->accuracy = (double)correct / n;
    out->macro_f1 = scores(out->confusion, n_classes, scratch, scratch + C, out->precision, out->recall, out->f1);
    free(scratch);
    return LW_OK;
}

void lw_metrics_free(lw_metrics *m)
{
    free(m->confusion);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    memset(m, 0, sizeof *m);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return sorted[n - 1];
    return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

lw_status lw_bootstrap_ci(const int *gold, const int *pred, int n, int n_classes, lw_metric which, int resamples,
                          uint64_t seed, double *lo, double *hi)
{
    lw_status st = check_inputs(gold, pred, n, n_classes);
    if (st) return st;
    if (resamples < 2 || resamples > 1000000)
        return lw_fail(LW_ERR_INVALID, "bootstrap: %d resamples, expected 2..1000000", resamples);
    size_t C = (size_t)n_classes;
    double *values = malloc((size_t)resamples * sizeof(double));
    long *conf = which == LW_METRIC_MACRO_F1 ? malloc(C * C * sizeof(long)) : NULL;
    long *scratch = which == LW_METRIC_MACRO_F1 ? malloc(2 * C * sizeof(long)) : NULL;
    if (!values || (which == LW_METRIC_MACRO_F1 && (!conf || !scratch))) {
        free(values), free(conf), free(scratch);
        return lw_fail(LW_ERR_NOMEM, "bootstrap: out of memory");
    }
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    for (int b = 0; b < resamples; b++) {
        long correct = 0;
        if (conf) memset(conf, 0, C * C * sizeof(long));
        for (int i = 0; i < n; i++) {
            int j = (int)lw_rng_below(&rng, (uint64_t)n);
            correct += gold[j] == pred[j];
            if (conf) conf[(size_t)gold[j] * C + pred[j]]++;
        }
        values[b] = conf ? scores(conf, n_classes, scratch, scratch + C, NULL, NULL, NULL) : (double)correct / n;
    }
    qsort(values, (size_t)resamples, sizeof(double), cmp_double);
    *lo = percentile(values, resamples, 0.025);
    *hi = percentile(values, resamples, 0.975);
    free(values), free(conf), free(scratch);
    return LW_OK;
}

lw_status lw_bootstrap_mean_ci(const double *v, int n, int resamples, uint64_t seed, double *lo, double *hi)
{
    if (!v || n < 1) return lw_fail(LW_ERR_INVALID, "bootstrap: %d values, expected at least 1", n);
    if (resamples < 2 || resamples > 1000000)
        return lw_fail(LW_ERR_INVALID, "bootstrap: %d resamples, expected 2..1000000", resamples);
    double *means = malloc((size_t)resamples * sizeof(double));
    if (!means) return lw_fail(LW_ERR_NOMEM, "bootstrap: out of memory");
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    for (int b = 0; b < resamples; b++) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += v[lw_rng_below(&rng, (uint64_t)n)];
        means[b] = sum / n;
    }
    qsort(means, (size_t)resamples, sizeof(double), cmp_double);
    *lo = percentile(means, resamples, 0.025);
    *hi = percentile(means, resamples, 0.975);
    free(means);
    return LW_OK;
}

lw_status lw_answer_mean_ci(const double *v, int n, lw_mean_ci *out)
{
    if (n < 1) return lw_fail(LW_ERR_INVALID, "a mean of %d values", n);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    out->mean = sum / n;
    return lw_bootstrap_mean_ci(v, n, LW_ANSWER_RESAMPLES, LW_ANSWER_BOOT_SEED, &out->lo, &out->hi);
}
