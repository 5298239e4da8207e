/* The adapters' parameter table as a safetensors file (adapter_file.h). */
#include "adapter_file.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dequant.h"
#include "finite.h"
#include "safetensors.h"
#include "safetensors_write.h"

/* Writes tensors of base (params or a moment buffer) under prefix + name. */
static lw_status save_buffers(const lw_adapter_params *p, const char *path, const float *const *bufs,
                              const char *const *prefixes, int n_bufs, const lw_st_meta *meta, int n_meta)
{
    int n = p->n_tensors * n_bufs;
    lw_st_tensor *ts = calloc(n ? (size_t)n : 1, sizeof *ts);
    char (*names)[LW_ADAPTER_NAME_MAX + 16] = calloc(n ? (size_t)n : 1, sizeof *names);
    if (!ts || !names) {
        free(ts);
        free(names);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int b = 0; b < n_bufs; b++)
        for (int i = 0; i < p->n_tensors; i++) {
            const lw_adapter_tensor *t = &p->tensors[i];
            int k = b * p->n_tensors + i;
            snprintf(names[k], sizeof names[k], "%s%s", prefixes[b], t->name);
            ts[k] = (lw_st_tensor){.name = names[k], .data = bufs[b] + t->offset, .ndim = t->ndim,
                                   .shape = {t->shape[0], t->shape[1]}};
        }
    lw_status st = lw_safetensors_write(path, ts, n, meta, n_meta);
    free(ts);
    free(names);
    return st;
}

lw_status lw_adapter_params_save(const lw_adapter_params *p, const char *path, const lw_adapter_meta *meta,
                                 int n_meta)
{
    lw_st_meta *m = calloc(n_meta > 0 ? (size_t)n_meta : 1, sizeof *m);
    if (!m) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n_meta; i++) m[i] = (lw_st_meta){meta[i].key, meta[i].value};
    const float *bufs[] = {p->params};
    const char *prefixes[] = {""};
    lw_status st = save_buffers(p, path, bufs, prefixes, 1, m, n_meta);
    free(m);
    return st;
}

/* The tensor prefix+t->name of s, F32 with t's exact shape, or an error. */
static lw_status find_tensor(const lw_safetensors *s, const char *path, const char *prefix,
                             const lw_adapter_tensor *t, const float **data)
{
    char name[LW_ADAPTER_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    const lw_raw_tensor *r = lw_safetensors_find(s, name);
    if (!r) return lw_fail(LW_ERR_FORMAT, "%s: tensor %s is missing", path, name);
    bool same = r->ndim == t->ndim && r->shape[0] == t->shape[0] && (t->ndim == 1 || r->shape[1] == t->shape[1]);
    if (r->type != LW_GGML_F32 || !same || r->nbytes != t->count * sizeof(float))
        return lw_fail(LW_ERR_FORMAT, "%s: tensor %s: expected F32 [%lld%s%lld]", path, name,
                       (long long)t->shape[0], t->ndim == 2 ? ", " : "", t->ndim == 2 ? (long long)t->shape[1] : 0LL);
    *data = r->data;
    return LW_OK;
}

/* Copies the tensors named prefixes[b] + name into bufs[b], all or nothing. */
static lw_status load_buffers(const lw_adapter_params *p, const char *path, float *const *bufs,
                              const char *const *prefixes, int n_bufs)
{
    lw_safetensors *s = NULL;
    lw_status st = lw_safetensors_open(path, &s);
    if (st) return st;
    size_t expected = (size_t)p->n_tensors * (size_t)n_bufs;
    if (lw_safetensors_n_tensors(s) != expected)
        st = lw_fail(LW_ERR_FORMAT, "%s: %zu tensors; expected %zu (%d named tensors)", path,
                     lw_safetensors_n_tensors(s), expected, p->n_tensors);
    const float **src = calloc(expected ? expected : 1, sizeof *src);
    if (!st && !src) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; !st && i < p->n_tensors; i++)
            st = find_tensor(s, path, prefixes[b], &p->tensors[i], &src[(size_t)b * p->n_tensors + i]);
    /* Adapter files are trained checkpoints (LoRA, deep prefix, prompt
     * tuning and their moments): refuse NaN/inf before anything is copied. */
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; !st && i < p->n_tensors; i++) {
            char name[LW_ADAPTER_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", prefixes[b], p->tensors[i].name);
            st = lw_check_finite(path, name, src[(size_t)b * p->n_tensors + i], p->tensors[i].count);
        }
    for (int b = 0; !st && b < n_bufs; b++)
        for (int i = 0; i < p->n_tensors; i++) {
            const lw_adapter_tensor *t = &p->tensors[i];
            memcpy(bufs[b] + t->offset, src[(size_t)b * p->n_tensors + i], t->count * sizeof(float));
        }
    free(src);
    lw_safetensors_close(s);
    return st;
}

