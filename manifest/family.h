/* The model families: one table (family.c) says, per family, which names
 * it goes by in a manifest, in a Hugging Face config.json (model_type) and
 * in a GGUF file (general.architecture), and what the architecture implies
 * unless a file or a manifest says otherwise. The manifest validator, the
 * GGUF loader and the config.json reader all fill a config from here, so a
 * family is described once; docs/manifest.md shows the table and how to
 * add a family.
 *
 * Norm gains. Gemma's RMSNorm multiplies by (1 + w) and Hugging Face stores
 * w; llama.cpp's converter stores 1 + w. Every loader hands gains over as
 * the multiplier itself (the safetensors reader adds the 1 for a family
 * with norm_adds_one), so a config read off a weights file says plain
 * rmsnorm, while a manifest, which describes the architecture, defaults to
 * rmsnorm_gemma for such a family; lw_model_load converts the loaded gains
 * to whichever the config says. */
#ifndef LW_FAMILY_H
#define LW_FAMILY_H

#include <stdbool.h>
#include <stddef.h>

#include "model_config.h"

enum { LW_FAMILY_MAX_ALIASES = 4 };

typedef struct {
    lw_family id;
    const char *name;                                  /* manifest "family" */
    const char *hf_model_types[LW_FAMILY_MAX_ALIASES]; /* config.json model_type; NULL-ended */
    const char *gguf_archs[LW_FAMILY_MAX_ALIASES];     /* GGUF general.architecture; NULL-ended */
    lw_activation activation;
    bool norm_adds_one;       /* RMSNorm multiplies by (1 + w), HF stores w (Gemma) */
    bool qk_norm;             /* per-head RMSNorm of q and k before RoPE */
    bool post_norms;          /* norms after attention and after the MLP */
    bool scale_embeddings;    /* embeddings times sqrt(hidden) */
    bool qkv_bias;            /* biases on the q, k, v projections (not o) */
    int sliding_window;       /* window of local layers; 0 = every layer global */
    int global_every;         /* every Nth layer global when windowed */
    float rope_base_local;    /* RoPE base of local layers; 0 = rope_theta */
    bool rope_interleaved;    /* weights rotate pairs whatever the format (llama2.c) */
    bool gguf_rope_interleaved; /* llama.cpp's converter permuted the q/k rows to pairs */
    lw_chat_template chat_template; /* what `lwc inspect` writes when the file says nothing */
    /* A piece of an HF tensor name only this family's checkpoints have; the
     * safetensors reader opens tensors before it reads config.json, and
     * tells a norm_adds_one family by it. NULL when not needed. */
    const char *hf_marker;
} lw_family_info;

/* The entry of a family (f < LW_FAMILY_COUNT), or NULL. */
const lw_family_info *lw_family_get(lw_family f);
/* Look-ups by the names above; NULL when no family goes by that name. */
const lw_family_info *lw_family_by_name(const char *name);
const lw_family_info *lw_family_by_hf_type(const char *model_type);
const lw_family_info *lw_family_by_gguf_arch(const char *arch);

/* "a, b, c": the names one kind of look-up accepts, for error messages. */
typedef enum { LW_FAMILY_NAMES_MANIFEST, LW_FAMILY_NAMES_HF, LW_FAMILY_NAMES_GGUF } lw_family_names_of;
void lw_family_list(lw_family_names_of which, char *buf, size_t cap);

/* Whose norm convention a config is filled for (see the top of this file). */
typedef enum {
    LW_FAMILY_AS_WRITTEN, /* a manifest: the architecture's own norm kind */
    LW_FAMILY_AS_LOADED   /* read off a weights file: gains are multipliers, plain rmsnorm */
} lw_family_view;

/* Sets m->family and every field the family implies: activation, norm,
 * qk_norm, post_norms, scale_embeddings, qkv_bias, sliding_window,
 * global_every, query_scale (0) and rope_base_local (0 where the family has
 * no base of its own: lw_family_local_base then gives rope_theta). */
void lw_family_defaults(lw_model_config *m, const lw_family_info *f, lw_family_view view);

/* The RoPE base of local layers: the family's own, else rope_base. */
float lw_family_local_base(const lw_family_info *f, float rope_base);

/* Does the safetensors checkpoint with these HF tensor names belong to a
 * family whose norms store w for (1 + w)? (Their gains then get +1.) */
bool lw_family_hf_norm_adds_one(const char *const *hf_names, size_t n);

#endif
