/* One example through bridge and receiver: loss, gradient, label scores. */
#include "train_example.h"

#include "label_scoring.h"
#include "message_spread.h"
#include "objectives.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_trainer_create(lw_trainer *t, const lw_model *receiver, const lw_receiver_layout *layout,
                            lw_bridge *bridge, float diversity_weight)
{
    memset(t, 0, sizeof *t);
    t->receiver = receiver;
    t->layout = layout;
    t->bridge = bridge;
    t->diversity_weight = diversity_weight;
    const lw_model_config *c = &receiver->cfg;
    if (bridge->receiver_hidden != c->hidden || bridge->cfg.soft_tokens != layout->M)
        return lw_fail(LW_ERR_INVALID, "trainer: bridge gives %d x %d soft tokens, receiver %s wants %d x %d",
                       bridge->cfg.soft_tokens, bridge->receiver_hidden, c->name, layout->M, c->hidden);
    t->max_T = lw_receiver_prefix_len(layout) + layout->max_verb;
    size_t MH = (size_t)layout->M * (size_t)c->hidden;
    lw_status st = lw_receiver_pass_alloc(&t->rx, receiver, layout, t->max_T, "trainer");
    if (!st) st = lw_bridge_acts_create(bridge, LW_SENDER_MAX_TOKENS, &t->acts);
    t->acts_T = LW_SENDER_MAX_TOKENS;
    if (!st && (!(t->soft = calloc(MH, sizeof(float))) || !(t->dsoft = calloc(MH, sizeof(float)))))
        st = lw_fail(LW_ERR_NOMEM, "trainer: out of memory for %d soft tokens", layout->M);
    if (st) lw_trainer_free(t);
    return st;
}

void lw_trainer_free(lw_trainer *t)
{
    free(t->mixed);
    free(t->dmixed);
    lw_receiver_pass_free(&t->rx);
    lw_bridge_acts_free(t->acts);
    free(t->soft);
    free(t->dsoft);
    lw_spread_term_free(&t->spread);
    memset(t, 0, sizeof *t);
}

lw_status lw_trainer_set_spread(lw_trainer *t, float weight)
{
    lw_spread_term_free(&t->spread);
    return lw_spread_term_init(&t->spread, weight, t->layout->M, t->receiver->cfg.hidden);
}

/* Either order with lw_trainer_use_gpu: whichever comes second gives the
 * GPU pass its room for the adapters (so a GPU that cannot hold them fails
 * here, not at the first example); the pass uploads their parameters itself
 * before each example. */
lw_status lw_trainer_attach_adapters(lw_trainer *t, lw_adapter_set *set)
{
    if (!set->ad.scratch || set->ad.scratch->max_tokens < t->max_T)
        return lw_fail(LW_ERR_INVALID, "trainer: adapters sized for %d rows, the receiver prompt needs %d",
                       set->ad.scratch ? set->ad.scratch->max_tokens : 0, t->max_T);
    lw_status st = lw_receiver_pass_grow_state(&t->rx, lw_adapter_set_extra_positions(set));
    if (st) return lw_fail_wrap(st, "trainer: receiver state with a deep prefix");
    if (t->gpu && (st = lw_gpu_receiver_pass_attach(t->gpu, &set->ad)))
        return lw_fail_wrap(st, "trainer: adapters on the GPU");
    t->adapters = set;
    return LW_OK;
}

lw_status lw_trainer_use_gpu(lw_trainer *t, lw_gpu_receiver_pass *p)
{
    if (p->max_T < t->max_T || p->layout != t->layout)
        return lw_fail(LW_ERR_INVALID, "trainer: the GPU pass holds %d rows of another layout; %d needed", p->max_T,
                       t->max_T);
    lw_status st;
    if (t->adapters && (st = lw_gpu_receiver_pass_attach(p, &t->adapters->ad)))
        return lw_fail_wrap(st, "trainer: adapters on the GPU");
    t->gpu = p;
    return LW_OK;
}

