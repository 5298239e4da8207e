/* The GGUF reader: metadata of every kind (crafted in memory), the two real
 * files, and clean failures on every truncation of a crafted file. */
#include "testlib.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "dequant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* One key of every kind, a nested array, a tensor, alignment 64. */
static gb_buf every_kind(void)
{
    gb_buf b = {0};
    gb_header(&b, 3, 1, 17);
    gb_key(&b, "k.u8", LW_GGUF_U8); gb_u8(&b, 200);
    gb_key(&b, "k.i8", LW_GGUF_I8); gb_u8(&b, (uint8_t)-5);
    gb_key(&b, "k.u16", LW_GGUF_U16); uint16_t u16 = 60000; gb_put(&b, &u16, 2);
    gb_key(&b, "k.i16", LW_GGUF_I16); int16_t i16 = -30000; gb_put(&b, &i16, 2);
    gb_key(&b, "k.u32", LW_GGUF_U32); gb_u32(&b, 4000000000u);
    gb_key(&b, "k.i32", LW_GGUF_I32); gb_u32(&b, (uint32_t)-7);
    gb_key(&b, "k.f32", LW_GGUF_F32); gb_f32(&b, 0.5f);
    gb_key(&b, "k.bool", LW_GGUF_BOOL); gb_u8(&b, 1);
    gb_key(&b, "k.str", LW_GGUF_STRING); gb_str(&b, "hello");
    gb_key(&b, "k.u64", LW_GGUF_U64); gb_u64(&b, 1ULL << 40);
    gb_key(&b, "k.big", LW_GGUF_U64); gb_u64(&b, UINT64_MAX);
    gb_key(&b, "k.i64", LW_GGUF_I64); gb_u64(&b, (uint64_t)-3);
    gb_key(&b, "k.f64", LW_GGUF_F64); double f64 = 1e300; gb_put(&b, &f64, 8);
    gb_key(&b, "k.strs", LW_GGUF_ARRAY); gb_u32(&b, LW_GGUF_STRING); gb_u64(&b, 3);
    gb_str(&b, "a"); gb_str(&b, ""); gb_str(&b, "ccc");
    gb_key(&b, "k.floats", LW_GGUF_ARRAY); gb_u32(&b, LW_GGUF_F32); gb_u64(&b, 2);
    gb_f32(&b, 1.5f); gb_f32(&b, -2.0f);
    gb_key(&b, "k.nested", LW_GGUF_ARRAY); gb_u32(&b, LW_GGUF_ARRAY); gb_u64(&b, 2);
    gb_u32(&b, LW_GGUF_I16); gb_u64(&b, 1); gb_put(&b, &i16, 2);
    gb_u32(&b, LW_GGUF_STRING); gb_u64(&b, 1); gb_str(&b, "x");
    gb_key(&b, "general.alignment", LW_GGUF_U32); gb_u32(&b, 64);
    gb_tensor2(&b, "w", 4, 2, LW_GGML_F32, 0);
    gb_align(&b, 64);
    for (int i = 0; i < 8; i++) gb_f32(&b, (float)i);
    return b;
}

