/* The receiver's training pass on the GPU; see gpu_receiver_pass.h.
 *
 * The forward here differs from gpu_forward.c's in what it keeps, not in
 * arithmetic: each layer writes its own buffers, so backward finds every
 * activation. Where gpu_forward.c adds a residual in place inside the next
 * norm (residual_rmsnorm_forward), this one first zeroes the next layer's
 * residual rows and adds the previous residual and the branch into them, so
 * x_in and x_mid of every layer survive; (0 + x) + b is x + b exactly, the
 * CPU's sum. The backward below is model_backward.c's, step for step, with
 * each "zero(buf); op accumulates into buf" kept as a memset then a kernel
 * that adds, and each zeroed product as a cuBLAS product that overwrites. */
#include "gpu_receiver_pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "label_scoring.h"
#include "lora.h"

static const size_t F32 = sizeof(float);

/* Row r of a [rows, width] float buffer on the device. */
static lw_cuda_ptr row(lw_cuda_ptr base, int r, int width) { return base + (size_t)r * (size_t)width * F32; }
/* n rows before base: where a deep prefix's keys precede the text's. */
static lw_cuda_ptr rows_before(lw_cuda_ptr base, int n, int width) { return base - (size_t)n * (size_t)width * F32; }

static lw_status zero(lw_gpu_receiver_pass *p, lw_cuda_ptr buf, int rows, int width)
{
    return lw_cuda_memset0(p->g->cu, buf, (size_t)rows * (size_t)width * F32, "training pass gradient buffer");
}

/* ---- allocation ---------------------------------------------------------- */

/* Every device buffer of p in a (measuring when a->base is 0). */
static void place(lw_gpu_receiver_pass *p, lw_gpu_arena *a)
{
    const lw_model_config *c = &p->g->cfg;
    size_t T = (size_t)p->max_T, H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->ffn, V = (size_t)c->vocab;
    size_t Lv = (size_t)p->layout->max_verb, Hq = (size_t)c->n_heads, Hkv = (size_t)c->n_kv_heads;
    size_t P = (size_t)p->n_prefix;
    for (int l = 0; l < c->n_layers; l++) {
        lw_gpu_layer_acts *A = &p->acts[l];
        A->x_in = lw_gpu_take(a, T * H * F32);
        A->xn = lw_gpu_take(a, T * H * F32);
        A->x_mid = lw_gpu_take(a, T * H * F32);
        A->fn = lw_gpu_take(a, T * H * F32);
        A->q_pre = c->qk_norm ? lw_gpu_take(a, T * qd * F32) : 0;
        A->q = lw_gpu_take(a, T * qd * F32);
        A->ao = lw_gpu_take(a, T * qd * F32);
        A->k_pre = c->qk_norm ? lw_gpu_take(a, T * kvd * F32) : 0;
        A->k_keys = lw_gpu_take(a, (P + T) * kvd * F32);
        A->v_keys = lw_gpu_take(a, (P + T) * kvd * F32);
        A->k = row(A->k_keys, (int)P, (int)kvd);
        A->v = row(A->v_keys, (int)P, (int)kvd);
        A->dk_keys = P ? lw_gpu_take(a, (P + T) * kvd * F32) : 0;
        A->dv_keys = P ? lw_gpu_take(a, (P + T) * kvd * F32) : 0;
        A->proj = lw_gpu_take(a, T * H * F32);
        A->down = lw_gpu_take(a, T * H * F32);
        A->gate = lw_gpu_take(a, T * F * F32);
        A->up = lw_gpu_take(a, T * F * F32);
        A->hid = lw_gpu_take(a, T * F * F32);
        A->rstd_attn = lw_gpu_take(a, T * F32);
        A->rstd_ffn = lw_gpu_take(a, T * F32);
        A->rstd_post_attn = lw_gpu_take(a, T * F32);
        A->rstd_post_ffn = lw_gpu_take(a, T * F32);
        A->rstd_q = lw_gpu_take(a, T * Hq * F32);
        A->rstd_k = lw_gpu_take(a, T * Hkv * F32);
        A->lse = lw_gpu_take(a, T * Hq * F32);
    }
    lw_gpu_pass_buffers *d = &p->dev;
    lw_cuda_ptr *hidden_wide[] = {&d->proj_n, &d->down_n, &d->x_final, &d->xf, &d->dx, &d->dxf, &d->dbr, &d->dln};
    for (size_t i = 0; i < sizeof hidden_wide / sizeof hidden_wide[0]; i++)
        *hidden_wide[i] = lw_gpu_take(a, T * H * F32);
    d->rstd_final = lw_gpu_take(a, T * F32);
    d->dao = lw_gpu_take(a, T * qd * F32);
    d->dq = lw_gpu_take(a, T * qd * F32);
    d->dq_pre = lw_gpu_take(a, T * qd * F32);
    d->dk = lw_gpu_take(a, T * kvd * F32);
    d->dk_pre = lw_gpu_take(a, T * kvd * F32);
    d->dv = lw_gpu_take(a, T * kvd * F32);
    d->dgate = lw_gpu_take(a, T * F * F32);
    d->dup = lw_gpu_take(a, T * F * F32);
    d->dhid = lw_gpu_take(a, T * F * F32);
    d->logits = lw_gpu_take(a, Lv * V * F32);
    d->dlogits = lw_gpu_take(a, Lv * V * F32);
    d->loss = lw_gpu_take(a, Lv * F32);
    d->targets = lw_gpu_take(a, Lv * sizeof(int));
    d->ids = lw_gpu_take(a, T * sizeof(int));
    d->pos = lw_gpu_take(a, T * sizeof(int));
    for (int l = 0; !P && l < c->n_layers; l++) p->acts[l].dk_keys = d->dk, p->acts[l].dv_keys = d->dv;
}

