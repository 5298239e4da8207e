/* The soft-token objectives and the first-token layout (objectives.h). */
#include "objectives.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lw_status lw_receiver_layout_first_tokens(const lw_receiver_layout *L, lw_receiver_layout *out)
{
    int n = L->n_labels;
    const int **first = malloc((size_t)(n > 0 ? n : 1) * sizeof *first);
    int *len = malloc((size_t)(n > 0 ? n : 1) * sizeof *len);
    lw_status st = first && len ? LW_OK : lw_fail(LW_ERR_NOMEM, "first-token layout: out of memory");
    for (int i = 0; !st && i < n; i++) {
        if (L->verb_len[i] < 1)
            st = lw_fail(LW_ERR_INVALID, "first-token layout: label %d has an empty verbalizer", i);
        first[i] = L->verb[i];
        len[i] = 1;
    }
    if (!st)
        st = lw_receiver_layout_from_ids(L->M, L->before, L->n_before, L->after, L->n_after, n,
                                         (const int *const *)first, len, out);
    free(first);
    free(len);
    return st;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void lw_verbalizer_stats_of(const lw_receiver_layout *L, lw_verbalizer_stats *s)
{
    memset(s, 0, sizeof *s);
    if (L->n_labels < 1) return;
    int *first = malloc((size_t)L->n_labels * sizeof *first);
    s->min_len = s->max_len = L->verb_len[0];
    long total = 0;
    for (int i = 0; i < L->n_labels; i++) {
        int k = L->verb_len[i];
        s->min_len = k < s->min_len ? k : s->min_len;
        s->max_len = k > s->max_len ? k : s->max_len;
        total += k;
        if (first) first[i] = k > 0 ? L->verb[i][0] : -1;
    }
    s->mean_len = (double)total / L->n_labels;
    if (!first) return;
    qsort(first, (size_t)L->n_labels, sizeof *first, cmp_int);
    /* a first token that only one label has tells that label apart */
    for (int i = 0; i < L->n_labels;) {
        int j = i;
        while (j < L->n_labels && first[j] == first[i]) j++;
        s->distinct_first += j - i == 1;
        i = j;
    }
    free(first);
}

lw_status lw_answer_embeddings(const lw_model *m, const lw_receiver_layout *L, float **out)
{
    int H = m->cfg.hidden, V = m->cfg.vocab;
    *out = NULL;
    if (!m->token_embd) return lw_fail(LW_ERR_INVALID, "answer embeddings: %s has no token embeddings", m->cfg.name);
    float *e = calloc((size_t)(L->n_labels > 0 ? L->n_labels : 1) * H, sizeof *e);
    if (!e) return lw_fail(LW_ERR_NOMEM, "answer embeddings: out of memory for %d labels", L->n_labels);
    for (int i = 0; i < L->n_labels; i++) {
        float *row = e + (size_t)i * H;
        for (int k = 0; k < L->verb_len[i]; k++) {
            int id = L->verb[i][k];
            if (id < 0 || id >= V) {
                free(e);
                return lw_fail(LW_ERR_INVALID, "answer embeddings: label %d token %d outside vocab %d", i, id, V);
            }
            const float *w = m->token_embd + (size_t)id * H;
            for (int c = 0; c < H; c++) row[c] += w[c] * m->embed_scale / (float)L->verb_len[i];
        }
    }
    *out = e;
    return LW_OK;
}

double lw_soft_diversity(const float *z, int M, int H, float *dz, float scale)
{
    if (M < 2) return 0.0;
    double total = 0.0, pairs = (double)M * (M - 1) / 2;
    for (int i = 0; i < M; i++)
        for (int j = i + 1; j < M; j++) {
            const float *a = z + (size_t)i * H, *b = z + (size_t)j * H;
            double ab = 0, aa = 0, bb = 0;
            for (int k = 0; k < H; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
            double na = sqrt(aa) + 1e-12, nb = sqrt(bb) + 1e-12, cosv = ab / (na * nb);
            total += cosv;
            if (!dz) continue;
            double g = scale / pairs;
            float *da = dz + (size_t)i * H, *db = dz + (size_t)j * H;
            for (int k = 0; k < H; k++) {
                da[k] += (float)(g * (b[k] / (na * nb) - cosv * a[k] / (na * na)));
                db[k] += (float)(g * (a[k] / (na * nb) - cosv * b[k] / (nb * nb)));
            }
        }
    return total / pairs;
}

double lw_soft_alignment(const float *z, int M, int H, const float *target, float *dz, float scale)
{
    double *u = calloc((size_t)H, sizeof *u);
    if (!u) return NAN;   /* the caller's loss turns non-finite: the step is refused, not wrong */
    for (int m = 0; m < M; m++)
        for (int k = 0; k < H; k++) u[k] += (double)z[(size_t)m * H + k] / M;
    double ue = 0, uu = 0, ee = 0;
    for (int k = 0; k < H; k++) ue += u[k] * target[k], uu += u[k] * u[k], ee += (double)target[k] * target[k];
    double nu = sqrt(uu) + 1e-12, ne = sqrt(ee) + 1e-12, cosv = ue / (nu * ne);
    if (dz)   /* d(1 - cos)/dz_m = -(1/M) (e / (|u||e|) - cos u / |u|^2) */
        for (int k = 0; k < H; k++) {
            float g = (float)(-scale / M * (target[k] / (nu * ne) - cosv * u[k] / (nu * nu)));
            for (int m = 0; m < M; m++) dz[(size_t)m * H + k] += g;
        }
    free(u);
    return 1.0 - cosv;
}
