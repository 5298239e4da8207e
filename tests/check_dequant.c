/* Dequantization against gguf-py's numpy dequantizer, bit for bit: real
 * tensors of each type in the two GGUF files (first 64 values + FNV-1a of all
 * values) and synthetic blocks of every supported type
 * (goldens: tests/golden/make_dequant_goldens.py). */
#include "testlib.h"
#include "dequant.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *goldens(void)
{
    const char *path = tl_src("tests/golden/dequant/dequant_goldens.txt");
    tl_require_file(path);
    char *text = tl_read_file(path, NULL);
    ck_assert_ptr_nonnull(text);
    return text;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Compares n floats with the hex words that follow in *cursor. */
static void expect_bits(const float *got, size_t n, char **cursor, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        char *end;
        uint32_t want = (uint32_t)strtoul(*cursor, &end, 16);
        ck_assert_msg(end != *cursor, "%s: golden has fewer than %zu values", what, n);
        *cursor = end;
        ck_assert_msg(bits(got[i]) == want, "%s: value %zu is %08x (%g), numpy gives %08x", what, i,
                      bits(got[i]), got[i], want);
    }
}

static uint32_t type_by_name(const char *name)
{
    for (uint32_t t = 0; t < LW_GGML_TYPE_COUNT; t++)
        if (lw_ggml_type_name(t) && strcmp(lw_ggml_type_name(t), name) == 0) return t;
    ck_abort_msg("unknown type %s in goldens", name);
    return 0;
}

START_TEST(real_tensors_match_numpy)
{
    char *text = goldens(), *save = NULL;
    int checked = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char file[256], name[128], type[16];
        int ndim, off = 0;
        if (sscanf(line, "tensor %255s %127s %15s %d%n", file, name, type, &ndim, &off) != 4) continue;
        char *p = line + off, *end;
        int64_t shape[2] = {0, 0};
        for (int d = 0; d < ndim && d < 2; d++) shape[d] = strtoll(p, &p, 10);
        int64_t n = strtoll(p, &p, 10);
        uint64_t want_hash = strtoull(p, &end, 16);
        char *first = strtok_r(NULL, "\n", &save);
        ck_assert_ptr_nonnull(first);
        ck_assert(strncmp(first, "first ", 6) == 0);

        const char *path = tl_model(file);
        tl_require_file(path);
        lw_gguf *g;
        ck_assert_msg(lw_gguf_open(path, &g) == LW_OK, "%s", lw_last_error());
        const lw_gguf_tensor *t;
        ck_assert_msg(lw_gguf_get_tensor(g, name, &t) == LW_OK, "%s", lw_last_error());
        ck_assert_str_eq(lw_ggml_type_name(t->type), type);
        ck_assert_int_eq(t->n_elements, n);
        ck_assert_int_eq(t->ndim, ndim);
        ck_assert_int_eq(t->ne[ndim - 1], shape[0]);   /* GGUF order is reversed */
        float *v = malloc((size_t)n * sizeof *v);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg(lw_dequantize(t->type, t->data, v, n) == LW_OK, "%s", lw_last_error());
        char *cursor = first + 6;
        expect_bits(v, 64 < n ? 64 : (size_t)n, &cursor, name);
        uint64_t h = fnv1a(0xcbf29ce484222325ULL, v, (size_t)n * sizeof *v);
        ck_assert_msg(h == want_hash, "%s %s: hash %016llx, numpy gives %016llx", file, name,
                      (unsigned long long)h, (unsigned long long)want_hash);
        free(v);
        lw_gguf_close(g);
        checked++;
    }
    ck_assert_int_ge(checked, 8);
    free(text);
}
END_TEST

/* Row-wise dequantization must give the same values as the whole tensor. */
START_TEST(rows_match_whole_tensor)
{
    const char *path = tl_model("gemma-3-270m-q4_k_m.gguf");
    tl_require_file(path);
    lw_gguf *g;
    ck_assert_msg(lw_gguf_open(path, &g) == LW_OK, "%s", lw_last_error());
    const lw_gguf_tensor *t;
    ck_assert_int_eq(lw_gguf_get_tensor(g, "blk.0.ffn_down.weight", &t), LW_OK);
    int64_t cols = t->ne[0], rows = t->n_elements / cols;
    float *all = malloc((size_t)t->n_elements * sizeof *all), *row = malloc((size_t)cols * sizeof *row);
    ck_assert_int_eq(lw_dequantize(t->type, t->data, all, t->n_elements), LW_OK);
    size_t row_bytes;
    ck_assert(lw_ggml_nbytes(t->type, cols, &row_bytes));
    for (int64_t r = 0; r < rows; r += 97) {
        ck_assert_int_eq(lw_dequantize(t->type, (const uint8_t *)t->data + r * row_bytes, row, cols), LW_OK);
        ck_assert(memcmp(row, all + r * cols, (size_t)cols * sizeof *row) == 0);
    }
    free(all);
    free(row);
    lw_gguf_close(g);
}
END_TEST

