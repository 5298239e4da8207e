/* The AVX2 kernel of op_matmul_qn.h, for CPUs without VNNI (target
 * attribute only here). */
#include "op_matmul_qn_decode.h"
#include "op_matmul_qn_kernels.h"

#include <stddef.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

INLINE TARGET_AVX2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

/* sum_g xf_g c_g (qn_offsets), 8 groups a step. */
INLINE TARGET_AVX2 float offsets(const float *xf, const float *c, int n)
{
    __m256 acc = _mm256_setzero_ps();
    int g = 0;
    for (; g + 8 <= n; g += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(xf + g), _mm256_loadu_ps(c + g), acc);
    float r = hsum8(acc);
    for (; g < n; g++) r += xf[g] * c[g];
    return r;
}

/* Per 16 columns (one group g): u and qx widened to 16 bits, vpmaddwd sums
 * pairs exactly into 8 int32 lanes (u <= 255, |qx| <= 127: no saturation,
 * which vpmaddubsw would hit on Q8_0's u up to 255), scaled by s_g * sx_b. */
INLINE TARGET_AVX2 void row_tile(float *y, const lw_qn_act *a, int out, const float *b, int o, int t0, const int TR,
                                 qn_scratch sc)
{
    const int in = a->in;
    __m256 acc[4];
    UNROLL
    for (int r = 0; r < TR; r++) acc[r] = _mm256_setzero_ps();
    for (int k = 0; k < in; k += 16) {
        __m256i uv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(sc.u + k)));
        const float s = sc.s[k / 16];
        UNROLL
        for (int r = 0; r < TR; r++) {
            const int8_t *qx = a->qx + (size_t)(t0 + r) * in + k;
            __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)qx));
            __m256i p = _mm256_madd_epi16(uv, xv);
            __m256 f = _mm256_set1_ps(s * a->sx[(size_t)(t0 + r) * (in / 32) + k / 32]);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < TR; r++) {
        float v = hsum8(acc[r]) + offsets(a->xf + (size_t)(t0 + r) * (in / 16), sc.c, in / 16);
        y[(size_t)(t0 + r) * out + o] = v + (b ? b[o] : 0.0f);
    }
}

TARGET_AVX2 void qn_forward_avx2(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b,
                                 int n0, int n1, qn_scratch sc)
{
    const int in = a->in, T = a->T;
    for (int o = n0; o < n1; o++) {
        qn_decode_row(seg->type, seg->data + (size_t)(o - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
        int t = 0;
        for (; t + 4 <= T; t += 4) row_tile(y, a, out, b, o, t, 4, sc);
        for (; t < T; t++) row_tile(y, a, out, b, o, t, 1, sc);
    }
}

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void qn_forward_avx2(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                     int n1, qn_scratch sc) {}
#endif
