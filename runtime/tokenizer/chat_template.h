/* Chat templates: one user turn (with an optional system prompt) and the
 * assistant prefix, rendered byte for byte as transformers' apply_chat_template
 * renders each model's published Jinja template (add_generation_prompt=True).
 *
 *   LW_CHAT_CHATML   SmolLM2 (template from its GGUF): with no system prompt
 *                    it writes SmolLM2's default one
 *   LW_CHAT_GEMMA    Gemma 3: "<bos><start_of_turn>user\n" + system + "\n\n" +
 *                    trim(user) + "<end_of_turn>\n<start_of_turn>model\n"
 *   LW_CHAT_LLAMA3   Llama 3.1 Instruct (no tools): a system header carrying
 *                    "Cutting Knowledge Date: December 2023\nToday Date:
 *                    26 Jul 2024\n\n" + trim(system), then the user header
 *   LW_CHAT_MISTRAL  Mistral v0.3: "<s>[INST] " + system + "\n\n" + user + "[/INST]"
 *   LW_CHAT_NONE     the user text unchanged (system is an error)
 *
 * The result holds the BOS text where the template writes it, so tokenize it
 * with add_special = false. trim() is Python's str.strip(). */
#ifndef LW_CHAT_TEMPLATE_H
#define LW_CHAT_TEMPLATE_H

#include "model_config.h"
#include "status.h"

/* system may be NULL (no system message); *out is malloc'd, NUL-ended. */
lw_status lw_chat_render(lw_chat_template kind, const char *system, const char *user, char **out);

/* The same turn with something (the bridge's soft tokens) between
 * user_before and user_after: the full rendering of the user text
 * user_before + X + user_after is *before + X + *after for any X that does
 * not begin or end with white space. Both outputs are malloc'd. */
lw_status lw_chat_render_split(lw_chat_template kind, const char *system, const char *user_before,
                               const char *user_after, char **before, char **after);

#endif
