/* Byte-level BPE against Hugging Face: every corpus string must encode to the
 * golden ids (tests/golden/make_tokenizer_goldens.py) for SmolLM2's
 * tokenizer.json, its GGUF and GPT-2's files, and decode back to its text. */
#include "testlib.h"
#include "pretokenize.h"
#include "tokenizer.h"
#include "unicode.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s;
    size_t len;
} text;

typedef struct {
    int n;
    text *strings;
} corpus;

/* Undoes the corpus escapes: \\ \n \r \t \xHH. */
static text unescape(const char *line, size_t n)
{
    text t = {malloc(n + 1), 0};
    ck_assert_ptr_nonnull(t.s);
    for (size_t i = 0; i < n; i++) {
        if (line[i] != '\\' || i + 1 >= n) {
            t.s[t.len++] = line[i];
            continue;
        }
        char c = line[++i];
        if (c == 'x' && i + 2 < n + 1) {
            unsigned v;
            ck_assert_int_eq(sscanf(line + i + 1, "%2x", &v), 1);
            t.s[t.len++] = (char)v;
            i += 2;
        } else {
            t.s[t.len++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        }
    }
    t.s[t.len] = '\0';
    return t;
}

/* Splits a file into lines (the buffer is modified; lines point into it). */
static char **file_lines(const char *path, char **buf, int *n)
{
    size_t len;
    *buf = tl_read_file(path, &len);
    ck_assert_msg(*buf != NULL, "cannot read %s", path);
    int cap = 4096;
    char **lines = malloc((size_t)cap * sizeof *lines);
    *n = 0;
    for (char *p = *buf; p < *buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(*buf + len - p));
        ck_assert_msg(nl != NULL, "%s: last line has no newline", path);
        *nl = '\0';
        if (*n == cap)
            lines = realloc(lines, (size_t)(cap *= 2) * sizeof *lines);
        lines[(*n)++] = p;
        p = nl + 1;
    }
    return lines;
}

static corpus load_corpus(void)
{
    char *buf;
    corpus c;
    char **lines = file_lines(tl_src("tests/golden/tokenizer/corpus.txt"), &buf, &c.n);
    ck_assert_int_ge(c.n, 2100);
    c.strings = malloc((size_t)c.n * sizeof *c.strings);
    for (int i = 0; i < c.n; i++)
        c.strings[i] = unescape(lines[i], strlen(lines[i]));
    free(lines);
    free(buf);
    return c;
}

static void free_corpus(corpus *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->strings[i].s);
    free(c->strings);
}

static int parse_ints(const char *line, int *out, int cap)
{
    int n = 0;
    for (char *end; *line; line = end) {
        long v = strtol(line, &end, 10);
        if (end == line)
            break;
        ck_assert_int_lt(n, cap);
        out[n++] = (int)v;
    }
    return n;
}

static void print_string(const text *t)
{
    fprintf(stderr, "  string (%zu bytes): \"", t->len);
    for (size_t i = 0; i < t->len; i++) {
        unsigned char c = (unsigned char)t->s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "\"\n");
}

