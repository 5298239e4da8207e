/* The model kernels' C twins (twin.h): each lw_twin_<kernel> does what
 * templates/model_kernels.cu.in's kernel of that name does, on host memory,
 * with the model's constants read from lw_twin_set_model's config. Where an
 * op of runtime/ops/ops.h computes the same thing (the CPU twin that
 * tests/gpu/check_kernels_gpu.c holds the kernel to) it is called; the
 * rest (attention with its log-sum-exp, LoRA, the fused cross-entropy) is
 * the template written out as loops. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_blas.h"
#include "kernel_launchers.h"
#include "ops.h"
#include "twin.h"

#define LW_COMMON_HOST_ONLY
#include "common.cuh"

lw_twin_counts lw_twin_count;
static const lw_model_config *C;

void lw_twin_set_model(const lw_model_config *c) { C = c; }

int lw_twin_kernel_index(const char *name)
{
    for (int i = 0; i < LW_MODEL_KERNEL_COUNT && i < 32; i++)
        if (!strcmp(lw_model_kernel_name(i), name)) return i;
    return -1;
}

static lw_status ran(const char *name)
{
    if (!C) return lw_fail(LW_ERR_INVALID, "host twin: kernel %s launched before lw_twin_set_model", name);
    lw_twin_count.launches++;
    int i = lw_twin_kernel_index(name);
    if (i >= 0) lw_twin_count.by_kernel[i]++;
    return LW_OK;
}
#define RAN()                                                                                                      \
    do {                                                                                                           \
        lw_status st_ = ran(__func__ + strlen("lw_twin_"));                                                        \
        if (st_) return st_;                                                                                       \
    } while (0)

static float embed_scale(void) { return C->scale_embeddings ? sqrtf((float)C->hidden) : 1.f; }
static float attn_scale(void) { return C->query_scale > 0 ? C->query_scale : 1.f / sqrtf((float)C->head_dim); }

lw_status lw_twin_embedding_forward(lw_launch L, float *y, const int *ids, const float *table, int T)
{
    RAN();
    embedding_forward(y, ids, table, T, C->hidden, embed_scale());
    return LW_OK;
}

lw_status lw_twin_residual_rmsnorm_forward(lw_launch L, float *x, float *y, float *rstd, const float *residual_in,
                                           const float *w, int T)
{
    RAN();
    size_t n = (size_t)T * C->hidden;
    if (residual_in)
        for (size_t i = 0; i < n; i++) x[i] += residual_in[i];
    rmsnorm_forward(y, rstd, x, w, T, C->hidden, C->norm_eps, C->norm);
    return LW_OK;
}

lw_status lw_twin_rmsnorm_backward(lw_launch L, float *dx, float *dw, const float *dy, const float *x, const float *w,
                                   const float *rstd, int T)
{
    RAN();
    rmsnorm_backward(dx, dw, dy, x, w, rstd, T, C->hidden, C->norm);
    return LW_OK;
}

/* y may be x (in place): the kernel reads a row's sum of squares before it writes. */
lw_status lw_twin_qk_rmsnorm_forward(lw_launch L, float *y, float *rstd, const float *x, const float *w, int rows)
{
    RAN();
    rmsnorm_forward(y, rstd, x, w, rows, C->head_dim, C->norm_eps, C->norm);
    return LW_OK;
}

lw_status lw_twin_qk_rmsnorm_backward(lw_launch L, float *dx, float *dw, const float *dy, const float *x,
                                      const float *w, const float *rstd, int rows)
{
    RAN();
    rmsnorm_backward(dx, dw, dy, x, w, rstd, rows, C->head_dim, C->norm);
    return LW_OK;
}

/* The kernel's lw_rope_inv_freq is ops.h's rope_inv_freq (scaled: the
 * config's scaling; not: none); sign -1 is RoPE's backward. */
