/* The layer mix's file in a checkpoint folder (layer_mix_file.h). */
#include "layer_mix_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "fileutil.h"
#include "safetensors.h"
#include "safetensors_write.h"

static void file_path(const char *dir, char *out, size_t cap) { (void)lw_pathf(out, cap, "%s/%s", dir, LW_LAYER_MIX_FILE); }

bool lw_layer_mix_file_exists(const char *dir)
{
    char path[4200];
    struct stat sb;
    file_path(dir, path, sizeof path);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

lw_status lw_layer_mix_save(const lw_layer_mix *m, const char *dir)
{
    char path[4200], desc[256];
    file_path(dir, path, sizeof path);
    int K = m->K;
    float layers[LW_LAYER_MIX_MAX], step = (float)m->opt.step;
    for (int k = 0; k < K; k++) layers[k] = (float)m->layers[k];
    lw_layer_mix_describe(m, desc, sizeof desc);
    lw_st_tensor t[] = {
        {"mix.layers", layers, 1, {K}},
        {"mix.logits", m->logits, 1, {K}},
        {"mix.mean", m->mean, 2, {K, m->S}},
        {"mix.std", m->std, 2, {K, m->S}},
        {"adam_m.mix.logits", m->opt.m, 1, {K}},
        {"adam_v.mix.logits", m->opt.v, 1, {K}},
        {"adam_step", &step, 1, {1}},
    };
    lw_st_meta meta[] = {{"format", "lwc-layer-mix-1"}, {"sender_layers", desc}};
    return lw_safetensors_write(path, t, (int)(sizeof t / sizeof t[0]), meta, 2);
}

/* name as F32 of n0 (x n1 when n1 > 0) finite values. */
static lw_status find(const lw_safetensors *s, const char *path, const char *name, int64_t n0, int64_t n1,
                      const float **data)
{
    const lw_raw_tensor *r = lw_safetensors_find(s, name);
    if (!r) return lw_fail(LW_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    bool shape = n1 > 0 ? r->ndim == 2 && r->shape[0] == n0 && r->shape[1] == n1 : r->ndim == 1 && r->shape[0] == n0;
    size_t count = (size_t)n0 * (size_t)(n1 > 0 ? n1 : 1);
    if (r->type != LW_GGML_F32 || !shape || r->nbytes != count * sizeof(float))
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: expected F32 [%lld%s%lld]", path, name, (long long)n0,
                       n1 > 0 ? ", " : "", n1 > 0 ? (long long)n1 : 0LL);
    const float *d = r->data;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(d[i])) return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: value %zu is not finite", path, name, i);
    *data = d;
    return LW_OK;
}

lw_status lw_layer_mix_load(lw_layer_mix *m, const char *dir, int S)
{
    memset(m, 0, sizeof *m);
    char path[4200];
    file_path(dir, path, sizeof path);
    lw_safetensors *s = NULL;
    lw_status st = lw_safetensors_open(path, &s);
    if (st) return lw_fail_wrap(st, "layer mix");
    const lw_raw_tensor *lr = lw_safetensors_find(s, "mix.layers");
    int K = lr && lr->ndim == 1 ? (int)lr->shape[0] : 0;
    if (K < 1 || K > LW_LAYER_MIX_MAX)
        st = lw_fail(LW_ERR_FORMAT, "%s: mix.layers: expected F32 [K] with K in 1..%d", path, LW_LAYER_MIX_MAX);
    const float *layers = NULL, *logits = NULL, *mean = NULL, *std = NULL, *am = NULL, *av = NULL, *step = NULL;
    if (!st) st = find(s, path, "mix.layers", K, 0, &layers);
    if (!st) st = find(s, path, "mix.logits", K, 0, &logits);
    if (!st) st = find(s, path, "mix.mean", K, S, &mean);
    if (!st) st = find(s, path, "mix.std", K, S, &std);
    if (!st) st = find(s, path, "adam_m.mix.logits", K, 0, &am);
    if (!st) st = find(s, path, "adam_v.mix.logits", K, 0, &av);
    if (!st) st = find(s, path, "adam_step", 1, 0, &step);
    int li[LW_LAYER_MIX_MAX];
    for (int k = 0; !st && k < K; k++) {
        li[k] = (int)layers[k];
        if ((float)li[k] != layers[k] || li[k] < 0)
            st = lw_fail(LW_ERR_FORMAT, "%s: mix.layers[%d] is %g, expected a layer number", path, k, (double)layers[k]);
    }
    if (!st && (step[0] < 0 || floorf(step[0]) != step[0]))
        st = lw_fail(LW_ERR_FORMAT, "%s: adam_step is %g, expected a step count", path, (double)step[0]);
    if (!st) st = lw_layer_mix_create(m, li, K, S);
    if (!st) {
        memcpy(m->logits, logits, (size_t)K * sizeof *logits);
        for (int k = 0; k < K; k++) lw_layer_mix_set_norm(m, k, mean + (size_t)k * S, std + (size_t)k * S);
        memcpy(m->opt.m, am, (size_t)K * sizeof *am);
        memcpy(m->opt.v, av, (size_t)K * sizeof *av);
        m->opt.step = (long)step[0];
    }
    lw_safetensors_close(s);
    return st;
}

