/* Tiny synthetic models and data for the suites; see tiny_models.h. */
#include "tiny_models.h"
#include "family.h"
#include "random_weights.h"

#include <check.h>
#include <math.h>
#include "rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lw_model_config tl_tiny_llama_config(lw_weights_format format)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny-llama");
    c.family = LW_FAMILY_LLAMA;
    c.weights_format = format;
    c.hidden = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 4;
    c.ffn = 24;
    c.activation = LW_ACT_SILU;
    c.norm = LW_NORM_RMSNORM;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.vocab = 11;
    c.context = 64;
    c.tied_embeddings = false;
    return c;
}

lw_model_config tl_tiny_gemma3_config(int window)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny-gemma3");
    c.family = LW_FAMILY_GEMMA3;
    c.weights_format = LW_WEIGHTS_GGUF;
    c.hidden = 16;
    c.n_layers = 3;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 6;  /* != hidden / n_heads, as in Gemma 3 */
    c.ffn = 24;
    c.activation = LW_ACT_GELU_TANH;
    c.norm = LW_NORM_RMSNORM_GEMMA;
    c.norm_eps = 1e-6f;
    c.rope_base = 1000000.0f;
    c.rope_base_local = 10000.0f;
    c.sliding_window = window;
    c.global_every = 3;  /* layers 0, 1 local, layer 2 global */
    c.qk_norm = true;
    c.post_norms = true;
    c.scale_embeddings = true;
    c.query_scale = 0.3f;
    c.vocab = 11;
    c.context = 64;
    c.tied_embeddings = true;
    return c;
}

/* From the family table (as a manifest writes it), so a new default of the
 * family reaches these models too. */
static lw_model_config tiny_from_family(lw_family family, const char *name)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    lw_family_defaults(&c, lw_family_get(family), LW_FAMILY_AS_WRITTEN);
    c.weights_format = LW_WEIGHTS_SAFETENSORS;
    c.hidden = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.ffn = 24;
    c.norm_eps = 1e-6f;
    c.vocab = 11;
    c.context = 64;
    return c;
}

lw_model_config tl_tiny_qwen2_config(void)
{
    lw_model_config c = tiny_from_family(LW_FAMILY_QWEN2, "tiny-qwen2");
    c.head_dim = 4;
    c.rope_base = c.rope_base_local = 1000000.0f;
    c.tied_embeddings = true;
    return c;
}

lw_model_config tl_tiny_qwen3_config(void)
{
    lw_model_config c = tiny_from_family(LW_FAMILY_QWEN3, "tiny-qwen3");
    c.head_dim = 6;   /* != hidden / n_heads: Qwen3 gives head_dim on its own */
    c.rope_base = c.rope_base_local = 1000000.0f;
    c.tied_embeddings = false;
    return c;
}

