/* LoRA on the receiver (lora.h): the tensor table under PEFT's names, the
 * forward/backward hooks, merging, and saving. */
#include "lora.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "rng.h"

#define LW_COMMON_HOST_ONLY   /* only the part shared by C and CUDA: the dropout hash */
#include "common.cuh"

static const char *const short_names[LW_LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
static const char *const modules[LW_LORA_N_TARGETS] = {"self_attn.q_proj", "self_attn.k_proj",
                                                       "self_attn.v_proj", "self_attn.o_proj",
                                                       "mlp.gate_proj",    "mlp.up_proj",
                                                       "mlp.down_proj"};

const char *lw_lora_target_name(lw_lora_target t) { return t < LW_LORA_N_TARGETS ? short_names[t] : "?"; }

/* "q_proj" etc., PEFT's target_modules entries. */
const char *lw_lora_target_module(lw_lora_target t)
{
    if (t >= LW_LORA_N_TARGETS) return "?";
    const char *dot = strchr(modules[t], '.');
    return dot + 1;
}

int lw_lora_target_parse(const char *name)
{
    for (int t = 0; t < LW_LORA_N_TARGETS; t++)
        if (strcmp(name, short_names[t]) == 0 || strcmp(name, lw_lora_target_module((lw_lora_target)t)) == 0)
            return t;
    return -1;
}

/* ---- config ------------------------------------------------------------- */

/* Splits "a,b,c" into items of at most 31 characters; calls f on each. */
static lw_status each_item(const char *list, const char *what, lw_status (*f)(void *, const char *), void *user)
{
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char item[32];
        if (n == 0 || n >= sizeof item)
            return lw_fail(LW_ERR_INVALID, "lora %s \"%.64s\": empty or overlong item", what, list);
        memcpy(item, s, n);
        item[n] = '\0';
        lw_status st = f(user, item);
        if (st) return st;
        s += n + (e ? 1 : 0);
        if (e && !*s) return lw_fail(LW_ERR_INVALID, "lora %s \"%.64s\": trailing comma", what, list);
    }
    return LW_OK;
}

static lw_status add_target(void *user, const char *item)
{
    lw_lora_config *c = user;
    int t = lw_lora_target_parse(item);
    if (t < 0)
        return lw_fail(LW_ERR_INVALID, "lora targets: \"%s\" is not a target; expected q, k, v, o, gate, up, down",
                       item);
    c->targets |= 1u << t;
    return LW_OK;
}

static lw_status add_layer(void *user, const char *item)
{
    lw_lora_config *c = user;
    char *end;
    long l = strtol(item, &end, 10);
    if (*end || end == item || l < 0 || l > 1 << 20)
        return lw_fail(LW_ERR_INVALID, "lora layers: \"%s\" is not a layer index", item);
    if (c->n_layer_list >= LW_LORA_MAX_LIST)
        return lw_fail(LW_ERR_INVALID, "lora layers: more than %d listed", LW_LORA_MAX_LIST);
    c->layer_list[c->n_layer_list++] = (int)l;
    return LW_OK;
}

lw_status lw_lora_config_parse(lw_lora_config *cfg, int rank, float alpha, float dropout, const char *targets,
                               const char *layers)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->rank = rank;
    cfg->alpha = alpha;
    cfg->dropout = dropout;
    lw_status st = each_item(targets ? targets : "q,v", "targets", add_target, cfg);
    if (st) return st;
    if (!layers || !*layers || strcmp(layers, "all") == 0) return LW_OK;
    if (strspn(layers, "0123456789") == strlen(layers)) {
        /* a lone number is "the first N layers"; a list ("3,5") names layers */
        cfg->first_layers = strlen(layers) < 8 ? atoi(layers) : -1;
        if (cfg->first_layers <= 0)
            return lw_fail(LW_ERR_INVALID, "lora layers \"%.16s\": expected a count from 1", layers);
        return LW_OK;
    }
    return each_item(layers, "layers", add_layer, cfg);
}

/* ---- the table ---------------------------------------------------------- */

