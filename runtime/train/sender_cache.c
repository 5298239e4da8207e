#include "sender_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"

/* Bump when what the sender reads changes (template use, token cap). */
enum { PROMPT_FORMAT = 2 };
static const char MAGIC[8] = {'L', 'W', 'S', 'C', '0', '0', '0', '1'};
enum { HEADER_BYTES = 24, ENTRY_BYTES = 16 };

static uint64_t hash_stat(uint64_t h, const char *path)
{
    struct stat st;
    int64_t v[2] = {-1, -1};
    if (stat(path, &st) == 0) v[0] = (int64_t)st.st_size, v[1] = (int64_t)st.st_mtime;
    return lw_fnv1a(h, v, sizeof v);
}

static uint64_t cache_key(const lw_model_config *s, int layer, const char *abs_data, uint64_t subset_key)
{
    int v[4] = {PROMPT_FORMAT, layer, (int)s->chat_template, LW_SENDER_MAX_TOKENS};
    uint64_t h = lw_fnv1a(LW_FNV_INIT, v, sizeof v);
    h = hash_stat(h, s->weights_path);
    h = hash_stat(h, s->tokenizer_path);
    uint64_t seed = s->load.seed;   /* random weights' states never pass for the real ones' */
    if (s->load.random_weights) h = lw_fnv1a(lw_fnv1a(h, "random", 6), &seed, sizeof seed);
    /* a narrow sender's states are not the fp32 one's (fp32 keeps older files'
     * keys; bf16 hashes "bf16" as it did) */
    const char *dt = lw_weights_dtype_name(s->load.dtype);
    if (s->load.dtype != LW_WEIGHTS_F32) h = lw_fnv1a(h, dt, strlen(dt));
    h = lw_fnv1a(h, abs_data, strlen(abs_data));
    if (subset_key) h = lw_fnv1a(h, &subset_key, sizeof subset_key);   /* 0 (first n) keeps older files' keys */
    return hash_stat(h, abs_data);
}

/* "<dir>/<stem>.L<layer>.<key>.states", the stem cleaned to [A-Za-z0-9_-]. */
static lw_status cache_path(char *out, size_t cap, const char *dir, const char *data_path, int layer, uint64_t key)
{
    const char *base = strrchr(data_path, '/');
    base = base ? base + 1 : data_path;
    char stem[64];
    size_t n = 0;
    for (; base[n] && base[n] != '.' && n < sizeof stem - 1; n++) {
        char c = base[n];
        stem[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ? c : '_';
    }
    stem[n] = 0;
    if (!lw_pathf(out, cap, "%s/%s.L%d.%016" PRIx64 ".states", dir, stem, layer, key))
        return lw_fail(LW_ERR_INVALID, "sender cache: path too long under %s", dir);
    return LW_OK;
}

static lw_status alloc_tables(lw_sender_cache *c, int n)
{
    c->n = n;
    c->tokens = calloc((size_t)(n > 0 ? n : 1), sizeof *c->tokens);
    c->offset = calloc((size_t)(n > 0 ? n : 1), sizeof *c->offset);
    if (!c->tokens || !c->offset) return lw_fail(LW_ERR_NOMEM, "sender cache: out of memory for %d examples", n);
    return LW_OK;
}

/* Opens path if it holds this key and at least `need` examples; LW_ERR_FORMAT
 * (quietly recorded) when it must be rebuilt. */
static lw_status open_file(const char *path, uint64_t key, int need, int hidden, lw_sender_cache *c)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lw_fail(LW_ERR_FORMAT, "sender cache %s: not there", path);
    c->fd = fd;
    struct stat st;
    unsigned char h[HEADER_BYTES];
    if (fstat(fd, &st) != 0 || pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h || memcmp(h, MAGIC, 8) != 0)
        return lw_fail(LW_ERR_FORMAT, "sender cache %s: no header", path);
    uint64_t file_key;
    uint32_t n, hid;
    memcpy(&file_key, h + 8, 8);
    memcpy(&n, h + 16, 4);
    memcpy(&hid, h + 20, 4);
    if (file_key != key || (int)hid != hidden || n > (1u << 28) || (int)n < need)
        return lw_fail(LW_ERR_FORMAT, "sender cache %s: stale or short (%u examples, need %d)", path, n, need);
    lw_status st2 = alloc_tables(c, need);
    if (st2) return st2;
    uint64_t size = (uint64_t)st.st_size, row_bytes = (uint64_t)hidden * sizeof(float);
    for (int i = 0; i < need; i++) {
        unsigned char e[ENTRY_BYTES];
        if (pread(fd, e, sizeof e, HEADER_BYTES + (off_t)i * ENTRY_BYTES) != (ssize_t)sizeof e)
            return lw_fail(LW_ERR_FORMAT, "sender cache %s: table cut short at entry %d", path, i);
        uint64_t off;
        uint32_t tok;
        memcpy(&off, e, 8);
        memcpy(&tok, e + 8, 4);
        if (tok < 1 || tok > LW_SENDER_MAX_TOKENS || off > size || (size - off) / row_bytes < tok)
            return lw_fail(LW_ERR_FORMAT, "sender cache %s: entry %d (%u rows at %" PRIu64 ") outside the file's "
                           "%" PRIu64 " bytes", path, i, tok, off, size);
        c->offset[i] = off;
        c->tokens[i] = (int)tok;
    }
    return LW_OK;
}

