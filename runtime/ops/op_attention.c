/* Scaled dot-product attention with grouped-query heads, a causal mask, a
 * sliding window and a query offset (a continuation over a cache or a
 * prefix). Memory beyond the outputs is O(1): the probabilities go to att,
 * which backward needs anyway; with att NULL (inference) the forward is one
 * online-softmax pass per query row and stores no scores. */
#include "ops.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_path.h"
#include "cpu_threads.h"
#include "op_attention_kernels.h"

/* The keys query i may see form one interval [*lo, *hi) of [0, Tk), plus
 * the sink keys [0, *sink_hi) the window spares (*sink_hi < *lo, else 0). */
static void visible_keys(const lw_attention_params *p, int n_sink, int i, int Tk, int *sink_hi, int *lo, int *hi)
{
    long long first = 0, end = Tk;
    long long at = (long long)i + p->q_offset;  /* the query's own key position */
    if (p->causal && at + 1 < end) end = at + 1;
    if (p->window > 0 && at - p->window + 1 > first) first = at - p->window + 1;
    if (end < 0) end = 0;
    if (first > end) first = end;
    long long sink = n_sink < end ? n_sink : end;
    if (sink >= first) first = 0;   /* the sinks reach the window: one interval */
    *sink_hi = sink > 0 && sink < first ? (int)sink : 0;
    *lo = (int)first;
    *hi = (int)end;
}

/* The visible key after j: from the last sink key over the gap to lo. */
static inline int next_key(int j, int sink_hi, int lo) { return j + 1 == sink_hi ? lo : j + 1; }
#define FOR_VISIBLE(j) for (int j = sink_hi > 0 ? 0 : lo; j < hi; j = next_key(j, sink_hi, lo))

/* Query head h reads kv head h / (Hq / Hkv), written so that it stays below
 * Hkv even if a caller breaks Hq % Hkv == 0. */
static int kv_head(int h, int Hq, int Hkv) { return (int)((long long)h * Hkv / Hq); }

/* Four independent partial sums: the loop is latency-bound otherwise, and the
 * fixed order keeps results deterministic. */
static float dot(const float *a, const float *b, int n)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int d = 0;
    for (; d + 4 <= n; d += 4) {
        s0 += a[d] * b[d];
        s1 += a[d + 1] * b[d + 1];
        s2 += a[d + 2] * b[d + 2];
        s3 += a[d + 3] * b[d + 3];
    }
    for (; d < n; d++) s0 += a[d] * b[d];
    return (s0 + s1) + (s2 + s3);
}

static void axpy(float *y, float s, const float *x, int n)
{
    for (int d = 0; d < n; d++) y[d] += s * x[d];
}

/* The dot product and axpy over head_dim of the process's path (cpu_path.h):
 * the scalar ones above are the reference, the AVX2/AVX-512 ones
 * (op_attention_kernels.h) sum in another order. Chosen once per call. */
typedef struct {
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float s, const float *x, int n);
} head_loops;

static head_loops loops_of_path(void)
{
    lw_cpu_path p;
    (void)lw_cpu_path_get(&p);   /* a bad LWC_CPU_PATH leaves the detected path */
    switch (p) {
    case LW_CPU_AVX512: return (head_loops){attn_dot_avx512, attn_axpy_avx512};
    case LW_CPU_AVX2: return (head_loops){attn_dot_avx2, attn_axpy_avx2};
    case LW_CPU_SCALAR: break;
    }
    return (head_loops){dot, axpy};
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p)
{
    attention_forward_sink(out, att, q, k, v, Tq, Tk, Hq, Hkv, D, p, 0);
}

/* Without att (nothing will run backward): FlashAttention's online softmax,
 * one pass over the visible keys with a running max m and sum l; when a
 * score raises m, what was accumulated is rescaled by e^(m_old - m_new).
 * No score row is stored: memory is the output row. */
