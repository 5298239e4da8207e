/* The receiver's training pass on the GPU; see gpu_receiver_pass.h. The
 * model runs as its plan through the CUDA executor (plan_cuda.c): this file
 * lays out the buffers (every layer's activations at their rows, the keys
 * with a deep prefix's rows first, the gradients), keeps the adapters'
 * device copies in step with the host's, and scores the loss rows; the
 * decoder block itself is written only in plan/plan.c. */
#include "gpu_receiver_pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

static const size_t F32 = sizeof(float);

/* Row r of a [rows, width] float buffer on the device. */
static lw_cuda_ptr row(lw_cuda_ptr base, int r, int width) { return base + (size_t)r * (size_t)width * F32; }

static size_t kv_dim(const lw_model_config *c) { return (size_t)c->n_kv_heads * c->head_dim; }

/* Layer l's first key row (of n_prefix + rows; value rows alike). */
static lw_cuda_ptr layer_keys(const lw_gpu_receiver_pass *p, lw_cuda_ptr cache, int l)
{
    return cache + (size_t)l * ((size_t)p->n_prefix + p->rows) * kv_dim(&p->g->cfg) * F32;
}

/* ---- allocation ---------------------------------------------------------- */

/* The plan's memory plans for p->rows rows (lw_plan_memory_layout with
 * training and the kernels' log-sum-exp; lw_plan_grad_layout): what each
 * layer keeps for backward one copy a layer, the rest and the gradient
 * slots sharing bytes where their lives in the walk do not meet. */
static lw_status lay_out(lw_gpu_receiver_pass *p)
{
    const lw_gpu_model *g = p->g;
    lw_plan_shape shape = {.rows = p->rows, .att_rows = p->rows, .kv_len = p->n_prefix + p->rows, .training = true,
                           .lse = true};
    lw_status st = lw_plan_memory_layout(&g->plan, &shape, &p->mem);
    if (!st) st = lw_cuda_plan_memory_check(&g->cfg, &p->mem);
    if (!st) st = lw_plan_grad_layout(&g->plan, p->rows, &p->gmem);
    return st;
}

/* Every device buffer of p in a (measuring when a->base is 0), the plan's
 * two arenas (p->mem, p->gmem: lay_out) first. */
static void place(lw_gpu_receiver_pass *p, lw_gpu_arena *a)
{
    const lw_model_config *c = &p->g->cfg;
    size_t T = (size_t)p->rows, H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = kv_dim(c), F = (size_t)c->ffn, V = (size_t)c->vocab, Lv = (size_t)p->loss_cap;
    size_t P = (size_t)p->n_prefix, n = (size_t)c->n_layers;
    lw_gpu_pass_buffers *d = &p->dev;
    p->acts = lw_gpu_take(a, (size_t)p->mem.bytes);
    p->grads = lw_gpu_take(a, (size_t)p->gmem.bytes);
    lw_cuda_plan_acts top = {0};
    for (int l = 0; l < c->n_layers; l++) {
        p->slots[l] = (lw_cuda_plan_acts){0};
        if (a->base) lw_cuda_plan_carve_acts(&p->mem, p->acts, l, &p->slots[l], l == 0 ? &top : NULL);
        p->dkeys[l] = P ? lw_gpu_take(a, (P + T) * kvd * F32) : 0;
        p->dvalues[l] = P ? lw_gpu_take(a, (P + T) * kvd * F32) : 0;
    }
    d->x = top.at[LW_SLOT_X], d->xf = top.at[LW_SLOT_XF], d->rstd_final = top.at[LW_SLOT_RSTD_FINAL];
    if (a->base) lw_cuda_plan_carve_grads(&p->gmem, p->grads, d->grad);
    else memset(d->grad, 0, sizeof d->grad);
    d->key_cache = lw_gpu_take(a, n * (P + T) * kvd * F32);
    d->value_cache = lw_gpu_take(a, n * (P + T) * kvd * F32);
    d->logits = lw_gpu_take(a, Lv * V * F32);
    d->dlogits = lw_gpu_take(a, Lv * V * F32);
    d->loss = lw_gpu_take(a, Lv * F32);
    d->targets = lw_gpu_take(a, Lv * sizeof(int));
    d->ids = lw_gpu_take(a, T * sizeof(int));
    d->pos = lw_gpu_take(a, T * sizeof(int));
    d->seg = lw_gpu_take(a, T * sizeof(int));
    d->gather = lw_gpu_take(a, Lv * H * F32);
    /* bf16 weights: every product's input and every input-gradient product's dy in bf16 (2 bytes a value):
     * rows of the widest of hidden, q, kv and ffn, or the loss rows' logits gradient */
    size_t widest = H > qd ? H : qd;
    widest = widest > F ? widest : F;
    size_t xb = T * widest > Lv * V ? T * widest : Lv * V;
    d->xb = p->g->bf16 ? lw_gpu_take(a, xb * 2) : 0;
}

/* The executor's host staging for p->rows rows and p->loss_cap loss rows. */
#ifdef LW_KERNEL_HOST_TWIN
/* Set by the host twin's tests to make the staging's allocations fail
 * (check_plan_cuda_host: a pack that cannot grow leaves the pass usable). */
bool lw_twin_fail_staging;
#define STAGING_FAILS lw_twin_fail_staging
#else
#define STAGING_FAILS false
#endif

/* The host staging for p->rows rows and p->loss_cap loss rows. All or
 * nothing: on an allocation failure p keeps the arrays it had (false), so
 * a pass that could not grow goes on at its old size (grow_rows). */
static bool stage_arrays(lw_gpu_receiver_pass *p)
{
    size_t T = (size_t)p->rows;
    int *pos = calloc(T, sizeof *pos), *seg = calloc(T, sizeof *seg), *ids = calloc(T, sizeof *ids);
    float *loss = calloc((size_t)p->loss_cap, F32);
    if (!pos || !seg || !ids || !loss || STAGING_FAILS) {
        free(pos), free(seg), free(ids), free(loss);
        return false;
    }
    free(p->pos_stage), free(p->seg_stage), free(p->ids_stage), free(p->loss_rows);
    p->pos_stage = pos, p->seg_stage = seg, p->ids_stage = ids, p->loss_rows = loss;
    return true;
}