static lw_status check_config(const lw_lora_config *c, const lw_model_config *m)
{
    if (c->rank < 1 || c->rank > 1024)
        return lw_fail(LW_ERR_INVALID, "lora for %s: rank %d; expected 1..1024", m->name, c->rank);
    if (!(c->alpha > 0.0f) || !isfinite(c->alpha))
        return lw_fail(LW_ERR_INVALID, "lora for %s: alpha %g; expected > 0", m->name, (double)c->alpha);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return lw_fail(LW_ERR_INVALID, "lora for %s: dropout %g; expected [0, 1)", m->name, (double)c->dropout);
    if (c->targets == 0 || c->targets >> LW_LORA_N_TARGETS)
        return lw_fail(LW_ERR_INVALID, "lora for %s: no targets; expected some of q, k, v, o, gate, up, down",
                       m->name);
    if (c->first_layers < 0 || c->first_layers > m->n_layers)
        return lw_fail(LW_ERR_INVALID, "lora for %s: first %d layers; the model has %d", m->name, c->first_layers,
                       m->n_layers);
    if (c->n_layer_list < 0 || c->n_layer_list > LW_LORA_MAX_LIST)
        return lw_fail(LW_ERR_INVALID, "lora for %s: %d listed layers", m->name, c->n_layer_list);
    for (int i = 0; i < c->n_layer_list; i++) {
        if (c->layer_list[i] < 0 || c->layer_list[i] >= m->n_layers)
            return lw_fail(LW_ERR_INVALID, "lora for %s: layer %d; expected 0..%d", m->name, c->layer_list[i],
                           m->n_layers - 1);
        for (int j = 0; j < i; j++)
            if (c->layer_list[j] == c->layer_list[i])
                return lw_fail(LW_ERR_INVALID, "lora for %s: layer %d listed twice", m->name, c->layer_list[i]);
    }
    return LW_OK;
}

bool lw_lora_layer_on(const lw_lora_config *c, int l)
{
    if (c->first_layers > 0) return l < c->first_layers;
    if (c->n_layer_list == 0) return true;
    for (int i = 0; i < c->n_layer_list; i++)
        if (c->layer_list[i] == l) return true;
    return false;
}

/* [out, in] of a target's projection. */
static void target_dims(const lw_model_config *c, lw_lora_target t, int *in, int *out)
{
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    static const int is_in_hidden[LW_LORA_N_TARGETS] = {1, 1, 1, 0, 1, 1, 0};
    *in = is_in_hidden[t] ? H : t == LW_LORA_O ? qd : F;
    *out = t == LW_LORA_Q ? qd : t == LW_LORA_K || t == LW_LORA_V ? kvd : t == LW_LORA_O || t == LW_LORA_DOWN ? H : F;
}

lw_status lw_lora_create(lw_lora *lo, const lw_lora_config *cfg, const lw_model *m)
{
    memset(lo, 0, sizeof *lo);
    const lw_model_config *c = &m->cfg;
    lw_status st = check_config(cfg, c);
    if (st) return st;
    lo->cfg = *cfg;
    lo->n_layers = c->n_layers;
    lo->scale = cfg->alpha / (float)cfg->rank;
    lo->slots = calloc((size_t)c->n_layers * LW_LORA_N_TARGETS, sizeof *lo->slots);
    if (!lo->slots) return lw_fail(LW_ERR_NOMEM, "lora for %s: out of memory", c->name);
    for (int l = 0; !st && l < c->n_layers; l++) {
        if (!lw_lora_layer_on(cfg, l)) continue;
        for (int t = 0; !st && t < LW_LORA_N_TARGETS; t++) {
            if (!(cfg->targets & (1u << t))) continue;
            lw_lora_slot *s = &lo->slots[(size_t)l * LW_LORA_N_TARGETS + t];
            char name[LW_ADAPTER_NAME_MAX];
            target_dims(c, (lw_lora_target)t, &s->in, &s->out);
            s->on = true;
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_A.weight", l, modules[t]);
            st = lw_adapter_params_add(&lo->p, name, 2, cfg->rank, s->in, true, &s->a);
            snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_B.weight", l, modules[t]);
            if (!st) st = lw_adapter_params_add(&lo->p, name, 2, s->out, cfg->rank, true, &s->b);
        }
    }
    if (!st) st = lw_adapter_params_alloc(&lo->p);
    if (st) lw_lora_free(lo);
    return st;
}