static void attend_online(float *oi, const float *qi, const float *k, const float *v, int Hkv, int hk, int D,
                          const lw_attention_params *p, int sink_hi, int lo, int hi, const head_loops *L)
{
    float m = -INFINITY;
    double l = 0.0;
    FOR_VISIBLE(j) {
        float sj = L->dot(qi, k + ((size_t)j * Hkv + hk) * D, D) * p->scale;
        if (sj > m) {
            float c = expf(m - sj);   /* 0 on the first key (m = -inf) */
            l *= c;
            for (int d = 0; d < D; d++) oi[d] *= c;
            m = sj;
        }
        float w = expf(sj - m);
        l += w;
        L->axpy(oi, w, v + ((size_t)j * Hkv + hk) * D, D);
    }
    float inv = (float)(1.0 / l);
    for (int d = 0; d < D; d++) oi[d] *= inv;
}

/* The arguments of one attention call, for the tasks of the thread pool:
 * the forward runs one query head a task (each writes its own out columns
 * and att rows), the backward one kv head a task with its query heads in
 * order (dk and dv of a kv head are sums over its query heads, so they stay
 * in one task and keep their order): bit-identical for any thread count. */
typedef struct {
    float *out, *att, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *catt;
    int Tq, Tk, Hq, Hkv, D, n_sink;
    const lw_attention_params *p;
    head_loops L;
} attention_job;

/* A short call is not worth a fork-join. One query row (decode) runs at
 * ~20 GFLOP/s (a dot, an exp and an axpy a key, bench_attention_decode),
 * a tenth of the products' rate the threshold was set for, so its flops
 * weigh ATTN_ONE_ROW_COST: SmolLM2's 9 heads split from ~46 keys (~5 us).
 * The partition is the same either way. */
#define ATTN_ONE_ROW_COST 10.0
static void for_heads(int n, lw_task_fn fn, attention_job *c)
{
    double w = 4.0 * c->Hq * c->Tq * c->Tk * c->D;
    if ((c->Tq == 1 ? ATTN_ONE_ROW_COST * w : w) < lw_cpu_split_threshold())
        for (int i = 0; i < n; i++) fn(c, i);
    else
        lw_parallel_for(n, fn, c);
}

static void forward_head(void *ctx, int h)
{
    const attention_job *c = ctx;
    float *out = c->out, *att = c->att;
    const float *q = c->q, *k = c->k, *v = c->v;
    int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D, n_sink = c->n_sink;
    const lw_attention_params *p = c->p;
    const head_loops L = c->L;
    {
        int hk = kv_head(h, Hq, Hkv);
        for (int i = 0; i < Tq; i++) {
            const float *qi = q + ((size_t)i * Hq + h) * D;
            float *oi = out + ((size_t)i * Hq + h) * D;
            int sink_hi, lo, hi;
            visible_keys(p, n_sink, i, Tk, &sink_hi, &lo, &hi);
            memset(oi, 0, (size_t)D * sizeof *oi);
            if (!att) {
                if (lo < hi || sink_hi > 0) attend_online(oi, qi, k, v, Hkv, hk, D, p, sink_hi, lo, hi, &L);
                continue;
            }
            float *ai = att + ((size_t)h * Tq + i) * Tk;
            memset(ai, 0, (size_t)Tk * sizeof *ai);
            if (lo >= hi && sink_hi == 0) continue;  /* nothing visible: output 0 */
            float mx = -INFINITY;
            FOR_VISIBLE(j) {
                ai[j] = L.dot(qi, k + ((size_t)j * Hkv + hk) * D, D) * p->scale;
                if (ai[j] > mx) mx = ai[j];
            }
            double sum = 0.0;
            FOR_VISIBLE(j) {
                ai[j] = expf(ai[j] - mx);
                sum += ai[j];
            }
            float inv = (float)(1.0 / sum);
            FOR_VISIBLE(j) {
                ai[j] *= inv;
                L.axpy(oi, ai[j], v + ((size_t)j * Hkv + hk) * D, D);
            }
        }
    }
}

void attention_forward_sink(float *out, float *att, const float *q, const float *k, const float *v,
                            int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink)
{
    attention_job c = {.out = out, .att = att, .q = q, .k = k, .v = v, .Tq = Tq, .Tk = Tk, .Hq = Hq, .Hkv = Hkv,
                       .D = D, .n_sink = n_sink, .p = p, .L = loops_of_path()};
    for_heads(Hq, forward_head, &c);
}