static lw_status write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (fwrite(p, 1, n, f) != n) return lw_fail(LW_ERR_IO, "sender cache: writing %s: %s", path, strerror(errno));
    return LW_OK;
}

static lw_status build_file(const lw_model_config *cfg, int layer, const lw_dataset *d, uint64_t key,
                            const char *path, int quiet, const lw_sender_source *src)
{
    char tmp[4096 + 32];
    lw_pathf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    lw_status st = src->open(src->ctx);
    FILE *f = st ? NULL : fopen(tmp, "wb");
    if (!st && !f) st = lw_fail(LW_ERR_IO, "sender cache: cannot create %s: %s", tmp, strerror(errno));
    uint64_t *off = calloc((size_t)d->n + 1, sizeof *off);
    uint32_t *tok = calloc((size_t)d->n + 1, sizeof *tok);
    if (!st && (!off || !tok)) st = lw_fail(LW_ERR_NOMEM, "sender cache: out of memory");
    uint32_t n32 = (uint32_t)d->n, hid = (uint32_t)cfg->hidden;
    unsigned char zero[ENTRY_BYTES] = {0};
    if (!st) st = write_all(f, MAGIC, 8, tmp);
    if (!st) st = write_all(f, &key, 8, tmp);
    if (!st) st = write_all(f, &n32, 4, tmp);
    if (!st) st = write_all(f, &hid, 4, tmp);
    for (int i = 0; !st && i < d->n; i++) st = write_all(f, zero, ENTRY_BYTES, tmp);
    uint64_t pos = HEADER_BYTES + (uint64_t)d->n * ENTRY_BYTES;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; !st && i < d->n; i++) {
        int T = 0;
        const float *rows = NULL;
        st = src->states(src->ctx, d->examples[i].text, &rows, &T);
        if (st) {
            st = lw_fail_wrap(st, "sender cache: example %d", i);
            break;
        }
        off[i] = pos;
        tok[i] = (uint32_t)T;
        size_t bytes = (size_t)T * cfg->hidden * sizeof(float);
        st = write_all(f, rows, bytes, tmp);
        pos += bytes;
        if (!quiet && ((i + 1) % 50 == 0 || i + 1 == d->n)) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            fprintf(stderr, "\rsender states: %d/%d examples, %.1f s", i + 1, d->n, el);
            if (i + 1 == d->n) fputc('\n', stderr);
        }
    }
    for (int i = 0; !st && i < d->n; i++) {
        unsigned char e[ENTRY_BYTES] = {0};
        memcpy(e, &off[i], 8);
        memcpy(e + 8, &tok[i], 4);
        if (fseeko(f, HEADER_BYTES + (off_t)i * ENTRY_BYTES, SEEK_SET) != 0)
            st = lw_fail(LW_ERR_IO, "sender cache: seeking in %s", tmp);
        else st = write_all(f, e, ENTRY_BYTES, tmp);
    }
    if (!st && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        st = lw_fail(LW_ERR_IO, "sender cache: flushing %s: %s", tmp, strerror(errno));
    if (f && fclose(f) != 0 && !st) st = lw_fail(LW_ERR_IO, "sender cache: closing %s", tmp);
    if (!st && rename(tmp, path) != 0)
        st = lw_fail(LW_ERR_IO, "sender cache: renaming %s to %s: %s", tmp, path, strerror(errno));
    if (st && f) unlink(tmp);
    free(off);
    free(tok);
    src->close(src->ctx);
    return st;
}

