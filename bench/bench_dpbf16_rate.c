/* How many bf16 products vdpbf16ps retires against fp32 FMA, in the register
 * tile of the bf16 forward kernel (8 rows x 3 blocks of 16 outputs, one load
 * per block and one broadcast per row each step) on L1-resident data: the
 * measurement behind the AVX-512 bf16 path widening bf16 to fp32 and using
 * FMA (docs/perf.md, "Narrow weights"). One thread, CPU time, median of 5.
 *
 *   bench_dpbf16_rate */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "bench_time.h"

#define TARGET __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl,avx512dq"), noinline))
#define UNROLL _Pragma("GCC unroll 8")

enum { KP = 64, ITERS = 100000 };
static uint16_t wbuf[3][KP * 32] __attribute__((aligned(64)));
static uint32_t xbuf[8][KP] __attribute__((aligned(64)));

TARGET static float tile_dp(long n)
{
    __m512 acc[8][3];
    UNROLL
    for (int r = 0; r < 8; r++)
        UNROLL
        for (int c = 0; c < 3; c++) acc[r][c] = _mm512_setzero_ps();
    for (long it = 0; it < n; it++)
        for (int kp = 0; kp < KP; kp++) {
            __m512bh wv[3];
            UNROLL
            for (int c = 0; c < 3; c++) wv[c] = (__m512bh)_mm512_load_si512((const void *)(wbuf[c] + kp * 32));
            UNROLL
            for (int r = 0; r < 8; r++) {
                __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xbuf[r][kp]);
                UNROLL
                for (int c = 0; c < 3; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
            }
        }
    float s = 0;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) s += _mm512_reduce_add_ps(acc[r][c]);
    return s;
}

TARGET static float tile_fma(long n)
{
    __m512 acc[8][3];
    UNROLL
    for (int r = 0; r < 8; r++)
        UNROLL
        for (int c = 0; c < 3; c++) acc[r][c] = _mm512_setzero_ps();
    for (long it = 0; it < n; it++)
        for (int kp = 0; kp < KP; kp++) {
            __m512 wv[3];
            UNROLL
            for (int c = 0; c < 3; c++) wv[c] = _mm512_load_ps((const float *)(const void *)(wbuf[c] + kp * 32));
            UNROLL
            for (int r = 0; r < 8; r++) {
                __m512 xv = _mm512_castsi512_ps(_mm512_set1_epi32((int)xbuf[r][kp]));
                UNROLL
                for (int c = 0; c < 3; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
            }
        }
    float s = 0;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 3; c++) s += _mm512_reduce_add_ps(acc[r][c]);
    return s;
}

int main(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
        printf("this CPU has no AVX-512 BF16\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof wbuf / 2; i++) ((uint16_t *)wbuf)[i] = 0x3f00;    /* bf16 0.5 */
    for (size_t i = 0; i < sizeof xbuf / 4; i++) ((uint32_t *)xbuf)[i] = 0x3c003c00; /* small, no overflow */
    double t[2][5];
    float sink = 0;
    for (int k = 0; k < 5; k++) {
        double t0 = bench_cpu_now();
        sink += tile_dp(ITERS);
        t[0][k] = bench_cpu_now() - t0;
        t0 = bench_cpu_now();
        sink += tile_fma(ITERS);
        t[1][k] = bench_cpu_now() - t0;
    }
    double n = 24.0 * KP * ITERS; /* instructions of each kind per call */
    for (int v = 0; v < 2; v++) {
        qsort(t[v], 5, sizeof(double), bench_cmp_double);
        double per_ns = n / t[v][2] * 1e-9, flop = v == 0 ? 64.0 : 32.0;
        printf("%-10s %6.2f instructions/ns %7.1f GFLOP/s\n", v == 0 ? "vdpbf16ps" : "vfmadd512", per_ns,
               per_ns * flop);
    }
    return sink == 12345.0f; /* keeps the sums alive */
}