START_TEST(reads_every_value_kind)
{
    gb_buf b = every_kind();
    lw_gguf *g;
    ck_assert_msg(lw_gguf_parse(b.p, b.n, "mem.gguf", &g) == LW_OK, "%s", lw_last_error());
    int64_t i;
    double f;
    bool v;
    ck_assert(lw_gguf_get_int(g, "k.u8", &i) == LW_OK && i == 200);
    ck_assert(lw_gguf_get_int(g, "k.i8", &i) == LW_OK && i == -5);
    ck_assert(lw_gguf_get_int(g, "k.u16", &i) == LW_OK && i == 60000);
    ck_assert(lw_gguf_get_int(g, "k.i16", &i) == LW_OK && i == -30000);
    ck_assert(lw_gguf_get_int(g, "k.u32", &i) == LW_OK && i == 4000000000LL);
    ck_assert(lw_gguf_get_int(g, "k.i32", &i) == LW_OK && i == -7);
    ck_assert(lw_gguf_get_int(g, "k.u64", &i) == LW_OK && i == 1LL << 40);
    ck_assert(lw_gguf_get_int(g, "k.i64", &i) == LW_OK && i == -3);
    ck_assert(lw_gguf_get_int(g, "k.bool", &i) == LW_OK && i == 1);
    ck_assert_int_eq(lw_gguf_get_int(g, "k.big", &i), LW_ERR_INVALID);
    ck_assert(lw_gguf_get_float(g, "k.f32", &f) == LW_OK && f == 0.5);
    ck_assert(lw_gguf_get_float(g, "k.f64", &f) == LW_OK && f == 1e300);
    ck_assert(lw_gguf_get_float(g, "k.i32", &f) == LW_OK && f == -7.0);
    ck_assert(lw_gguf_get_bool(g, "k.bool", &v) == LW_OK && v);
    const char *s;
    size_t len;
    ck_assert(lw_gguf_get_string(g, "k.str", &s, &len) == LW_OK && len == 5 && memcmp(s, "hello", 5) == 0);
    uint64_t n;
    lw_gguf_kind k;
    ck_assert(lw_gguf_get_array_len(g, "k.strs", &n) == LW_OK && n == 3);
    ck_assert(lw_gguf_get_array_kind(g, "k.strs", &k) == LW_OK && k == LW_GGUF_STRING);
    ck_assert(lw_gguf_get_array_string(g, "k.strs", 2, &s, &len) == LW_OK && len == 3 && memcmp(s, "ccc", 3) == 0);
    ck_assert(lw_gguf_get_array_string(g, "k.strs", 1, &s, &len) == LW_OK && len == 0);
    ck_assert(lw_gguf_get_array_float(g, "k.floats", 1, &f) == LW_OK && f == -2.0);
    ck_assert(lw_gguf_get_array_len(g, "k.nested", &n) == LW_OK && n == 2);
    ck_assert_int_eq(lw_gguf_get_array_int(g, "k.nested", 0, &i), LW_ERR_UNSUPPORTED);
    ck_assert_int_eq(lw_gguf_n_kv(g), 17);
    ck_assert_str_eq(lw_gguf_kv_key(g, 16), "general.alignment");

    const lw_gguf_tensor *t = lw_gguf_find_tensor(g, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ne[0], 4);
    ck_assert_int_eq(t->ne[1], 2);
    ck_assert_uint_eq(t->nbytes, 32);
    ck_assert_uint_eq(((const uint8_t *)t->data - b.p) % 64, 0);
    float last;
    memcpy(&last, (const uint8_t *)t->data + 28, 4);
    ck_assert(last == 7.0f);
    lw_gguf_close(g);
    free(b.p);
}
END_TEST

START_TEST(misuse_names_file_and_key)
{
    gb_buf b = every_kind();
    lw_gguf *g;
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "mem.gguf", &g), LW_OK);
    int64_t i;
    const char *s;
    size_t len;
    ck_assert_int_eq(lw_gguf_get_int(g, "no.such.key", &i), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "mem.gguf"));
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "no.such.key"));
    ck_assert_int_eq(lw_gguf_get_string(g, "k.u8", &s, &len), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "k.u8"));
    ck_assert_int_eq(lw_gguf_get_int(g, "k.str", &i), LW_ERR_INVALID);
    ck_assert_int_eq(lw_gguf_get_array_string(g, "k.strs", 3, &s, &len), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "out of range"));
    ck_assert_int_eq(lw_gguf_get_array_int(g, "k.floats", 0, &i), LW_ERR_INVALID);
    ck_assert_int_eq(lw_gguf_get_array_len(g, "k.str", &(uint64_t){0}), LW_ERR_INVALID);
    const lw_gguf_tensor *t;
    ck_assert_int_eq(lw_gguf_get_tensor(g, "missing.weight", &t), LW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "missing.weight"));
    lw_gguf_close(g);
    free(b.p);
}
END_TEST

/* Every prefix of a valid file must fail with a format error, never crash. */
START_TEST(every_truncation_fails_cleanly)
{
    gb_buf b = every_kind();
    for (size_t cut = 0; cut < b.n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);   /* exact size: ASan sees any overread */
        memcpy(copy, b.p, cut);
        lw_gguf *g = NULL;
        lw_status st = lw_gguf_parse(copy, cut, "cut.gguf", &g);
        ck_assert_msg(st == LW_ERR_FORMAT, "cut at %zu: status %d", cut, st);
        ck_assert_ptr_null(g);
        ck_assert_ptr_nonnull(strstr(lw_last_error(), "cut.gguf"));
        free(copy);
    }
    free(b.p);
}
END_TEST

