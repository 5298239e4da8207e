/* How the CPU ops use the process's thread pool (base/thread_pool.h), and
 * the one rule that keeps their results BIT-IDENTICAL for any thread count:
 * work is split only where the pieces are independent (output blocks, rows,
 * heads), never across a sum, and a piece computes exactly what it would
 * compute inside the whole.
 *
 * That second half is not automatic. OpenBLAS's sgemm on a block of output
 * columns is not always bit-equal to the same columns of the whole product
 * (bench/blas_split_invariance.c: 4 of 64 split products differ with its
 * AVX-512 kernels on this machine; its blocking depends on the shape), so
 * the fp32 products cut their outputs into blocks that depend on the shape
 * alone (lw_fixed_blocks), and one thread runs the same blocks as two.
 * Our own kernels (bf16, q8) compute each output row alone, the same in any
 * tile, provided a row is not moved between the one-row (decode) code and
 * the many-row code, which sum in different orders on AVX2: so they are
 * split into row ranges of at least 2 rows when T >= 2 (lw_row_split), and
 * a single row into blocks of outputs (lw_out_split). */
#ifndef LW_CPU_THREADS_H
#define LW_CPU_THREADS_H

#include <stddef.h>

#include "ops.h"
#include "status.h"
#include "thread_pool.h"

/* Sizes the pool to n threads (1..LW_THREADS_MAX) and pins OpenBLAS, when
 * the BLAS is OpenBLAS, to one thread of its own: our pool splits its
 * products instead, and the two would otherwise fight over the cores (and
 * OpenBLAS's own split changes results with its thread count). */
lw_status lw_cpu_threads_set(int n);

/* The work (flops) below which a product or an attention call is not split
 * (default 1 MFLOP: a fork-join's wake-up costs more than the second core
 * gives back). The tests set 0, so that the tiny models' products split
 * too; the partition of the fp32 products depends on it, so set it before
 * the work whose results are compared, never between. */
void lw_cpu_split_threshold_set(double flops);
double lw_cpu_split_threshold(void);

/* The work a call of `flops` on `rows` rows of x counts for against the
 * split threshold. One row (decode) streams its weights, or the KV cache,
 * once from L3 or memory (a token's weights are long gone from L2 by the
 * next token): measured on the VNNI Xeon, a streamed one-row product runs
 * at ~45 GOP/s where the L2-resident shapes run at 200-250 (docs/perf.md,
 * "stop 22"), so a one-row product weighs LW_ONE_ROW_COST times its flops
 * and SmolLM2's 576 x 576 attention output splits too (a spinning
 * hand-off, thread_pool.c, is well under the ~15 us such a product takes;
 * decode's attention has its own weight, op_attention.c). The partition
 * never changes a bit, so this moves time only. */
#define LW_ONE_ROW_COST 5.0
static inline double lw_split_work(double flops, int rows) { return rows == 1 ? LW_ONE_ROW_COST * flops : flops; }

/* Blocks of `cols` outputs for a product of `flops`: a function of the
 * shape only. 1 when the product is too small to be worth a fork-join
 * (then nothing changes against the unsplit call), and 1 in a process that
 * never called lw_cpu_threads_set (its OpenBLAS keeps its own threads).
 * Writes the block width (a multiple of 16) to *width. The blocks are not
 * always bit-equal to the unsplit call (OpenBLAS's Zen kernels: 45 of the 64
 * split products of bench/blas_split_invariance.c differ), so two processes
 * whose results are compared must both size the pool (lw_threads_apply),
 * or both not. */
int lw_fixed_blocks(double flops, int cols, int *width);

/* How many row ranges to cut T rows into: at most one per thread, each of
 * at least 2 rows, and 1 when the work (flops) is too small. Range c of n is
 * [T*c/n, T*(c+1)/n). */
int lw_row_split(double flops, int T);

/* Blocks of 16 outputs for one row (decode): at most one range per thread,
 * in whole blocks of 16: range c of n is blocks [lw_range_start(B, c, n), ...). */
int lw_out_split(double flops, int out);
/* Start of range c of n over `units` (T rows or blocks of 16). */
static inline int lw_range_start(int units, int c, int n) { return (int)((long long)units * c / n); }

/* ---- elementwise and per-row ops split over the pool ----------------------
 * The same results as the ops.h calls they wrap, bit for bit: GLU is
 * elementwise and split at multiples of 64 elements from the array's start
 * (so a vectorised loop sees every element at the same place in its lanes
 * and the same scalar tail), RMSNorm is per row and split by rows (its
 * backward only when the gain's gradient is not wanted: dw sums over rows).
 * RoPE is per row too, split by rows. Below the split threshold they are the
 * plain call. */
void glu_forward_par(float *out, const float *gate, const float *up, int n, lw_activation act);
void glu_backward_par(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n,
                      lw_activation act);
void rmsnorm_forward_par(float *y, float *rstd, const float *x, const float *w, int T, int C, float eps,
                         lw_norm_kind kind);
/* dw must be NULL (frozen gains), as the plan's backward passes it. */
void rmsnorm_backward_par(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int T, int C,
                          lw_norm_kind kind);
/* RoPE is per row (each row turns by its own position): split by rows. */
void rope_forward_par(float *x, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                      bool interleaved);
void rope_backward_par(float *dx, const int *pos, const float *inv_freq, int T, int n_heads, int head_dim,
                       bool interleaved);

/* memset(p, 0, bytes), in page-aligned pieces over the pool when large (a
 * fresh arena's first touch is a page fault a page: both cores take them). */
void lw_zero_par(void *p, size_t bytes);

#endif