static void print_ids(const char *what, const int *ids, int n)
{
    fprintf(stderr, "  %s (%d):", what, n);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Encodes every corpus string and compares with the golden ids; decodes the
 * golden ids and compares with the text (invalid UTF-8 replaced by U+FFFD). */
static void check_goldens(lw_tokenizer_kind kind, const char *path, const char *golden, bool add_special)
{
    tl_require_file(path);
    lw_tokenizer *tok;
    lw_status st = lw_tokenizer_load(kind, path, &tok);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    corpus c = load_corpus();
    char *buf;
    int n_lines;
    char **lines = file_lines(tl_src(golden), &buf, &n_lines);
    ck_assert_int_eq(n_lines, c.n);
    int *want = malloc(200000 * sizeof *want);
    int mismatches = 0;
    for (int i = 0; i < c.n; i++) {
        int n_want = parse_ints(lines[i], want, 200000), *got, n_got;
        st = lw_tokenizer_encode(tok, c.strings[i].s, c.strings[i].len, add_special, &got, &n_got);
        ck_assert_msg(st == LW_OK, "%s", lw_last_error());
        bool same = n_got == n_want && (n_got == 0 || memcmp(got, want, (size_t)n_got * sizeof *got) == 0);
        if (!same && mismatches++ == 0) {
            fprintf(stderr, "%s: first mismatch at corpus line %d\n", golden, i + 1);
            print_string(&c.strings[i]);
            print_ids("expected", want, n_want);
            print_ids("got", got, n_got);
        }
        free(got);
        if (add_special)
            continue; /* decoding is checked on the plain goldens */
        char *decoded, *clean;
        size_t clean_len;
        ck_assert_int_eq(lw_tokenizer_decode(tok, want, n_want, &decoded), LW_OK);
        ck_assert_int_eq(lw_utf8_sanitize(c.strings[i].s, c.strings[i].len, &clean, &clean_len), LW_OK);
        /* decode's text is NUL-ended, so a NUL in the text ends the comparison */
        ck_assert_msg(strlen(decoded) == strlen(clean) && memcmp(decoded, clean, strlen(clean)) == 0,
                      "%s line %d: decode gives '%s', expected '%s'", golden, i + 1, decoded, clean);
        free(decoded);
        free(clean);
    }
    ck_assert_msg(mismatches == 0, "%s: %d of %d strings differ from Hugging Face", golden, mismatches, c.n);
    free(want);
    free(lines);
    free(buf);
    free_corpus(&c);
    lw_tokenizer_free(tok);
}

static void check_against_goldens(lw_tokenizer_kind kind, const char *path, const char *golden)
{
    check_goldens(kind, path, golden, false);
}

START_TEST(smollm2_json_matches_hf)
{
    check_against_goldens(LW_TOKENIZER_BPE_JSON, tl_shared("models/smollm2-135m-instruct/tokenizer.json"),
                          "tests/golden/tokenizer/smollm2.ids");
}
END_TEST

START_TEST(smollm2_gguf_matches_hf)
{
    check_against_goldens(LW_TOKENIZER_GGUF, tl_model("SmolLM2-135M-Instruct.Q4_1.gguf"),
                          "tests/golden/tokenizer/smollm2.ids");
}
END_TEST

START_TEST(gpt2_files_match_hf)
{
    check_against_goldens(LW_TOKENIZER_GPT2_FILES, tl_shared("models/tokenizers/gpt2"),
                          "tests/golden/tokenizer/gpt2.ids");
}
END_TEST

/* SmolLM2's tokenizer.json with lstrip/rstrip/single_word on some added
 * tokens and a TemplateProcessing post-processor, made exactly as
 * make_tokenizer_goldens.py's write_variant makes it. */
static const char *make_variant(void)
{
    static char path[4096];
    json_error_t err;
    json_t *root = json_load_file(tl_shared("models/smollm2-135m-instruct/tokenizer.json"), 0, &err);
    ck_assert_msg(root != NULL, "%s", err.text);
    static const struct { const char *content, *flag; } flags[] = {
        {"<|endoftext|>", "lstrip"}, {"<|endoftext|>", "rstrip"}, {"<|im_start|>", "lstrip"},
        {"<|im_end|>", "rstrip"}, {"<repo_name>", "single_word"},
    };
    json_t *added = json_object_get(root, "added_tokens");
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            if (strcmp(json_string_value(json_object_get(a, "content")), flags[f].content) == 0)
                json_object_set_new(a, flags[f].flag, json_true());
    }
    json_t *post = json_pack("{s:s, s:[{s:{s:s,s:i}}, {s:{s:s,s:i}}, {s:{s:s,s:i}}], s:{s:{s:s,s:[i]}, s:{s:s,s:[i]}}}",
        "type", "TemplateProcessing", "single",
        "SpecialToken", "id", "<|im_start|>", "type_id", 0,
        "Sequence", "id", "A", "type_id", 0,
        "SpecialToken", "id", "<|im_end|>", "type_id", 0,
        "special_tokens", "<|im_start|>", "id", "<|im_start|>", "ids", 1, "<|im_end|>", "id", "<|im_end|>", "ids", 2);
    ck_assert_ptr_nonnull(post);
    json_object_set_new(root, "post_processor", post);
    snprintf(path, sizeof path, "%s/tokenizer.json", tl_tmpdir("variant"));
    ck_assert_int_eq(json_dump_file(root, path, 0), 0);
    json_decref(root);
    return path;
}