static bool host_arrays(lw_gpu_receiver_pass *p)
{
    const lw_model_config *c = &p->g->cfg;
    size_t T = (size_t)p->max_T, H = (size_t)c->hidden, V = (size_t)c->vocab, Lv = (size_t)p->layout->max_verb;
    p->acts = calloc((size_t)c->n_layers, sizeof *p->acts);
    p->embeds = calloc(T * H, F32);
    p->d_embeds = calloc(T * H, F32);
    p->logits = calloc(Lv * V, F32);
    p->last = calloc(V, F32);
    p->loss_rows = calloc(Lv, F32);
    p->ids = calloc(T, sizeof *p->ids);
    p->targets = calloc(T, sizeof *p->targets);
    p->ids_stage = calloc(T, sizeof *p->ids_stage);
    p->is_embed = calloc(T, sizeof *p->is_embed);
    return p->acts && p->embeds && p->d_embeds && p->logits && p->last && p->loss_rows && p->ids && p->targets &&
           p->ids_stage && p->is_embed;
}

/* A new device allocation for p's current sizes, zeroed and laid out, with
 * the positions 0..max_T-1; p->arena is set only when all of it worked (on
 * failure the caller re-places p over what it had). */
static lw_status device_arena(lw_gpu_receiver_pass *p)
{
    lw_gpu_model *g = p->g;
    lw_gpu_arena a = {0};
    place(p, &a);
    size_t bytes = a.used;
    char what[128];
    snprintf(what, sizeof what, "training pass (activations of %d rows, %d prefix rows)", p->max_T, p->n_prefix);
    lw_cuda_ptr base = 0;
    lw_status st = lw_gpu_check_fits(g->cu, bytes, what, g->cfg.name);
    if (!st) st = lw_cuda_alloc(g->cu, bytes, what, &base);
    if (!st) st = lw_cuda_memset0(g->cu, base, bytes, what);
    if (!st) {
        a = (lw_gpu_arena){.base = base};
        place(p, &a);
        for (int t = 0; t < p->max_T; t++) p->ids_stage[t] = t;
        st = lw_cuda_upload(g->cu, p->dev.pos, p->ids_stage, (size_t)p->max_T * sizeof(int), "positions");
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
    p->max_T = max_T;
    const lw_model_config *c = &g->cfg;
    /* The backward's dx = dy @ w products are fp32 only (lw_cublas_matmul_dx). */
    if (g->bf16)
        return lw_fail(LW_ERR_UNSUPPORTED, "%s: the GPU training pass needs %s uploaded with fp32 weights "
                       "(bf16 weights are for inference: generate, bench)", who, c->name);
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
    free(p->acts);
    free(p->embeds);
    free(p->d_embeds);
    free(p->logits);
    free(p->last);
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

static void place_lora(lw_gpu_pass_lora *L, lw_gpu_arena *a, int max_T)
{
    L->params = lw_gpu_take(a, L->n * F32);
    L->grads = lw_gpu_take(a, L->n * F32);
    L->u = lw_gpu_take(a, (size_t)max_T * L->rank * F32);
    L->du = lw_gpu_take(a, (size_t)max_T * L->rank * F32);
}

/* Parameters, gradients and scratch for lo, unless p has them for its sizes. */
static lw_status lora_room(lw_gpu_receiver_pass *p, const lw_lora *lo)
{
    lw_gpu_pass_lora *L = &p->lora;
    if (L->arena && L->n == lo->p.n_params && L->rank == lo->cfg.rank) return LW_OK;
    lora_release(p);
    p->loss_T = 0;   /* a backward would find another LoRA's scratch */
    lw_gpu_pass_lora want = {.rank = lo->cfg.rank, .n = lo->p.n_params};
    lw_gpu_arena a = {0};
    place_lora(&want, &a, p->max_T);
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
    place_lora(&want, &a, p->max_T);
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
        place(p, &a);   /* back over what p had */
        return lw_fail_wrap(st, "GPU receiver pass %s: room for a deep prefix of %d", c->name, P);
    }
    if (old) lw_cuda_free(p->g->cu, old);
    free(p->prefix_stage);
    p->prefix_stage = stage;
    p->loss_T = 0;   /* the activations are gone */
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
    for (int l = 0; !st && P > 0 && l < c->n_layers; l++) {
        const lw_gpu_layer_acts *A = &p->acts[l];
        st = lw_cuda_upload(cu, rows_before(A->k, P, kvd), ad->prefix_k + l * np, np * F32, "deep prefix keys");
        if (!st)
            st = lw_cuda_upload(cu, rows_before(A->v, P, kvd), ad->prefix_v + l * np, np * F32, "deep prefix values");
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

static const lw_lora_slot *lora_slot(const lw_gpu_receiver_pass *p, int l, lw_lora_target t)
{
    if (!lora_on(p->ad)) return NULL;
    const lw_lora_slot *s = lw_lora_slot_at(p->ad->lora, l, t);
    return s->on ? s : NULL;
}

/* The kernels' dropout: p while training, else 0 (every column kept, unscaled), as lora.c's dropout_on. */
static float lora_dropout(const lw_receiver_adapters *ad) { return ad->training ? ad->lora->cfg.dropout : 0.f; }

/* y[T, out] += s B A dropout(x[T, in]) of layer l's target t (if adapted);
 * pos[T]: the rows' positions, which draw the dropout mask. */
static lw_status lora_forward(lw_gpu_receiver_pass *p, int l, lw_lora_target t, lw_cuda_ptr x, lw_cuda_ptr y,
                              int T, lw_cuda_ptr pos)
{
    const lw_lora_slot *s = lora_slot(p, l, t);
    if (!s) return LW_OK;
    const lw_lora *lo = p->ad->lora;
    lw_cuda_ptr A = p->lora.params + s->a * F32, B = p->lora.params + s->b * F32;
    int rank = lo->cfg.rank, target = (int)t;
    float scale = lo->scale, dropout = lora_dropout(p->ad);
    unsigned long long seed = p->ad->dropout_seed;
    return lwk_lora_forward(lw_gpu_launcher(p->g), &p->g->k, y, x, A, B, pos, T, rank, target, scale, dropout, seed, l);
}

/* Its backward over rows from position 0: dx[T, in] += d/dx, and dA, dB
 * added into the device gradients (lora_backward_weights reads the u, du
 * that lora_backward_input leaves). */
static lw_status lora_backward(lw_gpu_receiver_pass *p, int l, lw_lora_target t, lw_cuda_ptr x, lw_cuda_ptr dy,
                               lw_cuda_ptr dx, int T)
{
    const lw_lora_slot *s = lora_slot(p, l, t);
    if (!s) return LW_OK;
    const lw_lora *lo = p->ad->lora;
    lw_gpu_pass_lora *L = &p->lora;
    lw_cuda_ptr A = L->params + s->a * F32, B = L->params + s->b * F32;
    lw_cuda_ptr dA = L->grads + s->a * F32, dB = L->grads + s->b * F32, pos = p->dev.pos;
    int rank = lo->cfg.rank, target = (int)t;
    float scale = lo->scale, dropout = lora_dropout(p->ad);
    unsigned long long seed = p->ad->dropout_seed;
    lw_launch launch = lw_gpu_launcher(p->g);
    lw_status st = lwk_lora_backward_input(launch, &p->g->k, dx, L->u, L->du, x, dy, A, B, pos, T, rank, target, scale,
                                           dropout, seed, l);
    if (!st)
        st = lwk_lora_backward_weights(launch, &p->g->k, dA, dB, L->u, L->du, x, dy, pos, T, rank, target, dropout,
                                       seed, l, s->in, s->out);
    return st;
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

/* ---- forward, keeping every activation ------------------------------------- */

/* x_out = x_prev + branch (rows [0, T)), then y = norm(x_out) with gains w. */
static lw_status residual_norm(lw_gpu_receiver_pass *p, lw_cuda_ptr x_out, lw_cuda_ptr x_prev, lw_cuda_ptr branch,
                               lw_cuda_ptr y, lw_cuda_ptr rstd, lw_cuda_ptr w, int T)
{
    lw_status st = zero(p, x_out, T, p->g->cfg.hidden);
    if (!st) st = lw_gpu_add_norm(p->g, x_out, y, 0, x_prev, w, T);
    if (!st) st = lw_gpu_add_norm(p->g, x_out, y, rstd, branch, w, T);
    return st;
}

/* Block l over rows [pos0, pos0 + T) (their layer input already in
 * x_in for l = 0; *pending, the previous block's last branch, otherwise).
 * LoRA adds to each adapted projection right after it, as forward.c; a deep
 * prefix's p->prefix keys precede the text's. */
static lw_status block_forward(lw_gpu_receiver_pass *p, int l, int T, int pos0, lw_cuda_ptr *pending)
{
    lw_gpu_model *g = p->g;
    const lw_model_config *c = &g->cfg;
    const lw_gpu_layer *L = &g->layers[l];
    lw_gpu_layer_acts *A = &p->acts[l];
    int H = c->hidden, Hq = c->n_heads, Hkv = c->n_kv_heads, qd = Hq * c->head_dim, kvd = Hkv * c->head_dim;
    int F = c->ffn, window = lw_layer_is_local(c, l) ? c->sliding_window : 0;
    lw_cuda_ptr pos = p->dev.pos + (size_t)pos0 * sizeof(int);
    lw_cuda_ptr x = row(A->x_in, pos0, H), xn = row(A->xn, pos0, H), rstd = row(A->rstd_attn, pos0, 1);
    lw_cuda_ptr q = row(A->q, pos0, qd), k = row(A->k, pos0, kvd), ao = row(A->ao, pos0, qd);
    lw_cuda_ptr proj = row(A->proj, pos0, H), x_mid = row(A->x_mid, pos0, H), fn = row(A->fn, pos0, H);
    lw_cuda_ptr gate = row(A->gate, pos0, F), up = row(A->up, pos0, F), hid = row(A->hid, pos0, F);
    lw_cuda_ptr down = row(A->down, pos0, H);

    lw_status st = l == 0 ? lw_gpu_add_norm(g, x, xn, rstd, 0, L->attn_norm, T)
                          : residual_norm(p, x, row(p->acts[l - 1].x_mid, pos0, H), *pending, xn, rstd,
                                          L->attn_norm, T);
    lw_cuda_ptr q_out = c->qk_norm ? row(A->q_pre, pos0, qd) : q, k_out = c->qk_norm ? row(A->k_pre, pos0, kvd) : k;
    if (!st) st = lw_gpu_matmul(g, q_out, xn, L->wq, T, H, qd, l, "wq");
    if (!st) st = lw_gpu_matmul(g, k_out, xn, L->wk, T, H, kvd, l, "wk");
    if (!st) st = lw_gpu_matmul(g, row(A->v, pos0, kvd), xn, L->wv, T, H, kvd, l, "wv");
    if (!st) st = lora_forward(p, l, LW_LORA_Q, xn, q_out, T, pos);
    if (!st) st = lora_forward(p, l, LW_LORA_K, xn, k_out, T, pos);
    if (!st) st = lora_forward(p, l, LW_LORA_V, xn, row(A->v, pos0, kvd), T, pos);
    if (!st && c->qk_norm) st = lw_gpu_head_norm(g, q, row(A->rstd_q, pos0, Hq), q_out, L->q_norm, T * Hq);
    if (!st && c->qk_norm) st = lw_gpu_head_norm(g, k, row(A->rstd_k, pos0, Hkv), k_out, L->k_norm, T * Hkv);
    if (!st) st = lw_gpu_rope(g, q, pos, T, Hq, l, 1.f);
    if (!st) st = lw_gpu_rope(g, k, pos, T, Hkv, l, 1.f);
    /* lse [Hq, T] is laid out for this call's T: kept for a pass from 0 only */
    int P = p->prefix;
    if (!st)
        st = lw_gpu_attention_sink(g, ao, pos0 == 0 ? A->lse : 0, q, rows_before(A->k, P, kvd),
                                   rows_before(A->v, P, kvd), T, pos0, window, P);
    if (!st) st = lw_gpu_matmul(g, proj, ao, L->wo, T, qd, H, l, "wo");
    if (!st) st = lora_forward(p, l, LW_LORA_O, ao, proj, T, pos);
    lw_cuda_ptr branch = proj;
    if (!st && c->post_norms) {
        st = lw_gpu_add_norm(g, proj, p->dev.proj_n, row(A->rstd_post_attn, pos0, 1), 0, L->post_attn_norm, T);
        branch = p->dev.proj_n;
    }
    if (!st) st = residual_norm(p, x_mid, x, branch, fn, row(A->rstd_ffn, pos0, 1), L->ffn_norm, T);
    if (!st) st = lw_gpu_matmul(g, gate, fn, L->w_gate, T, H, F, l, "w_gate");
    if (!st) st = lw_gpu_matmul(g, up, fn, L->w_up, T, H, F, l, "w_up");
    if (!st) st = lora_forward(p, l, LW_LORA_GATE, fn, gate, T, pos);
    if (!st) st = lora_forward(p, l, LW_LORA_UP, fn, up, T, pos);
    if (!st) st = lw_gpu_glu(g, hid, gate, up, T * F);
    if (!st) st = lw_gpu_matmul(g, down, hid, L->w_down, T, F, H, l, "w_down");
    if (!st) st = lora_forward(p, l, LW_LORA_DOWN, hid, down, T, pos);
    branch = down;
    if (!st && c->post_norms) {
        st = lw_gpu_add_norm(g, down, p->dev.down_n, row(A->rstd_post_ffn, pos0, 1), 0, L->post_ffn_norm, T);
        branch = p->dev.down_n;
    }
    *pending = branch;
    return st;
}

/* a's T rows at positions pos0.. through every block and the final norm
 * (xf rows pos0..); rows before pos0 must hold an earlier pass's. */
static lw_status pass_forward(lw_gpu_receiver_pass *p, const lw_forward_args *a, int pos0)
{
    lw_gpu_model *g = p->g;
    const lw_model_config *c = &g->cfg;
    int H = c->hidden, T = a->T, n = c->n_layers;
    lw_status st = lw_gpu_embed(g, row(p->acts[0].x_in, pos0, H), p->dev.ids, p->ids_stage, a, 0, T);
    lw_cuda_ptr pending = 0;
    for (int l = 0; !st && l < n; l++) st = block_forward(p, l, T, pos0, &pending);
    if (!st)
        st = residual_norm(p, row(p->dev.x_final, pos0, H), row(p->acts[n - 1].x_mid, pos0, H), pending,
                           row(p->dev.xf, pos0, H), row(p->dev.rstd_final, pos0, 1), g->output_norm, T);
    return st;
}

/* logits[rows, vocab] (device) of the final-normed rows [r0, r0 + rows). */
static lw_status head_logits(lw_gpu_receiver_pass *p, int r0, int rows)
{
    const lw_model_config *c = &p->g->cfg;
    return lw_gpu_matmul(p->g, p->dev.logits, row(p->dev.xf, r0, c->hidden), p->g->output, rows, c->hidden,
                         c->vocab, c->n_layers, "output");
}

static lw_status sync(lw_gpu_receiver_pass *p, const char *step, int T)
{
    char what[160];
    snprintf(what, sizeof what, "after the GPU receiver pass's %s of %s (%d rows)", step, p->g->cfg.name, T);
    return lw_cuda_sync(p->g->cu, what);
}

/* ---- loss ------------------------------------------------------------------ */

static lw_status cross_entropy(lw_gpu_receiver_pass *p, lw_cuda_ptr dlogits, int L, float dloss)
{
    return lwk_cross_entropy_forward_backward(lw_gpu_launcher(p->g), &p->g->k, dlogits, p->dev.loss, p->dev.logits,
                                              p->dev.targets, L, dloss);
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
    st = begin_call(p, ad);
    if (!st) st = pass_forward(p, &a, 0);
    if (!st) st = head_logits(p, T - L, L);
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

static lw_status norm_backward(lw_gpu_receiver_pass *p, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr x,
                              lw_cuda_ptr w, lw_cuda_ptr rstd, int T)
{
    return lwk_rmsnorm_backward(lw_gpu_launcher(p->g), &p->g->k, dx, 0, dy, x, w, rstd, T);   /* dw 0: gains frozen */
}

static lw_status head_norm_backward(lw_gpu_receiver_pass *p, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr x,
                                   lw_cuda_ptr w, lw_cuda_ptr rstd, int rows)
{
    return lwk_qk_rmsnorm_backward(lw_gpu_launcher(p->g), &p->g->k, dx, 0, dy, x, w, rstd, rows);   /* dw 0: gains frozen */
}

/* dx[T, in] (accumulate: +=) dy[T, out] @ w[out, in]. */
static lw_status matmul_dx(lw_gpu_receiver_pass *p, lw_cuda_ptr dx, lw_cuda_ptr dy, lw_cuda_ptr w, int T, int in,
                           int out, bool accumulate, int layer, const char *tensor)
{
    lw_gpu_model *g = p->g;
    char what[160];
    snprintf(what, sizeof what, "%s layer %d %s backward", g->cfg.name, layer, tensor);
    lw_status st = lw_cublas_matmul_dx(g->blas, dx, dy, w, T, in, out, accumulate, what);
    if (st || !g->sync_each_launch) return st;
    return lw_cuda_sync(g->cu, what);
}

/* dev.dx: d(block output) in, d(x_mid) out. */
static lw_status ffn_backward(lw_gpu_receiver_pass *p, int l, int T)
{
    lw_gpu_model *g = p->g;
    const lw_model_config *c = &g->cfg;
    const lw_gpu_layer *L = &g->layers[l];
    lw_gpu_layer_acts *A = &p->acts[l];
    lw_gpu_pass_buffers *d = &p->dev;
    int H = c->hidden, F = c->ffn;
    lw_status st = LW_OK;
    lw_cuda_ptr dbranch = d->dx;   /* the residual passes the gradient to the branch unchanged */
    if (c->post_norms) {
        st = zero(p, d->dbr, T, H);
        if (!st) st = norm_backward(p, d->dbr, d->dx, A->down, L->post_ffn_norm, A->rstd_post_ffn, T);
        dbranch = d->dbr;
    }
    if (!st) st = matmul_dx(p, d->dhid, dbranch, L->w_down, T, F, H, false, l, "w_down");
    if (!st) st = lora_backward(p, l, LW_LORA_DOWN, A->hid, dbranch, d->dhid, T);
    if (!st) st = zero(p, d->dgate, T, F);
    if (!st) st = zero(p, d->dup, T, F);
    if (!st) st = lwk_glu_backward(lw_gpu_launcher(g), &g->k, d->dgate, d->dup, d->dhid, A->gate, A->up, T * F);
    if (!st) st = matmul_dx(p, d->dln, d->dgate, L->w_gate, T, H, F, false, l, "w_gate");
    if (!st) st = matmul_dx(p, d->dln, d->dup, L->w_up, T, H, F, true, l, "w_up");
    if (!st) st = lora_backward(p, l, LW_LORA_GATE, A->fn, d->dgate, d->dln, T);
    if (!st) st = lora_backward(p, l, LW_LORA_UP, A->fn, d->dup, d->dln, T);
    /* dbranch (possibly dx itself) is consumed: now add the norm's path to the residual's */
    if (!st) st = norm_backward(p, d->dx, d->dln, A->x_mid, L->ffn_norm, A->rstd_ffn, T);
    return st;
}

/* attention_backward over the layer's T rows from position 0 after the
 * call's P prefix keys, then RoPE's backward (the rotation undone) on dq
 * and the text's dk. The key gradients land in dk_keys / dv_keys: the
 * prefix's in rows [0, P), where they wait for the end of backward; *dk,
 * *dv get the text's rows. */
static lw_status attention_backward(lw_gpu_receiver_pass *p, int l, int T, lw_cuda_ptr *dk, lw_cuda_ptr *dv)
{
    lw_gpu_model *g = p->g;
    const lw_model_config *c = &g->cfg;
    lw_gpu_layer_acts *A = &p->acts[l];
    lw_gpu_pass_buffers *d = &p->dev;
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, P = p->prefix;
    int Tk = P + T, q_offset = P, n_sink = P, window = lw_layer_is_local(c, l) ? c->sliding_window : 0;
    lw_cuda_ptr keys = rows_before(A->k, P, kvd), values = rows_before(A->v, P, kvd);
    lw_status st = zero(p, d->dq, T, qd);
    if (!st) st = zero(p, A->dk_keys, Tk, kvd);
    if (!st) st = zero(p, A->dv_keys, Tk, kvd);
    if (!st)
        st = lwk_attention_backward(lw_gpu_launcher(g), &g->k, d->dq, A->dk_keys, A->dv_keys, d->dao, A->ao, A->lse,
                                    A->q, keys, values, T, Tk, q_offset, window, n_sink, c->n_heads);
    *dk = row(A->dk_keys, P, kvd);
    *dv = row(A->dv_keys, P, kvd);
    if (!st) st = lw_gpu_rope(g, d->dq, d->pos, T, c->n_heads, l, -1.f);
    if (!st) st = lw_gpu_rope(g, *dk, d->pos, T, c->n_kv_heads, l, -1.f);
    return st;
}

/* dev.dx: d(x_mid) in, d(x_in) out. */
static lw_status attn_backward(lw_gpu_receiver_pass *p, int l, int T)
{
    const lw_model_config *c = &p->g->cfg;
    const lw_gpu_layer *L = &p->g->layers[l];
    const lw_gpu_layer_acts *A = &p->acts[l];
    lw_gpu_pass_buffers *d = &p->dev;
    int H = c->hidden, Hq = c->n_heads, Hkv = c->n_kv_heads, qd = Hq * c->head_dim, kvd = Hkv * c->head_dim;
    lw_status st = LW_OK;
    lw_cuda_ptr dbranch = d->dx;
    if (c->post_norms) {
        st = zero(p, d->dbr, T, H);
        if (!st) st = norm_backward(p, d->dbr, d->dx, A->proj, L->post_attn_norm, A->rstd_post_attn, T);
        dbranch = d->dbr;
    }
    if (!st) st = matmul_dx(p, d->dao, dbranch, L->wo, T, qd, H, false, l, "wo");
    if (!st) st = lora_backward(p, l, LW_LORA_O, A->ao, dbranch, d->dao, T);
    lw_cuda_ptr dq = d->dq, dk = 0, dv = 0;
    if (!st) st = attention_backward(p, l, T, &dk, &dv);
    if (!st && c->qk_norm) {
        st = zero(p, d->dq_pre, T, qd);
        if (!st) st = zero(p, d->dk_pre, T, kvd);
        if (!st) st = head_norm_backward(p, d->dq_pre, d->dq, A->q_pre, L->q_norm, A->rstd_q, T * Hq);
        if (!st) st = head_norm_backward(p, d->dk_pre, dk, A->k_pre, L->k_norm, A->rstd_k, T * Hkv);
        dq = d->dq_pre;
        dk = d->dk_pre;
    }
    if (!st) st = matmul_dx(p, d->dln, dq, L->wq, T, H, qd, false, l, "wq");
    if (!st) st = matmul_dx(p, d->dln, dk, L->wk, T, H, kvd, true, l, "wk");
    if (!st) st = matmul_dx(p, d->dln, dv, L->wv, T, H, kvd, true, l, "wv");
    if (!st) st = lora_backward(p, l, LW_LORA_Q, A->xn, dq, d->dln, T);
    if (!st) st = lora_backward(p, l, LW_LORA_K, A->xn, dk, d->dln, T);
    if (!st) st = lora_backward(p, l, LW_LORA_V, A->xn, dv, d->dln, T);
    if (!st) st = norm_backward(p, d->dx, d->dln, A->x_in, L->attn_norm, A->rstd_attn, T);
    return st;
}

/* dev.dx = d(final residual) from the L loss rows' dlogits (rows T - L..). */
static lw_status head_backward(lw_gpu_receiver_pass *p, int T, int L)
{
    lw_gpu_model *g = p->g;
    const lw_model_config *c = &g->cfg;
    lw_gpu_pass_buffers *d = &p->dev;
    int H = c->hidden;
    lw_status st = zero(p, d->dxf, T, H);
    if (!st) st = matmul_dx(p, row(d->dxf, T - L, H), d->dlogits, g->output, L, H, c->vocab, false, c->n_layers,
                            "output");
    if (!st) st = zero(p, d->dx, T, H);
    if (!st) st = norm_backward(p, d->dx, d->dxf, d->x_final, g->output_norm, d->rstd_final, T);
    return st;
}

/* After the backward's sync: dA, dB into the host LoRA's grads and d prefix
 * K/V into ad's, both added, as model_backward.c adds. */
static lw_status adapter_grads_home(lw_gpu_receiver_pass *p)
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
    int P = p->prefix, kvd = c->n_kv_heads * c->head_dim;
    size_t np = (size_t)P * kvd;
    float *to[2] = {ad ? ad->d_prefix_k : NULL, ad ? ad->d_prefix_v : NULL};
    for (int l = 0; !st && P > 0 && l < c->n_layers; l++)
        for (int kv = 0; !st && kv < 2; kv++) {
            if (!to[kv]) continue;
            lw_cuda_ptr from = kv ? p->acts[l].dv_keys : p->acts[l].dk_keys;
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
    if (!st) st = zero(p, p->dev.dlogits, L, V);
    if (!st) st = cross_entropy(p, p->dev.dlogits, L, scale / (float)L);
    if (!st) st = head_backward(p, T, L);
    for (int l = g->cfg.n_layers - 1; !st && l >= 0; l--) {
        st = ffn_backward(p, l, T);
        if (!st) st = attn_backward(p, l, T);
    }
    if (!st) st = sync(p, "backward", T);
    if (!st) st = lw_cuda_download(g->cu, p->d_embeds, p->dev.dx, (size_t)T * H * F32, "input-row gradients");
    if (!st) st = adapter_grads_home(p);
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
    lw_gpu_model *g = p->g;
    int V = g->cfg.vocab;
    p->loss_T = 0;
    st = begin_call(p, ad);
    if (!st) st = pass_forward(p, &a, 0);
    if (!st) st = head_logits(p, P - 1, 1);
    if (!st) st = sync(p, "prompt", P);
    if (!st) st = lw_cuda_download(g->cu, p->last, p->dev.logits, (size_t)V * F32, "prompt logits");
    /* each label's tokens but its last continue the prompt at rows P.., which the next label overwrites */
    for (int k = 0; !st && k < Ly->n_labels; k++) {
        const int *v = Ly->verb[k];
        int L = Ly->verb_len[k];
        scores[k] = lw_log_prob(p->last, V, v[0]);
        if (L < 2) continue;
        lw_forward_args b = {.ids = v, .T = L - 1, .capture_layer = -1};
        st = pass_forward(p, &b, P);
        if (!st) st = head_logits(p, P, L - 1);
        if (!st) st = sync(p, "verbalizer", L - 1);
        if (!st) st = lw_cuda_download(g->cu, p->logits, p->dev.logits, (size_t)(L - 1) * V * F32, "logits");
        for (int i = 1; !st && i < L; i++) scores[k] += lw_log_prob(p->logits + (size_t)(i - 1) * V, V, v[i]);
    }
    return st;
}
