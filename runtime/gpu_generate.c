/* lw_generate (generate.c) with the forward pass on the GPU: the same
 * checks, the same sampling on the host and the same stopping rules, so a
 * greedy run gives the CPU's tokens up to rounding in the logits. */
#include "gpu_model.h"

#include <stdlib.h>

static bool is_stop(const lw_generate_args *a, int token)
{
    for (int i = 0; i < a->n_stop; i++)
        if (a->stop_ids[i] == token) return true;
    return false;
}

lw_status lw_gpu_generate(lw_gpu_model *g, lw_gpu_state *s, const int *prompt, int n_prompt,
                          const lw_generate_args *a, int *out, int *n_out)
{
    *n_out = 0;
    int vocab = g->cfg.vocab;
    if (n_prompt <= 0 || a->max_new < 0 || (a->n_stop > 0 && !a->stop_ids) || a->n_stop < 0)
        return lw_fail(LW_ERR_INVALID, "GPU generate %s: prompt of %d tokens, max_new %d, %d stop ids",
                       g->cfg.name, n_prompt, a->max_new, a->n_stop);
    if (!(a->temperature >= 0.0f) || !(a->top_p >= 0.0f))
        return lw_fail(LW_ERR_INVALID, "GPU generate %s: temperature %g and top_p %g must be >= 0", g->cfg.name,
                       a->temperature, a->top_p);
    float *logits = malloc((size_t)vocab * sizeof *logits);
    if (!logits) return lw_fail(LW_ERR_NOMEM, "GPU generate %s: out of memory", g->cfg.name);
    lw_rng rng;
    lw_rng_seed(&rng, a->seed);

    lw_gpu_state_reset(s);
    lw_forward_args fa = {.ids = prompt, .T = n_prompt, .pos0 = 0, .logits = logits, .capture_layer = -1};
    lw_status st = lw_gpu_forward(g, s, &fa);
    int n = 0;
    while (st == LW_OK && n < a->max_new) {
        int token = lw_sample(logits, vocab, a->temperature, a->top_p, &rng);
        out[n++] = token;
        if (a->on_token && !a->on_token(a->user, token)) break;
        if (is_stop(a, token) || n == a->max_new || s->n_cached >= s->max_tokens) break;
        fa = (lw_forward_args){.ids = &out[n - 1], .T = 1, .pos0 = s->n_cached, .logits = logits,
                               .capture_layer = -1};
        st = lw_gpu_forward(g, s, &fa);
    }
    free(logits);
    *n_out = n;
    return st;
}
