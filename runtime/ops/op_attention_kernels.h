/* The per-path inner loops of op_attention.c (internal): everything the
 * attention of one query row does per key is a dot product or an axpy over
 * head_dim, so these two, on a vector path, are the op's vector code. */
#ifndef LW_OP_ATTENTION_KERNELS_H
#define LW_OP_ATTENTION_KERNELS_H

/* a . b over n floats. */
float attn_dot_avx2(const float *a, const float *b, int n);
float attn_dot_avx512(const float *a, const float *b, int n);
/* y[0..n) += s x[0..n). */
void attn_axpy_avx2(float *y, float s, const float *x, int n);
void attn_axpy_avx512(float *y, float s, const float *x, int n);

#endif
