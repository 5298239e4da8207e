/* runtime/ops/op_list.h as data, for the two harnesses that walk it
 * (tests/check_backend_ops.c on the CPU, tests/gpu/check_backend_ops_gpu.c
 * on CUDA): OPS[op id] the entries, CASES[] every case in list order. */
#ifndef LW_TL_OP_TABLE_H
#define LW_TL_OP_TABLE_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "op_list.h"

typedef struct {
    const char *id, *name, *forward, *backward;
    int backends;
    double rtol, atol;
    const char *kernels;
    double gpu_rtol, gpu_atol;
} op_entry;

typedef struct {
    int op;
    const char *label;
    int fd;
    int d[10];
} op_case;

#define LW_TL_ENTRY_X(ID, name, fwd, bwd, backends, rtol, atol, kernels, gpu_rtol, gpu_atol) \
    [LW_OPL_##ID] = {#ID, name, fwd, bwd, backends, rtol, atol, kernels, gpu_rtol, gpu_atol},
#define LW_TL_ENTRY_C(...)
static const op_entry OPS[LW_OPL_COUNT] = {LW_OP_LIST(LW_TL_ENTRY_X, LW_TL_ENTRY_C)};
#undef LW_TL_ENTRY_X
#undef LW_TL_ENTRY_C

#define LW_TL_CASE_X(...)
#define LW_TL_CASE_C(ID, label, fd, ...) {LW_OPL_##ID, label, fd, {__VA_ARGS__}},
static const op_case CASES[] = {LW_OP_LIST(LW_TL_CASE_X, LW_TL_CASE_C)};
#undef LW_TL_CASE_X
#undef LW_TL_CASE_C
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

#define LW_TL_NOT_OP_K(name, why) name,
static const char *const KERNELS_NOT_OPS[] = {LW_KERNELS_NOT_OPS(LW_TL_NOT_OP_K)};
#undef LW_TL_NOT_OP_K
#define N_KERNELS_NOT_OPS ((int)(sizeof KERNELS_NOT_OPS / sizeof KERNELS_NOT_OPS[0]))

static inline bool op_is_frozen(const op_entry *e) { return strncmp(e->backward, "frozen:", 7) == 0; }

/* The kernels column names CUDA kernels of ours unless it says cuBLAS or none. */
static inline bool op_has_kernels(const op_entry *e)
{
    return strncmp(e->kernels, "cuBLAS", 6) != 0 && strncmp(e->kernels, "none", 4) != 0;
}

/* The k-th kernel name of e's column into buf; false past the last. */
static inline bool op_kernel(const op_entry *e, int k, char *buf, size_t size)
{
    if (!op_has_kernels(e)) return false;
    const char *p = e->kernels;
    for (;;) {
        while (*p == ' ') p++;
        if (!*p) return false;
        size_t len = strcspn(p, " ");
        if (k-- == 0) {
            if (len >= size) return false;
            memcpy(buf, p, len);
            buf[len] = '\0';
            return true;
        }
        p += len;
    }
}

/* Is `word` in `text` as a whole identifier? */
static inline bool names_word(const char *text, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += len) {
        bool start = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool end = !(isalnum((unsigned char)p[len]) || p[len] == '_');
        if (start && end) return true;
    }
    return false;
}

#endif
