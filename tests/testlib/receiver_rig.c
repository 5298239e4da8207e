/* The receiver's training pass on a device against the CPU's; see receiver_rig.h. */
#include "receiver_rig.h"
#include "label_scoring.h"
#include "random_weights.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lw_status tl_cpu_pass_scores(lw_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds,
                             double *scores)
{
    lw_status st = lw_receiver_pass_prompt(p, ad, P, embeds);
    if (st) return st;
    const lw_receiver_layout *Ly = p->layout;
    return lw_score_verbalizers(p->m, p->score_state, ad, P, p->last, Ly->n_labels, (const int *const *)Ly->verb,
                                Ly->verb_len, scores);
}

#define OK(call) ck_assert_msg((call) == LW_OK, "%s", lw_last_error())

void tl_rig_open(tl_rig *r, const tl_rig_device *dev, lw_model *m, const tl_prompt_ids *w, double grad_rtol)
{
    memset(r, 0, sizeof *r);
    r->dev = dev;
    r->m = m;
    r->grad_rtol = grad_rtol;
    int v1[2] = {w->v1a, w->v1b}, len[2] = {1, 2};
    const int *verb[2] = {&w->v0, v1};
    OK(lw_receiver_layout_from_ids(w->M, w->before, w->n_before, w->after, w->n_after, 2, verb, len, &r->layout));
    int max_T = lw_receiver_prefix_len(&r->layout) + r->layout.max_verb - 1;
    dev->load_kernels(m, &r->mod);
    OK(lw_gpu_model_upload(dev->cu, dev->blas, &r->mod, m, &r->g));
    r->g->sync_each_launch = dev->sync_each_launch;
    OK(lw_receiver_pass_alloc(&r->cpu, m, &r->layout, max_T, "test"));
    OK(lw_gpu_receiver_pass_alloc(&r->gpu, r->g, &r->layout, max_T, "test"));
    fprintf(stderr, "%s: %d rows, %.1f MiB of weights, %.1f MiB for the training pass on the %s\n", m->cfg.name,
            max_T, r->g->weight_bytes / 1048576.0, r->gpu.bytes / 1048576.0, dev->name);
}

void tl_rig_open_tiny(tl_rig *r, const tl_rig_device *dev, lw_model_config c, uint64_t seed)
{
    c.context = 64;
    lw_model *m;
    OK(lw_model_init_random(&c, seed, &m));
    static const int before[] = {1, 5, 6, 3, 4}, after[] = {7, 8, 2, 1};
    tl_prompt_ids w = {before, after, 5, 4, 4, 9, 10, 3};
    tl_rig_open(r, dev, m, &w, 1e-4);
}

void tl_rig_close(tl_rig *r)
{
    lw_gpu_receiver_pass_free(&r->gpu);
    lw_receiver_pass_free(&r->cpu);
    lw_gpu_model_free(r->g);
    if (r->dev->unload_kernels) r->dev->unload_kernels(&r->mod);
    lw_receiver_layout_free(&r->layout);
    lw_model_free(r->m);
}

/* The same rows into both passes: the prefix and n_verb verbalizer tokens of
 * label; soft rows get smooth values of about unit size. Returns T. */
static int fill(tl_rig *r, int label, int n_verb)
{
    int T = lw_receiver_fill(&r->layout, label, n_verb, r->cpu.ids, r->cpu.is_embed);
    int H = r->m->cfg.hidden;
    for (int i = 0; i < T * H; i++) r->cpu.embeds[i] = (float)sin(0.37 * i + 0.1 * label);
    memcpy(r->gpu.ids, r->cpu.ids, (size_t)T * sizeof(int));
    memcpy(r->gpu.is_embed, r->cpu.is_embed, (size_t)T * sizeof(bool));
    memcpy(r->gpu.embeds, r->cpu.embeds, (size_t)T * H * sizeof(float));
    return T;
}

