/* Products on GGUF blocks (op_matmul_qn.h): the quantisation of x, the
 * dispatch to a path (the packed kernel of op_matmul_qp.h over the thread
 * pool when the matrix has a packed copy), the scalar reference kernel, the
 * backward and --dtype q8's matrices. The matrix itself is
 * op_matmul_qn_matrix.c's. */
#include "op_matmul_qn.h"

#include "cpu_threads.h"
#include "op_matmul_qn_decode.h"
#include "op_matmul_qn_kernels.h"
#include "op_matmul_qn_matrix.h"
#include "op_matmul_qp_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const lw_qn_segment *segment_of(const lw_qn_matrix *m, int o)
{
    for (int i = 0; i < m->nseg; i++)
        if (o >= m->seg[i].row0 && o < m->seg[i].row0 + m->seg[i].rows) return &m->seg[i];
    return NULL;
}

/* Row o to fp32 through a caller's decode scratch. */
static void dequant_row(const lw_qn_segment *sg, int o, int in, qn_scratch sc, float *dst)
{
    qn_decode_row(sg->type, sg->data + (size_t)(o - sg->row0) * sg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
    qn_widen(sg->type, sc.u, sc.s, sc.m, in, dst);
}

static void scratch_free(qn_scratch *sc)
{
    free(sc->u), free(sc->s), free(sc->m), free(sc->c), free(sc->up), free(sc->sp), free(sc->cp);
}

static lw_status scratch_alloc(qn_scratch *sc, int in)
{
    sc->u = malloc((size_t)in);
    sc->s = malloc((size_t)(in / 16) * sizeof(float));
    sc->m = malloc((size_t)(in / 32) * sizeof(float));
    sc->c = malloc((size_t)(in / 16) * sizeof(float));
    sc->up = aligned_alloc(64, (size_t)in * 16);
    sc->sp = aligned_alloc(64, (size_t)in * sizeof(float));
    sc->cp = aligned_alloc(64, (size_t)in * sizeof(float));
    if (sc->u && sc->s && sc->m && sc->c && sc->up && sc->sp && sc->cp) return LW_OK;
    scratch_free(sc);
    return lw_fail(LW_ERR_NOMEM, "native product: scratch for a row of %d", in);
}

/* fp32 to fp16, to nearest even (GGML_FP32_TO_FP16 on x86 rounds so too). */
static uint16_t f16_of(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    if (x >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (x > 0x7f800000 ? 0x200 : 0));
    if (x >= 0x477ff000) return (uint16_t)(sign | 0x7c00);   /* >= 65520 rounds past 65504 */
    if (x < 0x38800000) {                                     /* below 2^-14: a subnormal half */
        float v;
        memcpy(&v, &x, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f));   /* v / 2^-24, exact scaling */
    }
    uint32_t h = (x - 0x38000000u) >> 13, rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

lw_status lw_qn_matrix_quantize_q8_0(lw_qn_matrix *m, const float *w, int out, int in)
{
    memset(m, 0, sizeof *m);
    if (out <= 0 || in <= 0 || in > (1 << 28)) return lw_fail(LW_ERR_INVALID, "q8 matrix: shape %d x %d", out, in);
    int ld = (in + 31) / 32 * 32, nb = ld / 32;
    size_t rb = (size_t)nb * 34;
    uint8_t *d = malloc((size_t)out * rb);
    if (!d) return lw_fail(LW_ERR_NOMEM, "q8 matrix: %d x %d", out, in);
    for (int o = 0; o < out; o++)
        for (int b = 0; b < nb; b++) {
            float v[32];
            for (int j = 0; j < 32; j++) v[j] = b * 32 + j < in ? w[(size_t)o * in + b * 32 + j] : 0.0f;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
            float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
            uint8_t *blk = d + (size_t)o * rb + (size_t)b * 34;
            uint16_t h = f16_of(dd);
            memcpy(blk, &h, 2);
            for (int j = 0; j < 32; j++) {
                float t = roundf(v[j] * id);
                blk[2 + j] = (uint8_t)(int8_t)(t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t);
            }
        }
    m->in = in, m->ld = ld, m->out = out, m->owns = true, m->nseg = 1;
    m->seg[0] = (lw_qn_segment){.row0 = 0, .rows = out, .type = LW_QN_Q8_0, .row_bytes = rb, .data = d};
    return LW_OK;
}

/* --- x quantised per 32, as llama.cpp's Q8_0 ------------------------------- */

void lw_qn_act_free(lw_qn_act *a)
{
    free(a->qx), free(a->sx), free(a->xf), free(a->sxl);
    memset(a, 0, sizeof *a);
}

lw_status lw_qn_act_quantize(lw_qn_act *a, const float *x, int T, int xin, int in)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st ? st : lw_qn_act_quantize_on(path, a, x, T, xin, in);
}

