/* Checkpoint save/load (see checkpoint.h), with a small strict reader for
 * F32 safetensors files: every offset, length and shape of the untrusted
 * header is checked before use. */
#include "checkpoint.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"
#include "finite.h"
#include "jsonerr.h"
#include "safetensors.h"
#include "safetensors_write.h"

enum { MAX_HEADER = 100 << 20, PATH_CAP = 4096 };

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    const char *path;
    char *buf;
    size_t size;
    size_t data_start;
    json_t *header;
} st_file;

static void st_close(st_file *f)
{
    json_decref(f->header);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

static lw_status st_open(const char *path, st_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    lw_status st = lw_read_file(path, &f->buf, &f->size);
    if (st) return st;
    /* st_close clears f, so every message below reads the size first. */
    size_t size = f->size;
    if (size < 8) {
        st_close(f);
        return lw_fail(LW_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file (expected an 8-byte "
                       "header length first; truncated?)", path, size);
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)f->buf[i];
    if (n > MAX_HEADER || n > size - 8) {
        st_close(f);
        return lw_fail(LW_ERR_FORMAT, "%s: header length %" PRIu64 " does not fit in the file of %zu bytes "
                       "(truncated or not safetensors)", path, n, size);
    }
    json_error_t err;
    f->header = json_loadb(f->buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!f->header || !json_is_object(f->header)) {
        st_close(f);
        return lw_fail(LW_ERR_FORMAT, "%s: the header is not a JSON object (%s)", path,
                       f->header ? "another JSON value" : lw_json_error(&err));
    }
    f->data_start = 8 + (size_t)n;
    /* The whole header once, so a bad entry is refused even if unused. */
    st = lw_safetensors_check_offsets(path, f->header, size - f->data_start);
    if (st) st_close(f);
    return st;
}

/* Validates tensor `name` and returns a pointer to its (unaligned) bytes. */
static lw_status st_tensor(const st_file *f, const char *name, const char **bytes, int64_t shape[4], int *ndim)
{
    json_t *e = json_object_get(f->header, name);
    if (!e || !json_is_object(e)) return lw_fail(LW_ERR_FORMAT, "%s: no tensor \"%s\"", f->path, name);
    const char *dtype = json_string_value(json_object_get(e, "dtype"));
    if (!dtype || strcmp(dtype, "F32") != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected F32", f->path, name,
                       dtype ? dtype : "(missing)");
    json_t *sh = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
    if (!json_is_array(sh) || json_array_size(sh) > 4 || !json_is_array(off) || json_array_size(off) != 2)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" needs a shape of at most 4 dims and 2 data_offsets",
                       f->path, name);
    uint64_t count = 1;
    *ndim = (int)json_array_size(sh);
    for (int d = 0; d < *ndim; d++) {
        json_t *v = json_array_get(sh, (size_t)d);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x > (1LL << 40) || (x > 0 && count > (UINT64_C(1) << 40) / (uint64_t)x))
            return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" has a bad shape", f->path, name);
        shape[d] = x;
        count *= (uint64_t)x;
    }
    json_t *a = json_array_get(off, 0), *b = json_array_get(off, 1);
    json_int_t begin = json_is_integer(a) ? json_integer_value(a) : -1;
    json_int_t end = json_is_integer(b) ? json_integer_value(b) : -1;
    uint64_t data_size = f->size - f->data_start;
    if (begin < 0 || end < begin || (uint64_t)end > data_size)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" data_offsets [%lld, %lld] outside the %" PRIu64
                       " data bytes (truncated?)", f->path, name, (long long)begin, (long long)end, data_size);
    if ((uint64_t)(end - begin) != count * 4)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" has %lld bytes, its shape needs %" PRIu64, f->path, name,
                       (long long)(end - begin), count * 4);
    *bytes = f->buf + f->data_start + begin;
    return LW_OK;
}

static const char *st_meta(const st_file *f, const char *key)
{
    return json_string_value(json_object_get(json_object_get(f->header, "__metadata__"), key));
}