/* Loss, backward and the first-token check of label on both sides. */
static void same_training_step_with(tl_rig *r, int label, const lw_receiver_adapters *ad)
{
    int n_verb = r->layout.verb_len[label] - 1, H = r->m->cfg.hidden;
    int T = fill(r, label, n_verb);
    float lc = 0, lg = 0;
    OK(lw_receiver_pass_loss(&r->cpu, ad, T, label, &lc));
    OK(lw_gpu_receiver_pass_loss(&r->gpu, ad, T, label, &lg));
    ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= 1e-4 * fabs((double)lc),
                  "%s label %d: loss %s %.7g cpu %.7g", r->m->cfg.name, label, r->dev->name, (double)lg, (double)lc);
    bool cc = false, cg = true;
    OK(lw_receiver_pass_backward(&r->cpu, ad, T, label, 0.75f, &cc));
    OK(lw_gpu_receiver_pass_backward(&r->gpu, ad, T, label, 0.75f, &cg));
    ck_assert_msg(cc == cg, "%s label %d: first token right: %s %d cpu %d", r->m->cfg.name, label,
                  r->dev->name, cg, cc);
    double maxabs = 0, worst = 0;
    /* rows before the CPU's cached head (token rows, last_head) it leaves at 0: nothing reads them */
    int at = 0;
    for (int i = r->cpu.last_head * H; i < T * H; i++) {
        float g = r->gpu.d_embeds[i], c = r->cpu.d_embeds[i];
        ck_assert_msg(isfinite(g), "%s: d_embeds[%d] is %g on the %s", r->m->cfg.name, i, (double)g,
                      r->dev->name);
        maxabs = fmax(maxabs, fabs(c));
        if (fabs((double)g - c) > worst) worst = fabs((double)g - c), at = i;
    }
    ck_assert_msg(maxabs > 0, "%s label %d: the CPU gradient is all zero", r->m->cfg.name, label);
    ck_assert_msg(worst <= r->grad_rtol * maxabs,
                  "%s label %d: d_embeds row %d col %d %s %.6g cpu %.6g, error %.3g > %g x max %.4g", r->m->cfg.name,
                  label, at / H, at % H, r->dev->name, (double)r->gpu.d_embeds[at], (double)r->cpu.d_embeds[at], worst,
                  r->grad_rtol, maxabs);
    fprintf(stderr, "%s label %d: loss %.6f (%s %.6f), d_embeds max %.3g, worst error %.3g\n", r->m->cfg.name,
            label, (double)lc, r->dev->name, (double)lg, maxabs, worst);
}

static void same_training_step(tl_rig *r, int label) { same_training_step_with(r, label, NULL); }

/* Every label's score after the prompt, with and without the soft rows. */
static void same_scores_with(tl_rig *r, const lw_receiver_adapters *ad)
{
    int P = fill(r, -1, 0);
    for (int embeds = 1; embeds >= 0; embeds--) {
        double sc[2], sg[2];
        OK(tl_cpu_pass_scores(&r->cpu, ad, P, embeds, sc));
        OK(lw_gpu_receiver_pass_scores(&r->gpu, ad, P, embeds, sg));
        for (int k = 0; k < 2; k++)
            ck_assert_msg(isfinite(sg[k]) && fabs(sg[k] - sc[k]) <= 1e-3 * fmax(1.0, fabs(sc[k])),
                          "%s label %d score (embeds %d): %s %.7g cpu %.7g", r->m->cfg.name, k, embeds,
                          r->dev->name, sg[k], sc[k]);
    }
    /* the scores overwrote the activations: a backward now must be refused */
    ck_assert_int_eq(lw_gpu_receiver_pass_backward(&r->gpu, ad, P, 0, 1.f, NULL), LW_ERR_INVALID);
    ck_assert_msg(strstr(lw_last_error(), "needs their loss first"), "%s", lw_last_error());
}

static void same_scores(tl_rig *r) { same_scores_with(r, NULL); }

void tl_rig_check_model(tl_rig *r)
{
    same_training_step(r, 1);   /* two-token verbalizer: two loss rows */
    same_training_step(r, 0);
    same_scores(r);
    same_training_step(r, 1);   /* a step after scoring starts clean */
}

/* ---- adapters ---------------------------------------------------------------- */

typedef struct {
    lw_lora lora;
    bool has_lora;
    lw_receiver_adapters ad;     /* one for both devices; its grads are zeroed between them */
    size_t n_prefix;             /* floats of each of the four below */
    float *pk, *pv, *dk, *dv;    /* prefix K/V [n_layers, P, kv dim] and their gradients */
} adapters;

