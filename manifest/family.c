/* The family table (family.h). Adding a family: an lw_family value in
 * model_config.h, a row here, and whatever its architecture needs that no
 * field below expresses yet (docs/manifest.md, "Adding a family"). */
#include "family.h"

#include <stdio.h>
#include <string.h>

static const lw_family_info families[LW_FAMILY_COUNT] = {
    [LW_FAMILY_LLAMA] = {
        .id = LW_FAMILY_LLAMA, .name = "llama",
        .hf_model_types = {"llama", "mistral"}, .gguf_archs = {"llama"},
        .activation = LW_ACT_SILU,
        /* llama.cpp's convert_hf_to_gguf permutes q/k for llama only */
        .gguf_rope_interleaved = true,
        .chat_template = LW_CHAT_NONE,
    },
    [LW_FAMILY_GEMMA3] = {
        .id = LW_FAMILY_GEMMA3, .name = "gemma3",
        .hf_model_types = {"gemma3", "gemma3_text"}, .gguf_archs = {"gemma3"},
        .activation = LW_ACT_GELU_TANH,
        .norm_adds_one = true, .qk_norm = true, .post_norms = true, .scale_embeddings = true,
        /* 5 local layers of 512 positions, then a global one; local RoPE at
         * base 10000 (fixed by the architecture, GGUF does not store it) */
        .sliding_window = 512, .global_every = 6, .rope_base_local = 10000.0f,
        .chat_template = LW_CHAT_GEMMA,
        .hf_marker = "pre_feedforward_layernorm",   /* Llama has no pre-FFN norm of that name */
    },
    [LW_FAMILY_LLAMA2C] = {
        .id = LW_FAMILY_LLAMA2C, .name = "llama2c",
        .activation = LW_ACT_SILU,
        .rope_interleaved = true,   /* run.c rotates pairs */
        .chat_template = LW_CHAT_NONE,
    },
    [LW_FAMILY_QWEN2] = {
        .id = LW_FAMILY_QWEN2, .name = "qwen2",
        .hf_model_types = {"qwen2"}, .gguf_archs = {"qwen2"},
        .activation = LW_ACT_SILU,
        .qkv_bias = true,
        .chat_template = LW_CHAT_CHATML,
    },
    [LW_FAMILY_QWEN3] = {
        .id = LW_FAMILY_QWEN3, .name = "qwen3",
        .hf_model_types = {"qwen3"}, .gguf_archs = {"qwen3"},
        .activation = LW_ACT_SILU,
        .qk_norm = true,   /* plain gains (w, not 1 + w), unlike Gemma's */
        .chat_template = LW_CHAT_CHATML,
    },
};

const lw_family_info *lw_family_get(lw_family f)
{
    return (unsigned)f < LW_FAMILY_COUNT ? &families[f] : NULL;
}

const char *lw_family_name(lw_family f)
{
    const lw_family_info *i = lw_family_get(f);
    return i ? i->name : "?";
}

static bool listed(const char *const *names, const char *s)
{
    for (int k = 0; k < LW_FAMILY_MAX_ALIASES && names[k]; k++)
        if (strcmp(names[k], s) == 0) return true;
    return false;
}

const lw_family_info *lw_family_by_name(const char *name)
{
    for (int f = 0; name && f < LW_FAMILY_COUNT; f++)
        if (strcmp(families[f].name, name) == 0) return &families[f];
    return NULL;
}

const lw_family_info *lw_family_by_hf_type(const char *model_type)
{
    for (int f = 0; model_type && f < LW_FAMILY_COUNT; f++)
        if (listed(families[f].hf_model_types, model_type)) return &families[f];
    return NULL;
}

const lw_family_info *lw_family_by_gguf_arch(const char *arch)
{
    for (int f = 0; arch && f < LW_FAMILY_COUNT; f++)
        if (listed(families[f].gguf_archs, arch)) return &families[f];
    return NULL;
}

void lw_family_list(lw_family_names_of which, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (int f = 0; f < LW_FAMILY_COUNT; f++) {
        const lw_family_info *i = &families[f];
        const char *one[] = {i->name, NULL};
        const char *const *names = which == LW_FAMILY_NAMES_HF     ? i->hf_model_types
                                   : which == LW_FAMILY_NAMES_GGUF ? i->gguf_archs
                                                                   : one;
        for (int k = 0; k < LW_FAMILY_MAX_ALIASES && names[k] && n < cap; k++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", names[k]);
    }
}

void lw_family_defaults(lw_model_config *m, const lw_family_info *f, lw_family_view view)
{
    m->family = f->id;
    m->activation = f->activation;
    m->norm = f->norm_adds_one && view == LW_FAMILY_AS_WRITTEN ? LW_NORM_RMSNORM_GEMMA : LW_NORM_RMSNORM;
    m->qk_norm = f->qk_norm;
    m->post_norms = f->post_norms;
    m->scale_embeddings = f->scale_embeddings;
    m->qkv_bias = f->qkv_bias;
    m->sliding_window = f->sliding_window;
    m->global_every = f->global_every;
    m->rope_base_local = f->rope_base_local;
    m->query_scale = 0;
}

float lw_family_local_base(const lw_family_info *f, float rope_base)
{
    return f->rope_base_local > 0 ? f->rope_base_local : rope_base;
}

bool lw_family_hf_norm_adds_one(const char *const *hf_names, size_t n)
{
    for (int f = 0; f < LW_FAMILY_COUNT; f++) {
        const char *marker = families[f].hf_marker;
        if (!families[f].norm_adds_one || !marker) continue;
        for (size_t i = 0; i < n; i++)
            if (strstr(hf_names[i], marker)) return true;
    }
    return false;
}

/* Which RoPE layout the weights expect: llama.cpp's converter permutes the
 * q/k rows of llama models to the interleaved layout, and llama2.c
 * checkpoints were written that way; Hugging Face weights, and every other
 * family in GGUF, rotate halves. */
bool lw_rope_interleaved(const lw_model_config *m)
{
    const lw_family_info *f = lw_family_get(m->family);
    if (!f) return false;
    return f->rope_interleaved || (f->gguf_rope_interleaved && m->weights_format == LW_WEIGHTS_GGUF);
}