START_TEST(added_token_flags_and_template_match_hf)
{
    check_goldens(LW_TOKENIZER_BPE_JSON, make_variant(), "tests/golden/tokenizer/smollm2_variant.ids", true);
}
END_TEST

/* Llama 3 and Qwen2 regexes, piece by piece, against HF's Split pre-tokenizer. */
static void check_splits(lw_split_kind kind, const char *golden)
{
    corpus c = load_corpus();
    char *buf;
    int n_lines, want[100000];
    char **lines = file_lines(tl_src(golden), &buf, &n_lines);
    ck_assert_int_eq(n_lines, c.n);
    for (int i = 0; i < c.n; i++) {
        char *clean;
        size_t len;
        ck_assert_int_eq(lw_utf8_sanitize(c.strings[i].s, c.strings[i].len, &clean, &len), LW_OK);
        int n_want = parse_ints(lines[i], want, 100000), k = 0;
        for (size_t pos = 0; pos < len; k++) {
            size_t n = lw_split_next(kind, clean, pos, len);
            if (k >= n_want || (size_t)want[k] != n) {
                print_string(&c.strings[i]);
                ck_abort_msg("%s line %d: piece %d at byte %zu is %zu bytes, expected %d", golden, i + 1, k,
                             pos, n, k < n_want ? want[k] : -1);
            }
            pos += n;
        }
        ck_assert_msg(k == n_want, "%s line %d: %d pieces, expected %d", golden, i + 1, k, n_want);
        free(clean);
    }
    free(lines);
    free(buf);
    free_corpus(&c);
}

START_TEST(llama3_split_matches_hf)
{
    check_splits(LW_SPLIT_LLAMA3, "tests/golden/tokenizer/llama3.splits");
}
END_TEST

START_TEST(qwen2_split_matches_hf)
{
    check_splits(LW_SPLIT_QWEN2, "tests/golden/tokenizer/qwen2.splits");
}
END_TEST

/* Python's bytes.decode('utf-8', errors='replace'): one U+FFFD per maximal
 * invalid subpart (expected values printed by Python 3.11). */
