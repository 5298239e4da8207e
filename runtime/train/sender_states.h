/* The sender's layer-l hidden states of one text: what the bridge reads.
 * The sender-state cache (sender_cache.h) runs it over a data file once and
 * keeps the rows on disk; lw send (cmd_send.c) runs it on each text it is
 * given. Both go through here, so a message made from a text carries the
 * same soft tokens as the in-process bridge on the cached states.
 *
 * The sender reads the text in its own chat template (one user turn,
 * lw_chat_render with no system prompt); the states are HF
 * hidden_states[layer]. Kept are the rows after the template's head (BOS,
 * default system prompt, user header: the same for every text, and the
 * first token is an attention sink with states hundreds of times larger
 * than the rest), at most LW_SENDER_MAX_TOKENS of them (the first ones).
 * Without a template (LW_CHAT_NONE) the first token is dropped for the same
 * reason. */
#ifndef LW_SENDER_STATES_H
#define LW_SENDER_STATES_H

#include "layer_mix.h"
#include "model.h"
#include "sender_cache.h"   /* LW_SENDER_MAX_TOKENS; lw_sender_cache_get fills one */
#include "status.h"
#include "tokenizer.h"

typedef struct {
    lw_model *model;
    lw_state *state;
    lw_tokenizer *tok;
    int cap;         /* positions: the token cap plus room for the template head */
    float *hidden;   /* [cap, hidden]: the last text's kept rows */
} lw_sender_run;

/* Loads the sender's weights and tokenizer. */
lw_status lw_sender_run_open(const lw_model_config *cfg, lw_sender_run *r);
void lw_sender_run_close(lw_sender_run *r);

/* The layer-`layer` states of text's kept rows into r->hidden; *T rows
 * (1..LW_SENDER_MAX_TOKENS). */
lw_status lw_sender_run_states(lw_sender_run *r, int layer, const char *text, int *T);

/* The sender-state cache of data_path's first d->n examples
 * (lw_sender_cache_get_from, sender_cache.h), built with the sender (loaded
 * only then: lw_sender_run_open on sender) if it is missing, stale or too
 * short. */
lw_status lw_sender_cache_get(const lw_model_config *sender, int layer, const char *data_path,
                              const lw_dataset *d, const char *cache_dir, int quiet, lw_sender_cache *out);

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

#endif