static bool host_arrays(lw_gpu_receiver_pass *p)
{
    const lw_model_config *c = &p->g->cfg;
    size_t T = (size_t)p->max_T, H = (size_t)c->hidden, V = (size_t)c->vocab, Lv = (size_t)p->layout->max_verb;
    p->slots = calloc((size_t)c->n_layers, sizeof *p->slots);
    p->dkeys = calloc((size_t)c->n_layers, sizeof *p->dkeys);
    p->dvalues = calloc((size_t)c->n_layers, sizeof *p->dvalues);
    p->embeds = calloc(T * H, F32);
    p->d_embeds = calloc(T * H, F32);
    p->logits = calloc(Lv * V, F32);
    p->ids = calloc(T, sizeof *p->ids);
    p->targets = calloc(T, sizeof *p->targets);
    p->is_embed = calloc(T, sizeof *p->is_embed);
    return stage_arrays(p) && p->slots && p->dkeys && p->dvalues && p->embeds && p->d_embeds && p->logits &&
           p->ids && p->targets && p->is_embed;
}

/* A new device allocation for p's current sizes, zeroed and laid out, with
 * the positions 0..max_T-1; p->arena is set only when all of it worked (on
 * failure the caller re-places p over what it had). */
static lw_status device_arena(lw_gpu_receiver_pass *p)
{
    lw_gpu_model *g = p->g;
    lw_status st = lay_out(p);
    if (st) return st;
    lw_gpu_arena a = {0};
    place(p, &a);
    size_t bytes = a.used;
    char what[128];
    snprintf(what, sizeof what, "training pass (activations of %d rows, %d prefix rows)", p->rows, p->n_prefix);
    lw_cuda_ptr base = 0;
    st = lw_gpu_check_fits(g->cu, bytes, what, g->cfg.name);
    if (!st) st = lw_cuda_alloc(g->cu, bytes, what, &base);
    if (!st) st = lw_cuda_memset0(g->cu, base, bytes, what);
    if (!st) {
        a = (lw_gpu_arena){.base = base};
        place(p, &a);
    }
    if (st) {
        if (base) lw_cuda_free(g->cu, base);
        return st;
    }
    p->arena = base;
    p->bytes = bytes;
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_alloc(lw_gpu_receiver_pass *p, lw_gpu_model *g, const lw_receiver_layout *layout,
                                     int max_T, const char *who)
{
    memset(p, 0, sizeof *p);
    p->g = g;
    p->layout = layout;
    p->max_T = p->rows = max_T;
    p->loss_cap = layout->max_verb;
    const lw_model_config *c = &g->cfg;
    if (max_T < 1 || max_T > c->context || max_T > (1 << 20))
        return lw_fail(LW_ERR_INVALID, "%s: the receiver prompt needs %d positions, %s has %d", who, max_T, c->name,
                       c->context);
    if (layout->max_verb < 1 || layout->max_verb > max_T || layout->n_labels < 1)
        return lw_fail(LW_ERR_INVALID, "%s: %d labels with verbalizers of up to %d tokens (1..%d)", who,
                       layout->n_labels, layout->max_verb, max_T);
    if (!host_arrays(p)) {
        lw_gpu_receiver_pass_free(p);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %d positions of vocab %d", who, max_T, c->vocab);
    }
    lw_status st = device_arena(p);
    if (st) {
        lw_gpu_receiver_pass_free(p);
        return lw_fail_wrap(st, "%s on the GPU", who);
    }
    return LW_OK;
}

static void pack_release(lw_gpu_receiver_pass *p)
{
    lw_gpu_pass_pack *k = &p->pack;
    if (k->dev_arena) lw_cuda_free(p->g->cu, k->dev_arena);
    void *all[] = {k->ids,     k->is_embed, k->embeds,     k->d_embeds, k->seg_len,  k->label,
                   k->row0,    k->loss0,    k->run_from,   k->run_rows, k->targets,  k->prefix_k,
                   k->prefix_v, k->d_prefix_k, k->d_prefix_v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    memset(k, 0, sizeof *k);
}

static void lora_release(lw_gpu_receiver_pass *p)
{
    if (p->lora.arena) lw_cuda_free(p->g->cu, p->lora.arena);
    free(p->lora.grads_host);
    memset(&p->lora, 0, sizeof p->lora);
}

void lw_gpu_receiver_pass_free(lw_gpu_receiver_pass *p)
{
    if (p->arena) lw_cuda_free(p->g->cu, p->arena);
    if (p->g) lora_release(p);
    free(p->prefix_stage);
    free(p->slots);
    free(p->dkeys);
    free(p->dvalues);
    free(p->pos_stage);
    free(p->seg_stage);
    if (p->g) pack_release(p);
    free(p->embeds);
    free(p->d_embeds);
    free(p->logits);
    free(p->loss_rows);
    free(p->ids);
    free(p->targets);
    free(p->ids_stage);
    free(p->is_embed);
    memset(p, 0, sizeof *p);
}

/* ---- argument checks (before any device work) ------------------------------ */

enum { MAX_PREFIX = 1 << 16 };

/* [in, out] of a LoRA target's projection in this model (lora.c's target_dims):
 * the kernels take them from the model's constants, so the LoRA must agree. */
static void target_dims(const lw_model_config *c, int t, int *in, int *out)
{
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    *in = t == LW_LORA_O ? qd : t == LW_LORA_DOWN ? F : H;
    *out = t == LW_LORA_Q ? qd : t == LW_LORA_K || t == LW_LORA_V ? kvd : t == LW_LORA_O || t == LW_LORA_DOWN ? H : F;
}

/* Every slot's A [rank, in] and B [out, rank] fit the model and the buffer. */
static lw_status check_lora(const lw_gpu_receiver_pass *p, const lw_lora *lo)
{
    const lw_model_config *c = &p->g->cfg;
    const char *name = c->name;
    if (lo->n_layers != c->n_layers || !lo->slots || !lo->p.params || !lo->p.grads)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: the LoRA was built for %d layers (the model has %d) "
                       "or has no parameters", name, lo->n_layers, c->n_layers);
    int r = lo->cfg.rank;
    if (r < 1 || r > 1024 || !(lo->cfg.dropout >= 0.0f && lo->cfg.dropout < 1.0f))
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: LoRA rank %d, dropout %g (1..1024, [0, 1))", name, r,
                       (double)lo->cfg.dropout);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < LW_LORA_N_TARGETS; t++) {
            const lw_lora_slot *s = lw_lora_slot_at(lo, l, (lw_lora_target)t);
            if (!s->on) continue;
            int in, out;
            target_dims(c, t, &in, &out);
            size_t n = lo->p.n_params;
            if (s->in != in || s->out != out || s->a > n || (size_t)r * in > n - s->a || s->b > n ||
                (size_t)r * out > n - s->b)
                return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: LoRA layer %d %s is [%d, %d] at %zu / %zu of "
                               "%zu; the model's projection is [%d, %d]", name, l, lw_lora_target_name(t), s->out,
                               s->in, s->a, s->b, n, out, in);
        }
    return LW_OK;
}