/* The AVX-512 quantisation is per row: split by rows over the pool (each
 * piece a view of its rows of a), the same bytes for any split. A row of
 * `in` columns weighed as 8 flops a column (a max, a scale, a round). */
typedef struct {
    const lw_qn_act *a;
    const float *x;
    int T, xin, in, pieces;
} act_job;

static void act_piece(void *ctx, int k)
{
    const act_job *j = ctx;
    int t0 = lw_range_start(j->T, k, j->pieces), t1 = lw_range_start(j->T, k + 1, j->pieces);
    size_t nb = (size_t)j->in / 32, r = (size_t)t0;
    lw_qn_act v = {.T = t1 - t0, .in = j->in, .qx = j->a->qx + r * (size_t)j->in, .sx = j->a->sx + r * nb,
                   .xf = j->a->xf + r * 2 * nb, .sxl = j->a->sxl + r * 8 * nb};
    qn_act_quantize_avx512(&v, j->x + r * (size_t)j->xin, t1 - t0, j->xin, j->in);
}

static void act_quantize_par(lw_qn_act *a, const float *x, int T, int xin, int in)
{
    act_job j = {a, x, T, xin, in, 1};
    j.pieces = lw_row_split(8.0 * T * in, T);
    if (j.pieces == 1) qn_act_quantize_avx512(a, x, T, xin, in);
    else lw_parallel_for(j.pieces, act_piece, &j);
}

lw_status lw_qn_act_quantize_on(lw_cpu_path path, lw_qn_act *a, const float *x, int T, int xin, int in)
{
    memset(a, 0, sizeof *a);
    if (path > lw_cpu_path_detected())
        return lw_fail(LW_ERR_UNSUPPORTED, "native product: this CPU cannot run the %s path", lw_cpu_path_name(path));
    if (T < 0 || in <= 0 || in % 32 || xin <= 0 || xin > in)
        return lw_fail(LW_ERR_INVALID, "native product: x of %d x %d into rows of %d", T, xin, in);
    size_t n = (size_t)T * (size_t)in;
    a->T = T, a->in = in;
    a->qx = malloc(n ? n : 1);
    a->sx = malloc((n / 32 ? n / 32 : 1) * sizeof(float));
    a->xf = malloc((n / 16 ? n / 16 : 1) * sizeof(float));
    a->sxl = malloc((n / 4 ? n / 4 : 1) * sizeof(float));
    if (!a->qx || !a->sx || !a->xf || !a->sxl) {
        lw_qn_act_free(a);
        return lw_fail(LW_ERR_NOMEM, "native product: x of %d x %d", T, in);
    }
    if (path == LW_CPU_AVX512) {
        act_quantize_par(a, x, T, xin, in);
        return LW_OK;
    }
    const int nb = in / 32;
    for (size_t b = 0; b < n / 32; b++) {
        /* block b is columns [c0, c0 + 32) of row t; past xin, zeros */
        const size_t t = b / (size_t)nb;
        const int c0 = (int)(b % (size_t)nb) * 32;
        float v[32];
        if (c0 + 32 <= xin) memcpy(v, x + t * (size_t)xin + (size_t)c0, sizeof v);
        else
            for (int j = 0; j < 32; j++) v[j] = c0 + j < xin ? x[t * (size_t)xin + (size_t)(c0 + j)] : 0.0f;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        int8_t *q = a->qx + b * 32;
        int sum[2] = {0, 0};
        for (int j = 0; j < 32; j++) {
            float t = v[j] * id;
            t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;   /* fp32 can round a hair past 127 */
            q[j] = (int8_t)(int)(t + (t >= 0.0f ? 0.5f : -0.5f)); /* half away from zero, as roundf */
            sum[j / 16] += q[j];
        }
        a->sx[b] = d;
        a->xf[2 * b] = d * (float)sum[0], a->xf[2 * b + 1] = d * (float)sum[1];
        for (int l = 0; l < 8; l++) a->sxl[b * 8 + l] = d;
    }
    return LW_OK;
}

