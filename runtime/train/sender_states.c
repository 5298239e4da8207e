/* The sender's hidden states of one text (sender_states.h). */
#include "sender_states.h"

#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "random_weights.h"
#include "sender_cache_layers.h"

lw_status lw_sender_run_open(const lw_model_config *cfg, lw_sender_run *r)
{
    memset(r, 0, sizeof *r);
    r->cap = cfg->context < LW_SENDER_MAX_TOKENS + 64 ? cfg->context : LW_SENDER_MAX_TOKENS + 64;
    lw_status st = lw_config_load_model(cfg, &r->model);
    if (!st) st = lw_state_alloc(r->model, r->cap, false, &r->state);
    if (!st) st = lw_config_load_tokenizer(cfg, &r->tok);
    if (!st && !(r->hidden = malloc((size_t)r->cap * cfg->hidden * sizeof(float))))
        st = lw_fail(LW_ERR_NOMEM, "sender: out of memory");
    return st ? lw_fail_wrap(st, "sender %s", cfg->name) : LW_OK;
}

void lw_sender_run_close(lw_sender_run *r)
{
    lw_tokenizer_free(r->tok);
    lw_state_free(r->state);
    lw_model_free(r->model);
    free(r->hidden);
}

/* How many leading tokens of ids[n] are the template's head (BOS, system
 * prompt, user header): the same for every example, so not kept. At least
 * the first token goes, as it is the attention sink whose states are
 * hundreds of times larger than the others'. */
static int head_tokens(lw_sender_run *r, const int *ids, int n)
{
    char *head = NULL, *tail = NULL;
    int *hid = NULL, nh = 0, skip = 1;
    if (lw_chat_render_split(r->model->cfg.chat_template, NULL, "", "", &head, &tail) == LW_OK &&
        lw_tokenizer_encode(r->tok, head, strlen(head), false, &hid, &nh) == LW_OK && nh > 1 && nh < n &&
        memcmp(ids, hid, (size_t)nh * sizeof *ids) == 0)
        skip = nh;
    free(head);
    free(tail);
    free(hid);
    return n > skip ? skip : 0;
}

/* The sender's states of one text's tokens after the template head into
 * r->hidden; *T rows. */
lw_status lw_sender_run_states(lw_sender_run *r, int layer, const char *text, int *T)
{
    char *prompt = NULL;
    int *ids = NULL, n = 0, skip = 0;
    lw_status st = lw_chat_render(r->model->cfg.chat_template, NULL, text, &prompt);
    if (!st) st = lw_tokenizer_encode(r->tok, prompt, strlen(prompt), false, &ids, &n);
    if (!st && n < 1) st = lw_fail(LW_ERR_INVALID, "sender: the prompt has no tokens");
    if (!st) {
        skip = head_tokens(r, ids, n);
        if (n - skip > LW_SENDER_MAX_TOKENS) n = skip + LW_SENDER_MAX_TOKENS;
        if (n > r->cap) n = r->cap;
        lw_state_reset(r->state);
        lw_forward_args a = {.ids = ids, .T = n, .capture_layer = layer, .hidden_out = r->hidden};
        if (n <= skip) st = lw_fail(LW_ERR_INVALID, "sender: template head of %d tokens leaves no room", skip);
        else st = lw_forward(r->model, r->state, &a);
    }
    if (!st && skip > 0)
        memmove(r->hidden, r->hidden + (size_t)skip * r->model->cfg.hidden,
                (size_t)(n - skip) * r->model->cfg.hidden * sizeof(float));
    *T = n - skip;
    free(prompt);
    free(ids);
    return st;
}

/* The sender as a lw_sender_source: the run is opened only when a cache
 * file must be built. */
typedef struct {
    const lw_model_config *cfg;
    int layer;
    lw_sender_run r;
} run_source;

static lw_status source_open(void *ctx)
{
    run_source *s = ctx;
    return lw_sender_run_open(s->cfg, &s->r);
}

static lw_status source_states(void *ctx, const char *text, const float **rows, int *T)
{
    run_source *s = ctx;
    lw_status st = lw_sender_run_states(&s->r, s->layer, text, T);
    *rows = s->r.hidden;
    return st;
}

static void source_close(void *ctx)
{
    run_source *s = ctx;
    lw_sender_run_close(&s->r);
}

lw_status lw_sender_cache_get(const lw_model_config *sender, int layer, const char *data_path,
                              const lw_dataset *d, const char *cache_dir, int quiet, lw_sender_cache *out)
{
    run_source s = {.cfg = sender, .layer = layer};
    lw_sender_source src = {.ctx = &s, .open = source_open, .states = source_states, .close = source_close};
    return lw_sender_cache_get_from(sender, layer, data_path, d, cache_dir, quiet, &src, out);
}

lw_status lw_sender_cache_get_layers(const lw_model_config *sender, const int *layers, int K, const char *data_path,
                                     const lw_dataset *d, const char *cache_dir, int quiet, lw_sender_cache *out)
{
    if (K == 1) return lw_sender_cache_get(sender, layers[0], data_path, d, cache_dir, quiet, out);
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (K < 1 || K > LW_LAYER_MIX_MAX)
        return lw_fail(LW_ERR_INVALID, "sender states of %d layers (1..%d)", K, LW_LAYER_MIX_MAX);
    lw_sender_cache one[LW_LAYER_MIX_MAX];
    for (int k = 0; k < K; k++) one[k] = (lw_sender_cache){.fd = -1};
    lw_status st = LW_OK;
    for (int k = 0; !st && k < K; k++)
        if ((st = lw_sender_cache_get(sender, layers[k], data_path, d, cache_dir, quiet, &one[k])))
            st = lw_fail_wrap(st, "sender states of layer %d", layers[k]);
    if (!st) st = lw_sender_cache_stack(one, K, out);
    for (int k = 0; k < K; k++) lw_sender_cache_close(&one[k]);
    return st;
}

lw_status lw_sender_run_mixed(lw_sender_run *r, const lw_layer_mix *mix, const char *text, float **stack,
                              size_t *stack_cap, float *out, int *T)
{
    int K = mix->K, S = mix->S, Tk = 0;
    if (r->model->cfg.hidden != S)
        return lw_fail(LW_ERR_INVALID, "sender states: the sender is %d wide, the layer mix takes %d",
                       r->model->cfg.hidden, S);
    for (int k = 0; k < K; k++) {
        lw_status st = lw_sender_run_states(r, mix->layers[k], text, &Tk);
        if (st) return lw_fail_wrap(st, "sender states of layer %d", mix->layers[k]);
        if (k == 0) *T = Tk;
        else if (Tk != *T)
            return lw_fail(LW_ERR_INVALID, "sender states: layer %d gave %d rows, layer %d %d", mix->layers[k], Tk,
                           mix->layers[0], *T);
        size_t need = (size_t)Tk * K * S;
        if (need > *stack_cap) {
            float *p = realloc(*stack, need * sizeof *p);
            if (!p) return lw_fail(LW_ERR_NOMEM, "sender states: out of memory for %d layers", K);
            *stack = p, *stack_cap = need;
        }
        for (int t = 0; t < Tk; t++)
            memcpy(*stack + ((size_t)t * K + k) * S, r->hidden + (size_t)t * S, (size_t)S * sizeof(float));
    }
    lw_layer_mix_forward(mix, *stack, *T, out);
    return LW_OK;
}
