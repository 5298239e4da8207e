/* The pair's bridge trained on written answers (issue #24 item 1, its
 * training half, below the command layer): the bridge turns the sender's
 * states into M soft tokens, the frozen receiver reads them in its prompt
 * (answer_train.h's rows) and the loss is the teacher-forced answer CE
 * (with the first-token term); its gradient goes back through the
 * receiver into the bridge. Greedy answers after the bridge's soft tokens
 * come from the same pass. `lw train` / `lw eval --method bridge` on a
 * generate task do not call this yet (only the interlingua's path is wired:
 * interlingua_run.h). */
#ifndef LW_BRIDGE_ANSWER_H
#define LW_BRIDGE_ANSWER_H

#include "answer_train.h"
#include "bridge.h"
#include "spread_term.h"
#include "status.h"

typedef struct {
    lw_bridge *bridge;
    lw_bridge_acts *acts;
    int max_T;                 /* sender rows */
    lw_answer_pass *pass;      /* the receiver's, sized by the caller */
    float *soft;               /* [M, receiver hidden] */
    float *dsoft;              /* [M, receiver hidden]: the pass's gradient plus the spread term's */
    float first_token_weight;
    lw_spread_term spread;     /* against the message collapse (spread_term.h); weight 0: off */
} lw_bridge_answer;

lw_status lw_bridge_answer_init(lw_bridge_answer *b, lw_bridge *bridge, lw_answer_pass *pass, int max_T,
                                float first_token_weight);
void lw_bridge_answer_free(lw_bridge_answer *b);
/* The spread term (spread_term.h) on the soft tokens from now on, at
 * weight (0: off, the default); the training loop resets it at each step's
 * start. */
lw_status lw_bridge_answer_set_spread(lw_bridge_answer *b, float weight);

/* The receiver's prompt around the soft tokens, and the answer (L tokens). */
typedef struct {
    const int *before, *after, *answer;
    int n_before, n_after, L;
} lw_bridge_answer_rows;

/* x [T, sender hidden] through the bridge into the filled rows. */
lw_status lw_bridge_answer_fill(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *rows);
/* The loss alone (finite differences), and loss with scale * its gradient
 * added to the bridge's grads. */
lw_status lw_bridge_answer_loss(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *rows,
                                float *loss);
lw_status lw_bridge_answer_example(lw_bridge_answer *b, const float *x, int T, const lw_bridge_answer_rows *rows,
                                   float scale, float *loss);

#endif