lw_status lw_twin_rope_apply(lw_launch L, float *x, const int *pos, int T, int n_heads, float base, float sign,
                             int scaled, int head_dim)
{
    RAN();
    float inv[512];
    if (head_dim != C->head_dim || head_dim / 2 > 512)
        return lw_fail(LW_ERR_INVALID, "host twin: rope_apply with head_dim %d (model %d)", head_dim, C->head_dim);
    lw_rope_scaling none = {.kind = LW_ROPE_SCALING_NONE};
    rope_inv_freq(inv, head_dim, base, scaled ? &C->rope_scaling : &none);
    bool inter = lw_rope_interleaved(C);
    if (sign > 0) rope_forward(x, pos, inv, T, n_heads, head_dim, inter);
    else rope_backward(x, pos, inv, T, n_heads, head_dim, inter);
    return LW_OK;
}

lw_status lw_twin_glu_forward(lw_launch L, float *out, const float *gate, const float *up, int n)
{
    RAN();
    glu_forward(out, gate, up, n, C->activation);
    return LW_OK;
}

lw_status lw_twin_glu_backward(lw_launch L, float *dgate, float *dup, const float *dout, const float *gate,
                               const float *up, int n)
{
    RAN();
    glu_backward(dgate, dup, dout, gate, up, n, C->activation);
    return LW_OK;
}

lw_status lw_twin_add_forward(lw_launch L, float *y, const float *x, int n)
{
    RAN();
    for (int i = 0; i < n; i++) y[i] += x[i];
    return LW_OK;
}

lw_status lw_twin_copy_forward(lw_launch L, float *y, const float *x, int n)
{
    RAN();
    memmove(y, x, (size_t)n * sizeof *y);
    return LW_OK;
}

lw_status lw_twin_bias_add_forward(lw_launch L, float *y, const float *b, int T, int n)
{
    RAN();
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++) y[(size_t)t * n + j] += b[j];
    return LW_OK;
}

/* common.cuh's lw_visible_keys: query i sees keys [0, sink_end) and [first, last]. */
static void visible(int Tk, int q_offset, int window, int n_sink, int i, int *sink_end, int *first, int *last)
{
    int a = i + q_offset;
    *last = Tk - 1 < a ? Tk - 1 : a;
    *first = window > 0 && a - window + 1 > 0 ? a - window + 1 : 0;
    int s = n_sink > 0 ? n_sink : 0;
    *sink_end = s < *last + 1 ? s : *last + 1;
    if (*sink_end >= *first) *first = *sink_end = 0;
}

static bool seen(int j, int sink_end, int first, int last) { return j <= last && (j < sink_end || j >= first); }

/* common.cuh's lw_key_row: packed segments put a row's own keys (j >= gap_at) gap rows further on. */
static size_t key_row(int j, int gap_at, int gap) { return (size_t)(j >= gap_at ? j + gap : j); }

/* lw_attention_row over every head of query row i: mask index i_mask, keys through key_row. */
static void attention_row(float *out, float *lse, const float *q, const float *k, const float *v, int Tq, int Tk,
                          int q_offset, int window, int n_sink, int i, int i_mask, int gap_at, int gap)
{
    int Hq = C->n_heads, Hkv = C->n_kv_heads, D = C->head_dim;
    float scale = attn_scale(), s[Tk > 0 ? Tk : 1];
    for (int h = 0; h < Hq; h++) {
        int hk = h / (Hq / Hkv), se, f, l;
        visible(Tk, q_offset, window, n_sink, i_mask, &se, &f, &l);
        const float *qi = q + ((size_t)i * Hq + h) * D;
        float m = -INFINITY, sum = 0.f;
        for (int j = 0; j < Tk; j++) {
            if (!seen(j, se, f, l)) continue;
            const float *kj = k + (key_row(j, gap_at, gap) * Hkv + hk) * D;
            float d = 0.f;
            for (int c = 0; c < D; c++) d += qi[c] * scale * kj[c];
            s[j] = d;
            m = d > m ? d : m;
        }
        float *oi = out + ((size_t)i * Hq + h) * D;
        memset(oi, 0, (size_t)D * sizeof *oi);
        for (int j = 0; j < Tk; j++) {
            if (!seen(j, se, f, l)) continue;
            float p = expf(s[j] - m);
            sum += p;
            const float *vj = v + (key_row(j, gap_at, gap) * Hkv + hk) * D;
            for (int c = 0; c < D; c++) oi[c] += p * vj[c];
        }
        float inv = sum > 0.f ? 1.f / sum : 0.f;
        for (int c = 0; c < D; c++) oi[c] *= inv;
        if (lse) lse[(size_t)h * Tq + i] = m + logf(sum);
    }
}

