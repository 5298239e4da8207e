/* The GPU forward pass's host side without a GPU: cuBLAS missing or wrong
 * is a clear error, the GPU model refuses what its kernels cannot do and
 * fails cleanly (no leak, no crash) on a device that is not open, and
 * `lw generate --device cuda` exits non-zero with the driver's message.
 * bf16 weights: the device bytes they take (a hand count), a clean failure
 * on a closed device, and `--dtype` checked by `lw generate`.
 * The numbers themselves are checked on a GPU by tests/gpu/check_model_gpu.c. */
#include "testlib.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "lw_cli.h"
#include "lwc_config.h"
#include "random_weights.h"
#include "tiny_models.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(missing_library_is_a_clear_error)
{
    lw_cuda cu = {0};
    lw_cublas b;
    ck_assert_int_eq(lw_cublas_init_from(&b, &cu, "libcublas-not-here.so.13"), LW_ERR_UNSUPPORTED);
    const char *e = lw_last_error();
#if LWC_HAVE_CUBLAS
    ck_assert_msg(strstr(e, "no cuBLAS") && strstr(e, "libcublas-not-here.so.13"), "%s", e);
#else
    ck_assert_msg(strstr(e, "built without cuBLAS"), "%s", e);
#endif
    ck_assert_ptr_null(b.lib);
    ck_assert_ptr_null(b.handle);
    lw_cublas_close(&b);   /* a no-op on a failed init */
    lw_cublas_close(&b);
}
END_TEST

/* A library that loads but is not cuBLAS: the first missing symbol is named. */
START_TEST(wrong_library_names_the_missing_symbol)
{
    lw_cuda cu = {0};
    lw_cublas b;
    ck_assert_int_eq(lw_cublas_init_from(&b, &cu, "libm.so.6"), LW_ERR_UNSUPPORTED);
#if LWC_HAVE_CUBLAS
    ck_assert_msg(strstr(lw_last_error(), "libm.so.6 lacks cublasCreate_v2"), "%s", lw_last_error());
#endif
    ck_assert_ptr_null(b.lib);
}
END_TEST

/* Where the toolkit's cuBLAS is installed (this machine, a GPU machine),
 * every entry point resolves and only the closed device stops the init. */
START_TEST(installed_cublas_has_every_entry_point)
{
    lw_cuda cu = {0};
    lw_cublas b;
    ck_assert_int_ne(lw_cublas_init(&b, &cu), LW_OK);
    const char *e = lw_last_error();
#if LWC_HAVE_CUBLAS
    if (strstr(e, "no cuBLAS")) {
        ck_assert_msg(strstr(e, "libcublas.so.13, libcublas.so.12, libcublas.so"), "%s", e);
        fprintf(stderr, "note: no libcublas here; entry point names not checked\n");
    } else {
        ck_assert_msg(strstr(e, "not initialised"), "%s", e);
    }
#else
    ck_assert_msg(strstr(e, "built without cuBLAS"), "%s", e);
#endif
    ck_assert_ptr_null(b.handle);
    lw_cublas_close(&b);
}
END_TEST

START_TEST(products_without_a_handle_fail_cleanly)
{
    lw_cublas b;
    memset(&b, 0, sizeof b);
    ck_assert_int_ne(lw_cublas_matmul(&b, 256, 512, 768, 4, 8, 16, "layer 0 wq"), LW_OK);
#if LWC_HAVE_CUBLAS
    ck_assert_msg(strstr(lw_last_error(), "layer 0 wq") && strstr(lw_last_error(), "not initialised"), "%s",
                  lw_last_error());
#endif
}
END_TEST

/* Round to nearest even on bit patterns whose bf16 is known (each pair
 * checked against torch's .to(torch.bfloat16) when written). */
static float f32_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

