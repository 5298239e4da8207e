/* The receiver's adapters as one unit for the training loop (adapter_set.h). */
#include "adapter_set.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_file.h"
#include "fileutil.h"
#include "lora_file.h"

/* The parameter streams drawn from the run's seed. */
#define LORA_SALT 0x4c6f5241ULL
#define PREFIX_SALT 0x50726566ULL

lw_status lw_adapter_set_create(lw_adapter_set *s, const lw_model *receiver, int max_tokens,
                                const lw_lora_config *lora, const lw_deep_prefix_config *prefix, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    lw_status st = LW_OK;
    if (lora) {
        if (!(st = lw_lora_create(&s->lora, lora, receiver))) s->has_lora = true;
        if (!st) lw_lora_init(&s->lora, seed ^ LORA_SALT);
        if (!st) st = lw_adamw_init(&s->opt_lora, s->lora.p.n_params, lw_adamw_defaults());
    }
    if (!st && prefix) {
        if (!(st = lw_deep_prefix_create(&s->prefix, prefix, &receiver->cfg))) s->has_prefix = true;
        if (!st) lw_deep_prefix_init(&s->prefix, seed ^ PREFIX_SALT);
        if (!st) st = lw_adamw_init(&s->opt_prefix, s->prefix.p.n_params, lw_adamw_defaults());
    }
    if (!st)
        st = lw_adapters_init(&s->ad, receiver, max_tokens, s->has_lora ? &s->lora : NULL,
                              s->has_prefix ? prefix->length : 0);
    if (!st && s->has_prefix) lw_deep_prefix_attach(&s->prefix, &s->ad);
    if (st) lw_adapter_set_free(s);
    return st;
}

void lw_adapter_set_free(lw_adapter_set *s)
{
    lw_adapters_free(&s->ad);
    if (s->has_lora) lw_lora_free(&s->lora);
    if (s->has_prefix) lw_deep_prefix_free(&s->prefix);
    lw_adamw_free(&s->opt_lora);
    lw_adamw_free(&s->opt_prefix);
    memset(s, 0, sizeof *s);
}

size_t lw_adapter_set_n_params(const lw_adapter_set *s)
{
    return (s->has_lora ? s->lora.p.n_params : 0) + (s->has_prefix ? s->prefix.p.n_params : 0);
}

int lw_adapter_set_extra_positions(const lw_adapter_set *s) { return s->has_prefix ? s->prefix.cfg.length : 0; }

lw_status lw_adapter_set_forward(lw_adapter_set *s, const float *soft, int M, bool training, uint64_t seed)
{
    s->ad.training = training;
    s->ad.dropout_seed = seed;
    if (!s->has_prefix) return LW_OK;
    return lw_deep_prefix_forward(&s->prefix, soft, M, training, seed ^ PREFIX_SALT);
}

void lw_adapter_set_backward(lw_adapter_set *s, float *dsoft)
{
    if (!s->has_prefix) return;
    lw_deep_prefix *dp = &s->prefix;
    lw_deep_prefix_backward(dp, dsoft);
    size_t n = (size_t)dp->n_layers * dp->cfg.length * dp->kvd;
    memset(dp->dk, 0, n * sizeof(float));
    memset(dp->dv, 0, n * sizeof(float));
}

void lw_adapter_set_zero_grad(lw_adapter_set *s)
{
    if (s->has_lora) lw_adapter_params_zero_grad(&s->lora.p);
    if (s->has_prefix) lw_deep_prefix_zero_grad(&s->prefix);
}

static double sq(const lw_adapter_params *p)
{
    double n = lw_grad_norm(p->grads, p->n_params);
    return n * n;
}

double lw_adapter_set_grad_sq(const lw_adapter_set *s)
{
    return (s->has_lora ? sq(&s->lora.p) : 0.0) + (s->has_prefix ? sq(&s->prefix.p) : 0.0);
}

