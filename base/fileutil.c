#include "fileutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lw_status lw_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lw_fail(LW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t want = cap ? cap * 2 : 65536;
            char *grown = realloc(buf, want + 1);
            if (!grown) { free(buf); fclose(f); return lw_fail(LW_ERR_NOMEM, "%s: out of memory", path); }
            buf = grown;
            cap = want;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (err) {
        free(buf);
        /* fopen succeeds on a directory on Linux; only the read says EISDIR. */
        if (err == EISDIR) return lw_fail(LW_ERR_IO, "%s: is a directory, expected a file", path);
        return lw_fail(LW_ERR_IO, "%s: read failed: %s", path, strerror(err));
    }
    buf[n] = 0;
    *data = buf;
    if (len) *len = n;
    return LW_OK;
}

static bool same_content(const char *path, const void *data, size_t len)
{
    char *old;
    size_t old_len;
    if (!lw_file_exists(path) || lw_read_file(path, &old, &old_len) != LW_OK) return false;
    bool same = old_len == len && memcmp(old, data, len) == 0;
    free(old);
    return same;
}

lw_status lw_write_file_atomic(const char *path, const void *data, size_t len, bool *changed)
{
    if (same_content(path, data, len)) {
        if (changed) *changed = false;
        return LW_OK;
    }
    /* a temporary name of its own (mkstemp: O_EXCL), so concurrent writers of
     * one path never share it; the last rename wins whole */
    char tmp[4200];
    if (!lw_pathf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path)) return lw_fail(LW_ERR_INVALID, "%s: path too long", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 && fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return lw_fail(LW_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lw_fail(LW_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    if (changed) *changed = true;
    return LW_OK;
}

lw_status lw_mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return lw_fail(LW_ERR_INVALID, "%s: path too long", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return lw_fail(LW_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (c == 0) break;
        }
    }
    return LW_OK;
}

bool lw_pathf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

bool lw_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

uint64_t lw_fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void lw_sb_append(lw_strbuf *sb, const char *s, size_t n)
{
    if (sb->failed) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 1024;
        while (cap < sb->len + n + 1) cap *= 2;
        char *grown = realloc(sb->data, cap);
        if (!grown) { sb->failed = true; return; }
        sb->data = grown;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

void lw_sb_printf(lw_strbuf *sb, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { sb->failed = true; return; }
    if ((size_t)n < sizeof small) { lw_sb_append(sb, small, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { sb->failed = true; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    lw_sb_append(sb, big, (size_t)n);
    free(big);
}

void lw_sb_free(lw_strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

lw_status lw_file_map_as(const char *path, const char *expected, const void **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lw_fail(LW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lw_fail(LW_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    /* errno says nothing here (fstat succeeded), so name the kind of file. */
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lw_fail(LW_ERR_IO, "%s: is %s, expected %s", path,
                       S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file (a device, pipe or socket)",
                       expected);
    }
    if (sb.st_size == 0) {
        close(fd);
        return LW_OK;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return lw_fail(LW_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    *data = p;
    *size = (size_t)sb.st_size;
    return LW_OK;
}

lw_status lw_file_map(const char *path, const void **data, size_t *size)
{
    return lw_file_map_as(path, "a regular file", data, size);
}

void lw_file_unmap(const void *data, size_t size)
{
    if (data) munmap((void *)data, size);
}
