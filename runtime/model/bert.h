/* BERT encoders (the BertModel of Hugging Face transformers): the
 * interlingua's frozen sentence encoder, all-MiniLM-L6-v2 (6 layers, hidden
 * 384, 12 heads). Post-LayerNorm layers, bidirectional attention, exact
 * (erf) GELU, learned absolute positions and token type embeddings.
 *
 *   x = LN(word[id] + position[t] + type[type_id])
 *   per layer: x = LN1(x + O(attention(Qx, Kx, Vx; mask)))
 *              x = LN2(x + W2 gelu(W1 x))
 *
 * Forward only, on the CPU, fp32: the encoder stays frozen, so there is no
 * backward through it (what is trained sits after it, on its outputs).
 * Weights: a Hugging Face folder (config.json + model.safetensors, F32, F16
 * or BF16; names with or without the "bert." prefix; the pooler, which
 * sentence-transformers does not use, is ignored). Checked against
 * transformers by tests/check_bert.c. */
#ifndef LW_BERT_H
#define LW_BERT_H

#include "status.h"

typedef struct {
    int vocab, hidden, n_layers, n_heads, head_dim, ffn;
    int max_positions, n_types;
    float eps;   /* layer_norm_eps */
} lw_bert_config;

typedef struct {
    float *wq, *bq, *wk, *bk, *wv, *bv;   /* [hidden, hidden] as [out, in], [hidden] */
    float *wo, *bo, *ln1_w, *ln1_b;       /* attention output and its LayerNorm */
    float *w1, *b1, *w2, *b2;             /* [ffn, hidden], [ffn], [hidden, ffn], [hidden] */
    float *ln2_w, *ln2_b;
} lw_bert_layer;

typedef struct {
    lw_bert_config cfg;
    float *word, *position, *type;   /* [vocab|max_positions|n_types, hidden] */
    float *emb_ln_w, *emb_ln_b;
    lw_bert_layer *layers;
} lw_bert;

/* path: the folder holding config.json and model.safetensors (or the
 * .safetensors file, config.json beside it). */
lw_status lw_bert_open(const char *path, lw_bert **out);
void lw_bert_free(lw_bert *m);

/* Last hidden states hidden[T, cfg.hidden] of one sequence of T tokens
 * (1 <= T <= max_positions; positions 0..T-1, as transformers numbers them
 * whatever the mask). types: token type ids (NULL: all 0). mask: 1 for a
 * token, 0 for padding (NULL: all 1); padded keys are not attended to,
 * padded rows are still computed (they attend to the tokens), as
 * transformers does; at least one token must be unmasked. */
lw_status lw_bert_forward(const lw_bert *m, const int *ids, const int *types, const int *mask, int T,
                          float *hidden);

/* Mean of the unmasked rows of hidden[T, H] (mask NULL: all), the
 * sentence-transformers pooling of all-MiniLM-L6-v2 (which then L2-normalizes). */
lw_status lw_bert_mean_pool(const float *hidden, const int *mask, int T, int H, float *pooled);

#endif
