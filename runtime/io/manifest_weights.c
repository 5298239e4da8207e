/* A manifest's model block held against its weights file (manifest_weights.h). */
#include "manifest_weights.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "weights.h"

static bool differ_rel(float a, float b, float rel)
{
    return fabsf(a - b) > rel * fmaxf(fabsf(a), fabsf(b));
}

lw_status lw_manifest_check_weights(const lw_manifest *m, const char *which)
{
    const lw_model_config *want;
    if (strcmp(which, "sender") == 0) want = &m->sender;
    else if (strcmp(which, "receiver") == 0) want = &m->receiver;
    else return lw_fail(LW_ERR_INVALID, "%s: %s: not a model block; expected \"sender\" or \"receiver\"",
                        m->path, which);
    lw_weights *w = NULL;
    lw_status st = lw_weights_open(want->weights_path, want->weights_format, &w);
    if (st) return lw_fail_wrap(st, "%s: %s.weights.path", m->path, which);
    /* Start from the manifest's values: what the file does not carry then
     * compares equal instead of as a spurious mismatch. */
    lw_model_config got = *want;
    st = lw_weights_read_config(w, &got);
    const char *file = lw_weights_path(w);
    char wfile[LW_PATH_MAX];
    snprintf(wfile, sizeof wfile, "%s", file ? file : want->weights_path);
    lw_weights_close(w);
    if (st) return lw_fail_wrap(st, "%s: %s.weights.path", m->path, which);

    struct { const char *field; long long want, got; } ints[] = {
        {"hidden", want->hidden, got.hidden},         {"n_layers", want->n_layers, got.n_layers},
        {"n_heads", want->n_heads, got.n_heads},      {"n_kv_heads", want->n_kv_heads, got.n_kv_heads},
        {"head_dim", want->head_dim, got.head_dim},   {"ffn", want->ffn, got.ffn},
        {"vocab", want->vocab, got.vocab},
        {"tied_embeddings", want->tied_embeddings, got.tied_embeddings},
        {"qkv_bias", want->qkv_bias, got.qkv_bias},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].want != ints[i].got)
            return lw_fail(LW_ERR_INVALID, "%s: %s.%s: the manifest says %lld but %s says %lld; expected the "
                           "manifest to match the weights", m->path, which, ints[i].field, ints[i].want, wfile,
                           ints[i].got);
    struct { const char *field; float want, got, rel; } floats[] = {
        {"norm_eps", want->norm_eps, got.norm_eps, 1e-3f},
        {"rope_theta", want->rope_base, got.rope_base, 1e-5f},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
        if (differ_rel(floats[i].want, floats[i].got, floats[i].rel))
            return lw_fail(LW_ERR_INVALID, "%s: %s.%s: the manifest says %g but %s says %g; expected the "
                           "manifest to match the weights (relative tolerance %g)", m->path, which,
                           floats[i].field, floats[i].want, wfile, floats[i].got, floats[i].rel);
    return LW_OK;
}
