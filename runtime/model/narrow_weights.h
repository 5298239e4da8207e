/* Frozen weights kept narrow (issue 19, item 1): a model whose big matrices
 * (wqkv, wo, w_gate_up, w_down of every block, and the output head) are held
 * in a narrow dtype and whose fp32 copies of them are freed:
 *   bf16    rounded to nearest even once (op_matmul_bf16.h);
 *   q8      quantised once to Q8_0 blocks (32 int8 and an fp16 scale, as
 *           llama.cpp quantises), for any model, read by the same products
 *           as native's (op_matmul_qn.h; rows padded to 32 columns);
 *   native  the GGUF file's own blocks, byte for byte (op_matmul_qn.h:
 *           Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K). A matrix whose
 *           blocks no product reads (F16, Q2_K, a safetensors file...) stays
 *           fp32, with one line on stderr saying so.
 * The token embedding table, the norms and the biases stay fp32 (they are
 * small, or read a row at a time).
 *
 * The dtype is a load option (lw_load_options.dtype, set by a command's
 * --dtype); lw_config_load_model narrows a model after loading it. Which
 * product a weight takes is decided in one place, lw_model_weight
 * (frozen_matmul.h), from which narrow copy the model holds of it. */
#ifndef LW_NARROW_WEIGHTS_H
#define LW_NARROW_WEIGHTS_H

#include <stddef.h>

#include "model.h"
#include "model_config.h"
#include "narrow_store.h"
#include "plan.h"

/* Converts m's big matrices to dtype d and frees their fp32 copies (m->output
 * becomes NULL, and so do the layers' projection pointers; under native, not
 * those of a matrix kept in fp32). Under q8 and native a tied model's table
 * goes too (m->token_embd NULL): it embeds from the head's blocks
 * (lw_model_embed_row). m must be fp32 and its projections fused
 * (as every loader makes them); native reads the blocks from the file m's
 * config names, so m must have been loaded from it (not random weights).
 * On failure m is unchanged. d = fp32 does nothing.
 *
 * Memory: on the AVX-512 path the bf16 forward reads a packed copy and the
 * dX backward the row-major one (op_matmul_bf16.h).
 * Without `backward` only the packed copy is kept (the forward-only models,
 * i.e. every sender, and the receiver of eval, generate and bench); a
 * backward on such a model is refused ("no weights"). On other paths the
 * row-major copy is the only one. q8 and native keep one copy, the blocks,
 * which both directions read (about 1.06 bytes a value for Q8_0, 0.56 to
 * 0.82 for the 4- to 6-bit formats). */
lw_status lw_model_narrow(lw_model *m, lw_weights_dtype d, bool backward);
lw_status lw_model_narrow_bf16(lw_model *m, bool backward);   /* lw_model_narrow(m, LW_WEIGHTS_BF16, .) */

/* Reading the set (lookups, lw_model_dtype, lw_model_embed_row, bytes
 * held): narrow_store.h. */

#endif
