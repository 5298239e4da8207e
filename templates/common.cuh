// Shared device helpers for every generated kernel file. No manifest value
// reaches this file: it is copied verbatim.
//
// The first part is plain C as well as CUDA: runtime/model/lora.c includes this
// file with LW_COMMON_HOST_ONLY defined and gets only that part, so the CPU
// and the GPU draw dropout masks from one definition, bit for bit.
#ifdef LW_COMMON_HOST_ONLY
#define LW_HOST_DEVICE static inline
#else
#define LW_HOST_DEVICE __device__ __forceinline__
#endif

#define LW_LORA_TARGETS 7   // q, k, v, o, gate, up, down: lw_lora_target's order

// splitmix64's finaliser: a counter-based hash, so a mask element is a pure
// function of its coordinates and backward redraws what forward drew.
LW_HOST_DEVICE unsigned long long lw_mix64(unsigned long long z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The stream of one adapted projection (layer, target) under a step's seed.
LW_HOST_DEVICE unsigned long long lw_lora_stream(unsigned long long seed, int layer, int target)
{
    return lw_mix64(seed ^ lw_mix64((unsigned long long)layer * LW_LORA_TARGETS + (unsigned long long)target));
}

// Dropout p as the cut a 53-bit draw is compared with: p * 2^53 is exact in
// double, so host and device compare the same numbers.
LW_HOST_DEVICE double lw_dropout_cut(float p) { return (double)p * 9007199254740992.0; }

// Is column j of the row at position pos kept? (probability 1 - p)
LW_HOST_DEVICE int lw_lora_kept(unsigned long long stream, double cut, int pos, int j)
{
    unsigned long long at = (unsigned long long)(unsigned)pos << 24 | (unsigned long long)(unsigned)j;
    unsigned long long h = lw_mix64(stream ^ at);
    return (double)(h >> 11) >= cut;
}

// The deep prefix's mask (runtime/model/deep_prefix.c): element i of z [P, d].
LW_HOST_DEVICE int lw_prefix_kept(unsigned long long seed, unsigned long long i, double cut)
{
    return (double)(lw_mix64(seed ^ lw_mix64(i)) >> 11) >= cut;
}

#ifndef LW_COMMON_HOST_ONLY
// ---- device only -----------------------------------------------------------
#define LW_WARP 32
#define LW_NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ float lw_warp_sum(float v)
{
    for (int o = LW_WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float lw_warp_max(float v)
{
    for (int o = LW_WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum; blockDim.x a multiple of 32, at most 1024.
__device__ float lw_block_sum(float v)
{
    __shared__ float partial[32];
    int lane = threadIdx.x % LW_WARP, warp = threadIdx.x / LW_WARP;
    v = lw_warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int n_warps = blockDim.x / LW_WARP;
    v = threadIdx.x < n_warps ? partial[threadIdx.x] : 0.f;
    if (warp == 0) v = lw_warp_sum(v);
    if (threadIdx.x == 0) partial[0] = v;
    __syncthreads();
    v = partial[0];
    __syncthreads();
    return v;
}

__device__ __forceinline__ float lw_gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; // sqrt(2/pi)
    return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float lw_gelu_tanh_grad(float x)
{
    const float k = 0.7978845608028654f;
    float u = k * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * k * (1.f + 3.f * 0.044715f * x * x);
}

__device__ __forceinline__ float lw_silu(float x) { return x / (1.f + expf(-x)); }

__device__ __forceinline__ float lw_silu_grad(float x)
{
    float s = 1.f / (1.f + expf(-x));
    return s * (1.f + x * (1.f - s));
}

// Attention for one (query, head) per warp with an online softmax over the
// keys: no Tq x Tk buffer. q [Tq, Hq, D], k/v [Tk, Hkv, D], out [Tq, Hq, D],
// lse [Hq, Tq] (log-sum-exp, kept for the backward pass). Query i sits at key
// position i + q_offset; causal hides j > i + q_offset; window > 0 also hides
// j <= i + q_offset - window, except the n_sink first keys (a deep prefix):
// the window spares them, the causal mask and Tk do not. This is
// op_attention.c's visible_keys, so GPU and CPU see the same keys.
struct lw_key_range {
    int sink_end, first, last;   // keys [0, sink_end) and [first, last]
};

__device__ __forceinline__ lw_key_range lw_visible_keys(int Tk, int causal, int q_offset, int window, int n_sink,
                                                        int i)
{
    int at = i + q_offset;
    lw_key_range r;
    r.last = causal ? min(Tk - 1, at) : Tk - 1;
    r.first = window > 0 ? max(0, at - window + 1) : 0;
    r.sink_end = min(max(n_sink, 0), r.last + 1);
    if (r.sink_end >= r.first) r.first = r.sink_end = 0;   // the sinks reach the window: one interval
    return r;
}

__device__ __forceinline__ int lw_first_key(lw_key_range r) { return r.sink_end > 0 ? 0 : r.first; }
// The visible key after j: from the last sink over the gap to the window.
__device__ __forceinline__ int lw_next_key(lw_key_range r, int j) { return j + 1 == r.sink_end ? r.first : j + 1; }

// Packed segments (attention_varlen_*): row i's mask index is i_mask (its
// row within its segment) and its keys j >= gap_at lie gap rows further on
// (its own segment's rows, after the other segments' before it); the
// defaults leave one sequence as it was.
#define LW_NO_GAP 0x7fffffff
__device__ __forceinline__ size_t lw_key_row(int j, int gap_at, int gap) { return (size_t)(j >= gap_at ? j + gap : j); }

template <int D>
__device__ void lw_attention_row(float *out, float *lse, const float *q, const float *k, const float *v,
                                 int Tq, int Tk, int Hq, int Hkv, int causal, int q_offset, int window,
                                 int n_sink, float scale, int i, int h, int i_mask = -1, int gap_at = LW_NO_GAP,
                                 int gap = 0)
{
    constexpr int PER_LANE = (D + LW_WARP - 1) / LW_WARP;
    int lane = threadIdx.x % LW_WARP;
    int hk = h / (Hq / Hkv);
    const float *qi = q + ((size_t)i * Hq + h) * D;
    float qr[PER_LANE], acc[PER_LANE];
    for (int c = 0; c < PER_LANE; c++) {
        int d = lane + c * LW_WARP;
        qr[c] = d < D ? qi[d] * scale : 0.f;
        acc[c] = 0.f;
    }
    float m = LW_NEG_INF, l = 0.f;
    lw_key_range r = lw_visible_keys(Tk, causal, q_offset, window, n_sink, i_mask >= 0 ? i_mask : i);
    for (int j = lw_first_key(r); j <= r.last; j = lw_next_key(r, j)) {
        const float *kj = k + (lw_key_row(j, gap_at, gap) * Hkv + hk) * D;
        float s = 0.f;
        for (int c = 0; c < PER_LANE; c++) {
            int d = lane + c * LW_WARP;
            if (d < D) s += qr[c] * kj[d];
        }
        s = lw_warp_sum(s);
        float m_new = fmaxf(m, s);
        float corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
        const float *vj = v + (lw_key_row(j, gap_at, gap) * Hkv + hk) * D;
        for (int c = 0; c < PER_LANE; c++) {
            int d = lane + c * LW_WARP;
            if (d < D) acc[c] = acc[c] * corr + p * vj[d];
        }
        m = m_new;
    }
    float inv = l > 0.f ? 1.f / l : 0.f;
    float *oi = out + ((size_t)i * Hq + h) * D;
    for (int c = 0; c < PER_LANE; c++) {
        int d = lane + c * LW_WARP;
        if (d < D) oi[d] = acc[c] * inv;
    }
    if (lane == 0 && lse) lse[(size_t)h * Tq + i] = m + logf(l);
}

// Backward of lw_attention_row, one warp per (query, head): recomputes the
// probabilities from lse; dk and dv are shared across queries (atomics).
template <int D>
__device__ void lw_attention_row_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                          const float *lse, const float *q, const float *k, const float *v,
                                          int Tq, int Tk, int Hq, int Hkv, int causal, int q_offset, int window,
                                          int n_sink, float scale, int i, int h, int i_mask = -1,
                                          int gap_at = LW_NO_GAP, int gap = 0)
{
    constexpr int PER_LANE = (D + LW_WARP - 1) / LW_WARP;
    int lane = threadIdx.x % LW_WARP;
    int hk = h / (Hq / Hkv);
    size_t row = ((size_t)i * Hq + h) * D;
    float qr[PER_LANE], dor[PER_LANE], dqr[PER_LANE];
    float delta = 0.f; // sum_d dout * out
    for (int c = 0; c < PER_LANE; c++) {
        int d = lane + c * LW_WARP;
        qr[c] = d < D ? q[row + d] : 0.f;
        dor[c] = d < D ? dout[row + d] : 0.f;
        dqr[c] = 0.f;
        if (d < D) delta += dor[c] * out[row + d];
    }
    delta = lw_warp_sum(delta);
    float L = lse[(size_t)h * Tq + i];
    lw_key_range r = lw_visible_keys(Tk, causal, q_offset, window, n_sink, i_mask >= 0 ? i_mask : i);
    for (int j = lw_first_key(r); j <= r.last; j = lw_next_key(r, j)) {
        size_t kv = (lw_key_row(j, gap_at, gap) * Hkv + hk) * D;
        float s = 0.f, dp = 0.f;
        for (int c = 0; c < PER_LANE; c++) {
            int d = lane + c * LW_WARP;
            if (d < D) { s += qr[c] * k[kv + d]; dp += dor[c] * v[kv + d]; }
        }
        s = lw_warp_sum(s) * scale;
        dp = lw_warp_sum(dp);
        float p = expf(s - L);
        float ds = p * (dp - delta) * scale;
        for (int c = 0; c < PER_LANE; c++) {
            int d = lane + c * LW_WARP;
            if (d < D) {
                dqr[c] += ds * k[kv + d];
                if (dk) atomicAdd(&dk[kv + d], ds * qr[c]);
                if (dv) atomicAdd(&dv[kv + d], p * dor[c]);
            }
        }
    }
    for (int c = 0; c < PER_LANE; c++) {
        int d = lane + c * LW_WARP;
        if (d < D && dq) dq[row + d] += dqr[c];
    }
}

// Row-wise RMSNorm over C columns, one block per row. gemma: scale by (1 + w).
template <int C>
__device__ void lw_rmsnorm_row(float *y, float *rstd, const float *x, const float *w, float eps, int gemma, int t)
{
    const float *xr = x + (size_t)t * C;
    float ss = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ss += xr[c] * xr[c];
    ss = lw_block_sum(ss);
    float r = rsqrtf(ss / C + eps);
    if (threadIdx.x == 0 && rstd) rstd[t] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = w ? (gemma ? 1.f + w[c] : w[c]) : 1.f;
        y[(size_t)t * C + c] = xr[c] * r * g;
    }
}

template <int C>
__device__ void lw_rmsnorm_row_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                                        const float *rstd, int gemma, int t)
{
    const float *xr = x + (size_t)t * C, *dyr = dy + (size_t)t * C;
    float r = rstd[t], dot = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = w ? (gemma ? 1.f + w[c] : w[c]) : 1.f;
        dot += dyr[c] * g * xr[c];
    }
    dot = lw_block_sum(dot);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = w ? (gemma ? 1.f + w[c] : w[c]) : 1.f;
        if (dx) dx[(size_t)t * C + c] += r * (dyr[c] * g - xr[c] * r * r * dot / C);
        if (dw) atomicAdd(&dw[c], dyr[c] * xr[c] * r);
    }
}
#endif // LW_COMMON_HOST_ONLY