void lw_lora_free(lw_lora *lo)
{
    lw_adapter_params_free(&lo->p);
    free(lo->slots);
    memset(lo, 0, sizeof *lo);
}

void lw_lora_init(lw_lora *lo, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)lo->n_layers * LW_LORA_N_TARGETS; i++) {
        const lw_lora_slot *s = &lo->slots[i];
        if (!s->on) continue;
        float *a = lo->p.params + s->a;
        double bound = 1.0 / sqrt((double)s->in);   /* kaiming_uniform_(a = sqrt(5)) */
        for (size_t k = 0; k < (size_t)lo->cfg.rank * s->in; k++) a[k] = (float)(bound * (2.0 * lw_rng_uniform(&r) - 1.0));
        memset(lo->p.params + s->b, 0, (size_t)s->out * lo->cfg.rank * sizeof(float));
    }
}

/* ---- forward and backward ----------------------------------------------- */

/* Dropout draws: element (pos, j) of (layer, target) is kept with
 * probability 1 - p; a hash, not a stream, so backward redraws the same.
 * The hash is templates/common.cuh's, which the CUDA kernels compile too. */
_Static_assert(LW_LORA_TARGETS == LW_LORA_N_TARGETS, "common.cuh numbers the LoRA targets as lora.h does");

typedef struct {
    uint64_t stream;
    double cut;   /* p * 2^53 */
} dropout_draw;

static dropout_draw draw_for(const lw_receiver_adapters *ad, int layer, lw_lora_target t)
{
    return (dropout_draw){lw_lora_stream(ad->dropout_seed, layer, (int)t), lw_dropout_cut(ad->lora->cfg.dropout)};
}

static bool kept(const dropout_draw *d, int pos, int j) { return lw_lora_kept(d->stream, d->cut, pos, j); }

static bool dropout_on(const lw_receiver_adapters *ad) { return ad->training && ad->lora->cfg.dropout > 0.0f; }

/* xd = dropout(x) (scaled by 1 / (1 - p)) in the scratch, or x itself. */
static const float *dropped(const lw_receiver_adapters *ad, int layer, lw_lora_target t, const float *x, int T,
                            int in, const int *pos)
{
    if (!dropout_on(ad)) return x;
    float *xd = ad->scratch->xd, keep_scale = 1.0f / (1.0f - ad->lora->cfg.dropout);
    dropout_draw d = draw_for(ad, layer, t);
    for (int r = 0; r < T; r++)
        for (int j = 0; j < in; j++) {
            size_t i = (size_t)r * in + j;
            xd[i] = kept(&d, pos[r], j) ? x[i] * keep_scale : 0.0f;
        }
    return xd;
}

static const lw_lora_slot *active_slot(const lw_receiver_adapters *ad, int layer, lw_lora_target t)
{
    if (!ad || !ad->lora || ad->lora->merged) return NULL;
    const lw_lora_slot *s = lw_lora_slot_at(ad->lora, layer, t);
    return s->on ? s : NULL;
}

/* u = scale * A xd, [T, rank] */
static void project_down(const lw_lora *lo, const lw_lora_slot *s, const float *xd, float *u, int T)
{
    int r = lo->cfg.rank;
    matmul_forward(u, xd, lo->p.params + s->a, NULL, T, s->in, r);
    for (size_t i = 0; i < (size_t)T * r; i++) u[i] *= lo->scale;
}

void lw_lora_forward(const lw_receiver_adapters *ad, int layer, lw_lora_target t, const float *x, float *y, int T,
                     const int *pos)
{
    const lw_lora_slot *s = active_slot(ad, layer, t);
    if (!s) return;
    const lw_lora *lo = ad->lora;
    lw_adapter_scratch *sc = ad->scratch;
    project_down(lo, s, dropped(ad, layer, t, x, T, s->in, pos), sc->u, T);
    matmul_forward(sc->y, sc->u, lo->p.params + s->b, NULL, T, lo->cfg.rank, s->out);
    for (size_t i = 0; i < (size_t)T * s->out; i++) y[i] += sc->y[i];
}

/* With u = scale A xd and y += B u: dB += dy^T u, du = scale B^T dy,
 * dA += du^T xd, dxd = A^T du, dx += dxd * mask / (1 - p). */
