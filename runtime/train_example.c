/* One example through bridge and receiver: loss, gradient, label scores. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "label_scoring.h"
#include "ops.h"

static float *falloc(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

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
    if (t->max_T > c->context)
        return lw_fail(LW_ERR_INVALID, "trainer: the receiver prompt needs %d positions, %s has %d", t->max_T,
                       c->name, c->context);
    lw_status st = lw_state_alloc(receiver, t->max_T, true, &t->state);
    if (!st) st = lw_backward_scratch_alloc(receiver, t->max_T, &t->bwd);
    if (!st) st = lw_bridge_acts_create(bridge, LW_SENDER_MAX_TOKENS, &t->acts);
    if (st) {
        lw_trainer_free(t);
        return st;
    }
    t->acts_T = LW_SENDER_MAX_TOKENS;
    bool ok = true;
    size_t H = (size_t)c->hidden, V = (size_t)c->vocab, L = (size_t)layout->max_verb, T = (size_t)t->max_T;
    t->soft = falloc((size_t)layout->M * H, &ok);
    t->dsoft = falloc((size_t)layout->M * H, &ok);
    t->embeds = falloc(T * H, &ok);
    t->d_embeds = falloc(T * H, &ok);
    t->final = falloc(T * H, &ok);
    t->logits = falloc(L * V, &ok);
    t->probs = falloc(L * V, &ok);
    t->dlogits = falloc(L * V, &ok);
    t->last = falloc(V, &ok);
    t->ids = calloc(T, sizeof *t->ids);
    t->rows = calloc(T, sizeof *t->rows);
    t->targets = calloc(T, sizeof *t->targets);
    t->is_embed = calloc(T, sizeof *t->is_embed);
    if (!ok || !t->ids || !t->rows || !t->targets || !t->is_embed) {
        lw_trainer_free(t);
        return lw_fail(LW_ERR_NOMEM, "trainer: out of memory for %zu positions of vocab %zu", T, V);
    }
    return LW_OK;
}

void lw_trainer_free(lw_trainer *t)
{
    lw_state_free(t->state);
    lw_backward_scratch_free(t->bwd);
    lw_bridge_acts_free(t->acts);
    free(t->soft);
    free(t->dsoft);
    free(t->embeds);
    free(t->d_embeds);
    free(t->final);
    free(t->logits);
    free(t->probs);
    free(t->dlogits);
    free(t->last);
    free(t->ids);
    free(t->rows);
    free(t->targets);
    free(t->is_embed);
    memset(t, 0, sizeof *t);
}

lw_status lw_trainer_attach_adapters(lw_trainer *t, lw_adapter_set *set)
{
    if (!set->ad.scratch || set->ad.scratch->max_tokens < t->max_T)
        return lw_fail(LW_ERR_INVALID, "trainer: adapters sized for %d rows, the receiver prompt needs %d",
                       set->ad.scratch ? set->ad.scratch->max_tokens : 0, t->max_T);
    lw_state *s = NULL;
    lw_status st = lw_state_alloc(t->receiver, t->max_T + lw_adapter_set_extra_positions(set), true, &s);
    if (st) return lw_fail_wrap(st, "trainer: receiver state with a deep prefix");
    lw_state_free(t->state);
    t->state = s;
    t->adapters = set;
    return LW_OK;
}

static const lw_receiver_adapters *adapters_of(const lw_trainer *t)
{
    return t->adapters ? &t->adapters->ad : NULL;
}

/* The soft tokens into t->embeds; the adapters (if any) see them too
 * (training: their dropout is on, drawn from t->dropout_seed). */
static lw_status bridge_forward(lw_trainer *t, const float *x, int T, bool training)
{
    if (T < 1 || T > t->acts_T)
        return lw_fail(LW_ERR_INVALID, "trainer: %d sender rows (1..%d)", T, t->acts_T);
    lw_status st = lw_bridge_forward(t->bridge, t->acts, x, T, t->soft);
    if (st) return st;
    size_t H = (size_t)t->receiver->cfg.hidden;
    memcpy(t->embeds + (size_t)lw_receiver_soft_row(t->layout) * H, t->soft, (size_t)t->layout->M * H * sizeof(float));
    if (t->adapters) return lw_adapter_set_forward(t->adapters, t->soft, t->layout->M, training, t->dropout_seed);
    return LW_OK;
}

/* Mean pairwise cosine similarity of the M soft tokens; with dz, adds
 * scale * its gradient. */
