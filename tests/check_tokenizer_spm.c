/* SentencePiece BPE (tokenizer.json, tokenizer.model, Gemma 3 GGUF) and the
 * llama2.c tokenizer.bin: ids and decoded text identical to the references
 * in tests/golden/tokenizer_spm/ (made by tests/golden/make_spm_goldens.py)
 * for every string of the shared corpus tests/golden/tokenizer/corpus.txt. */
#include "testlib.h"
#include "golden_text.h"
#include "gguf_builder.h"
#include "tokenizer_impl.h"
#include "unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- golden files ---- */

typedef struct {
    char **s;      /* unescaped bytes, NUL-ended */
    size_t *len;
    int n;
} lines;

static void read_lines(const char *path, bool escaped, lines *out)
{
    size_t n;
    char *text = tl_read_file(path, &n);
    ck_assert_msg(text != NULL, "cannot read %s (run tests/golden/make_spm_goldens.py)", path);
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += text[i] == '\n';
    out->s = calloc((size_t)count + 1, sizeof *out->s);
    out->len = calloc((size_t)count + 1, sizeof *out->len);
    out->n = 0;
    char *p = text;
    for (int k = 0; k < count; k++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        out->s[k] = strdup(p);
        out->len[k] = escaped ? tl_unescape(out->s[k]) : strlen(out->s[k]);
        out->n++;
        p = nl + 1;
    }
    free(text);
}

static void free_lines(lines *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->len);
}

/* Parses one .ids line into a malloc'd array. */
static int *parse_ids(const char *line, int *n)
{
    int cap = 16, k = 0;
    int *ids = malloc((size_t)cap * sizeof *ids);
    for (const char *p = line; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        ck_assert_msg(end != p, "bad ids line: %s", line);
        if (k == cap)
            ids = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
        ids[k++] = (int)v;
        p = end;
        while (*p == ' ')
            p++;
    }
    *n = k;
    return ids;
}

static void print_ids(const char *what, const int *ids, int n)
{
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* A file of exactly these bytes (a model cut short or corrupted). */
static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert(fwrite(data, 1, n, f) == n);
    ck_assert_int_eq(fclose(f), 0);
}

/* ---- tokenizer handling through the implementation's ops ---- */

typedef lw_status (*loader)(const char *path, lw_tokenizer *t);

static void load(loader fn, const char *path, lw_tokenizer *t)
{
    tl_require_file(path);
    memset(t, 0, sizeof *t);
    lw_status st = fn(path, t);
    ck_assert_msg(st == LW_OK, "loading %s: %s", path, lw_last_error());
}

static void unload(lw_tokenizer *t)
{
    t->ops->free_impl(t->impl);
}

static int *encode(const lw_tokenizer *t, const char *s, size_t len, bool special, int *n)
{
    int *ids = NULL;
    lw_status st = t->ops->encode(t, s, len, special, &ids, n);
    ck_assert_msg(st == LW_OK, "encode: %s", lw_last_error());
    return ids;
}

static char *decode(const lw_tokenizer *t, const int *ids, int n)
{
    char *text = NULL;
    lw_status st = t->ops->decode(t, ids, n, &text);
    ck_assert_msg(st == LW_OK, "decode: %s", lw_last_error());
    return text;
}

/* How decode(encode(s)) relates to s: it is rt_prefix + s, checked for
 * the strings without rt_skip in them (valid UTF-8 only, unless raw). */
typedef struct {
    bool check;
    const char *prefix, *skip;
    bool raw;  /* bytes come back as given, invalid UTF-8 included (llama2.c) */
} round_trip;

static void check_round_trip(const round_trip *rt, const char *name, int line, const char *s, size_t n,
                             const char *back)
{
    if (!rt->check || n == 0 || (rt->skip && strstr(s, rt->skip)) || memchr(s, 0, n))
        return;
    if (!rt->raw) {
        char *clean;
        size_t cl;
        ck_assert_int_eq(lw_utf8_sanitize(s, n, &clean, &cl), LW_OK);
        bool valid = cl == n && memcmp(clean, s, n) == 0;
        free(clean);
        if (!valid)
            return;
    }
    size_t pl = strlen(rt->prefix);
    ck_assert_msg(strlen(back) == pl + n && memcmp(back, rt->prefix, pl) == 0 && memcmp(back + pl, s, n) == 0,
                  "%s: corpus line %d does not round-trip: \"%s\" -> \"%s\"", name, line, s, back);
}

