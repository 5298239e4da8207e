/* The op list: every op the model families, the bridge, LoRA and the deep
 * prefix run, each with its forward, its backward (or "frozen: none" and
 * why), the backends that implement it, its tolerance, its CUDA kernels, and
 * under it the cases it is tested on. It is the one list the backend-ops
 * harness walks (docs/testing.md, "Every op on every backend"):
 *
 *   tests/check_backend_ops.c            every op x every CPU backend against
 *                                         a double-precision reference, every
 *                                         backward by finite differences
 *   tests/gpu/check_backend_ops_gpu.c    every op's CUDA kernels against the
 *                                         CPU op
 *
 * Both fail when an op here has no case, no driver or (unless frozen) no
 * finite-difference case, and check_backend_ops fails when a function named
 * *_forward* or *_backward* in ops.h, op_matmul_bf16.h or op_matmul_q8.h is
 * not named in a forward or backward column here: a new op cannot be added
 * without its tests. Nothing in the library reads this header.
 *
 *   X(ID, "name", "forward functions", "backward functions | frozen: none (why)",
 *     backends, rtol, atol, "CUDA kernels | cuBLAS (...) | none (why)", gpu_rtol, gpu_atol)
 *   C(ID, "case label", fd, int params...)
 *
 * backends: LW_OPB_* bits below. The paths of the narrow kernels (scalar,
 * avx2, avx512) are each run in a fresh process with LWC_CPU_PATH set
 * (cpu_path.h chooses once per process); a path above the CPU is skipped.
 *
 * Tolerance: every output element passes when |got - want| <= atol + rtol *
 * mag, where want and mag come from the harness's reference in double: for
 * sums of products (matmul, all three kinds) mag is the rounding bound of any
 * summation order, gamma(n) * sum |terms| (Higham, 2nd ed., 4.2), so
 * rtol 1 means "within the bound"; elsewhere mag is |want| (or the sum of
 * |terms| where an output is a difference). Entries that the reference knows
 * to be exactly zero or exactly one rounding (masked attention, embedding
 * rows) must match bit for bit. On the GPU each kernel is held to the CPU op
 * (its twin): |gpu - cpu| <= gpu_atol + gpu_rtol |cpu| (the rule of
 * tests/gpu/check_kernels_gpu.c; atol 1e-4 where atomics sum over rows).
 *
 * fd: 1 when the case's backward is checked by central finite differences
 * (small shapes: every element of every differentiable input is perturbed),
 * 0 for cases that are checked against the reference only (large shapes).
 * Case params, per op:
 *   MATMUL, MATMUL_BF16, MATMUL_BF16_DP, MATMUL_Q8:  T, in, out, bias
 *   RMSNORM:        T, C, kind (0 llama, 1 gemma), weight (0: NULL), x scale x1000
 *   LAYERNORM:      T, C
 *   ROPE:           T, heads, head_dim, interleaved, base, scaling (0 none, 1 linear x2)
 *   ATTENTION:      Tq, Tk, Hq, Hkv, D, causal, q_offset, window, n_sink
 *   GLU:            n, act (0 silu, 1 gelu_tanh), gate scale (0: 1; gate in +-4 x scale)
 *   GELU_TANH:      n, x scale (0: 1; x in +-4 x scale)
 *   GELU_ERF:       n
 *   EMBEDDING:      T, C, rows, scale x100
 *   CROSS_ENTROPY:  T, V (targets: row t gets (3t) % V, or -1 when t % 3 == 1)
 *   HEAD_LOGSOFTMAX: T, H, V, pairs (pair k: row k % T, or 0 when pairs > T and
 *                   T == 2; token (7k + 3) % V, the last one V - 1) */
#ifndef LW_OP_LIST_H
#define LW_OP_LIST_H

enum {
    LW_OPB_CPU = 1 << 0,    /* the library's entry point (BLAS for matmul when configured) */
    LW_OPB_LOOPS = 1 << 1,  /* matmul's plain loops, matmul_*_reference */
    LW_OPB_SCALAR = 1 << 2, /* LWC_CPU_PATH=scalar */
    LW_OPB_AVX2 = 1 << 3,   /* LWC_CPU_PATH=avx2 */
    LW_OPB_AVX512 = 1 << 4, /* LWC_CPU_PATH=avx512 */
    LW_OPB_PATHS = LW_OPB_SCALAR | LW_OPB_AVX2 | LW_OPB_AVX512
};