lw_status lw_safetensors_read_f32(const char *path, const char *name, float **data, int64_t shape[4], int *ndim)
{
    *data = NULL;
    st_file f;
    lw_status st = st_open(path, &f);
    if (st) return st;
    const char *bytes;
    st = st_tensor(&f, name, &bytes, shape, ndim);
    if (!st) {
        size_t count = 1;
        for (int d = 0; d < *ndim; d++) count *= (size_t)shape[d];
        *data = malloc(count ? count * sizeof(float) : 1);
        if (!*data) st = lw_fail(LW_ERR_NOMEM, "%s: cannot allocate tensor \"%s\"", path, name);
        else memcpy(*data, bytes, count * sizeof(float));
    }
    st_close(&f);
    return st;
}

/* Copies tensor `name` into dst after checking it has exactly t's shape. */
static lw_status read_into(const st_file *f, const char *name, const lw_bridge_tensor *t, float *dst)
{
    const char *bytes;
    int64_t shape[4];
    int ndim;
    lw_status st = st_tensor(f, name, &bytes, shape, &ndim);
    if (st) return st;
    int same = ndim == t->ndim;
    for (int d = 0; same && d < ndim; d++) same = shape[d] == t->shape[d];
    if (!same)
        return lw_fail(LW_ERR_FORMAT, "%s: tensor \"%s\" has shape [%lld%s%lld], expected [%lld%s%lld] "
                       "(a checkpoint of another bridge config?)", f->path, name, (long long)shape[0],
                       ndim > 1 ? ", " : "", ndim > 1 ? (long long)shape[1] : 0LL, (long long)t->shape[0],
                       t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL);
    st = lw_check_finite(f->path, name, bytes, t->count);
    if (!st) memcpy(dst, bytes, t->count * sizeof(float));
    return st;
}

static lw_status check_tensor_count(const st_file *f, int expected)
{
    size_t n = json_object_size(f->header) - (json_object_get(f->header, "__metadata__") ? 1 : 0);
    if (n != (size_t)expected)
        return lw_fail(LW_ERR_FORMAT, "%s: holds %zu tensors, this bridge has %d (a checkpoint of another "
                       "bridge config?)", f->path, n, expected);
    return LW_OK;
}

static lw_status load_bridge_file(const st_file *f, lw_bridge *b)
{
    const char *kind = st_meta(f, "kind");
    if (kind && strcmp(kind, lw_bridge_kind_name(b->cfg.kind)) != 0)
        return lw_fail(LW_ERR_FORMAT, "%s: a %s bridge, expected %s", f->path, kind,
                       lw_bridge_kind_name(b->cfg.kind));
    lw_status st = check_tensor_count(f, b->n_tensors);
    if (st) return st;
    float *staged = malloc(b->n_params * sizeof(float));
    if (!staged) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", f->path);
    for (int i = 0; i < b->n_tensors && !st; i++)
        st = read_into(f, b->tensors[i].name, &b->tensors[i], staged + b->tensors[i].offset);
    const char *layers = st_meta(f, "sender_layers");
    if (!st && layers && strlen(layers) >= sizeof b->sender_layers)
        st = lw_fail(LW_ERR_FORMAT, "%s: __metadata__.sender_layers is too long", f->path);
    if (!st) {
        memcpy(b->params, staged, b->n_params * sizeof(float));
        snprintf(b->sender_layers, sizeof b->sender_layers, "%s", layers ? layers : "");
    }
    free(staged);
    return st;
}

