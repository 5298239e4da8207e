/* A GGUF v3 (also v2) reader: metadata key/values and tensor infos, read
 * from an mmap'd file or a caller's memory buffer. Every count, length and
 * offset is checked against the buffer size at open, so later lookups never
 * read out of bounds. Strings point into the file and are NOT NUL-ended. */
#ifndef LW_GGUF_H
#define LW_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dequant.h"
#include "status.h"

typedef struct lw_gguf lw_gguf;

/* Metadata value kinds, numbered as in the GGUF spec. */
typedef enum {
    LW_GGUF_U8 = 0, LW_GGUF_I8 = 1, LW_GGUF_U16 = 2, LW_GGUF_I16 = 3,
    LW_GGUF_U32 = 4, LW_GGUF_I32 = 5, LW_GGUF_F32 = 6, LW_GGUF_BOOL = 7,
    LW_GGUF_STRING = 8, LW_GGUF_ARRAY = 9, LW_GGUF_U64 = 10, LW_GGUF_I64 = 11,
    LW_GGUF_F64 = 12, LW_GGUF_KIND_COUNT
} lw_gguf_kind;

enum { LW_GGUF_MAX_DIMS = 4 };

typedef struct {
    const char *name;       /* NUL-ended copy owned by the lw_gguf */
    uint32_t type;          /* lw_ggml_type */
    int ndim;
    int64_t ne[LW_GGUF_MAX_DIMS]; /* GGUF order: ne[0] is the row length (fastest) */
    int64_t n_elements;
    const void *data;       /* points into the file, aligned as the file says */
    size_t nbytes;          /* exact byte size for the type and shape */
} lw_gguf_tensor;

lw_status lw_gguf_open(const char *path, lw_gguf **out);                 /* mmap */
lw_status lw_gguf_parse(const void *data, size_t size, const char *name, lw_gguf **out); /* borrows data */
void lw_gguf_close(lw_gguf *g);

/* The path or name given at open (for messages). */
const char *lw_gguf_name(const lw_gguf *g);
uint32_t lw_gguf_version(const lw_gguf *g);

/* Metadata. Missing key or wrong kind -> LW_ERR_INVALID naming file and key. */
bool lw_gguf_has(const lw_gguf *g, const char *key);
lw_status lw_gguf_get_kind(const lw_gguf *g, const char *key, lw_gguf_kind *kind);
lw_status lw_gguf_get_string(const lw_gguf *g, const char *key, const char **s, size_t *len); /* not NUL-ended */
lw_status lw_gguf_get_int(const lw_gguf *g, const char *key, int64_t *v);    /* any integer kind or bool */
lw_status lw_gguf_get_float(const lw_gguf *g, const char *key, double *v);   /* f32/f64 or integer */
lw_status lw_gguf_get_bool(const lw_gguf *g, const char *key, bool *v);

/* Arrays. Element access is O(1) (string offsets are indexed at open).
 * Nested arrays: get_array_len works, element getters fail with
 * LW_ERR_UNSUPPORTED. u64 values above INT64_MAX fail with LW_ERR_INVALID. */
lw_status lw_gguf_get_array_len(const lw_gguf *g, const char *key, uint64_t *count);
lw_status lw_gguf_get_array_kind(const lw_gguf *g, const char *key, lw_gguf_kind *elem_kind);
lw_status lw_gguf_get_array_string(const lw_gguf *g, const char *key, uint64_t i, const char **s, size_t *len);
lw_status lw_gguf_get_array_int(const lw_gguf *g, const char *key, uint64_t i, int64_t *v);
lw_status lw_gguf_get_array_float(const lw_gguf *g, const char *key, uint64_t i, double *v);

/* Iteration over metadata keys (i < lw_gguf_n_kv); the key is NUL-ended. */
size_t lw_gguf_n_kv(const lw_gguf *g);
const char *lw_gguf_kv_key(const lw_gguf *g, size_t i);

/* Tensors. */
size_t lw_gguf_n_tensors(const lw_gguf *g);
const lw_gguf_tensor *lw_gguf_tensor_at(const lw_gguf *g, size_t i);
const lw_gguf_tensor *lw_gguf_find_tensor(const lw_gguf *g, const char *name); /* NULL if absent */
/* Same, but fails with LW_ERR_INVALID naming the file and the tensor. */
lw_status lw_gguf_get_tensor(const lw_gguf *g, const char *name, const lw_gguf_tensor **t);


#endif
