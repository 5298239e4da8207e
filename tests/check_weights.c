/* runtime/io/weights.h over GGUF, llama2.c and safetensors: the configs of the
 * real files, canonical names and PyTorch-order shapes, row access, the
 * embedding RMS, and errors that name the file and the tensor or field. */
#include "testlib.h"
#include "weights.h"
#include "fileutil.h"
#include "gguf.h"
#include "gguf_builder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf";
static const char *GEMMA = "gemma-3-270m-q4_k_m.gguf";

static lw_weights *open_ok(const char *path, lw_weights_format fmt)
{
    tl_require_file(path);
    lw_weights *w = NULL;
    ck_assert_msg(lw_weights_open(path, fmt, &w) == LW_OK, "%s", lw_last_error());
    return w;
}

static lw_weights *open_stories(void)
{
    return open_ok(tl_shared("models/stories260k/stories260K.bin"), LW_WEIGHTS_LLAMA2C);
}

static void expect_error(lw_status got, lw_status want, const char *a, const char *b)
{
    ck_assert_msg(got == want, "status %d (%s), expected %d; message: %s", got, lw_status_name(got), want,
                  lw_last_error());
    ck_assert_msg(strstr(lw_last_error(), a), "message '%s' does not name '%s'", lw_last_error(), a);
    if (b) ck_assert_msg(strstr(lw_last_error(), b), "message '%s' does not name '%s'", lw_last_error(), b);
}

/* --- configs of the real files --------------------------------------------- */