lw_status lw_checkpoint_load_bridge(const char *path, lw_bridge *b)
{
    st_file f;
    lw_status st = st_open(path, &f);
    if (st) return st;
    st = load_bridge_file(&f, b);
    st_close(&f);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

static void join(char *out, const char *dir, const char *file) { snprintf(out, PATH_CAP, "%s/%s", dir, file); }

static lw_status save_bridge(const char *path, const lw_bridge *b, long step)
{
    const lw_bridge_config *c = &b->cfg;
    char v[9][32];
    snprintf(v[0], 32, "%d", c->soft_tokens);
    snprintf(v[1], 32, "%d", c->width);
    snprintf(v[2], 32, "%d", c->depth);
    snprintf(v[3], 32, "%d", c->heads);
    snprintf(v[4], 32, "%d", c->ffn_mult);
    snprintf(v[5], 32, "%d", b->sender_hidden);
    snprintf(v[6], 32, "%d", b->receiver_hidden);
    snprintf(v[7], 32, "%ld", step);
    snprintf(v[8], 32, "%.9g", b->embed_rms);
    lw_st_meta meta[] = {
        {"format", "lwc-bridge-1"}, {"kind", lw_bridge_kind_name(c->kind)},
        {"soft_tokens", v[0]}, {"width", v[1]}, {"depth", v[2]}, {"heads", v[3]}, {"ffn_mult", v[4]},
        {"sender_hidden", v[5]}, {"receiver_hidden", v[6]}, {"step", v[7]}, {"embed_rms", v[8]},
        {"calibration", c->calibration == LW_CALIB_RMS ? "rms" : "none"},
        {"sender_layers", b->sender_layers},   /* last: left out for a one-layer bridge */
    };
    int n_meta = (int)(sizeof meta / sizeof meta[0]) - (b->sender_layers[0] ? 0 : 1);
    lw_st_tensor *t = calloc((size_t)b->n_tensors, sizeof *t);
    if (!t) return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *bt = &b->tensors[i];
        t[i] = (lw_st_tensor){bt->name, b->params + bt->offset, bt->ndim, {bt->shape[0], bt->shape[1], 0, 0}};
    }
    lw_status st = lw_safetensors_write(path, t, b->n_tensors, meta, n_meta);
    free(t);
    return st;
}

static lw_status save_train_state(const char *path, const lw_bridge *b, const lw_adamw *opt, const lw_rng *rng,
                                  long step)
{
    if (opt->n != b->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu values, the bridge %zu", path, opt->n, b->n_params);
    char v[5][80];
    snprintf(v[0], 80, "%ld", step);
    snprintf(v[1], 80, "%ld", opt->step);
    snprintf(v[2], 80, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, rng->s[0], rng->s[1],
             rng->s[2], rng->s[3]);
    snprintf(v[3], 80, "%.9g %.9g", opt->cfg.beta1, opt->cfg.beta2);
    snprintf(v[4], 80, "%.9g", opt->cfg.eps);
    lw_st_meta meta[] = {{"format", "lwc-train-state-1"}, {"step", v[0]}, {"adam_step", v[1]}, {"rng", v[2]},
                         {"betas", v[3]}, {"eps", v[4]}};
    size_t n = (size_t)b->n_tensors * 2;
    lw_st_tensor *t = calloc(n, sizeof *t);
    char (*names)[LW_BRIDGE_NAME_MAX + 8] = calloc(n, sizeof *names);
    lw_status st = LW_OK;
    if (!t || !names) {
        st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < b->n_tensors; i++) {
        const lw_bridge_tensor *bt = &b->tensors[i];
        for (int k = 0; k < 2; k++) {
            size_t j = (size_t)i * 2 + (size_t)k;
            snprintf(names[j], sizeof names[j], "%s.%s", k ? "adam_v" : "adam_m", bt->name);
            t[j] = (lw_st_tensor){names[j], (k ? opt->v : opt->m) + bt->offset, bt->ndim,
                                  {bt->shape[0], bt->shape[1], 0, 0}};
        }
    }
    st = lw_safetensors_write(path, t, (int)n, meta, (int)(sizeof meta / sizeof meta[0]));
done:
    free(t);
    free(names);
    return st;
}

lw_status lw_checkpoint_save(const char *dir, const lw_bridge *b, const lw_adamw *opt, const lw_rng *rng,
                             long step)
{
    lw_status st = lw_mkdir_p(dir);
    if (st) return st;
    char path[PATH_CAP];
    join(path, dir, "train_state.safetensors");
    st = save_train_state(path, b, opt, rng, step);
    if (st) return st;
    join(path, dir, "bridge.safetensors");
    return save_bridge(path, b, step);
}

/* ---- loading a whole checkpoint ----------------------------------------- */

static lw_status parse_long(const st_file *f, const char *key, long *out)
{
    const char *s = st_meta(f, key);
    char *end;
    if (!s) return lw_fail(LW_ERR_FORMAT, "%s: __metadata__ lacks \"%s\"", f->path, key);
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0) return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.%s is \"%s\", expected a step",
                                                  f->path, key, s);
    *out = v;
    return LW_OK;
}

