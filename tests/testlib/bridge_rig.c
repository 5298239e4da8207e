/* The bridge rig (bridge_rig.h). */
#include "bridge_rig.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_exec.h"
#include "rng.h"

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

static void fill_normal(float *x, size_t n, double std, lw_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * lw_rng_normal(rng));
}

void tl_bridge_random(lw_bridge *b, const lw_bridge_config *cfg, int S, int R, uint64_t seed)
{
    OK(lw_bridge_create(b, cfg, S, R, 2.0f));
    lw_bridge_init(b, seed);
    lw_rng rng;
    lw_rng_seed(&rng, seed + 100);
    fill_normal(b->params, b->n_params, 0.3, &rng);
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        if (strstr(t->name, "norm") && strstr(t->name, "weight"))
            for (size_t j = 0; j < t->count; j++) b->params[t->offset + j] += 1.0f;
        if (!strcmp(t->name, "out_scale")) b->params[t->offset] = 2.0f;
    }
    float *mean = malloc((size_t)S * 2 * sizeof *mean), *std = mean + S;
    ck_assert_ptr_nonnull(mean);
    for (int k = 0; k < S; k++) {
        mean[k] = (float)(0.5 * lw_rng_normal(&rng));
        std[k] = (float)(0.5 + 1.5 * lw_rng_uniform(&rng));
    }
    lw_bridge_set_input_norm(b, mean, std);
    free(mean);
    if (S > 3) b->params[b->in_std + 3] = 0.0f;   /* what a bad checkpoint may hold: floored on read */
}

void tl_bridge_rows(const lw_bridge *b, float *x, int T, uint64_t seed)
{
    int S = b->sender_hidden;
    lw_rng rng;
    lw_rng_seed(&rng, seed);
    fill_normal(x, (size_t)T * S, 1.0, &rng);
    for (int t = 0; t < T && S > 5; t++) {
        x[(size_t)t * S + 3] = b->params[b->in_mean + 3] + (float)(1e-7 * lw_rng_normal(&rng));
        x[(size_t)t * S + 5] += 40.0f;
    }
}

void tl_bridge_cpu_run(lw_bridge *b, const float *x, int T, int max_T, const float *dout, tl_bridge_cpu *c)
{
    size_t MR = (size_t)b->cfg.soft_tokens * b->receiver_hidden, TS = (size_t)T * b->sender_hidden;
    c->out = malloc(MR * sizeof(float));
    c->grads = malloc(b->n_params * sizeof(float));
    c->dx = calloc(TS, sizeof(float));
    ck_assert(c->out && c->grads && c->dx);
    lw_bridge_acts *a;
    OK(lw_bridge_acts_create(b, max_T, &a));
    OK(lw_bridge_forward(b, a, x, T, c->out));
    lw_bridge_zero_grad(b);
    lw_bridge_backward(b, a, dout, c->dx);
    memcpy(c->grads, b->grads, b->n_params * sizeof(float));
    lw_bridge_acts_free(a);
}

void tl_bridge_cpu_free(tl_bridge_cpu *c)
{
    free(c->out), free(c->grads), free(c->dx);
    memset(c, 0, sizeof *c);
}

void tl_bridge_dev_open(tl_bridge_dev *d, const lw_bridge *b, int max_T, lw_cuda *cu, lw_cublas *blas,
                        const lw_bridge_kernels *k)
{
    memset(d, 0, sizeof *d);
    OK(lw_bridge_plan_lower(&b->cfg, b->sender_hidden, b->receiver_hidden, &d->plan));
    OK(lw_bridge_memory_layout(&d->plan, max_T, true, &d->mem));
    d->w_at = malloc((size_t)(1 + d->plan.depth) * LW_BW_COUNT * sizeof *d->w_at);
    ck_assert_ptr_nonnull(d->w_at);
    for (int l = -1; l < d->plan.depth; l++) lw_bridge_weight_offsets(b, l, d->w_at + (size_t)(l + 1) * LW_BW_COUNT);
    lw_bridge_cuda *x = &d->x;
    x->cu = cu, x->blas = blas, x->k = k, x->p = &d->plan, x->mem = &d->mem, x->w_at = d->w_at;
    OK(lw_cuda_alloc(cu, (size_t)d->mem.bytes, "bridge arena", &x->arena));
    OK(lw_cuda_alloc(cu, b->n_params * sizeof(float), "bridge params", &x->params));
    OK(lw_cuda_alloc(cu, b->n_params * sizeof(float), "bridge grads", &x->grads));
    OK(lw_cuda_upload(cu, x->params, b->params, b->n_params * sizeof(float), "bridge params"));
}