static double diversity(const float *z, int M, int H, float *dz, float scale)
{
    if (M < 2) return 0.0;
    double total = 0.0, pairs = (double)M * (M - 1) / 2;
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++) {
            const float *a = z + (size_t)i * H, *b = z + (size_t)j * H;
            double ab = 0, aa = 0, bb = 0;
            for (int k = 0; k < H; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
            double na = sqrt(aa) + 1e-12, nb = sqrt(bb) + 1e-12, cosv = ab / (na * nb);
            total += cosv;
            if (!dz) continue;
            double g = scale / pairs;
            float *da = dz + (size_t)i * H, *db = dz + (size_t)j * H;
            for (int k = 0; k < H; k++) {
                da[k] += (float)(g * (b[k] / (na * nb) - cosv * a[k] / (na * na)));
                db[k] += (float)(g * (a[k] / (na * nb) - cosv * b[k] / (nb * nb)));
            }
        }
    return total / pairs;
}

/* Runs the receiver over prefix + the gold verbalizer but its last token,
 * and leaves the logits of the L rows predicting the verbalizer in
 * t->logits; returns the row count through *T. */
static lw_status receiver_forward(lw_trainer *t, int label, int *T)
{
    const lw_receiver_layout *Ly = t->layout;
    const lw_model *m = t->receiver;
    int L = Ly->verb_len[label], H = m->cfg.hidden;
    *T = lw_receiver_fill(Ly, label, L - 1, t->ids, t->is_embed);
    lw_state_reset(t->state);
    /* capturing the final-normed output runs every block (what backward
     * needs) without the full vocabulary projection of the last row */
    lw_forward_args a = {.ids = t->ids, .embeds = t->embeds, .is_embed = t->is_embed, .T = *T, .pos0 = 0,
                         .capture_layer = m->cfg.n_layers, .hidden_out = t->final, .adapters = adapters_of(t)};
    lw_status st = lw_forward(m, t->state, &a);
    if (st) return st;
    matmul_forward(t->logits, t->final + (size_t)(*T - L) * H, m->output, NULL, L, H, m->cfg.vocab);
    return LW_OK;
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
    if (!st) st = receiver_forward(t, label, T);
    if (st) return st;
    int L = t->layout->verb_len[label];
    memcpy(t->targets, t->layout->verb[label], (size_t)L * sizeof(int));
    float ce = cross_entropy_forward(t->probs, t->logits, t->targets, L, t->receiver->cfg.vocab);
    double div = t->diversity_weight != 0.0f
                     ? diversity(t->soft, t->layout->M, t->receiver->cfg.hidden, NULL, 0.0f)
                     : 0.0;
    *loss = ce + (float)(t->diversity_weight * div);
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
    const lw_model *m = t->receiver;
    int L = Ly->verb_len[label], H = m->cfg.hidden, V = m->cfg.vocab, M = Ly->M;
    if (loss) *loss = l;
    if (correct) *correct = lw_receiver_first_token_right(Ly, t->logits, label);
    memset(t->dlogits, 0, (size_t)L * V * sizeof(float));
    cross_entropy_backward(t->dlogits, t->probs, t->targets, L, V, scale);
    for (int i = 0; i < L; i++) t->rows[i] = T - L + i;
    st = lw_model_backward_adapted(m, t->state, t->bwd, adapters_of(t), t->rows, L, t->dlogits, t->d_embeds);
    if (st) return st;
    memcpy(t->dsoft, t->d_embeds + (size_t)lw_receiver_soft_row(Ly) * H, (size_t)M * H * sizeof(float));
    if (t->diversity_weight != 0.0f) diversity(t->soft, M, H, t->dsoft, scale * t->diversity_weight);
    if (t->adapters) lw_adapter_set_backward(t->adapters, t->dsoft);   /* the deep prefix's path to the soft tokens */
    lw_bridge_backward(t->bridge, t->acts, t->dsoft, NULL);
    return LW_OK;
}

lw_status lw_trainer_score(lw_trainer *t, const float *x, int Tx, double *scores)
{
    lw_status st = bridge_forward(t, x, Tx, false);
    if (st) return st;
    const lw_receiver_layout *Ly = t->layout;
    const lw_model *m = t->receiver;
    int P = lw_receiver_fill(Ly, -1, 0, t->ids, t->is_embed), V = m->cfg.vocab;
    lw_state_reset(t->state);
    lw_forward_args a = {.ids = t->ids, .embeds = t->embeds, .is_embed = t->is_embed, .T = P, .logits = t->last,
                         .capture_layer = -1, .adapters = adapters_of(t)};
    if ((st = lw_forward(m, t->state, &a))) return st;
    for (int k = 0; k < Ly->n_labels; k++) {
        const int *v = Ly->verb[k];
        int L = Ly->verb_len[k];
        scores[k] = lw_log_prob(t->last, V, v[0]);
        if (L < 2) continue;
        /* the label's tokens but its last continue the shared prefix */
        lw_forward_args b = {.ids = v, .T = L - 1, .pos0 = P, .logits = t->logits, .all_logits = true,
                             .capture_layer = -1, .adapters = adapters_of(t)};
        if ((st = lw_forward(m, t->state, &b))) return st;
        for (int i = 1; i < L; i++) scores[k] += lw_log_prob(t->logits + (size_t)(i - 1) * V, V, v[i]);
    }
    return LW_OK;
}
