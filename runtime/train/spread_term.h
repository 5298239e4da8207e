/* A term against the message collapse (docs/results.md, "Stop 22"): both
 * trained senders (the pair's bridge, the interlingua) first learn to send
 * the same message for every input, because the receiver's answer prior is
 * the cheapest loss decrease and the gradient every example shares moves
 * the input-independent parameters at full rate (message_spread.h measures
 * it). This term pushes each message away from the messages sent before it
 * in the same optimizer step:
 *
 *   term_i = weight * (1/M) sum_m cos(z_i[m], mbar[m])
 *   mbar   = the mean of the step's earlier messages z_1 .. z_{i-1} (a
 *            constant: no gradient flows into it)
 *
 * (z_i[m]: example i's soft token / latent m, width W). Summed over a step
 * its gradient shrinks what the messages share, the part that crowds the
 * input out under the RMS calibration, and leaves their differences. The
 * first example of a step has no earlier message and gets no term. The
 * running mean is reset at every step's start (lw_spread_term_reset), so
 * the term holds no state across steps: a resumed run is the run it
 * continues. With several ranks (lw train --comm) each rank's term sees
 * the rank's own examples of the step. Its value is not added to the logged losses (they stay the
 * receiver's cross-entropy, comparable with runs without the term); only
 * its gradient is. */
#ifndef LW_SPREAD_TERM_H
#define LW_SPREAD_TERM_H

#include <stddef.h>

#include "status.h"

typedef struct {
    float weight;    /* 0: off (nothing allocated, every call a no-op) */
    int M, W;        /* a message: M vectors of W floats */
    double *sum;     /* [M * W] the sum of this step's messages so far */
    int n;           /* messages in sum */
} lw_spread_term;

/* weight >= 0 and finite; M, W positive. */
lw_status lw_spread_term_init(lw_spread_term *s, float weight, int M, int W);
void lw_spread_term_free(lw_spread_term *s);
/* The start of an optimizer step: no earlier message. */
void lw_spread_term_reset(lw_spread_term *s);

/* The term's value for message z against the mean mbar [M * W] (the pure
 * function the test probes by finite differences): (1/M) sum_m
 * cos(z[m], mbar[m]) (a zero vector's cosine is 0); dz (may be NULL) gets
 * scale * its gradient added. */
double lw_spread_cos(const float *z, const double *mbar, int M, int W, float *dz, float scale);

/* One training example's message z: dz += scale * weight * d(term)/dz
 * against the step's earlier messages, then z joins them. Returns the
 * term's value (weight times the mean cosine; 0 for the step's first). */
double lw_spread_term_step(lw_spread_term *s, const float *z, float *dz, float scale);

#endif
