/* A hash of every logit of a greedy decode, to show that a change or a
 * thread count moves no bit (docs/perf.md, "stop 22"): an 8-token prompt,
 * then greedy steps of one token over the cache; FNV-1a over the bytes of
 * each step's logits (the prefill's last row and every decode step but the
 * last's). Run it from two builds, or at two thread counts, and compare the
 * lines' hashes.
 *
 *   decode_hash <model.gguf> <fp32|bf16|q8|native> <threads> [steps=56] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_threads.h"
#include "model.h"
#include "model_load.h"
#include "narrow_weights.h"
#include "thread_pool.h"

static int fail(const char *what)
{
    fprintf(stderr, "decode_hash: %s: %s\n", what, lw_last_error());
    return 1;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t k = 0; k < n; k++) h = (h ^ b[k]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv)
{
    lw_weights_dtype d;
    if (argc < 4 || !lw_weights_dtype_parse(argv[2], &d)) {
        fprintf(stderr, "usage: decode_hash <model.gguf> <fp32|bf16|q8|native> <threads> [steps=56]\n");
        return 2;
    }
    int threads = atoi(argv[3]), P = 8, N = argc > 4 ? atoi(argv[4]) : 56;
    if (threads < 1 || threads > 64 || N < 1 || N > 4096) return 2;
    if (lw_cpu_threads_set(threads)) return fail("threads");
    lw_model *m = NULL;
    if (lw_model_open(argv[1], LW_WEIGHTS_GGUF, &m)) return fail("load");
    if (lw_model_narrow(m, d, false)) return fail(argv[2]);
    lw_state *s = NULL;
    if (lw_state_alloc(m, P + N + 1, false, &s)) return fail("state");
    int V = m->cfg.vocab, *ids = malloc(sizeof(int) * (size_t)(P + N));
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!ids || !logits) return 1;
    for (int i = 0; i < P; i++) ids[i] = 3 + (i * 7919) % (V - 3);
    uint64_t h = 1469598103934665603ull;
    lw_forward_args a = {.ids = ids, .T = P, .logits = logits, .capture_layer = -1};
    if (lw_forward(m, s, &a)) return fail("prefill");
    for (int i = 0; i < N; i++) {
        h = fnv(h, logits, sizeof(float) * (size_t)V);
        ids[P + i] = lw_sample(logits, V, 0.0f, 0.0f, NULL);
        a = (lw_forward_args){.ids = &ids[P + i], .T = 1, .pos0 = P + i, .logits = logits, .capture_layer = -1};
        if (lw_forward(m, s, &a)) return fail("decode");
    }
    printf("%s %s threads %d: %d steps, logits hash %016llx, last token %d, fork-joins %ld\n", argv[1], argv[2],
           threads, N, (unsigned long long)h, ids[P + N - 1], lw_threads_parallel_jobs());
    free(ids), free(logits);
    lw_state_free(s);
    lw_model_free(m);
    return 0;
}
