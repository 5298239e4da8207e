/* What the dtype tests (check_dtype, check_dtype_quant) ask of a model: the
 * four tiny families they run on, random token ids, every row's logits, and
 * the largest difference between two arrays with the reference's scale. */
#ifndef LW_TL_MODEL_PROBE_H
#define LW_TL_MODEL_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "model_config.h"

enum { TL_N_TINY = 4 };
/* 0 llama, 1 gemma3 (tied, sliding window), 2 qwen2 (biases, tied), 3 qwen3 */
lw_model_config tl_tiny_family_config(int i);
void tl_random_ids(int *ids, int n, int vocab, uint64_t seed);
/* logits [n, vocab] of ids on m (malloc'd). */
float *tl_all_logits(const lw_model *m, const int *ids, int n);
/* max |a - b| over n; *scale gets max |b|. */
double tl_max_abs_diff(const float *a, const float *b, size_t n, double *scale);
/* Greedy n tokens after prompt on m (out[n]), with each step's top-2 logit
 * gap (gap[n]): where two dtypes' greedy runs part, the gap says how close
 * the call was. */
void tl_greedy(const lw_model *m, const int *prompt, int n_prompt, int n, int *out, float *gap);

#endif