START_TEST(bf16_rounding_of_known_bit_patterns)
{
    static const struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0xc0200000u, 0xc020}, /* -2.5 */
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000},   /* +-0 */
        {0x3f808000u, 0x3f80}, /* a tie, even below: down */
        {0x3f818000u, 0x3f82}, /* a tie, odd below: up */
        {0x3f808001u, 0x3f81}, /* just above the tie: up */
        {0x3f807fffu, 0x3f80}, /* just below the tie: down */
        {0x40490fdbu, 0x4049}, /* pi */
        {0x7f7fffffu, 0x7f80}, {0xff7fffffu, 0xff80},   /* largest finite: to infinity */
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},   /* infinities stay */
        {0x00000001u, 0x0000}, /* the smallest subnormal rounds to zero */
        {0x007fffffu, 0x0080}, /* the largest subnormal rounds up to the smallest normal */
        {0x000116c2u, 0x0001}, /* 1e-40 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = lw_bf16_from_f32(f32_of(cases[i].in));
        ck_assert_msg(got == cases[i].out, "0x%08x -> 0x%04x, expected 0x%04x", cases[i].in, got, cases[i].out);
    }
    /* NaNs stay NaN (exponent all ones, mantissa non-zero), sign kept, even
     * one whose payload sits only in the low 16 bits */
    uint32_t nans[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u};
    for (size_t i = 0; i < 3; i++) {
        uint16_t h = lw_bf16_from_f32(f32_of(nans[i]));
        ck_assert_msg((h & 0x7f80) == 0x7f80 && (h & 0x007f) && (h >> 15) == (nans[i] >> 31), "0x%08x -> 0x%04x",
                      nans[i], h);
        ck_assert(isnan(lw_f32_from_bf16(h)));
    }
    /* bf16 -> fp32 is exact, so every bf16 value survives the round trip */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = lw_f32_from_bf16((uint16_t)h);
        if (isnan(f)) continue;
        ck_assert_uint_eq(lw_bf16_from_f32(f), h);
    }
    /* the array form is the scalar one; the error is at most half a bf16 ulp */
    float src[257];
    uint16_t dst[257];
    for (int i = 0; i < 257; i++) src[i] = (float)sin(0.37 * i) * powf(2.f, (float)(i % 40 - 20));
    lw_bf16_from_f32_array(dst, src, 257);
    for (int i = 0; i < 257; i++) {
        ck_assert_uint_eq(dst[i], lw_bf16_from_f32(src[i]));
        float back = lw_f32_from_bf16(dst[i]);
        ck_assert_msg(fabsf(back - src[i]) <= fabsf(src[i]) * (1.f / 256.f), "%d: %g -> %g", i, src[i], back);
    }
}
END_TEST

START_TEST(bf16_products_and_uploads_fail_cleanly_without_a_device)
{
    lw_cublas b;
    memset(&b, 0, sizeof b);
    ck_assert_int_ne(lw_cublas_matmul_bf16(&b, 256, 512, 768, 4, 8, 16, "layer 2 w_up"), LW_OK);
#if LWC_HAVE_CUBLAS
    ck_assert_msg(strstr(lw_last_error(), "layer 2 w_up") && strstr(lw_last_error(), "not initialised"), "%s",
                  lw_last_error());
#endif
    ck_assert_int_ne(lw_cublas_matmul_dx_bf16(&b, 256, 512, 768, 4, 8, 16, true, "layer 2 w_up backward"), LW_OK);
#if LWC_HAVE_CUBLAS
    ck_assert_msg(strstr(lw_last_error(), "w_up backward") && strstr(lw_last_error(), "not initialised"), "%s",
                  lw_last_error());
#endif
    lw_cuda cu = {0};
    float w[3] = {1.f, 2.f, 3.f};
    ck_assert_int_eq(lw_cuda_upload_bf16(&cu, 0, w, 3, "wq"), LW_ERR_INVALID);   /* no destination */
    ck_assert_msg(strstr(lw_last_error(), "bf16 upload wq"), "%s", lw_last_error());
    ck_assert_int_ne(lw_cuda_upload_bf16(&cu, 4096, w, 3, "wq"), LW_OK);   /* the device is not open */
    ck_assert_int_eq(lw_cuda_upload_bf16(&cu, 4096, NULL, 0, "nothing"), LW_OK);   /* nothing to send */
}
END_TEST

