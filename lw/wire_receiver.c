/* The receiving side of the wire (wire_receiver.h). */
#include "wire_receiver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cmd_common.h"
#include "score_line.h"

lw_status lw_wire_receiver_open(lw_wire_receiver *r, const lw_pair *pair, const char *checkpoint, const char *task,
                                const char *tasks_dir, const lw_wire_message *first)
{
    const lw_manifest *m = &pair->manifest;
    memset(r, 0, sizeof *r);
    r->pair = pair;
    if (!task) task = first->id.task;
    char task_path[4096];
    bool is_dir;
    lw_bridge_checkpoint_file(checkpoint, r->bridge_path, sizeof r->bridge_path, &is_dir);
    /* identity first: a message from elsewhere is refused before any model loads */
    lw_status st = lw_wire_identity_make(m, task, r->bridge_path, LW_WIRE_RECEIVER, &r->mine);
    if (!st && first) st = lw_wire_identity_check(&first->id, &r->mine, m, r->bridge_path);
    if (st) return st;
    int seed, M = first ? first->M : m->bridge.soft_tokens;
    bool has_seed = true, has_M = false;
    if ((st = lw_run_json_read(checkpoint, &seed, &has_seed, &M, &has_M))) return st;
    if (first && M != first->M)
        return lw_fail(LW_ERR_INVALID, "message of %d soft tokens; the checkpoint's run.json says %d", first->M, M);
    if ((st = lw_task_file(m, tasks_dir, task, task_path, sizeof task_path)) ||
        (st = lw_task_load(task_path, &r->task)))
        return st;
    r->task_loaded = true;
    r->M = M;
    return LW_OK;
}

void lw_wire_receiver_attach(lw_wire_receiver *r, lw_trainer *tr, const lw_model *receiver, const lw_tokenizer *tok)
{
    r->tr = tr;
    r->receiver = receiver;
    r->tok = tok;
    r->open = true;
}

lw_status lw_wire_receiver_check(const lw_wire_receiver *r, const lw_wire_message *msg)
{
    const lw_manifest *m = &r->pair->manifest;
    lw_status st = lw_wire_identity_check(&msg->id, &r->mine, m, r->bridge_path);
    if (st) return st;
    if (msg->sender_layer != m->bridge.source_layer)
        return lw_fail(LW_ERR_INVALID, "message made from sender layer %d; this bridge reads layer %d",
                       msg->sender_layer, m->bridge.source_layer);
    if (msg->width != m->receiver.hidden)
        return lw_fail(LW_ERR_INVALID, "message of width %d; receiver %s reads %d", msg->width, m->receiver.name,
                       m->receiver.hidden);
    if (msg->M != r->M)
        return lw_fail(LW_ERR_INVALID, "message of %d soft tokens; this receiver reads %d", msg->M, r->M);
    return LW_OK;
}

lw_status lw_wire_receiver_score(lw_wire_receiver *r, const lw_wire_message *msg, double *scores)
{
    if (!r->open) return lw_fail(LW_ERR_INVALID, "receive: no scorer attached to the receiver");
    return lw_trainer_score_soft(r->tr, msg->soft, scores);
}

lw_status lw_wire_receiver_score_text(lw_wire_receiver *r, const char *text, double *scores)
{
    lw_status st = LW_OK;
    if (!r->open) return lw_fail(LW_ERR_INVALID, "receive: no receiver attached");
    if (!r->text_ready) {
        st = lw_text_model_init(&r->text, r->receiver, r->tok, &r->task, 0, "receiver");
        if (st) return st;
        r->text_ready = true;
    }
    const lw_receiver_layout *L = &r->text.layout;
    int *ids = NULL, n, shots;
    st = lw_baseline_prompt(&r->text, NULL, text, 0, L->max_verb - 1, &ids, &n, &shots);
    if (!st)
        st = lw_label_scorer_score(&r->text.scorer, ids, n, L->n_labels, (const int *const *)L->verb, L->verb_len,
                                   scores);
    free(ids);
    return st;
}

lw_status lw_wire_receiver_line(const lw_wire_receiver *r, uint64_t seq, const double *scores, char **line,
                                size_t *len)
{
    *line = NULL;
    *len = 0;
    FILE *f = open_memstream(line, len);
    if (!f) return lw_fail(LW_ERR_NOMEM, "receive: out of memory");
    lw_status st = lw_scores_write_line(f, "a reply", &r->task, seq, scores);
    if (fclose(f) != 0 && !st) st = lw_fail(LW_ERR_NOMEM, "receive: out of memory");
    if (st) {
        free(*line);
        *line = NULL;
    }
    return st;
}

void lw_wire_receiver_close(lw_wire_receiver *r)
{
    if (r->text_ready) lw_text_model_free(&r->text);
    if (r->task_loaded) lw_task_free(&r->task);
    memset(r, 0, sizeof *r);
}