static uint8_t *hex_bytes(const char *hex, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert(sscanf(hex + 2 * i, "%2x", &v) == 1);
        b[i] = (uint8_t)v;
    }
    return b;
}

START_TEST(synthetic_blocks_match_numpy)
{
    char *text = goldens(), *save = NULL;
    static const char *expected[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                     "Q4_K", "Q5_K", "Q6_K"};
    bool seen[sizeof expected / sizeof expected[0]] = {false};
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char type[16];
        size_t nbytes;
        int off = 0;
        if (sscanf(line, "synth %15s %zu %n", type, &nbytes, &off) != 2) continue;
        uint8_t *raw = hex_bytes(line + off, nbytes);
        char *vals = strtok_r(NULL, "\n", &save);
        size_t n;
        ck_assert(vals && sscanf(vals, "values %zu %n", &n, &off) == 1);
        uint32_t t = type_by_name(type);
        size_t need;
        ck_assert(lw_ggml_nbytes(t, (int64_t)n, &need));
        ck_assert_uint_eq(need, nbytes);
        float *v = malloc(n * sizeof *v);
        ck_assert_msg(lw_dequantize(t, raw, v, (int64_t)n) == LW_OK, "%s", lw_last_error());
        char *cursor = vals + off;
        expect_bits(v, n, &cursor, type);
        for (size_t k = 0; k < sizeof expected / sizeof expected[0]; k++)
            if (strcmp(expected[k], type) == 0) seen[k] = true;
        free(v);
        free(raw);
    }
    for (size_t k = 0; k < sizeof expected / sizeof expected[0]; k++)
        ck_assert_msg(seen[k], "no synthetic golden for %s", expected[k]);
    free(text);
}
END_TEST

START_TEST(half_conversions_are_exact)
{
    ck_assert_uint_eq(bits(lw_fp16_to_f32(0x3c00)), bits(1.0f));
    ck_assert_uint_eq(bits(lw_fp16_to_f32(0x8000)), 0x80000000u);
    ck_assert_uint_eq(bits(lw_fp16_to_f32(0x0001)), bits(5.9604644775390625e-8f)); /* smallest subnormal */
    ck_assert_uint_eq(bits(lw_fp16_to_f32(0x7bff)), bits(65504.0f));
    ck_assert_uint_eq(bits(lw_fp16_to_f32(0xfc00)), 0xff800000u);
    ck_assert_uint_eq(bits(lw_bf16_to_f32(0x3f80)), bits(1.0f));
    ck_assert_uint_eq(bits(lw_bf16_to_f32(0xc040)), bits(-3.0f));
}
END_TEST

START_TEST(bad_requests_fail_cleanly)
{
    uint8_t block[34] = {0};
    float out[32];
    ck_assert_int_eq(lw_dequantize(LW_GGML_Q2_K, block, out, 256), LW_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "Q2_K"));
    ck_assert_int_eq(lw_dequantize(LW_GGML_Q8_0, block, out, 31), LW_ERR_INVALID);
    ck_assert_int_eq(lw_dequantize(999, block, out, 1), LW_ERR_UNSUPPORTED);
    size_t nb;
    ck_assert(!lw_ggml_nbytes(LW_GGML_Q4_K, 100, &nb));
    ck_assert(!lw_ggml_nbytes(LW_GGML_F32, INT64_MAX, &nb));
    ck_assert(lw_ggml_nbytes(LW_GGML_Q6_K, 512, &nb) && nb == 420);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dequant");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, real_tensors_match_numpy);
    tcase_add_test(tc, rows_match_whole_tensor);
    tcase_add_test(tc, synthetic_blocks_match_numpy);
    tcase_add_test(tc, half_conversions_are_exact);
    tcase_add_test(tc, bad_requests_fail_cleanly);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