lw_model_config tl_tiny_receiver_config(int window, bool scale_embeddings)
{
    lw_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny-receiver");
    c.family = LW_FAMILY_GEMMA3;
    c.weights_format = LW_WEIGHTS_GGUF;
    c.hidden = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    c.ffn = 32;
    c.activation = LW_ACT_GELU_TANH;
    c.norm = LW_NORM_RMSNORM_GEMMA;
    c.norm_eps = 1e-6f;
    c.rope_base = 1000000.0f;
    c.rope_base_local = 10000.0f;
    c.sliding_window = window;
    c.global_every = 2;
    c.qk_norm = true;
    c.post_norms = true;
    c.scale_embeddings = scale_embeddings;
    c.vocab = 24;
    c.context = 64;
    c.tied_embeddings = true;
    c.embed_rms = scale_embeddings ? 4.0f : 1.0f;   /* sqrt(16) * unit-normal embeddings, or those alone */
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

void tl_tiny_trainer(int m_soft, int s_hidden, float diversity, lw_model **receiver, lw_receiver_layout *layout,
                     lw_bridge *bridge, lw_trainer *trainer)
{
    lw_model_config rc = tl_tiny_receiver_config(4, true);
    ck_assert_int_eq(lw_model_init_random(&rc, 11, receiver), LW_OK);
    const int before[] = {1, 5, 6}, after[] = {7, 8}, v0[] = {10}, v1[] = {11, 12};
    const int *verb[] = {v0, v1};
    const int verb_len[] = {1, 2};
    ck_assert_int_eq(lw_receiver_layout_from_ids(m_soft, before, 3, after, 2, 2, verb, verb_len, layout), LW_OK);
    lw_bridge_config bc = {.kind = LW_BRIDGE_PERCEIVER, .soft_tokens = m_soft, .source_layer = 1, .width = 16,
                           .depth = 1, .heads = 2, .ffn_mult = 2, .calibration = LW_CALIB_RMS};
    ck_assert_int_eq(lw_bridge_create(bridge, &bc, s_hidden, rc.hidden, rc.embed_rms), LW_OK);
    lw_bridge_init(bridge, 3);
    ck_assert_int_eq(lw_trainer_create(trainer, *receiver, layout, bridge, diversity), LW_OK);
}

void tl_alternating_dataset(lw_dataset *d, int n)
{
    d->n = n;
    d->n_labels = 2;
    d->examples = calloc((size_t)n, sizeof *d->examples);
    d->label_counts = calloc(2, sizeof(int));
    ck_assert(d->examples != NULL && d->label_counts != NULL);
    for (int i = 0; i < n; i++) {
        d->examples[i].label = i % 2;
        d->examples[i].text = strdup("synthetic");
        ck_assert(d->examples[i].text != NULL);
        d->label_counts[i % 2]++;
    }
}

void tl_synthetic_pair_open(tl_synthetic_pair *p, int m_soft, int n_ex, float diversity, uint64_t data_seed)
{
    enum { S = TL_SENDER_HIDDEN };
    memset(p, 0, sizeof *p);
    tl_tiny_trainer(m_soft, S, diversity, &p->receiver, &p->layout, &p->bridge, &p->trainer);
    const float offset[S] = {0, 0, 0, 0, 0, 0, -20.0f, 40.0f};
    lw_rng r;
    lw_rng_seed(&r, data_seed);
    int *tokens = malloc((size_t)n_ex * sizeof *tokens);
    ck_assert(tokens != NULL);
    tl_alternating_dataset(&p->data, n_ex);
    for (int i = 0; i < n_ex; i++) tokens[i] = 3 + (int)lw_rng_below(&r, 4);
    ck_assert_int_eq(lw_sender_cache_init_memory(&p->states, n_ex, S, tokens), LW_OK);
    free(tokens);
    for (int i = 0; i < n_ex; i++) {
        float *x = p->states.mem + p->states.offset[i];
        float sign = p->data.examples[i].label ? 1.5f : -1.5f;
        for (int t = 0; t < p->states.tokens[i]; t++)
            for (int k = 0; k < S; k++)
                x[t * S + k] = (float)lw_rng_normal(&r) * 0.5f + (k < 4 ? sign : 0.0f) + offset[k];
    }
}

void tl_synthetic_pair_close(tl_synthetic_pair *p)
{
    lw_trainer_free(&p->trainer);
    lw_bridge_free(&p->bridge);
    lw_receiver_layout_free(&p->layout);
    lw_model_free(p->receiver);
    lw_dataset_free(&p->data);
    lw_sender_cache_close(&p->states);
}

double tl_continuation_logprob(const lw_model *m, const int *prompt, int n, const int *cont, int L)
{
    int V = m->cfg.vocab, T = n + L - 1;
    int *ids = malloc((size_t)T * sizeof *ids);
    float *logits = malloc((size_t)T * V * sizeof *logits);
    ck_assert(ids && logits);
    memcpy(ids, prompt, (size_t)n * sizeof *ids);
    memcpy(ids + n, cont, (size_t)(L - 1) * sizeof *ids);
    lw_state *st;
    ck_assert_int_eq(lw_state_alloc(m, T, false, &st), LW_OK);
    lw_forward_args a = {.ids = ids, .T = T, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_int_eq(lw_forward(m, st, &a), LW_OK);
    double total = 0;
    for (int i = 0; i < L; i++) {
        const float *row = logits + (size_t)(n - 1 + i) * V;
        double mx = row[0], sum = 0;
        for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(row[v] - mx);
        total += row[cont[i]] - mx - log(sum);
    }
    lw_state_free(st);
    free(ids);
    free(logits);
    return total;
}