/* Uploading to a device that is not open: the config passes, the first
 * driver call fails, nothing leaks. */
START_TEST(gpu_model_on_a_closed_device_fails_cleanly)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, 7, &m), LW_OK);
    lw_cuda cu = {0};
    lw_cublas b = {0};
    lw_cuda_module mod = {0};
    lw_gpu_model *g = (lw_gpu_model *)1;
    ck_assert_int_ne(lw_gpu_model_upload(&cu, &b, &mod, m, &g), LW_OK);
    ck_assert_ptr_null(g);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(lw_last_error(), "not initialised"), "%s", lw_last_error());
#endif
    lw_gpu_model_free(NULL);
    lw_model_free(m);
}
END_TEST

/* The argument checks run before any device work, so a hand-made model and
 * state (no device memory) exercise them. */
START_TEST(gpu_forward_checks_its_arguments)
{
    lw_gpu_model g;
    memset(&g, 0, sizeof g);
    g.cfg = tl_tiny_llama_config(LW_WEIGHTS_GGUF);
    lw_plan_lower(&g.cfg, &g.plan);   /* as the upload lowers it */
    lw_gpu_state s;
    memset(&s, 0, sizeof s);
    int ids_host[8], pos_host[8];
    s.max_tokens = 8;
    s.chunk = 8;
    s.n_cached = 2;
    s.ids_host = ids_host, s.pos_host = pos_host;
    int ids[4] = {1, 2, 3, 4}, bad[2] = {1, 11}, n = g.cfg.n_layers;
    float logits[11], hidden[4 * 64];
    ck_assert_int_le(g.cfg.hidden, 64);
    struct {
        lw_forward_args a;
        lw_status code;
        const char *says;
    } cases[] = {
        {{.ids = ids, .T = 0, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "0 rows"},
        {{.ids = ids, .T = 1, .pos0 = 3, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "cache holds 2"},
        {{.ids = ids, .T = 4, .pos0 = 2, .capture_layer = -1}, LW_ERR_INVALID, "logits is required"},
        {{.ids = ids, .T = 2, .logits = logits, .capture_layer = 0}, LW_ERR_INVALID, "hidden_out missing"},
        {{.ids = ids, .T = 2, .capture_layer = n + 1, .hidden_out = hidden}, LW_ERR_INVALID, "capture layer"},
        {{.ids = ids, .T = 2, .capture_layer = -2, .hidden_out = hidden}, LW_ERR_INVALID, "capture layer -2"},
        {{.ids = ids, .T = 2, .logits = logits, .capture_layer = -1, .adapters = (const lw_receiver_adapters *)ids},
         LW_ERR_UNSUPPORTED, "adapters"},
        {{.T = 2, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "neither ids nor embeds"},
        {{.ids = bad, .T = 2, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "token id 11 at row 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(lw_gpu_forward(&g, &s, &cases[i].a), cases[i].code);
        ck_assert_msg(strstr(lw_last_error(), cases[i].says), "case %zu: %s", i, lw_last_error());
        ck_assert_int_eq(s.n_cached, 2);   /* untouched by a refused call */
    }
    /* A capture without logits passes the checks and fails at the first
     * device call; the cache is then valid up to pos0 only. */
    lw_forward_args cap = {.ids = ids, .T = 2, .pos0 = 1, .capture_layer = n, .hidden_out = hidden};
    ck_assert_int_ne(lw_gpu_forward(&g, &s, &cap), LW_OK);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(lw_last_error(), "not initialised"), "%s", lw_last_error());
#endif
    ck_assert_int_eq(s.n_cached, 1);
}
END_TEST

static size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

/* The weights' device bytes by hand: every tensor 256-byte aligned; with
 * bf16 the seven projections and the head at 2 bytes, a tied head as its
 * own copy, norms and the embedding table at 4. */
static size_t expected_weight_bytes(const lw_model_config *c, bool tied, bool bf16)
{
    size_t H = (size_t)c->hidden, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t F = (size_t)c->ffn, D = (size_t)c->head_dim, V = (size_t)c->vocab, e = bf16 ? 2 : 4;
    size_t n = aligned(V * H * 4) + aligned(H * 4);
    if (!tied || bf16) n += aligned(V * H * e);
    for (int l = 0; l < c->n_layers; l++) {
        n += 2 * aligned(H * 4);   /* attn_norm, ffn_norm */
        n += aligned(qd * H * e) + 2 * aligned(kvd * H * e) + aligned(H * qd * e) + 3 * aligned(F * H * e);
        if (c->qk_norm) n += 2 * aligned(D * 4);
        if (c->post_norms) n += 2 * aligned(H * 4);
    }
    return n;
}

START_TEST(weight_bytes_at_each_dtype)
{
    lw_model_config cfgs[2] = {tl_tiny_gemma3_config(4), tl_tiny_llama_config(LW_WEIGHTS_GGUF)};
    for (int i = 0; i < 2; i++) {
        lw_model *m;
        ck_assert_int_eq(lw_model_init_random(&cfgs[i], 5, &m), LW_OK);
        bool tied = m->output == m->token_embd;
        ck_assert_int_eq(tied, i == 0);   /* both cases: the Gemma-like head is tied, the Llama-like not */
        size_t f32 = lw_gpu_model_weight_bytes(m, LW_DTYPE_F32), bf16 = lw_gpu_model_weight_bytes(m, LW_DTYPE_BF16);
        ck_assert_uint_eq(f32, expected_weight_bytes(&m->cfg, tied, false));
        ck_assert_uint_eq(bf16, expected_weight_bytes(&m->cfg, tied, true));
        lw_model_free(m);
    }
    lw_weight_dtype d = LW_DTYPE_F32;
    ck_assert(lw_gpu_dtype_parse("bf16", &d) && d == LW_DTYPE_BF16);
    ck_assert(lw_gpu_dtype_parse("fp32", &d) && d == LW_DTYPE_F32);
    ck_assert(!lw_gpu_dtype_parse("fp16", &d) && !lw_gpu_dtype_parse("BF16", &d) && !lw_gpu_dtype_parse(NULL, &d));
    ck_assert_str_eq(lw_gpu_dtype_name(LW_DTYPE_BF16), "bf16");
    ck_assert_str_eq(lw_gpu_dtype_name(LW_DTYPE_F32), "fp32");
}
END_TEST

/* A bf16 upload on a device that is not open fails like the fp32 one, with
 * nothing leaked (the sanitizer build checks); an unknown dtype is refused. */
START_TEST(bf16_model_on_a_closed_device_fails_cleanly)
{
    lw_model_config c = tl_tiny_gemma3_config(4);
    lw_model *m;
    ck_assert_int_eq(lw_model_init_random(&c, 7, &m), LW_OK);
    lw_cuda cu = {0};
    lw_cublas b = {0};
    lw_cuda_module mod = {0};
    lw_gpu_model *g = (lw_gpu_model *)1;
    ck_assert_int_ne(lw_gpu_model_upload_dtype(&cu, &b, &mod, m, LW_DTYPE_BF16, &g), LW_OK);
    ck_assert_ptr_null(g);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(lw_last_error(), "not initialised"), "%s", lw_last_error());
#endif
    g = (lw_gpu_model *)1;
    ck_assert_int_eq(lw_gpu_model_upload_dtype(&cu, &b, &mod, m, (lw_weight_dtype)7, &g), LW_ERR_INVALID);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(lw_last_error(), "weight dtype 7"), "%s", lw_last_error());
    lw_model_free(m);
}
END_TEST

/* Runs lw_cmd_generate in-process with stderr captured. */
static int run_generate(const lw_pair *pair, char **err, int argc, char **argv)
{
    return tl_run_command(lw_cmd_generate, pair, err, argc, argv);
}

START_TEST(generate_on_cuda_without_a_gpu_says_why)
{
    lw_cuda cu;
    if (lw_cuda_init(&cu, 0) == LW_OK) {
        lw_cuda_close(&cu);
        fprintf(stderr, "note: a CUDA device is present; the no-GPU message is not exercised\n");
        return;
    }
    char expected[512];
    snprintf(expected, sizeof expected, "%s", lw_last_error());   /* what the driver loader says here */
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    ck_assert_int_eq(tl_run(NULL, "mkdir -p '%s'", tl_out("tmp")), 0);
    char *argv[] = {"--model", "sender", "--prompt", "Once upon a time", "--device", "cuda"};
    char *err = NULL;
    ck_assert_int_eq(run_generate(&pair, &err, 6, argv), 1);
    ck_assert_msg(strstr(err, "lw generate: ") && strstr(err, expected), "stderr: %s\nexpected: %s", err, expected);
    free(err);
    char *bad[] = {"--prompt", "x", "--device", "tpu"};
    ck_assert_int_eq(run_generate(&pair, &err, 4, bad), 2);
    ck_assert_msg(strstr(err, "--device takes cpu or cuda, not tpu"), "%s", err);
    free(err);
    /* bf16 weights: the same driver message, before the model is read */
    char *bf16[] = {"--model", "sender", "--prompt", "x", "--device", "cuda", "--dtype", "bf16"};
    ck_assert_int_eq(run_generate(&pair, &err, 8, bf16), 1);
    ck_assert_msg(strstr(err, "lw generate: ") && strstr(err, expected), "stderr: %s\nexpected: %s", err, expected);
    free(err);
}
END_TEST

/* --dtype is fp32 or bf16 (bf16 on the CPU too: narrow_weights.h), and lw
 * hidden has no --dtype: usage errors, exit 2, nothing loaded. */
START_TEST(generate_checks_dtype)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    ck_assert_msg(lw_manifest_load(tl_src("pairs/stories260k_to_smollm2-135m.json"), &pair.manifest) == LW_OK, "%s",
                  lw_last_error());
    ck_assert_int_eq(tl_run(NULL, "mkdir -p '%s'", tl_out("tmp")), 0);
    struct {
        char *argv[6];
        int argc;
        const char *says;
    } cases[] = {
        {{"--prompt", "x", "--device", "cuda", "--dtype", "fp16"}, 6, "--dtype takes fp32 or bf16, not fp16"},
        {{"--prompt", "x", "--dtype"}, 3, "--dtype needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        ck_assert_int_eq(run_generate(&pair, &err, cases[i].argc, cases[i].argv), 2);
        ck_assert_msg(strstr(err, cases[i].says), "case %zu: %s", i, err);
        free(err);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_blas");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, missing_library_is_a_clear_error);
    tcase_add_test(tc, wrong_library_names_the_missing_symbol);
    tcase_add_test(tc, products_without_a_handle_fail_cleanly);
    tcase_add_test(tc, bf16_rounding_of_known_bit_patterns);
    tcase_add_test(tc, bf16_products_and_uploads_fail_cleanly_without_a_device);
    tcase_add_test(tc, gpu_model_on_a_closed_device_fails_cleanly);
    tcase_add_test(tc, gpu_forward_checks_its_arguments);
    tcase_add_test(tc, weight_bytes_at_each_dtype);
    tcase_add_test(tc, bf16_model_on_a_closed_device_fails_cleanly);
    tcase_add_test(tc, generate_on_cuda_without_a_gpu_says_why);
    tcase_add_test(tc, generate_checks_dtype);
    suite_add_tcase(s, tc);
    /* Loading the installed cuBLAS maps libcublasLt (about 540 MB): ~3 s on a
     * warm page cache, more from a cold one or under ASan beside another suite
     * (a fresh-clone CI run timed out at Check's 4 s default); the test
     * asserts names, not time. */
    TCase *load = tcase_create("installed library");
    tcase_set_timeout(load, 120);
    tcase_add_test(load, installed_cublas_has_every_entry_point);
    suite_add_tcase(s, load);
    return tl_run_suite(s);
}
