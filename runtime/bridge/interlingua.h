/* The shared interlingua (issue #24 item 2): one encoder, M latents, one
 * adapter per reader.
 *
 *   feats [T, F]   token features of a frozen encoder (MiniLM: F = 384)
 *   z     [M, d_z] = resampler(feats): M learned queries cross-attending
 *                    over the features. This is the bridge's Perceiver
 *                    (bridge.h) with sender_hidden F, receiver_hidden d_z and
 *                    calibration none, reused as it is: its input_norm,
 *                    blocks, forward and backward.
 *   soft_r [M, R_r] = adapter_r(z) for reader r:
 *                    u   = z W_in^T + b_in                       (d_z -> R_r)
 *                    v   = u + W2 gelu(W1 u + b1) + b2           (residual two-layer MLP, R_r -> F_a -> R_r)
 *                    out = v / sqrt(mean(v^2) + 1e-6) * scale    (RMS calibration per token)
 *                    scale is learned, initialised to the reader's embedding
 *                    RMS, so the soft tokens start at the size of its own
 *                    input embeddings.
 *
 * The latents are the payload: sent once, read by every reader through its
 * own adapter (lw_interlingua_payload counts their bytes). Training sums
 * the readers' losses per example: each reader's backward adds its
 * adapter's gradient and its share of dz, then the encoder's backward runs
 * once on the summed dz. Every parameter lives in flat buffers (the
 * encoder's in enc.params, each adapter's in its own params), each with
 * grads beside it. One example at a time. */
#ifndef LW_INTERLINGUA_H
#define LW_INTERLINGUA_H

#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "bridge.h"
#include "status.h"

enum { LW_IL_MAX_READERS = 4 };

typedef struct {
    int d_z, hidden, ffn, M;
    float embed_rms;
    size_t n_params;
    float *params, *grads;
    size_t w_in, b_in, w1, b1, w2, b2, scale;   /* offsets into params / grads */
    /* the last forward's activations, for backward */
    float *z, *u, *h1, *a, *v, *rstd;
    float *du, *dv, *dh;                        /* scratch */
} lw_il_adapter;

lw_status lw_il_adapter_create(lw_il_adapter *ad, int d_z, int hidden, int ffn, int M, float embed_rms);
void lw_il_adapter_free(lw_il_adapter *ad);
/* w_in normal(0, 1/sqrt(d_z)), W1 and W2 normal(0, 0.02), biases 0, scale embed_rms. */
void lw_il_adapter_init(lw_il_adapter *ad, uint64_t seed);
/* z [M, d_z] -> out [M, hidden]; keeps what backward needs. */
void lw_il_adapter_forward(lw_il_adapter *ad, const float *z, float *out);
/* dout [M, hidden] -> grads (+=) and dz (+=, may be NULL). */
void lw_il_adapter_backward(lw_il_adapter *ad, const float *dout, float *dz);

typedef struct {
    lw_bridge enc;                 /* the resampler: [T, F] -> [M, d_z] */
    lw_bridge_acts *acts;
    int max_T;
    int n_readers;
    lw_il_adapter readers[LW_IL_MAX_READERS];
    float *z, *dz;                 /* [M, d_z] the last latents and their summed gradient */
} lw_interlingua;

typedef struct {
    int feat_dim;                  /* F */
    int d_z;
    int adapter_ffn;               /* F_a */
    int max_T;                     /* encoder tokens at most */
    lw_bridge_config resampler;    /* kind perceiver; soft_tokens = M; calibration is forced to none */
    int n_readers;
    int reader_hidden[LW_IL_MAX_READERS];
    float reader_embed_rms[LW_IL_MAX_READERS];
} lw_interlingua_config;

lw_status lw_interlingua_create(lw_interlingua *il, const lw_interlingua_config *cfg);
void lw_interlingua_free(lw_interlingua *il);
/* The encoder as lw_bridge_init(seed), reader r's adapter from seed + 1 + r. */
void lw_interlingua_init(lw_interlingua *il, uint64_t seed);
void lw_interlingua_zero_grad(lw_interlingua *il);   /* grads and dz */
static inline int lw_interlingua_M(const lw_interlingua *il) { return il->enc.cfg.soft_tokens; }

/* feats [T, F] -> il->z [M, d_z] (and into z_out if not NULL). */
lw_status lw_interlingua_encode(lw_interlingua *il, const float *feats, int T, float *z_out);
/* Reader r's soft tokens from il->z: out [M, hidden_r]. */
lw_status lw_interlingua_read(lw_interlingua *il, int r, float *out);
/* After lw_interlingua_read(r): dsoft [M, hidden_r] into r's adapter grads and il->dz. */
void lw_interlingua_read_backward(lw_interlingua *il, int r, const float *dsoft);
/* il->dz into the encoder's grads (after every reader's read_backward). */
void lw_interlingua_encode_backward(lw_interlingua *il);

/* AdamW over the encoder's trainable tensors (lw_bridge_adamw_step) and
 * every adapter (no weight decay on biases and scales): one optimiser state
 * per part. */
typedef struct {
    lw_adamw enc;
    lw_adamw readers[LW_IL_MAX_READERS];
    int n_readers;
} lw_il_optim;
lw_status lw_il_optim_init(lw_il_optim *o, const lw_interlingua *il);
void lw_il_optim_free(lw_il_optim *o);
void lw_interlingua_adamw_step(lw_interlingua *il, lw_il_optim *o, float lr, float weight_decay);
/* Every trainable gradient as one vector: its L2 norm, and clipping it to
 * max_norm (returns the norm before; as lw_clip_grad_norm). */
double lw_interlingua_clip_grads(lw_interlingua *il, float max_norm);

/* One payload, two readers (issue #24 item 4). */
typedef struct {
    size_t fp32_bytes, bf16_bytes;   /* M * d_z * 4, * 2 */
    size_t text_bytes;               /* the text's UTF-8 bytes */
    double ratio_fp32, ratio_bf16;   /* text bytes / payload bytes */
    double compression;              /* prompt tokens / M */
} lw_il_payload;
lw_il_payload lw_interlingua_payload(int M, int d_z, size_t text_bytes, int prompt_tokens);

#endif