#define LW_OP_LIST(X, C)                                                                                              \
    X(MATMUL, "matmul", "matmul_forward, matmul_forward_reference", "matmul_backward, matmul_backward_reference",      \
      LW_OPB_CPU | LW_OPB_LOOPS, 1.0, 0.0, "cuBLAS (cuda_blas.c; tests/check_cuda_blas.c)", 0, 0)                      \
    C(MATMUL, "1x1x1", 1, 1, 1, 1, 0)                                                                                  \
    C(MATMUL, "3x5x4 bias", 1, 3, 5, 4, 1)                                                                             \
    C(MATMUL, "7x13x5 bias", 1, 7, 13, 5, 1)                                                                           \
    C(MATMUL, "33x64x17", 0, 33, 64, 17, 0)                                                                            \
    C(MATMUL, "5x200x96 bias", 0, 5, 200, 96, 1)                                                                       \
    C(MATMUL, "9x70x33 bias", 0, 9, 70, 33, 1)                                                                         \
    X(MATMUL_BF16, "matmul_bf16", "matmul_bf16_forward, matmul_bf16_forward_on",                                       \
      "matmul_bf16_backward_x, matmul_bf16_backward_x_on", LW_OPB_PATHS, 1.0, 0.0,                                     \
      "cuBLAS (a bf16 GEMM; its f32_to_bf16 below)", 0, 0)                                                             \
    C(MATMUL_BF16, "3x5x7 bias", 1, 3, 5, 7, 1)                                                                        \
    C(MATMUL_BF16, "1x5x1", 0, 1, 5, 1, 0) C(MATMUL_BF16, "1x5x7 bias", 0, 1, 5, 7, 1)                                 \
    C(MATMUL_BF16, "1x5x130", 0, 1, 5, 130, 0) C(MATMUL_BF16, "1x64x1 bias", 0, 1, 64, 1, 1)                           \
    C(MATMUL_BF16, "1x64x7", 0, 1, 64, 7, 0) C(MATMUL_BF16, "1x64x130 bias", 0, 1, 64, 130, 1)                         \
    C(MATMUL_BF16, "1x577x1", 0, 1, 577, 1, 0) C(MATMUL_BF16, "1x577x7 bias", 0, 1, 577, 7, 1)                         \
    C(MATMUL_BF16, "1x577x130", 0, 1, 577, 130, 0) C(MATMUL_BF16, "3x5x1 bias", 0, 3, 5, 1, 1)                         \
    C(MATMUL_BF16, "3x5x7", 0, 3, 5, 7, 0) C(MATMUL_BF16, "3x5x130 bias", 0, 3, 5, 130, 1)                             \
    C(MATMUL_BF16, "3x64x1", 0, 3, 64, 1, 0) C(MATMUL_BF16, "3x64x7 bias", 0, 3, 64, 7, 1)                             \
    C(MATMUL_BF16, "3x64x130", 0, 3, 64, 130, 0) C(MATMUL_BF16, "3x577x1 bias", 0, 3, 577, 1, 1)                       \
    C(MATMUL_BF16, "3x577x7", 0, 3, 577, 7, 0) C(MATMUL_BF16, "3x577x130 bias", 0, 3, 577, 130, 1)                     \
    C(MATMUL_BF16, "17x5x1", 0, 17, 5, 1, 0) C(MATMUL_BF16, "17x5x7 bias", 0, 17, 5, 7, 1)                             \
    C(MATMUL_BF16, "17x5x130", 0, 17, 5, 130, 0) C(MATMUL_BF16, "17x64x1 bias", 0, 17, 64, 1, 1)                       \
    C(MATMUL_BF16, "17x64x7", 0, 17, 64, 7, 0) C(MATMUL_BF16, "17x64x130 bias", 0, 17, 64, 130, 1)                     \
    C(MATMUL_BF16, "17x577x1", 0, 17, 577, 1, 0) C(MATMUL_BF16, "17x577x7 bias", 0, 17, 577, 7, 1)                     \
    C(MATMUL_BF16, "17x577x130", 0, 17, 577, 130, 0) C(MATMUL_BF16, "9x1100x40 bias", 0, 9, 1100, 40, 1)               \
    C(MATMUL_BF16, "5x577x1000", 0, 5, 577, 1000, 0)                                                                   \
    X(MATMUL_BF16_DP, "matmul_bf16_dp", "matmul_bf16_forward_vdpbf16ps",                                               \
      "frozen: none (forward-only benchmark kernel, x rounded to bf16; docs/perf.md)", LW_OPB_AVX512, 1.0, 0.0,        \
      "none (CPU benchmark kernel)", 0, 0)                                                                             \
    C(MATMUL_BF16_DP, "1x5x1", 0, 1, 5, 1, 0) C(MATMUL_BF16_DP, "1x5x7 bias", 0, 1, 5, 7, 1)                           \
    C(MATMUL_BF16_DP, "1x5x130", 0, 1, 5, 130, 0) C(MATMUL_BF16_DP, "1x64x1 bias", 0, 1, 64, 1, 1)                     \
    C(MATMUL_BF16_DP, "1x64x7", 0, 1, 64, 7, 0) C(MATMUL_BF16_DP, "1x64x130 bias", 0, 1, 64, 130, 1)                   \
    C(MATMUL_BF16_DP, "1x577x1", 0, 1, 577, 1, 0) C(MATMUL_BF16_DP, "1x577x7 bias", 0, 1, 577, 7, 1)                   \
    C(MATMUL_BF16_DP, "1x577x130", 0, 1, 577, 130, 0) C(MATMUL_BF16_DP, "3x5x1 bias", 0, 3, 5, 1, 1)                   \
    C(MATMUL_BF16_DP, "3x5x7", 0, 3, 5, 7, 0) C(MATMUL_BF16_DP, "3x5x130 bias", 0, 3, 5, 130, 1)                       \
    C(MATMUL_BF16_DP, "3x64x1", 0, 3, 64, 1, 0) C(MATMUL_BF16_DP, "3x64x7 bias", 0, 3, 64, 7, 1)                       \
    C(MATMUL_BF16_DP, "3x64x130", 0, 3, 64, 130, 0) C(MATMUL_BF16_DP, "3x577x1 bias", 0, 3, 577, 1, 1)                 \
    C(MATMUL_BF16_DP, "3x577x7", 0, 3, 577, 7, 0) C(MATMUL_BF16_DP, "3x577x130 bias", 0, 3, 577, 130, 1)               \
    C(MATMUL_BF16_DP, "17x5x1", 0, 17, 5, 1, 0) C(MATMUL_BF16_DP, "17x5x7 bias", 0, 17, 5, 7, 1)                       \
    C(MATMUL_BF16_DP, "17x5x130", 0, 17, 5, 130, 0) C(MATMUL_BF16_DP, "17x64x1 bias", 0, 17, 64, 1, 1)                 \
    C(MATMUL_BF16_DP, "17x64x7", 0, 17, 64, 7, 0) C(MATMUL_BF16_DP, "17x64x130 bias", 0, 17, 64, 130, 1)               \
    C(MATMUL_BF16_DP, "17x577x1", 0, 17, 577, 1, 0) C(MATMUL_BF16_DP, "17x577x7 bias", 0, 17, 577, 7, 1)               \
    C(MATMUL_BF16_DP, "17x577x130", 0, 17, 577, 130, 0) C(MATMUL_BF16_DP, "9x1100x40 bias", 0, 9, 1100, 40, 1)         \
    X(MATMUL_Q8, "matmul_q8", "matmul_q8_forward, matmul_q8_forward_on",                                               \
      "frozen: none (int8 weights are frozen; dx through int8 is not written, op_matmul_q8.h)", LW_OPB_PATHS, 1.0,     \
      0.0, "none (CPU only)", 0, 0)                                                                                    \
    C(MATMUL_Q8, "1x5x1", 0, 1, 5, 1, 0) C(MATMUL_Q8, "1x5x7 bias", 0, 1, 5, 7, 1)                                     \
    C(MATMUL_Q8, "1x5x130", 0, 1, 5, 130, 0) C(MATMUL_Q8, "1x64x1 bias", 0, 1, 64, 1, 1)                               \
    C(MATMUL_Q8, "1x64x7", 0, 1, 64, 7, 0) C(MATMUL_Q8, "1x64x130 bias", 0, 1, 64, 130, 1)                             \
    C(MATMUL_Q8, "1x577x1", 0, 1, 577, 1, 0) C(MATMUL_Q8, "1x577x7 bias", 0, 1, 577, 7, 1)                             \
    C(MATMUL_Q8, "1x577x130", 0, 1, 577, 130, 0) C(MATMUL_Q8, "3x5x1 bias", 0, 3, 5, 1, 1)                             \
    C(MATMUL_Q8, "3x5x7", 0, 3, 5, 7, 0) C(MATMUL_Q8, "3x5x130 bias", 0, 3, 5, 130, 1)                                 \
    C(MATMUL_Q8, "3x64x1", 0, 3, 64, 1, 0) C(MATMUL_Q8, "3x64x7 bias", 0, 3, 64, 7, 1)                                 \
    C(MATMUL_Q8, "3x64x130", 0, 3, 64, 130, 0) C(MATMUL_Q8, "3x577x1 bias", 0, 3, 577, 1, 1)                           \
    C(MATMUL_Q8, "3x577x7", 0, 3, 577, 7, 0) C(MATMUL_Q8, "3x577x130 bias", 0, 3, 577, 130, 1)                         \
    C(MATMUL_Q8, "17x5x1", 0, 17, 5, 1, 0) C(MATMUL_Q8, "17x5x7 bias", 0, 17, 5, 7, 1)                                 \
    C(MATMUL_Q8, "17x5x130", 0, 17, 5, 130, 0) C(MATMUL_Q8, "17x64x1 bias", 0, 17, 64, 1, 1)                           \
    C(MATMUL_Q8, "17x64x7", 0, 17, 64, 7, 0) C(MATMUL_Q8, "17x64x130 bias", 0, 17, 64, 130, 1)                         \
    C(MATMUL_Q8, "17x577x1", 0, 17, 577, 1, 0) C(MATMUL_Q8, "17x577x7 bias", 0, 17, 577, 7, 1)                         \
    C(MATMUL_Q8, "17x577x130", 0, 17, 577, 130, 0) C(MATMUL_Q8, "3x640x130", 0, 3, 640, 130, 0)                        \
    X(RMSNORM, "rmsnorm", "rmsnorm_forward", "rmsnorm_backward", LW_OPB_CPU, 1e-5, 1e-6,                               \
      "residual_rmsnorm_forward rmsnorm_backward qk_rmsnorm_forward qk_rmsnorm_backward rms_calibrate_forward "        \
      "rms_calibrate_backward", 1e-4, 1e-4)                                                                            \
    C(RMSNORM, "llama 3x8", 1, 3, 8, 0, 1, 2000)                                                                       \
    C(RMSNORM, "gemma 3x8", 1, 3, 8, 1, 1, 2000)                                                                       \
    C(RMSNORM, "no weight 3x8", 1, 3, 8, 0, 0, 2000)                                                                   \
    C(RMSNORM, "llama 4x16, mean x^2 near eps", 0, 4, 16, 0, 1, 4)                                                     \
    C(RMSNORM, "gemma 5x576", 0, 5, 576, 1, 1, 2000)                                                                   \
    X(LAYERNORM, "layernorm", "layernorm_forward", "layernorm_backward", LW_OPB_CPU, 1e-5, 1e-5,                       \
      "layernorm_forward layernorm_backward prefix_layernorm_forward prefix_layernorm_backward", 1e-4, 1e-4)           \
    C(LAYERNORM, "3x8", 1, 3, 8)                                                                                       \
    C(LAYERNORM, "1x17", 1, 1, 17)                                                                                     \
    C(LAYERNORM, "6x640", 0, 6, 640)                                                                                   \
    X(ROPE, "rope", "rope_forward", "rope_backward", LW_OPB_CPU, 1e-6, 1e-7, "rope_apply", 1e-4, 1e-5)                 \
    C(ROPE, "halves 3x2x8 linear", 1, 3, 2, 8, 0, 100, 1)                                                              \
    C(ROPE, "interleaved 3x2x8 linear", 1, 3, 2, 8, 1, 100, 1)                                                         \
    C(ROPE, "halves 5x3x64", 0, 5, 3, 64, 0, 10000, 0)                                                                 \
    C(ROPE, "interleaved 5x3x64", 0, 5, 3, 64, 1, 500000, 0)                                                           \
    X(ATTENTION, "attention", "attention_forward, attention_forward_sink",                                             \
      "attention_backward, attention_backward_sink", LW_OPB_CPU | LW_OPB_PATHS, 1e-4, 1e-5,                            \
      "attention_forward attention_backward bridge_attention_forward bridge_attention_backward "                       \
      "attention_varlen_forward attention_varlen_backward", 1e-4, 1e-4)                                               \
    C(ATTENTION, "causal gqa2", 1, 6, 6, 4, 2, 8, 1, 0, 0, 0)                                                          \
    C(ATTENTION, "cache mqa", 1, 3, 9, 4, 1, 8, 1, 6, 0, 0)                                                            \
    C(ATTENTION, "window", 1, 7, 7, 2, 2, 4, 1, 0, 3, 0)                                                               \
    C(ATTENTION, "window offset gqa", 1, 4, 10, 6, 3, 8, 1, 6, 4, 0)                                                   \
    C(ATTENTION, "bidirectional", 1, 5, 8, 2, 1, 4, 0, 0, 0, 0)                                                        \
    C(ATTENTION, "sink under window", 1, 5, 9, 2, 1, 4, 1, 4, 2, 3)                                                    \
    C(ATTENTION, "sink reaches window", 1, 4, 7, 2, 2, 4, 1, 3, 4, 2)                                                  \
    C(ATTENTION, "causal gqa2 5x5", 1, 5, 5, 4, 2, 4, 1, 0, 0, 0)                                                      \
    C(ATTENTION, "offset window mqa", 1, 3, 7, 2, 1, 4, 1, 4, 3, 0)                                                    \
    C(ATTENTION, "bidirectional 4x6", 1, 4, 6, 2, 2, 4, 0, 0, 0, 0)                                                    \
    C(ATTENTION, "long causal", 0, 33, 33, 4, 2, 16, 1, 0, 0, 0)                                                       \
    C(ATTENTION, "head_dim 64 gqa", 0, 9, 9, 4, 2, 64, 1, 0, 0, 0)                                                     \
    C(ATTENTION, "head_dim 37 window sink", 0, 6, 11, 2, 1, 37, 1, 5, 3, 2)                                            \
    C(ATTENTION, "head_dim 24 causal", 1, 3, 3, 2, 1, 24, 1, 0, 0, 0)                                                  \
    X(GLU, "glu", "glu_forward", "glu_backward", LW_OPB_CPU | LW_OPB_PATHS, 1e-5, 1e-6, "glu_forward glu_backward",   \
      1e-4, 1e-5)                                                                                                      \
    C(GLU, "swiglu 40", 1, 40, 0)                                                                                      \
    C(GLU, "geglu 40", 1, 40, 1)                                                                                       \
    C(GLU, "geglu 7 (a tail only)", 1, 7, 1)                                                                           \
    C(GLU, "swiglu 1000", 0, 1000, 0)                                                                                  \
    C(GLU, "geglu 1000", 0, 1000, 1)                                                                                   \
    C(GLU, "geglu 1003 x40 (|gate| to 160)", 0, 1003, 1, 40)                                                           \
    C(GLU, "swiglu 1003 x40 (|gate| to 160)", 0, 1003, 0, 40)                                                          \
    X(GELU_TANH, "gelu_tanh", "gelu_tanh_forward", "gelu_tanh_backward", LW_OPB_CPU | LW_OPB_PATHS, 1e-5, 1e-6,        \
      "gelu_forward gelu_backward", 1e-4, 1e-5)                                                                        \
    C(GELU_TANH, "40", 1, 40)                                                                                          \
    C(GELU_TANH, "21 (a tail)", 1, 21)                                                                                 \
    C(GELU_TANH, "1000", 0, 1000)                                                                                      \
    C(GELU_TANH, "1003 x40 (|x| to 160)", 0, 1003, 40)                                                                 \
    X(GELU_ERF, "gelu_erf", "gelu_erf_forward", "gelu_erf_backward", LW_OPB_CPU, 1e-5, 1e-6,                          \
      "none (CPU only: the frozen BERT encoder of the interlingua)", 0, 0)                                             \
    C(GELU_ERF, "40", 1, 40)                                                                                           \
    C(GELU_ERF, "1000", 0, 1000)                                                                                       \
    X(EMBEDDING, "embedding", "embedding_forward",                                                                     \
      "frozen: none (the token table is never trained; ops.h)", LW_OPB_CPU, 0.0, 0.0, "embedding_forward", 0, 0)       \
    C(EMBEDDING, "3x2 scale 0.5", 0, 3, 2, 3, 50)                                                                      \
    C(EMBEDDING, "9x64 scale 8", 0, 9, 64, 40, 800)                                                                    \
    X(CROSS_ENTROPY, "cross_entropy", "cross_entropy_forward", "cross_entropy_backward", LW_OPB_CPU, 1e-5, 1e-7,       \
      "cross_entropy_forward_backward", 1e-4, 1e-7)                                                                    \
    C(CROSS_ENTROPY, "4x7", 1, 4, 7)                                                                                   \
    C(CROSS_ENTROPY, "1x3", 1, 1, 3)                                                                                   \
    C(CROSS_ENTROPY, "6x1000", 0, 6, 1000)                                                                             \
    X(HEAD_LOGSOFTMAX, "head_logsoftmax", "head_logsoftmax_forward", "head_logsoftmax_backward", LW_OPB_CPU, 1e-4,     \
      1e-5, "cross_entropy_forward_backward", 1e-4, 1e-6)                                                              \
    C(HEAD_LOGSOFTMAX, "3x8x11, 4 pairs", 1, 3, 8, 11, 4)                                                              \
    C(HEAD_LOGSOFTMAX, "2x5x7, 5 pairs on row 0", 1, 2, 5, 7, 5)                                                       \
    C(HEAD_LOGSOFTMAX, "5x64x1100 (3 blocks), 9 pairs", 0, 5, 64, 1100, 9)                                             \
    C(HEAD_LOGSOFTMAX, "70x16x600 (2 row groups), 70 pairs", 0, 70, 16, 600, 70)

