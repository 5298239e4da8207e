/* The sender states of several layers side by side, for the layer mix
 * (layer_mix.h): K caches of one data file (each lw_sender_cache_get's,
 * one layer each, so each is built once and shared with single-layer runs)
 * stacked into one in-memory cache whose row t of an example holds the K
 * layers' rows one after the other ([T, K*S]). The K caches must cover the
 * same examples with the same row counts (they come from one tokenization).
 * Also the per-layer statistics the mix standardises with. */
#ifndef LW_SENDER_CACHE_LAYERS_H
#define LW_SENDER_CACHE_LAYERS_H

#include "layer_mix.h"
#include "sender_cache.h"
#include "sender_states.h"
#include "status.h"

lw_status lw_sender_cache_stack(const lw_sender_cache *caches, int K, lw_sender_cache *out);
/* lw_sender_cache_get for each of layers[K] (K = 1: that cache itself),
 * stacked; the K one-layer caches are closed again. */
lw_status lw_sender_cache_get_layers(const lw_model_config *sender, const int *layers, int K, const char *data_path,
                                     const lw_dataset *d, const char *cache_dir, int quiet, lw_sender_cache *out);
/* One text's states of mix's layers (lw_sender_run_states, layer by layer,
 * stacked into *stack, grown as needed) mixed into out [*T, S] (room for
 * LW_SENDER_MAX_TOKENS rows): what lw send gives a bridge trained on a mix,
 * the same bits as the stacked cache then lw_layer_mix_forward. */
lw_status lw_sender_run_mixed(lw_sender_run *r, const lw_layer_mix *mix, const char *text, float **stack,
                              size_t *stack_cap, float *out, int *T);
/* Sets m's per-layer mean / std from the first n examples of the stacked cache. */
lw_status lw_layer_mix_fit_norm(lw_layer_mix *m, const lw_sender_cache *stacked, int n);

#endif
