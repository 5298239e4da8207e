/* A LoRA as PEFT's safetensors file (lora_file.h). */
#include "lora_file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_file.h"

char *lw_lora_config_json(const lw_lora *lo)
{
    json_t *root = json_object(), *targets = json_array(), *layers = json_array();
    for (int t = 0; t < LW_LORA_N_TARGETS; t++)
        if (lo->cfg.targets & (1u << t)) json_array_append_new(targets, json_string(lw_lora_target_module(t)));
    for (int l = 0; l < lo->n_layers; l++)
        if (lw_lora_layer_on(&lo->cfg, l)) json_array_append_new(layers, json_integer(l));
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(root, "r", json_integer(lo->cfg.rank));
    json_object_set_new(root, "lora_alpha", json_real(lo->cfg.alpha));
    json_object_set_new(root, "lora_dropout", json_real(lo->cfg.dropout));
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "target_modules", targets);
    json_object_set_new(root, "layers_to_transform", layers);
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}

lw_status lw_lora_save(const lw_lora *lo, const char *path)
{
    if (lo->merged)
        return lw_fail(LW_ERR_INVALID, "%s: the LoRA is merged into the model; unmerge before saving", path);
    char *cfg = lw_lora_config_json(lo);
    if (!cfg) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    lw_adapter_meta meta[] = {{"format", "pt"}, {"adapter_config", cfg}};
    lw_status st = lw_adapter_params_save(&lo->p, path, meta, 2);
    free(cfg);
    return st;
}

/* The file's adapter_config, if it has one, must describe lo. */
static lw_status check_file_config(const lw_lora *lo, const char *path)
{
    char *text = NULL;
    lw_status st = lw_adapter_read_meta(path, "adapter_config", &text);
    if (st || !text) return st;
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_object(root)) {
        json_decref(root);
        return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.adapter_config is not a JSON object", path);
    }
    json_t *r = json_object_get(root, "r"), *alpha = json_object_get(root, "lora_alpha");
    json_t *tm = json_object_get(root, "target_modules");
    unsigned targets = 0;
    for (size_t i = 0; json_is_array(tm) && i < json_array_size(tm); i++) {
        int t = json_is_string(json_array_get(tm, i)) ? lw_lora_target_parse(json_string_value(json_array_get(tm, i)))
                                                       : -1;
        if (t >= 0) targets |= 1u << t;
    }
    if (json_is_integer(r) && json_integer_value(r) != lo->cfg.rank)
        st = lw_fail(LW_ERR_FORMAT, "%s: adapter_config.r is %lld; expected %d", path,
                     (long long)json_integer_value(r), lo->cfg.rank);
    else if (json_is_number(alpha) && fabs(json_number_value(alpha) - lo->cfg.alpha) > 1e-6 * fabs(lo->cfg.alpha))
        st = lw_fail(LW_ERR_FORMAT, "%s: adapter_config.lora_alpha is %g; expected %g", path,
                     json_number_value(alpha), (double)lo->cfg.alpha);
    else if (json_is_array(tm) && targets != lo->cfg.targets)
        st = lw_fail(LW_ERR_FORMAT, "%s: adapter_config.target_modules differ from this LoRA's", path);
    json_decref(root);
    return st;
}

lw_status lw_lora_load(lw_lora *lo, const char *path)
{
    if (lo->merged) return lw_fail(LW_ERR_INVALID, "%s: the LoRA is merged; unmerge before loading", path);
    lw_status st = check_file_config(lo, path);
    if (st) return st;
    return lw_adapter_params_load(&lo->p, path);
}
