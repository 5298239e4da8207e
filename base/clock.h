/* The one wall clock of the runtime: monotonic seconds, for timings and
 * progress lines (training steps, evaluation, the bench's stages), at the
 * bottom of the tree so that any layer may time itself. */
#ifndef LW_CLOCK_H
#define LW_CLOCK_H

/* CLOCK_MONOTONIC in seconds: differences only, never a date. */
double lw_now_s(void);

#endif
