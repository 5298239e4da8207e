/* One text example through the receiver with a learned prompt or LoRA:
 * loss, gradient, label scores, checkpoint files (train_text.h). */
#include "train_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_file.h"
#include "checkpoint.h"
#include "fileutil.h"
#include "label_scoring.h"
#include "ops.h"

#define PROMPT_INIT_SALT 0x50524d54ULL

int lw_text_method_from_name(const char *name)
{
    if (!strcmp(name, "prompt-tuning")) return LW_TEXT_PROMPT_TUNING;
    if (!strcmp(name, "lora")) return LW_TEXT_LORA;
    return -1;
}

const char *lw_text_method_name(lw_text_method m) { return m == LW_TEXT_LORA ? "lora" : "prompt-tuning"; }

/* P from the input embeddings of M seeded token ids (capture layer 0 is
 * what the first block sees, embed scale included). */
static lw_status init_prompt(lw_text_trainer *t, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed ^ PROMPT_INIT_SALT);
    for (int i = 0; i < t->M; i++) t->rx.ids[i] = (int)lw_rng_below(&r, (uint64_t)t->receiver->cfg.vocab);
    lw_state_reset(t->rx.state);
    lw_forward_args a = {.ids = t->rx.ids, .T = t->M, .capture_layer = 0, .hidden_out = t->prompt.params};
    t->rx.head_cached = false;   /* this overwrites the state's first rows */
    return lw_forward(t->receiver, t->rx.state, &a);
}

lw_status lw_text_trainer_create(lw_text_trainer *t, const lw_model *receiver, const lw_receiver_layout *layout,
                                 lw_text_method method, int M, const lw_lora_config *lora, int max_prompt,
                                 uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->receiver = receiver;
    t->layout = layout;
    t->method = method;
    t->M = method == LW_TEXT_PROMPT_TUNING ? M : 0;
    const lw_model_config *c = &receiver->cfg;
    if (method == LW_TEXT_PROMPT_TUNING && (M < 1 || M > 4096))
        return lw_fail(LW_ERR_INVALID, "text trainer: prompt-tuning with %d soft tokens (1..4096)", M);
    if (max_prompt < layout->n_before || max_prompt > c->context)
        return lw_fail(LW_ERR_INVALID, "text trainer: prompts of %d tokens (%d..%d)", max_prompt, layout->n_before,
                       c->context);
    t->max_T = max_prompt + t->M + layout->max_verb;
    lw_status st = lw_receiver_pass_alloc(&t->rx, receiver, layout, t->max_T, "text trainer");
    if (!st && method == LW_TEXT_PROMPT_TUNING) {
        st = lw_adapter_params_add(&t->prompt, "prompt", 2, t->M, c->hidden, false, NULL);
        if (!st) st = lw_adapter_params_alloc(&t->prompt);
        if (!st) st = lw_adamw_init(&t->opt, t->prompt.n_params, lw_adamw_defaults());
        if (!st) st = init_prompt(t, seed);
    }
    if (!st && method == LW_TEXT_LORA) st = lw_adapter_set_create(&t->lora, receiver, t->max_T, lora, NULL, seed);
    if (st) lw_text_trainer_free(t);
    return st;
}

void lw_text_trainer_free(lw_text_trainer *t)
{
    lw_receiver_pass_free(&t->rx);
    lw_adapter_params_free(&t->prompt);
    lw_adamw_free(&t->opt);
    lw_adapter_set_free(&t->lora);
    memset(t, 0, sizeof *t);
}

size_t lw_text_trainer_n_params(const lw_text_trainer *t)
{
    return t->method == LW_TEXT_LORA ? lw_adapter_set_n_params(&t->lora) : t->prompt.n_params;
}

float *lw_text_trainer_params(lw_text_trainer *t, float **grads, size_t *n)
{
    lw_adapter_params *p = t->method == LW_TEXT_LORA ? &t->lora.lora.p : &t->prompt;
    *grads = p->grads;
    *n = p->n_params;
    return p->params;
}

void lw_text_trainer_zero_grad(lw_text_trainer *t)
{
    if (t->method == LW_TEXT_LORA) lw_adapter_set_zero_grad(&t->lora);
    else lw_adapter_params_zero_grad(&t->prompt);
}

static const lw_receiver_adapters *adapters_of(const lw_text_trainer *t)
{
    return t->method == LW_TEXT_LORA ? &t->lora.ad : NULL;
}

/* ids, is_embed and embeds for [before] [P] [text, after] [first n_verb
 * verbalizer tokens]; returns T, or -1 when the prompt is malformed. */
