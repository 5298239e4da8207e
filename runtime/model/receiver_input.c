#include "receiver_input.h"

#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

static lw_status encode(const lw_tokenizer *tok, const char *text, int vocab, const char *what, int **ids, int *n)
{
    lw_status st = lw_tokenizer_encode(tok, text, strlen(text), false, ids, n);
    if (st) return lw_fail_wrap(st, "receiver input: tokenizing the %s", what);
    for (int i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= vocab) {
            int bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            return lw_fail(LW_ERR_INVALID, "receiver input: the %s has token id %d outside the receiver's vocab %d",
                           what, bad, vocab);
        }
    return LW_OK;
}

static lw_status alloc_labels(lw_receiver_layout *L, int n_labels)
{
    L->n_labels = n_labels;
    L->verb_len = calloc((size_t)n_labels, sizeof *L->verb_len);
    L->verb = calloc((size_t)n_labels, sizeof *L->verb);
    if (!L->verb_len || !L->verb) return lw_fail(LW_ERR_NOMEM, "receiver input: out of memory");
    return LW_OK;
}

static lw_status check(lw_receiver_layout *L)
{
    if (L->M < 1 || L->M > 4096) return lw_fail(LW_ERR_INVALID, "receiver input: %d soft tokens (1..4096)", L->M);
    for (int k = 0; k < L->n_labels; k++) {
        if (L->verb_len[k] < 1)
            return lw_fail(LW_ERR_INVALID, "receiver input: label %d's verbalizer has no tokens", k);
        if (L->verb_len[k] > L->max_verb) L->max_verb = L->verb_len[k];
    }
    return LW_OK;
}

lw_status lw_receiver_layout_build(const lw_task *task, lw_chat_template kind, const lw_tokenizer *tok, int M,
                                   int vocab, lw_receiver_layout *out)
{
    memset(out, 0, sizeof *out);
    out->M = M;
    char *before = NULL, *after = NULL, *primer = NULL, *tail = NULL;
    size_t np = strlen(task->primer), na = strlen(task->answer_prompt);
    primer = malloc(np + 2);
    lw_status st = primer ? LW_OK : lw_fail(LW_ERR_NOMEM, "receiver input: out of memory");
    if (!st) {
        memcpy(primer, task->primer, np);
        memcpy(primer + np, "\n", 2);
        st = lw_chat_render_split(kind, NULL, primer, "", &before, &after);
    }
    if (!st) {
        size_t nt = strlen(after);
        tail = malloc(nt + na + 1);
        if (!tail) st = lw_fail(LW_ERR_NOMEM, "receiver input: out of memory");
        else {
            memcpy(tail, after, nt);
            memcpy(tail + nt, task->answer_prompt, na + 1);
        }
    }
    if (!st) st = encode(tok, before, vocab, "template head and primer", &out->before, &out->n_before);
    if (!st) st = encode(tok, tail, vocab, "template tail and answer prompt", &out->after, &out->n_after);
    if (!st) st = alloc_labels(out, task->n_labels);
    for (int k = 0; !st && k < task->n_labels; k++)
        st = encode(tok, task->verbalizers[k], vocab, "verbalizer", &out->verb[k], &out->verb_len[k]);
    if (!st) st = check(out);
    free(primer);
    free(before);
    free(after);
    free(tail);
    if (st) lw_receiver_layout_free(out);
    return st;
}

static int *dup_ids(const int *ids, int n)
{
    int *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
    if (d && n > 0) memcpy(d, ids, (size_t)n * sizeof *d);
    return d;
}

lw_status lw_receiver_layout_from_ids(int M, const int *before, int n_before, const int *after, int n_after,
                                      int n_labels, const int *const *verb, const int *verb_len,
                                      lw_receiver_layout *out)
{
    memset(out, 0, sizeof *out);
    out->M = M;
    out->n_before = n_before;
    out->n_after = n_after;
    out->before = dup_ids(before, n_before);
    out->after = dup_ids(after, n_after);
    lw_status st = out->before && out->after ? alloc_labels(out, n_labels)
                                             : lw_fail(LW_ERR_NOMEM, "receiver input: out of memory");
    for (int k = 0; !st && k < n_labels; k++) {
        out->verb_len[k] = verb_len[k];
        if (!(out->verb[k] = dup_ids(verb[k], verb_len[k])))
            st = lw_fail(LW_ERR_NOMEM, "receiver input: out of memory");
    }
    if (!st) st = check(out);
    if (st) lw_receiver_layout_free(out);
    return st;
}

void lw_receiver_layout_free(lw_receiver_layout *L)
{
    free(L->before);
    free(L->after);
    for (int k = 0; L->verb && k < L->n_labels; k++) free(L->verb[k]);
    free(L->verb);
    free(L->verb_len);
    memset(L, 0, sizeof *L);
}

int lw_receiver_fill(const lw_receiver_layout *L, int label, int n_verb, int *ids, bool *is_embed)
{
    int t = 0;
    for (int i = 0; i < L->n_before; i++, t++) ids[t] = L->before[i], is_embed[t] = false;
    for (int i = 0; i < L->M; i++, t++) ids[t] = 0, is_embed[t] = true;
    for (int i = 0; i < L->n_after; i++, t++) ids[t] = L->after[i], is_embed[t] = false;
    if (label >= 0 && label < L->n_labels) {
        if (n_verb > L->verb_len[label]) n_verb = L->verb_len[label];
        for (int i = 0; i < n_verb; i++, t++) ids[t] = L->verb[label][i], is_embed[t] = false;
    }
    return t;
}

bool lw_receiver_first_token_right(const lw_receiver_layout *L, const float *logits, int label)
{
    int gold_id = L->verb[label][0];
    for (int k = 0; k < L->n_labels; k++)
        if (k != label && L->verb[k][0] != gold_id && logits[L->verb[k][0]] >= logits[gold_id]) return false;
    return true;
}
