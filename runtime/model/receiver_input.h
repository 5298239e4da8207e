/* What the receiver reads in bridge mode, as token ids and soft-token rows:
 *
 *   [before]  [M soft tokens]  [after]  [verbalizer of a label]
 *
 * before = the receiver's chat template up to the user text, then the task
 *          primer and a newline;
 * after  = the end of the user turn, the assistant prefix, then the task's
 *          answer prompt (so the answer prompt opens the model's reply and
 *          the verbalizer continues it: "<start_of_turn>model\nSentiment:"
 *          + " positive").
 * The receiver never sees the input text: the soft tokens stand for it.
 * The pieces are tokenized separately (add_special = false; the template
 * text carries BOS where the template writes it), the same way in training
 * and evaluation. The prefix is before + soft + after; a label is scored by
 * the log-probabilities of its verbalizer tokens after the prefix. */
#ifndef LW_RECEIVER_INPUT_H
#define LW_RECEIVER_INPUT_H

#include <stdbool.h>

#include "model_config.h"
#include "status.h"
#include "task.h"
#include "tokenizer.h"

typedef struct {
    int M;                 /* soft tokens */
    int n_before, n_after;
    int *before, *after;   /* token ids */
    int n_labels;
    int *verb_len;         /* [n_labels] */
    int **verb;            /* [n_labels][verb_len] verbalizer token ids */
    int max_verb;
} lw_receiver_layout;

lw_status lw_receiver_layout_build(const lw_task *task, lw_chat_template kind, const lw_tokenizer *tok, int M,
                                   int vocab, lw_receiver_layout *out);
/* Same from ids already known (tests): copies them. */
lw_status lw_receiver_layout_from_ids(int M, const int *before, int n_before, const int *after, int n_after,
                                      int n_labels, const int *const *verb, const int *verb_len,
                                      lw_receiver_layout *out);
void lw_receiver_layout_free(lw_receiver_layout *L);

/* Rows before the verbalizer: n_before + M + n_after. */
static inline int lw_receiver_prefix_len(const lw_receiver_layout *L) { return L->n_before + L->M + L->n_after; }
/* First soft-token row. */
static inline int lw_receiver_soft_row(const lw_receiver_layout *L) { return L->n_before; }

/* Fills ids[T] and is_embed[T] for the prefix followed by the first
 * n_verb tokens of label's verbalizer (label < 0 or n_verb = 0: the prefix
 * alone); soft rows get id 0 and is_embed true. Returns T. */
int lw_receiver_fill(const lw_receiver_layout *L, int label, int n_verb, int *ids, bool *is_embed);

/* Training accuracy from the logits of the row before the verbalizer: true
 * when label's first verbalizer token beats the first token of every other
 * label (labels sharing that token do not count against it; a tie does). */
bool lw_receiver_first_token_right(const lw_receiver_layout *L, const float *logits, int label);

#endif