/* --- the scalar reference -------------------------------------------------- */

void qn_forward_scalar(float *y, const lw_qn_act *a, const lw_qn_segment *seg, int out, const float *b, int n0,
                       int n1, qn_scratch sc)
{
    const int in = a->in;
    for (int o = n0; o < n1; o++) {
        qn_decode_row(seg->type, seg->data + (size_t)(o - seg->row0) * seg->row_bytes, in, sc.u, sc.s, sc.m, sc.c);
        for (int t = 0; t < a->T; t++) {
            const int8_t *qx = a->qx + (size_t)t * in;
            const float *sx = a->sx + (size_t)t * (in / 32);
            float acc = 0.0f;
            for (int bk = 0; bk < in / 32; bk++) {
                float blk = 0.0f;
                for (int h = 0; h < 2; h++) {
                    int32_t I = 0;
                    for (int j = bk * 32 + h * 16; j < bk * 32 + h * 16 + 16; j++) I += (int32_t)sc.u[j] * qx[j];
                    blk += sc.s[2 * bk + h] * (float)I;
                }
                acc += sx[bk] * blk;
            }
            acc += qn_offsets(a->xf + (size_t)t * (in / 16), sc.c, in);
            y[(size_t)t * out + o] = acc + (b ? b[o] : 0.0f);
        }
    }
}

/* --- the packed product (op_matmul_qp.h) over the pool, by ranges of panels:
 * y[T, p->rows] (+)= a @ p^T (+ b) ----------------------------------------- */

typedef struct {
    float *y;
    int ldy, n;
    const lw_qn_act *a;
    const lw_qp *p;
    const float *b;
    bool acc;
} qp_job;

static void qp_range(void *ctx, int c)
{
    const qp_job *j = ctx;
    int np = (j->p->rows + 15) / 16;   /* panels */
    qp_forward_avx512(j->y, j->ldy, j->a, j->p, j->b, j->acc, lw_range_start(np, c, j->n),
                      lw_range_start(np, c + 1, j->n));
}

static void qp_forward_par(float *y, int ldy, const lw_qn_act *a, const lw_qp *p, const float *b, bool acc)
{
    qp_job j = {.y = y, .ldy = ldy, .a = a, .p = p, .b = b, .acc = acc};
    j.n = lw_out_split(lw_split_work(2.0 * a->T * (double)p->cols * p->rows, a->T), p->rows);
    lw_parallel_for(j.n, qp_range, &j);
}

/* --- dispatch -------------------------------------------------------------- */

static lw_status check_path(lw_cpu_path path)
{
    if (path > lw_cpu_path_detected())
        return lw_fail(LW_ERR_UNSUPPORTED, "native matmul: this CPU cannot run the %s path", lw_cpu_path_name(path));
    return LW_OK;
}