static const lw_receiver_adapters *adapters_of(const lw_trainer *t)
{
    return t->adapters ? &t->adapters->ad : NULL;
}

/* The receiver's rows and pass: the CPU's, or the GPU's twin (same calls). */
static int *rows_ids(lw_trainer *t) { return t->gpu ? t->gpu->ids : t->rx.ids; }
static bool *rows_is_embed(lw_trainer *t) { return t->gpu ? t->gpu->is_embed : t->rx.is_embed; }
static float *rows_embeds(lw_trainer *t) { return t->gpu ? t->gpu->embeds : t->rx.embeds; }
static const float *rows_d_embeds(lw_trainer *t) { return t->gpu ? t->gpu->d_embeds : t->rx.d_embeds; }

static lw_status pass_loss(lw_trainer *t, int T, int label, float *loss)
{
    if (t->gpu) return lw_gpu_receiver_pass_loss(t->gpu, adapters_of(t), T, label, loss);
    return lw_receiver_pass_loss(&t->rx, adapters_of(t), T, label, loss);
}

static lw_status pass_backward(lw_trainer *t, int T, int label, float scale, bool *correct)
{
    if (t->gpu) return lw_gpu_receiver_pass_backward(t->gpu, adapters_of(t), T, label, scale, correct);
    return lw_receiver_pass_backward(&t->rx, adapters_of(t), T, label, scale, correct);
}

static lw_status pass_scores(lw_trainer *t, int P, double *scores)
{
    if (t->gpu) return lw_gpu_receiver_pass_scores(t->gpu, adapters_of(t), P, true, scores);
    const lw_receiver_adapters *ad = adapters_of(t);
    lw_status st = lw_receiver_pass_prompt(&t->rx, ad, P, true);
    if (st) return st;
    const lw_receiver_layout *Ly = t->rx.layout;
    return lw_score_verbalizers(t->rx.m, t->rx.score_state, ad, P, t->rx.last, Ly->n_labels,
                                (const int *const *)Ly->verb, Ly->verb_len, scores);
}

/* t->soft into the receiver rows' embeddings; the adapters (if any) see them too
 * (training: their dropout is on, drawn from t->dropout_seed). */
static lw_status place_soft(lw_trainer *t, bool training)
{
    size_t H = (size_t)t->receiver->cfg.hidden;
    memcpy(rows_embeds(t) + (size_t)lw_receiver_soft_row(t->layout) * H, t->soft, (size_t)t->layout->M * H * sizeof(float));
    if (t->adapters) return lw_adapter_set_forward(t->adapters, t->soft, t->layout->M, training, t->dropout_seed);
    return LW_OK;
}

lw_status lw_trainer_attach_layer_mix(lw_trainer *t, lw_layer_mix *mix)
{
    if (mix->S != t->bridge->sender_hidden)
        return lw_fail(LW_ERR_INVALID, "trainer: the layer mix gives %d wide rows, the bridge takes %d", mix->S,
                       t->bridge->sender_hidden);
    size_t n = (size_t)t->acts_T * mix->S;
    free(t->mixed);
    free(t->dmixed);
    t->mixed = malloc(n * sizeof(float));
    t->dmixed = malloc(n * sizeof(float));
    if (!t->mixed || !t->dmixed) return lw_fail(LW_ERR_NOMEM, "trainer: out of memory for the layer mix");
    t->mix = mix;
    return LW_OK;
}

static lw_status bridge_forward(lw_trainer *t, const float *x, int T, bool training)
{
    if (T < 1 || T > t->acts_T)
        return lw_fail(LW_ERR_INVALID, "trainer: %d sender rows (1..%d)", T, t->acts_T);
    if (t->mix) {   /* several layers into one: what the bridge reads */
        lw_layer_mix_forward(t->mix, x, T, t->mixed);
        t->mix_x = x, t->mix_T = T;
        x = t->mixed;
    }
    lw_status st = lw_bridge_forward(t->bridge, t->acts, x, T, t->soft);
    return st ? st : place_soft(t, training);
}

