/* Confidence-gated fallback (issue 22 item 4): where the bridge's answer is
 * unsure, the receiver asks for the text and reads it itself.
 *
 * An example falls back when the bridge's margin (best label score minus
 * the second best, lw_scores_write_line) is below the threshold; its label
 * is then the receiver's zero-shot answer on the text (the
 * receiver-zeroshot baseline, baselines.h), else the bridge's. The receiver
 * reads only the texts that fall back, so the cost is theirs alone.
 *
 * With the curve, every example's text is read, and the accuracy is given
 * for falling back the k least sure examples for every k = 0..n: the
 * accuracy against the fraction of examples that fell back. */
#ifndef LW_BRIDGE_FALLBACK_H
#define LW_BRIDGE_FALLBACK_H

#include <jansson.h>
#include <stdbool.h>

#include "baselines.h"
#include "dataset.h"
#include "manifest.h"
#include "status.h"
#include "task.h"

/* pred[n] in: the bridge's labels; out: the gated labels. margins[n]: the
 * bridge's. bridge_seconds: what the bridge took for the n examples.
 * *extra gets the JSON fields: threshold, fallback count and fraction, the
 * bridge's and the fallback's accuracy and seconds per example, and with
 * curve the curve. */
lw_status lw_bridge_fallback(const lw_manifest *m, const lw_task *task, const lw_dataset *d, const double *margins,
                             float threshold, bool curve, const lw_baseline_options *o, double bridge_seconds,
                             int *pred, json_t **extra);

#endif