/* With s = scale * q.k, p = softmax(s), dp_j = dout.v_j:
 * ds_j = p_j (dp_j - sum_l p_l dp_l); dq += scale ds_j k_j; dk_j += scale ds_j q;
 * dv_j += p_j dout. The sum is taken in a first pass over the keys and dp_j
 * recomputed in the second, so no scratch buffer is needed. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p)
{
    attention_backward_sink(dq, dk, dv, dout, att, q, k, v, Tq, Tk, Hq, Hkv, D, p, 0);
}

static void backward_kv_head(void *ctx, int g)
{
    const attention_job *c = ctx;
    float *dq = c->dq, *dk = c->dk, *dv = c->dv;
    const float *dout = c->dout, *att = c->catt, *q = c->q, *k = c->k, *v = c->v;
    int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D, n_sink = c->n_sink;
    const lw_attention_params *p = c->p;
    const head_loops L = c->L;
    int per = Hq / Hkv; /* query heads g*per .. (g+1)*per - 1 read kv head g */
    for (int h = g * per; h < (g + 1) * per; h++) {
        int hk = kv_head(h, Hq, Hkv);
        for (int i = 0; i < Tq; i++) {
            const float *qi = q + ((size_t)i * Hq + h) * D;
            const float *doi = dout + ((size_t)i * Hq + h) * D;
            const float *ai = att + ((size_t)h * Tq + i) * Tk;
            int sink_hi, lo, hi;
            visible_keys(p, n_sink, i, Tk, &sink_hi, &lo, &hi);
            double pdp = 0.0;
            FOR_VISIBLE(j)
                if (ai[j] != 0.0f) pdp += (double)ai[j] * L.dot(doi, v + ((size_t)j * Hkv + hk) * D, D);
            float *dqi = dq ? dq + ((size_t)i * Hq + h) * D : NULL;
            FOR_VISIBLE(j) {
                float pj = ai[j];
                if (pj == 0.0f) continue;
                const float *kj = k + ((size_t)j * Hkv + hk) * D;
                const float *vj = v + ((size_t)j * Hkv + hk) * D;
                float ds = pj * (L.dot(doi, vj, D) - (float)pdp) * p->scale;
                if (dqi) L.axpy(dqi, ds, kj, D);
                if (dk) L.axpy(dk + ((size_t)j * Hkv + hk) * D, ds, qi, D);
                if (dv) L.axpy(dv + ((size_t)j * Hkv + hk) * D, pj, doi, D);
            }
        }
    }
}

/* ---- the backward split over query rows, then over keys ------------------
 * One kv head a task (above) leaves one core idle on a model with one kv
 * head (Gemma-3-270M). Split instead in two passes, each over independent
 * pieces, that add in the order of backward_kv_head, so that the results
 * are its bits for any thread count:
 *   rows: a task a range of (query head, row) pairs: the row's sum of p dp,
 *         its ds_j into a scratch laid out as att, and dq_i (a sum over the
 *         row's keys in key order, all within the task);
 *   keys: a task a block of keys: dk_j and dv_j get, for every (query head,
 *         row) in backward_kv_head's order (heads ascending, rows ascending),
 *         the same ds_j q_i and p_j dout_i it added.
 * The scratch is Hq * Tq * Tk floats; without it (out of memory), or below
 * the split threshold, the call runs backward_kv_head. */
typedef struct {
    attention_job *c;
    float *ds;
    int rows, row_pieces, key_block;
} backward_split;