lw_status lw_adapter_params_load(lw_adapter_params *p, const char *path)
{
    float *bufs[] = {p->params};
    const char *prefixes[] = {""};
    return load_buffers(p, path, bufs, prefixes, 1);
}

lw_status lw_adapter_params_save_adamw(const lw_adapter_params *p, const lw_adamw *opt, const char *path)
{
    if (opt->n != p->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu moments for %zu parameters", path, opt->n,
                       p->n_params);
    char step[32];
    snprintf(step, sizeof step, "%ld", opt->step);
    lw_st_meta meta[] = {{"adam_step", step}};
    const float *bufs[] = {opt->m, opt->v};
    const char *prefixes[] = {"adam_m.", "adam_v."};
    return save_buffers(p, path, bufs, prefixes, 2, meta, 1);
}

lw_status lw_adapter_params_load_adamw(const lw_adapter_params *p, lw_adamw *opt, const char *path)
{
    if (opt->n != p->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu moments for %zu parameters", path, opt->n,
                       p->n_params);
    char *text = NULL;
    lw_status st = lw_adapter_read_meta(path, "adam_step", &text);
    if (st) return st;
    char *end = NULL;
    long step = text ? strtol(text, &end, 10) : -1;
    bool ok = text && end != text && *end == '\0' && step >= 0;
    free(text);
    if (!ok) return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.adam_step: expected a non-negative integer", path);
    /* moments into copies first, so a bad file leaves opt as it was */
    size_t n = p->n_params ? p->n_params : 1;
    float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    if (!m || !v) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    float *bufs[] = {m, v};
    const char *prefixes[] = {"adam_m.", "adam_v."};
    if (!st) st = load_buffers(p, path, bufs, prefixes, 2);
    if (!st) {
        memcpy(opt->m, m, p->n_params * sizeof *m);
        memcpy(opt->v, v, p->n_params * sizeof *v);
        opt->step = step;
    }
    free(m);
    free(v);
    return st;
}

lw_status lw_adapter_read_meta(const char *path, const char *key, char **value)
{
    *value = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open", path);
    unsigned char len8[8];
    uint64_t n = 0;
    lw_status st = LW_OK;
    if (fread(len8, 1, 8, f) != 8) st = lw_fail(LW_ERR_FORMAT, "%s: shorter than a safetensors header", path);
    for (int i = 7; !st && i >= 0; i--) n = n << 8 | len8[i];
    if (!st && (n < 2 || n > (100u << 20))) st = lw_fail(LW_ERR_FORMAT, "%s: header of %llu bytes", path,
                                                        (unsigned long long)n);
    char *buf = st ? NULL : malloc((size_t)n);
    if (!st && !buf) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    if (!st && fread(buf, 1, (size_t)n, f) != n) st = lw_fail(LW_ERR_FORMAT, "%s: header cut short", path);
    fclose(f);
    json_t *root = st ? NULL : json_loadb(buf, (size_t)n, 0, NULL);
    free(buf);
    if (!st && !root) st = lw_fail(LW_ERR_FORMAT, "%s: header is not JSON", path);
    if (!st) {
        json_t *v = json_object_get(json_object_get(root, "__metadata__"), key);
        if (v && !json_is_string(v)) st = lw_fail(LW_ERR_FORMAT, "%s: __metadata__.%s is not a string", path, key);
        else if (v && !(*value = strdup(json_string_value(v)))) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    json_decref(root);
    return st;
}
