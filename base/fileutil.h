/* Small file helpers for code generation: whole-file reads, atomic writes
 * (temporary name, then rename: never a half file), mkdir -p, hashing. */
#ifndef LW_FILEUTIL_H
#define LW_FILEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

lw_status lw_read_file(const char *path, char **data, size_t *len);
/* Writes data to path atomically; if *changed is non-NULL it is set to
 * whether the content differs from what was there (unchanged files are not
 * rewritten, so their mtime is kept). */
lw_status lw_write_file_atomic(const char *path, const void *data, size_t len, bool *changed);
lw_status lw_mkdir_p(const char *path);
bool lw_file_exists(const char *path);

/* snprintf for paths: returns false (and leaves a truncated string) if the
 * result did not fit; callers that bounded their inputs may ignore it. */
bool lw_pathf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Maps a whole file read-only (shared by the weight loaders). An empty file
 * is mapped as size 0 with *data = NULL. lw_file_map_as names what the
 * caller expected ("a GGUF file") when path is not a regular file. */
lw_status lw_file_map(const char *path, const void **data, size_t *size);
lw_status lw_file_map_as(const char *path, const char *expected, const void **data, size_t *size);
void lw_file_unmap(const void *data, size_t size);

/* FNV-1a 64, chainable: pass the previous hash (or LW_FNV_INIT). */
#define LW_FNV_INIT 0xcbf29ce484222325ULL
uint64_t lw_fnv1a(uint64_t h, const void *data, size_t len);

/* A growable string buffer. */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;   /* an allocation failed; data holds what fit */
} lw_strbuf;
void lw_sb_append(lw_strbuf *sb, const char *s, size_t n);
void lw_sb_printf(lw_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lw_sb_free(lw_strbuf *sb);

#endif
