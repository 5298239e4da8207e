/* Scaled dot-product attention with grouped-query heads, a causal mask, a
 * sliding window and a query offset (a continuation over a cache or a
 * prefix). Memory beyond the outputs is O(1): the probabilities go to att,
 * which backward needs anyway. */
#include "ops.h"

#include "cpu_threads.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

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

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p)
{
    attention_forward_sink(out, att, q, k, v, Tq, Tk, Hq, Hkv, D, p, 0);
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
} attention_job;

/* A call of a few query rows (decode) is microseconds: not worth a
 * fork-join. The partition is the same either way. */
static void for_heads(int n, lw_task_fn fn, attention_job *c)
{
    if (4.0 * c->Hq * c->Tq * c->Tk * c->D < lw_cpu_split_threshold())
        for (int i = 0; i < n; i++) fn(c, i);
    else
        lw_parallel_for(n, fn, c);
}

static void forward_head(void *ctx, int h0)
{
    const attention_job *c = ctx;
    float *out = c->out, *att = c->att;
    const float *q = c->q, *k = c->k, *v = c->v;
    int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D, n_sink = c->n_sink;
    const lw_attention_params *p = c->p;
    for (int h = h0; h < h0 + 1; h++) {
        int hk = kv_head(h, Hq, Hkv);
        for (int i = 0; i < Tq; i++) {
            const float *qi = q + ((size_t)i * Hq + h) * D;
            float *oi = out + ((size_t)i * Hq + h) * D;
            float *ai = att + ((size_t)h * Tq + i) * Tk;
            int sink_hi, lo, hi;
            visible_keys(p, n_sink, i, Tk, &sink_hi, &lo, &hi);
            memset(ai, 0, (size_t)Tk * sizeof *ai);
            memset(oi, 0, (size_t)D * sizeof *oi);
            if (lo >= hi && sink_hi == 0) continue;  /* nothing visible: output 0 */
            float mx = -INFINITY;
            FOR_VISIBLE(j) {
                ai[j] = dot(qi, k + ((size_t)j * Hkv + hk) * D, D) * p->scale;
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
                const float *vj = v + ((size_t)j * Hkv + hk) * D;
                for (int d = 0; d < D; d++) oi[d] += ai[j] * vj[d];
            }
        }
    }
}

void attention_forward_sink(float *out, float *att, const float *q, const float *k, const float *v,
                            int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink)
{
    attention_job c = {.out = out, .att = att, .q = q, .k = k, .v = v, .Tq = Tq, .Tk = Tk, .Hq = Hq, .Hkv = Hkv,
                       .D = D, .n_sink = n_sink, .p = p};
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
                if (ai[j] != 0.0f) pdp += (double)ai[j] * dot(doi, v + ((size_t)j * Hkv + hk) * D, D);
            float *dqi = dq ? dq + ((size_t)i * Hq + h) * D : NULL;
            FOR_VISIBLE(j) {
                float pj = ai[j];
                if (pj == 0.0f) continue;
                const float *kj = k + ((size_t)j * Hkv + hk) * D;
                const float *vj = v + ((size_t)j * Hkv + hk) * D;
                float ds = pj * (dot(doi, vj, D) - (float)pdp) * p->scale;
                if (dqi)
                    for (int d = 0; d < D; d++) dqi[d] += ds * kj[d];
                if (dk) {
                    float *dkj = dk + ((size_t)j * Hkv + hk) * D;
                    for (int d = 0; d < D; d++) dkj[d] += ds * qi[d];
                }
                if (dv) {
                    float *dvj = dv + ((size_t)j * Hkv + hk) * D;
                    for (int d = 0; d < D; d++) dvj[d] += pj * doi[d];
                }
            }
        }
    }
}

void attention_backward_sink(float *dq, float *dk, float *dv, const float *dout, const float *att,
                             const float *q, const float *k, const float *v,
                             int Tq, int Tk, int Hq, int Hkv, int D, const lw_attention_params *p, int n_sink)
{
    attention_job c = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .catt = att, .q = q, .k = k, .v = v, .Tq = Tq,
                       .Tk = Tk, .Hq = Hq, .Hkv = Hkv, .D = D, .n_sink = n_sink, .p = p};
    for_heads(Hkv, backward_kv_head, &c);
}