static void backward_rows(void *ctx, int piece)
{
    const backward_split *b = ctx;
    const attention_job *c = b->c;
    const float *dout = c->dout, *att = c->catt, *k = c->k, *v = c->v;
    int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    const head_loops L = c->L;
    int r0 = lw_range_start(b->rows, piece, b->row_pieces), r1 = lw_range_start(b->rows, piece + 1, b->row_pieces);
    for (int r = r0; r < r1; r++) {
        int h = r / Tq, i = r % Tq, hk = kv_head(h, Hq, Hkv);
        const float *doi = dout + ((size_t)i * Hq + h) * D;
        const float *ai = att + (size_t)r * Tk;
        float *dsi = b->ds + (size_t)r * Tk;
        int sink_hi, lo, hi;
        visible_keys(c->p, c->n_sink, i, Tk, &sink_hi, &lo, &hi);
        double pdp = 0.0;
        FOR_VISIBLE(j)
            if (ai[j] != 0.0f) pdp += (double)ai[j] * L.dot(doi, v + ((size_t)j * Hkv + hk) * D, D);
        float *dqi = c->dq ? c->dq + ((size_t)i * Hq + h) * D : NULL;
        FOR_VISIBLE(j) {
            float pj = ai[j];
            if (pj == 0.0f) continue;
            float ds = pj * (L.dot(doi, v + ((size_t)j * Hkv + hk) * D, D) - (float)pdp) * c->p->scale;
            dsi[j] = ds;
            if (dqi) L.axpy(dqi, ds, k + ((size_t)j * Hkv + hk) * D, D);
        }
    }
}

static void backward_keys(void *ctx, int block)
{
    const backward_split *b = ctx;
    const attention_job *c = b->c;
    const float *dout = c->dout, *att = c->catt, *q = c->q;
    int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    const head_loops L = c->L;
    int j0 = block * b->key_block, j1 = j0 + b->key_block < Tk ? j0 + b->key_block : Tk;
    int heads = Hq / Hkv * Hkv;   /* the heads backward_kv_head visits */
    for (int h = 0; h < heads; h++) {
        int hk = kv_head(h, Hq, Hkv);
        for (int i = 0; i < Tq; i++) {
            const float *qi = q + ((size_t)i * Hq + h) * D;
            const float *doi = dout + ((size_t)i * Hq + h) * D;
            const float *ai = att + ((size_t)h * Tq + i) * Tk;
            const float *dsi = b->ds + ((size_t)h * Tq + i) * Tk;
            int sink_hi, lo, hi;
            visible_keys(c->p, c->n_sink, i, Tk, &sink_hi, &lo, &hi);
            for (int j = j0; j < j1; j++) {
                if (!(j < sink_hi || (j >= lo && j < hi))) continue;
                float pj = ai[j];
                if (pj == 0.0f) continue;
                if (c->dk) L.axpy(c->dk + ((size_t)j * Hkv + hk) * D, dsi[j], qi, D);
                if (c->dv) L.axpy(c->dv + ((size_t)j * Hkv + hk) * D, pj, doi, D);
            }
        }
    }
}

/* Keys a task of the second pass: a block's dk and dv rows (2 * 32 * head_dim
 * floats) stay in cache while every query row streams past them. */
enum { KEY_BLOCK = 32 };

void attention_backward_sink(float *dq, float *dk, float *dv, const float *dout, const float *att,
                             const float *q, const float *k, const float *v,
                             int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink)
{
    attention_job c = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .catt = att, .q = q, .k = k, .v = v, .Tq = Tq,
                       .Tk = Tk, .Hq = Hq, .Hkv = Hkv, .D = D, .n_sink = n_sink, .p = p, .L = loops_of_path()};
    bool split = Hq > 0 && Hkv > 0 && Tq > 0 && Tk > 0 && 4.0 * Hq * Tq * Tk * D >= lw_cpu_split_threshold();
    float *ds = split ? malloc((size_t)Hq * Tq * Tk * sizeof *ds) : NULL;
    if (!ds) {
        for_heads(Hkv, backward_kv_head, &c);
        return;
    }
    int threads = lw_threads_get();
    backward_split b = {.c = &c, .ds = ds, .rows = Hq * Tq, .key_block = KEY_BLOCK};
    /* a few pieces a thread: the rows' costs grow with their visible keys */
    b.row_pieces = 4 * threads < b.rows ? 4 * threads : b.rows;
    lw_parallel_for(b.row_pieces, backward_rows, &b);
    if (dk || dv) lw_parallel_for((Tk + KEY_BLOCK - 1) / KEY_BLOCK, backward_keys, &b);
    free(ds);
}
