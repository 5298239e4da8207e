/* lw_generate (generate.c) with the forward pass on the GPU: the same loop
 * (lw_generate_with: checks, host-side sampling, stopping rules) over
 * lw_gpu_forward, so a greedy run gives the CPU's tokens up to rounding. */
#include "gpu_model.h"

#include <stdlib.h>

typedef struct {
    lw_gpu_model *g;
    lw_gpu_state *s;
} gpu_decoder;

static void gpu_reset(void *ctx) { lw_gpu_state_reset(((gpu_decoder *)ctx)->s); }
static int gpu_cached(void *ctx) { return ((gpu_decoder *)ctx)->s->n_cached; }
static lw_status gpu_forward(void *ctx, const lw_forward_args *a)
{
    gpu_decoder *c = ctx;
    return lw_gpu_forward(c->g, c->s, a);
}

lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out)
{
    gpu_decoder c = {g, s};
    lw_decoder d = {.name = g->cfg.name, .vocab = g->cfg.vocab, .capacity = s->max_tokens, .ctx = &c,
                    .reset = gpu_reset, .forward = gpu_forward, .cached = gpu_cached};
    return lw_generate_with(&d, prompt, n_prompt, a, out, n_out);
}
