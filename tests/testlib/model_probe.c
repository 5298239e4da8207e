/* The dtype tests' model probes (model_probe.h). */
#include "model_probe.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "rng.h"
#include "testlib.h"
#include "tiny_models.h"

lw_model_config tl_tiny_family_config(int i)
{
    switch (i) {
    case 0: return tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    case 1: return tl_tiny_gemma3_config(4);   /* tied output, sliding window */
    case 2: return tl_tiny_qwen2_config();     /* q/k/v biases, tied */
    default: return tl_tiny_qwen3_config();
    }
}

void tl_random_ids(int *ids, int n, int vocab, uint64_t seed)
{
    lw_rng r;
    lw_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) ids[i] = (int)(lw_rng_next(&r) % (uint64_t)vocab);
}

float *tl_all_logits(const lw_model *m, const int *ids, int n)
{
    lw_state *s = NULL;
    ck_assert_int_eq(lw_state_alloc(m, n, false, &s), LW_OK);
    float *logits = malloc((size_t)n * m->cfg.vocab * sizeof(float));
    ck_assert_ptr_nonnull(logits);
    lw_forward_args a = {.ids = ids, .T = n, .logits = logits, .all_logits = true, .capture_layer = -1};
    ck_assert_msg(lw_forward(m, s, &a) == LW_OK, "%s", lw_last_error());
    lw_state_free(s);
    return logits;
}

double tl_max_abs_diff(const float *a, const float *b, size_t n, double *scale)
{
    double d = 0, sc = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), sc = fmax(sc, fabs((double)b[i]));
    *scale = sc;
    return d;
}

void tl_greedy(const lw_model *m, const int *prompt, int n_prompt, int n, int *out, float *gap)
{
    int V = m->cfg.vocab;
    lw_state *s = NULL;
    ck_assert_int_eq(lw_state_alloc(m, n_prompt + n, false, &s), LW_OK);
    float *logits = malloc((size_t)V * sizeof(float));
    ck_assert_ptr_nonnull(logits);
    int pos = 0, cur_n = n_prompt;
    const int *cur = prompt;
    for (int k = 0; k < n; k++) {
        lw_forward_args a = {.ids = cur, .T = cur_n, .pos0 = pos, .logits = logits, .capture_layer = -1};
        ck_assert_msg(lw_forward(m, s, &a) == LW_OK, "%s", lw_last_error());
        pos += cur_n;
        int best = 0, second = -1;
        for (int v = 1; v < V; v++) {
            if (logits[v] > logits[best]) second = best, best = v;
            else if (second < 0 || logits[v] > logits[second]) second = v;
        }
        out[k] = best;
        gap[k] = logits[best] - logits[second];
        cur = &out[k], cur_n = 1;
    }
    free(logits);
    lw_state_free(s);
}