static void attention_row_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                   const float *lse, const float *q, const float *k, const float *v, int Tq, int Tk,
                                   int q_offset, int window, int n_sink, int i, int i_mask, int gap_at, int gap)
{
    int Hq = C->n_heads, Hkv = C->n_kv_heads, D = C->head_dim;
    float scale = attn_scale();
    for (int h = 0; h < Hq; h++) {
        int hk = h / (Hq / Hkv), se, f, l;
        visible(Tk, q_offset, window, n_sink, i_mask, &se, &f, &l);
        size_t row = ((size_t)i * Hq + h) * D;
        float delta = 0.f, Lse = lse[(size_t)h * Tq + i];
        for (int c = 0; c < D; c++) delta += dout[row + c] * out[row + c];
        for (int j = 0; j < Tk; j++) {
            if (!seen(j, se, f, l)) continue;
            size_t kv = (key_row(j, gap_at, gap) * Hkv + hk) * D;
            float s = 0.f, dp = 0.f;
            for (int c = 0; c < D; c++) s += q[row + c] * k[kv + c], dp += dout[row + c] * v[kv + c];
            float p = expf(s * scale - Lse), ds = p * (dp - delta) * scale;
            for (int c = 0; c < D; c++) {
                if (dq) dq[row + c] += ds * k[kv + c];
                if (dk) dk[kv + c] += ds * q[row + c];
                if (dv) dv[kv + c] += p * dout[row + c];
            }
        }
    }
}

lw_status lw_twin_attention_forward(lw_launch L, float *out, float *lse, const float *q, const float *k,
                                    const float *v, int Tq, int Tk, int q_offset, int window, int n_sink, int n_heads)
{
    RAN();
    for (int i = 0; i < Tq; i++) attention_row(out, lse, q, k, v, Tq, Tk, q_offset, window, n_sink, i, i, INT_MAX, 0);
    return LW_OK;
}

lw_status lw_twin_attention_decode_forward(lw_launch L, float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *pos, int Tq, int window, int n_sink,
                                           int n_heads)
{
    RAN();
    int q_offset = n_sink + pos[0];
    for (int i = 0; i < Tq; i++)
        attention_row(out, lse, q, k, v, Tq, q_offset + Tq, q_offset, window, n_sink, i, i, INT_MAX, 0);
    return LW_OK;
}

lw_status lw_twin_kv_cache_store(lw_launch L, float *cache, const float *rows, const int *pos, int T, int n_sink,
                                 int kv_dim)
{
    RAN();
    if (kv_dim != C->n_kv_heads * C->head_dim)
        return lw_fail(LW_ERR_INVALID, "host twin: kv_cache_store with kv dim %d (model %d)", kv_dim,
                       C->n_kv_heads * C->head_dim);
    for (int t = 0; t < T; t++)
        memcpy(cache + ((size_t)n_sink + pos[t]) * kv_dim, rows + (size_t)t * kv_dim, (size_t)kv_dim * sizeof *cache);
    return LW_OK;
}

