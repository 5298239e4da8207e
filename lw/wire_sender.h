/* The sending side of the wire (docs/wire.md): the sender and the trained
 * bridge, turning a text into one soft-token message. lw send writes the
 * messages to a file, stdout or a socket; lw serve answers /v1/send and
 * /v1/classify with them. Not thread-safe: one caller at a time. */
#ifndef LW_WIRE_SENDER_H
#define LW_WIRE_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "bridge.h"
#include "manifest.h"
#include "sender_states.h"
#include "wire.h"

typedef struct {
    const lw_manifest *m;
    lw_sender_run run;
    bool run_open;
    lw_bridge bridge;
    bool bridge_made;
    lw_bridge_acts *acts;
    float *soft;               /* [M * receiver hidden]: the last text's soft tokens */
    lw_wire_message head;      /* the header every message gets (seq and dtype set per message) */
    char bridge_path[4200];
} lw_wire_sender;

/* checkpoint: a checkpoint folder or a bridge.safetensors; M: the soft
 * tokens it was trained with. */
lw_status lw_wire_sender_open(lw_wire_sender *s, const lw_manifest *m, const char *task, const char *checkpoint,
                              int M);
/* text's message (malloc'd *msg of *len bytes) with this seq and dtype. */
lw_status lw_wire_sender_encode(lw_wire_sender *s, const char *text, uint64_t seq, lw_wire_dtype dtype,
                                uint8_t **msg, size_t *len);
void lw_wire_sender_close(lw_wire_sender *s);

#endif
