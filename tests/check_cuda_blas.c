/* The GPU forward pass's host side without a GPU: cuBLAS missing or wrong
 * is a clear error, the GPU model refuses what its kernels cannot do and
 * fails cleanly (no leak, no crash) on a device that is not open, and
 * `lw generate --device cuda` exits non-zero with the driver's message.
 * The numbers themselves are checked on a GPU by tests/gpu/check_model_gpu.c. */
#include "testlib.h"
#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gpu_model.h"
#include "lw_cli.h"
#include "lwc_config.h"
#include "tiny_models.h"

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
    lw_gpu_state s;
    memset(&s, 0, sizeof s);
    s.max_tokens = 8;
    s.chunk = 8;
    s.n_cached = 2;
    int ids[4] = {1, 2, 3, 4}, bad[2] = {1, 11};
    float logits[11];
    struct {
        lw_forward_args a;
        lw_status code;
        const char *says;
    } cases[] = {
        {{.ids = ids, .T = 0, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "0 rows"},
        {{.ids = ids, .T = 1, .pos0 = 3, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "cache holds 2"},
        {{.ids = ids, .T = 4, .pos0 = 2, .capture_layer = -1}, LW_ERR_INVALID, "logits is required"},
        {{.ids = ids, .T = 2, .logits = logits, .capture_layer = 0}, LW_ERR_UNSUPPORTED, "capture"},
        {{.T = 2, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "neither ids nor embeds"},
        {{.ids = bad, .T = 2, .logits = logits, .capture_layer = -1}, LW_ERR_INVALID, "token id 11 at row 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(lw_gpu_forward(&g, &s, &cases[i].a), cases[i].code);
        ck_assert_msg(strstr(lw_last_error(), cases[i].says), "case %zu: %s", i, lw_last_error());
        ck_assert_int_eq(s.n_cached, 2);   /* untouched by a refused call */
    }
}
END_TEST

/* Runs lw generate in-process with stderr captured in a file. */
static int run_generate(const lw_pair *pair, char **err, int argc, char **argv)
{
    const char *path = tl_out("tmp/check_cuda_blas.stderr");
    fflush(stderr);
    int saved = dup(2);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    dup2(fileno(f), 2);
    int rc = lw_cmd_generate(pair, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(f);
    *err = tl_read_file(path, NULL);
    ck_assert_ptr_nonnull(*err);
    return rc;
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
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_blas");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, missing_library_is_a_clear_error);
    tcase_add_test(tc, wrong_library_names_the_missing_symbol);
    tcase_add_test(tc, installed_cublas_has_every_entry_point);
    tcase_add_test(tc, products_without_a_handle_fail_cleanly);
    tcase_add_test(tc, gpu_model_on_a_closed_device_fails_cleanly);
    tcase_add_test(tc, gpu_forward_checks_its_arguments);
    tcase_add_test(tc, generate_on_cuda_without_a_gpu_says_why);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
