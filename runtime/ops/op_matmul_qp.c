/* Packing the block products' weights once (op_matmul_qp.h); the packed
 * product is split over the thread pool by op_matmul_qn.c. */
#include "op_matmul_qp.h"

#include "op_matmul_qn_decode.h"
#include "op_matmul_qn_matrix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t panels(int rows) { return (size_t)(rows + 15) / 16; }

/* Zeroed storage for rows x ldp; panels past rows stay zero (they add
 * nothing and are never stored). cz > 0: no c (made from s, lw_qp.cz). */
static lw_status qp_alloc(lw_qp *p, int rows, int ldp, int gs, int nib, float cz, const char *what)
{
    memset(p, 0, sizeof *p);
    size_t np = panels(rows), ng = (size_t)ldp / (16 * (size_t)gs);
    size_t nu = np * (size_t)ldp * 16 >> nib, nf = np * ng * 16 * sizeof(float);
    p->u = aligned_alloc(64, nu);
    p->s = aligned_alloc(64, nf);
    p->c = cz > 0 ? NULL : aligned_alloc(64, nf);
    if (!p->u || !p->s || (cz <= 0 && !p->c)) {
        lw_qp_free(p);
        return lw_fail(LW_ERR_NOMEM, "%s: packed copy of %d x %d", what, rows, ldp);
    }
    memset(p->u, 0, nu), memset(p->s, 0, nf);
    if (p->c) memset(p->c, 0, nf);
    p->rows = rows, p->cols = ldp, p->c0 = 0, p->ldp = ldp, p->gs = gs, p->nib = nib, p->cz = cz > 0 ? cz : 0.0f;
    return LW_OK;
}

static const lw_qn_segment *segment_of(const lw_qn_matrix *m, int o)
{
    for (int i = 0; i < m->nseg; i++)
        if (o >= m->seg[i].row0 && o < m->seg[i].row0 + m->seg[i].rows) return &m->seg[i];
    return NULL;
}

typedef struct {
    uint8_t *u;
    float *s, *m, *c;
} row_scratch;

static lw_status scratch_alloc(row_scratch *r, int ld)
{
    r->u = malloc((size_t)ld);
    r->s = malloc((size_t)ld / 16 * sizeof(float));
    r->m = malloc((size_t)ld / 32 * sizeof(float));
    r->c = malloc((size_t)ld / 16 * sizeof(float));
    if (r->u && r->s && r->m && r->c) return LW_OK;
    free(r->u), free(r->s), free(r->m), free(r->c);
    return lw_fail(LW_ERR_NOMEM, "packing a block matrix: a row of %d", ld);
}

static void scratch_free(row_scratch *r) { free(r->u), free(r->s), free(r->m), free(r->c); }

static void decode(const lw_qn_matrix *m, int o, row_scratch r)
{
    const lw_qn_segment *sg = segment_of(m, o);
    qn_decode_row(sg->type, sg->data + (size_t)(o - sg->row0) * sg->row_bytes, m->ld, r.u, r.s, r.m, r.c);
}

lw_status lw_qn_pack_forward(lw_qn_matrix *m) { return lw_qn_pack_forward_as(m, true); }