/* LoRA (rank 4, targets; none when 0) and a deep prefix of P (none when 0). */
static void adapters_open(adapters *a, tl_rig *r, unsigned targets, float dropout, int P)
{
    memset(a, 0, sizeof *a);
    const lw_model_config *c = &r->m->cfg;
    if (targets) {
        lw_lora_config lc = {.rank = 4, .alpha = 8.f, .dropout = dropout, .targets = targets};
        OK(lw_lora_create(&a->lora, &lc, r->m));
        lw_lora_init(&a->lora, 11);
        for (size_t i = 0; i < a->lora.p.n_params; i++)   /* B too, so every path carries a value */
            if (a->lora.p.params[i] == 0.f) a->lora.p.params[i] = 0.05f * (float)sin(0.91 * i + 0.3);
        a->has_lora = true;
    }
    OK(lw_adapters_init(&a->ad, r->m, r->cpu.max_T, a->has_lora ? &a->lora : NULL, P));
    a->ad.training = dropout > 0.f;
    a->ad.dropout_seed = 0x5eed1234ull;
    if (P) {
        a->n_prefix = (size_t)c->n_layers * P * c->n_kv_heads * c->head_dim;
        a->pk = malloc(a->n_prefix * sizeof(float));
        a->pv = malloc(a->n_prefix * sizeof(float));
        a->dk = calloc(a->n_prefix, sizeof(float));
        a->dv = calloc(a->n_prefix, sizeof(float));
        ck_assert(a->pk && a->pv && a->dk && a->dv);
        for (size_t i = 0; i < a->n_prefix; i++) {
            a->pk[i] = 0.8f * (float)sin(0.37 * i + 1.0);
            a->pv[i] = 0.8f * (float)cos(0.23 * i);
        }
        a->ad.prefix_k = a->pk, a->ad.prefix_v = a->pv, a->ad.d_prefix_k = a->dk, a->ad.d_prefix_v = a->dv;
        OK(lw_receiver_pass_grow_state(&r->cpu, P));
    }
}

static void adapters_close(adapters *a)
{
    lw_adapters_free(&a->ad);
    if (a->has_lora) lw_lora_free(&a->lora);
    free(a->pk), free(a->pv), free(a->dk), free(a->dv);
}

static void zero_grads(adapters *a)
{
    if (a->has_lora) lw_adapter_params_zero_grad(&a->lora.p);
    if (a->n_prefix) memset(a->dk, 0, a->n_prefix * sizeof(float)), memset(a->dv, 0, a->n_prefix * sizeof(float));
}

/* |gpu - cpu| <= rtol x max |cpu| over n values, which must not all be zero. */
static void expect_grads(const char *model, const char *device, const char *what, const float *gpu,
                         const float *cpu, size_t n, double rtol)
{
    double maxabs = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(isfinite(gpu[i]), "%s: %s[%zu] is %g on the %s", model, what, i, (double)gpu[i], device);
        maxabs = fmax(maxabs, fabs(cpu[i]));
        if (fabs((double)gpu[i] - cpu[i]) > worst) worst = fabs((double)gpu[i] - cpu[i]), at = i;
    }
    ck_assert_msg(maxabs > 0, "%s: the CPU's %s is all zero", model, what);
    ck_assert_msg(worst <= rtol * maxabs, "%s: %s[%zu] %s %.6g cpu %.6g, error %.3g > %g x max %.4g", model, what,
                  at, device, (double)gpu[at], (double)cpu[at], worst, rtol, maxabs);
}

static float *copy_of(const float *x, size_t n)
{
    float *c = malloc((n ? n : 1) * sizeof(float));
    ck_assert(c != NULL);
    memcpy(c, x, n * sizeof(float));
    return c;
}

/* A training step of label through the adapters on both devices (loss and
 * d_embeds by same_training_step_with), then their gradients: the CPU's
 * first, kept, then the device's into the same, zeroed, buffers. */
