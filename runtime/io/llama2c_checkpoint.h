/* Karpathy's llama2.c legacy checkpoint: a 7 x int32 header, then fp32
 * weights in the order of run.c, stacked over layers. The loader slices the
 * stacks into per-layer tensors under canonical GGUF names (w1 = ffn_gate,
 * w2 = ffn_down, w3 = ffn_up). */
#ifndef LW_LLAMA2C_CHECKPOINT_H
#define LW_LLAMA2C_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "dequant.h"
#include "status.h"

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier;  /* vocab_size was positive in the file */
} lw_llama2c_header;

typedef struct lw_llama2c lw_llama2c;

lw_status lw_llama2c_open(const char *path, lw_llama2c **out);   /* mmap */
lw_status lw_llama2c_parse(const void *data, size_t size, const char *name, lw_llama2c **out); /* borrows */
void lw_llama2c_close(lw_llama2c *c);

const lw_llama2c_header *lw_llama2c_header_of(const lw_llama2c *c);
size_t lw_llama2c_n_tensors(const lw_llama2c *c);
const lw_raw_tensor *lw_llama2c_tensor_at(const lw_llama2c *c, size_t i);
const lw_raw_tensor *lw_llama2c_find(const lw_llama2c *c, const char *name); /* NULL if absent */

#endif
