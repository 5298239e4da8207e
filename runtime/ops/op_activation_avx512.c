/* The AVX-512 activation kernels (op_activation_kernels.h); the target
 * attribute only here, the body in op_activation_simd.h. */
#include "op_activation_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define SUFFIX avx512
#define V __m512
#define W 16
#define VSET _mm512_set1_ps
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VMIN _mm512_min_ps
#define VMAX _mm512_max_ps
#define VFMADD _mm512_fmadd_ps  /* a b + c */
#define VFNMADD _mm512_fnmadd_ps /* c - a b */
#define VROUND(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VSCALE2 _mm512_scalef_ps /* p 2^n */

#include "op_activation_simd.h"

#else /* not x86-64: never dispatched here (lw_cpu_path_detected is scalar) */
void act_forward_avx512(float *out, const float *gate, const float *up, int n, lw_activation act) {}
void act_backward_avx512(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                       lw_activation act) {}
#endif