static void same_adapter_step(tl_rig *r, adapters *a, int label, double rtol)
{
    const char *name = r->m->cfg.name;
    int n_verb = r->layout.verb_len[label] - 1, H = r->m->cfg.hidden;
    int T = fill(r, label, n_verb);
    zero_grads(a);
    float lc = 0, lg = 0;
    OK(lw_receiver_pass_loss(&r->cpu, &a->ad, T, label, &lc));
    OK(lw_receiver_pass_backward(&r->cpu, &a->ad, T, label, 0.75f, NULL));
    size_t nl = a->has_lora ? a->lora.p.n_params : 0;
    float *lora_cpu = a->has_lora ? copy_of(a->lora.p.grads, nl) : NULL;
    float *dk_cpu = a->n_prefix ? copy_of(a->dk, a->n_prefix) : NULL;
    float *dv_cpu = a->n_prefix ? copy_of(a->dv, a->n_prefix) : NULL;
    zero_grads(a);
    OK(lw_gpu_receiver_pass_loss(&r->gpu, &a->ad, T, label, &lg));
    ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= 1e-4 * fabs((double)lc),
                  "%s label %d with adapters: loss %s %.7g cpu %.7g", name, label, r->dev->name, (double)lg,
                  (double)lc);
    OK(lw_gpu_receiver_pass_backward(&r->gpu, &a->ad, T, label, 0.75f, NULL));
    double maxabs = 0, worst = 0;
    for (int i = r->cpu.last_head * H; i < T * H; i++) {   /* from the CPU's cached head on, as above */
        maxabs = fmax(maxabs, fabs(r->cpu.d_embeds[i]));
        worst = fmax(worst, fabs((double)r->gpu.d_embeds[i] - r->cpu.d_embeds[i]));
    }
    ck_assert_msg(maxabs > 0 && worst <= rtol * maxabs,
                  "%s label %d with adapters: d_embeds error %.3g, max %.3g", name, label, worst, maxabs);
    if (a->has_lora) {
        for (int t = 0; t < a->lora.p.n_tensors; t++) {
            const lw_adapter_tensor *x = &a->lora.p.tensors[t];
            expect_grads(name, r->dev->name, x->name, a->lora.p.grads + x->offset, lora_cpu + x->offset, x->count,
                         rtol);
        }
    }
    if (a->n_prefix) {
        expect_grads(name, r->dev->name, "d prefix keys", a->dk, dk_cpu, a->n_prefix, rtol);
        expect_grads(name, r->dev->name, "d prefix values", a->dv, dv_cpu, a->n_prefix, rtol);
    }
    fprintf(stderr, "%s label %d, LoRA %s, dropout %g, prefix %d: loss %.6f (%s %.6f), d_embeds error %.3g of %.3g\n",
            name, label, a->has_lora ? "on" : "off", a->has_lora ? (double)a->lora.cfg.dropout : 0.0,
            a->ad.prefix_len, (double)lc, r->dev->name, (double)lg, worst, maxabs);
    free(lora_cpu), free(dk_cpu), free(dv_cpu);
}

void tl_rig_check_adapters(tl_rig *r, unsigned targets, float dropout, int P, double rtol)
{
    adapters a;
    adapters_open(&a, r, targets, dropout, P);
    same_adapter_step(r, &a, 1, rtol);
    same_adapter_step(r, &a, 0, rtol);
    a.ad.training = false;   /* scoring draws no dropout, as the trainer's */
    same_scores_with(r, &a.ad);
    a.ad.training = dropout > 0.f;
    same_adapter_step(r, &a, 1, rtol);
    adapters_close(&a);
}

void tl_rig_check_adapter_series(tl_rig *r, double rtol)
{
    tl_rig_check_adapters(r, TL_LORA_QV, 0.f, 0, rtol);
    tl_rig_check_adapters(r, TL_LORA_ALL, 0.f, 0, rtol);
    tl_rig_check_adapters(r, TL_LORA_QV, 0.2f, 0, rtol);
    tl_rig_check_adapters(r, TL_LORA_ALL, 0.2f, 0, rtol);
    tl_rig_check_adapters(r, 0, 0.f, 3, rtol);              /* the deep prefix alone */
    tl_rig_check_adapters(r, TL_LORA_ALL, 0.2f, 3, rtol);   /* both */
}


/* ---- packed steps ------------------------------------------------------------ */

/* n examples (labels alternate 1, 0, ..., each with its own soft rows) as one
 * packed step on both sides, with LoRA on targets (dropout 0; none when 0). */