lw_status matmul_qn_forward_cols(lw_cpu_path path, float *y, const lw_qn_act *a, const lw_qn_matrix *w,
                                 const float *b, int n0, int n1)
{
    lw_status st = check_path(path);
    if (st) return st;
    if (a->in != w->ld || n0 < 0 || n1 > w->out || n0 > n1)
        return lw_fail(LW_ERR_INVALID, "native matmul: x has %d columns, weight %d x %d, outputs [%d, %d)", a->in,
                       w->out, w->ld, n0, n1);
    if (a->T == 0 || n0 == n1) return LW_OK;
    qn_scratch sc;
    if ((st = scratch_alloc(&sc, w->ld))) return st;
    for (int i = 0; i < w->nseg; i++) {
        const lw_qn_segment *sg = &w->seg[i];
        int s0 = sg->row0 > n0 ? sg->row0 : n0, s1 = sg->row0 + sg->rows < n1 ? sg->row0 + sg->rows : n1;
        if (s0 >= s1) continue;
        if (path == LW_CPU_AVX512) qn_forward_avx512(y, a, sg, w->out, b, s0, s1, sc);
        else if (path == LW_CPU_AVX2) qn_forward_avx2(y, a, sg, w->out, b, s0, s1, sc);
        else qn_forward_scalar(y, a, sg, w->out, b, s0, s1, sc);
    }
    scratch_free(&sc);
    return LW_OK;
}

/* The per-call paths (AVX2, scalar, and AVX-512 without a packed copy)
 * over the thread pool: ranges of whole blocks of 16 outputs, each output
 * computed alone as in the whole product (the tests hold output ranges to
 * it bit for bit), so any thread count gives the same bits. Each range
 * decodes into its own scratch. */
typedef struct {
    lw_cpu_path path;
    float *y;
    const lw_qn_act *a;
    const lw_qn_matrix *w;
    const float *b;
    int n;
    lw_status st[LW_THREADS_MAX];
} cols_job;

static void cols_range(void *ctx, int c)
{
    cols_job *j = ctx;
    int blocks = (j->w->out + 15) / 16;
    int n0 = lw_range_start(blocks, c, j->n) * 16, n1 = lw_range_start(blocks, c + 1, j->n) * 16;
    if (n1 > j->w->out) n1 = j->w->out;
    j->st[c] = matmul_qn_forward_cols(j->path, j->y, j->a, j->w, j->b, n0, n1);
}

static lw_status forward_cols_par(lw_cpu_path path, float *y, const lw_qn_act *a, const lw_qn_matrix *w,
                                  const float *b)
{
    cols_job j = {.path = path, .y = y, .a = a, .w = w, .b = b};
    j.n = lw_out_split(lw_split_work(2.0 * a->T * (double)w->ld * w->out, a->T), w->out);
    if (j.n == 1) return matmul_qn_forward_cols(path, y, a, w, b, 0, w->out);
    lw_parallel_for(j.n, cols_range, &j);
    for (int c = 0; c < j.n; c++)
        if (j.st[c]) return j.st[c];
    return LW_OK;
}

lw_status matmul_qn_forward_on(lw_cpu_path path, float *y, const float *x, const lw_qn_matrix *w, const float *b,
                               int T)
{
    lw_status st = check_path(path);
    if (st) return st;
    if (!w->nseg || T < 0) return lw_fail(LW_ERR_INVALID, "native matmul: no weights or T = %d", T);
    lw_qn_act a;
    if ((st = lw_qn_act_quantize_on(path, &a, x, T, w->in, w->ld))) return st;
    if (path == LW_CPU_AVX512 && w->fwd.u && T > 0) qp_forward_par(y, w->out, &a, &w->fwd, b, false);
    else st = forward_cols_par(path, y, &a, w, b);
    lw_qn_act_free(&a);
    return st;
}

lw_status matmul_qn_forward(float *y, const float *x, const lw_qn_matrix *w, const float *b, int T)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st ? st : matmul_qn_forward_on(path, y, x, w, b, T);
}

/* --- backward: dx += dy @ w ------------------------------------------------
 * w is decoded BWD_CHUNK rows at a time (the rows as lw_qn_dequant_row gives
 * them); each chunk goes to every row of dx in groups of 4 rows of w
 * (qn_backward_rows, op_matmul_qn_kernels.h), so every element of dx sums
 * over the rows of w in the same order whatever the chunking, the path or
 * the split: the rows of dx are cut into one range per thread (each decodes
 * the chunks itself), which changes no sum. */

