/* The CPU ops of the model families and the bridge, fp32, row-major.
 * Each op lives in its own file runtime/ops/op_<name>.c with its forward and its
 * backward side by side; every backward is checked by finite differences
 * (tests/check_ops.c) and every CUDA kernel against this CPU twin.
 *
 * Conventions: T rows (tokens), C columns; backward functions ACCUMULATE
 * (+=) into their gradient outputs, and any gradient pointer may be NULL when
 * that gradient is not wanted (frozen weights). */
#ifndef LW_OPS_H
#define LW_OPS_H

#include <stdbool.h>

#include "model_config.h"

/* ---- op_matmul.c: y[T,out] = x[T,in] @ w[out,in]^T (+ b[out]) ---------- */
void matmul_forward(float *y, const float *x, const float *w, const float *b, int T, int in, int out);
void matmul_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                     int T, int in, int out);
/* The plain-C loops used when there is no BLAS; always built, so the tests can
 * hold the BLAS path to them. */
void matmul_forward_reference(float *y, const float *x, const float *w, const float *b, int T, int in,
                              int out);
void matmul_backward_reference(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, int T, int in, int out);

/* ---- op_rmsnorm.c: y = x * rstd * g, g = w (llama) or 1 + w (gemma) ------
 * rstd[T] is written by forward and read by backward. w may be NULL (g = 1). */
void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps,
                     lw_norm_kind kind);
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      const float *rstd, int T, int C, lw_norm_kind kind);

/* ---- op_layernorm.c: y = (x - mean) * rstd * w + b (bridge, prefix generator) */
void layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                       int T, int C, float eps);
void layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                        const float *mean, const float *rstd, int T, int C);

/* ---- op_rope.c: rotary position embedding, in place on x[T, n_heads, head_dim]
 * inv_freq[head_dim/2] from rope_inv_freq (base and scaling baked in).
 * interleaved: rotate pairs (x[2i], x[2i+1]) (GGUF llama, llama2.c);
 * otherwise rotate halves (x[i], x[i + head_dim/2]) (HF, Gemma). */
void rope_inv_freq(float *inv_freq, int head_dim, float base, const lw_rope_scaling *scaling);
void rope_forward(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                  bool interleaved);
/* dx is rotated back in place (the rotation is orthogonal). */
void rope_backward(float *dx, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                   bool interleaved);

/* ---- op_attention.c: softmax(q k^T * scale + mask) v, grouped-query -------
 * q[Tq, Hq, D], k and v [Tk, Hkv, D], out[Tq, Hq, D]; Hq % Hkv == 0.
 * Query i sits at key position i + q_offset (q_offset = Tk - Tq for a
 * continuation over a cache or a prefix). att[Hq, Tq, Tk] keeps the
 * probabilities for backward (masked entries are 0); forward takes att NULL
 * when no backward follows (an online softmax: no Tq x Tk scores at all). */
typedef struct {
    bool causal;       /* key j visible to query i only if j <= i + q_offset */
    int q_offset;
    int window;        /* > 0: also j > i + q_offset - window (sliding window) */
    float scale;       /* usually 1/sqrt(D) */
} lw_attention_params;
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p);
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p);
/* The same with keys [0, n_sink) exempt from the sliding window (a deep
 * prefix that every query sees; the causal mask still applies); n_sink 0
 * is the plain op. */
void attention_forward_sink(float *out, float *att, const float *q, const float *k, const float *v,
                            int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink);
void attention_backward_sink(float *dq, float *dk, float *dv, const float *dout, const float *att,
                             const float *q, const float *k, const float *v,
                             int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink);

/* ---- op_activation.c: gated FFN activations and plain GELU -------------
 * glu: out = act(gate) * up, act = silu (SwiGLU) or gelu_tanh (GeGLU). */
void glu_forward(float *out, const float *gate, const float *up, int n, lw_activation act);
void glu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                  lw_activation act);
void gelu_tanh_forward(float *y, const float *x, int n);
void gelu_tanh_backward(float *dx, const float *dy, const float *x, int n);

/* ---- op_gelu.c: exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (BERT's "gelu") */
void gelu_erf_forward(float *y, const float *x, int n);
void gelu_erf_backward(float *dx, const float *dy, const float *x, int n);

/* ---- op_embedding.c: y[T, C] = table[ids[t]] * scale (frozen: no backward) */
void embedding_forward(float *y, const int *ids, const float *table, int T, int C, float scale);

/* ---- op_cross_entropy.c: mean over the T rows whose target >= 0 ---------
 * Writes probs[T, V] (softmax) and returns the mean loss; backward writes
 * dlogits (+=) = (probs - onehot) * dloss / count. */
float cross_entropy_forward(float *probs, const float *logits, const int *targets, int T, int V);
void cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int T, int V, float dloss);

/* ---- op_head_logsoftmax.c: the output head fused with log-softmax --------
 * For n_pairs (row, token) pairs: logp[k] = x[r] . w[id] - lse[r], with
 * lse[t] = logsumexp_v x[t] . w[v] over the head w[V, H] (fp32), the
 * vocabulary streamed HEAD_BLOCK rows of w at a time: no V-wide buffer.
 * lse[T] is written by forward and read by backward; scratch holds
 * HEAD_SUM_ROWS x HEAD_BLOCK floats (HEAD_SCRATCH). Rows go HEAD_SUM_ROWS
 * at a time (T may be anything): the head is streamed, and each block of
 * it packed by the BLAS, once per HEAD_SUM_ROWS rows (256: Banking77's
 * ~180 scored rows an example read Gemma's 671 MB head once, not thrice). */
#define HEAD_BLOCK 512
#define HEAD_SUM_ROWS 256
#define HEAD_SCRATCH ((size_t)HEAD_SUM_ROWS * HEAD_BLOCK)
void head_logsoftmax_forward(float *logp, float *lse, const float *x, const float *w, int T, int H, int V,
                             const int *pair_row, const int *pair_id, int n_pairs, float *scratch);
/* dx[T, H] += and dw[V, H] += (either may be NULL) the gradients of
 * sum_k dlogp[k] logp[k]: dlogits = onehot - softmax, recomputed per block. */
void head_logsoftmax_backward(float *dx, float *dw, const float *dlogp, const float *x, const float *w, int T, int H,
                              int V, const int *pair_row, const int *pair_id, int n_pairs, const float *lse,
                              float *scratch);

#endif