static int fill(lw_text_trainer *t, const int *ids, int n, int label, int n_verb)
{
    const lw_receiver_layout *Ly = t->layout;
    int nb = Ly->n_before, V = t->receiver->cfg.vocab, H = t->receiver->cfg.hidden;
    if (n < nb || n + t->M + n_verb > t->max_T) return -1;
    int T = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) return -1;
        if (i == nb)
            for (int j = 0; j < t->M; j++, T++) t->rx.ids[T] = 0, t->rx.is_embed[T] = true;
        t->rx.ids[T] = ids[i], t->rx.is_embed[T++] = false;
    }
    if (n == nb)
        for (int j = 0; j < t->M; j++, T++) t->rx.ids[T] = 0, t->rx.is_embed[T] = true;
    for (int i = 0; i < n_verb; i++, T++) t->rx.ids[T] = Ly->verb[label][i], t->rx.is_embed[T] = false;
    if (t->M) memcpy(t->rx.embeds + (size_t)nb * H, t->prompt.params, (size_t)t->M * H * sizeof(float));
    return T;
}

static lw_status bad_prompt(const lw_text_trainer *t, int n)
{
    return lw_fail(LW_ERR_INVALID, "text trainer: a prompt of %d ids (at least the %d template ids, at most %d "
                   "with the soft tokens and verbalizer, ids below %d)", n, t->layout->n_before, t->max_T,
                   t->receiver->cfg.vocab);
}

/* The receiver over prompt + the gold verbalizer but its last token. */
static lw_status example_forward(lw_text_trainer *t, const int *ids, int n, int label, bool training, float *loss,
                                 int *T)
{
    const lw_receiver_layout *Ly = t->layout;
    if (label < 0 || label >= Ly->n_labels)
        return lw_fail(LW_ERR_INVALID, "text trainer: label %d of %d", label, Ly->n_labels);
    if ((*T = fill(t, ids, n, label, Ly->verb_len[label] - 1)) < 0) return bad_prompt(t, n);
    if (t->method == LW_TEXT_LORA) lw_adapter_set_forward(&t->lora, NULL, 0, training, t->dropout_seed);
    return lw_receiver_pass_loss(&t->rx, adapters_of(t), *T, label, loss);
}

lw_status lw_text_trainer_loss(lw_text_trainer *t, const int *ids, int n, int label, float *loss)
{
    int T;
    return example_forward(t, ids, n, label, false, loss, &T);
}

lw_status lw_text_trainer_example(lw_text_trainer *t, const int *ids, int n, int label, float scale, float *loss,
                                  bool *correct)
{
    int T;
    float l;
    lw_status st = example_forward(t, ids, n, label, true, &l, &T);
    if (st) return st;
    int H = t->receiver->cfg.hidden;
    if (loss) *loss = l;
    if ((st = lw_receiver_pass_backward(&t->rx, adapters_of(t), T, label, scale, correct))) return st;
    const float *d = t->rx.d_embeds + (size_t)t->layout->n_before * H;
    for (size_t i = 0; i < (size_t)t->M * H; i++) t->prompt.grads[i] += d[i];
    return LW_OK;
}

/* Packed prompt tuning or LoRA: every example's rows into the pack, one
 * receiver pass, each example's soft-prompt gradient from its rows after
 * the head (the soft prompt comes first there; LoRA's gradients gather in
 * its grads). *packed false: some example's rows do not begin with the
 * head, nothing was done. */
static lw_status examples_packed(lw_text_trainer *t, const int *const *ids, const int *n_ids, const int *labels,
                                 int n, float scale, float *losses, bool *correct, bool *packed)
{
    const lw_receiver_layout *Ly = t->layout;
    *packed = false;
    for (int i = 0; i < n; i++)   /* the prompts' own ids: the head must be the layout's */
        if (n_ids[i] < Ly->n_before || memcmp(ids[i], Ly->before, (size_t)Ly->n_before * sizeof(int)))
            return LW_OK;
    *packed = true;
    if (t->method == LW_TEXT_LORA) lw_adapter_set_forward(&t->lora, NULL, 0, true, 0);   /* no dropout: packs */
    lw_status st = lw_receiver_pass_pack_begin(&t->rx, adapters_of(t), n);
    for (int i = 0; !st && i < n; i++) {
        if (labels[i] < 0 || labels[i] >= Ly->n_labels)
            return lw_fail(LW_ERR_INVALID, "text trainer: label %d of %d", labels[i], Ly->n_labels);
        int T = fill(t, ids[i], n_ids[i], labels[i], Ly->verb_len[labels[i]] - 1);
        st = T < 0 ? bad_prompt(t, n_ids[i]) : lw_receiver_pass_pack_add(&t->rx, T, labels[i]);
    }
    if (!st) st = lw_receiver_pass_pack_loss(&t->rx, losses);
    if (!st) st = lw_receiver_pass_pack_backward(&t->rx, scale, correct);
    size_t MH = (size_t)t->M * t->receiver->cfg.hidden;
    for (int i = 0; !st && i < n; i++) {
        const float *d = lw_receiver_pass_pack_d_embeds(&t->rx, i);
        for (size_t j = 0; j < MH; j++) t->prompt.grads[j] += d[j];
    }
    return st;
}

