#include "model_config.h"

/* lw_family_name is in family.c, with the table. */
const char *lw_activation_name(lw_activation a) { return a == LW_ACT_SILU ? "silu" : "gelu_tanh"; }
const char *lw_norm_name(lw_norm_kind n) { return n == LW_NORM_RMSNORM ? "rmsnorm" : "rmsnorm_gemma"; }

const char *lw_rope_scaling_name(lw_rope_scaling_kind k)
{
    switch (k) {
    case LW_ROPE_SCALING_NONE: return "none";
    case LW_ROPE_SCALING_LINEAR: return "linear";
    case LW_ROPE_SCALING_LLAMA3: return "llama3";
    }
    return "?";
}

const char *lw_weights_format_name(lw_weights_format f)
{
    switch (f) {
    case LW_WEIGHTS_GGUF: return "gguf";
    case LW_WEIGHTS_SAFETENSORS: return "safetensors";
    case LW_WEIGHTS_LLAMA2C: return "llama2c";
    }
    return "?";
}

const char *lw_tokenizer_kind_name(lw_tokenizer_kind k)
{
    switch (k) {
    case LW_TOKENIZER_BPE_JSON: return "bpe_json";
    case LW_TOKENIZER_SPM_JSON: return "spm_json";
    case LW_TOKENIZER_SPM_MODEL: return "spm_model";
    case LW_TOKENIZER_GGUF: return "gguf";
    case LW_TOKENIZER_LLAMA2C: return "llama2c";
    case LW_TOKENIZER_GPT2_FILES: return "gpt2_files";
    case LW_TOKENIZER_WORDPIECE_JSON: return "wordpiece_json";
    }
    return "?";
}

const char *lw_chat_template_name(lw_chat_template t)
{
    switch (t) {
    case LW_CHAT_NONE: return "none";
    case LW_CHAT_CHATML: return "chatml";
    case LW_CHAT_GEMMA: return "gemma";
    case LW_CHAT_LLAMA3: return "llama3";
    case LW_CHAT_MISTRAL: return "mistral";
    }
    return "?";
}