START_TEST(hostile_counts_fail_cleanly)
{
    gb_buf b = {0};
    gb_header(&b, 3, UINT64_MAX, 1);
    lw_gguf *g;
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "huge.gguf", &g), LW_ERR_FORMAT);
    free(b.p);

    b = (gb_buf){0};
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "a", LW_GGUF_ARRAY); gb_u32(&b, LW_GGUF_STRING); gb_u64(&b, 1ULL << 62);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "strs.gguf", &g), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "strs.gguf"));
    free(b.p);

    b = (gb_buf){0};
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "s", LW_GGUF_STRING); gb_u64(&b, UINT64_MAX - 3);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "str.gguf", &g), LW_ERR_FORMAT);
    free(b.p);

    b = (gb_buf){0};   /* dims whose product overflows */
    gb_header(&b, 3, 1, 0);
    gb_tensor2(&b, "t", 1ULL << 40, 1ULL << 40, LW_GGML_F32, 0);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "dims.gguf", &g), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "t"));
    free(b.p);

    b = (gb_buf){0};   /* arrays nested deeper than the reader allows */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "deep", LW_GGUF_ARRAY);
    for (int d = 0; d < 20; d++) { gb_u32(&b, LW_GGUF_ARRAY); gb_u64(&b, 1); }
    gb_u32(&b, LW_GGUF_U8); gb_u64(&b, 0);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "deep.gguf", &g), LW_ERR_FORMAT);
    free(b.p);

    b = (gb_buf){0};   /* alignment that is not a power of two */
    gb_header(&b, 3, 0, 1);
    gb_key(&b, "general.alignment", LW_GGUF_U32); gb_u32(&b, 48);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "align.gguf", &g), LW_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "general.alignment"));
    free(b.p);
}
END_TEST

/* Three tensors a, b, c of the given offsets (a, b: 4x2 F32 = 32 bytes; c:
 * 4x1 = 16 bytes) over 64 bytes of data. */
static gb_buf three_tensors(uint64_t off_b, uint64_t off_c)
{
    gb_buf b = {0};
    gb_header(&b, 3, 3, 0);
    gb_tensor2(&b, "a", 4, 2, LW_GGML_F32, 0);
    gb_tensor2(&b, "b", 4, 2, LW_GGML_F32, off_b);
    gb_tensor2(&b, "c", 4, 1, LW_GGML_F32, off_c);
    gb_align(&b, 32);
    for (int i = 0; i < 16; i++) gb_f32(&b, (float)i);
    return b;
}

START_TEST(overlapping_tensor_data_is_refused)
{
    lw_gguf *g = NULL;
    gb_buf b = three_tensors(32, 32);
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "overlap.gguf", &g), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "overlap.gguf: tensors c [32, +16) and b [32, +32) overlap"), "%s",
                  lw_last_error());
    free(b.p);
    b = three_tensors(32, 0);   /* c inside a, listed after b: found after sorting */
    ck_assert_int_eq(lw_gguf_parse(b.p, b.n, "inside.gguf", &g), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "tensors c [0, +16) and a [0, +32) overlap"), "%s", lw_last_error());
    free(b.p);
    /* Back to back, listed in the header out of data order: fine. */
    gb_buf ok = {0};
    gb_header(&ok, 3, 2, 0);
    gb_tensor2(&ok, "late", 4, 2, LW_GGML_F32, 32);
    gb_tensor2(&ok, "early", 4, 2, LW_GGML_F32, 0);
    gb_align(&ok, 32);
    for (int i = 0; i < 16; i++) gb_f32(&ok, (float)i);
    ck_assert_msg(lw_gguf_parse(ok.p, ok.n, "ok.gguf", &g) == LW_OK, "%s", lw_last_error());
    lw_gguf_close(g);
    free(ok.p);
}
END_TEST

/* fstat succeeds on a directory, so errno said "Success". */
START_TEST(a_directory_is_named_as_such)
{
    const char *dir = tl_tmpdir("gguf_dir");
    lw_gguf *g = NULL;
    ck_assert_int_eq(lw_gguf_open(dir, &g), LW_ERR_IO);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(lw_last_error(), dir) && strstr(lw_last_error(), "is a directory, expected a GGUF file"),
                  "%s", lw_last_error());
    ck_assert_ptr_null(strstr(lw_last_error(), "Success"));
}
END_TEST