void lw_lora_backward(const lw_receiver_adapters *ad, int layer, lw_lora_target t, const float *x,
                      const float *dy, float *dx, int T, const int *pos)
{
    const lw_lora_slot *s = active_slot(ad, layer, t);
    if (!s) return;
    lw_lora *lo = ad->lora;
    lw_adapter_scratch *sc = ad->scratch;
    int r = lo->cfg.rank;
    size_t nr = (size_t)T * r, nin = (size_t)T * s->in;
    const float *xd = dropped(ad, layer, t, x, T, s->in, pos);
    project_down(lo, s, xd, sc->u, T);
    memset(sc->du, 0, nr * sizeof(float));
    matmul_backward(sc->du, lo->p.grads + s->b, NULL, dy, sc->u, lo->p.params + s->b, T, r, s->out);
    for (size_t i = 0; i < nr; i++) sc->du[i] *= lo->scale;
    if (xd == x) {   /* no dropout: straight into dx */
        matmul_backward(dx, lo->p.grads + s->a, NULL, sc->du, x, lo->p.params + s->a, T, s->in, r);
        return;
    }
    /* dA from xd first: its buffer then takes dxd */
    matmul_backward(NULL, lo->p.grads + s->a, NULL, sc->du, xd, lo->p.params + s->a, T, s->in, r);
    float *dxd = sc->xd, keep_scale = 1.0f / (1.0f - lo->cfg.dropout);
    memset(dxd, 0, nin * sizeof(float));
    matmul_backward(dxd, NULL, NULL, sc->du, x, lo->p.params + s->a, T, s->in, r);
    dropout_draw d = draw_for(ad, layer, t);
    for (int row = 0; row < T; row++)
        for (int j = 0; j < s->in; j++) {
            size_t i = (size_t)row * s->in + j;
            if (kept(&d, pos[row], j)) dx[i] += dxd[i] * keep_scale;
        }
}

/* ---- merging ------------------------------------------------------------ */

static float *target_weight(lw_model *m, int l, lw_lora_target t)
{
    lw_layer_weights *L = &m->layers[l];
    float *w[LW_LORA_N_TARGETS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return w[t];
}

/* W[out, in] += sign * scale * B[out, r] A[r, in] */
static lw_status merge(lw_lora *lo, lw_model *m, float sign, bool want_merged)
{
    if (lo->n_layers != m->cfg.n_layers)
        return lw_fail(LW_ERR_INVALID, "lora: built for %d layers, model %s has %d", lo->n_layers, m->cfg.name,
                       m->cfg.n_layers);
    if (m->narrow)   /* the bf16 matrices are a rounding of the fp32 ones: W + BA would be rounded again */
        return lw_fail(LW_ERR_UNSUPPORTED, "lora on %s: cannot merge into bf16 weights (load with --dtype fp32)",
                       m->cfg.name);
    if (lo->merged == want_merged)
        return lw_fail(LW_ERR_INVALID, "lora on %s: already %s", m->cfg.name, want_merged ? "merged" : "unmerged");
    int r = lo->cfg.rank;
    for (int l = 0; l < lo->n_layers; l++)
        for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
            const lw_lora_slot *s = lw_lora_slot_at(lo, l, (lw_lora_target)t);
            if (!s->on) continue;
            float *w = target_weight(m, l, (lw_lora_target)t);
            const float *A = lo->p.params + s->a, *B = lo->p.params + s->b;
            for (int o = 0; o < s->out; o++)
                for (int k = 0; k < r; k++) {
                    float b = sign * lo->scale * B[(size_t)o * r + k];
                    if (b == 0.0f) continue;
                    const float *a = A + (size_t)k * s->in;
                    float *wo = w + (size_t)o * s->in;
                    for (int i = 0; i < s->in; i++) wo[i] += b * a[i];
                }
        }
    lo->merged = want_merged;
    return LW_OK;
}

lw_status lw_lora_merge(lw_lora *lo, lw_model *m) { return merge(lo, m, 1.0f, true); }
lw_status lw_lora_unmerge(lw_lora *lo, lw_model *m) { return merge(lo, m, -1.0f, false); }