/* Every corpus string encodes to the golden ids and those decode to the
 * golden text; add_special puts exactly `bos` in front. */
static void check_goldens(const lw_tokenizer *t, const char *name, int bos, round_trip rt)
{
    char ids_rel[256], dec_rel[256];
    snprintf(ids_rel, sizeof ids_rel, "tests/golden/tokenizer_spm/%s.ids", name);
    snprintf(dec_rel, sizeof dec_rel, "tests/golden/tokenizer_spm/%s.dec", name);
    lines corpus, want_ids, want_dec;
    read_lines(tl_src("tests/golden/tokenizer/corpus.txt"), true, &corpus);
    read_lines(tl_src(ids_rel), false, &want_ids);
    read_lines(tl_src(dec_rel), true, &want_dec);
    ck_assert_int_eq(want_ids.n, corpus.n);
    ck_assert_int_eq(want_dec.n, corpus.n);
    ck_assert_int_ge(corpus.n, 2000);
    for (int i = 0; i < corpus.n; i++) {
        int nw, ng, ns;
        int *want = parse_ids(want_ids.s[i], &nw);
        int *got = encode(t, corpus.s[i], corpus.len[i], false, &ng);
        bool same = ng == nw && memcmp(want, got, (size_t)ng * sizeof *got) == 0;
        if (!same) {
            fprintf(stderr, "%s: corpus line %d differs: \"%s\"\n", name, i + 1, corpus.s[i]);
            print_ids("want", want, nw);
            print_ids("got ", got, ng);
        }
        ck_assert_msg(same, "%s: ids of corpus line %d differ from the golden (see stderr)", name, i + 1);
        int *with = encode(t, corpus.s[i], corpus.len[i], true, &ns);
        ck_assert_int_eq(ns, ng + 1);
        ck_assert_int_eq(with[0], bos);
        ck_assert(memcmp(with + 1, got, (size_t)ng * sizeof *got) == 0);
        char *text = decode(t, got, ng);
        /* the text is NUL-ended: compare up to the first NUL of the golden */
        size_t wl = strlen(want_dec.s[i]);
        ck_assert_msg(strlen(text) == wl && memcmp(text, want_dec.s[i], wl) == 0,
                      "%s: decode of corpus line %d: got \"%s\", want \"%s\"", name, i + 1, text, want_dec.s[i]);
        check_round_trip(&rt, name, i + 1, corpus.s[i], corpus.len[i], text);
        free(text);
        free(with);
        free(got);
        free(want);
    }
    free_lines(&corpus);
    free_lines(&want_ids);
    free_lines(&want_dec);
}

static void expect_ids(const lw_tokenizer *t, const char *s, bool special, const int *want, int nw)
{
    int n;
    int *got = encode(t, s, strlen(s), special, &n);
    if (n != nw || memcmp(got, want, (size_t)n * sizeof *got) != 0) {
        fprintf(stderr, "encoding \"%s\":\n", s);
        print_ids("want", want, nw);
        print_ids("got ", got, n);
    }
    ck_assert_int_eq(n, nw);
    ck_assert(memcmp(got, want, (size_t)n * sizeof *got) == 0);
    free(got);
}

static void expect_round_trip(const lw_tokenizer *t, const char *s)
{
    int n;
    int *ids = encode(t, s, strlen(s), false, &n);
    char *back = decode(t, ids, n);
    ck_assert_str_eq(back, s);
    free(back);
    free(ids);
}

static const char *round_trips[] = {
    "Hello world", "  two  spaces ", "\n\n\ttabs\n", "日本語のテキスト 😀 👩‍💻", "e\u0301 cafe\u0301",
    "12345678901234567890", "ünïcödé", "", "x",
};

static void expect_round_trips(const lw_tokenizer *t)
{
    for (size_t i = 0; i < sizeof round_trips / sizeof round_trips[0]; i++)
        expect_round_trip(t, round_trips[i]);
}

