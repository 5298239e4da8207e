/* The frame every GPU suite shares: the driver and cuBLAS opened once,
 * before the suite (a CUDA context does not survive fork(), so the suite
 * runs with CK_NOFORK), and closed after it. Without a GPU the program
 * says "no CUDA device" and exits 1. */
#ifndef LW_TL_GPU_SUITE_H
#define LW_TL_GPU_SUITE_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>

#include <stdlib.h>

#include "cuda_blas.h"
#include "cuda_driver.h"
#include "gen_kernels.h"
#include "nvrtc_compile.h"
#include "testlib.h"

static inline bool tl_gpu_open(const char *prog, lw_cuda *cu, lw_cublas *blas)
{
    if (lw_cuda_init(cu, 0)) {
        fprintf(stderr, "%s: no CUDA device: %s\n", prog, lw_last_error());
        return false;
    }
    if (lw_cublas_init(blas, cu)) {
        fprintf(stderr, "%s: cannot run: %s\n", prog, lw_last_error());
        lw_cuda_close(cu);
        return false;
    }
    return true;
}

/* The model kernels generated from cfg (M soft tokens baked in), compiled
 * by NVRTC for this device and loaded as `unit`; fails the test on error. */
static inline void tl_gpu_model_kernels(lw_cuda *cu, const lw_model_config *cfg, int soft_tokens, const char *unit,
                                        lw_cuda_module *mod)
{
    lw_strbuf sb = {0};
    lw_status st = lw_gen_model_kernels(tl_src("templates"), cfg, soft_tokens, &sb);
    ck_assert_msg(!st && !sb.failed, "generating the kernels of %s: %s", cfg->name, st ? lw_last_error() : "no memory");
    unsigned char *image = NULL;
    size_t size = 0;
    st = lw_nvrtc_compile(sb.data, "kernels_model.cu", lw_cuda_arch(cu), &image, &size);
    lw_sb_free(&sb);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
    st = lw_cuda_load_image(cu, unit, lw_cuda_arch(cu), image, mod);
    free(image);
    ck_assert_msg(st == LW_OK, "%s", lw_last_error());
}

/* Runs s in this process, closes both; the exit status. */
static inline int tl_gpu_run(Suite *s, lw_cuda *cu, lw_cublas *blas)
{
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    lw_cublas_close(blas);
    lw_cuda_close(cu);
    return failed == 0 ? 0 : 1;
}

#endif
