/* The receiver's part of one training example, shared by the bridge trainer
 * (train_example.c) and the text trainers (train_text.c).
 *
 * The caller fills ids / is_embed / embeds with a prompt followed by the
 * gold verbalizer but its last token (T rows); the pass runs the frozen
 * receiver over them, takes the cross-entropy of the L verbalizer tokens
 * from the last L rows, and on backward leaves scale * d(loss)/d(input rows)
 * in d_embeds (the receiver's weights get no gradient; its adapters do).
 * Scoring runs a prompt of P rows once (lw_receiver_pass_prompt) and the
 * caller every label's verbalizer after it (lw_score_verbalizers).
 *
 * The layout's `before` rows (chat template head and task primer) are the
 * same token ids in every example. With no adapters active they depend on
 * nothing trained, so the pass runs them once, keeps their keys and values
 * in `state`, and each example's forward and backward start after them
 * (about 40% of a bridge example's rows). Rows that do not begin with those
 * ids, or adapters that touch them (LoRA, a deep prefix), take the whole
 * pass from position 0. The two agree to float rounding
 * (tests/check_receiver_pass.c); `no_head_cache` turns the shortcut off.
 *
 * Packing goes further: a step's examples run after the cached head as
 * segments of one forward and one backward (lw_forward_args.n_segments),
 * so every weight matrix, the 671 MB output head above all, is read once a
 * step instead of once an example. Same conditions as the head cache, but
 * LoRA without dropout and a deep prefix also pack: no head is cached, each
 * segment is a whole example (after its own prefix). */
#ifndef LW_RECEIVER_PASS_H
#define LW_RECEIVER_PASS_H

#include <stdbool.h>

#include "adapters.h"
#include "kd_loss.h"
#include "model.h"
#include "pass_rows.h"
#include "receiver_input.h"
#include "status.h"

typedef struct lw_receiver_pack lw_receiver_pack;

typedef struct {
    const lw_model *m;                   /* frozen */
    const lw_receiver_layout *layout;    /* the verbalizers */
    int max_T;                           /* rows of the longest prompt + verbalizer */
    lw_state *state;                     /* saves activations; max_T + extra positions */
    lw_state *score_state;               /* scoring: no saved activations; room for every label's rows */
    lw_backward_scratch *bwd;
    LW_PASS_ROWS_IN_PASS;                /* embeds ... is_embed: T = max_T, L = max_verb */
    bool no_head_cache;                  /* always run from position 0 */
    bool head_cached;                    /* state holds the layout's before rows */
    int last_head;                       /* rows the last loss call skipped (0 or n_before) */
    lw_receiver_pack *pack;              /* packed steps (lw_receiver_pass_pack_*); NULL until used */
    const lw_kd_target *kd;              /* the next example's KD term (kd_loss.h); NULL: none. Not packed */
} lw_receiver_pass;

/* who names the caller in errors ("trainer", "text trainer"). */
lw_status lw_receiver_pass_alloc(lw_receiver_pass *p, const lw_model *m, const lw_receiver_layout *layout, int max_T,
                                 const char *who);
void lw_receiver_pass_free(lw_receiver_pass *p);
/* Room for `extra` positions before the rows (a deep prefix's keys). */
lw_status lw_receiver_pass_grow_state(lw_receiver_pass *p, int extra);

/* Forward of the T filled rows; *loss = the cross-entropy of label's
 * verbalizer tokens predicted by the last verb_len[label] rows. */
lw_status lw_receiver_pass_loss(lw_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label, float *loss);
/* After lw_receiver_pass_loss on the same rows: d_embeds = scale * the
 * loss's gradient by input row; *correct (may be NULL) the first-token check. */
lw_status lw_receiver_pass_backward(lw_receiver_pass *p, const lw_receiver_adapters *ad, int T, int label, float scale,
                                    bool *correct);
/* Scoring's prompt: the P filled rows (embeds: whether is_embed / embeds
 * are used) from position 0 into score_state, the last row final-normed
 * ([hidden]) into last; refused unless every label's verbalizer fits after them. The caller
 * then scores the labels: lw_score_verbalizers(p->m, p->score_state, ad, P,
 * p->last, ...) (label_scoring.h), as the trainers do (lw_trainer_score,
 * lw_text_trainer_score): the pass stands below the label scorer, not on it. */
lw_status lw_receiver_pass_prompt(lw_receiver_pass *p, const lw_receiver_adapters *ad, int P, bool embeds);

/* Packed steps. can_pack: the conditions hold (head cache on; no adapters
 * and a head to cache, or LoRA without dropout and / or a deep prefix, whose
 * examples run whole: nothing cached). begin: room for n examples with these
 * adapters (ad may be NULL; loss and backward use it), none added yet.
 * add: the filled T rows of one example (they must begin with the head) go
 * into the pack with its label, and its deep prefix as ad->prefix_k / _v
 * hold it now. loss: losses[i] of every added example.
 * backward: scale * the gradient (LoRA's added to its grads), correct[i]
 * the first-token checks (may be NULL). d_embeds: example i's input
 * gradient, rows n_before.. of its own (the soft tokens first). d_prefix:
 * example i's prefix gradient [n_layers, P, kvd] keys and values (NULL
 * without a prefix), which ad->d_prefix_k / _v do not get. */
bool lw_receiver_pass_can_pack(const lw_receiver_pass *p, const lw_receiver_adapters *ad);
/* How many examples one pack holds within the receiver's context (0: none). */
int lw_receiver_pass_pack_room(const lw_receiver_pass *p, const lw_receiver_adapters *ad);
lw_status lw_receiver_pass_pack_begin(lw_receiver_pass *p, const lw_receiver_adapters *ad, int n);
lw_status lw_receiver_pass_pack_add(lw_receiver_pass *p, int T, int label);
lw_status lw_receiver_pass_pack_loss(lw_receiver_pass *p, float *losses);
lw_status lw_receiver_pass_pack_backward(lw_receiver_pass *p, float scale, bool *correct);
const float *lw_receiver_pass_pack_d_embeds(const lw_receiver_pass *p, int i);
void lw_receiver_pass_pack_d_prefix(const lw_receiver_pass *p, int i, const float **dk, const float **dv);
void lw_receiver_pack_free(lw_receiver_pack *k);   /* lw_receiver_pass_free's */
/* The layout's before rows from position 0 into s, every block (their
 * final states land in p->final, unused): the cached head of both paths. */
lw_status lw_receiver_pass_run_head(lw_receiver_pass *p, lw_state *s);

#endif
