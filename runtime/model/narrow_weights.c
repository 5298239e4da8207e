/* A model's frozen matrices in bf16, q8 or the file's blocks (narrow_weights.h). */
#include "narrow_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_path.h"
#include "op_matmul_qn.h"
#include "op_matmul_qp.h"
#include "weights.h"

/* The set's layout is narrow_store.h's (which reads it); nmat is its
 * matrix, by the short name this file's makers use. */
typedef lw_narrow_mat nmat;

static const char *const dtype_names[] = {"fp32", "bf16", "q8", "native"};

const char *lw_weights_dtype_name(lw_weights_dtype d)
{
    return (unsigned)d < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[d] : "?";
}

bool lw_weights_dtype_parse(const char *s, lw_weights_dtype *out)
{
    if (!s) return false;
    for (int d = 0; d < (int)(sizeof dtype_names / sizeof dtype_names[0]); d++)
        if (!strcmp(s, dtype_names[d])) return *out = (lw_weights_dtype)d, true;
    return false;
}

static bool nmat_set(const nmat *n) { return n->bf16.w || n->bf16.p || n->qn.nseg; }

/* Rows [r0, r0 + n) of a matrix, for the backward (which reads the
 * row-major copy only): no packed copy, owns nothing. */
static nmat rows_view(const nmat *m, int r0, int n)
{
    nmat v;
    memset(&v, 0, sizeof v);
    if (m->bf16.w) v.bf16 = (lw_bf16_matrix){.w = m->bf16.w + (size_t)r0 * m->bf16.ld, .out = n, .in = m->bf16.in,
                                             .ld = m->bf16.ld};
    if (m->qn.nseg) v.qn = lw_qn_rows_view(&m->qn, r0, n);
    return v;
}

/* Without a backward, a bf16 matrix the forward reads packed needs no rows. */
static void drop_rows(nmat *m, bool backward)
{
    lw_cpu_path path;
    if (backward || !m->bf16.p || lw_cpu_path_get(&path) != LW_OK || path != LW_CPU_AVX512) return;
    free(m->bf16.w);
    m->bf16.w = NULL;
}

/* --- bf16 and q8: made from the fp32 matrix -------------------------------- */

static lw_status pack(lw_weights_dtype d, nmat *m, const float *w, int out, int in, bool backward)
{
    lw_status st = d == LW_WEIGHTS_BF16 ? lw_bf16_matrix_pack(&m->bf16, w, out, in)
                                        : lw_qn_matrix_quantize_q8_0(&m->qn, w, out, in);
    if (!st) drop_rows(m, backward);
    return st;
}

/* --- native: the file's blocks ---------------------------------------------- */

/* The parts of one fused matrix, as the file names them. */
typedef struct {
    const char *name[3];
    int rows[3];
    int n;
} parts;

/* Appends the file's blocks of every part to m, or leaves m empty and says
 * on stderr why the matrix stays fp32 (a type no product reads, a shifted
 * tensor, a file with no blocks: safetensors, llama2.c). */
static lw_status native_matrix(const lw_weights *w, const lw_model_config *c, int l, const parts *p, int in, nmat *m)
{
    lw_raw_tensor t[3];
    char name[96];
    for (int i = 0; i < p->n; i++) {
        if (l >= 0) snprintf(name, sizeof name, "blk.%d.%s.weight", l, p->name[i]);
        else snprintf(name, sizeof name, "%s", p->name[i]);
        lw_status st = lw_weights_raw(w, name, &t[i]);
        if (st) return lw_fail_wrap(st, "--dtype native: %s", c->name);
        if (t[i].ndim != 2 || t[i].shape[0] != p->rows[i] || t[i].shape[1] != in)
            return lw_fail(LW_ERR_INVALID, "--dtype native: %s %s has shape %lld x %lld, expected %d x %d", c->name,
                           name, (long long)t[i].shape[0], (long long)(t[i].ndim > 1 ? t[i].shape[1] : 0),
                           p->rows[i], in);
        if (!lw_qn_type_supported(t[i].type) || t[i].add != 0.0f) {
            const char *tn = lw_ggml_type_name(t[i].type);
            fprintf(stderr, "lw: --dtype native: %s %s is %s, which no block product reads: widened to fp32\n",
                    c->name, name, tn ? tn : "an unknown type");
            return LW_OK;
        }
    }
    lw_qn_matrix_init(&m->qn, in);
    for (int i = 0; i < p->n; i++) {
        lw_status st = lw_qn_matrix_append(&m->qn, t[i].type, t[i].data, p->rows[i]);
        if (st) {
            lw_qn_matrix_free(&m->qn);
            return lw_fail_wrap(st, "--dtype native: %s %s", c->name, p->name[i]);
        }
    }
    return LW_OK;
}