START_TEST(invalid_utf8_is_replaced_as_python_does)
{
    static const struct { const char *in, *out; } cases[] = {
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98 x", "\xef\xbf\xbd x"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"caf\xe9", "caf\xef\xbf\xbd"},
        {"\xc3", "\xef\xbf\xbd"},
        {"\xf0\x90\x80", "\xef\xbf\xbd"},
        {"ok \xe2\x82\xac \xf0\x9f\x98\x80", "ok \xe2\x82\xac \xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        size_t len;
        ck_assert_int_eq(lw_utf8_sanitize(cases[i].in, strlen(cases[i].in), &out, &len), LW_OK);
        ck_assert_str_eq(out, cases[i].out);
        ck_assert_uint_eq(len, strlen(cases[i].out));
        free(out);
    }
}
END_TEST

static lw_tokenizer *load_smollm2(void)
{
    lw_tokenizer *tok;
    lw_status st = lw_tokenizer_load(LW_TOKENIZER_BPE_JSON,
                                     tl_shared("models/smollm2-135m-instruct/tokenizer.json"), &tok);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    return tok;
}

static int encode(const lw_tokenizer *tok, const char *s, bool add_special, int **ids)
{
    int n;
    lw_status st = lw_tokenizer_encode(tok, s, strlen(s), add_special, ids, &n);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    return n;
}

START_TEST(invalid_bytes_encode_as_replacement_char)
{
    lw_tokenizer *tok = load_smollm2();
    int *a, *b;
    int na = encode(tok, "x\xff\xfey", false, &a), nb = encode(tok, "x\xef\xbf\xbd\xef\xbf\xbdy", false, &b);
    ck_assert_int_eq(na, nb);
    ck_assert_mem_eq(a, b, (size_t)na * sizeof *a);
    free(a);
    free(b);
    /* one byte of a multi-byte character decodes to U+FFFD, as HF's lossy decode */
    int id = lw_tokenizer_piece_id(tok, "\xc3\xa2"); /* byte 0xE2 in GPT-2's byte alphabet: U+00E2 */
    ck_assert_int_ge(id, 0);
    char *text;
    ck_assert_int_eq(lw_tokenizer_decode(tok, &id, 1, &text), LW_OK);
    ck_assert_str_eq(text, "\xef\xbf\xbd");
    free(text);
    lw_tokenizer_free(tok);
}
END_TEST

/* SmolLM2 has no piece for some bytes (0x16, the lead byte 0xF1, ...); HF
 * then drops them: ids printed by tokenizers 0.23 for these strings. */
START_TEST(bytes_without_a_piece_are_dropped_as_hf_does)
{
    lw_tokenizer *tok = load_smollm2();
    static const struct { const char *text; int n; int ids[5]; const char *decoded; } cases[] = {
        {"a\x16" "b", 2, {81, 82}, "ab"},
        {"x\xf1\x90\x80\x80y", 5, {104, 234, 218, 218, 105}, "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy"},
    };
    for (int i = 0; i < 2; i++) {
        int *ids, n = encode(tok, cases[i].text, false, &ids);
        ck_assert_int_eq(n, cases[i].n);
        ck_assert_mem_eq(ids, cases[i].ids, (size_t)n * sizeof *ids);
        char *text;
        ck_assert_int_eq(lw_tokenizer_decode(tok, ids, n, &text), LW_OK);
        ck_assert_str_eq(text, cases[i].decoded);
        free(text);
        free(ids);
    }
    lw_tokenizer_free(tok);
}
END_TEST

START_TEST(smollm2_special_tokens)
{
    lw_tokenizer *tok = load_smollm2();
    ck_assert_int_eq(lw_tokenizer_vocab_size(tok), 49152);
    ck_assert_int_eq(lw_tokenizer_piece_id(tok, "<|im_start|>"), 1);
    ck_assert_int_eq(lw_tokenizer_piece_id(tok, "<|im_end|>"), 2);
    ck_assert_int_eq(lw_tokenizer_piece_id(tok, "no such piece"), -1);
    ck_assert_int_eq(lw_tokenizer_bos_id(tok), 1); /* from config.json beside tokenizer.json */
    ck_assert_int_eq(lw_tokenizer_eos_id(tok), 2);
    int *plain, *special;
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    int n = encode(tok, chat, false, &plain), n_special = encode(tok, chat, true, &special);
    ck_assert_int_eq(n, n_special); /* SmolLM2 adds nothing */
    ck_assert_int_eq(plain[0], 1);
    ck_assert_int_eq(plain[n - 1], 2);
    char *text;
    ck_assert_int_eq(lw_tokenizer_decode(tok, plain, n, &text), LW_OK);
    ck_assert_str_eq(text, chat);
    free(text);
    free(plain);
    free(special);
    int *none;
    ck_assert_int_eq(encode(tok, "", true, &none), 0);
    free(none);
    lw_tokenizer_free(tok);
}
END_TEST

START_TEST(gguf_and_gpt2_ids)
{
    lw_tokenizer *tok;
    lw_status st = lw_tokenizer_load(LW_TOKENIZER_GGUF, tl_model("SmolLM2-135M-Instruct.Q4_1.gguf"), &tok);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_tokenizer_vocab_size(tok), 49152);
    ck_assert_int_eq(lw_tokenizer_bos_id(tok), 1);
    ck_assert_int_eq(lw_tokenizer_eos_id(tok), 2);
    ck_assert_int_eq(lw_tokenizer_piece_id(tok, "<|endoftext|>"), 0);
    lw_tokenizer_free(tok);
    st = lw_tokenizer_load(LW_TOKENIZER_GPT2_FILES, tl_shared("models/tokenizers/gpt2"), &tok);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_tokenizer_vocab_size(tok), 50257);
    ck_assert_int_eq(lw_tokenizer_eos_id(tok), 50256);
    ck_assert_int_eq(lw_tokenizer_piece_id(tok, "<|endoftext|>"), 50256);
    lw_tokenizer_free(tok);
}
END_TEST