START_TEST(smollm2_config)
{
    lw_weights *w = open_ok(tl_model(SMOL), LW_WEIGHTS_GGUF);
    lw_model_config m;
    memset(&m, 0, sizeof m);
    ck_assert_msg(lw_weights_read_config(w, &m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(m.family, LW_FAMILY_LLAMA);
    ck_assert_int_eq(m.hidden, 576);
    ck_assert_int_eq(m.n_layers, 30);
    ck_assert_int_eq(m.n_heads, 9);
    ck_assert_int_eq(m.n_kv_heads, 3);
    ck_assert_int_eq(m.head_dim, 64);
    ck_assert_int_eq(m.ffn, 1536);
    ck_assert_int_eq(m.vocab, 49152);
    ck_assert_float_eq(m.rope_base, 100000.0f);
    ck_assert_float_eq(m.rope_base_local, 100000.0f);
    ck_assert(fabsf(m.norm_eps - 1e-5f) < 1e-9f);
    ck_assert_int_eq(m.activation, LW_ACT_SILU);
    ck_assert_int_eq(m.norm, LW_NORM_RMSNORM);
    ck_assert(m.tied_embeddings && !m.qk_norm && !m.post_norms && !m.scale_embeddings);
    ck_assert_int_eq(m.sliding_window, 0);
    ck_assert_int_eq(m.bos_id, 1);
    ck_assert_int_eq(m.eos_id, 2);
    ck_assert_int_eq(m.n_stop_ids, 1);
    ck_assert_int_eq(m.stop_ids[0], 2);   /* <|im_end|> */
    ck_assert_int_eq(m.weights_format, LW_WEIGHTS_GGUF);
    lw_weights_close(w);
}
END_TEST

START_TEST(gemma3_config)
{
    lw_weights *w = open_ok(tl_model(GEMMA), LW_WEIGHTS_GGUF);
    lw_model_config m;
    memset(&m, 0, sizeof m);
    ck_assert_msg(lw_weights_read_config(w, &m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(m.family, LW_FAMILY_GEMMA3);
    ck_assert_int_eq(m.hidden, 640);
    ck_assert_int_eq(m.n_layers, 18);
    ck_assert_int_eq(m.n_heads, 4);
    ck_assert_int_eq(m.n_kv_heads, 1);
    ck_assert_int_eq(m.head_dim, 256);
    ck_assert_int_eq(m.ffn, 2048);
    ck_assert_int_eq(m.vocab, 262144);
    ck_assert_float_eq(m.rope_base, 1000000.0f);
    ck_assert_float_eq(m.rope_base_local, 10000.0f);
    ck_assert_int_eq(m.sliding_window, 512);
    ck_assert_int_eq(m.global_every, 6);
    ck_assert(m.qk_norm && m.post_norms && m.scale_embeddings && m.tied_embeddings);
    ck_assert_int_eq(m.activation, LW_ACT_GELU_TANH);
    /* GGUF stores Gemma norm weights as 1 + w: plain RMSNorm applies them. */
    ck_assert_int_eq(m.norm, LW_NORM_RMSNORM);
    ck_assert_int_eq(m.bos_id, 2);
    ck_assert_int_eq(m.eos_id, 1);
    ck_assert_int_eq(m.n_stop_ids, 1);   /* <end_of_turn> */
    lw_weights_close(w);
}
END_TEST

START_TEST(stories260k_config_and_tensors)
{
    lw_weights *w = open_stories();
    lw_model_config m;
    memset(&m, 0, sizeof m);
    ck_assert_msg(lw_weights_read_config(w, &m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(m.family, LW_FAMILY_LLAMA2C);
    ck_assert_int_eq(m.hidden, 64);
    ck_assert_int_eq(m.n_layers, 5);
    ck_assert_int_eq(m.n_heads, 8);
    ck_assert_int_eq(m.n_kv_heads, 4);
    ck_assert_int_eq(m.head_dim, 8);
    ck_assert_int_eq(m.ffn, 172);
    ck_assert_int_eq(m.vocab, 512);
    ck_assert_int_eq(m.context, 512);
    ck_assert(m.tied_embeddings);
    ck_assert_int_eq(m.weights_format, LW_WEIGHTS_LLAMA2C);
    ck_assert_uint_eq(lw_weights_n_tensors(w), 2 + 9 * 5);

    /* Slices sit where run.c reads them: check against the raw file. */
    size_t len;
    char *raw = tl_read_file(tl_shared("models/stories260k/stories260K.bin"), &len);
    ck_assert_ptr_nonnull(raw);
    const float *f = (const float *)(raw + 28);
    int64_t dim = 64, hid = 172, kv = 32, L = 5, V = 512;
    float *x;
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "token_embd.weight", &x, V, dim), LW_OK);
    ck_assert(memcmp(x, f, (size_t)(V * dim) * 4) == 0);
    free(x);
    int64_t wk_at = V * dim + L * dim + L * dim * dim;   /* after embeddings, rms_att, wq */
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.2.attn_k.weight", &x, kv, dim), LW_OK);
    ck_assert(memcmp(x, f + wk_at + 2 * kv * dim, (size_t)(kv * dim) * 4) == 0);
    free(x);
    int64_t w2_at = wk_at + 2 * L * kv * dim + L * dim * dim + L * dim + L * hid * dim;
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.4.ffn_down.weight", &x, dim, hid), LW_OK);
    ck_assert(memcmp(x, f + w2_at + 4 * dim * hid, (size_t)(dim * hid) * 4) == 0);
    free(x);
    int64_t final_at = w2_at + 2 * L * dim * hid;
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "output_norm.weight", &x, dim, 0), LW_OK);
    ck_assert(memcmp(x, f + final_at, (size_t)dim * 4) == 0);
    free(x);
    ck_assert(!lw_weights_has(w, "output.weight"));
    free(raw);
    lw_weights_close(w);
}
END_TEST

START_TEST(gguf_shapes_are_pytorch_order)
{
    lw_weights *w = open_ok(tl_model(GEMMA), LW_WEIGHTS_GGUF);
    lw_tensor_info info;
    ck_assert_int_eq(lw_weights_info(w, "blk.0.attn_q.weight", &info), LW_OK);
    ck_assert_int_eq(info.ndim, 2);
    ck_assert_int_eq(info.shape[0], 1024);
    ck_assert_int_eq(info.shape[1], 640);
    ck_assert_str_eq(info.dtype, "Q5_0");
    float *x;
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.ffn_down.weight", &x, 640, 2048), LW_OK);
    /* Row access gives the same values as the whole tensor. */
    float row[2 * 2048];
    ck_assert_int_eq(lw_weights_get_rows(w, "blk.0.ffn_down.weight", 300, 2, row), LW_OK);
    ck_assert(memcmp(row, x + 300 * 2048, sizeof row) == 0);
    free(x);
    /* Gemma norms as stored (1 + w): centred well away from 0. */
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.attn_norm.weight", &x, 640, 0), LW_OK);
    double mean = 0;
    for (int i = 0; i < 640; i++) mean += x[i] / 640.0;
    ck_assert(mean > 1.0);
    free(x);
    expect_error(lw_weights_get_rows(w, "token_embd.weight", 262143, 2, row), LW_ERR_INVALID, "token_embd.weight",
                 "out of range");
    lw_weights_close(w);
}
END_TEST

static double golden_rms(const char *file)
{
    char *text = tl_read_file(tl_src("tests/golden/dequant/dequant_goldens.txt"), NULL);
    ck_assert_ptr_nonnull(text);
    char key[300];
    snprintf(key, sizeof key, "embed_rms %s ", file);
    char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "no embed_rms golden for %s", file);
    double v = strtod(p + strlen(key), NULL);
    free(text);
    return v;
}

START_TEST(embed_rms_matches_numpy)
{
    const char *files[] = {SMOL, GEMMA, "stories260K.bin"};
    for (int i = 0; i < 3; i++) {
        lw_weights *w = i < 2 ? open_ok(tl_model(files[i]), LW_WEIGHTS_GGUF) : open_stories();
        lw_model_config m;
        memset(&m, 0, sizeof m);
        ck_assert_int_eq(lw_weights_read_config(w, &m), LW_OK);
        float rms;
        ck_assert_msg(lw_weights_embed_rms(w, &m, &rms) == LW_OK, "%s", lw_last_error());
        double want = golden_rms(files[i]);
        ck_assert_msg(fabs(rms - want) < 1e-6 * want, "%s: rms %.9g, numpy %.9g", files[i], rms, want);
        lw_weights_close(w);
    }
}
END_TEST

/* --- errors ---------------------------------------------------------------- */

START_TEST(missing_tensor_and_shape_mismatch)
{
    lw_weights *w = open_ok(tl_model(SMOL), LW_WEIGHTS_GGUF);
    float *x = (float *)1;
    expect_error(lw_weights_get_f32(w, "blk.99.attn_q.weight", &x, NULL), LW_ERR_INVALID, SMOL,
                 "blk.99.attn_q.weight");
    ck_assert_ptr_null(x);
    expect_error(lw_weights_get_f32_shaped(w, "blk.0.attn_k.weight", &x, 576, 192), LW_ERR_INVALID, SMOL,
                 "blk.0.attn_k.weight");
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "[192, 576]"));
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "[576, 192]"));
    expect_error(lw_weights_get_f32_shaped(w, "output_norm.weight", &x, 576, 1), LW_ERR_INVALID, "output_norm", NULL);
    lw_weights_close(w);

    lw_weights *s = open_stories();
    expect_error(lw_weights_get_f32(s, "output.weight", &x, NULL), LW_ERR_INVALID, "stories260K.bin", "output.weight");
    lw_weights_close(s);
}
END_TEST

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The real SmolLM2 header (metadata + tensor infos, no data) cut short. */
START_TEST(truncated_real_gguf)
{
    size_t len;
    const void *map;
    tl_require_file(tl_model(SMOL));
    ck_assert_int_eq(lw_file_map(tl_model(SMOL), &map, &len), LW_OK);
    const char *whole = map;
    lw_gguf *g;
    ck_assert_int_eq(lw_gguf_parse(whole, len, SMOL, &g), LW_OK);
    size_t header_end = (size_t)((const char *)lw_gguf_tensor_at(g, 0)->data - whole);
    lw_gguf_close(g);
    const char *dir = tl_tmpdir("weights_truncated");
    size_t cuts[] = {2, 6, 20, 24 + 5, 1000, 300000, header_end / 2, header_end - 1, header_end + 1000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/cut%zu.gguf", dir, cuts[i]);
        write_bytes(path, whole, cuts[i]);
        lw_weights *w = NULL;
        lw_status st = lw_weights_open(path, LW_WEIGHTS_GGUF, &w);
        ck_assert_ptr_null(w);
        expect_error(st, LW_ERR_FORMAT, path, NULL);
        ck_assert_msg(strstr(lw_last_error(), "truncated") || strstr(lw_last_error(), "past the end"),
                      "cut %zu: %s", cuts[i], lw_last_error());
    }
    /* Cut in the tensor data: the message names the first tensor that no longer fits. */
    char path[512];
    snprintf(path, sizeof path, "%s/cut_data.gguf", dir);
    write_bytes(path, whole, header_end + 1000);
    lw_weights *w = NULL;
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_FORMAT, path, ".weight");
    lw_file_unmap(map, len);
}
END_TEST

