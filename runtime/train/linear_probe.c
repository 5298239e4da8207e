#include "linear_probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"

lw_probe_options lw_probe_defaults(void) { return (lw_probe_options){.steps = 300, .lr = 0.05f, .l2 = 1e-3f}; }

lw_status lw_probe_features(const lw_sender_cache *c, int n, float **feats)
{
    *feats = NULL;
    if (n < 1 || n > c->n) return lw_fail(LW_ERR_INVALID, "linear probe: %d examples of %d cached", n, c->n);
    int D = c->hidden;
    float *f = calloc((size_t)n * D, sizeof *f), *x = NULL;
    size_t cap = 0;
    if (!f) return lw_fail(LW_ERR_NOMEM, "linear probe: out of memory for %d x %d features", n, D);
    for (int i = 0; i < n; i++) {
        int T;
        lw_status st = lw_sender_cache_read(c, i, &x, &cap, &T);
        if (st) {
            free(f);
            free(x);
            return st;
        }
        float *row = f + (size_t)i * D;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < D; k++) row[k] += x[(size_t)t * D + k];
        for (int k = 0; k < D; k++) row[k] /= (float)T;
    }
    free(x);
    *feats = f;
    return LW_OK;
}

static void standardise_stats(lw_linear_probe *p, const float *X, int n)
{
    int D = p->dim;
    for (int k = 0; k < D; k++) {
        double s = 0, ss = 0;
        for (int i = 0; i < n; i++) s += X[(size_t)i * D + k];
        double mu = s / n;
        for (int i = 0; i < n; i++) {
            double d = X[(size_t)i * D + k] - mu;
            ss += d * d;
        }
        double sd = sqrt(ss / n);
        p->mean[k] = (float)mu;
        p->inv_std[k] = (float)(sd > 1e-8 ? 1.0 / sd : 1.0);
    }
}

/* Class scores of one standardised row z into out[C]. */
static void scores(const lw_linear_probe *p, const float *z, float *out)
{
    for (int c = 0; c < p->n_classes; c++) {
        const float *w = p->w + (size_t)c * p->dim;
        double s = p->b[c];
        for (int k = 0; k < p->dim; k++) s += (double)w[k] * z[k];
        out[c] = (float)s;
    }
}

static void softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - mx));
    for (int i = 0; i < n; i++) x[i] = (float)(x[i] / sum);
}

lw_status lw_linear_probe_train(lw_linear_probe *p, const float *feats, const int *y, int n, int dim, int n_classes,
                                const lw_probe_options *o)
{
    memset(p, 0, sizeof *p);
    if (n < 1 || dim < 1 || n_classes < 2 || o->steps < 1)
        return lw_fail(LW_ERR_INVALID, "linear probe: %d examples, %d features, %d classes, %d steps", n, dim,
                       n_classes, o->steps);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_classes)
            return lw_fail(LW_ERR_INVALID, "linear probe: label %d of example %d outside 0..%d", y[i], i,
                           n_classes - 1);
    p->n_classes = n_classes;
    p->dim = dim;
    size_t nw = (size_t)n_classes * dim, np = nw + (size_t)n_classes;
    float *params = calloc(np, sizeof *params), *grads = calloc(np, sizeof *grads);
    float *Z = malloc((size_t)n * dim * sizeof *Z), *prob = malloc((size_t)n_classes * sizeof *prob);
    p->mean = malloc((size_t)dim * sizeof *p->mean);
    p->inv_std = malloc((size_t)dim * sizeof *p->inv_std);
    lw_adamw opt = {0};
    lw_status st = params && grads && Z && prob && p->mean && p->inv_std
                       ? lw_adamw_init(&opt, np, lw_adamw_defaults())
                       : lw_fail(LW_ERR_NOMEM, "linear probe: out of memory");
    if (!st) {
        p->w = params;
        p->b = params + nw;
        standardise_stats(p, feats, n);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < dim; k++)
                Z[(size_t)i * dim + k] = (feats[(size_t)i * dim + k] - p->mean[k]) * p->inv_std[k];
        for (int step = 0; step < o->steps; step++) {
            for (size_t j = 0; j < nw; j++) grads[j] = o->l2 * params[j];
            memset(grads + nw, 0, (size_t)n_classes * sizeof *grads);
            for (int i = 0; i < n; i++) {
                const float *z = Z + (size_t)i * dim;
                scores(p, z, prob);
                softmax(prob, n_classes);
                prob[y[i]] -= 1.0f;
                for (int c = 0; c < n_classes; c++) {
                    float g = prob[c] / (float)n;
                    float *gw = grads + (size_t)c * dim;
                    for (int k = 0; k < dim; k++) gw[k] += g * z[k];
                    grads[nw + c] += g;
                }
            }
            lw_adamw_begin_step(&opt);
            lw_adamw_update(&opt, params, grads, 0, np, o->lr, 0.0f);
        }
    }
    /* params now owned by p (w and b point into it) */
    if (st) free(params);
    free(grads);
    free(Z);
    free(prob);
    lw_adamw_free(&opt);
    if (st) {
        p->w = NULL;
        lw_linear_probe_free(p);
    }
    return st;
}

int lw_linear_probe_predict(const lw_linear_probe *p, const float *feat)
{
    int best = 0;
    double best_s = -INFINITY;
    for (int c = 0; c < p->n_classes; c++) {
        const float *w = p->w + (size_t)c * p->dim;
        double s = p->b[c];
        for (int k = 0; k < p->dim; k++) s += (double)w[k] * ((feat[k] - p->mean[k]) * p->inv_std[k]);
        if (s > best_s) best_s = s, best = c;
    }
    return best;
}

void lw_linear_probe_free(lw_linear_probe *p)
{
    free(p->w);   /* w and b share one allocation */
    free(p->mean);
    free(p->inv_std);
    memset(p, 0, sizeof *p);
}