/* t->dsoft into the bridge's grads, and through its dx into the mix's. */
static void bridge_backward(lw_trainer *t)
{
    if (!t->mix) {
        lw_bridge_backward(t->bridge, t->acts, t->dsoft, NULL);
        return;
    }
    memset(t->dmixed, 0, (size_t)t->mix_T * t->mix->S * sizeof(float));
    lw_bridge_backward(t->bridge, t->acts, t->dsoft, t->dmixed);
    lw_layer_mix_backward(t->mix, t->mix_x, t->mix_T, t->dmixed);
}

static lw_status check_label(const lw_trainer *t, int label)
{
    if (label < 0 || label >= t->layout->n_labels)
        return lw_fail(LW_ERR_INVALID, "trainer: label %d of %d", label, t->layout->n_labels);
    return LW_OK;
}

static lw_status example_loss(lw_trainer *t, const float *x, int Tx, int label, float *loss, int *T)
{
    lw_status st = check_label(t, label);
    if (!st) st = bridge_forward(t, x, Tx, true);
    if (st) return st;
    /* prefix + the gold verbalizer but its last token */
    *T = lw_receiver_fill(t->layout, label, t->layout->verb_len[label] - 1, rows_ids(t), rows_is_embed(t));
    float ce;
    if ((st = pass_loss(t, *T, label, &ce))) return st;
    *loss = ce + (float)lw_trainer_soft_terms(t, t->soft, label, NULL, 0.0f);
    return LW_OK;
}

lw_status lw_trainer_loss(lw_trainer *t, const float *x, int T, int label, float *loss)
{
    int Tr;
    return example_loss(t, x, T, label, loss, &Tr);
}

lw_status lw_trainer_example(lw_trainer *t, const float *x, int Tx, int label, float scale, float *loss,
                             bool *correct)
{
    int T;
    float l;
    lw_status st = example_loss(t, x, Tx, label, &l, &T);
    if (st) return st;
    const lw_receiver_layout *Ly = t->layout;
    int H = t->receiver->cfg.hidden, M = Ly->M;
    if (loss) *loss = l;
    if ((st = pass_backward(t, T, label, scale, correct))) return st;
    memcpy(t->dsoft, rows_d_embeds(t) + (size_t)lw_receiver_soft_row(Ly) * H, (size_t)M * H * sizeof(float));
    lw_trainer_soft_terms(t, t->soft, label, t->dsoft, scale);
    lw_spread_term_step(&t->spread, t->soft, t->dsoft, scale);
    if (t->adapters) lw_adapter_set_backward(t->adapters, t->dsoft);   /* the deep prefix's path to the soft tokens */
    bridge_backward(t);
    return LW_OK;
}

/* The packed step's calls: the CPU pass's, or the GPU pass's twins. */
static bool can_pack(lw_trainer *t)
{
    if (t->gpu) return lw_gpu_receiver_pass_can_pack(t->gpu, adapters_of(t));
    return lw_receiver_pass_can_pack(&t->rx, adapters_of(t));
}

static int pack_room(lw_trainer *t)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_room(t->gpu, adapters_of(t));
    return lw_receiver_pass_pack_room(&t->rx, adapters_of(t));
}

static lw_status pack_begin(lw_trainer *t, int n)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_begin(t->gpu, adapters_of(t), n);
    return lw_receiver_pass_pack_begin(&t->rx, adapters_of(t), n);
}

static lw_status pack_add(lw_trainer *t, int T, int label)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_add(t->gpu, T, label);
    return lw_receiver_pass_pack_add(&t->rx, T, label);
}

static lw_status pack_loss(lw_trainer *t, float *losses)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_loss(t->gpu, losses);
    return lw_receiver_pass_pack_loss(&t->rx, losses);
}

static lw_status pack_backward(lw_trainer *t, float scale, bool *correct)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_backward(t->gpu, scale, correct);
    return lw_receiver_pass_pack_backward(&t->rx, scale, correct);
}

static const float *pack_d_embeds(lw_trainer *t, int i)
{
    if (t->gpu) return lw_gpu_receiver_pass_pack_d_embeds(t->gpu, i);
    return lw_receiver_pass_pack_d_embeds(&t->rx, i);
}