lw_status lw_twin_attention_backward(lw_launch L, float *dq, float *dk, float *dv, const float *dout,
                                     const float *out, const float *lse, const float *q, const float *k,
                                     const float *v, int Tq, int Tk, int q_offset, int window, int n_sink,
                                     int n_heads)
{
    RAN();
    for (int i = 0; i < Tq; i++)
        attention_row_backward(dq, dk, dv, dout, out, lse, q, k, v, Tq, Tk, q_offset, window, n_sink, i, i, INT_MAX,
                               0);
    return LW_OK;
}

/* The template's attention_varlen_*: row i is position i - seg_start[i] of
 * its segment, over the head keys and its segment's rows. */
lw_status lw_twin_attention_varlen_forward(lw_launch L, float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *seg_start, int Tq, int head, int window,
                                           int n_sink, int n_heads)
{
    RAN();
    for (int i = 0; i < Tq; i++) {
        int s = seg_start[i];
        attention_row(out, lse, q, k, v, Tq, head + i - s + 1, head, window, n_sink, i, i - s, head, s);
    }
    return LW_OK;
}

lw_status lw_twin_attention_varlen_backward(lw_launch L, float *dq, float *dk, float *dv, const float *dout,
                                            const float *out, const float *lse, const float *q, const float *k,
                                            const float *v, const int *seg_start, int Tq, int head, int window,
                                            int n_sink, int n_heads)
{
    RAN();
    for (int i = 0; i < Tq; i++) {
        int s = seg_start[i];
        attention_row_backward(dq, dk, dv, dout, out, lse, q, k, v, Tq, head + i - s + 1, head, window, n_sink, i,
                               i - s, head, s);
    }
    return LW_OK;
}

/* ---- LoRA: the template's lw_lora_in / lw_lora_out and its dropout draw ---- */

static int lora_in(int target)
{
    int qd = C->n_heads * C->head_dim;
    return target == 3 ? qd : target == 6 ? C->ffn : C->hidden;
}

static int lora_out(int target)
{
    int qd = C->n_heads * C->head_dim, kvd = C->n_kv_heads * C->head_dim;
    switch (target) {
    case 0: return qd;
    case 1: case 2: return kvd;
    case 3: case 6: return C->hidden;
    default: return C->ffn;
    }
}

static bool kept(unsigned long long stream, float dropout, int pos, int j)
{
    return dropout <= 0.f || lw_lora_kept(stream, lw_dropout_cut(dropout), pos, j);
}

/* u[rank] = s A dropout(x_row) */
static void lora_down(float *u, const float *xr, const float *A, int rank, int in, float scale, float dropout,
                      unsigned long long stream, int pos)
{
    float keep_scale = 1.f / (1.f - dropout);
    for (int kk = 0; kk < rank; kk++) {
        float s = 0.f;
        for (int j = 0; j < in; j++)
            if (kept(stream, dropout, pos, j)) s += A[(size_t)kk * in + j] * (xr[j] * keep_scale);
        u[kk] = s * scale;
    }
}

lw_status lw_twin_lora_forward(lw_launch L, float *y, const float *x, const float *A, const float *B, const int *pos,
                               int T, int rank, int target, float scale, float dropout, unsigned long long seed,
                               int layer)
{
    RAN();
    if (target < 0 || target >= LW_LORA_TARGETS) return LW_OK;
    int in = lora_in(target), out = lora_out(target);
    unsigned long long stream = lw_lora_stream(seed, layer, target);
    float u[rank > 0 ? rank : 1];
    for (int t = 0; t < T; t++) {
        lora_down(u, x + (size_t)t * in, A, rank, in, scale, dropout, stream, pos[t]);
        for (int o = 0; o < out; o++) {
            float s = 0.f;
            for (int kk = 0; kk < rank; kk++) s += B[(size_t)o * rank + kk] * u[kk];
            y[(size_t)t * out + o] += s;
        }
    }
    return LW_OK;
}

