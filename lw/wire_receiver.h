/* The receiving side of the wire (docs/wire.md): the receiver with the
 * trained bridge's checkpoint, reading soft-token messages. It checks each
 * message against its own identity (wire_identity.h) and shapes, and
 * scores the task's labels on the soft tokens with the trainer lw eval
 * uses, so its lines equal lw eval --scores bit for bit at fp32. It also
 * reads a text itself (the receiver-zeroshot prompt): the text relay
 * baseline of lw serve's /v1/receive-text. lw receive and lw serve use it.
 * Not thread-safe: one caller at a time.
 *
 * The caller opens the checkpoint's scorer between open and attach
 * (lw_bridge_scorer_open with r->task and r->M, bridge_scorer.h) and
 * closes it after lw_wire_receiver_close: the receiver reads messages with
 * the scorer's trainer and stands on the trainer alone, beside the bridge
 * scorer rather than on it. */
#ifndef LW_WIRE_RECEIVER_H
#define LW_WIRE_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "baselines.h"
#include "pair.h"
#include "task.h"
#include "train_example.h"
#include "wire.h"
#include "wire_identity.h"

typedef struct {
    const lw_pair *pair;
    lw_task task;
    bool task_loaded;
    lw_wire_identity mine;
    char bridge_path[4200];
    int M;                     /* soft tokens a message holds */
    lw_trainer *tr;            /* the scorer's trainer (lw_wire_receiver_attach); not owned */
    const lw_model *receiver;  /* its receiver and tokenizer, for score_text; not owned */
    const lw_tokenizer *tok;
    bool open;                 /* attached: messages can be scored */
    lw_text_model text;        /* for score_text, made at its first call */
    bool text_ready;
} lw_wire_receiver;

/* Opens the receiver for task (NULL: the task first names) with
 * checkpoint's bridge: its identity, r->task and r->M, no model yet.
 * first: the first message, whose identity is checked before any model
 * loads and whose M is the one read (it must match the checkpoint's
 * run.json); NULL: M from run.json, else the manifest's. */
lw_status lw_wire_receiver_open(lw_wire_receiver *r, const lw_pair *pair, const char *checkpoint, const char *task,
                                const char *tasks_dir, const lw_wire_message *first);
/* From now on messages are scored with tr (the trainer of the scorer opened
 * on r->task and r->M; not owned), texts with receiver and tok. */
void lw_wire_receiver_attach(lw_wire_receiver *r, lw_trainer *tr, const lw_model *receiver, const lw_tokenizer *tok);
/* LW_OK if msg may be read here: its identity (pair, task, bridge, models)
 * and its shapes (sender layer, width, M); else LW_ERR_INVALID naming what
 * differs. */
lw_status lw_wire_receiver_check(const lw_wire_receiver *r, const lw_wire_message *msg);
/* scores[task.n_labels] of a checked message. */
lw_status lw_wire_receiver_score(lw_wire_receiver *r, const lw_wire_message *msg, double *scores);
/* scores[task.n_labels] of the receiver reading text itself (the
 * receiver-zeroshot prompt, the text relay baseline). */
lw_status lw_wire_receiver_score_text(lw_wire_receiver *r, const char *text, double *scores);
/* The JSON line of lw_scores_write_line as a malloc'd string, with its '\n'. */
lw_status lw_wire_receiver_line(const lw_wire_receiver *r, uint64_t seq, const double *scores, char **line,
                                size_t *len);
void lw_wire_receiver_close(lw_wire_receiver *r);

#endif