void tl_rig_check_pack(tl_rig *r, int n, unsigned targets, int P, double rtol)
{
    const char *name = r->m->cfg.name;
    int H = r->m->cfg.hidden, nb = r->layout.n_before;
    adapters a;
    adapters_open(&a, r, targets, 0.f, P);
    const lw_receiver_adapters *ad = targets || P ? &a.ad : NULL;
    size_t np = a.n_prefix;
    float *dpk_cpu = calloc((size_t)n * np + 1, sizeof(float)), *dpv_cpu = calloc((size_t)n * np + 1, sizeof(float));
    ck_assert(dpk_cpu && dpv_cpu);
    ck_assert(lw_gpu_receiver_pass_can_pack(&r->gpu, ad) && lw_receiver_pass_can_pack(&r->cpu, ad));
    ck_assert_int_ge(lw_gpu_receiver_pass_pack_room(&r->gpu, ad), n);
    float *lc = calloc((size_t)n, sizeof(float)), *lg = calloc((size_t)n, sizeof(float));
    bool *cc = calloc((size_t)n, sizeof(bool)), *cg = calloc((size_t)n, sizeof(bool));
    int *T = calloc((size_t)n, sizeof(int));
    float *lora_cpu = NULL;
    ck_assert(lc && lg && cc && cg && T);
    zero_grads(&a);
    for (int side = 0; side < 2; side++) {
        if (side == 0) OK(lw_receiver_pass_pack_begin(&r->cpu, ad, n));
        else OK(lw_gpu_receiver_pass_pack_begin(&r->gpu, ad, n));
        for (int i = 0; i < n; i++) {
            int label = (i + 1) % 2;
            T[i] = fill(r, label, r->layout.verb_len[label] - 1);
            for (int j = nb * H; j < T[i] * H; j++) {   /* each example's own soft rows */
                r->cpu.embeds[j] = (float)sin(0.37 * j + 0.61 * i);
                r->gpu.embeds[j] = r->cpu.embeds[j];
            }
            for (size_t j = 0; j < np; j++) {   /* and its own deep prefix, where the generator leaves it */
                a.pk[j] = 0.8f * (float)sin(0.37 * j + 1.0 + 0.9 * i);
                a.pv[j] = 0.8f * (float)cos(0.23 * j + 0.5 * i);
            }
            if (side == 0) OK(lw_receiver_pass_pack_add(&r->cpu, T[i], label));
            else OK(lw_gpu_receiver_pass_pack_add(&r->gpu, T[i], label));
        }
        if (side == 0) {
            OK(lw_receiver_pass_pack_loss(&r->cpu, lc));
            OK(lw_receiver_pass_pack_backward(&r->cpu, 0.75f, cc));
            if (a.has_lora) lora_cpu = copy_of(a.lora.p.grads, a.lora.p.n_params);   /* kept; the device's next */
            for (int i = 0; i < n && np; i++) {
                const float *dk, *dv;
                lw_receiver_pass_pack_d_prefix(&r->cpu, i, &dk, &dv);
                memcpy(dpk_cpu + i * np, dk, np * sizeof(float)), memcpy(dpv_cpu + i * np, dv, np * sizeof(float));
            }
            zero_grads(&a);
        } else {
            OK(lw_gpu_receiver_pass_pack_loss(&r->gpu, lg));
            OK(lw_gpu_receiver_pass_pack_backward(&r->gpu, 0.75f, cg));
        }
    }
    double worst_all = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(isfinite(lg[i]) && fabs((double)lg[i] - lc[i]) <= 1e-4 * fabs((double)lc[i]),
                      "%s packed example %d: loss %s %.7g cpu %.7g", name, i, r->dev->name, (double)lg[i],
                      (double)lc[i]);
        ck_assert_msg(cc[i] == cg[i], "%s packed example %d: first token right %s %d cpu %d", name, i, r->dev->name,
                      cg[i], cc[i]);
        /* rows n_before.. of the example's own: the soft rows and everything after */
        const float *dg = lw_gpu_receiver_pass_pack_d_embeds(&r->gpu, i), *dc = lw_receiver_pass_pack_d_embeds(&r->cpu, i);
        char what[96];
        snprintf(what, sizeof what, "packed example %d d_embeds", i);
        expect_grads(name, r->dev->name, what, dg, dc, (size_t)(T[i] - nb) * H, rtol);
        for (size_t j = 0; j < (size_t)(T[i] - nb) * H; j++) worst_all = fmax(worst_all, fabs((double)dg[j] - dc[j]));
    }
    for (int i = 0; i < n && np; i++) {   /* each example's own prefix gradient */
        const float *dk, *dv;
        lw_gpu_receiver_pass_pack_d_prefix(&r->gpu, i, &dk, &dv);
        char what[96];
        snprintf(what, sizeof what, "packed example %d d prefix keys", i);
        expect_grads(name, r->dev->name, what, dk, dpk_cpu + i * np, np, rtol);
        snprintf(what, sizeof what, "packed example %d d prefix values", i);
        expect_grads(name, r->dev->name, what, dv, dpv_cpu + i * np, np, rtol);
    }
    if (a.has_lora) {
        for (int t = 0; t < a.lora.p.n_tensors; t++) {
            const lw_adapter_tensor *x = &a.lora.p.tensors[t];
            expect_grads(name, r->dev->name, x->name, a.lora.p.grads + x->offset, lora_cpu + x->offset, x->count,
                         rtol);
        }
        free(lora_cpu);
    }
    /* a single example's loss overwrites the pack's activations: its backward is then refused */
    int T0 = fill(r, 0, r->layout.verb_len[0] - 1);
    float l0;
    OK(lw_gpu_receiver_pass_loss(&r->gpu, ad, T0, 0, &l0));
    ck_assert_int_eq(lw_gpu_receiver_pass_pack_backward(&r->gpu, 1.f, NULL), LW_ERR_INVALID);
    fprintf(stderr, "%s: %d examples packed, LoRA %s, prefix %d each: loss[0] %.6f (%s %.6f), worst d_embeds "
            "error %.3g\n", name, n, targets ? "on" : "off", P, (double)lc[0], r->dev->name, (double)lg[0], worst_all);
    free(lc), free(lg), free(cc), free(cg), free(T), free(dpk_cpu), free(dpv_cpu);
    adapters_close(&a);
}

