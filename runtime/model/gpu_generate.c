/* lw_generate (generate.c) with the forward pass on the GPU: the same loop
 * (lw_generate_with: checks, host-side sampling, stopping rules) over
 * lw_gpu_forward for the prompt and a decoder (gpu_decode.c) for the steps,
 * one CUDA graph replayed a token where the device can capture one, so a
 * greedy run gives the CPU's tokens up to rounding. */
#include "gpu_model.h"

#include <stdlib.h>

typedef struct {
    lw_gpu_model *g;
    lw_gpu_state *s;
    lw_gpu_decoder *steps;   /* opened at the first step */
} gpu_decoder;

static void gpu_reset(void *ctx) { lw_gpu_state_reset(((gpu_decoder *)ctx)->s); }
static int gpu_cached(void *ctx) { return ((gpu_decoder *)ctx)->s->n_cached; }
static lw_status gpu_forward(void *ctx, const lw_forward_args *a)
{
    gpu_decoder *c = ctx;
    /* a step: one token id at the next position, its logits, nothing else (generate.c's loop) */
    bool step = a->T == 1 && a->ids && !a->embeds && !a->is_embed && !a->adapters && !a->n_segments &&
                a->capture_layer < 0 && a->logits && a->pos0 == c->s->n_cached && a->pos0 > 0;
    if (!step) return lw_gpu_forward(c->g, c->s, a);
    lw_status st = c->steps ? LW_OK : lw_gpu_decoder_open(c->g, c->s, true, &c->steps);
    return st ? st : lw_gpu_decoder_step(c->steps, a->ids[0], a->logits);
}

lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out)
{
    gpu_decoder c = {g, s, NULL};
    lw_decoder d = {.name = g->cfg.name, .vocab = g->cfg.vocab, .capacity = s->max_tokens, .ctx = &c,
                    .reset = gpu_reset, .forward = gpu_forward, .cached = gpu_cached};
    lw_status st = lw_generate_with(&d, prompt, n_prompt, a, out, n_out);
    lw_gpu_decoder_close(c.steps);
    return st;
}