START_TEST(bad_magic_version_and_offsets)
{
    const char *dir = tl_tmpdir("weights_crafted");
    char path[512];
    lw_weights *w = NULL;

    snprintf(path, sizeof path, "%s/magic.gguf", dir);
    write_bytes(path, "GGML\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_FORMAT, path, "magic");

    gb_buf b = {0};
    gb_header(&b, 1, 0, 0);
    snprintf(path, sizeof path, "%s/version.gguf", dir);
    write_bytes(path, b.p, b.n);
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_UNSUPPORTED, path, "version 1");
    free(b.p);

    b = (gb_buf){0};   /* the second tensor's offset points past the data */
    gb_header(&b, 3, 2, 0);
    gb_tensor2(&b, "blk.0.attn_q.weight", 4, 2, LW_GGML_F32, 0);
    gb_tensor2(&b, "blk.0.attn_k.weight", 4, 2, LW_GGML_F32, 4096);
    gb_align(&b, 32);
    for (int i = 0; i < 16; i++) gb_f32(&b, 1.0f);
    snprintf(path, sizeof path, "%s/offset.gguf", dir);
    write_bytes(path, b.p, b.n);
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_FORMAT, path, "blk.0.attn_k.weight");
    free(b.p);

    b = (gb_buf){0};   /* a misaligned offset */
    gb_header(&b, 3, 1, 0);
    gb_tensor2(&b, "blk.0.attn_v.weight", 4, 2, LW_GGML_F32, 4);
    gb_align(&b, 32);
    for (int i = 0; i < 16; i++) gb_f32(&b, 1.0f);
    snprintf(path, sizeof path, "%s/align.gguf", dir);
    write_bytes(path, b.p, b.n);
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_FORMAT, path, "blk.0.attn_v.weight");
    free(b.p);

    b = (gb_buf){0};   /* a type this build cannot convert: opens, fails on read */
    gb_header(&b, 3, 1, 0);
    gb_tensor2(&b, "blk.0.ffn_up.weight", 256, 1, LW_GGML_Q2_K, 0);
    gb_align(&b, 32);
    for (int i = 0; i < 84; i++) gb_u8(&b, 0);
    snprintf(path, sizeof path, "%s/q2k.gguf", dir);
    write_bytes(path, b.p, b.n);
    ck_assert_int_eq(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_OK);
    float *x;
    expect_error(lw_weights_get_f32(w, "blk.0.ffn_up.weight", &x, NULL), LW_ERR_UNSUPPORTED, path, "Q2_K");
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "blk.0.ffn_up.weight"));
    lw_model_config m;
    memset(&m, 0, sizeof m);
    expect_error(lw_weights_read_config(w, &m), LW_ERR_INVALID, path, "general.architecture");
    lw_weights_close(w);
    free(b.p);

    snprintf(path, sizeof path, "%s/nothere.gguf", dir);
    expect_error(lw_weights_open(path, LW_WEIGHTS_GGUF, &w), LW_ERR_IO, path, NULL);
}
END_TEST

