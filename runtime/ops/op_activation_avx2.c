/* The AVX2 + FMA activation kernels (op_activation_kernels.h); the target
 * attribute only here, the body in op_activation_simd.h. */
#include "op_activation_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define SUFFIX avx2
#define V __m256
#define W 8
#define VSET _mm256_set1_ps
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VMIN _mm256_min_ps
#define VMAX _mm256_max_ps
#define VFMADD _mm256_fmadd_ps  /* a b + c */
#define VFNMADD _mm256_fnmadd_ps /* c - a b */
#define VROUND(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* p 2^n for integral n in [-126, 127] (vexp's clamp keeps it there): the
 * exponent field built directly. */
static inline TARGET __m256 VSCALE2(__m256 p, __m256 n)
{
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#include "op_activation_simd.h"

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void act_forward_avx2(float *out, const float *gate, const float *up, int n, lw_activation act) {}
void act_backward_avx2(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                       lw_activation act) {}
#endif
