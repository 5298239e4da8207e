/* The sender states of several layers side by side, for the layer mix
 * (layer_mix.h): K caches of one data file (each lw_sender_cache_get's,
 * one layer each, so each is built once and shared with single-layer runs)
 * stacked into one in-memory cache whose row t of an example holds the K
 * layers' rows one after the other ([T, K*S]). The K caches must cover the
 * same examples with the same row counts (they come from one tokenization).
 * Also the per-layer statistics the mix standardises with. What runs the
 * sender for them, lw_sender_cache_get_layers and lw_sender_run_mixed, is
 * sender_states.h's: the run loop (train.h) reads the caches and fits the
 * statistics, and stands on no sender run. */
#ifndef LW_SENDER_CACHE_LAYERS_H
#define LW_SENDER_CACHE_LAYERS_H

#include "layer_mix.h"
#include "sender_cache.h"
#include "status.h"

lw_status lw_sender_cache_stack(const lw_sender_cache *caches, int K, lw_sender_cache *out);
/* Sets m's per-layer mean / std from the first n examples of the stacked cache. */
lw_status lw_layer_mix_fit_norm(lw_layer_mix *m, const lw_sender_cache *stacked, int n);

#endif
