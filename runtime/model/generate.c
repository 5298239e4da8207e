/* Autoregressive generation over lw_forward: greedy or temperature/top-p
 * sampling from a seeded RNG, ending at a stop token, at max_new tokens, or
 * when the KV cache is full. */
#include "model.h"

#include <math.h>
#include <stdlib.h>

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct {
    float p;
    int id;
} prob_id;

static int by_prob_desc(const void *a, const void *b)
{
    float pa = ((const prob_id *)a)->p, pb = ((const prob_id *)b)->p;
    return pa < pb ? 1 : pa > pb ? -1 : 0;
}

/* Draws from the smallest set of most likely tokens whose mass reaches
 * top_p. Tokens below (1 - top_p) / (n - 1) cannot be in that set (as in
 * llama2.c), which keeps the sort short. Falls back to argmax without memory. */
static int sample_top_p(const float *probs, int n, float top_p, float coin)
{
    prob_id *c = malloc((size_t)n * sizeof *c);
    if (!c) return argmax(probs, n);
    float cutoff = n > 1 ? (1.0f - top_p) / (float)(n - 1) : 0.0f;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (probs[i] >= cutoff) c[m++] = (prob_id){probs[i], i};
    qsort(c, (size_t)m, sizeof *c, by_prob_desc);
    double mass = 0.0;
    int last = m - 1;
    for (int i = 0; i < m; i++) {
        mass += c[i].p;
        if (mass > top_p) {
            last = i;
            break;
        }
    }
    double r = coin * mass, acc = 0.0;
    int pick = c[last].id;
    for (int i = 0; i <= last; i++) {
        acc += c[i].p;
        if (r < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}

int lw_sample(float *logits, int vocab, float temperature, float top_p, lw_rng *rng)
{
    if (temperature <= 0.0f) return argmax(logits, vocab);
    float mx = logits[argmax(logits, vocab)];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) {
        logits[i] = expf((logits[i] - mx) / temperature);
        sum += logits[i];
    }
    for (int i = 0; i < vocab; i++) logits[i] = (float)(logits[i] / sum);
    float coin = (float)lw_rng_uniform(rng);
    if (top_p > 0.0f && top_p < 1.0f) return sample_top_p(logits, vocab, top_p, coin);
    double acc = 0.0;
    for (int i = 0; i < vocab; i++) {
        acc += logits[i];
        if (coin < acc) return i;
    }
    return vocab - 1;  /* rounding left the sum just under coin */
}

static bool is_stop(const lw_generate_args *a, int token)
{
    for (int i = 0; i < a->n_stop; i++)
        if (a->stop_ids[i] == token) return true;
    return false;
}

lw_status lw_generate_with(const lw_decoder *d, const int *prompt, int n_prompt, const lw_generate_args *a, int *out,
                           int *n_out)
{
    *n_out = 0;
    if (n_prompt <= 0 || a->max_new < 0 || (a->n_stop > 0 && !a->stop_ids) || a->n_stop < 0)
        return lw_fail(LW_ERR_INVALID, "generate %s: prompt of %d tokens, max_new %d, %d stop ids", d->name,
                       n_prompt, a->max_new, a->n_stop);
    if (!(a->temperature >= 0.0f) || !(a->top_p >= 0.0f))
        return lw_fail(LW_ERR_INVALID, "generate %s: temperature %g and top_p %g must be >= 0", d->name,
                       a->temperature, a->top_p);
    float *logits = malloc((size_t)d->vocab * sizeof *logits);
    if (!logits) return lw_fail(LW_ERR_NOMEM, "generate %s: out of memory", d->name);
    lw_rng rng;
    lw_rng_seed(&rng, a->seed);

    d->reset(d->ctx);
    lw_forward_args fa = {.ids = prompt, .T = n_prompt, .pos0 = 0, .logits = logits, .capture_layer = -1};
    lw_status st = d->forward(d->ctx, &fa);
    int n = 0;
    while (st == LW_OK && n < a->max_new) {
        int token = lw_sample(logits, d->vocab, a->temperature, a->top_p, &rng);
        out[n++] = token;
        if (a->on_token && !a->on_token(a->user, token)) break;
        int pos = d->cached(d->ctx);
        if (is_stop(a, token) || n == a->max_new || pos >= d->capacity) break;
        fa = (lw_forward_args){.ids = &out[n - 1], .T = 1, .pos0 = pos, .logits = logits, .capture_layer = -1};
        st = d->forward(d->ctx, &fa);
    }
    free(logits);
    *n_out = n;
    return st;
}

/* The CPU backend: lw_forward over (model, state). */
typedef struct {
    const lw_model *m;
    lw_state *s;
} cpu_decoder;

static void cpu_reset(void *ctx) { lw_state_reset(((cpu_decoder *)ctx)->s); }
static int cpu_cached(void *ctx) { return ((cpu_decoder *)ctx)->s->n_cached; }
static lw_status cpu_forward(void *ctx, const lw_forward_args *a)
{
    cpu_decoder *c = ctx;
    return lw_forward(c->m, c->s, a);
}

lw_status lw_generate(const lw_model *m, lw_state *s, const int *prompt, int n_prompt,
                      const lw_generate_args *a, int *out, int *n_out)
{
    cpu_decoder c = {m, s};
    lw_decoder d = {.name = m->cfg.name, .vocab = m->cfg.vocab, .capacity = s->max_tokens, .ctx = &c,
                    .reset = cpu_reset, .forward = cpu_forward, .cached = cpu_cached};
    return lw_generate_with(&d, prompt, n_prompt, a, out, n_out);
}