lw_status lw_sender_cache_get_from(const lw_model_config *sender, int layer, const char *data_path,
                                   const lw_dataset *d, const char *cache_dir, int quiet,
                                   const lw_sender_source *src, lw_sender_cache *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (layer < 0 || layer > sender->n_layers)
        return lw_fail(LW_ERR_INVALID, "sender cache: layer %d outside 0..%d of %s", layer, sender->n_layers,
                       sender->name);
    if (d->n < 1) return lw_fail(LW_ERR_INVALID, "sender cache: %s has no examples", data_path);
    char abs_data[PATH_MAX];
    if (!realpath(data_path, abs_data)) return lw_fail(LW_ERR_IO, "sender cache: cannot resolve %s", data_path);
    uint64_t key = cache_key(sender, layer, abs_data, d->subset_key);
    lw_status st = lw_mkdir_p(cache_dir);
    if (!st) st = cache_path(out->path, sizeof out->path, cache_dir, data_path, layer, key);
    if (st) return st;
    if (open_file(out->path, key, d->n, sender->hidden, out) == LW_OK) {
        out->hidden = sender->hidden;
        return LW_OK;
    }
    char path[sizeof out->path];
    memcpy(path, out->path, sizeof path);
    lw_sender_cache_close(out);
    if (!quiet) fprintf(stderr, "sender states: building %s\n", path);
    st = build_file(sender, layer, d, key, path, quiet, src);
    if (st) return st;
    memcpy(out->path, path, sizeof path);
    st = open_file(path, key, d->n, sender->hidden, out);
    if (st) {
        lw_sender_cache_close(out);
        return lw_fail_wrap(st, "sender cache: just written");
    }
    out->hidden = sender->hidden;
    return LW_OK;
}

lw_status lw_sender_cache_init_memory(lw_sender_cache *c, int n, int hidden, const int *tokens)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->hidden = hidden;
    if (n < 1 || hidden < 1) return lw_fail(LW_ERR_INVALID, "sender cache: %d examples of width %d", n, hidden);
    lw_status st = alloc_tables(c, n);
    size_t total = 0;
    for (int i = 0; !st && i < n; i++) {
        if (tokens[i] < 1 || tokens[i] > LW_SENDER_MAX_TOKENS)
            st = lw_fail(LW_ERR_INVALID, "sender cache: example %d has %d rows", i, tokens[i]);
        else {
            c->tokens[i] = tokens[i];
            c->offset[i] = total;
            total += (size_t)tokens[i] * hidden;
        }
    }
    if (!st && !(c->mem = calloc(total, sizeof(float)))) st = lw_fail(LW_ERR_NOMEM, "sender cache: out of memory");
    if (st) lw_sender_cache_close(c);
    return st;
}

lw_status lw_sender_cache_read(const lw_sender_cache *c, int i, float **buf, size_t *cap, int *T)
{
    if (i < 0 || i >= c->n) return lw_fail(LW_ERR_INVALID, "sender cache: example %d of %d", i, c->n);
    size_t count = (size_t)c->tokens[i] * c->hidden;
    if (count > *cap) {
        float *p = realloc(*buf, count * sizeof(float));
        if (!p) return lw_fail(LW_ERR_NOMEM, "sender cache: out of memory");
        *buf = p;
        *cap = count;
    }
    *T = c->tokens[i];
    if (c->mem) {
        memcpy(*buf, c->mem + c->offset[i], count * sizeof(float));
        return LW_OK;
    }
    ssize_t want = (ssize_t)(count * sizeof(float));
    if (pread(c->fd, *buf, (size_t)want, (off_t)c->offset[i]) != want)
        return lw_fail(LW_ERR_IO, "sender cache %s: reading example %d", c->path, i);
    return LW_OK;
}

void lw_sender_cache_close(lw_sender_cache *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->tokens);
    free(c->offset);
    free(c->mem);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}