static lw_status check_adapters(const lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    if (!ad) return LW_OK;
    if (ad->prefix_len < 0 || ad->prefix_len > MAX_PREFIX)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: deep prefix of %d keys (0..%d)", p->g->cfg.name,
                       ad->prefix_len, MAX_PREFIX);
    if (ad->prefix_len > 0 && (!ad->prefix_k || !ad->prefix_v))
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: deep prefix of %d without keys/values",
                       p->g->cfg.name, ad->prefix_len);
    return ad->lora ? check_lora(p, ad->lora) : LW_OK;
}

static lw_status check_rows(const lw_gpu_receiver_pass *p, int T, int label)
{
    if (label < 0 || label >= p->layout->n_labels)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass: label %d of %d", label, p->layout->n_labels);
    if (T < p->layout->verb_len[label] || T > p->max_T)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass: %d rows (the verbalizer's %d..%d)", T,
                       p->layout->verb_len[label], p->max_T);
    return LW_OK;
}

static bool row_is_embed(const lw_forward_args *a, int r) { return a->embeds && (!a->is_embed || a->is_embed[r]); }

/* ---- adapters on the device --------------------------------------------------- */

static bool lora_on(const lw_receiver_adapters *ad) { return ad && ad->lora && !ad->lora->merged; }

static void place_lora(lw_gpu_pass_lora *L, lw_gpu_arena *a)
{
    L->params = lw_gpu_take(a, L->n * F32);
    L->grads = lw_gpu_take(a, L->n * F32);
    L->u = lw_gpu_take(a, (size_t)L->rows * L->rank * F32);
    L->du = lw_gpu_take(a, (size_t)L->rows * L->rank * F32);
}

/* Parameters, gradients and scratch for lo, unless p has them for its sizes. */
static lw_status lora_room(lw_gpu_receiver_pass *p, const lw_lora *lo)
{
    lw_gpu_pass_lora *L = &p->lora;
    if (L->arena && L->n == lo->p.n_params && L->rank == lo->cfg.rank && L->rows >= p->rows) return LW_OK;
    lora_release(p);
    p->loss_T = 0;   /* a backward would find another LoRA's scratch */
    p->pack.loss_done = false;
    lw_gpu_pass_lora want = {.rank = lo->cfg.rank, .rows = p->rows, .n = lo->p.n_params};
    lw_gpu_arena a = {0};
    place_lora(&want, &a);
    want.bytes = a.used;
    char what[128];
    snprintf(what, sizeof what, "LoRA of rank %d (%zu parameters and their gradients)", want.rank, want.n);
    lw_gpu_model *g = p->g;
    if (!(want.grads_host = malloc(want.n * F32)))
        return lw_fail(LW_ERR_NOMEM, "GPU receiver pass %s: out of memory for the %s", g->cfg.name, what);
    lw_status st = lw_gpu_check_fits(g->cu, want.bytes, what, g->cfg.name);
    if (!st) st = lw_cuda_alloc(g->cu, want.bytes, what, &want.arena);
    if (!st) st = lw_cuda_memset0(g->cu, want.arena, want.bytes, what);
    if (st) {
        if (want.arena) lw_cuda_free(g->cu, want.arena);
        free(want.grads_host);
        return st;
    }
    a = (lw_gpu_arena){.base = want.arena};
    place_lora(&want, &a);
    *L = want;
    return LW_OK;
}

