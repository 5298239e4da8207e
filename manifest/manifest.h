/* A model-pair manifest: the sender and receiver descriptions, the bridge,
 * training defaults and build targets. The JSON schema is documented field by
 * field in docs/manifest.md; this is its parsed, validated form. */
#ifndef LW_MANIFEST_H
#define LW_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge_config.h"
#include "model_config.h"
#include "status.h"

enum { LW_MAX_ARCHS = 8 };

typedef struct {
    float lr;
    int steps;
    int batch;
    int grad_accum;
    int warmup_steps;
    float weight_decay;
    float grad_clip;
    unsigned long long seed;
    float diversity_weight;
    bool class_balanced;
} lw_train_config;

enum { LW_LORA_MAX_LIST = 256 };

/* LoRA on the receiver (lora.h). targets: bits 1u << target, targets in
 * lw_lora_target's order q 0, k 1, v 2, o 3, gate 4, up 5, down 6. */
typedef struct {
    int rank;              /* 1..1024 */
    float alpha;           /* scale = alpha / rank */
    float dropout;         /* [0, 1) on the adapter's input, training only */
    unsigned targets;
    int first_layers;      /* > 0: layers 0..first_layers-1; 0: layer_list (empty list: every layer) */
    int n_layer_list;
    int layer_list[LW_LORA_MAX_LIST];
} lw_lora_config;

/* The deep-prefix generator (deep_prefix.h). */
typedef struct {
    int length;            /* P keys/values per layer, 1..256 */
    float dropout;         /* [0, 1), training only */
    int hidden;            /* the generator's width d, 1..65536 */
} lw_deep_prefix_config;

/* The shared interlingua (the optional "interlingua" block; interlingua.h):
 * a frozen BERT encoder (MiniLM) read by M learned queries into M x d_z
 * latents, one adapter per reader; the readers are the pair's sender and
 * receiver models, both frozen, both reading the same latents. */
typedef struct {
    char encoder[LW_PATH_MAX];   /* the BERT folder (config.json, model.safetensors, tokenizer.json) */
    int latents;                 /* M, 1..256 */
    int d_z;                     /* latent width, 1..65536 */
    int width, depth, heads, ffn_mult;   /* the resampler (the bridge's perceiver) */
    int adapter_ffn;             /* each adapter's MLP width */
    int max_encoder_tokens;      /* encoder tokens kept, [CLS] and [SEP] included: 2..512 */
    float first_token_weight;    /* the answer loss's first-token term, >= 0 */
} lw_interlingua_manifest;

typedef struct {
    char name[LW_NAME_MAX];            /* [A-Za-z0-9._-]+ ; names build/<name>/ */
    char path[LW_PATH_MAX];            /* the manifest file, as given */
    lw_model_config sender;
    lw_model_config receiver;
    lw_bridge_config bridge;
    lw_train_config train;
    bool has_lora;                     /* the optional "lora" block */
    lw_lora_config lora;
    bool has_deep_prefix;              /* the optional "deep_prefix" block */
    lw_deep_prefix_config deep_prefix;
    bool has_interlingua;              /* the optional "interlingua" block */
    lw_interlingua_manifest interlingua;
    int n_archs;
    int gpu_archs[LW_MAX_ARCHS];       /* 80 for sm_80, 90 for sm_90 ... */
} lw_manifest;

/* Parses and validates a manifest file. Relative paths inside are resolved
 * against the manifest's folder; "$VAR" and "${VAR}" are expanded from the
 * environment. Every error names the file, the JSON path
 * ("receiver.n_kv_heads") and what was expected. */
lw_status lw_manifest_load(const char *path, lw_manifest *out);

/* Same from a buffer (for the fuzzer and tests); `path` is used in messages
 * and to resolve relative paths. */
lw_status lw_manifest_parse(const char *text, size_t len, const char *path, lw_manifest *out);

/* Writes a model block as JSON (the manifest's schema) to a malloc'd string;
 * what `lwc inspect` prints. */
char *lw_model_config_to_json(const lw_model_config *c);

#endif
