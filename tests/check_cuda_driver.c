/* The CUDA driver loader without a GPU: a missing or wrong driver library is
 * a clear error and nothing crashes; CUBIN selection as a pure function. */
#include "testlib.h"
#include "cuda_driver.h"
#include "cuda_pair.h"
#include "lwc_config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const unsigned char fake_bytes[4] = {0x7f, 'E', 'L', 'F'};

static const lw_kernel_image fake_table[] = {
    {"sender", 80, fake_bytes, 4},
    {"sender", 86, fake_bytes, 4},
    {"sender", 90, fake_bytes, 4},
    {"receiver", 80, fake_bytes, 4},
    {"bridge", 90, fake_bytes, 4},
    {"bridge", 89, NULL, 4},         /* broken entries are never picked */
    {"bridge", 80, fake_bytes, 0},
};
enum { N_FAKE = sizeof fake_table / sizeof fake_table[0] };

static int picked(const char *unit, int arch)
{
    const lw_kernel_image *k = lw_cuda_select_image(fake_table, N_FAKE, unit, arch);
    return k ? k->arch : -1;
}

START_TEST(selects_the_exact_arch)
{
    ck_assert_int_eq(picked("sender", 90), 90);
    ck_assert_int_eq(picked("sender", 86), 86);
    ck_assert_int_eq(picked("sender", 80), 80);
    ck_assert_ptr_eq(lw_cuda_select_image(fake_table, N_FAKE, "sender", 90), &fake_table[2]);
}
END_TEST

START_TEST(falls_back_to_the_highest_of_the_same_major)
{
    ck_assert_int_eq(picked("sender", 89), 86);   /* Ada runs the sm_86 CUBIN */
    ck_assert_int_eq(picked("sender", 87), 86);
    ck_assert_int_eq(picked("receiver", 89), 80);
    ck_assert_int_eq(picked("bridge", 90), 90);
}
END_TEST

START_TEST(refuses_what_cannot_run)
{
    ck_assert_int_eq(picked("sender", 75), -1);    /* older than every image */
    ck_assert_int_eq(picked("receiver", 90), -1);  /* sm_80 SASS does not run on sm_90 */
    ck_assert_int_eq(picked("sender", 100), -1);   /* nor sm_90 on sm_100 */
    ck_assert_int_eq(picked("bridge", 89), -1);    /* only a NULL and an empty image for 8.x */
    ck_assert_int_eq(picked("prefix", 90), -1);    /* unknown unit */
    ck_assert_ptr_null(lw_cuda_select_image(NULL, 3, "sender", 90));
    ck_assert_ptr_null(lw_cuda_select_image(fake_table, 0, "sender", 90));
    ck_assert_ptr_null(lw_cuda_select_image(fake_table, N_FAKE, NULL, 90));
}
END_TEST

START_TEST(missing_driver_is_a_clear_error)
{
    lw_cuda cu;
    lw_status st = lw_cuda_init_from(&cu, "libcuda-not-here.so.1", 0);
    ck_assert_int_eq(st, LW_ERR_UNSUPPORTED);
    const char *e = lw_last_error();
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(e, "no CUDA driver") && strstr(e, "libcuda-not-here.so.1") && strstr(e, "--device cpu"),
                  "%s", e);
#else
    ck_assert_msg(strstr(e, "built without CUDA headers"), "%s", e);
#endif
    ck_assert_ptr_null(cu.lib);
    ck_assert_ptr_null(cu.ctx);
    lw_cuda_close(&cu);   /* a no-op on a failed init */
    lw_cuda_close(&cu);
}
END_TEST

START_TEST(calls_on_a_closed_device_fail_cleanly)
{
    lw_cuda cu;
    ck_assert_int_ne(lw_cuda_init_from(&cu, "libcuda-not-here.so.1", 0), LW_OK);
    lw_cuda_ptr p = 123;
    ck_assert_int_ne(lw_cuda_alloc(&cu, 1024, "test buffer", &p), LW_OK);
    ck_assert_uint_eq(p, 0);
    float x = 1.f;
    ck_assert_int_ne(lw_cuda_upload(&cu, 0, &x, sizeof x, "x"), LW_OK);
    ck_assert_int_ne(lw_cuda_download(&cu, &x, 0, sizeof x, "x"), LW_OK);
    ck_assert_int_ne(lw_cuda_sync(&cu, "after nothing"), LW_OK);
    lw_cuda_module m;
    ck_assert_int_ne(lw_cuda_load_image(&cu, "sender", 90, fake_bytes, &m), LW_OK);
    ck_assert_ptr_null(m.module);
    lw_cuda_kernel k;
    ck_assert_int_ne(lw_cuda_get_kernel(&cu, &m, "glu_forward", &k), LW_OK);
    ck_assert_ptr_null(k.fn);
#if LWC_HAVE_CUDA_H
    ck_assert_msg(strstr(lw_last_error(), "glu_forward") && strstr(lw_last_error(), "not initialised"), "%s",
                  lw_last_error());
#endif
    ck_assert_int_ne(lw_cuda_launch(&cu, &k, 1, 1, 1, 32, 1, 1, 0, NULL), LW_OK);
    lw_cuda_free(&cu, 0);
    lw_cuda_unload(&cu, &m);
}
END_TEST