lw_status lw_twin_lora_backward_input(lw_launch L, float *dx, float *u, float *du, const float *x, const float *dy,
                                      const float *A, const float *B, const int *pos, int T, int rank, int target,
                                      float scale, float dropout, unsigned long long seed, int layer)
{
    RAN();
    if (target < 0 || target >= LW_LORA_TARGETS) return LW_OK;
    int in = lora_in(target), out = lora_out(target);
    unsigned long long stream = lw_lora_stream(seed, layer, target);
    float keep_scale = 1.f / (1.f - dropout);
    for (int t = 0; t < T; t++) {
        float *ur = u + (size_t)t * rank, *dur = du + (size_t)t * rank;
        const float *dyr = dy + (size_t)t * out;
        lora_down(ur, x + (size_t)t * in, A, rank, in, scale, dropout, stream, pos[t]);
        for (int kk = 0; kk < rank; kk++) {
            float g = 0.f;
            for (int o = 0; o < out; o++) g += B[(size_t)o * rank + kk] * dyr[o];
            dur[kk] = g * scale;
        }
        if (!dx) continue;
        for (int j = 0; j < in; j++) {
            if (!kept(stream, dropout, pos[t], j)) continue;
            float s = 0.f;
            for (int kk = 0; kk < rank; kk++) s += A[(size_t)kk * in + j] * dur[kk];
            dx[(size_t)t * in + j] += s * keep_scale;
        }
    }
    return LW_OK;
}

lw_status lw_twin_lora_backward_weights(lw_launch L, float *dA, float *dB, const float *u, const float *du,
                                        const float *x, const float *dy, const int *pos, int T, int rank, int target,
                                        float dropout, unsigned long long seed, int layer, int in, int out)
{
    RAN();
    if (target < 0 || target >= LW_LORA_TARGETS) return LW_OK;
    if (in != lora_in(target) || out != lora_out(target))
        return lw_fail(LW_ERR_INVALID, "host twin: lora_backward_weights sizes %d x %d, target %d is %d x %d", in, out,
                       target, lora_in(target), lora_out(target));
    unsigned long long stream = lw_lora_stream(seed, layer, target);
    float keep_scale = 1.f / (1.f - dropout);
    for (int kk = 0; kk < rank; kk++)
        for (int j = 0; j < in; j++) {
            float s = 0.f;
            for (int t = 0; t < T; t++)
                if (kept(stream, dropout, pos[t], j)) s += du[(size_t)t * rank + kk] * (x[(size_t)t * in + j] * keep_scale);
            dA[(size_t)kk * in + j] += s;
        }
    for (int o = 0; o < out; o++)
        for (int kk = 0; kk < rank; kk++) {
            float s = 0.f;
            for (int t = 0; t < T; t++) s += dy[(size_t)t * out + o] * u[(size_t)t * rank + kk];
            dB[(size_t)o * rank + kk] += s;
        }
    return LW_OK;
}

lw_status lw_twin_cross_entropy_forward_backward(lw_launch L, float *dlogits, float *loss, const float *logits,
                                                 const int *targets, int T, float dloss)
{
    RAN();
    int V = C->vocab;
    for (int t = 0; t < T; t++) {
        if (targets[t] < 0) continue;
        const float *row = logits + (size_t)t * V;
        float m = -INFINITY, sum = 0.f;
        for (int c = 0; c < V; c++) m = row[c] > m ? row[c] : m;
        for (int c = 0; c < V; c++) sum += expf(row[c] - m);
        float log_z = m + logf(sum);
        loss[t] = log_z - row[targets[t]];
        if (!dlogits) continue;
        for (int c = 0; c < V; c++)
            dlogits[(size_t)t * V + c] += dloss * (expf(row[c] - log_z) - (c == targets[t] ? 1.f : 0.f));
    }
    return LW_OK;
}

lw_status lw_twin_f32_to_bf16(lw_launch L, unsigned short *y, const float *x, int n)
{
    RAN();
    for (int i = 0; i < n; i++) y[i] = lw_bf16_from_f32(x[i]);
    return LW_OK;
}