void tl_bridge_dev_close(tl_bridge_dev *d)
{
    lw_cuda_free(d->x.cu, d->x.arena);
    lw_cuda_free(d->x.cu, d->x.params);
    lw_cuda_free(d->x.cu, d->x.grads);
    free(d->w_at);
    memset(d, 0, sizeof *d);
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

double tl_bridge_rel_err(const float *got, const float *want, size_t n, double floor)
{
    double s = max_abs(want, n), e = 0;
    if (s < floor) s = floor;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)got[i] - want[i]);
        if (!(dd <= e)) e = dd == dd ? dd : INFINITY;
    }
    return e / s;
}

void tl_bridge_dev_compare(tl_bridge_dev *d, const lw_bridge *b, const float *x, int T, const float *dout,
                           const tl_bridge_cpu *c, double *fwd, double *bwd, char *worst, size_t worst_len)
{
    lw_bridge_cuda *e = &d->x;
    lw_cuda *cu = e->cu;
    size_t MR = (size_t)b->cfg.soft_tokens * b->receiver_hidden, TS = (size_t)T * b->sender_hidden;
    float *host = malloc((b->n_params > MR + TS ? b->n_params : MR + TS) * sizeof(float));
    ck_assert_ptr_nonnull(host);
    OK(lw_cuda_memset0(cu, e->arena, (size_t)d->mem.bytes, "bridge arena"));
    OK(lw_cuda_upload(cu, lw_bridge_cuda_slot(e, LW_BS_X, 0), x, TS * sizeof(float), "bridge input"));
    OK(lw_bridge_cuda_forward(e, T));
    OK(lw_cuda_download(cu, host, lw_bridge_cuda_slot(e, LW_BS_OUT, 0), MR * sizeof(float), "soft tokens"));
    *fwd = tl_bridge_rel_err(host, c->out, MR, 1.0);
    OK(lw_cuda_memset0(cu, e->grads, b->n_params * sizeof(float), "bridge grads"));
    OK(lw_cuda_upload(cu, lw_bridge_cuda_grad(e, LW_BG_DOUT), dout, MR * sizeof(float), "dout"));
    OK(lw_bridge_cuda_backward(e, T, true));
    OK(lw_cuda_download(cu, host, lw_bridge_cuda_grad(e, LW_BG_DX), TS * sizeof(float), "dx"));
    *bwd = tl_bridge_rel_err(host, c->dx, TS, 1e-6);
    snprintf(worst, worst_len, "dx");
    OK(lw_cuda_download(cu, host, e->grads, b->n_params * sizeof(float), "bridge grads"));
    bool verbose = getenv("TL_BRIDGE_VERBOSE") != NULL;
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        if (!t->trainable) {   /* the input_norm buffers get no gradient on either side */
            ck_assert_msg(max_abs(host + t->offset, t->count) == 0.0, "%s has a gradient", t->name);
            continue;
        }
        double err = tl_bridge_rel_err(host + t->offset, c->grads + t->offset, t->count, 1e-6);
        if (verbose) fprintf(stderr, "%-36s %.3g (max %.3g)\n", t->name, err, max_abs(c->grads + t->offset, t->count));
        if (!(err <= *bwd)) *bwd = err, snprintf(worst, worst_len, "%s", t->name);
    }
    free(host);
}
