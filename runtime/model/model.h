/* A decoder-only LLM on the CPU, fp32, in the manner of llama2.c's run.c:
 * the config, the weights (dequantized once at load), and the run state
 * (KV cache and scratch). One forward pass serves all three families
 * (llama, gemma3, llama2c, qwen2, qwen3: family.h); what differs between them is read off
 * lw_model_config, never off the family name.
 *
 *   lw_model *m; lw_state *s;
 *   lw_model_open("x.gguf", LW_WEIGHTS_GGUF, &m);     // model_load.h; or lw_model_load(&cfg, &m)
 *   lw_state_alloc(m, 512, false, &s);
 *   lw_forward(m, s, &(lw_forward_args){.ids = ids, .T = n, .logits = out});
 *   lw_generate(m, s, ids, n, &gen_args, out_ids, &n_out);
 *
 * Positions: lw_forward runs T new positions starting at args->pos0 and
 * reads the KV cache for positions < pos0 (pos0 <= lw_state_cached(s)), so
 * a prompt can be fed in pieces and a cached prefix reused. */
#ifndef LW_MODEL_H
#define LW_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "model_config.h"
#include "plan.h"
#include "rng.h"
#include "status.h"

/* One block's weights, all [out, in] row-major; NULL where the family has none.
 * wq, wk, wv are consecutive row ranges of wqkv, and w_gate, w_up of
 * w_gate_up, so each input is multiplied once by the fused matrix. */
typedef struct {
    float *wqkv;            /* [(n_heads + 2 n_kv_heads) * head_dim, hidden], owns wq wk wv */
    float *w_gate_up;       /* [2 ffn, hidden], owns w_gate w_up */
    float *attn_norm;       /* [hidden] */
    float *wq;              /* [n_heads * head_dim, hidden] */
    float *wk;              /* [n_kv_heads * head_dim, hidden] */
    float *wv;              /* [n_kv_heads * head_dim, hidden] */
    float *bqkv;            /* [(n_heads + 2 n_kv_heads) * head_dim] q, k, v biases (qkv_bias), else NULL */
    float *wo;              /* [hidden, n_heads * head_dim] */
    float *q_norm;          /* [head_dim] qk_norm */
    float *k_norm;          /* [head_dim] qk_norm */
    float *post_attn_norm;  /* [hidden] post_norms */
    float *ffn_norm;        /* [hidden] */
    float *w_gate;          /* [ffn, hidden] */
    float *w_up;            /* [ffn, hidden] */
    float *w_down;          /* [hidden, ffn] */
    float *post_ffn_norm;   /* [hidden] post_norms */
} lw_layer_weights;

typedef struct {
    lw_model_config cfg;
    float *token_embd;        /* [vocab, hidden], unscaled */
    float *output_norm;       /* [hidden] */
    float *output;            /* [vocab, hidden]; == token_embd when tied */
    lw_layer_weights *layers; /* [n_layers] */
    float *inv_freq_global;   /* [head_dim / 2] RoPE of global layers */
    float *inv_freq_local;    /* [head_dim / 2] RoPE of sliding-window layers */
    float embed_scale;        /* sqrt(hidden) when cfg.scale_embeddings, else 1 */
    float attn_scale;         /* cfg.query_scale or 1/sqrt(head_dim) */
    /* NULL: the matrices above are fp32. Else their bf16 copies, and wqkv wo
     * w_gate_up w_down (with their views) and output are NULL here
     * (narrow_weights.h) */
    struct lw_narrow_weights *narrow;
} lw_model;

/* Frees a model's narrow copies and the set itself (NULL is fine); declared
 * here, defined in narrow_store.c, so that freeing a model does not make
 * model.c stand on the narrow weights, which stand on the model. */
void lw_narrow_weights_free(struct lw_narrow_weights *n);

/* The activations of one block for T rows; with save_acts every block keeps
 * its own set (what backward reads), otherwise all blocks share one. */
typedef struct {
    float *x_in;       /* [T, hidden] block input (residual stream) */
    float *xn;         /* [T, hidden] attn_norm(x_in) */
    float *rstd_attn;  /* [T] */
    float *qkv;        /* [T, (n_heads + 2 n_kv) * head_dim] fused projection */
    float *q;          /* [T, n_heads * head_dim] projected (pre qk-norm, pre RoPE) */
    float *k;          /* [T, n_kv * head_dim] projected */
    float *v;          /* [T, n_kv * head_dim] projected */
    float *q_rope;     /* [T, n_heads * head_dim] after qk-norm and RoPE */
    float *rstd_q;     /* [T * n_heads] qk_norm */
    float *rstd_k;     /* [T * n_kv] qk_norm */
    float *att;        /* [n_heads, Tq, Tk] attention probabilities */
    float *ao;         /* [T, n_heads * head_dim] attention output */
    float *proj;       /* [T, hidden] ao @ wo^T */
    float *proj_n;     /* [T, hidden] post_attn_norm(proj) (post_norms) */
    float *rstd_post_attn; /* [T] */
    float *x_mid;      /* [T, hidden] x_in + attention branch */
    float *fn;         /* [T, hidden] ffn_norm(x_mid) */
    float *rstd_ffn;   /* [T] */
    float *gate_up;    /* [T, 2 ffn] fused projection */
    float *gate;       /* [T, ffn] */
    float *up;         /* [T, ffn] */
    float *hid;        /* [T, ffn] act(gate) * up */
    float *down;       /* [T, hidden] hid @ w_down^T */
    float *down_n;     /* [T, hidden] post_ffn_norm(down) (post_norms) */
    float *rstd_post_ffn;  /* [T] */
} lw_layer_acts;