enum { BWD_CHUNK = 32 };   /* the chunk a multiple of the group: the groups never move */

typedef struct {
    lw_cpu_path path;
    float *dx;
    const float *dy;
    const lw_qn_matrix *w;
    int T, n;
    qn_scratch *sc;   /* one per range */
    float **wf;       /* BWD_CHUNK decoded rows per range */
} qn_bwd_job;

static void qn_bwd_range(void *ctx, int c)
{
    const qn_bwd_job *j = ctx;
    const lw_qn_matrix *w = j->w;
    const int in = w->in, ld = w->ld, out = w->out;
    int t0 = lw_range_start(j->T, c, j->n), t1 = lw_range_start(j->T, c + 1, j->n);
    float *wf = j->wf[c];
    for (int o0 = 0; o0 < out; o0 += BWD_CHUNK) {
        int n = out - o0 < BWD_CHUNK ? out - o0 : BWD_CHUNK;
        for (int k = 0; k < n; k++) {
            if (j->path == LW_CPU_SCALAR) dequant_row(segment_of(w, o0 + k), o0 + k, ld, j->sc[c], wf + (size_t)k * ld);
            else qn_dequant_row_avx2(segment_of(w, o0 + k), o0 + k, ld, j->sc[c], wf + (size_t)k * ld);
        }
        float *dx = j->dx + (size_t)t0 * in;
        const float *dy = j->dy + (size_t)t0 * out + o0;
        if (j->path == LW_CPU_SCALAR) qn_backward_cols_scalar(dx, in, dy, out, wf, ld, n, t1 - t0, 0, in);
        else qn_backward_rows_avx2(dx, in, dy, out, wf, ld, n, t1 - t0);
    }
}

lw_status matmul_qn_backward_x_on(lw_cpu_path path, float *dx, const float *dy, const lw_qn_matrix *w, int T)
{
    lw_status st = check_path(path);
    if (st) return st;
    if (!w->nseg || T < 0) return lw_fail(LW_ERR_INVALID, "native matmul backward: no weights or T = %d", T);
    const int in = w->in, ld = w->ld, out = w->out;
    if (path == LW_CPU_AVX512 && w->bwd.u && T > 0) { /* int8 through w^T (op_matmul_qp.h) */
        lw_qn_act a;
        if ((st = lw_qn_act_quantize_on(path, &a, dy, T, out, w->bwd.cols))) return st;
        qp_forward_par(dx, in, &a, &w->bwd, NULL, true);
        lw_qn_act_free(&a);
        return LW_OK;
    }
    if (T == 0) return LW_OK;
    qn_scratch sc[LW_THREADS_MAX] = {{0}};
    float *wf[LW_THREADS_MAX] = {0};
    qn_bwd_job j = {.path = path, .dx = dx, .dy = dy, .w = w, .T = T, .sc = sc, .wf = wf};
    j.n = lw_row_split(2.0 * T * in * out, T);
    for (int c = 0; c < j.n && !st; c++) {
        st = scratch_alloc(&sc[c], ld);
        if (!st && !(wf[c] = malloc((size_t)BWD_CHUNK * ld * sizeof(float))))
            st = lw_fail(LW_ERR_NOMEM, "native matmul backward: %d rows of %d", BWD_CHUNK, ld);
    }
    if (!st) lw_parallel_for(j.n, qn_bwd_range, &j);
    for (int c = 0; c < j.n; c++) {
        scratch_free(&sc[c]);   /* free(NULL) for a range that got none */
        free(wf[c]);
    }
    return st;
}

lw_status matmul_qn_backward_x(float *dx, const float *dy, const lw_qn_matrix *w, int T)
{
    lw_cpu_path path;
    lw_status st = lw_cpu_path_get(&path);
    return st ? st : matmul_qn_backward_x_on(path, dx, dy, w, T);
}
