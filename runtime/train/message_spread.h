/* How much the bridge's message depends on its input, over a set of
 * examples: the share of the messages' second moment that is not their
 * common mean,
 *
 *   spread = sum_i |z_i - mean|^2 / sum_i |z_i|^2      (z_i: example i's M x R soft tokens)
 *
 * 0 when every example gets the same message (the bridge sends the label
 * prior, whatever the input: docs/results.md, "Why Banking77 sits at
 * chance"), 1 when the messages average to zero. The early-stopping
 * evaluation logs it for its dev slice (dev_log.jsonl "msg_spread"). */
#ifndef LW_MESSAGE_SPREAD_H
#define LW_MESSAGE_SPREAD_H

#include <stddef.h>

#include "status.h"

typedef struct {
    size_t len;     /* floats a message */
    int n;          /* messages added */
    double *sum;    /* [len] */
    double sq;      /* sum of |z_i|^2 */
} lw_msg_spread;

lw_status lw_msg_spread_init(lw_msg_spread *s, size_t len);
void lw_msg_spread_add(lw_msg_spread *s, const float *z);
/* NaN with fewer than 2 messages or all of them zero. */
double lw_msg_spread_value(const lw_msg_spread *s);
void lw_msg_spread_free(lw_msg_spread *s);

#endif