lw_status lw_qn_pack_forward_as(lw_qn_matrix *m, bool nibbles)
{
    if (!m->owns || !m->nseg) return lw_fail(LW_ERR_INVALID, "packing a block matrix: not an owning matrix");
    int gs = 2, nib = nibbles ? 1 : 0, z = qn_zero(m->seg[0].type);
    for (int i = 0; i < m->nseg; i++) {
        uint32_t t = m->seg[i].type;
        if (t == LW_QN_Q6_K) gs = 1;   /* scales per 16 columns */
        if (t != LW_QN_Q4_0 && t != LW_QN_Q4_1 && t != LW_QN_Q4_K) nib = 0;   /* u up to 31 or 255 */
        if (qn_zero(t) != z) z = 0;   /* asymmetric (0), or zero points that differ: c stored */
    }
    lw_qp p;
    row_scratch r;
    lw_status st = qp_alloc(&p, m->out, m->ld, gs, nib, (float)z, "block matrix");
    if (st) return st;
    if ((st = scratch_alloc(&r, m->ld))) {
        lw_qp_free(&p);
        return st;
    }
    const int ld = m->ld, ng = ld / (16 * gs);
    for (int o = 0; o < m->out; o++) {
        decode(m, o, r);
        const size_t P = (size_t)o / 16, j = (size_t)o % 16;
        uint8_t *pu = p.u + P * lw_qp_panel_u_bytes(&p);
        if (nib) /* columns 4q..4q+3 in the low (q even) or high (q odd) nibbles of pair q / 2 */
            for (int q = 0; q < ld / 4; q++)
                for (int k = 0; k < 4; k++) {
                    uint8_t v = r.u[4 * q + k];
                    if (v > 15) {
                        scratch_free(&r), lw_qp_free(&p);
                        return lw_fail(LW_ERR_FORMAT, "packing a 4-bit block matrix: row %d column %d holds %d",
                                       o, 4 * q + k, v);
                    }
                    pu[(size_t)(q / 2) * 64 + j * 4 + (size_t)k] |= (uint8_t)(v << (4 * (q % 2)));
                }
        else
            for (int q = 0; q < ld / 4; q++) memcpy(pu + (size_t)q * 64 + j * 4, r.u + 4 * q, 4);
        float *ps = p.s + P * (size_t)ng * 16, *pc = p.c ? p.c + P * (size_t)ng * 16 : NULL;
        /* with gs = 2 both halves of a block share s and c (every 32-column
         * format, and the K-quants' sub-blocks of 32) */
        for (int G = 0; G < ng; G++) {
            ps[(size_t)G * 16 + j] = r.s[G * gs];
            if (!p.c) { /* the kernel's s * -z must be the decoded c, bit for bit */
                float made = r.s[G * gs] * -(float)z;
                if (memcmp(&made, &r.c[G * gs], sizeof made)) {
                    scratch_free(&r), lw_qp_free(&p);
                    return lw_fail(LW_ERR_FORMAT, "packing a block matrix: row %d group %d: c %.9g is not -%d s (%.9g)",
                                   o, G, r.c[G * gs], z, made);
                }
            } else
                pc[(size_t)G * 16 + j] = r.c[G * gs];
        }
    }
    scratch_free(&r);
    m->fwd = p;
    return LW_OK;
}

lw_status lw_qn_pack_backward(lw_qn_matrix *m)
{
    if (!m->owns || !m->nseg) return lw_fail(LW_ERR_INVALID, "packing a block matrix: not an owning matrix");
    const int in = m->in, ld = m->ld, out = m->out, ldo = (out + 31) / 32 * 32, nbo = ldo / 32;
    lw_qp p;
    row_scratch r;
    lw_status st = qp_alloc(&p, in, ldo, 2, 0, 0.0f, "block matrix transposed");
    if (st) return st;
    float *buf = malloc((size_t)32 * ld * sizeof *buf);
    if (!buf || (st = scratch_alloc(&r, ld))) {
        free(buf);
        lw_qp_free(&p);
        return st ? st : lw_fail(LW_ERR_NOMEM, "packing a block matrix transposed: %d x %d", out, in);
    }
    for (int ob = 0; ob < nbo; ob++) {
        /* 32 rows of w dequantised as lw_qn_dequant_row does (zeros past out) */
        for (int j = 0; j < 32; j++) {
            float *d = buf + (size_t)j * ld;
            int o = ob * 32 + j;
            if (o >= out) {
                memset(d, 0, (size_t)ld * sizeof *d);
                continue;
            }
            decode(m, o, r);
            const int z = qn_zero(segment_of(m, o)->type);
            for (int i = 0; i < ld; i++) {
                float t = r.s[i / 16] * (float)((int)r.u[i] - z);
                d[i] = t + r.m[i / 32];
            }
        }
        /* column i of those rows is one block of w^T's row i: quantised as
         * Q8_0 (d = max|v| / 127, q = round(v / d)), held as u = q + 128 */
        for (int i = 0; i < in; i++) {
            float v[32], amax = 0.0f;
            for (int j = 0; j < 32; j++) v[j] = buf[(size_t)j * ld + i], amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            const size_t P = (size_t)i / 16, li = (size_t)i % 16;
            uint8_t *pu = p.u + P * (size_t)ldo * 16;
            for (int j = 0; j < 32; j++) {
                float t = roundf(v[j] * id);
                t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;
                size_t k = (size_t)ob * 32 + (size_t)j;
                pu[(k / 4) * 64 + li * 4 + k % 4] = (uint8_t)((int)t + 128);
            }
            p.s[(P * (size_t)nbo + (size_t)ob) * 16 + li] = d;
            p.c[(P * (size_t)nbo + (size_t)ob) * 16 + li] = -(128.0f * d);
        }
    }
    free(buf);
    scratch_free(&r);
    m->bwd = p;
    return LW_OK;
}
