/* LWC_RANDOM_WEIGHTS: random weights of the manifest's shapes and a byte
 * tokenizer, for timing without the model files (random_weights.h). */
#include "random_weights.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"

lw_status lw_random_weights_mode(bool *on, uint64_t *seed)
{
    *on = false;
    *seed = 0;
    const char *v = getenv("LWC_RANDOM_WEIGHTS");
    if (!v || !*v) return LW_OK;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || v[0] == '-' || v[0] == '+')
        return lw_fail(LW_ERR_INVALID, "LWC_RANDOM_WEIGHTS='%.32s': expected a seed (a decimal integer)", v);
    *on = true;
    *seed = (uint64_t)x;
    return LW_OK;
}

void lw_random_weights_warn(void)
{
    static bool said;
    if (said) return;
    said = true;
    fprintf(stderr, "lw: LWC_RANDOM_WEIGHTS is set: random weights and a byte tokenizer, no stop tokens: "
                    "for timing only (outputs and accuracies are meaningless)\n");
}

void lw_apply_ignore_stop(lw_model_config *cfg)
{
    bool on;
    uint64_t seed;
    const char *v = getenv("LWC_IGNORE_STOP");
    bool ignore = v && !strcmp(v, "1");
    if (!ignore && lw_random_weights_mode(&on, &seed) == LW_OK) ignore = on;
    if (!ignore) return;
    cfg->eos_id = -1;
    cfg->n_stop_ids = 0;
}

lw_status lw_random_model(const lw_model_config *cfg, uint64_t seed, lw_model **out)
{
    *out = NULL;
    lw_random_weights_warn();
    /* the two models of a pair get different weights from one seed */
    uint64_t s = lw_fnv1a(lw_fnv1a(LW_FNV_INIT, &seed, sizeof seed), cfg->name, strlen(cfg->name));
    lw_model *m;
    lw_status st = lw_model_init_random(cfg, s, &m);
    if (st) return lw_fail_wrap(st, "LWC_RANDOM_WEIGHTS=%" PRIu64, seed);
    /* unit-normal embeddings give tied logits of std sqrt(hidden); the
     * manifest's embedding RMS brings them to the real model's scale */
    if (cfg->embed_rms > 0 && isfinite(cfg->embed_rms)) {
        float f = cfg->embed_rms / m->embed_scale;
        size_t n = (size_t)cfg->vocab * (size_t)cfg->hidden;
        for (size_t i = 0; i < n; i++) m->token_embd[i] *= f;
    }
    lw_apply_ignore_stop(&m->cfg);
    *out = m;
    return LW_OK;
}
