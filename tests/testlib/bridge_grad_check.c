/* The bridge's gradient against finite differences; see bridge_grad_check.h. */
#include "bridge_grad_check.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tl_check_bridge_gradient_of(lw_bridge *b, const float *g, double (*loss)(void *ctx), void *ctx, const char *what)
{
    int checked = 0, trainable = 0;
    for (int k = 0; k < b->n_tensors; k++) {
        const lw_bridge_tensor *tt = &b->tensors[k];
        if (!tt->trainable) continue;
        trainable++;
        size_t best = tt->offset;
        for (size_t j = tt->offset; j < tt->offset + tt->count; j++)
            if (fabsf(g[j]) > fabsf(g[best])) best = j;
        if (fabsf(g[best]) < 0.02f) continue;
        float keep = b->params[best], eps = 1e-3f;
        b->params[best] = keep + eps;
        double lp = loss(ctx);
        b->params[best] = keep - eps;
        double lm = loss(ctx);
        b->params[best] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        ck_assert_msg(fabs(fd - g[best]) <= 1e-2 + 3e-2 * fabs(fd), "%s, %s[%zu]: analytic %g, fd %g", what, tt->name,
                      best - tt->offset, (double)g[best], fd);
        checked++;
    }
    ck_assert_int_ge(checked, trainable / 2);
}

typedef struct {
    lw_trainer *t;
    const float *x;
    int T, label;
} example_loss;

static double trainer_loss(void *ctx)
{
    example_loss *e = ctx;
    float l;
    ck_assert_int_eq(lw_trainer_loss(e->t, e->x, e->T, e->label, &l), LW_OK);
    return l;
}

void tl_check_bridge_gradient(lw_trainer *t, lw_bridge *b, const float *x, int T, int label, int i)
{
    lw_bridge_zero_grad(b);
    float loss;
    ck_assert_int_eq(lw_trainer_example(t, x, T, label, 1.0f, &loss, NULL), LW_OK);
    float *g = malloc(b->n_params * sizeof(float));
    ck_assert_ptr_nonnull(g);
    memcpy(g, b->grads, b->n_params * sizeof(float));
    example_loss e = {t, x, T, label};
    char what[32];
    snprintf(what, sizeof what, "example %d", i);
    tl_check_bridge_gradient_of(b, g, trainer_loss, &e, what);
    free(g);
}