/* The pack's prefix gradient of example i into the adapters' own, which
 * lw_adapter_set_backward reads (and clears). */
static void take_d_prefix(lw_trainer *t, int i)
{
    lw_receiver_adapters *ad = &t->adapters->ad;
    const float *dk, *dv;
    if (t->gpu) lw_gpu_receiver_pass_pack_d_prefix(t->gpu, i, &dk, &dv);
    else lw_receiver_pass_pack_d_prefix(&t->rx, i, &dk, &dv);
    if (!dk) return;
    size_t n = (size_t)t->receiver->cfg.n_layers * ad->prefix_len * t->receiver->cfg.n_kv_heads *
               t->receiver->cfg.head_dim;
    memcpy(ad->d_prefix_k, dk, n * sizeof(float));
    memcpy(ad->d_prefix_v, dv, n * sizeof(float));
}

/* The packed path of lw_trainer_examples: every example's bridge forward
 * (and prefix generator's) and receiver rows into the pack, one receiver
 * pass, then each bridge's backward after its forward again (the bridge and
 * the generator keep one example's activations; running them twice, with
 * the same dropout draw, costs little next to the receiver). */
static lw_status examples_packed(lw_trainer *t, const lw_sender_cache *states, const int *idx, const int *labels,
                                 const uint64_t *dropout_seeds, int n, float scale, float **x, size_t *x_cap,
                                 float *losses, bool *correct)
{
    const lw_receiver_layout *Ly = t->layout;
    int H = t->receiver->cfg.hidden, M = Ly->M, Tx, i = 0;
    lw_status st = pack_begin(t, n);
    for (; !st && i < n; i++) {
        t->dropout_seed = dropout_seeds[i];
        st = lw_sender_cache_read(states, idx[i], x, x_cap, &Tx);
        if (!st) st = check_label(t, labels[i]);
        if (!st) st = bridge_forward(t, *x, Tx, true);
        if (st) break;
        int T = lw_receiver_fill(Ly, labels[i], Ly->verb_len[labels[i]] - 1, rows_ids(t), rows_is_embed(t));
        if ((st = pack_add(t, T, labels[i]))) break;
    }
    if (!st) st = pack_loss(t, losses);
    if (!st) st = pack_backward(t, scale, correct);
    for (int j = 0; !st && j < n; j++) {
        i = j;
        t->dropout_seed = dropout_seeds[j];
        if ((st = lw_sender_cache_read(states, idx[j], x, x_cap, &Tx)) || (st = bridge_forward(t, *x, Tx, true)))
            break;
        losses[j] += (float)lw_trainer_soft_terms(t, t->soft, labels[j], NULL, 0.0f);
        /* the pack's rows of example j start at the head's end: the soft tokens first */
        memcpy(t->dsoft, pack_d_embeds(t, j), (size_t)M * H * sizeof(float));
        lw_trainer_soft_terms(t, t->soft, labels[j], t->dsoft, scale);
        lw_spread_term_step(&t->spread, t->soft, t->dsoft, scale);
        if (t->adapters) {   /* as lw_trainer_example does */
            take_d_prefix(t, j);
            lw_adapter_set_backward(t->adapters, t->dsoft);
        }
        bridge_backward(t);
    }
    return st ? lw_fail_wrap(st, "trainer: packed step, example %d", i < n ? idx[i] : -1) : LW_OK;
}

