/* The block matrix (op_matmul_qn_matrix.h): its formats, segments, views,
 * bytes and rows widened, and the storage of its packed copies. */
#include "op_matmul_qn_matrix.h"

#include "op_matmul_qn_decode.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    uint32_t type;
    const char *name;
    int block_elems, block_bytes;
} formats[] = {
    {LW_QN_Q4_0, "Q4_0", 32, 18}, {LW_QN_Q4_1, "Q4_1", 32, 20}, {LW_QN_Q5_0, "Q5_0", 32, 22},
    {LW_QN_Q5_1, "Q5_1", 32, 24}, {LW_QN_Q8_0, "Q8_0", 32, 34}, {LW_QN_Q4_K, "Q4_K", 256, 144},
    {LW_QN_Q5_K, "Q5_K", 256, 176}, {LW_QN_Q6_K, "Q6_K", 256, 210},
};

static int format_index(uint32_t type)
{
    for (int i = 0; i < (int)(sizeof formats / sizeof formats[0]); i++)
        if (formats[i].type == type) return i;
    return -1;
}

bool lw_qn_type_supported(uint32_t type) { return format_index(type) >= 0; }

const char *lw_qn_type_name(uint32_t type)
{
    int i = format_index(type);
    return i < 0 ? "?" : formats[i].name;
}

size_t lw_qn_row_bytes(uint32_t type, int in)
{
    int i = format_index(type);
    if (i < 0 || in <= 0 || in % formats[i].block_elems) return 0;
    return (size_t)(in / formats[i].block_elems) * (size_t)formats[i].block_bytes;
}

void lw_qn_matrix_init(lw_qn_matrix *m, int in)
{
    memset(m, 0, sizeof *m);
    m->in = m->ld = in;
    m->owns = true;
}

lw_status lw_qn_matrix_append(lw_qn_matrix *m, uint32_t type, const void *blocks, int rows)
{
    size_t rb = lw_qn_row_bytes(type, m->ld);
    if (!rb) return lw_fail(LW_ERR_UNSUPPORTED, "native matrix: no product reads type %u rows of %d", type, m->ld);
    if (!m->owns || rows <= 0 || m->nseg == LW_QN_MAX_SEGMENTS)
        return lw_fail(LW_ERR_INVALID, "native matrix: cannot append %d rows (%d segments)", rows, m->nseg);
    uint8_t *copy = malloc((size_t)rows * rb);
    if (!copy) return lw_fail(LW_ERR_NOMEM, "native matrix: %d rows of %s", rows, lw_qn_type_name(type));
    memcpy(copy, blocks, (size_t)rows * rb);
    m->seg[m->nseg++] = (lw_qn_segment){.row0 = m->out, .rows = rows, .type = type, .row_bytes = rb, .data = copy};
    m->out += rows;
    return LW_OK;
}

void lw_qn_matrix_free(lw_qn_matrix *m)
{
    if (m->owns) {
        for (int i = 0; i < m->nseg; i++) free((void *)m->seg[i].data);
        lw_qp_free(&m->fwd), lw_qp_free(&m->bwd);
    }
    memset(m, 0, sizeof *m);
}

lw_qn_matrix lw_qn_rows_view(const lw_qn_matrix *m, int r0, int n)
{
    lw_qn_matrix v = {.out = n, .in = m->in, .ld = m->ld, .owns = false,
                      .fwd = lw_qp_rows_view_fwd(&m->fwd, r0, n), .bwd = lw_qp_rows_view_bwd(&m->bwd, r0, n)};
    for (int i = 0; i < m->nseg; i++) {
        const lw_qn_segment *s = &m->seg[i];
        int a = s->row0 > r0 ? s->row0 : r0, e = s->row0 + s->rows < r0 + n ? s->row0 + s->rows : r0 + n;
        if (a >= e) continue;
        v.seg[v.nseg++] = (lw_qn_segment){.row0 = a - r0, .rows = e - a, .type = s->type, .row_bytes = s->row_bytes,
                                          .data = s->data + (size_t)(a - s->row0) * s->row_bytes};
    }
    return v;
}

size_t lw_qn_matrix_bytes(const lw_qn_matrix *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nseg; i++) n += (size_t)m->seg[i].rows * m->seg[i].row_bytes;
    return n + lw_qp_bytes(&m->fwd) + lw_qp_bytes(&m->bwd);
}

static const lw_qn_segment *segment_of(const lw_qn_matrix *m, int o)
{
    for (int i = 0; i < m->nseg; i++)
        if (o >= m->seg[i].row0 && o < m->seg[i].row0 + m->seg[i].rows) return &m->seg[i];
    return NULL;
}

void lw_qn_dequant_row(const lw_qn_matrix *m, int o, float *dst)
{
    const lw_qn_segment *sg = segment_of(m, o);
    const int ld = m->ld;
    uint8_t *u = malloc((size_t)ld);
    float *s = malloc((size_t)ld / 16 * sizeof *s), *mb = malloc((size_t)ld / 32 * sizeof *mb);
    float *c = malloc((size_t)ld / 16 * sizeof *c), *row = malloc((size_t)ld * sizeof *row);
    if (sg && u && s && mb && c && row) {
        qn_decode_row(sg->type, sg->data + (size_t)(o - sg->row0) * sg->row_bytes, ld, u, s, mb, c);
        qn_widen(sg->type, u, s, mb, ld, row);
        memcpy(dst, row, (size_t)m->in * sizeof *dst);
    } else {
        memset(dst, 0, (size_t)m->in * sizeof *dst);
    }
    free(u), free(s), free(mb), free(c), free(row);
}

/* --- the packed copies' storage (made by op_matmul_qp.c) ---------------------- */

void lw_qp_free(lw_qp *p)
{
    free(p->u), free(p->s), free(p->c);
    memset(p, 0, sizeof *p);
}

static size_t panels(int rows) { return (size_t)(rows + 15) / 16; }

size_t lw_qp_bytes(const lw_qp *p)
{
    if (!p->u) return 0;
    size_t np = panels(p->rows), ng = (size_t)p->ldp / (16 * (size_t)p->gs);
    return np * lw_qp_panel_u_bytes(p) + (p->c ? 2 : 1) * np * ng * 16 * sizeof(float);
}

lw_qp lw_qp_rows_view_fwd(const lw_qp *p, int r0, int n)
{
    lw_qp v;
    memset(&v, 0, sizeof v);
    if (!p->u || r0 % 16 || r0 < 0 || n <= 0 || r0 + n > p->rows) return v;
    size_t P = (size_t)r0 / 16, ng = (size_t)p->ldp / (16 * (size_t)p->gs);
    v = *p;
    v.u = p->u + P * lw_qp_panel_u_bytes(p);
    v.s = p->s + P * ng * 16;
    v.c = p->c ? p->c + P * ng * 16 : NULL;   /* NULL: made from s (cz) */
    v.rows = n;
    return v;
}

lw_qp lw_qp_rows_view_bwd(const lw_qp *p, int r0, int n)
{
    lw_qp v;
    memset(&v, 0, sizeof v);
    /* rows of w are columns of w^T: a view starts at a block of 32 of them
     * (dy's columns past n are zeros, so the stored columns behind them,
     * other rows of w, add nothing) */
    if (!p->u || r0 % 32 || r0 < 0 || n <= 0 || p->c0 + r0 + n > p->ldp) return v;
    v = *p;
    v.c0 = p->c0 + r0;
    v.cols = (n + 31) / 32 * 32;
    return v;
}
