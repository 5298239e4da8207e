/* Tiny synthetic models shared by the suites that check the model, its
 * adapters and the training loops on random weights (lw_model_init_random):
 * small enough that finite differences over every parameter stay fast, with
 * the features of the real families (GQA, RoPE layouts, Gemma 3's norms,
 * sliding windows and tied output). Also the balanced two-label data set the
 * training suites fill with their own synthetic inputs. */
#ifndef LW_TL_TINY_MODELS_H
#define LW_TL_TINY_MODELS_H

#include "dataset.h"
#include "model.h"
#include "model_config.h"
#include "train.h"

/* Llama-like: hidden 16, 2 layers, 4 heads over 2 KV heads of dim 4, SiLU,
 * vocab 11, untied output. The weights format picks the RoPE layout
 * (lw_rope_interleaved): GGUF rotates pairs, safetensors halves. */
lw_model_config tl_tiny_llama_config(lw_weights_format format);

/* Gemma3-like: hidden 16, 3 layers (0 and 1 local with the given sliding
 * window, 2 global), head_dim 6 != hidden / n_heads as in Gemma 3, qk-norm,
 * post norms, GeGLU, scaled embeddings, query scale 0.3, vocab 11, tied. */
lw_model_config tl_tiny_gemma3_config(int window);

/* Qwen2-like: hidden 16, 2 layers, 4 heads over 2 KV heads of dim 4, q/k/v
 * biases, SiLU, halves RoPE (safetensors), vocab 11, tied. Qwen3-like: the
 * same with head_dim 6, plain-gain qk-norm, no biases, untied. Both take
 * the rest from the family table. */
lw_model_config tl_tiny_qwen2_config(void);
lw_model_config tl_tiny_qwen3_config(void);

/* The Gemma-like receiver of the training suites: hidden 16, 2 layers of 2
 * heads over 1 KV head of dim 8, every second layer global, vocab 24, no
 * BOS/EOS/PAD. Local layers see `window` rows; with scaled embeddings the
 * inputs have RMS sqrt(16) = 4 (unit-normal embeddings), without them 1. */
lw_model_config tl_tiny_receiver_config(int window, bool scale_embeddings);

/* The training suites' pair: the receiver above (window 4, scaled
 * embeddings, seed 11) with the layout [1 5 6] <m_soft soft tokens> [7 8]
 * and verbalizers {10} and {11 12} (two tokens, so multi-token scoring is
 * exercised), a one-block perceiver bridge (seed 3) from s_hidden-wide
 * sender states, and the trainer over them. Fails the test on an error. */
void tl_tiny_trainer(int m_soft, int s_hidden, float diversity, lw_model **receiver, lw_receiver_layout *layout,
                     lw_bridge *bridge, lw_trainer *trainer);

/* n examples with labels 0, 1, 0, 1, ..., the text "synthetic" and the
 * label counts; free with lw_dataset_free. Fails the test if out of memory. */
void tl_alternating_dataset(lw_dataset *d, int n);

/* The training suites' synthetic task: tl_tiny_trainer (M soft tokens from
 * 8-wide sender states) and n_ex alternating examples whose states are 3..6
 * rows of noise (std 0.5), +-1.5 along the first four dimensions by class,
 * and constant offsets of -20 and +40 in the last two, like the "massive
 * activations" of real senders (training fails without input_norm). */
enum { TL_SENDER_HIDDEN = 8 };
typedef struct {
    lw_model *receiver;
    lw_receiver_layout layout;
    lw_bridge bridge;
    lw_trainer trainer;
    lw_dataset data;
    lw_sender_cache states;
} tl_synthetic_pair;

void tl_synthetic_pair_open(tl_synthetic_pair *p, int m_soft, int n_ex, float diversity, uint64_t data_seed);
void tl_synthetic_pair_close(tl_synthetic_pair *p);

/* Sum of log p(cont[i] | prompt, cont[<i]) from one fresh forward over
 * prompt + cont (all logits, a log-softmax per row in double): the
 * reference the label and choice scorers are held to. */
double tl_continuation_logprob(const lw_model *m, const int *prompt, int n, const int *cont, int L);

#endif
