/* Packed training steps of the receiver pass (receiver_pass.h): a step's
 * examples, each without the shared head, as segments of one forward after
 * the head's cached keys, one product with the output head over every loss
 * row, and one backward. With LoRA or a deep prefix the head's rows depend
 * on what is trained, so nothing is cached: each segment is a whole example
 * from position 0, LoRA runs over all the pack's rows at once, and each
 * segment reads its own example's prefix (copied here as it is added) and
 * gets its own prefix gradient. */
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "frozen_matmul.h"
#include "ops.h"
#include "receiver_pass.h"

struct lw_receiver_pack {
    int cap, n;                 /* examples: room for, added */
    int C;                      /* cached head rows: the layout's n_before, or 0 with adapters */
    int P;                      /* deep prefix length, or 0 */
    const lw_receiver_adapters *src;  /* the caller's adapters (a prefix is read from them at add), or NULL */
    lw_receiver_adapters view;  /* theirs, with the pack's per-example prefixes */
    const lw_receiver_adapters *ad;   /* &view, or NULL: no adapters */
    int max_rows, rows;         /* packed rows after the head: room for, used */
    lw_state *state;            /* saved activations; P + C + max_rows positions */
    lw_backward_scratch *bwd;
    bool head_cached;
    int *ids;                   /* [max_rows] */
    bool *is_embed;             /* [max_rows] */
    float *embeds, *final, *d_embeds;   /* [max_rows, hidden] */
    int *seg_len, *label, *row0, *loss0;  /* [cap]: rows, label, first row, first loss row */
    int n_loss;
    int *loss_rows, *targets;   /* [cap * max_verb] */
    float *xl;                  /* [cap * max_verb, hidden] the loss rows' final states */
    float *logits, *probs, *dlogits;   /* [cap * max_verb, vocab] */
    float *prefix_k, *prefix_v, *d_prefix_k, *d_prefix_v;   /* [cap, n_layers, P, kvd] */
};