START_TEST(truncated_llama2c)
{
    const char *dir = tl_tmpdir("weights_llama2c");
    size_t len;
    char *raw = tl_read_file(tl_shared("models/stories260k/stories260K.bin"), &len);
    ck_assert_ptr_nonnull(raw);
    char path[512];
    lw_weights *w = NULL;
    snprintf(path, sizeof path, "%s/short.bin", dir);
    write_bytes(path, raw, 20);
    expect_error(lw_weights_open(path, LW_WEIGHTS_LLAMA2C, &w), LW_ERR_FORMAT, path, "header");
    write_bytes(path, raw, len - 4);
    expect_error(lw_weights_open(path, LW_WEIGHTS_LLAMA2C, &w), LW_ERR_FORMAT, path, "truncated");
    write_bytes(path, raw, 200000);
    expect_error(lw_weights_open(path, LW_WEIGHTS_LLAMA2C, &w), LW_ERR_FORMAT, path, "blk.");
    int32_t bad_heads = 7;   /* 64 is not divisible by 7 */
    memcpy(raw + 12, &bad_heads, 4);
    write_bytes(path, raw, len);
    expect_error(lw_weights_open(path, LW_WEIGHTS_LLAMA2C, &w), LW_ERR_FORMAT, path, "n_heads");
    free(raw);
}
END_TEST

/* --- safetensors ----------------------------------------------------------- */