/* The field of a that holds slot s (plan.h), or NULL when s is not one of a
 * block's activations (the state's x, cache rows, xf, rstd_final, logits). */
float **lw_layer_acts_slot(lw_layer_acts *a, lw_plan_slot s);

/* Query rows per attention call when activations are not saved: bounds the
 * scratch att[] to n_heads * LW_ATT_ROWS * max_tokens floats. */
enum { LW_ATT_ROWS = 64, LW_CHUNK_ROWS = 256 };

typedef struct {
    int max_tokens;     /* KV cache capacity (positions) */
    int chunk;          /* rows per pass through the blocks (scratch capacity) */
    int att_rows;       /* query rows per attention call (att[] capacity) */
    bool save_acts;     /* keep every block's activations of the last call */
    int n_cached;       /* positions [0, n_cached) hold valid K/V in every layer */
    float *key_cache;   /* [n_layers, max_tokens, n_kv * head_dim], after qk-norm and RoPE */
    float *value_cache; /* [n_layers, max_tokens, n_kv * head_dim] */
    lw_layer_acts *acts; /* [acts_count]: n_layers with save_acts, else 1; pointers into arena */
    float *arena;       /* every activation, x, xf and rstd_final, at the plan's offsets (memory) */
    lw_plan_memory memory;   /* the model's plan laid out for (chunk, att_rows, max_tokens, save_acts) */
    int acts_count;
    float *x;           /* [chunk, hidden] residual stream */
    float *xf;          /* [chunk, hidden] output_norm(x) */
    float *rstd_final;  /* [chunk] */
    int *pos;           /* [chunk] positions of the rows */
    float *seg_k, *seg_v;   /* [max_tokens, n_kv * head_dim]: one segment's keys/values with the prefix's */
    /* saved-activation runs only: what the last call was */
    int last_pos0, last_T;
    bool last_complete;      /* it ran every block */
    int last_n_segments;     /* and its segments (lw_forward_args), for backward */
    int *last_segment_len;   /* [max_tokens] with save_acts */
} lw_state;

/* The bounds every model's config must keep (dims > 0, heads a multiple of
 * kv heads, head_dim even, sizes that fit): the files' loader checks them,
 * and random mode (random_weights.h) with the same words. */
lw_status lw_model_config_check(const lw_model_config *cfg);
void lw_model_free(lw_model *m);
/* Fills what the config implies beyond the weights (RoPE frequencies,
 * embedding and attention scales); every way of making an lw_model calls it. */
void lw_model_set_derived(lw_model *m);

/* max_tokens: KV cache positions. save_acts: keep the activations of every
 * block for the whole call (training; one call of up to max_tokens rows);
 * otherwise long inputs run in chunks through shared scratch. */
lw_status lw_state_alloc(const lw_model *m, int max_tokens, bool save_acts, lw_state **out);
void lw_state_free(lw_state *s);
static inline void lw_state_reset(lw_state *s) { s->n_cached = 0; }
/* Keeps the first n cached positions (n <= n_cached): a shared prompt head
 * stays while what followed it is dropped. */
static inline void lw_state_rewind(lw_state *s, int n) { s->n_cached = n < s->n_cached ? n : s->n_cached; }
static inline int lw_state_cached(const lw_state *s) { return s->n_cached; }

struct lw_receiver_adapters;   /* adapters.h */

typedef struct {
    const int *ids;        /* [T] token ids; ignored at rows that take an embedding */
    const float *embeds;   /* [T, hidden] input embeddings (as the first block sees them,
                              i.e. already scaled: HF inputs_embeds), or NULL */
    const bool *is_embed;  /* [T] which rows take embeds; NULL with embeds = all rows */
    int T;
    int pos0;              /* position of row 0; <= lw_state_cached(s) */
    float *logits;         /* NULL, or [vocab] for the last row, or [T, vocab] with all_logits */
    bool all_logits;
    int capture_layer;     /* -1 none; l = HF hidden_states[l]: 0 embeddings, 1..n_layers-1
                              the output of block l-1, n_layers the final-normed output */
    float *hidden_out;     /* [T, hidden] for capture_layer */
    const struct lw_receiver_adapters *adapters;  /* LoRA / deep prefix (adapters.h); NULL: none */
    /* 0: the rows are one sequence. Else they are n_segments sequences
     * (segment_len[] rows each, summing to T) that each continue the cache's
     * first pos0 positions on their own: a segment sees [0, pos0) and its
     * own rows, at positions pos0, pos0 + 1, ... Their K/V are scratch: the
     * cache then holds pos0 positions. One chunk of rows. A deep prefix
     * comes per segment (adapters' prefix_segments), before all it sees.
     * (Label scoring: every label's verbalizer after the same prompt in one
     * pass. Training: several examples after a shared prompt head, or whole
     * examples, in one pass whose backward follows, with save_acts.) */
    int n_segments;
    const int *segment_len;
} lw_forward_args;