static void scale(lw_adapter_params *p, float f)
{
    for (size_t i = 0; i < p->n_params; i++) p->grads[i] *= f;
}

void lw_adapter_set_scale_grads(lw_adapter_set *s, float factor)
{
    if (s->has_lora) scale(&s->lora.p, factor);
    if (s->has_prefix) scale(&s->prefix.p, factor);
}

void lw_adapter_set_adamw_step(lw_adapter_set *s, float lr, float weight_decay)
{
    if (s->has_lora) {
        lw_adamw_begin_step(&s->opt_lora);
        lw_adapter_params_adamw(&s->lora.p, &s->opt_lora, lr, weight_decay);
    }
    if (s->has_prefix) {
        lw_adamw_begin_step(&s->opt_prefix);
        lw_adapter_params_adamw(&s->prefix.p, &s->opt_prefix, lr, weight_decay);
    }
}

static lw_status path_in(char *out, size_t cap, const char *dir, const char *file)
{
    if (!lw_pathf(out, cap, "%s/%s", dir, file))
        return lw_fail(LW_ERR_INVALID, "adapters: path too long under %s", dir);
    return LW_OK;
}

lw_status lw_adapter_set_save(const lw_adapter_set *s, const char *dir)
{
    char w[4096], o[4096];
    lw_status st = lw_mkdir_p(dir);
    if (!st && s->has_lora && !(st = path_in(w, sizeof w, dir, "lora.safetensors")) &&
        !(st = path_in(o, sizeof o, dir, "lora_state.safetensors")) &&
        !(st = lw_adapter_params_save_adamw(&s->lora.p, &s->opt_lora, o)))
        st = lw_lora_save(&s->lora, w);
    if (!st && s->has_prefix && !(st = path_in(w, sizeof w, dir, "deep_prefix.safetensors")) &&
        !(st = path_in(o, sizeof o, dir, "deep_prefix_state.safetensors")) &&
        !(st = lw_adapter_params_save_adamw(&s->prefix.p, &s->opt_prefix, o)))
        st = lw_deep_prefix_save(&s->prefix, w);
    return st;
}

lw_status lw_adapter_set_load(lw_adapter_set *s, const char *dir)
{
    char w[4096], o[4096];
    lw_status st = LW_OK;
    if (s->has_lora && !(st = path_in(w, sizeof w, dir, "lora.safetensors")) &&
        !(st = path_in(o, sizeof o, dir, "lora_state.safetensors")) && !(st = lw_lora_load(&s->lora, w)))
        st = lw_adapter_params_load_adamw(&s->lora.p, &s->opt_lora, o);
    if (!st && s->has_prefix && !(st = path_in(w, sizeof w, dir, "deep_prefix.safetensors")) &&
        !(st = path_in(o, sizeof o, dir, "deep_prefix_state.safetensors")) &&
        !(st = lw_deep_prefix_load(&s->prefix, w)))
        st = lw_adapter_params_load_adamw(&s->prefix.p, &s->opt_prefix, o);
    return st;
}

/* ---- a checkpoint's own description -------------------------------------- */

/* The metadata entry key of path parsed as a JSON object (NULL if absent). */
static lw_status meta_json(const char *path, const char *key, json_t **out)
{
    *out = NULL;
    char *text = NULL;
    lw_status st = lw_adapter_read_meta(path, key, &text);
    if (st || !text) return st ? st : lw_fail(LW_ERR_FORMAT, "%s: no __metadata__.%s", path, key);
    *out = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.%s is not a JSON object", path, key);
    }
    return LW_OK;
}