/* The activations again with P rows before every layer's keys and values. */
static lw_status grow_prefix(lw_gpu_receiver_pass *p, int P)
{
    const lw_model_config *c = &p->g->cfg;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    float *stage = calloc((size_t)P * kvd, F32);
    if (!stage)
        return lw_fail(LW_ERR_NOMEM, "GPU receiver pass %s: out of memory for a deep prefix of %d", c->name, P);
    lw_cuda_ptr old = p->arena;
    int old_P = p->n_prefix;
    p->n_prefix = P;
    lw_status st = device_arena(p);
    if (st) {
        free(stage);
        p->n_prefix = old_P;
        lw_gpu_arena a = {.base = old};
        (void)lay_out(p);   /* the layout p had: it was made before */
        place(p, &a);       /* back over what p had */
        return lw_fail_wrap(st, "GPU receiver pass %s: room for a deep prefix of %d", c->name, P);
    }
    if (old) lw_cuda_free(p->g->cu, old);
    free(p->prefix_stage);
    p->prefix_stage = stage;
    p->loss_T = 0;   /* the activations are gone */
    p->pack.loss_done = false;
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_attach(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    lw_status st = check_adapters(p, ad);
    if (st || !ad) return st;
    if (ad->prefix_len > p->n_prefix && (st = grow_prefix(p, ad->prefix_len))) return st;
    if (ad->lora && (st = lora_room(p, ad->lora)))
        return lw_fail_wrap(st, "GPU receiver pass %s: LoRA", p->g->cfg.name);
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_sync_adapters(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    if (!ad) return LW_OK;
    const lw_model_config *c = &p->g->cfg;
    const lw_lora *lo = ad->lora;
    if (ad->prefix_len > p->n_prefix || (lo && (!p->lora.arena || p->lora.n != lo->p.n_params)))
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: adapters not attached (lw_gpu_receiver_pass_attach)",
                       c->name);
    lw_cuda *cu = p->g->cu;
    lw_status st = LW_OK;
    if (lora_on(ad)) st = lw_cuda_upload(cu, p->lora.params, lo->p.params, p->lora.n * F32, "LoRA parameters");
    int P = ad->prefix_len, kvd = c->n_kv_heads * c->head_dim;
    size_t np = (size_t)P * kvd;
    /* the P rows right before position 0 (rows n_prefix - P.. of the layer's) */
    for (int l = 0; !st && P > 0 && l < c->n_layers; l++) {
        lw_cuda_ptr k = row(layer_keys(p, p->dev.key_cache, l), p->n_prefix - P, kvd);
        lw_cuda_ptr v = row(layer_keys(p, p->dev.value_cache, l), p->n_prefix - P, kvd);
        st = lw_cuda_upload(cu, k, ad->prefix_k + l * np, np * F32, "deep prefix keys");
        if (!st) st = lw_cuda_upload(cu, v, ad->prefix_v + l * np, np * F32, "deep prefix values");
    }
    return st;
}

/* Room and fresh parameters for the call's adapters, which the kernels below then read. */
static lw_status begin_call(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    p->ad = NULL;
    p->prefix = 0;
    lw_status st = lw_gpu_receiver_pass_attach(p, ad);
    if (!st) st = lw_gpu_receiver_pass_sync_adapters(p, ad);
    if (st) return st;
    p->ad = ad;
    p->prefix = ad ? ad->prefix_len : 0;
    return LW_OK;
}

/* The ids the embedding kernel will read (it does not check them). */
static lw_status check_ids(const lw_gpu_receiver_pass *p, const lw_forward_args *a, const char *what)
{
    int V = p->g->cfg.vocab;
    for (int t = 0; t < a->T; t++) {
        if (row_is_embed(a, t)) continue;
        if (!a->ids || a->ids[t] < 0 || a->ids[t] >= V)
            return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: %s row %d has token id %d, outside vocab %d",
                           p->g->cfg.name, what, t, a->ids ? a->ids[t] : -1, V);
    }
    return LW_OK;
}

/* ---- the plan over p's buffers ---------------------------------------------- */

/* The executor's view of p for the call in progress (p->ad, p->prefix):
 * every layer's own activations, the keys from the call's P prefix rows on
 * (the rows right before position 0), the gradients, the LoRA's copy. */
static lw_cuda_plan_bufs plan_bufs(lw_gpu_receiver_pass *p)
{
    lw_gpu_model *g = p->g;
    size_t skip = (size_t)(p->n_prefix - p->prefix) * kv_dim(&g->cfg) * F32;
    lw_cuda_plan_bufs b = {.g = g, .plan = &g->plan, .layers = p->slots, .n_layer_sets = g->cfg.n_layers,
                           .key_cache = p->dev.key_cache + skip, .value_cache = p->dev.value_cache + skip,
                           .cache_rows = p->n_prefix + p->rows, .n_prefix = p->prefix, .pos = p->dev.pos,
                           .ids = p->dev.ids, .pos_host = p->pos_stage, .ids_host = p->ids_stage,
                           .seg = p->dev.seg, .seg_host = p->seg_stage, .xb = p->dev.xb,
                           .dkeys = p->prefix ? p->dkeys : NULL, .dvalues = p->prefix ? p->dvalues : NULL};
    b.top.at[LW_SLOT_X] = p->dev.x, b.top.at[LW_SLOT_XF] = p->dev.xf;
    b.top.at[LW_SLOT_RSTD_FINAL] = p->dev.rstd_final, b.top.at[LW_SLOT_LOGITS] = p->dev.logits;
    memcpy(b.grad, p->dev.grad, sizeof b.grad);
    const lw_receiver_adapters *ad = p->ad;
    if (lora_on(ad))
        b.lora = (lw_cuda_plan_lora){.lora = ad->lora, .params = p->lora.params, .grads = p->lora.grads,
                                     .u = p->lora.u, .du = p->lora.du,
                                     /* the kernels' dropout: p while training, else 0, as lora.c's dropout_on */
                                     .dropout = ad->training ? ad->lora->cfg.dropout : 0.f,
                                     .seed = ad->dropout_seed};
    return b;
}

/* a's T rows at positions pos0.. (written at rows pos0.. of every buffer,
 * so rows before pos0 keep an earlier pass's), then the logits of rows
 * [from, from + rows) of these T into dev.logits, or from its row at on
 * (and to host, if given). */
static lw_status pass_forward(lw_gpu_receiver_pass *p, const lw_forward_args *a, int pos0, int from, int rows,
                              float *host, int at)
{
    lw_cuda_plan_bufs b = plan_bufs(p);
    b.top.at[LW_SLOT_LOGITS] += (size_t)at * p->g->cfg.vocab * F32;
    lw_cuda_plan_call c = {.a = a, .T = a->T, .pos0 = pos0, .row = pos0, .capture_layer = -1, .logits_from = from,
                           .logits_rows = rows, .logits_host = host};
    bool complete;
    return lw_plan_cuda_forward(&b, &c, &complete);
}

static lw_status sync(lw_gpu_receiver_pass *p, const char *step, int T)
{
    char what[160];
    snprintf(what, sizeof what, "after the GPU receiver pass's %s of %s (%d rows)", step, p->g->cfg.name, T);
    return lw_cuda_sync(p->g->cu, what);
}

/* ---- loss ------------------------------------------------------------------ */

/* The plan's label-scoring record on the L loss rows of dev.logits from
 * row r (their targets at the same rows of dev.targets); with dlogits
 * (not 0): its gradient, dloss x d loss / d logits, into dlogits' rows
 * from r (cleared first). */
static lw_status cross_entropy_at(lw_gpu_receiver_pass *p, int r, lw_cuda_ptr dlogits, int L, float dloss)
{
    lw_cuda_plan_bufs b = plan_bufs(p);
    return lw_plan_cuda_head_logsoftmax(&b, r, p->dev.targets, L, p->dev.loss, dlogits, dloss);
}