/* Invalid UTF-8 is read as Python's errors='replace' reads it. */
static void check_invalid_utf8(const lw_tokenizer *t)
{
    static const char *pairs[][2] = {
        {"\xff", "\xEF\xBF\xBD"},
        {"abc\x80" "def", "abc\xEF\xBF\xBD" "def"},
        {"\xe2\x82(", "\xEF\xBF\xBD("},                            /* one U+FFFD for a cut-off sequence */
        {"\xf0\x9f\x98 x", "\xEF\xBF\xBD x"},
        {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate: three */
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        int na, nb;
        int *a = encode(t, pairs[k][0], strlen(pairs[k][0]), false, &na);
        int *b = encode(t, pairs[k][1], strlen(pairs[k][1]), false, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert(memcmp(a, b, (size_t)na * sizeof *a) == 0);
        free(a);
        free(b);
    }
}

static void check_bad_ids(const lw_tokenizer *t)
{
    int bad[] = {1, t->vocab_size};
    char *text = NULL;
    ck_assert_int_eq(t->ops->decode(t, bad, 2, &text), LW_ERR_INVALID);
    ck_assert(strstr(lw_last_error(), "not in the vocabulary") != NULL);
    bad[1] = -1;
    ck_assert_int_eq(t->ops->decode(t, bad, 2, &text), LW_ERR_INVALID);
}

/* ---- Llama 2 / Mistral tokenizer.json ---- */

START_TEST(llama2_json_matches_hf)
{
    lw_tokenizer t;
    load(lw_spm_load_json, tl_shared("models/tokenizers/llama2/tokenizer.json"), &t);
    ck_assert_int_eq(t.vocab_size, 32000);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    check_goldens(&t, "llama2_json", 1, (round_trip){true, "", "<s>", false});
    unload(&t);
}
END_TEST

START_TEST(llama2_json_details)
{
    lw_tokenizer t;
    load(lw_spm_load_json, tl_shared("models/tokenizers/llama2/tokenizer.json"), &t);
    /* HF: every segment between added tokens gets its own "▁" */
    static const int hello[] = {1, 6312, 28709, 1, 1526, 2, 28705, 1318};
    expect_ids(&t, "hello<s>world</s> x", true, hello, 8);
    static const int bos_only[] = {1};
    expect_ids(&t, "", true, bos_only, 1);
    expect_ids(&t, "", false, bos_only, 0);
    ck_assert_int_eq(t.ops->piece_id(&t, "<s>"), 1);
    ck_assert_int_eq(t.ops->piece_id(&t, "<0x0A>"), 13);
    ck_assert_int_eq(t.ops->piece_id(&t, "no such piece"), -1);
    expect_round_trips(&t);
    check_invalid_utf8(&t);
    check_bad_ids(&t);
    unload(&t);
}
END_TEST

/* ---- Llama 2 tokenizer.model ---- */

START_TEST(llama2_model_matches_hf)
{
    lw_tokenizer t;
    load(lw_spm_load_model, tl_shared("models/tokenizers/llama2/tokenizer.model"), &t);
    ck_assert_int_eq(t.vocab_size, 32000);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    static const int hello[] = {1, 15043, 3186}; /* Llama 2's well-known ids */
    expect_ids(&t, "Hello world", true, hello, 3);
    check_goldens(&t, "llama2_model", 1, (round_trip){true, "", "<s>", false});
    expect_round_trips(&t);
    unload(&t);
}
END_TEST

/* Every prefix of a real model and some corrupted bytes fail cleanly. */
START_TEST(llama2_model_rejects_bad_files)
{
    size_t n;
    char *data = tl_read_file(tl_shared("models/tokenizers/llama2/tokenizer.model"), &n);
    ck_assert(data != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/bad.model", tl_tmpdir("spm_bad"));
    size_t cuts[] = {0, 1, 2, 7, 100, 1001, n / 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        write_bytes(path, data, cuts[k]);
        lw_tokenizer t;
        memset(&t, 0, sizeof t);
        lw_status st = lw_spm_load_model(path, &t);
        if (st == LW_OK)  /* a cut between pieces can still be a (smaller) model */
            unload(&t);
        else
            ck_assert_msg(strstr(lw_last_error(), "bad.model") != NULL, "message names the file: %s", lw_last_error());
    }
    write_bytes(path, "\x0a\xff\xff\xff\xff\x0f", 6); /* a piece claiming 4 GiB */
    lw_tokenizer t;
    ck_assert_int_eq(lw_spm_load_model(path, &t), LW_ERR_FORMAT);
    free(data);
}
END_TEST

/* ---- a Llama GGUF, built here from tokenizer.model ---- */

static uint64_t varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* Appends the fields of one protobuf SentencePiece message to the arrays. */
static void read_piece(const unsigned char *p, const unsigned char *end, gb_buf *tokens, gb_buf *scores,
                       gb_buf *types)
{
    float score = 0;
    int32_t type = 1;
    while (p < end) {
        uint64_t tag = varint(&p, end);
        if (tag == (1 << 3 | 2)) {
            uint64_t n = varint(&p, end);
            ck_assert(n <= (uint64_t)(end - p));
            gb_u64(tokens, n);
            gb_put(tokens, p, n);
            p += n;
        } else if (tag == (2 << 3 | 5)) {
            memcpy(&score, p, 4);
            p += 4;
        } else if (tag == (3 << 3 | 0)) {
            type = (int32_t)varint(&p, end);
        } else {
            ck_abort_msg("unexpected field %llu in a SentencePiece", (unsigned long long)tag);
        }
    }
    gb_f32(scores, score);
    gb_put(types, &type, 4);
}

/* A GGUF holding only tokenizer metadata, as make_spm_goldens.py writes it with gguf-py. */
static void write_llama_gguf(const char *model_path, const char *gguf_path)
{
    size_t size;
    unsigned char *d = (unsigned char *)tl_read_file(model_path, &size);
    ck_assert(d != NULL);
    gb_buf tokens = {0}, scores = {0}, types = {0}, g = {0};
    uint64_t n = 0;
    for (const unsigned char *p = d, *end = d + size; p < end;) {
        uint64_t tag = varint(&p, end);
        ck_assert_int_eq(tag & 7, 2);  /* ModelProto has only messages at top level */
        uint64_t len = varint(&p, end);
        ck_assert(len <= (uint64_t)(end - p));
        if (tag >> 3 == 1) {
            read_piece(p, p + len, &tokens, &scores, &types);
            n++;
        }
        p += len;
    }
    gb_header(&g, 3, 0, 9);
    gb_key(&g, "general.architecture", 8);
    gb_str(&g, "llama");
    gb_key(&g, "tokenizer.ggml.model", 8);
    gb_str(&g, "llama");
    gb_key(&g, "tokenizer.ggml.tokens", 9);
    gb_u32(&g, 8);
    gb_u64(&g, n);
    gb_put(&g, tokens.p, tokens.n);
    gb_key(&g, "tokenizer.ggml.scores", 9);
    gb_u32(&g, 6);
    gb_u64(&g, n);
    gb_put(&g, scores.p, scores.n);
    gb_key(&g, "tokenizer.ggml.token_type", 9);
    gb_u32(&g, 5);
    gb_u64(&g, n);
    gb_put(&g, types.p, types.n);
    const char *ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    for (int k = 0; k < 3; k++) {
        gb_key(&g, ids[k], 4);
        gb_u32(&g, k == 0 ? 1 : k == 1 ? 2 : 0);
    }
    gb_key(&g, "tokenizer.ggml.add_bos_token", 7);
    gb_u8(&g, 1);
    gb_align(&g, 32);
    write_bytes(gguf_path, g.p, g.n);
    free(tokens.p);
    free(scores.p);
    free(types.p);
    free(g.p);
    free(d);
}

START_TEST(llama2_gguf_matches_hf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/llama2-tok.gguf", tl_tmpdir("spm_gguf"));
    write_llama_gguf(tl_shared("models/tokenizers/llama2/tokenizer.model"), path);
    lw_tokenizer t;
    load(lw_spm_load_gguf, path, &t);
    ck_assert_int_eq(t.vocab_size, 32000);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    /* Metaspace(first): only the text at offset 0 gets a "▁" */
    static const int hello[] = {1, 22172, 1, 11526, 2, 921};
    expect_ids(&t, "hello<s>world</s> x", true, hello, 6);
    check_goldens(&t, "llama2_gguf", 1, (round_trip){false, "", NULL, false}); /* Metaspace eats a leading space */
    unload(&t);
}
END_TEST

/* ---- Gemma 3 GGUF ---- */

START_TEST(gemma3_gguf_matches_hf)
{
    lw_tokenizer t;
    load(lw_spm_load_gguf, tl_model("gemma-3-270m-q4_k_m.gguf"), &t);
    ck_assert_int_eq(t.vocab_size, 262144);
    ck_assert_int_eq(t.bos_id, 2);
    ck_assert_int_eq(t.eos_id, 1);
    ck_assert_int_eq(t.ops->piece_id(&t, "<start_of_turn>"), 105);
    ck_assert_int_eq(t.ops->piece_id(&t, "<end_of_turn>"), 106);
    static const int turn[] = {2, 105, 2364, 107, 2202, 106};
    expect_ids(&t, "<start_of_turn>user\nhi<end_of_turn>", true, turn, 6);
    check_goldens(&t, "gemma3", 2, (round_trip){true, "", NULL, false});
    expect_round_trips(&t);
    check_invalid_utf8(&t);
    check_bad_ids(&t);
    unload(&t);
}
END_TEST

/* ---- llama2.c tok512.bin ---- */

START_TEST(stories260k_matches_run_c)
{
    lw_tokenizer t;
    load(lw_llama2c_tokenizer_load, tl_shared("models/stories260k/tok512.bin"), &t);
    ck_assert_int_eq(t.vocab_size, 512);
    ck_assert_int_eq(t.bos_id, 1);
    ck_assert_int_eq(t.eos_id, 2);
    check_goldens(&t, "stories260k", 1, (round_trip){true, " ", NULL, true}); /* the dummy prefix */
    check_bad_ids(&t);
    /* run.c drops the space of the first piece after BOS */
    int n;
    int *ids = encode(&t, "Once upon a time", 16, true, &n);
    char *text = decode(&t, ids + 1, n - 1);
    ck_assert_str_eq(text, " Once upon a time");
    free(text);
    text = decode(&t, ids, n);
    ck_assert(strstr(text, "<s>") && strstr(text, "\nOnce upon a time"));
    free(text);
    free(ids);
    unload(&t);
}
END_TEST

START_TEST(llama2c_rejects_bad_files)
{
    size_t n;
    char *data = tl_read_file(tl_shared("models/stories260k/tok512.bin"), &n);
    ck_assert(data != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/bad.bin", tl_tmpdir("l2c_bad"));
    size_t cuts[] = {0, 3, 4, 9, 13, n / 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        write_bytes(path, data, cuts[k]);
        lw_tokenizer t;
        ck_assert_int_eq(lw_llama2c_tokenizer_load(path, &t), LW_ERR_FORMAT);
        ck_assert(strstr(lw_last_error(), "bad.bin") != NULL);
    }
    char huge[12];   /* the header's max token length, then a piece of 2 GiB */
    memcpy(huge, data, 4);
    memcpy(huge + 4, "\0\0\0\0\xff\xff\xff\x7f", 8);
    write_bytes(path, huge, sizeof huge);
    lw_tokenizer t;
    ck_assert_int_eq(lw_llama2c_tokenizer_load(path, &t), LW_ERR_FORMAT);
    free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer_spm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, llama2_json_matches_hf);
    tcase_add_test(tc, llama2_json_details);
    tcase_add_test(tc, llama2_model_matches_hf);
    tcase_add_test(tc, llama2_model_rejects_bad_files);
    tcase_add_test(tc, llama2_gguf_matches_hf);
    tcase_add_test(tc, gemma3_gguf_matches_hf);
    tcase_add_test(tc, stories260k_matches_run_c);
    tcase_add_test(tc, llama2c_rejects_bad_files);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