/* --- q8 and native: packed once for the int8 panel kernel ------------------- */

/* Which packed copies a block matrix gets (op_matmul_qp.h): on the AVX-512
 * path the forward panels always, and w^T for dx = dy w when the model is
 * differentiated (lw train's receiver). LWC_QN_PACK=0 (none) or fwd (no w^T)
 * turns them off, for A/B measurements and to run the exact backward;
 * LWC_QN_PACK=bytes keeps the 4-bit formats' forward panels one u a byte
 * (the same results bit for bit, twice the bytes: the nibble panels' A/B). */
static lw_status pack_panels(nmat *m, bool backward)
{
    lw_cpu_path path;
    if (!m->qn.nseg || lw_cpu_path_get(&path) != LW_OK || path != LW_CPU_AVX512) return LW_OK;
    const char *e = getenv("LWC_QN_PACK");
    if (e && !strcmp(e, "0")) return LW_OK;
    lw_status st = lw_qn_pack_forward_as(&m->qn, !(e && !strcmp(e, "bytes")));
    if (!st && backward && !(e && !strcmp(e, "fwd"))) st = lw_qn_pack_backward(&m->qn);
    return st;
}

/* --- the set ----------------------------------------------------------------- */

static lw_status narrow_layer(lw_weights_dtype d, const lw_weights *file, const lw_model_config *c, int l,
                              const lw_layer_weights *L, lw_layer_narrow *N, bool backward)
{
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, F = c->ffn;
    const char *dn = lw_weights_dtype_name(d);
    if (!L->wqkv || !L->wo || !L->w_gate_up || !L->w_down)
        return lw_fail(LW_ERR_INVALID, "--dtype %s: %s layer %d has no fused fp32 projections to narrow", dn, c->name,
                       l);
    lw_status st;
    if (d == LW_WEIGHTS_NATIVE) {
        parts qkv = {{"attn_q", "attn_k", "attn_v"}, {qd, kvd, kvd}, 3}, wo = {{"attn_output"}, {H}, 1};
        parts gu = {{"ffn_gate", "ffn_up"}, {F, F}, 2}, down = {{"ffn_down"}, {H}, 1};
        if ((st = native_matrix(file, c, l, &qkv, H, &N->wqkv)) || (st = native_matrix(file, c, l, &wo, qd, &N->wo)) ||
            (st = native_matrix(file, c, l, &gu, H, &N->w_gate_up)) ||
            (st = native_matrix(file, c, l, &down, F, &N->w_down)))
            return st;
    } else if ((st = pack(d, &N->wqkv, L->wqkv, qd + 2 * kvd, H, backward)) ||
               (st = pack(d, &N->wo, L->wo, H, qd, backward)) ||
               (st = pack(d, &N->w_gate_up, L->w_gate_up, 2 * F, H, backward)) ||
               (st = pack(d, &N->w_down, L->w_down, H, F, backward))) {
        return lw_fail_wrap(st, "--dtype %s: %s layer %d", dn, c->name, l);
    }
    /* before the views, which share the packed copies */
    if ((st = pack_panels(&N->wqkv, backward)) || (st = pack_panels(&N->wo, backward)) ||
        (st = pack_panels(&N->w_gate_up, backward)) || (st = pack_panels(&N->w_down, backward)))
        return lw_fail_wrap(st, "--dtype %s: %s layer %d", dn, c->name, l);
    N->wq = rows_view(&N->wqkv, 0, qd);
    N->wk = rows_view(&N->wqkv, qd, kvd);
    N->wv = rows_view(&N->wqkv, qd + kvd, kvd);
    N->w_gate = rows_view(&N->w_gate_up, 0, F);
    N->w_up = rows_view(&N->w_gate_up, F, F);
    return LW_OK;
}

