/* The safetensors writer. The header is built with jansson (it escapes
 * names and metadata) keeping insertion order, so data_offsets grow with
 * the file as the format's reference implementation requires. */
#include "safetensors_write.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t tensor_count(const lw_st_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0 || (t->shape[d] > 0 && n > INT64_MAX / 4 / t->shape[d])) return -1;
        n *= t->shape[d];
    }
    return n;
}

static lw_status build_header(const char *path, const lw_st_tensor *tensors, int n_tensors,
                              const lw_st_meta *meta, int n_meta, char **out)
{
    json_t *root = json_object();
    if (!root) return lw_fail(LW_ERR_NOMEM, "%s: out of memory building the header", path);
    if (n_meta > 0) {
        json_t *m = json_object();
        json_object_set_new(root, "__metadata__", m);
        for (int i = 0; i < n_meta; i++)
            json_object_set_new(m, meta[i].key, json_string(meta[i].value));
    }
    int64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const lw_st_tensor *t = &tensors[i];
        int64_t count = tensor_count(t);
        if (t->ndim < 0 || t->ndim > LW_ST_MAX_DIMS || count < 0 || !t->name || !*t->name ||
            strcmp(t->name, "__metadata__") == 0 || json_object_get(root, t->name)) {
            json_decref(root);
            return lw_fail(LW_ERR_INVALID, "%s: tensor %d (%s) has a bad or duplicate name or shape", path, i,
                           t->name ? t->name : "(null)");
        }
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *entry = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                  (json_int_t)offset, (json_int_t)(offset + count * 4));
        if (!entry) {
            json_decref(root);
            return lw_fail(LW_ERR_NOMEM, "%s: out of memory building the header", path);
        }
        json_object_set_new(root, t->name, entry);
        offset += count * 4;
    }
    *out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(root);
    if (!*out) return lw_fail(LW_ERR_NOMEM, "%s: out of memory serialising the header", path);
    return LW_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The rename is durable only once the directory entry is on disk too. */
static void fsync_parent(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

lw_status lw_safetensors_write(const char *path, const lw_st_tensor *tensors, int n_tensors,
                               const lw_st_meta *meta, int n_meta)
{
    char *json = NULL;
    lw_status st = build_header(path, tensors, n_tensors, meta, n_meta, &json);
    if (st) return st;
    size_t len = strlen(json);
    size_t padded = (len + 7) / 8 * 8;
    char *header = malloc(padded);
    if (!header) {
        free(json);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(header, json, len);
    memset(header + len, ' ', padded - len);
    free(json);

    /* a name of its own (mkstemp: O_EXCL), so two writers of one path never
     * share a temporary file; the last rename wins whole */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    if (!tmp) {
        free(header);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);

    int fd = mkstemp(tmp);
    if (fd < 0 || fchmod(fd, 0644) != 0) {
        st = lw_fail(LW_ERR_IO, "cannot create a temporary file beside %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        goto done;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int bad = write_all(fd, len8, 8) || write_all(fd, header, padded);
    for (int i = 0; i < n_tensors && !bad; i++)
        bad = write_all(fd, tensors[i].data, (size_t)tensor_count(&tensors[i]) * 4);
    if (bad || fsync(fd) != 0) {
        st = lw_fail(LW_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        st = lw_fail(LW_ERR_IO, "cannot move %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    fsync_parent(path);
done:
    free(tmp);
    free(header);
    return st;
}
