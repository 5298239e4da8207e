/* The sending side of the wire (wire_sender.h). */
#include "wire_sender.h"

#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "layer_mix_file.h"
#include "wire_identity.h"

lw_status lw_wire_sender_open(lw_wire_sender *s, const lw_manifest *m, const char *task, const char *checkpoint,
                              int M)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    bool is_dir;
    lw_bridge_checkpoint_file(checkpoint, s->bridge_path, sizeof s->bridge_path, &is_dir);
    lw_bridge_config bc = m->bridge;
    bc.soft_tokens = M;
    s->head.sender_layer = m->bridge.source_layer;
    s->head.M = M;
    s->head.width = m->receiver.hidden;
    s->head.dtype = LW_WIRE_FP32;
    lw_status st = lw_wire_identity_make(m, task, s->bridge_path, LW_WIRE_SENDER, &s->head.id);
    if (!st) st = lw_bridge_create(&s->bridge, &bc, m->sender.hidden, m->receiver.hidden, m->receiver.embed_rms);
    if (!st) s->bridge_made = true;
    if (!st) st = lw_checkpoint_load_bridge(s->bridge_path, &s->bridge);
    if (!st) st = lw_bridge_checkpoint_mix(checkpoint, &s->bridge, &s->mix, &s->with_mix);
    if (!st && s->with_mix && !(s->mixed = malloc((size_t)LW_SENDER_MAX_TOKENS * m->sender.hidden * sizeof(float))))
        st = lw_fail(LW_ERR_NOMEM, "send: out of memory");
    if (!st) st = lw_bridge_acts_create(&s->bridge, LW_SENDER_MAX_TOKENS, &s->acts);
    if (!st && !(s->soft = malloc((size_t)M * m->receiver.hidden * sizeof *s->soft)))
        st = lw_fail(LW_ERR_NOMEM, "send: out of memory");
    if (!st) st = lw_sender_run_open(&m->sender, &s->run);
    if (!st) s->run_open = true;
    if (st) lw_wire_sender_close(s);
    return st;
}

lw_status lw_wire_sender_encode(lw_wire_sender *s, const char *text, uint64_t seq, lw_wire_dtype dtype,
                                uint8_t **msg, size_t *len)
{
    int T;
    *msg = NULL;
    lw_status st = s->with_mix ? lw_sender_run_mixed(&s->run, &s->mix, text, &s->stack, &s->stack_cap, s->mixed, &T)
                               : lw_sender_run_states(&s->run, s->m->bridge.source_layer, text, &T);
    if (!st) st = lw_bridge_forward(&s->bridge, s->acts, s->with_mix ? s->mixed : s->run.hidden, T, s->soft);
    s->head.seq = seq;
    s->head.dtype = dtype;
    if (!st) st = lw_wire_encode(&s->head, s->soft, msg, len);
    return st;
}

void lw_wire_sender_close(lw_wire_sender *s)
{
    if (s->run_open) lw_sender_run_close(&s->run);
    lw_bridge_acts_free(s->acts);
    if (s->bridge_made) lw_bridge_free(&s->bridge);
    free(s->soft);
    lw_layer_mix_free(&s->mix);
    free(s->stack);
    free(s->mixed);
    memset(s, 0, sizeof *s);
}