static lw_status load_train_state(const st_file *f, const lw_bridge *b, lw_adamw *opt, lw_rng *rng, long *step,
                                  long *adam_step)
{
    lw_status st = parse_long(f, "step", step);
    if (!st) st = parse_long(f, "adam_step", adam_step);
    if (st) return st;
    const char *r = st_meta(f, "rng");
    uint64_t s[4];
    int used = 0;
    if (!r || sscanf(r, "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64 "%n", &s[0], &s[1], &s[2], &s[3], &used) != 4 ||
        r[used] != '\0' || (s[0] | s[1] | s[2] | s[3]) == 0)
        return lw_fail(LW_ERR_FORMAT, "%s: __metadata__.rng is %s, expected four non-zero hex words", f->path,
                       r ? r : "missing");
    st = check_tensor_count(f, 2 * b->n_tensors);
    for (int i = 0; i < b->n_tensors && !st; i++) {
        const lw_bridge_tensor *t = &b->tensors[i];
        char name[LW_BRIDGE_NAME_MAX + 8];
        snprintf(name, sizeof name, "adam_m.%s", t->name);
        st = read_into(f, name, t, opt->m + t->offset);
        snprintf(name, sizeof name, "adam_v.%s", t->name);
        if (!st) st = read_into(f, name, t, opt->v + t->offset);
    }
    if (!st) memcpy(rng->s, s, sizeof s);
    return st;
}

lw_status lw_checkpoint_load(const char *dir, lw_bridge *b, lw_adamw *opt, lw_rng *rng, long *step)
{
    if (opt->n != b->n_params)
        return lw_fail(LW_ERR_INVALID, "%s: optimiser holds %zu values, the bridge %zu", dir, opt->n, b->n_params);
    char bridge_path[PATH_CAP], state_path[PATH_CAP];
    join(bridge_path, dir, "bridge.safetensors");
    join(state_path, dir, "train_state.safetensors");
    st_file bf, sf;
    lw_status st = st_open(bridge_path, &bf);
    if (st) return st;
    st = st_open(state_path, &sf);
    if (st) {
        st_close(&bf);
        return st;
    }
    /* Stage into copies so a failure leaves the caller's state untouched. */
    lw_adamw staged = *opt;
    lw_rng staged_rng = *rng;
    long bridge_step = 0, state_step = 0, adam_step = 0;
    staged.m = malloc(opt->n * sizeof(float));
    staged.v = malloc(opt->n * sizeof(float));
    if (!staged.m || !staged.v) st = lw_fail(LW_ERR_NOMEM, "%s: out of memory", dir);
    if (!st) st = parse_long(&bf, "step", &bridge_step);
    if (!st) st = load_train_state(&sf, b, &staged, &staged_rng, &state_step, &adam_step);
    if (!st && bridge_step != state_step)
        st = lw_fail(LW_ERR_FORMAT, "%s: bridge.safetensors is at step %ld, train_state.safetensors at %ld "
                     "(an interrupted save?)", dir, bridge_step, state_step);
    if (!st) st = load_bridge_file(&bf, b);
    if (!st) {
        memcpy(opt->m, staged.m, opt->n * sizeof(float));
        memcpy(opt->v, staged.v, opt->n * sizeof(float));
        opt->step = adam_step;
        *rng = staged_rng;
        *step = state_step;
    }
    free(staged.m);
    free(staged.v);
    st_close(&bf);
    st_close(&sf);
    return st;
}

void lw_bridge_checkpoint_file(const char *ck, char *out, size_t cap, bool *is_dir)
{
    size_t n = strlen(ck);
    *is_dir = !(n > 12 && !strcmp(ck + n - 12, ".safetensors"));
    if (*is_dir) lw_pathf(out, cap, "%s/bridge.safetensors", ck);
    else lw_pathf(out, cap, "%s", ck);
}