static lw_status narrow_all(lw_model *m, lw_weights_dtype d, const lw_weights *file, bool backward,
                            struct lw_narrow_weights *n)
{
    const lw_model_config *c = &m->cfg;
    const char *dn = lw_weights_dtype_name(d);
    lw_status st = LW_OK;
    for (int l = 0; !st && l < c->n_layers; l++) st = narrow_layer(d, file, c, l, &m->layers[l], &n->layers[l], backward);
    if (st) return st;
    if (d == LW_WEIGHTS_NATIVE) {
        parts head = {{c->tied_embeddings ? "token_embd.weight" : "output.weight"}, {c->vocab}, 1};
        st = native_matrix(file, c, -1, &head, c->hidden, &n->output);
    } else {
        st = pack(d, &n->output, m->output, c->vocab, c->hidden, backward);
    }
    if (!st) st = pack_panels(&n->output, backward);
    if (st) return lw_fail_wrap(st, "--dtype %s: %s output head", dn, c->name);
    return LW_OK;
}

/* Frees an fp32 matrix whose narrow copy exists (and its views with it). */
static void drop_f32(float **f, const nmat *n, float **view0, float **view1, float **view2)
{
    if (!nmat_set(n)) return;
    free(*f);
    *f = NULL;
    if (view0) *view0 = NULL;
    if (view1) *view1 = NULL;
    if (view2) *view2 = NULL;
}

lw_status lw_model_narrow(lw_model *m, lw_weights_dtype d, bool backward)
{
    const lw_model_config *c = &m->cfg;
    const char *dn = lw_weights_dtype_name(d);
    if (d == LW_WEIGHTS_F32) return LW_OK;
    if (d != LW_WEIGHTS_BF16 && d != LW_WEIGHTS_Q8 && d != LW_WEIGHTS_NATIVE)
        return lw_fail(LW_ERR_INVALID, "weights dtype %d: expected fp32, bf16, q8 or native", (int)d);
    if (m->narrow) return lw_fail(LW_ERR_INVALID, "--dtype %s: %s is already %s", dn, c->name,
                                  lw_weights_dtype_name(m->narrow->dtype));
    if (!m->output) return lw_fail(LW_ERR_INVALID, "--dtype %s: %s has no output head", dn, c->name);
    lw_weights *file = NULL;
    if (d == LW_WEIGHTS_NATIVE) {
        if (!c->weights_path[0])
            return lw_fail(LW_ERR_INVALID, "--dtype native: %s has no weights file whose blocks it could keep",
                           c->name);
        lw_status st = lw_weights_open(c->weights_path, c->weights_format, &file);
        if (st) return lw_fail_wrap(st, "--dtype native: %s", c->name);
    }
    struct lw_narrow_weights *n = calloc(1, sizeof *n);
    lw_status st = n ? LW_OK : lw_fail(LW_ERR_NOMEM, "--dtype %s: %s", dn, c->name);
    if (!st) {
        n->dtype = d;
        n->n_layers = c->n_layers;
        n->layers = calloc((size_t)c->n_layers, sizeof *n->layers);
        if (!n->layers) st = lw_fail(LW_ERR_NOMEM, "--dtype %s: %s: %d layers", dn, c->name, c->n_layers);
    }
    if (!st) st = narrow_all(m, d, file, backward, n);
    if (file) lw_weights_close(file);
    if (st) {
        lw_narrow_weights_free(n);
        return st;
    }
    /* every copy made: only now drop the fp32 ones (the views with them) */
    for (int l = 0; l < c->n_layers; l++) {
        lw_layer_weights *L = &m->layers[l];
        const lw_layer_narrow *N = &n->layers[l];
        drop_f32(&L->wqkv, &N->wqkv, &L->wq, &L->wk, &L->wv);
        drop_f32(&L->wo, &N->wo, NULL, NULL, NULL);
        drop_f32(&L->w_gate_up, &N->w_gate_up, &L->w_gate, &L->w_up, NULL);
        drop_f32(&L->w_down, &N->w_down, NULL, NULL, NULL);
    }
    if (nmat_set(&n->output)) {
        if (m->output != m->token_embd) {
            free(m->output);
        } else if (n->output.qn.nseg) {
            /* tied, and the head's blocks hold the table's values: embed from them */
            free(m->token_embd);
            m->token_embd = NULL;
        }
        m->output = NULL;
    }
    m->narrow = n;
    return LW_OK;
}

lw_status lw_model_narrow_bf16(lw_model *m, bool backward) { return lw_model_narrow(m, LW_WEIGHTS_BF16, backward); }