lw_status lw_text_trainer_examples(lw_text_trainer *t, const int *const *ids, const int *n_ids, const int *labels,
                                   const uint64_t *dropout_seeds, int n, float scale, float *losses, bool *correct)
{
    int room = lw_receiver_pass_pack_room(&t->rx, adapters_of(t));
    bool can = lw_receiver_pass_can_pack(&t->rx, adapters_of(t));   /* prompt tuning always has M > 0 */
    int group = can && room > 0 ? room : n;   /* as many as the receiver's context holds at once */
    lw_status st = LW_OK;
    for (int g = 0; !st && g < n; g += group) {
        int k = n - g < group ? n - g : group;
        bool packed = false;
        if (can && room > 0)
            st = examples_packed(t, ids + g, n_ids + g, labels + g, k, scale, losses + g, correct + g, &packed);
        for (int i = g; !st && !packed && i < g + k; i++) {   /* one by one */
            t->dropout_seed = dropout_seeds[i];
            st = lw_text_trainer_example(t, ids[i], n_ids[i], labels[i], scale, &losses[i], &correct[i]);
        }
    }
    return st;
}

lw_status lw_text_trainer_score(lw_text_trainer *t, const int *ids, int n, double *scores)
{
    int P = fill(t, ids, n, 0, 0);
    if (P < 0 || P + t->layout->max_verb > t->max_T) return bad_prompt(t, n);
    if (t->method == LW_TEXT_LORA) lw_adapter_set_forward(&t->lora, NULL, 0, false, 0);
    const lw_receiver_adapters *ad = adapters_of(t);
    lw_status st = lw_receiver_pass_prompt(&t->rx, ad, P, t->M > 0);
    if (st) return st;
    const lw_receiver_layout *Ly = t->rx.layout;
    return lw_score_verbalizers(t->rx.m, t->rx.score_state, ad, P, t->rx.last, Ly->n_labels,
                                (const int *const *)Ly->verb, Ly->verb_len, scores);
}

/* ---- checkpoint files ---------------------------------------------------- */

static lw_status file_in(char *out, size_t cap, const char *dir, const char *name)
{
    if (!lw_pathf(out, cap, "%s/%s", dir, name))
        return lw_fail(LW_ERR_INVALID, "text trainer: path too long under %s", dir);
    return LW_OK;
}

lw_status lw_text_trainer_save(const lw_text_trainer *t, const char *dir)
{
    if (t->method == LW_TEXT_LORA) return lw_adapter_set_save(&t->lora, dir);
    char w[4200], o[4200];
    lw_adapter_meta meta[] = {{"method", "prompt-tuning"}};
    lw_status st = lw_mkdir_p(dir);
    if (!st) st = file_in(w, sizeof w, dir, "prompt.safetensors");
    if (!st) st = file_in(o, sizeof o, dir, "prompt_state.safetensors");
    if (!st) st = lw_adapter_params_save_adamw(&t->prompt, &t->opt, o);
    if (!st) st = lw_adapter_params_save(&t->prompt, w, meta, 1);
    return st;
}

lw_status lw_text_trainer_load(lw_text_trainer *t, const char *dir, long *step)
{
    lw_status st;
    if (t->method == LW_TEXT_LORA) {
        st = lw_adapter_set_load(&t->lora, dir);
        *step = t->lora.opt_lora.step;
    } else {
        char w[4200], o[4200];
        st = file_in(w, sizeof w, dir, "prompt.safetensors");
        if (!st) st = file_in(o, sizeof o, dir, "prompt_state.safetensors");
        if (!st) st = lw_adapter_params_load(&t->prompt, w);
        if (!st) st = lw_adapter_params_load_adamw(&t->prompt, &t->opt, o);
        *step = t->opt.step;
    }
    return st ? lw_fail_wrap(st, "text trainer: loading %s", dir) : LW_OK;
}

lw_status lw_text_checkpoint_soft_tokens(const char *dir, int *M)
{
    char w[4200];
    float *data = NULL;
    int64_t shape[4];
    int ndim;
    lw_status st = file_in(w, sizeof w, dir, "prompt.safetensors");
    if (!st) st = lw_safetensors_read_f32(w, "prompt", &data, shape, &ndim);
    free(data);
    if (st) return st;
    if (ndim != 2 || shape[0] < 1 || shape[0] > 4096)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor prompt must be [M, hidden] with M 1..4096", w);
    *M = (int)shape[0];
    return LW_OK;
}

lw_status lw_text_trainer_open(lw_text_trainer *t, const char *dir)
{
    if (t->method == LW_TEXT_PROMPT_TUNING) {
        char w[4200];
        lw_status st = file_in(w, sizeof w, dir, "prompt.safetensors");
        return st ? st : lw_adapter_params_load(&t->prompt, w);
    }
    bool found = false;
    lw_adapter_set_free(&t->lora);
    lw_status st = lw_adapter_set_open(&t->lora, t->receiver, t->max_T, dir, &found);
    if (!st && (!found || !t->lora.has_lora)) st = lw_fail(LW_ERR_INVALID, "%s holds no lora.safetensors", dir);
    return st;
}