static lw_status cross_entropy(lw_gpu_receiver_pass *p, lw_cuda_ptr dlogits, int L, float dloss)
{
    return cross_entropy_at(p, 0, dlogits, L, dloss);
}

lw_status lw_gpu_receiver_pass_loss(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label,
                                    float *loss)
{
    lw_status st = check_adapters(p, ad);
    if (!st) st = check_rows(p, T, label);
    lw_forward_args a = {.ids = p->ids, .embeds = p->embeds, .is_embed = p->is_embed, .T = T, .capture_layer = -1};
    if (!st) st = check_ids(p, &a, "prompt");
    if (st) return st;
    int L = p->layout->verb_len[label], V = p->g->cfg.vocab;
    for (int i = 0; i < L; i++) {
        p->targets[i] = p->layout->verb[label][i];
        if (p->targets[i] < 0 || p->targets[i] >= V)
            return lw_fail(LW_ERR_INVALID, "GPU receiver pass: label %d's verbalizer token %d is id %d, outside "
                           "vocab %d", label, i, p->targets[i], V);
    }
    p->loss_T = 0;
    p->pack.loss_done = false;   /* both overwrite the activations a pack's backward reads */
    st = begin_call(p, ad);
    if (!st) st = pass_forward(p, &a, 0, T - L, L, NULL, 0);
    if (!st) st = lw_cuda_upload(p->g->cu, p->dev.targets, p->targets, (size_t)L * sizeof(int), "verbalizer ids");
    if (!st) st = cross_entropy(p, 0, L, 0.f);
    if (!st) st = sync(p, "forward and loss", T);
    if (!st) st = lw_cuda_download(p->g->cu, p->loss_rows, p->dev.loss, (size_t)L * F32, "the loss");
    if (st) return st;
    double total = 0;
    for (int i = 0; i < L; i++) total += p->loss_rows[i];
    *loss = (float)(total / L);
    p->loss_T = T;
    p->loss_label = label;
    p->loss_ad = ad;
    p->loss_prefix = p->prefix;
    return LW_OK;
}

/* ---- backward ----------------------------------------------------------------- */

/* After the backward's sync: dA, dB into the host LoRA's grads and d prefix
 * K/V into ad's, both added, as model_backward.c adds. */
static lw_status adapter_grads_home(lw_gpu_receiver_pass *p, bool shared_prefix)
{
    const lw_receiver_adapters *ad = p->ad;
    lw_cuda *cu = p->g->cu;
    lw_status st = LW_OK;
    if (lora_on(ad)) {
        float *gh = p->lora.grads_host, *grads = ad->lora->p.grads;
        st = lw_cuda_download(cu, gh, p->lora.grads, p->lora.n * F32, "LoRA gradients");
        for (size_t i = 0; !st && i < p->lora.n; i++) grads[i] += gh[i];
    }
    const lw_model_config *c = &p->g->cfg;
    int P = shared_prefix ? p->prefix : 0, kvd = c->n_kv_heads * c->head_dim;
    size_t np = (size_t)P * kvd;
    float *to[2] = {ad ? ad->d_prefix_k : NULL, ad ? ad->d_prefix_v : NULL};
    for (int l = 0; !st && P > 0 && l < c->n_layers; l++)
        for (int kv = 0; !st && kv < 2; kv++) {
            if (!to[kv]) continue;
            lw_cuda_ptr from = kv ? p->dvalues[l] : p->dkeys[l];   /* the prefix's rows come first */
            st = lw_cuda_download(cu, p->prefix_stage, from, np * F32, kv ? "d prefix values" : "d prefix keys");
            float *dst = to[kv] + l * np;
            for (size_t i = 0; !st && i < np; i++) dst[i] += p->prefix_stage[i];
        }
    return st;
}

lw_status lw_gpu_receiver_pass_backward(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label,
                                        float scale, bool *correct)
{
    lw_status st = check_adapters(p, ad);
    if (!st) st = check_rows(p, T, label);
    if (st) return st;
    if (p->loss_T != T || p->loss_label != label || p->loss_ad != ad ||
        p->loss_prefix != (ad ? ad->prefix_len : 0))
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass: backward of %d rows for label %d needs their loss first, "
                       "with the same adapters (the last loss: %d rows, label %d; scores overwrite it)", T, label,
                       p->loss_T, p->loss_label);
    if (ad && ad->lora && ad->lora->merged)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass %s: the LoRA is merged into the weights (unmerge to "
                       "train it)", p->g->cfg.name);
    lw_gpu_model *g = p->g;
    int L = p->layout->verb_len[label], V = g->cfg.vocab, H = g->cfg.hidden;
    p->ad = ad;
    p->prefix = p->loss_prefix;
    if (correct) {
        /* the row before the verbalizer: the first of the loss rows */
        st = lw_cuda_download(g->cu, p->logits, p->dev.logits, (size_t)V * F32, "logits");
        if (st) return st;
        *correct = lw_receiver_first_token_right(p->layout, p->logits, label);
    }
    if (lora_on(ad)) st = lw_cuda_memset0(g->cu, p->lora.grads, p->lora.n * F32, "LoRA gradients");
    /* cross_entropy_backward's dloss / count, count = the L scored rows */
    if (!st) st = cross_entropy(p, p->dev.dlogits, L, scale / (float)L);
    lw_cuda_plan_bufs b = plan_bufs(p);
    if (!st) st = lw_plan_cuda_backward(&b, T, T - L, L, p->dev.dlogits, NULL);
    if (!st) st = sync(p, "backward", T);
    if (!st)
        st = lw_cuda_download(g->cu, p->d_embeds, p->dev.grad[LW_GRAD_DX], (size_t)T * H * F32,
                              "input-row gradients");
    if (!st) st = adapter_grads_home(p, true);
    return st;
}

/* ---- scores ---------------------------------------------------------------- */