START_TEST(decode_rejects_bad_ids)
{
    lw_tokenizer *tok = load_smollm2();
    int ids[2] = {5, 49152};
    char *text;
    ck_assert_int_eq(lw_tokenizer_decode(tok, ids, 2, &text), LW_ERR_INVALID);
    ck_assert_ptr_null(text);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "49152"));
    ids[1] = -3;
    ck_assert_int_eq(lw_tokenizer_decode(tok, ids, 2, &text), LW_ERR_INVALID);
    lw_tokenizer_free(tok);
}
END_TEST

/* Long inputs stay fast: the merge loop is a heap, not quadratic. */
START_TEST(long_inputs_round_trip)
{
    lw_tokenizer *tok = load_smollm2();
    size_t n = 1 << 20;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = "ab1 \n\xc3\xa9!"[i % 8]; /* 8 bytes of valid UTF-8, repeated */
    s[n] = '\0';
    memset(s, 'a', n / 2); /* one 512 KiB word */
    int *ids, n_ids;
    ck_assert_int_eq(lw_tokenizer_encode(tok, s, n, false, &ids, &n_ids), LW_OK);
    ck_assert_int_gt(n_ids, 0);
    char *text;
    ck_assert_int_eq(lw_tokenizer_decode(tok, ids, n_ids, &text), LW_OK);
    ck_assert(strcmp(text, s) == 0);
    free(text);
    free(ids);
    free(s);
    lw_tokenizer_free(tok);
}
END_TEST

/* tokenizer.c picks the implementation from tokenizer.ggml.model. */
START_TEST(front_door_dispatches_gguf)
{
    lw_tokenizer *tok;
    const char *gemma = tl_model("gemma-3-270m-q4_k_m.gguf");
    tl_require_file(gemma);
    lw_status st = lw_tokenizer_load(LW_TOKENIZER_GGUF, gemma, &tok); /* "llama": SentencePiece */
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(lw_tokenizer_vocab_size(tok), 262144);
    lw_tokenizer_free(tok);
    ck_assert_int_ne(lw_tokenizer_load(LW_TOKENIZER_GGUF, "/nonexistent/x.gguf", &tok), LW_OK);
    ck_assert_ptr_null(tok);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "/nonexistent/x.gguf"));
    ck_assert_int_ne(lw_tokenizer_load(LW_TOKENIZER_GPT2_FILES, "/nonexistent", &tok), LW_OK);
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "/nonexistent/encoder.json"));
}
END_TEST

