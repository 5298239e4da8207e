/* The soft-token message (wire.h): XXH64 against the reference values,
 * every dtype written and read back, each field of a damaged or hostile
 * message refused with a message naming it, framing in a stream, and the
 * identity check (wire_identity.h). */
#include "testlib.h"
#include "dequant.h"
#include "op_matmul_bf16.h"
#include "wire.h"
#include "wire_identity.h"
#include "xxhash64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M = 3, W = 5 };

/* The reference implementation's sanity buffer (xxhsum's BMK_sanityCheck):
 * byte i = top byte of a generator squared each step from 2654435761. */
START_TEST(xxh64_reference_values)
{
    unsigned char b[101];
    uint32_t g = 2654435761U, prime = 2654435761U;
    for (int i = 0; i < 101; i++) b[i] = (unsigned char)(g >> 24), g *= g;
    ck_assert_uint_eq(lw_xxh64(NULL, 0, 0), 0xEF46DB3751D8E999ULL);
    ck_assert_uint_eq(lw_xxh64(NULL, 0, prime), 0xAC75FDA2929B17EFULL);
    ck_assert_uint_eq(lw_xxh64(b, 1, 0), 0x4FCE394CC88952D8ULL);
    ck_assert_uint_eq(lw_xxh64(b, 1, prime), 0x739840CB819FA723ULL);
    ck_assert_uint_eq(lw_xxh64(b, 14, 0), 0xCFFA8DB881BC3A3DULL);
    ck_assert_uint_eq(lw_xxh64(b, 14, prime), 0x5B9611585EFCC9CBULL);
    ck_assert_uint_eq(lw_xxh64(b, 101, 0), 0x0EAB543384F878ADULL);   /* the 32-byte stripes */
    ck_assert_uint_eq(lw_xxh64(b, 101, prime), 0xCAA65939306F1E21ULL);
    /* the strings of the xxHash documentation and bindings */
    ck_assert_uint_eq(lw_xxh64("a", 1, 0), 0xD24EC4F1A98C6E5BULL);
    ck_assert_uint_eq(lw_xxh64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
    const char *s = "Nobody inspects the spammish repetition";
    ck_assert_uint_eq(lw_xxh64(s, strlen(s), 0), 0xFBCEA83C8A378BF1ULL);
}
END_TEST

static lw_wire_message header(lw_wire_dtype d)
{
    lw_wire_message h = {.seq = 0x0102030405060708ULL, .sender_layer = 20, .M = M, .width = W, .dtype = d};
    strcpy(h.id.pair, "a_to_b.v1");
    strcpy(h.id.task, "sst2");
    h.id.bridge = 0x1111111111111111ULL;
    h.id.sender_weights = 2, h.id.sender_tokenizer = 3, h.id.receiver_weights = 0, h.id.receiver_tokenizer = 5;
    return h;
}

static void values(float *x)
{
    for (int i = 0; i < M * W; i++) x[i] = (float)sin(1.7 * i + 0.3) * (float)(i + 1) * 0.37f;
    x[2] = 0.0f;
}

static uint8_t *encode(lw_wire_dtype d, const float *x, size_t *len)
{
    lw_wire_message h = header(d);
    uint8_t *b;
    ck_assert_msg(lw_wire_encode(&h, x, &b, len) == LW_OK, "%s", lw_last_error());
    return b;
}

START_TEST(fp32_round_trip_is_exact)
{
    float x[M * W];
    values(x);
    size_t len;
    uint8_t *b = encode(LW_WIRE_FP32, x, &len);
    ck_assert_uint_eq(len, LW_WIRE_HEADER_BYTES + 4 * M * W + 8);
    ck_assert_int_eq(memcmp(b, "\x89LWSOFT\n", 8), 0);
    ck_assert_int_eq(b[8] | b[9] << 8, 1);   /* version, little-endian */
    lw_wire_message m;
    ck_assert_msg(lw_wire_decode(b, len, &m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(memcmp(m.soft, x, sizeof x), 0);
    lw_wire_message h = header(LW_WIRE_FP32);
    ck_assert_uint_eq(m.seq, h.seq);
    ck_assert_int_eq(memcmp(&m.id, &h.id, sizeof h.id), 0);
    ck_assert_int_eq(m.sender_layer, 20);
    ck_assert_int_eq(m.M, M);
    ck_assert_int_eq(m.width, W);
    ck_assert_int_eq(m.dtype, LW_WIRE_FP32);
    ck_assert_uint_eq(m.checksum, lw_xxh64(b, len - 8, 0));
    lw_wire_message_free(&m);
    free(b);
}
END_TEST

START_TEST(bf16_and_fp16_round_as_ieee)
{
    float x[M * W];
    values(x);
    /* fp16 cases: one, the largest half, the smallest subnormal, 1/3, and
     * ties to even, normal (1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> 1 + 2^-9) and
     * subnormal (3 * 2^-25 -> 2 units of 2^-24) */
    const float cases[7] = {1.0f, -65504.0f, 0x1p-24f, 1.0f / 3.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f,
                            3 * 0x1p-25f};
    const uint16_t want[7] = {0x3C00, 0xFBFF, 0x0001, 0x3555, 0x3C00, 0x3C02, 0x0002};
    memcpy(x, cases, sizeof cases);
    size_t len;
    uint8_t *b = encode(LW_WIRE_FP16, x, &len);
    ck_assert_uint_eq(len, LW_WIRE_HEADER_BYTES + 2 * M * W + 8);
    for (int i = 0; i < 7; i++) {
        uint16_t h = (uint16_t)(b[LW_WIRE_HEADER_BYTES + 2 * i] | b[LW_WIRE_HEADER_BYTES + 2 * i + 1] << 8);
        ck_assert_msg(h == want[i], "fp16 of %a: %04x, want %04x", cases[i], h, want[i]);
    }
    lw_wire_message m;
    ck_assert_int_eq(lw_wire_decode(b, len, &m), LW_OK);
    for (int i = 0; i < M * W; i++) {
        uint16_t h = (uint16_t)(b[LW_WIRE_HEADER_BYTES + 2 * i] | b[LW_WIRE_HEADER_BYTES + 2 * i + 1] << 8);
        ck_assert(m.soft[i] == lw_fp16_to_f32(h));
        ck_assert(fabsf(m.soft[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f + 0x1p-25f);   /* half an ulp */
    }
    lw_wire_message_free(&m);
    free(b);

    b = encode(LW_WIRE_BF16, x, &len);
    ck_assert_int_eq(lw_wire_decode(b, len, &m), LW_OK);
    for (int i = 0; i < M * W; i++) ck_assert(m.soft[i] == lw_f32_from_bf16(lw_bf16_from_f32(x[i])));
    lw_wire_message_free(&m);
    free(b);
}
END_TEST

START_TEST(int8_per_token_scales)
{
    float x[M * W];
    values(x);
    for (int k = 0; k < W; k++) x[W + k] = 0.0f;   /* a zero token: scale 0 */
    size_t len;
    uint8_t *b = encode(LW_WIRE_INT8, x, &len);
    ck_assert_uint_eq(len, LW_WIRE_HEADER_BYTES + 4 * M + M * W + 8);
    lw_wire_message m;
    ck_assert_int_eq(lw_wire_decode(b, len, &m), LW_OK);
    for (int t = 0; t < M; t++) {
        float amax = 0.0f, scale;
        for (int k = 0; k < W; k++) amax = fmaxf(amax, fabsf(x[t * W + k]));
        memcpy(&scale, b + LW_WIRE_HEADER_BYTES + 4 * t, 4);
        ck_assert(scale == amax / 127.0f);
        bool hit = amax == 0.0f;   /* the largest value maps to +-127 */
        for (int k = 0; k < W; k++) {
            int8_t q = (int8_t)b[LW_WIRE_HEADER_BYTES + 4 * M + t * W + k];
            ck_assert(m.soft[t * W + k] == (float)q * scale);
            ck_assert(fabsf(m.soft[t * W + k] - x[t * W + k]) <= 0.5f * scale * (1 + 1e-6f));
            hit = hit || q == 127 || q == -127;
        }
        ck_assert(hit);
    }
    lw_wire_message_free(&m);
    free(b);
}
END_TEST

static void refused_on_write(lw_wire_message h, const float *x, const char *words)
{
    uint8_t *b = (uint8_t *)1;
    size_t len = 1;
    ck_assert_int_ne(lw_wire_encode(&h, x, &b, &len), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), words), "'%s' lacks '%s'", lw_last_error(), words);
    ck_assert_ptr_null(b);
    ck_assert_uint_eq(len, 0);
}

START_TEST(writer_refuses_what_a_reader_would)
{
    float x[M * W];
    values(x);
    lw_wire_message h = header(LW_WIRE_FP32);
    h.M = 0, refused_on_write(h, x, "M = 0");
    h = header(LW_WIRE_FP32), h.M = LW_WIRE_MAX_M + 1, refused_on_write(h, x, "soft tokens");
    h = header(LW_WIRE_FP32), h.width = 0, refused_on_write(h, x, "width 0");
    h = header(LW_WIRE_FP32), h.dtype = (lw_wire_dtype)9, refused_on_write(h, x, "dtype 9");
    h = header(LW_WIRE_FP32), h.sender_layer = -1, refused_on_write(h, x, "sender layer");
    h = header(LW_WIRE_FP32), strcpy(h.id.pair, "a b"), refused_on_write(h, x, "pair name");
    h = header(LW_WIRE_FP32), h.id.task[0] = 0, refused_on_write(h, x, "task name");
    h = header(LW_WIRE_FP32), strcpy(h.id.task, "a.b"), refused_on_write(h, x, "task name");
    float y[M * W];
    memcpy(y, x, sizeof y);
    y[7] = NAN, refused_on_write(header(LW_WIRE_INT8), y, "soft token 1, value 2 is not finite");
    y[7] = INFINITY, refused_on_write(header(LW_WIRE_FP32), y, "not finite");
    y[7] = 70000.0f, refused_on_write(header(LW_WIRE_FP16), y, "beyond fp16");
    uint8_t *b;
    size_t len;
    ck_assert_int_eq(lw_wire_encode(&(lw_wire_message){0}, x, &b, &len) != LW_OK, 1);   /* all zero */
    lw_wire_message ok = header(LW_WIRE_BF16);
    ck_assert_int_eq(lw_wire_encode(&ok, y, &b, &len), LW_OK);   /* 70000 is fine in bf16 */
    free(b);
}
END_TEST

/* Writes the checksum a sender would have, so the damage tested is the
 * field's, not the checksum's. */
static void reseal(uint8_t *b, size_t len)
{
    uint64_t h = lw_xxh64(b, len - 8, 0);
    for (int i = 0; i < 8; i++) b[len - 8 + i] = (uint8_t)(h >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void refused(const uint8_t *b, size_t len, const char *words)
{
    lw_wire_message m;
    memset(&m, 0x5a, sizeof m);
    lw_fail(LW_OK, "%s", "");
    ck_assert_int_ne(lw_wire_decode(b, len, &m), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), words), "'%s' lacks '%s'", lw_last_error(), words);
    ck_assert_ptr_null(m.soft);
}

START_TEST(reader_names_each_bad_field)
{
    float x[M * W];
    values(x);
    size_t len;
    uint8_t *good = encode(LW_WIRE_FP32, x, &len), *b = malloc(len + 8);
#define DAMAGE(stmt, words, seal)     \
    do {                              \
        memcpy(b, good, len);         \
        stmt;                         \
        if (seal) reseal(b, len);     \
        refused(b, len, words);       \
    } while (0)
    DAMAGE(b[0] = 'X', "magic", 0);
    DAMAGE(b[8] = 2, "version 2", 0);
    DAMAGE(b[10] = 1, "flags 0x0001", 0);
    DAMAGE(put32(b + 12, 5), "total_bytes 5", 0);
    DAMAGE(put32(b + 12, 0xffffffffu), "total_bytes 4294967295", 0);
    DAMAGE(put32(b + 12, (uint32_t)len + 4), "its header says", 0);
    DAMAGE(b[LW_WIRE_HEADER_BYTES + 5] ^= 0x10, "checksum", 0);
    DAMAGE(b[len - 1] ^= 1, "checksum", 0);
    DAMAGE(put32(b + 68, 0), "M = 0", 1);
    DAMAGE(put32(b + 68, 65), "M = 65", 1);
    DAMAGE(put32(b + 68, 0x80000000u), "M = 2147483648", 1);
    DAMAGE(put32(b + 68, 2), "need", 1);   /* in range, but not the size sent */
    DAMAGE(put32(b + 72, 0), "width 0", 1);
    DAMAGE(put32(b + 72, 1u << 20), "width 1048576", 1);
    DAMAGE(put32(b + 64, 5000), "sender layer 5000", 1);
    DAMAGE(b[76] = 0, "dtype 0", 1);
    DAMAGE(b[76] = 5, "dtype 5", 1);
    DAMAGE(b[76] = 2, "need", 1);   /* bf16 of this size is half the bytes */
    DAMAGE(b[78] = 1, "77..79", 1);
    DAMAGE(b[80 + 2] = '/', "pair name", 1);
    DAMAGE(memset(b + 80, 0, 64), "pair name", 1);
    DAMAGE(memset(b + 80, 'a', 64), "pair name", 1);           /* no NUL */
    DAMAGE(b[144 + 40] = 'x', "task name", 1);                 /* not NUL-padded */
    DAMAGE(b[144 + 1] = '.', "task name", 1);
    float nan = NAN;
    DAMAGE(memcpy(b + LW_WIRE_HEADER_BYTES + 4 * 6, &nan, 4), "soft token 1, value 1 is not finite", 1);
    refused(good, 7, "shorter than");
    refused(good, len - 1, "its header says");
    memcpy(b, good, len);
    memset(b + len, 0, 8);
    refused(b, len + 8, "its header says");   /* two messages run together */

    /* int8: a scale that is negative or not finite, and -128 */
    free(good);
    good = encode(LW_WIRE_INT8, x, &len);
    float neg = -1.0f, inf = INFINITY;
    DAMAGE(memcpy(b + LW_WIRE_HEADER_BYTES + 4, &neg, 4), "int8 scale -1", 1);
    DAMAGE(memcpy(b + LW_WIRE_HEADER_BYTES + 8, &inf, 4), "soft token 2: int8 scale inf", 1);
    DAMAGE(b[LW_WIRE_HEADER_BYTES + 4 * M + 3] = 0x80, "-128", 1);
    /* fp16: an infinity */
    free(good);
    good = encode(LW_WIRE_FP16, x, &len);
    DAMAGE((b[LW_WIRE_HEADER_BYTES] = 0x00, b[LW_WIRE_HEADER_BYTES + 1] = 0x7c), "not finite", 1);
#undef DAMAGE
    free(good);
    free(b);
}
END_TEST

START_TEST(frames_in_a_stream)
{
    float x[M * W];
    values(x);
    size_t l1, l2;
    uint8_t *a = encode(LW_WIRE_FP32, x, &l1), *c = encode(LW_WIRE_INT8, x, &l2);
    char path[4200];
    snprintf(path, sizeof path, "%s/stream.bin", tl_tmpdir("wire-stream"));
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(lw_wire_write_frame(f, path, a, l1), LW_OK);
    ck_assert_int_eq(lw_wire_write_frame(f, path, c, l2), LW_OK);
    fclose(f);
    f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    ck_assert_int_eq(lw_wire_read_frame(f, path, &buf, &cap, &len), LW_OK);
    ck_assert(len == l1 && !memcmp(buf, a, l1));
    ck_assert_int_eq(lw_wire_read_frame(f, path, &buf, &cap, &len), LW_OK);
    ck_assert(len == l2 && !memcmp(buf, c, l2));
    ck_assert_int_eq(lw_wire_read_frame(f, path, &buf, &cap, &len), LW_OK);
    ck_assert_uint_eq(len, 0);   /* a clean end */
    fclose(f);

    /* cut inside the prefix, inside the body; and a stream of something else */
    size_t cuts[2] = {9, l1 - 3};
    const char *words[2] = {"ends 9 bytes into", "cut short"};
    for (int i = 0; i < 2; i++) {
        f = fopen(path, "wb");
        fwrite(a, 1, cuts[i], f);
        fclose(f);
        f = fopen(path, "rb");
        ck_assert_int_ne(lw_wire_read_frame(f, path, &buf, &cap, &len), LW_OK);
        ck_assert_msg(strstr(lw_last_error(), words[i]), "%s", lw_last_error());
        fclose(f);
    }
    f = fopen(path, "wb");
    fputs("{\"text\": \"not a message at all\"}\n", f);
    fclose(f);
    f = fopen(path, "rb");
    ck_assert_int_ne(lw_wire_read_frame(f, path, &buf, &cap, &len), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "not a soft-token message"), "%s", lw_last_error());
    fclose(f);
    free(buf);
    free(a);
    free(c);
}
END_TEST

START_TEST(identity_refusals_name_what_differs)
{
    lw_manifest m;
    memset(&m, 0, sizeof m);
    strcpy(m.receiver.weights_path, "models/r.gguf");
    strcpy(m.receiver.tokenizer_path, "models/r.gguf");
    strcpy(m.sender.weights_path, "models/s.bin");
    strcpy(m.sender.tokenizer_path, "models/tok.bin");
    lw_wire_identity mine = header(LW_WIRE_FP32).id, msg = mine;
    ck_assert_int_eq(lw_wire_identity_check(&msg, &mine, &m, "run/final/bridge.safetensors"), LW_OK);
    msg.bridge ^= 1;
    ck_assert_int_ne(lw_wire_identity_check(&msg, &mine, &m, "run/final/bridge.safetensors"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "another bridge") && strstr(lw_last_error(), "run/final/bridge.safetensors"),
                  "%s", lw_last_error());
    msg = mine;
    msg.receiver_tokenizer = 99;
    ck_assert_int_ne(lw_wire_identity_check(&msg, &mine, &m, "b"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "receiver tokenizer file") && strstr(lw_last_error(), "models/r.gguf"),
                  "%s", lw_last_error());
    msg = mine;
    msg.sender_tokenizer = 0;   /* the writer did not know it: not compared */
    msg.receiver_weights = 77;  /* this side does not know it (0): not compared */
    ck_assert_int_eq(lw_wire_identity_check(&msg, &mine, &m, "b"), LW_OK);
    msg = mine;
    strcpy(msg.pair, "other_pair");
    ck_assert_int_ne(lw_wire_identity_check(&msg, &mine, &m, "b"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "pair other_pair"), "%s", lw_last_error());
    msg = mine;
    strcpy(msg.task, "agnews");
    ck_assert_int_ne(lw_wire_identity_check(&msg, &mine, &m, "b"), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "task agnews"), "%s", lw_last_error());
}
END_TEST

START_TEST(file_hash_is_xxh64_of_the_bytes)
{
    const char *dir = tl_tmpdir("wire-hash");
    char path[4200];
    snprintf(path, sizeof path, "%s/f", dir);
    tl_write_file(path, "abc");
    uint64_t h;
    ck_assert_int_eq(lw_wire_hash_file(path, &h), LW_OK);
    ck_assert_uint_eq(h, 0x44BC2CF5AD770999ULL);
    tl_write_file(path, "");
    ck_assert_int_eq(lw_wire_hash_file(path, &h), LW_OK);
    ck_assert_uint_eq(h, 0xEF46DB3751D8E999ULL);
    snprintf(path, sizeof path, "%s/missing", dir);
    ck_assert_int_ne(lw_wire_hash_file(path, &h), LW_OK);
    ck_assert_msg(strstr(lw_last_error(), "missing"), "%s", lw_last_error());
    ck_assert_int_ne(lw_wire_hash_file(dir, &h), LW_OK);   /* a folder */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, xxh64_reference_values);
    tcase_add_test(tc, fp32_round_trip_is_exact);
    tcase_add_test(tc, bf16_and_fp16_round_as_ieee);
    tcase_add_test(tc, int8_per_token_scales);
    tcase_add_test(tc, writer_refuses_what_a_reader_would);
    tcase_add_test(tc, reader_names_each_bad_field);
    tcase_add_test(tc, frames_in_a_stream);
    tcase_add_test(tc, identity_refusals_name_what_differs);
    tcase_add_test(tc, file_hash_is_xxh64_of_the_bytes);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
