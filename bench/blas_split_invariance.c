/* Is OpenBLAS's product on a block of output columns bit-equal to the same
 * columns of the whole product? (docs/perf.md, "Threads".) For each shape of
 * the models' products and each split into 2-5 column blocks (multiples of
 * 64 wide, the last one what is left), the forward y = x w^T and the dX
 * backward dx += dy w are computed whole and block by block; prints the
 * shapes whose results differ and the count. Run as
 *   out/bench/blas_split_invariance
 *   OPENBLAS_CORETYPE=SkylakeX out/bench/blas_split_invariance
 * One BLAS thread (the program sets it). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static float *rand_floats(size_t n, lw_rng *r)
{
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = (float)(lw_rng_uniform(r) - 0.5);
    return a;
}

int main(void)
{
    openblas_set_num_threads(1);
    /* T, in, out: SmolLM2 and Gemma-3 products at 1, 9, 37, 64 and 200 rows */
    static const int shapes[][3] = {{1, 640, 2048}, {9, 576, 576}, {37, 640, 256}, {64, 576, 1536},
                                    {64, 2048, 640}, {200, 1536, 576}, {37, 640, 4096}, {2, 576, 49152}};
    int n_shapes = (int)(sizeof shapes / sizeof shapes[0]), differ = 0, cases = 0;
    lw_rng r;
    lw_rng_seed(&r, 1);
    printf("OpenBLAS core: %s\n", openblas_get_corename());
    for (int s = 0; s < n_shapes; s++) {
        int T = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = rand_floats((size_t)T * in, &r), *w = rand_floats((size_t)out * in, &r);
        float *dy = rand_floats((size_t)T * out, &r), *dx0 = rand_floats((size_t)T * in, &r);
        float *y = malloc(sizeof(float) * T * out), *yb = malloc(sizeof(float) * T * out);
        float *dx = malloc(sizeof(float) * T * in), *dxb = malloc(sizeof(float) * T * in);
        if (T == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1, w, in, x, 1, 0, y, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, out, in, 1, x, in, w, in, 0, y, out);
        memcpy(dx, dx0, sizeof(float) * T * in);
        if (T == 1) cblas_sgemv(CblasRowMajor, CblasTrans, out, in, 1, w, in, dy, 1, 1, dx, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, in, out, 1, dy, out, w, in, 1, dx, in);
        for (int nb = 2; nb <= 5; nb++) {
            int per = ((out + nb - 1) / nb + 63) / 64 * 64;
            for (int o0 = 0; o0 < out; o0 += per) {
                int n = o0 + per < out ? per : out - o0;
                if (T == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, in, 1, w + (size_t)o0 * in, in, x, 1, 0, yb + o0, 1);
                else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, in, 1, x, in, w + (size_t)o0 * in, in, 0,
                                 yb + o0, out);
            }
            int d = memcmp(y, yb, sizeof(float) * T * out) != 0;
            per = ((in + nb - 1) / nb + 63) / 64 * 64;
            memcpy(dxb, dx0, sizeof(float) * T * in);
            for (int i0 = 0; i0 < in; i0 += per) {
                int n = i0 + per < in ? per : in - i0;
                if (T == 1) cblas_sgemv(CblasRowMajor, CblasTrans, out, n, 1, w + i0, in, dy, 1, 1, dxb + i0, 1);
                else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, n, out, 1, dy, out, w + i0, in, 1,
                                 dxb + i0, in);
            }
            int dd = memcmp(dx, dxb, sizeof(float) * T * in) != 0;
            if (d || dd) printf("T %d, %d -> %d, %d blocks: %s%s\n", T, in, out, nb, d ? "forward differs " : "",
                                dd ? "dX differs" : "");
            differ += d + dd;
            cases += 2;
        }
        free(x), free(w), free(dy), free(dx0), free(y), free(yb), free(dx), free(dxb);
    }
    printf("%d of %d split products differ from the whole product\n", differ, cases);
    return 0;
}