/* A library that loads but is not the driver: the first missing symbol is named. */
START_TEST(wrong_library_names_the_missing_symbol)
{
#if LWC_HAVE_CUDA_H
    lw_cuda cu;
    ck_assert_int_eq(lw_cuda_init_from(&cu, "libm.so.6", 0), LW_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(lw_last_error(), "libm.so.6 lacks cuInit"), "%s", lw_last_error());
    ck_assert_ptr_null(cu.lib);
#else
    lw_cuda cu;
    ck_assert_int_eq(lw_cuda_init_from(&cu, "libm.so.6", 0), LW_ERR_UNSUPPORTED);
#endif
}
END_TEST

/* The toolkit's link stub exports every entry point but each returns
 * CUDA_ERROR_STUB_LIBRARY: the failing call is named, and nothing leaks. */
START_TEST(stub_driver_fails_at_cuInit)
{
    const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
    if (!LWC_HAVE_CUDA_H || access(stub, R_OK) != 0) {
        fprintf(stderr, "note: %s not present; the stub driver case is not exercised\n", stub);
        return;
    }
    lw_cuda cu;
    lw_status st = lw_cuda_init_from(&cu, stub, 0);
    ck_assert_int_eq(st, LW_ERR_EXTERNAL);
    ck_assert_msg(strstr(lw_last_error(), "cuInit") && strstr(lw_last_error(), "CUDA error") &&
                  strstr(lw_last_error(), "stub"), "%s",
                  lw_last_error());
    ck_assert_ptr_null(cu.lib);
}
END_TEST

/* Where the real driver is absent (CI, this machine) the default init says so;
 * on a GPU machine it opens device 0. */
START_TEST(default_init_either_opens_or_explains)
{
    lw_cuda cu;
    lw_status st = lw_cuda_init(&cu, 0);
    if (st == LW_OK) {
        ck_assert_int_ge(lw_cuda_arch(&cu), 30);
        size_t free_b = 0, total_b = 0;
        ck_assert_int_eq(lw_cuda_mem_info(&cu, &free_b, &total_b), LW_OK);
        ck_assert_uint_gt(total_b, 0);
        lw_cuda_close(&cu);
    } else {
        const char *e = lw_last_error();
        ck_assert_msg(strstr(e, "libcuda.so.1") || strstr(e, "CUDA error") || strstr(e, "without CUDA headers"),
                      "%s", e);
    }
}
END_TEST

START_TEST(print_info_never_fails)
{
    lw_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.kernels = fake_table;
    pair.n_kernels = 3;
    pair.nvrtc_version = "13.0";
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    lw_cuda_print_info(&pair, f);
    fclose(f);
    ck_assert_msg(strstr(text, "3 CUBINs embedded") && strstr(text, "sender/sm_86") &&
                  (strstr(text, "cuda: unavailable") || strstr(text, "cuda: device 0")), "%s", text);
    free(text);
    pair.n_kernels = 0;
    f = open_memstream(&text, &len);
    lw_cuda_print_info(&pair, f);
    fclose(f);
    ck_assert_msg(strstr(text, "none embedded"), "%s", text);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_driver");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, selects_the_exact_arch);
    tcase_add_test(tc, falls_back_to_the_highest_of_the_same_major);
    tcase_add_test(tc, refuses_what_cannot_run);
    tcase_add_test(tc, missing_driver_is_a_clear_error);
    tcase_add_test(tc, calls_on_a_closed_device_fail_cleanly);
    tcase_add_test(tc, wrong_library_names_the_missing_symbol);
    tcase_add_test(tc, stub_driver_fails_at_cuInit);
    tcase_add_test(tc, default_init_either_opens_or_explains);
    tcase_add_test(tc, print_info_never_fails);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