static lw_status lora_config_of(const char *path, int n_layers, lw_lora_config *c)
{
    json_t *j;
    lw_status st = meta_json(path, "adapter_config", &j);
    if (st) return st;
    memset(c, 0, sizeof *c);
    json_t *r = json_object_get(j, "r"), *alpha = json_object_get(j, "lora_alpha");
    json_t *drop = json_object_get(j, "lora_dropout"), *tm = json_object_get(j, "target_modules");
    json_t *layers = json_object_get(j, "layers_to_transform");
    if (!json_is_integer(r) || !json_is_number(alpha) || !json_is_array(tm))
        st = lw_fail(LW_ERR_FORMAT, "%s: adapter_config needs r, lora_alpha and target_modules", path);
    if (!st) {
        c->rank = (int)json_integer_value(r);
        c->alpha = (float)json_number_value(alpha);
        c->dropout = json_is_number(drop) ? (float)json_number_value(drop) : 0.0f;
    }
    for (size_t i = 0; !st && i < json_array_size(tm); i++) {
        json_t *t = json_array_get(tm, i);
        int k = json_is_string(t) ? lw_lora_target_parse(json_string_value(t)) : -1;
        if (k < 0) st = lw_fail(LW_ERR_FORMAT, "%s: adapter_config.target_modules[%zu] is not a target", path, i);
        else c->targets |= 1u << k;
    }
    /* every layer listed is the same as none listed */
    size_t n = json_is_array(layers) ? json_array_size(layers) : 0;
    if (!st && n > 0 && n != (size_t)n_layers) {
        if (n > LW_LORA_MAX_LIST) st = lw_fail(LW_ERR_FORMAT, "%s: %zu layers_to_transform", path, n);
        for (size_t i = 0; !st && i < n; i++) {
            json_t *l = json_array_get(layers, i);
            if (!json_is_integer(l)) st = lw_fail(LW_ERR_FORMAT, "%s: layers_to_transform[%zu]", path, i);
            else c->layer_list[c->n_layer_list++] = (int)json_integer_value(l);
        }
    }
    json_decref(j);
    return st;
}

static lw_status prefix_config_of(const char *path, lw_deep_prefix_config *c)
{
    json_t *j;
    lw_status st = meta_json(path, "deep_prefix", &j);
    if (st) return st;
    json_t *len = json_object_get(j, "length"), *hid = json_object_get(j, "hidden");
    json_t *drop = json_object_get(j, "dropout");
    if (!json_is_integer(len) || !json_is_integer(hid) || llabs(json_integer_value(len)) > 1 << 20 ||
        llabs(json_integer_value(hid)) > 1 << 20)
        st = lw_fail(LW_ERR_FORMAT, "%s: deep_prefix metadata needs integer length and hidden", path);
    else
        *c = (lw_deep_prefix_config){.length = (int)json_integer_value(len), .hidden = (int)json_integer_value(hid),
                                     .dropout = json_is_number(drop) ? (float)json_number_value(drop) : 0.0f};
    json_decref(j);
    return st;
}

lw_status lw_adapter_set_open(lw_adapter_set *s, const lw_model *receiver, int max_tokens, const char *dir,
                              bool *found)
{
    memset(s, 0, sizeof *s);
    *found = false;
    char lp[4096], pp[4096];
    lw_status st = path_in(lp, sizeof lp, dir, "lora.safetensors");
    if (!st) st = path_in(pp, sizeof pp, dir, "deep_prefix.safetensors");
    if (st) return st;
    bool has_lora = lw_file_exists(lp), has_prefix = lw_file_exists(pp);
    if (!has_lora && !has_prefix) return LW_OK;
    lw_lora_config lc;
    lw_deep_prefix_config pc;
    if (has_lora) st = lora_config_of(lp, receiver->cfg.n_layers, &lc);
    if (!st && has_prefix) st = prefix_config_of(pp, &pc);
    if (!st) st = lw_adapter_set_create(s, receiver, max_tokens, has_lora ? &lc : NULL, has_prefix ? &pc : NULL, 0);
    if (!st && has_lora) st = lw_lora_load(&s->lora, lp);
    if (!st && has_prefix) st = lw_deep_prefix_load(&s->prefix, pp);
    if (st) {
        lw_adapter_set_free(s);
        return lw_fail_wrap(st, "adapters in %s", dir);
    }
    *found = true;
    return LW_OK;
}
