/* The host row buffers of a training pass; see pass_rows.h. */
#include "pass_rows.h"

#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n, bool *ok)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) *ok = false;
    return p;
}

lw_status lw_pass_rows_alloc(lw_pass_rows *r, size_t T, size_t hidden, size_t L, size_t vocab, const char *who)
{
    memset(r, 0, sizeof *r);
    bool ok = true;
    r->embeds = falloc(T * hidden, &ok);
    r->d_embeds = falloc(T * hidden, &ok);
    r->final = falloc(T * hidden, &ok);
    r->logits = falloc(L * vocab, &ok);
    r->probs = falloc(L * vocab, &ok);
    r->dlogits = falloc(L * vocab, &ok);
    r->last = falloc(vocab > hidden ? vocab : hidden, &ok);   /* logits, or a final-normed row (receiver_pass.h) */
    r->ids = calloc(T, sizeof *r->ids);
    r->rows = calloc(T, sizeof *r->rows);
    r->targets = calloc(T, sizeof *r->targets);
    r->is_embed = calloc(T, sizeof *r->is_embed);
    if (!ok || !r->ids || !r->rows || !r->targets || !r->is_embed) {
        lw_pass_rows_free(r);
        return lw_fail(LW_ERR_NOMEM, "%s: out of memory for %zu rows of vocab %zu", who, T, vocab);
    }
    return LW_OK;
}

void lw_pass_rows_free(lw_pass_rows *r)
{
    free(r->embeds);
    free(r->d_embeds);
    free(r->final);
    free(r->logits);
    free(r->probs);
    free(r->dlogits);
    free(r->last);
    free(r->ids);
    free(r->rows);
    free(r->targets);
    free(r->is_embed);
    memset(r, 0, sizeof *r);
}