/* The kernels of the generated sources that are not one op of the list
 * above, each with where it is checked against its CPU twin. With the
 * kernels column above, this is every extern "C" kernel of templates/
 * (check_backend_ops fails on one that is in neither).
 *   K("kernel", "why it is not an op; where it is tested") */
#define LW_KERNELS_NOT_OPS(K)                                                                                        \
    K("lora_forward", "LoRA's composite (two products, dropout, scale): check_kernels_gpu.c lora")                     \
    K("lora_backward_input", "LoRA's composite: check_kernels_gpu.c lora")                                             \
    K("lora_backward_weights", "LoRA's composite: check_kernels_gpu.c lora")                                           \
    K("prefix_dropout_forward", "the deep prefix's hashed dropout: check_kernels_gpu.c prefix")                        \
    K("prefix_dropout_backward", "the deep prefix's hashed dropout: check_kernels_gpu.c prefix")                       \
    K("adamw_step", "the optimiser, not an op of the graph: check_kernels_gpu.c adamw")                                \
    K("f32_to_bf16", "a cast for cuBLAS's bf16 GEMM, bit for bit: check_kernels_gpu.c f32_to_bf16")               \
    K("add_forward", "the plan's residual add (plan.h LW_OP_ADD), not an ops.h op: check_kernels_gpu.c add_copy")      \
    K("copy_forward", "the plan's copy (plan.h LW_OP_COPY), not an ops.h op: check_kernels_gpu.c add_copy")          \
    K("bias_add_forward", "the matmul op's bias after cuBLAS's product (plan_cuda.c): check_kernels_gpu.c bias_add") \
    K("attention_decode_forward", "attention_forward with its offset read off the device (a graph-ready step, "    \
      "gpu_decode.c): check_kernels_gpu.c graph_ready_step, bit for bit to attention_forward")                        \
    K("kv_cache_store", "a graph-ready step's k / v rows into the cache at device-held positions: "                  \
      "check_kernels_gpu.c graph_ready_step") \
    K("standardise_forward", "the bridge plan's STANDARDISE: check_bridge_gpu.c, check_bridge_cuda_host.c")            \
    K("standardise_backward", "the bridge plan's STANDARDISE: check_bridge_gpu.c, check_bridge_cuda_host.c")           \
    K("mean_rows_forward", "the bridge plan's MEAN_ROWS (ablations): check_bridge_gpu.c")                              \
    K("mean_rows_backward", "the bridge plan's MEAN_ROWS (ablations): check_bridge_gpu.c")                             \
    K("bridge_bias_forward", "the bridge's matmul bias after cuBLAS's product: check_bridge_gpu.c")                    \
    K("bridge_bias_backward", "the bridge's matmul bias gradient: check_bridge_gpu.c")                                 \
    K("bridge_add", "the bridge plan's ADD and a copied tensor's gradient: check_bridge_gpu.c")                        \
    K("bridge_copy", "the bridge plan's COPY: check_bridge_gpu.c")                                                     \
    K("grad_sumsq", "the optimiser's global gradient norm: check_bridge_gpu.c adamw")                                  \
    K("adamw_clip_step", "the optimiser with the clip, not an op of the graph: check_bridge_gpu.c adamw")

/* The op ids, LW_OPL_MATMUL ... in list order, and their count LW_OPL_COUNT. */
#define LW_OP_ENUM_X(id, ...) LW_OPL_##id,
#define LW_OP_ENUM_C(...)
enum { LW_OP_LIST(LW_OP_ENUM_X, LW_OP_ENUM_C) LW_OPL_COUNT };
#undef LW_OP_ENUM_X
#undef LW_OP_ENUM_C

#endif