/* Whether row r of a forward takes a given embedding (a->embeds) rather than
 * its token id's: the one rule the CPU and GPU forwards both read. */
static inline bool lw_forward_row_is_embed(const lw_forward_args *a, int r)
{
    return a->embeds && (!a->is_embed || a->is_embed[r]);
}

/* Runs the T rows. Without logits, stops after capture_layer; the upper
 * layers' cache then stays unwritten and lw_state_cached(s) is set to pos0. */
lw_status lw_forward(const lw_model *m, lw_state *s, const lw_forward_args *a);

/* ---- generate.c -------------------------------------------------------- */
typedef struct {
    int max_new;
    float temperature;     /* 0 = greedy */
    float top_p;           /* nucleus sampling; 0 or >= 1 = off */
    uint64_t seed;
    const int *stop_ids;   /* generation ends after emitting one of these */
    int n_stop;
    /* called for each new token; return false to stop. May be NULL. */
    bool (*on_token)(void *user, int token);
    void *user;
} lw_generate_args;

/* Feeds the prompt (from position 0, resetting the cache), then samples up
 * to max_new tokens into out[max_new]; *n_out gets the count (a stop token
 * that ended generation is included). */
lw_status lw_generate(const lw_model *m, lw_state *s, const int *prompt, int n_prompt,
                      const lw_generate_args *a, int *out, int *n_out);

/* The generation loop itself, over any backend's forward (CPU: lw_generate;
 * GPU: lw_gpu_generate): reset() empties the cache, forward() runs rows
 * from a position and leaves the last row's logits, cached() says how many
 * positions hold K/V; capacity is the cache's size. */
typedef struct {
    const char *name;                      /* the model, for messages */
    int vocab, capacity;
    void *ctx;
    void (*reset)(void *ctx);
    lw_status (*forward)(void *ctx, const lw_forward_args *a);
    int (*cached)(void *ctx);
} lw_decoder;

lw_status lw_generate_with(const lw_decoder *d, const int *prompt, int n_prompt, const lw_generate_args *a, int *out,
                           int *n_out);

/* Picks a token from logits[vocab]: the argmax when temperature is 0, else
 * a draw from softmax(logits / temperature), cut to the top_p nucleus.
 * logits is overwritten with probabilities when sampling. */
int lw_sample(float *logits, int vocab, float temperature, float top_p, lw_rng *rng);

/* ---- model_backward.c ---------------------------------------------------
 * Backward through the frozen model to its input embeddings (the bridge's
 * training signal); no weight gradients. Needs the last lw_forward on s to
 * have run with save_acts, pos0 = 0 and logits requested (so every block
 * ran); the logits themselves are not read. */
typedef struct lw_backward_scratch lw_backward_scratch;

/* Gradient buffers for up to max_tokens rows, allocated once per state. */
lw_status lw_backward_scratch_alloc(const lw_model *m, int max_tokens, lw_backward_scratch **out);
void lw_backward_scratch_free(lw_backward_scratch *g);

/* dlogits [T, vocab] for the T rows of the last call (rows of zeros skip the
 * output projection); d_embeds [T, hidden] is written (not accumulated) with
 * the gradient w.r.t. the first block's input (HF inputs_embeds), at every
 * row, those fed by token ids included. */
lw_status lw_model_backward(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const float *dlogits,
                            float *d_embeds);
/* The same for a loss on a few rows only: rows[n_rows] strictly increasing
 * in [0, T), dlogits_rows [n_rows, vocab] their gradients in that order. */
lw_status lw_model_backward_rows(const lw_model *m, const lw_state *s, lw_backward_scratch *g, const int *rows,
                                 int n_rows, const float *dlogits_rows, float *d_embeds);
/* lw_model_backward_rows through the adapters the last forward ran with
 * (the same ad, dropout seed included): also adds the LoRA gradients to
 * ad->lora's grads and the prefix's to ad->d_prefix_k / d_prefix_v. With
 * ad NULL it is lw_model_backward_rows. */
lw_status lw_model_backward_adapted(const lw_model *m, const lw_state *s, lw_backward_scratch *g,
                                    const struct lw_receiver_adapters *ad, const int *rows, int n_rows,
                                    const float *dlogits_rows, float *d_embeds);

#endif