/* Writes a safetensors file: header JSON (padded to 8) + data. */
static void write_st(const char *path, const char *json, const void *data, size_t n)
{
    size_t hl = strlen(json), padded = (hl + 7) / 8 * 8;
    uint64_t h = padded;
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(&h, 8, 1, f);
    fwrite(json, 1, hl, f);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    if (n) fwrite(data, 1, n, f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(safetensors_llama_names_and_dtypes)
{
    const char *dir = tl_tmpdir("st_llama");
    char path[512];
    /* embed [3, 2] F32, q_proj [2, 2] BF16, model.norm and the post-attention
     * norm [2] F16 (the same values, each its own bytes), an int buffer
     * (skipped). */
    uint8_t data[24 + 8 + 4 + 4 + 8];
    float emb[6] = {1, 2, 3, 4, 5, 6};
    uint16_t q[4] = {0x3f80, 0xc000, 0x4040, 0x0000};   /* 1, -2, 3, 0 */
    uint16_t norm[2] = {0x3c00, 0xb800};                 /* 1, -0.5 */
    int64_t ids = 7;
    memcpy(data, emb, 24);
    memcpy(data + 24, q, 8);
    memcpy(data + 32, norm, 4);
    memcpy(data + 36, norm, 4);
    memcpy(data + 40, &ids, 8);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_st(path,
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
             "\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[24,32]},"
             "\"model.norm.weight\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[32,36]},"
             "\"model.layers.0.post_attention_layernorm.weight\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[36,40]},"
             "\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[40,48]}}",
             data, sizeof data);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tl_write_file(path, "{\"model_type\":\"llama\",\"hidden_size\":2,\"num_hidden_layers\":1,"
                        "\"num_attention_heads\":1,\"num_key_value_heads\":1,\"intermediate_size\":4,"
                        "\"vocab_size\":3,\"rms_norm_eps\":1e-5,\"rope_theta\":500000.0,"
                        "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                        "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192},"
                        "\"bos_token_id\":128000,\"eos_token_id\":[128001,128008],\"tie_word_embeddings\":true}");
    lw_weights *w = open_ok(dir, LW_WEIGHTS_SAFETENSORS);
    float *x;
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "token_embd.weight", &x, 3, 2), LW_OK);
    ck_assert(x[5] == 6.0f);
    free(x);
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.attn_q.weight", &x, 2, 2), LW_OK);
    ck_assert(x[0] == 1.0f && x[1] == -2.0f && x[2] == 3.0f && x[3] == 0.0f);
    free(x);
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "output_norm.weight", &x, 2, 0), LW_OK);
    ck_assert(x[0] == 1.0f && x[1] == -0.5f);   /* Llama norms: no shift */
    free(x);
    ck_assert(lw_weights_has(w, "blk.0.ffn_norm.weight"));
    ck_assert(!lw_weights_has(w, "position_ids"));
    lw_model_config m;
    memset(&m, 0, sizeof m);
    ck_assert_msg(lw_weights_read_config(w, &m) == LW_OK, "%s", lw_last_error());
    ck_assert_int_eq(m.family, LW_FAMILY_LLAMA);
    ck_assert_int_eq(m.hidden, 2);
    ck_assert_int_eq(m.vocab, 3);
    ck_assert_int_eq(m.rope_scaling.kind, LW_ROPE_SCALING_LLAMA3);
    ck_assert_float_eq(m.rope_scaling.factor, 8.0f);
    ck_assert_int_eq(m.rope_scaling.original_context, 8192);
    ck_assert_int_eq(m.eos_id, 128001);
    ck_assert(m.tied_embeddings);
    ck_assert_int_eq(m.weights_format, LW_WEIGHTS_SAFETENSORS);
    lw_weights_close(w);
}
END_TEST

START_TEST(safetensors_gemma_sharded)
{
    const char *dir = tl_tmpdir("st_gemma");
    char path[512];
    /* Three norms of the same values, then down_proj and a norm. */
    float a[6] = {0.25f, -1.0f, 0.25f, -1.0f, 0.25f, -1.0f}, b[6] = {1, 2, 3, 4, 0.5f, 0.5f};
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_st(path,
             "{\"model.layers.0.pre_feedforward_layernorm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"model.layers.0.post_attention_layernorm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
             "\"model.layers.0.self_attn.q_norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
             a, sizeof a);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_st(path,
             "{\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
             "\"model.layers.0.post_feedforward_layernorm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
             b, sizeof b);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    tl_write_file(path, "{\"metadata\":{},\"weight_map\":{"
                        "\"model.layers.0.pre_feedforward_layernorm.weight\":\"model-00001-of-00002.safetensors\","
                        "\"model.layers.0.post_attention_layernorm.weight\":\"model-00001-of-00002.safetensors\","
                        "\"model.layers.0.self_attn.q_norm.weight\":\"model-00001-of-00002.safetensors\","
                        "\"model.layers.0.mlp.down_proj.weight\":\"model-00002-of-00002.safetensors\","
                        "\"model.layers.0.post_feedforward_layernorm.weight\":\"model-00002-of-00002.safetensors\"}}");
    lw_weights *w = open_ok(path, LW_WEIGHTS_SAFETENSORS);
    float *x;
    /* Gemma norms come out as GGUF stores them: 1 + w. */
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.ffn_norm.weight", &x, 2, 0), LW_OK);
    ck_assert(x[0] == 1.25f && x[1] == 0.0f);
    free(x);
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.post_attention_norm.weight", &x, 2, 0), LW_OK);
    ck_assert(x[0] == 1.25f);
    free(x);
    ck_assert(lw_weights_has(w, "blk.0.attn_q_norm.weight"));
    ck_assert(lw_weights_has(w, "blk.0.post_ffw_norm.weight"));
    ck_assert_int_eq(lw_weights_get_f32_shaped(w, "blk.0.ffn_down.weight", &x, 2, 2), LW_OK);
    ck_assert(x[3] == 4.0f);   /* projections unchanged */
    free(x);
    lw_weights_close(w);
}
END_TEST