lw_status lw_trainer_examples(lw_trainer *t, const lw_sender_cache *states, const int *idx, const int *labels,
                              const uint64_t *dropout_seeds, int n, float scale, float **x, size_t *x_cap,
                              float *losses, bool *correct)
{
    if (n < 1) return LW_OK;
    int room = pack_room(t);
    if (room > 0 && can_pack(t)) {
        lw_status st = LW_OK;
        for (int g = 0; !st && g < n; g += room)   /* as many as the receiver's context holds at once */
            st = examples_packed(t, states, idx + g, labels + g, dropout_seeds + g, n - g < room ? n - g : room,
                                 scale, x, x_cap, losses + g, correct + g);
        return st;
    }
    for (int i = 0; i < n; i++) {
        int T;
        t->dropout_seed = dropout_seeds[i];
        lw_status st = lw_sender_cache_read(states, idx[i], x, x_cap, &T);
        if (!st) st = lw_trainer_example(t, *x, T, labels[i], scale, &losses[i], &correct[i]);
        if (st) return lw_fail_wrap(st, "trainer: example %d", idx[i]);
    }
    return LW_OK;
}

lw_status lw_trainer_fill_prompt(lw_trainer *t, const float *x, int Tx, const float *soft, int *P)
{
    lw_status st;
    if (x) st = bridge_forward(t, x, Tx, false);
    else {
        memcpy(t->soft, soft, (size_t)t->layout->M * (size_t)t->receiver->cfg.hidden * sizeof(float));
        st = place_soft(t, false);
    }
    if (!st) *P = lw_receiver_fill(t->layout, -1, 0, rows_ids(t), rows_is_embed(t));
    return st;
}

lw_status lw_trainer_score(lw_trainer *t, const float *x, int Tx, double *scores)
{
    int P;
    lw_status st = lw_trainer_fill_prompt(t, x, Tx, NULL, &P);
    return st ? st : pass_scores(t, P, scores);
}

lw_status lw_trainer_score_soft(lw_trainer *t, const float *soft, double *scores)
{
    int P;
    lw_status st = lw_trainer_fill_prompt(t, NULL, 0, soft, &P);
    return st ? st : pass_scores(t, P, scores);
}

lw_status lw_dev_eval(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data, float **x,
                      size_t *x_cap, lw_dev_stats *out)
{
    if (data->n < 1 || states->n < data->n)
        return lw_fail(LW_ERR_INVALID, "dev loss: %d examples, %d sender states", data->n, states->n);
    lw_msg_spread sp;
    lw_status st = lw_msg_spread_init(&sp, (size_t)t->layout->M * t->receiver->cfg.hidden);
    if (st) return lw_fail_wrap(st, "dev loss");
    double total = 0.0;
    int right = 0;
    for (int i = 0; !st && i < data->n; i++) {
        int T, label = data->examples[i].label;
        float l;
        st = lw_sender_cache_read(states, i, x, x_cap, &T);
        if (!st) st = lw_trainer_loss(t, *x, T, label, &l);
        if (st) {
            st = lw_fail_wrap(st, "dev loss: example %d", i);
            break;
        }
        total += l;
        lw_msg_spread_add(&sp, t->soft);
        /* the loss pass left the verbalizer rows' logits, the first one's first */
        if (!t->gpu) right += lw_receiver_first_token_right(t->layout, t->rx.logits, label);
    }
    if (!st) {
        out->loss = total / data->n;
        out->first_acc = t->gpu ? NAN : (double)right / data->n;
        out->spread = lw_msg_spread_value(&sp);
    }
    lw_msg_spread_free(&sp);
    return st;
}

lw_status lw_dev_loss(lw_trainer *t, const lw_sender_cache *states, const lw_dataset *data, float **x,
                      size_t *x_cap, double *loss)
{
    lw_dev_stats d;
    lw_status st = lw_dev_eval(t, states, data, x, x_cap, &d);
    if (!st) *loss = d.loss;
    return st;
}

double lw_trainer_soft_terms(const lw_trainer *t, const float *z, int label, float *dz, float scale)
{
    int M = t->layout->M, H = t->receiver->cfg.hidden;
    double total = 0.0;
    if (t->diversity_weight != 0.0f)
        total += t->diversity_weight * lw_soft_diversity(z, M, H, dz, scale * t->diversity_weight);
    if (t->align_weight != 0.0f && t->align_targets)
        total += t->align_weight *
                 lw_soft_alignment(z, M, H, t->align_targets + (size_t)label * H, dz, scale * t->align_weight);
    return total;
}
