/* The host row buffers of a training pass over the frozen receiver: the
 * input rows and their gradient, the final hidden rows, the loss rows'
 * logits and the id / target lists. The receiver's pass (receiver_pass.h,
 * loss over a verbalizer) and the answer pass (runtime/train/answer_train.h,
 * loss over a written answer) hold the same set, sized by their own rows:
 * one allocation and one free serve both.
 *
 * Each pass keeps the fields under their own names (p->embeds ...) through
 * LW_PASS_ROWS_IN_PASS: an anonymous union of the named lw_pass_rows, which
 * lw_pass_rows_alloc / _free take, and the same fields as an anonymous
 * struct (C11 6.7.2.1), so no caller's code changes. */
#ifndef LW_PASS_ROWS_H
#define LW_PASS_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define LW_PASS_ROWS_FIELDS                                                                                          \
    float *embeds, *d_embeds, *final; /* [T, hidden] */                                                              \
    float *logits, *probs, *dlogits;  /* [L, vocab]: the loss rows */                                                \
    float *last;                      /* [max(vocab, hidden)] */                                                     \
    int *ids, *rows, *targets;        /* [T] */                                                                      \
    bool *is_embed;                   /* [T] */

typedef struct {
    LW_PASS_ROWS_FIELDS
} lw_pass_rows;

/* In a pass's struct: the buffers as `rows_buf` and by their own names. */
#define LW_PASS_ROWS_IN_PASS                                                                                         \
    union {                                                                                                          \
        lw_pass_rows rows_buf;                                                                                       \
        struct {                                                                                                     \
            LW_PASS_ROWS_FIELDS                                                                                      \
        };                                                                                                           \
    }

/* All of r's buffers, zeroed, for T rows of width hidden and L loss rows of
 * width vocab; LW_ERR_NOMEM with none kept (r all NULL) when one fails.
 * who names the pass in the error. */
lw_status lw_pass_rows_alloc(lw_pass_rows *r, size_t T, size_t hidden, size_t L, size_t vocab, const char *who);
void lw_pass_rows_free(lw_pass_rows *r);

#endif