/* A tokenizer.json with one part changed; load must fail naming it. */
static void expect_load_error(const char *name, const char *json, lw_status code, const char *needle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", tl_tmpdir(name));
    tl_write_file(path, json);
    lw_tokenizer *tok;
    ck_assert_int_eq(lw_tokenizer_load(LW_TOKENIZER_BPE_JSON, path, &tok), code);
    ck_assert_ptr_null(tok);
    ck_assert_msg(strstr(lw_last_error(), needle) && strstr(lw_last_error(), path), "message: %s",
                  lw_last_error());
}

#define MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"
#define BYTELEVEL "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}"

START_TEST(unsupported_json_fails_clearly)
{
    expect_load_error("norm", "{\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": " BYTELEVEL
                      ", \"decoder\": " BYTELEVEL ", " MODEL "}", LW_ERR_UNSUPPORTED, "normalizer");
    expect_load_error("metaspace", "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"decoder\": " BYTELEVEL
                      ", " MODEL "}", LW_ERR_UNSUPPORTED, "pre_tokenizer: pre-tokenizer type Metaspace");
    expect_load_error("regex", "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
                      "\"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}]}, "
                      "\"decoder\": " BYTELEVEL ", " MODEL "}", LW_ERR_UNSUPPORTED,
                      "pre_tokenizer.pretokenizers[0].pattern.Regex");
    expect_load_error("prefix", "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}, "
                      "\"decoder\": " BYTELEVEL ", " MODEL "}", LW_ERR_UNSUPPORTED, "add_prefix_space");
    expect_load_error("wordpiece", "{\"pre_tokenizer\": " BYTELEVEL ", \"decoder\": " BYTELEVEL
                      ", \"model\": {\"type\": \"WordPiece\"}}", LW_ERR_UNSUPPORTED, "model.type");
    expect_load_error("merge", "{\"pre_tokenizer\": " BYTELEVEL ", \"decoder\": " BYTELEVEL
                      ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a c\"]}}",
                      LW_ERR_INVALID, "merge 0 'a c'");
    expect_load_error("badid", "{\"pre_tokenizer\": " BYTELEVEL ", \"decoder\": " BYTELEVEL
                      ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []}}",
                      LW_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("syntax", "{\"model\": ", LW_ERR_FORMAT, "tokenizer.json:");
    /* A BOM is named, not printed raw inside jansson's "near ''". */
    /* jansson opens a directory and reports "expected near end of file". */
    const char *dir = tl_tmpdir("tok_dir");
    lw_tokenizer *tok;
    ck_assert_int_eq(lw_tokenizer_load(LW_TOKENIZER_BPE_JSON, dir, &tok), LW_ERR_FORMAT);
    ck_assert_msg(strstr(lw_last_error(), "is a directory, expected a JSON file"), "%s", lw_last_error());
    expect_load_error("bom", "\xEF\xBB\xBF{\"model\": {}}", LW_ERR_FORMAT,
                      "tokenizer.json:1: starts with a UTF-8 byte-order mark (EF BB BF); save the file without it");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer_bpe");
    TCase *tc = tcase_create("goldens");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, smollm2_json_matches_hf);
    tcase_add_test(tc, smollm2_gguf_matches_hf);
    tcase_add_test(tc, gpt2_files_match_hf);
    tcase_add_test(tc, added_token_flags_and_template_match_hf);
    tcase_add_test(tc, llama3_split_matches_hf);
    tcase_add_test(tc, qwen2_split_matches_hf);
    tcase_add_test(tc, invalid_utf8_is_replaced_as_python_does);
    tcase_add_test(tc, invalid_bytes_encode_as_replacement_char);
    tcase_add_test(tc, bytes_without_a_piece_are_dropped_as_hf_does);
    tcase_add_test(tc, smollm2_special_tokens);
    tcase_add_test(tc, gguf_and_gpt2_ids);
    tcase_add_test(tc, decode_rejects_bad_ids);
    tcase_add_test(tc, long_inputs_round_trip);
    tcase_add_test(tc, unsupported_json_fails_clearly);
    tcase_add_test(tc, front_door_dispatches_gguf);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