/* ---- bf16 weights ------------------------------------------------------------- */

void tl_rig_check_bf16(tl_rig *r, double rtol)
{
    const char *name = r->m->cfg.name;
    int H = r->m->cfg.hidden;
    lw_gpu_model *gb = NULL;
    OK(lw_gpu_model_upload_dtype(r->dev->cu, r->dev->blas, &r->mod, r->m, LW_DTYPE_BF16, &gb));
    gb->sync_each_launch = r->dev->sync_each_launch;
    lw_gpu_receiver_pass pb;
    OK(lw_gpu_receiver_pass_alloc(&pb, gb, &r->layout, r->gpu.max_T, "test (bf16)"));
    for (int label = 1; label >= 0; label--) {
        int T = fill(r, label, r->layout.verb_len[label] - 1);
        memcpy(pb.ids, r->cpu.ids, (size_t)T * sizeof(int));
        memcpy(pb.is_embed, r->cpu.is_embed, (size_t)T * sizeof(bool));
        memcpy(pb.embeds, r->cpu.embeds, (size_t)T * H * sizeof(float));
        float lc = 0, lg = 0;
        OK(lw_receiver_pass_loss(&r->cpu, NULL, T, label, &lc));
        OK(lw_receiver_pass_backward(&r->cpu, NULL, T, label, 0.75f, NULL));
        OK(lw_gpu_receiver_pass_loss(&pb, NULL, T, label, &lg));
        OK(lw_gpu_receiver_pass_backward(&pb, NULL, T, label, 0.75f, NULL));
        ck_assert_msg(isfinite(lg) && fabs((double)lg - lc) <= rtol * fabs((double)lc),
                      "%s label %d, bf16 weights: loss %s %.7g, fp32 cpu %.7g", name, label, r->dev->name, (double)lg,
                      (double)lc);
        int from = r->cpu.last_head * H;   /* the CPU leaves its cached head's rows at 0 */
        char what[96];
        snprintf(what, sizeof what, "label %d d_embeds through bf16 weights", label);
        expect_grads(name, r->dev->name, what, pb.d_embeds + from, r->cpu.d_embeds + from, (size_t)(T * H - from),
                     rtol);
        /* and the direction: the cosine of the two gradients (a wrong row or sign would turn it) */
        double maxabs = 0, worst = 0, gg = 0, cc = 0, gc = 0;
        for (int i = from; i < T * H; i++) {
            double g = pb.d_embeds[i], c = r->cpu.d_embeds[i];
            maxabs = fmax(maxabs, fabs(c));
            worst = fmax(worst, fabs(g - c));
            gg += g * g, cc += c * c, gc += g * c;
        }
        double cosine = gc / sqrt(gg * cc);
        ck_assert_msg(cosine >= 0.999, "%s label %d, bf16 weights: d_embeds cosine %.6f to the fp32 CPU's", name, label,
                      cosine);
        fprintf(stderr, "%s label %d, bf16 weights: loss %.6f (%s %.6f), d_embeds error %.3g of %.3g, cosine %.6f\n",
                name, label, (double)lc, r->dev->name, (double)lg, worst, maxabs, cosine);
    }
    lw_gpu_receiver_pass_free(&pb);
    lw_gpu_model_free(gb);
}
