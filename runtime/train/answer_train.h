/* Answers as targets: the receiver's pass over soft tokens, a prompt and a
 * written answer (issue #24 item 1), for training on generate tasks and for
 * reading answers back out.
 *
 * The rows are
 *
 *   [before ids]  [M soft tokens]  [after ids]  [answer ids but the last]
 *
 * (before / after: the chat template around the user turn, the task's
 * prompt and the answer prompt opening the reply, as receiver_input.h lays
 * out a classification prompt; the caller tokenizes them). The answer's L
 * tokens are predicted by the last L rows (teacher forcing). The loss is
 *
 *   mean_i CE(answer_i) + first_token_weight * CE(answer_0)
 *
 * the seeds' first-token term: they found the first answer token is where
 * a bridge breaks, so it can be weighted on its own (0: plain teacher
 * forcing). Its gradient reaches the input rows through the frozen receiver
 * (lw_model_backward_rows); d_embeds' soft rows are what a bridge or an
 * interlingua adapter trains on.
 *
 * The same rows serve scoring (the mean log-prob of a candidate answer:
 * minus the loss with weight 0, the length-normalised score joint
 * rescoring sums) and generation (greedy or sampled, after the prompt rows
 * alone). One example at a time, CPU, no adapters: the pass always starts at
 * position 0 (no cached head), which keeps it simple and exact. */
#ifndef LW_ANSWER_TRAIN_H
#define LW_ANSWER_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "pass_rows.h"
#include "status.h"

typedef struct {
    const lw_model *m;                 /* frozen */
    int max_T;                         /* rows: prompt + answer - 1 */
    int max_answer;                    /* answer tokens */
    lw_state *state;                   /* saves activations (loss, backward) */
    lw_state *gen_state;               /* generation and scoring: no saved activations */
    lw_backward_scratch *bwd;
    LW_PASS_ROWS_IN_PASS;              /* embeds ... is_embed: T = max_T, L = max_answer */
    int T, P, L;                       /* the filled rows: all, the prompt's, the answer's tokens */
    int soft_row, M;                   /* where the soft tokens are */
} lw_answer_pass;

lw_status lw_answer_pass_alloc(lw_answer_pass *p, const lw_model *m, int max_T, int max_answer);
void lw_answer_pass_free(lw_answer_pass *p);

/* Fills the rows: before, the M soft tokens [M, hidden] (already in the
 * receiver's input scale), after, then the answer's L tokens but the last
 * (L may be 0: the prompt alone, for generation). Refuses what does not fit. */
lw_status lw_answer_pass_fill(lw_answer_pass *p, const int *before, int n_before, const float *soft, int M,
                              const int *after, int n_after, const int *answer, int L);

/* Forward of the filled rows; *loss as above (L >= 1). */
lw_status lw_answer_pass_loss(lw_answer_pass *p, float first_token_weight, float *loss);
/* After lw_answer_pass_loss on the same rows: d_embeds = scale * the loss's
 * gradient by input row (written, not accumulated). */
lw_status lw_answer_pass_backward(lw_answer_pass *p, float first_token_weight, float scale);
/* The soft rows of d_embeds: [M, hidden]. */
static inline const float *lw_answer_pass_d_soft(const lw_answer_pass *p)
{
    return p->d_embeds + (size_t)p->soft_row * (size_t)p->m->cfg.hidden;
}

/* The mean log-prob per token of the filled answer (L >= 1) after the
 * prompt: the length-normalised score of a candidate. No saved activations. */
lw_status lw_answer_pass_score(lw_answer_pass *p, double *mean_logprob);

typedef struct {
    int max_new;
    float temperature;        /* 0: greedy */
    float top_p;
    uint64_t seed;
    const int *stop_ids;      /* ends generation (the stop token is not kept) */
    int n_stop;
    /* called after each kept token with all kept so far; false stops (e.g.
     * a first-line task once its line is complete). May be NULL. */
    bool (*keep_going)(void *user, const int *out, int n);
    void *user;
} lw_answer_gen_args;

/* Decodes after the filled prompt rows (fill with L = 0): out[max_new],
 * *n_out tokens, stop token excluded. */
lw_status lw_answer_pass_generate(lw_answer_pass *p, const lw_answer_gen_args *a, int *out, int *n_out);

#endif