START_TEST(reads_smollm2_metadata)
{
    const char *path = tl_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    tl_require_file(path);
    lw_gguf *g;
    ck_assert_msg(lw_gguf_open(path, &g) == LW_OK, "%s", lw_last_error());
    ck_assert_uint_eq(lw_gguf_version(g), 3);
    ck_assert_uint_eq(lw_gguf_n_tensors(g), 272);
    const char *s;
    size_t len;
    ck_assert(lw_gguf_get_string(g, "general.architecture", &s, &len) == LW_OK && len == 5 &&
              memcmp(s, "llama", 5) == 0);
    int64_t i;
    double f;
    ck_assert(lw_gguf_get_int(g, "llama.embedding_length", &i) == LW_OK && i == 576);
    ck_assert(lw_gguf_get_float(g, "llama.rope.freq_base", &f) == LW_OK && f == 100000.0);
    uint64_t n;
    ck_assert(lw_gguf_get_array_len(g, "tokenizer.ggml.merges", &n) == LW_OK && n == 48900);
    ck_assert(lw_gguf_get_array_string(g, "tokenizer.ggml.tokens", 1, &s, &len) == LW_OK);
    ck_assert(len == 12 && memcmp(s, "<|im_start|>", 12) == 0);
    ck_assert(lw_gguf_get_array_int(g, "tokenizer.ggml.token_type", 0, &i) == LW_OK);
    const lw_gguf_tensor *t;
    ck_assert_int_eq(lw_gguf_get_tensor(g, "token_embd.weight", &t), LW_OK);
    ck_assert_str_eq(lw_ggml_type_name(t->type), "Q8_0");
    ck_assert_int_eq(t->ne[0], 576);
    ck_assert_int_eq(t->ne[1], 49152);
    ck_assert_ptr_null(lw_gguf_find_tensor(g, "output.weight"));
    lw_gguf_close(g);
}
END_TEST

START_TEST(gemma_vocabulary_is_indexed)
{
    const char *path = tl_model("gemma-3-270m-q4_k_m.gguf");
    tl_require_file(path);
    lw_gguf *g;
    ck_assert_msg(lw_gguf_open(path, &g) == LW_OK, "%s", lw_last_error());
    uint64_t n;
    ck_assert(lw_gguf_get_array_len(g, "tokenizer.ggml.tokens", &n) == LW_OK && n == 262144);
    const char *s;
    size_t len;
    /* id 2 is <bos> per tokenizer.ggml.bos_token_id; read every string twice
     * to show access is cheap. */
    ck_assert(lw_gguf_get_array_string(g, "tokenizer.ggml.tokens", 2, &s, &len) == LW_OK);
    ck_assert(len == 5 && memcmp(s, "<bos>", 5) == 0);
    clock_t t0 = clock();
    size_t total = 0;
    for (int rep = 0; rep < 2; rep++)
        for (uint64_t i = 0; i < n; i++) {
            ck_assert(lw_gguf_get_array_string(g, "tokenizer.ggml.tokens", i, &s, &len) == LW_OK);
            total += len;
        }
    ck_assert((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
    ck_assert_uint_gt(total, n);
    double score;
    ck_assert(lw_gguf_get_array_float(g, "tokenizer.ggml.scores", 1000, &score) == LW_OK && isfinite(score));
    lw_gguf_close(g);
}
END_TEST

/* The fuzz seeds (written by gguf-py's GGUFWriter) are valid files. */
START_TEST(fuzz_seeds_parse)
{
    const char *seeds[] = {"quants.gguf", "kquants.gguf"};
    size_t want_tensors[] = {8, 3};
    for (int i = 0; i < 2; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fuzz/seeds/gguf/%s", seeds[i]);
        lw_gguf *g;
        ck_assert_msg(lw_gguf_open(tl_src(rel), &g) == LW_OK, "%s", lw_last_error());
        ck_assert_uint_eq(lw_gguf_n_tensors(g), want_tensors[i]);
        uint64_t n;
        ck_assert(lw_gguf_get_array_len(g, "test.nested", &n) == LW_OK && n == 2);
        int64_t v;
        ck_assert(lw_gguf_get_int(g, "test.i8", &v) == LW_OK && v == -3);
        for (size_t t = 0; t < lw_gguf_n_tensors(g); t++) {
            const lw_gguf_tensor *x = lw_gguf_tensor_at(g, t);
            float out[512];
            ck_assert_int_eq(x->n_elements, 512);
            ck_assert_msg(lw_dequantize(x->type, x->data, out, 512) == LW_OK, "%s", lw_last_error());
        }
        lw_gguf_close(g);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, reads_every_value_kind);
    tcase_add_test(tc, misuse_names_file_and_key);
    tcase_add_test(tc, every_truncation_fails_cleanly);
    tcase_add_test(tc, hostile_counts_fail_cleanly);
    tcase_add_test(tc, overlapping_tensor_data_is_refused);
    tcase_add_test(tc, a_directory_is_named_as_such);
    tcase_add_test(tc, reads_smollm2_metadata);
    tcase_add_test(tc, gemma_vocabulary_is_indexed);
    tcase_add_test(tc, fuzz_seeds_parse);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
