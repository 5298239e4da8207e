/* The description of one model: what a manifest's sender/receiver block holds,
 * what `lwc inspect` reads off a weights file, and what the CPU forward pass
 * and the generated CUDA kernels are both derived from. One struct, so the two
 * paths cannot drift. */
#ifndef LW_MODEL_CONFIG_H
#define LW_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum { LW_PATH_MAX = 4096, LW_NAME_MAX = 64, LW_MAX_SPECIAL = 16 };

/* What each family implies is in family.c's table (family.h). */
typedef enum {
    LW_FAMILY_LLAMA,
    LW_FAMILY_GEMMA3,
    LW_FAMILY_LLAMA2C,
    LW_FAMILY_QWEN2,
    LW_FAMILY_QWEN3,
    LW_FAMILY_COUNT
} lw_family;
typedef enum { LW_ACT_SILU, LW_ACT_GELU_TANH } lw_activation;
typedef enum { LW_NORM_RMSNORM, LW_NORM_RMSNORM_GEMMA /* x * (1 + w) */ } lw_norm_kind;
typedef enum { LW_ROPE_SCALING_NONE, LW_ROPE_SCALING_LINEAR, LW_ROPE_SCALING_LLAMA3 } lw_rope_scaling_kind;
typedef enum { LW_WEIGHTS_GGUF, LW_WEIGHTS_SAFETENSORS, LW_WEIGHTS_LLAMA2C } lw_weights_format;
typedef enum {
    LW_TOKENIZER_BPE_JSON,     /* byte-level BPE, HF tokenizer.json */
    LW_TOKENIZER_SPM_JSON,     /* SentencePiece BPE, HF tokenizer.json */
    LW_TOKENIZER_SPM_MODEL,    /* SentencePiece tokenizer.model (protobuf) */
    LW_TOKENIZER_GGUF,         /* whatever the GGUF metadata carries */
    LW_TOKENIZER_LLAMA2C,      /* llama2.c tokenizer.bin */
    LW_TOKENIZER_GPT2_FILES,   /* encoder.json + vocab.bpe */
    LW_TOKENIZER_WORDPIECE_JSON /* BERT WordPiece, HF tokenizer.json (encoders only: not a manifest kind) */
} lw_tokenizer_kind;
typedef enum { LW_CHAT_NONE, LW_CHAT_CHATML, LW_CHAT_GEMMA, LW_CHAT_LLAMA3, LW_CHAT_MISTRAL } lw_chat_template;

typedef struct {
    lw_rope_scaling_kind kind;
    float factor;            /* linear and llama3 */
    float low_freq_factor;   /* llama3 */
    float high_freq_factor;  /* llama3 */
    int original_context;    /* llama3: original_max_position_embeddings */
} lw_rope_scaling;

/* How a model and its tokenizer are loaded. Never from a manifest: the
 * command layer decides it once (lw_load_options_from_env, lw_cli.h, from
 * LWC_RANDOM_WEIGHTS and LWC_IGNORE_STOP; a command adds its --dtype) and sets it on the pair's model
 * configs; the loaders (random_weights.h) only read it. All zero = the
 * files the config names, with their stop tokens. */
/* How a frozen model holds its big matrices (narrow_weights.h): fp32 (the
 * reference, the default), bf16 (half the bytes, fp32 sums), q8 (int8
 * blocks of 32 made at load) or native (the GGUF file's own blocks). */
typedef enum { LW_WEIGHTS_F32 = 0, LW_WEIGHTS_BF16 = 1, LW_WEIGHTS_Q8 = 2, LW_WEIGHTS_NATIVE = 3 } lw_weights_dtype;
/* "fp32" / "bf16" / "q8" / "native"; and the parse of a --dtype value
 * (false for anything else). narrow_weights.c. */
const char *lw_weights_dtype_name(lw_weights_dtype d);
bool lw_weights_dtype_parse(const char *s, lw_weights_dtype *out);

typedef struct {
    bool random_weights;   /* seeded random weights of the config's shapes and a byte tokenizer */
    uint64_t seed;         /* of random_weights */
    bool ignore_stop;      /* the loaded model carries no stop tokens (eos_id -1, no stop ids) */
    lw_weights_dtype dtype; /* the frozen matrices once loaded (a command's --dtype; CPU runs only) */
    bool backward;          /* bf16: the model will be differentiated (lw train's receiver), so it keeps
                               the row-major copy the dX products read (narrow_weights.h) */
} lw_load_options;

typedef struct {
    char name[LW_NAME_MAX];        /* free text, for messages and reports */
    lw_family family;
    int hidden;                    /* d_model */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;                  /* may differ from hidden / n_heads (Gemma 3) */
    int ffn;                       /* intermediate size */
    lw_activation activation;
    lw_norm_kind norm;
    float norm_eps;
    float rope_base;               /* global layers */
    float rope_base_local;         /* sliding-window layers (Gemma 3); = rope_base otherwise */
    lw_rope_scaling rope_scaling;
    int sliding_window;            /* 0 = none */
    int global_every;              /* every Nth layer is global (Gemma 3: 6); 0 = all global */
    bool qk_norm;                  /* per-head RMSNorm on q and k (Gemma 3, Qwen3) */
    bool post_norms;               /* post-attention and post-FFN norms (Gemma 3) */
    bool scale_embeddings;         /* multiply embeddings by sqrt(hidden) (Gemma 3) */
    bool qkv_bias;                 /* biases on the q, k and v projections (Qwen2) */
    float query_scale;             /* attention scale; 0 = 1/sqrt(head_dim) */
    int vocab;
    int context;                   /* max positions */
    bool tied_embeddings;
    float embed_rms;               /* RMS of the input embedding matrix as the model sees it */
    lw_weights_format weights_format;
    char weights_path[LW_PATH_MAX];    /* resolved: absolute or relative to cwd */
    lw_tokenizer_kind tokenizer_kind;
    char tokenizer_path[LW_PATH_MAX];  /* resolved; may equal weights_path for GGUF */
    lw_chat_template chat_template;
    int bos_id, eos_id, pad_id;        /* -1 = none */
    int n_stop_ids;
    int stop_ids[LW_MAX_SPECIAL];      /* extra end-of-turn ids (<|im_end|>, <end_of_turn>) */
    lw_load_options load;              /* set by the command layer, not by a manifest */
} lw_model_config;

/* Is layer l a sliding-window (local) layer? */
static inline bool lw_layer_is_local(const lw_model_config *m, int l)
{
    return m->sliding_window > 0 && m->global_every > 0 && (l + 1) % m->global_every != 0;
}

/* Which RoPE layout the weights expect: true = rotate pairs (2i, 2i+1),
 * false = rotate halves (i, i + head_dim/2). From the family table (family.c). */
bool lw_rope_interleaved(const lw_model_config *m);

const char *lw_family_name(lw_family f);
const char *lw_activation_name(lw_activation a);
const char *lw_norm_name(lw_norm_kind n);
const char *lw_rope_scaling_name(lw_rope_scaling_kind k);
const char *lw_weights_format_name(lw_weights_format f);
const char *lw_tokenizer_kind_name(lw_tokenizer_kind k);
const char *lw_chat_template_name(lw_chat_template t);

#endif
