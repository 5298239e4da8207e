// Shared device helpers for every generated kernel file. No manifest value
// reaches this file: it is copied verbatim.
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
// j <= i + q_offset - window.
template <int D>
__device__ void lw_attention_row(float *out, float *lse, const float *q, const float *k, const float *v,
                                 int Tq, int Tk, int Hq, int Hkv, int causal, int q_offset, int window,
                                 float scale, int i, int h)
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
    int last = causal ? min(Tk - 1, i + q_offset) : Tk - 1;
    int first = window > 0 ? max(0, i + q_offset - window + 1) : 0;
    for (int j = first; j <= last; j++) {
        const float *kj = k + ((size_t)j * Hkv + hk) * D;
        float s = 0.f;
        for (int c = 0; c < PER_LANE; c++) {
            int d = lane + c * LW_WARP;
            if (d < D) s += qr[c] * kj[d];
        }
        s = lw_warp_sum(s);
        float m_new = fmaxf(m, s);
        float corr = expf(m - m_new), p = expf(s - m_new);
        l = l * corr + p;
        const float *vj = v + ((size_t)j * Hkv + hk) * D;
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
                                          float scale, int i, int h)
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
    int last = causal ? min(Tk - 1, i + q_offset) : Tk - 1;
    int first = window > 0 ? max(0, i + q_offset - window + 1) : 0;
    for (int j = first; j <= last; j++) {
        size_t kv = ((size_t)j * Hkv + hk) * D;
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
