/* Builds small GGUF images in memory for the reader's tests (check_gguf,
 * check_weights). Little-endian, as the format is. */
#ifndef LW_TEST_GGUF_BUILDER_H
#define LW_TEST_GGUF_BUILDER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gb_buf;

static inline void gb_put(gb_buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static inline void gb_u8(gb_buf *b, uint8_t v) { gb_put(b, &v, 1); }
static inline void gb_u32(gb_buf *b, uint32_t v) { gb_put(b, &v, 4); }
static inline void gb_u64(gb_buf *b, uint64_t v) { gb_put(b, &v, 8); }
static inline void gb_f32(gb_buf *b, float v) { gb_put(b, &v, 4); }
static inline void gb_str(gb_buf *b, const char *s)
{
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static inline void gb_header(gb_buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_put(b, "GGUF", 4);
    gb_u32(b, version);
    gb_u64(b, n_tensors);
    gb_u64(b, n_kv);
}
static inline void gb_key(gb_buf *b, const char *key, uint32_t kind)
{
    gb_str(b, key);
    gb_u32(b, kind);
}
/* A 2-D tensor info: ne0 is the row length (GGUF order). */
static inline void gb_tensor2(gb_buf *b, const char *name, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off)
{
    gb_str(b, name);
    gb_u32(b, 2);
    gb_u64(b, ne0);
    gb_u64(b, ne1);
    gb_u32(b, type);
    gb_u64(b, off);
}
static inline void gb_align(gb_buf *b, size_t a)
{
    while (b->n % a) gb_u8(b, 0);
}

#endif