static void pack_free(lw_receiver_pack *k)
{
    if (!k) return;
    lw_state_free(k->state);
    lw_backward_scratch_free(k->bwd);
    void *all[] = {k->ids,  k->is_embed,  k->embeds,  k->final,   k->d_embeds, k->seg_len, k->label, k->row0,
                   k->loss0, k->loss_rows, k->targets, k->xl, k->logits, k->probs, k->dlogits,
                   k->prefix_k, k->prefix_v, k->d_prefix_k, k->d_prefix_v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    free(k);
}

/* Floats of one example's deep prefix keys (or values). */
static size_t prefix_floats(const lw_model_config *c, int P)
{
    return (size_t)c->n_layers * (size_t)P * (size_t)c->n_kv_heads * (size_t)c->head_dim;
}

/* State and scratch hold the C head rows, cap examples' rows and a prefix of P before them. */
static lw_status pack_alloc(const lw_receiver_pass *p, int cap, int C, int P, lw_receiver_pack **out)
{
    const lw_model_config *c = &p->m->cfg;
    *out = NULL;
    lw_receiver_pack *k = calloc(1, sizeof *k);
    if (!k) return lw_fail(LW_ERR_NOMEM, "receiver pack: out of memory");
    k->cap = cap;
    k->C = C;
    k->P = P;
    k->max_rows = cap * (p->max_T - k->C);
    size_t R = (size_t)k->max_rows, H = (size_t)c->hidden, V = (size_t)c->vocab;
    size_t NL = (size_t)cap * p->layout->max_verb, n = (size_t)cap;
    size_t NP = n * prefix_floats(c, P);
    lw_status st = lw_state_alloc(p->m, P + k->C + k->max_rows, true, &k->state);
    if (!st) st = lw_backward_scratch_alloc(p->m, P + k->C + k->max_rows, &k->bwd);
    k->ids = calloc(R, sizeof *k->ids);
    k->is_embed = calloc(R, sizeof *k->is_embed);
    k->embeds = calloc(R * H, sizeof(float));
    k->final = calloc(R * H, sizeof(float));
    k->d_embeds = calloc(R * H, sizeof(float));
    k->seg_len = calloc(n, sizeof(int));
    k->label = calloc(n, sizeof(int));
    k->row0 = calloc(n, sizeof(int));
    k->loss0 = calloc(n, sizeof(int));
    k->loss_rows = calloc(NL, sizeof(int));
    k->targets = calloc(NL, sizeof(int));
    k->xl = calloc(NL * H, sizeof(float));
    k->logits = calloc(NL * V, sizeof(float));
    k->probs = calloc(NL * V, sizeof(float));
    k->dlogits = calloc(NL * V, sizeof(float));
    float **prefix[] = {&k->prefix_k, &k->prefix_v, &k->d_prefix_k, &k->d_prefix_v};
    bool prefix_ok = true;
    for (int i = 0; NP && i < 4; i++) prefix_ok = (*prefix[i] = calloc(NP, sizeof(float))) && prefix_ok;
    if (!st && (!prefix_ok || !k->ids || !k->is_embed || !k->embeds || !k->final || !k->d_embeds || !k->seg_len ||
                !k->label || !k->row0 || !k->loss0 || !k->loss_rows || !k->targets || !k->xl || !k->logits ||
                !k->probs || !k->dlogits))
        st = lw_fail(LW_ERR_NOMEM, "receiver pack: out of memory for %d examples (%zu rows, %zu loss rows)", cap, R,
                     NL);
    if (st) {
        pack_free(k);
        return st;
    }
    *out = k;
    return LW_OK;
}

/* LoRA's dropout masks are drawn per example (their seed), which one pass
 * over several examples cannot give (a deep prefix's dropout is drawn by its
 * generator, outside the pass: it packs); a merged LoRA trains nothing. */
bool lw_receiver_pass_can_pack(const lw_receiver_pass *p, const lw_receiver_adapters *ad)
{
    if (p->no_head_cache || p->kd) return false;   /* the KD term is one example's (kd_loss.h) */
    if (!lw_adapters_active(ad)) return p->layout->n_before > 0;
    return !ad->lora || (!ad->lora->merged && !(ad->lora->cfg.dropout > 0.0f));
}

/* Rows of every example the pack keeps as a cached head. */
static int cached_head(const lw_receiver_pass *p, const lw_receiver_adapters *ad)
{
    return lw_adapters_active(ad) ? 0 : p->layout->n_before;
}

int lw_receiver_pass_pack_room(const lw_receiver_pass *p, const lw_receiver_adapters *ad)
{
    int C = cached_head(p, ad), P = ad ? ad->prefix_len : 0, per = p->max_T - C, ctx = p->m->cfg.context;
    if (per < 1) return 0;
    long room = ((ctx > 0 ? ctx : 1 << 20) - C - P) / per;
    return room < 0 ? 0 : room > 4096 ? 4096 : (int)room;
}

lw_status lw_receiver_pass_pack_begin(lw_receiver_pass *p, const lw_receiver_adapters *ad, int n)
{
    int room = lw_receiver_pass_pack_room(p, ad), C = cached_head(p, ad), P = ad ? ad->prefix_len : 0;
    if (!lw_receiver_pass_can_pack(p, ad))
        return lw_fail(LW_ERR_INVALID, "receiver pack: these adapters cannot pack (LoRA dropout or merged) or the "
                       "head cache is off");
    if (n < 1 || n > room)
        return lw_fail(LW_ERR_INVALID, "receiver pack: %d examples (room for %d in %s's context of %d)", n, room,
                       p->m->cfg.name, p->m->cfg.context);
    if (!p->pack || p->pack->cap < n || p->pack->C != C || p->pack->P != P) {
        lw_receiver_pack *k = NULL;
        lw_status st = pack_alloc(p, n, C, P, &k);
        if (st) return st;
        pack_free(p->pack);
        p->pack = k;
    }
    lw_receiver_pack *k = p->pack;
    k->src = k->ad = NULL;
    if (lw_adapters_active(ad)) {
        lw_status st = lw_adapters_reserve(ad, p->m, k->max_rows);
        if (st) return lw_fail_wrap(st, "receiver pack: %d examples", n);
        k->view = *ad;
        if (P > 0) {
            k->view.prefix_k = k->prefix_k;
            k->view.prefix_v = k->prefix_v;
            k->view.d_prefix_k = k->d_prefix_k;
            k->view.d_prefix_v = k->d_prefix_v;
            k->view.prefix_segments = n;
            size_t np = (size_t)n * prefix_floats(&p->m->cfg, P);
            memset(k->d_prefix_k, 0, np * sizeof(float));
            memset(k->d_prefix_v, 0, np * sizeof(float));
        }
        k->src = ad;
        k->ad = &k->view;
    }
    k->n = k->rows = k->n_loss = 0;
    return LW_OK;
}

lw_status lw_receiver_pass_pack_add(lw_receiver_pass *p, int T, int label)
{
    lw_receiver_pack *k = p->pack;
    const lw_receiver_layout *Ly = p->layout;
    if (!k || k->n == k->cap) return lw_fail(LW_ERR_INVALID, "receiver pack: full (begin it for more examples)");
    if (label < 0 || label >= Ly->n_labels) return lw_fail(LW_ERR_INVALID, "receiver pack: label %d", label);
    int C = k->C, L = Ly->verb_len[label], len = T - C;
    if (T > p->max_T || len < L) return lw_fail(LW_ERR_INVALID, "receiver pack: %d rows (head %d, %d to score)", T, C, L);
    for (int t = 0; t < C; t++)
        if (p->is_embed[t] || p->ids[t] != Ly->before[t])
            return lw_fail(LW_ERR_INVALID, "receiver pack: row %d is not the layout's head", t);
    size_t H = (size_t)p->m->cfg.hidden, r = (size_t)k->rows;
    memcpy(k->ids + r, p->ids + C, (size_t)len * sizeof(int));
    memcpy(k->is_embed + r, p->is_embed + C, (size_t)len * sizeof(bool));
    memcpy(k->embeds + r * H, p->embeds + (size_t)C * H, (size_t)len * H * sizeof(float));
    int i = k->n++;
    if (k->P > 0) {   /* the example's prefix, as the generator left it in the caller's adapters */
        size_t np = prefix_floats(&p->m->cfg, k->P);
        memcpy(k->prefix_k + i * np, k->src->prefix_k, np * sizeof(float));
        memcpy(k->prefix_v + i * np, k->src->prefix_v, np * sizeof(float));
    }
    k->seg_len[i] = len;
    k->label[i] = label;
    k->row0[i] = k->rows;
    k->loss0[i] = k->n_loss;
    for (int j = 0; j < L; j++) {
        k->loss_rows[k->n_loss] = k->rows + len - L + j;
        k->targets[k->n_loss++] = Ly->verb[label][j];
    }
    k->rows += len;
    return LW_OK;
}

lw_status lw_receiver_pass_pack_loss(lw_receiver_pass *p, float *losses)
{
    lw_receiver_pack *k = p->pack;
    if (!k || k->n == 0) return lw_fail(LW_ERR_INVALID, "receiver pack: nothing added");
    const lw_model *m = p->m;
    int n = m->cfg.n_layers, H = m->cfg.hidden, V = m->cfg.vocab;
    lw_status st;
    if (k->C == 0) lw_state_reset(k->state);
    else {
        if (!k->head_cached && (st = lw_receiver_pass_run_head(p, k->state))) return st;
        k->head_cached = true;
        lw_state_rewind(k->state, k->C);
    }
    lw_forward_args a = {.ids = k->ids, .embeds = k->embeds, .is_embed = k->is_embed, .T = k->rows, .pos0 = k->C,
                         .capture_layer = n, .hidden_out = k->final, .n_segments = k->n, .segment_len = k->seg_len,
                         .adapters = k->ad};
    if ((st = lw_forward(m, k->state, &a))) return st;
    for (int j = 0; j < k->n_loss; j++)
        memcpy(k->xl + (size_t)j * H, k->final + (size_t)k->loss_rows[j] * H, (size_t)H * sizeof(float));
    if ((st = lw_weight_forward(k->logits, k->xl, lw_model_weight(m, -1, LW_W_OUTPUT), NULL, k->n_loss, H, V)))
        return st;
    for (int i = 0; i < k->n; i++) {
        size_t o = (size_t)k->loss0[i];
        losses[i] = cross_entropy_forward(k->probs + o * V, k->logits + o * V, k->targets + o,
                                          p->layout->verb_len[k->label[i]], V);
    }
    return LW_OK;
}

lw_status lw_receiver_pass_pack_backward(lw_receiver_pass *p, float scale, bool *correct)
{
    lw_receiver_pack *k = p->pack;
    if (!k || k->n == 0) return lw_fail(LW_ERR_INVALID, "receiver pack: nothing added");
    int V = p->m->cfg.vocab;
    memset(k->dlogits, 0, (size_t)k->n_loss * V * sizeof(float));
    for (int i = 0; i < k->n; i++) {
        size_t o = (size_t)k->loss0[i] * V;
        int L = p->layout->verb_len[k->label[i]];
        if (correct) correct[i] = lw_receiver_first_token_right(p->layout, k->logits + o, k->label[i]);
        cross_entropy_backward(k->dlogits + o, k->probs + o, k->targets + k->loss0[i], L, V, scale);
    }
    return lw_model_backward_adapted(p->m, k->state, k->bwd, k->ad, k->loss_rows, k->n_loss, k->dlogits,
                                     k->d_embeds);
}

void lw_receiver_pass_pack_d_prefix(const lw_receiver_pass *p, int i, const float **dk, const float **dv)
{
    const lw_receiver_pack *k = p->pack;
    size_t np = prefix_floats(&p->m->cfg, k->P);
    *dk = k->P > 0 ? k->d_prefix_k + i * np : NULL;
    *dv = k->P > 0 ? k->d_prefix_v + i * np : NULL;
}

const float *lw_receiver_pass_pack_d_embeds(const lw_receiver_pass *p, int i)
{
    const lw_receiver_pack *k = p->pack;   /* the segment's rows begin with the head unless it is cached */
    return k->d_embeds + (size_t)(k->row0[i] + p->layout->n_before - k->C) * p->m->cfg.hidden;
}

void lw_receiver_pack_free(lw_receiver_pack *k) { pack_free(k); }