START_TEST(safetensors_errors)
{
    const char *dir = tl_tmpdir("st_errors");
    char path[512];
    float d[2] = {0};
    lw_weights *w = NULL;
    snprintf(path, sizeof path, "%s/json.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",", d, sizeof d);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "JSON");

    snprintf(path, sizeof path, "%s/range.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]}}", d, sizeof d);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "model.norm.weight");
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "data_offsets"));

    snprintf(path, sizeof path, "%s/size.safetensors", dir);
    write_st(path, "{\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, sizeof d);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "lm_head.weight");

    snprintf(path, sizeof path, "%s/shape.safetensors", dir);
    write_st(path, "{\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", d, sizeof d);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "lm_head.weight");

    snprintf(path, sizeof path, "%s/hlen.safetensors", dir);
    uint64_t huge = 1ULL << 40;
    write_bytes(path, &huge, 8);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "header length");

    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    tl_write_file(path, "{\"weight_map\":{\"model.norm.weight\":\"../escape.safetensors\"}}");
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "model.norm.weight");
    ck_assert_ptr_null(w);
}
END_TEST

/* Every entry's data_offsets is checked at open, the skipped (non-float)
 * ones too; ranges must not overlap; a gap between tensors is allowed. */
START_TEST(safetensors_overlapping_ranges)
{
    const char *dir = tl_tmpdir("st_ranges");
    char path[512];
    float d[5] = {1, 2, 3, 4, 5};
    lw_weights *w = NULL;
    snprintf(path, sizeof path, "%s/overlap.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, path, "overlap");
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "\"model.norm.weight\" [0, 8]"));
    ck_assert_ptr_nonnull(strstr(lw_last_error(), "\"lm_head.weight\" [4, 12]"));

    /* An integer buffer is never loaded, but its range is still checked. */
    snprintf(path, sizeof path, "%s/skipped.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", d, 8);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, "position_ids", "overlap");
    snprintf(path, sizeof path, "%s/float.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0.5,8]}}", d, 8);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, "\"position_ids\"",
                 "data_offsets is [0.5, 8], expected two non-negative integers");
    snprintf(path, sizeof path, "%s/backwards.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", d, 8);
    expect_error(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w), LW_ERR_FORMAT, "model.norm.weight",
                 "[8, 0] run backwards");
    ck_assert_ptr_null(w);

    snprintf(path, sizeof path, "%s/gap.safetensors", dir);
    write_st(path, "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", d, 20);
    ck_assert_msg(lw_weights_open(path, LW_WEIGHTS_SAFETENSORS, &w) == LW_OK, "%s", lw_last_error());
    lw_weights_close(w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("weights");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, smollm2_config);
    tcase_add_test(tc, gemma3_config);
    tcase_add_test(tc, stories260k_config_and_tensors);
    tcase_add_test(tc, gguf_shapes_are_pytorch_order);
    tcase_add_test(tc, embed_rms_matches_numpy);
    tcase_add_test(tc, missing_tensor_and_shape_mismatch);
    tcase_add_test(tc, truncated_real_gguf);
    tcase_add_test(tc, bad_magic_version_and_offsets);
    tcase_add_test(tc, truncated_llama2c);
    tcase_add_test(tc, safetensors_llama_names_and_dtypes);
    tcase_add_test(tc, safetensors_gemma_sharded);
    tcase_add_test(tc, safetensors_errors);
    tcase_add_test(tc, safetensors_overlapping_ranges);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
