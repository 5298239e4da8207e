/* A weights file opened for reading, whatever its format (GGUF, safetensors
 * with an optional sharded index, llama2.c checkpoint). Tensors are looked up
 * by their *canonical* name — the GGUF naming scheme ("token_embd.weight",
 * "blk.3.attn_q.weight", "output_norm.weight", ...) — and returned
 * dequantized to fp32, row-major, with shape[0] the slowest dimension (the
 * PyTorch order: an embedding is [vocab, hidden], a projection [out, in]).
 * Safetensors and llama2.c loaders map their own names onto these. */
#ifndef LW_WEIGHTS_H
#define LW_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dequant.h"
#include "model_config.h"
#include "status.h"

enum { LW_MAX_DIMS = 4 };

typedef struct lw_weights lw_weights;

typedef struct {
    int ndim;
    int64_t shape[LW_MAX_DIMS];   /* PyTorch order: shape[0] slowest */
    const char *dtype;            /* "F32", "Q4_K", "BF16", ... as stored */
} lw_tensor_info;

/* Opens path (mmap). fmt says which loader; for safetensors, path may be a
 * .safetensors file, a model.safetensors.index.json, or a directory holding
 * either (config.json beside it is read by lw_weights_read_config). */
lw_status lw_weights_open(const char *path, lw_weights_format fmt, lw_weights **out);
void lw_weights_close(lw_weights *w);

bool lw_weights_has(const lw_weights *w, const char *name);
lw_status lw_weights_info(const lw_weights *w, const char *name, lw_tensor_info *info);

/* Dequantizes tensor `name` into a new malloc'd fp32 buffer (*out, caller
 * frees). Errors name the file and the tensor. */
lw_status lw_weights_get_f32(const lw_weights *w, const char *name, float **out, lw_tensor_info *info);

/* Same, but checks the shape first: fails naming the file, the tensor, the
 * expected and the found shape. Unused trailing dims are 0. */
lw_status lw_weights_get_f32_shaped(const lw_weights *w, const char *name, float **out,
                                    int64_t d0, int64_t d1);

/* Fills the fields of *m that the file itself carries (dims, layers, heads,
 * RoPE, eps, vocab, special ids, tied embeddings, family) from GGUF metadata,
 * config.json or the llama2.c header; leaves the rest untouched. */
lw_status lw_weights_read_config(const lw_weights *w, lw_model_config *m);

const char *lw_weights_path(const lw_weights *w);

/* Dequantizes rows [row, row + n_rows) of a tensor viewed as [shape[0],
 * rest] into dst (n_rows * rest floats), without converting the whole
 * tensor: an embedding lookup touches a few rows of a [262144, 640] table. */
lw_status lw_weights_get_rows(const lw_weights *w, const char *name, int64_t row, int64_t n_rows, float *dst);

/* Tensor `name` as stored: its type, shape and bytes (the GGUF blocks that
 * --dtype native keeps, narrow_weights.h). The bytes live in the mapped file
 * until lw_weights_close; t->add says what the conversion would add. */
lw_status lw_weights_raw(const lw_weights *w, const char *name, lw_raw_tensor *t);

/* The RMS over all entries of token_embd.weight as the first layer sees
 * them: times sqrt(m->hidden) when m->scale_embeddings. Reads row by row. */
lw_status lw_weights_embed_rms(const lw_weights *w, const lw_model_config *m, float *rms);

/* Iteration over the canonical tensor names (i < lw_weights_n_tensors). */
size_t lw_weights_n_tensors(const lw_weights *w);
const char *lw_weights_tensor_name(const lw_weights *w, size_t i);

#endif