lw_status lw_gpu_receiver_pass_scores(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds,
                                      double *scores)
{
    const lw_receiver_layout *Ly = p->layout;
    lw_status st = check_adapters(p, ad);
    if (st) return st;
    if (P < 1 || P + Ly->max_verb - 1 > p->max_T)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pass: a %d-row prompt and %d verbalizer rows exceed %d", P,
                       Ly->max_verb - 1, p->max_T);
    lw_forward_args a = {.ids = p->ids, .embeds = embeds ? p->embeds : NULL, .is_embed = embeds ? p->is_embed : NULL,
                         .T = P, .capture_layer = -1};
    if ((st = check_ids(p, &a, "prompt"))) return st;
    for (int k = 0; k < Ly->n_labels; k++) {
        lw_forward_args b = {.ids = Ly->verb[k], .T = Ly->verb_len[k]};
        if ((st = check_ids(p, &b, "verbalizer"))) return st;
    }
    p->loss_T = 0;
    p->pack.loss_done = false;   /* both overwrite the activations a pack's backward reads */
    st = begin_call(p, ad);
    /* Scored on the device: the prompt's last row's logits stay in row 0 of
     * dev.logits; each label's tokens but its last continue the prompt at
     * rows P.. (the next label overwrites them) with their logits in rows
     * 1..; the cross-entropy kernel without a gradient gives each row's
     * log-sum-exp minus the verbalizer token's logit, -log p. Only those L
     * floats a label come back, not L rows of V logits. */
    if (!st) st = pass_forward(p, &a, 0, P - 1, 1, NULL, 0);
    for (int k = 0; !st && k < Ly->n_labels; k++) {
        const int *v = Ly->verb[k];
        int L = Ly->verb_len[k];
        if (L >= 2) {
            lw_forward_args b = {.ids = v, .T = L - 1, .capture_layer = -1};
            st = pass_forward(p, &b, P, 0, L - 1, NULL, 1);
        }
        if (!st) st = lw_cuda_upload(p->g->cu, p->dev.targets, v, (size_t)L * sizeof(int), "verbalizer ids");
        if (!st) st = cross_entropy(p, 0, L, 0.f);
        if (!st) st = lw_cuda_download(p->g->cu, p->loss_rows, p->dev.loss, (size_t)L * F32, "label log-probs");
        scores[k] = 0;
        for (int i = 0; !st && i < L; i++) scores[k] -= p->loss_rows[i];
    }
    return st;
}

/* ---- packed steps ------------------------------------------------------------ */

bool lw_gpu_receiver_pass_can_pack(const lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    (void)p;
    if (!ad) return true;
    return !ad->lora || (!ad->lora->merged && !(ad->lora->cfg.dropout > 0.0f));
}

int lw_gpu_receiver_pass_pack_room(const lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad)
{
    if (!lw_gpu_receiver_pass_can_pack(p, ad)) return 0;
    long room = (1L << 20) / p->max_T;   /* positions restart per segment: only the rows' count bounds it */
    return room > 4096 ? 4096 : (int)room;
}

/* Device buffers (and the executor's staging) for rows rows and loss_cap
 * loss rows; on failure p keeps what it had. */
static lw_status grow_rows(lw_gpu_receiver_pass *p, int rows, int loss_cap)
{
    lw_cuda_ptr old = p->arena;
    int old_rows = p->rows, old_loss = p->loss_cap;
    p->rows = rows, p->loss_cap = loss_cap;
    lw_status st = device_arena(p);
    if (!st && !stage_arrays(p))
        st = lw_fail(LW_ERR_NOMEM, "GPU receiver pass %s: out of memory for %d rows of staging", p->g->cfg.name, rows);
    if (st) {
        if (p->arena != old) lw_cuda_free(p->g->cu, p->arena);
        p->rows = old_rows, p->loss_cap = old_loss;
        p->arena = old;
        lw_gpu_arena a = {.base = old};
        (void)lay_out(p);   /* the layout p had: it was made before */
        place(p, &a);       /* back over what p had; its staging is still the old (stage_arrays) */
        return lw_fail_wrap(st, "GPU receiver pass %s: room for a pack of %d rows", p->g->cfg.name, rows);
    }
    if (old) lw_cuda_free(p->g->cu, old);
    p->loss_T = 0;   /* the activations are gone */
    p->pack.loss_done = false;
    return LW_OK;
}

/* Floats of one example's deep prefix keys (or values): [n_layers, P, kv dim]. */
static size_t pack_np(const lw_gpu_receiver_pass *p)
{
    const lw_model_config *c = &p->g->cfg;
    return (size_t)c->n_layers * (size_t)p->pack.P * kv_dim(c);
}

/* Room for n examples' own deep prefixes of P (none when 0), host and device, and the gather buffers. */
static lw_status pack_prefix_room(lw_gpu_receiver_pass *p, int n, int P)
{
    lw_gpu_pass_pack *k = &p->pack;
    k->P = P;
    if (P == 0) return LW_OK;
    size_t np = pack_np(p), want = (size_t)n * np, gather = ((size_t)P + p->max_T) * kv_dim(&p->g->cfg);
    if (want > k->prefix_n) {
        float **host[] = {&k->prefix_k, &k->prefix_v, &k->d_prefix_k, &k->d_prefix_v};
        for (int i = 0; i < 4; i++) {
            free(*host[i]);
            *host[i] = calloc(want, F32);
        }
        k->prefix_n = want;
        if (!k->prefix_k || !k->prefix_v || !k->d_prefix_k || !k->d_prefix_v) {
            for (int i = 0; i < 4; i++) free(*host[i]), *host[i] = NULL;
            k->prefix_n = 0;
            return lw_fail(LW_ERR_NOMEM, "GPU receiver pack: out of memory for %d examples' deep prefixes", n);
        }
    }
    if (k->dev_arena && k->dev_floats >= want && k->gather[0] && k->gather[1] - k->gather[0] >= gather * F32)
        return LW_OK;
    if (k->dev_arena) lw_cuda_free(p->g->cu, k->dev_arena);
    k->dev_arena = 0;
    lw_gpu_arena a = {0};
    for (int m = 0; m < 2; m++) {   /* measure, then lay out */
        for (int i = 0; i < 4; i++) k->dev_prefix[i] = lw_gpu_take(&a, want * F32);
        for (int i = 0; i < 4; i++) k->gather[i] = lw_gpu_take(&a, gather * F32);
        if (m == 1) break;
        lw_cuda_ptr base = 0;
        char what[128];
        snprintf(what, sizeof what, "deep prefixes of %d packed examples (P %d)", n, P);
        lw_status st = lw_gpu_check_fits(p->g->cu, a.used, what, p->g->cfg.name);
        if (!st) st = lw_cuda_alloc(p->g->cu, a.used, what, &base);
        if (st) {
            memset(k->dev_prefix, 0, sizeof k->dev_prefix), memset(k->gather, 0, sizeof k->gather);
            return st;
        }
        k->dev_arena = base;
        a = (lw_gpu_arena){.base = base};
    }
    k->dev_floats = want;
    return LW_OK;
}