/* The folder of a checkpoint: itself, or the .safetensors file's. */
static void checkpoint_dir(const char *ck, char *out, size_t cap)
{
    bool is_dir;
    char file[4200];
    lw_bridge_checkpoint_file(ck, file, sizeof file, &is_dir);
    if (is_dir) {
        lw_pathf(out, cap, "%s", ck);
        return;
    }
    char *slash = strrchr(file, '/');
    if (!slash) lw_pathf(out, cap, ".");
    else {
        *slash = '\0';
        lw_pathf(out, cap, "%s", *file ? file : "/");
    }
}

lw_status lw_bridge_checkpoint_layers(const char *checkpoint, int S, int default_layer, int *layers, int *K)
{
    char dir[4200];
    checkpoint_dir(checkpoint, dir, sizeof dir);
    *K = 1, layers[0] = default_layer;
    if (!lw_layer_mix_file_exists(dir)) return LW_OK;
    lw_layer_mix m;
    lw_status st = lw_layer_mix_load(&m, dir, S);
    if (st) return st;
    *K = m.K;
    memcpy(layers, m.layers, (size_t)m.K * sizeof *layers);
    lw_layer_mix_free(&m);
    return LW_OK;
}

lw_status lw_bridge_checkpoint_mix(const char *checkpoint, const lw_bridge *b, lw_layer_mix *mix, bool *found)
{
    const char *want = b->sender_layers;
    char dir[4200], have[96] = "";
    checkpoint_dir(checkpoint, dir, sizeof dir);
    bool there = lw_layer_mix_file_exists(dir);
    *found = false;
    memset(mix, 0, sizeof *mix);
    if (!*want && !there) return LW_OK;
    if (!*want)
        return lw_fail(LW_ERR_FORMAT, "%s: %s/%s is there but the bridge was trained on one sender layer (files of "
                       "two checkpoints mixed?)", checkpoint, dir, LW_LAYER_MIX_FILE);
    if (!there)
        return lw_fail(LW_ERR_FORMAT, "%s: the bridge was trained on a mix of sender layers %s, and %s/%s, which "
                       "holds the mix, is missing: copy it with the bridge", checkpoint, want, dir, LW_LAYER_MIX_FILE);
    lw_status st = lw_layer_mix_load(mix, dir, b->sender_hidden);
    if (st) return st;
    lw_layer_mix_describe(mix, have, sizeof have);
    if (strcmp(have, want) != 0) {
        lw_layer_mix_free(mix);
        return lw_fail(LW_ERR_FORMAT, "%s: the bridge was trained on sender layers %s, %s/%s mixes %s", checkpoint,
                       want, dir, LW_LAYER_MIX_FILE, have);
    }
    *found = true;
    return LW_OK;
}