/* Host room for cap examples in p->pack. */
static lw_status pack_room_host(lw_gpu_receiver_pass *p, int cap)
{
    lw_gpu_pass_pack *k = &p->pack;
    if (k->cap >= cap) return LW_OK;
    pack_release(p);
    size_t R = (size_t)cap * p->max_T, H = (size_t)p->g->cfg.hidden, n = (size_t)cap;
    k->ids = calloc(R, sizeof *k->ids);
    k->is_embed = calloc(R, sizeof *k->is_embed);
    k->embeds = calloc(R * H, F32);
    k->d_embeds = calloc(R * H, F32);
    k->seg_len = calloc(n, sizeof(int));
    k->label = calloc(n, sizeof(int));
    k->row0 = calloc(n, sizeof(int));
    k->loss0 = calloc(n, sizeof(int));
    k->run_from = calloc(n, sizeof(int));
    k->run_rows = calloc(n, sizeof(int));
    k->targets = calloc(n * (size_t)p->layout->max_verb, sizeof(int));
    if (!k->ids || !k->is_embed || !k->embeds || !k->d_embeds || !k->seg_len || !k->label || !k->row0 ||
        !k->loss0 || !k->run_from || !k->run_rows || !k->targets) {
        pack_release(p);
        return lw_fail(LW_ERR_NOMEM, "GPU receiver pack: out of memory for %d examples of %d rows", cap, p->max_T);
    }
    k->cap = cap;
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_pack_begin(lw_gpu_receiver_pass *p, const lw_receiver_adapters *ad, int n)
{
    int room = lw_gpu_receiver_pass_pack_room(p, ad);
    if (!lw_gpu_receiver_pass_can_pack(p, ad))
        return lw_fail(LW_ERR_INVALID, "GPU receiver pack %s: these adapters cannot pack (LoRA dropout or a "
                       "merged LoRA)", p->g->cfg.name);
    if (n < 1 || n > room)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pack %s: %d examples (room for %d of %d rows)", p->g->cfg.name,
                       n, room, p->max_T);
    lw_status st = check_adapters(p, ad);
    if (!st) st = pack_room_host(p, n);
    int rows = n * p->max_T, loss_cap = n * p->layout->max_verb;
    if (!st && (rows > p->rows || loss_cap > p->loss_cap))
        st = grow_rows(p, rows > p->rows ? rows : p->rows, loss_cap > p->loss_cap ? loss_cap : p->loss_cap);
    if (!st) st = lw_gpu_receiver_pass_attach(p, ad);   /* the prefix's rows before every layer's keys */
    if (!st) st = pack_prefix_room(p, n, ad ? ad->prefix_len : 0);
    if (st) return st;
    lw_gpu_pass_pack *k = &p->pack;
    k->n = k->rows = k->n_loss = 0;
    k->ad = ad;
    k->loss_done = false;
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_pack_add(lw_gpu_receiver_pass *p, int T, int label)
{
    lw_gpu_pass_pack *k = &p->pack;
    if (k->n >= k->cap) return lw_fail(LW_ERR_INVALID, "GPU receiver pack: full (begin it for more examples)");
    lw_status st = check_rows(p, T, label);
    lw_forward_args a = {.ids = p->ids, .embeds = p->embeds, .is_embed = p->is_embed, .T = T};
    if (!st) st = check_ids(p, &a, "packed example");
    if (st) return st;
    const lw_receiver_layout *Ly = p->layout;
    int L = Ly->verb_len[label], V = p->g->cfg.vocab, i = k->n;
    size_t H = (size_t)p->g->cfg.hidden, r = (size_t)k->rows;
    for (int j = 0; j < L; j++)
        if (Ly->verb[label][j] < 0 || Ly->verb[label][j] >= V)
            return lw_fail(LW_ERR_INVALID, "GPU receiver pack: label %d's verbalizer token %d is id %d, outside "
                           "vocab %d", label, j, Ly->verb[label][j], V);
    memcpy(k->ids + r, p->ids, (size_t)T * sizeof(int));
    memcpy(k->is_embed + r, p->is_embed, (size_t)T * sizeof(bool));
    memcpy(k->embeds + r * H, p->embeds, (size_t)T * H * F32);
    k->seg_len[i] = T;
    k->label[i] = label;
    k->row0[i] = k->rows;
    k->loss0[i] = k->n_loss;
    k->run_from[i] = k->rows + T - L;
    k->run_rows[i] = L;
    memcpy(k->targets + k->n_loss, Ly->verb[label], (size_t)L * sizeof(int));
    if (k->P > 0) {   /* the example's prefix, as the generator left it in the caller's adapters */
        size_t np = pack_np(p);
        memcpy(k->prefix_k + i * np, k->ad->prefix_k, np * F32);
        memcpy(k->prefix_v + i * np, k->ad->prefix_v, np * F32);
    }
    k->rows += T;
    k->n_loss += L;
    k->n++;
    k->loss_done = false;
    return LW_OK;
}

/* The executor's view for the pack: plan_bufs with the segments and, with a prefix, each one's own. */
static lw_cuda_plan_bufs pack_bufs(lw_gpu_receiver_pass *p)
{
    const lw_gpu_pass_pack *k = &p->pack;
    lw_cuda_plan_bufs b = plan_bufs(p);
    b.n_segments = k->n;
    b.segment_len = k->seg_len;
    if (k->P > 0) {
        b.seg_prefix_k = k->dev_prefix[0], b.seg_prefix_v = k->dev_prefix[1];
        b.seg_dprefix_k = k->dev_prefix[2], b.seg_dprefix_v = k->dev_prefix[3];
        b.seg_keys = k->gather[0], b.seg_values = k->gather[1];
        b.seg_dkeys = k->gather[2], b.seg_dvalues = k->gather[3];
    }
    return b;
}

static lw_cuda_plan_rows pack_runs(lw_gpu_receiver_pass *p)
{
    const lw_gpu_pass_pack *k = &p->pack;
    return (lw_cuda_plan_rows){.n_runs = k->n, .from = k->run_from, .rows = k->run_rows, .scratch = p->dev.gather};
}

lw_status lw_gpu_receiver_pass_pack_loss(lw_gpu_receiver_pass *p, float *losses)
{
    lw_gpu_pass_pack *k = &p->pack;
    if (k->n == 0) return lw_fail(LW_ERR_INVALID, "GPU receiver pack: nothing added");
    p->loss_T = 0;
    k->loss_done = false;
    lw_status st = begin_call(p, k->ad);
    lw_forward_args a = {.ids = k->ids, .embeds = k->embeds, .is_embed = k->is_embed, .T = k->rows,
                         .capture_layer = -1, .n_segments = k->n, .segment_len = k->seg_len};
    for (int j = 0; !st && j < 2 && k->P > 0; j++)   /* every example's own prefix */
        st = lw_cuda_upload(p->g->cu, k->dev_prefix[j], j ? k->prefix_v : k->prefix_k,
                            (size_t)k->n * pack_np(p) * F32, "per-example deep prefixes");
    lw_cuda_plan_bufs b = pack_bufs(p);
    lw_cuda_plan_rows runs = pack_runs(p);
    lw_cuda_plan_call c = {.a = &a, .T = k->rows, .capture_layer = -1, .runs = &runs};
    bool complete;
    if (!st) st = lw_plan_cuda_forward(&b, &c, &complete);
    if (!st)
        st = lw_cuda_upload(p->g->cu, p->dev.targets, k->targets, (size_t)k->n_loss * sizeof(int), "verbalizer ids");
    if (!st) st = cross_entropy(p, 0, k->n_loss, 0.f);
    if (!st) st = sync(p, "packed forward and loss", k->rows);
    if (!st) st = lw_cuda_download(p->g->cu, p->loss_rows, p->dev.loss, (size_t)k->n_loss * F32, "the losses");
    if (st) return lw_fail_wrap(st, "GPU receiver pack of %d examples", k->n);
    for (int i = 0; i < k->n; i++) {
        int L = k->run_rows[i];
        double total = 0;
        for (int j = 0; j < L; j++) total += p->loss_rows[k->loss0[i] + j];
        losses[i] = (float)(total / L);
    }
    k->loss_done = true;
    return LW_OK;
}

lw_status lw_gpu_receiver_pass_pack_backward(lw_gpu_receiver_pass *p, float scale, bool *correct)
{
    lw_gpu_pass_pack *k = &p->pack;
    if (k->n == 0 || !k->loss_done)
        return lw_fail(LW_ERR_INVALID, "GPU receiver pack: backward of %d examples needs their loss first (a loss "
                       "or scores since overwrote it)", k->n);
    lw_gpu_model *g = p->g;
    size_t V = (size_t)g->cfg.vocab, H = (size_t)g->cfg.hidden;
    lw_status st = LW_OK;
    for (int i = 0; !st && correct && i < k->n; i++) {
        st = lw_cuda_download(g->cu, p->logits, p->dev.logits + (size_t)k->loss0[i] * V * F32, V * F32, "logits");
        if (!st) correct[i] = lw_receiver_first_token_right(p->layout, p->logits, k->label[i]);
    }
    if (!st && lora_on(k->ad)) st = lw_cuda_memset0(g->cu, p->lora.grads, p->lora.n * F32, "LoRA gradients");
    /* each example's mean over its own L rows, as lw_receiver_pass_pack_backward's cross_entropy_backward */
    for (int i = 0; !st && i < k->n; i++)
        st = cross_entropy_at(p, k->loss0[i], p->dev.dlogits, k->run_rows[i], scale / (float)k->run_rows[i]);
    lw_cuda_plan_bufs b = pack_bufs(p);
    lw_cuda_plan_rows runs = pack_runs(p);
    if (!st) st = lw_plan_cuda_backward_rows(&b, k->rows, &runs, p->dev.dlogits, NULL);
    if (!st) st = sync(p, "packed backward", k->rows);
    if (!st)
        st = lw_cuda_download(g->cu, k->d_embeds, p->dev.grad[LW_GRAD_DX], (size_t)k->rows * H * F32,
                              "input-row gradients");
    if (!st) st = adapter_grads_home(p, false);
    for (int j = 0; !st && j < 2 && k->P > 0; j++)   /* each example's own prefix gradient */
        st = lw_cuda_download(g->cu, j ? k->d_prefix_v : k->d_prefix_k, k->dev_prefix[2 + j],
                              (size_t)k->n * pack_np(p) * F32, "per-example prefix gradients");
    return st ? lw_fail_wrap(st, "GPU receiver pack of %d examples", k->n) : LW_OK;
}

const float *lw_gpu_receiver_pass_pack_d_embeds(const lw_gpu_receiver_pass *p, int i)
{
    const lw_gpu_pass_pack *k = &p->pack;
    return k->d_embeds + (size_t)(k->row0[i] + p->layout->n_before) * p->g->cfg.hidden;
}

void lw_gpu_receiver_pass_pack_d_prefix(const lw_gpu_receiver_pass *p, int i, const float **dk, const float **dv)
{
    const lw_gpu_pass_pack *k = &p->pack;
    size_t np = k->P > 0 ? pack_np(p) : 0;
    *dk = k->P > 0 ? k->d_prefix_k + i * np : NULL;
    *dv = k->P > 0 ? k->d_prefix_v + i * np : NULL;
}
