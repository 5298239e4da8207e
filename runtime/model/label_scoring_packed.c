/* Several prompts' label scores in one receiver pass (label_scoring_packed.h). */
#include "label_scoring_packed.h"

#include <stdlib.h>
#include <string.h>

#include "frozen_matmul.h"

lw_status lw_packed_scorer_init(lw_packed_scorer *s, const lw_model *m, int rows)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    if (rows < 2 || rows > m->cfg.context)
        return lw_fail(LW_ERR_INVALID, "packed scorer: %d rows a pass (%s has 2..%d)", rows, m->cfg.name,
                       m->cfg.context);
    if (rows > LW_CHUNK_ROWS) rows = LW_CHUNK_ROWS;   /* a segmented forward is one chunk */
    s->rows = rows;
    size_t R = (size_t)rows, H = (size_t)m->cfg.hidden;
    /* the positions: a shared head (at most a pass's rows) and a pass after it */
    int positions = 2 * rows < m->cfg.context ? 2 * rows : m->cfg.context;
    lw_status st = lw_state_alloc(m, positions, false, &s->state);
    s->head = malloc(R * sizeof *s->head);
    s->ids = malloc(R * sizeof *s->ids);
    s->is_embed = malloc(R * sizeof *s->is_embed);
    s->embeds = malloc(R * H * sizeof *s->embeds);
    s->hid = malloc(R * H * sizeof *s->hid);
    s->seg_len = malloc(R * sizeof *s->seg_len);
    if (!st && (!s->head || !s->ids || !s->is_embed || !s->embeds || !s->hid || !s->seg_len))
        st = lw_fail(LW_ERR_NOMEM, "packed scorer: out of memory for %d rows", rows);
    if (!st && s->state->chunk < rows) s->rows = s->state->chunk;
    if (st) lw_packed_scorer_free(s);
    return st;
}

void lw_packed_scorer_free(lw_packed_scorer *s)
{
    lw_state_free(s->state);
    free(s->head);
    free(s->ids);
    free(s->is_embed);
    free(s->embeds);
    free(s->hid);
    free(s->seg_len);
    memset(s, 0, sizeof *s);
}

int lw_packed_scorer_rows_needed(int P, int n_labels, const int *verb_len)
{
    int rows = 0, with_tail = 0;
    for (int k = 0; k < n_labels; k++)
        if (verb_len[k] > 1) rows += P + verb_len[k] - 1, with_tail++;
    return with_tail ? rows : P;
}

/* Appends rows [C, P) of prompt pr (the rows after the cached head), then
 * the ids tail[0, n_tail), as one segment. */
static void add_segment(lw_packed_scorer *s, int C, int *r, int *g, const lw_score_prompt *pr, const int *tail,
                        int n_tail)
{
    size_t H = (size_t)s->m->cfg.hidden, at = (size_t)*r;
    int n = pr->P - C;
    memcpy(s->ids + at, pr->ids + C, (size_t)n * sizeof(int));
    for (int t = 0; t < n; t++) s->is_embed[at + t] = pr->embeds && (!pr->is_embed || pr->is_embed[C + t]);
    if (pr->embeds) memcpy(s->embeds + at * H, pr->embeds + (size_t)C * H, (size_t)n * H * sizeof(float));
    at += (size_t)n;
    if (n_tail) memcpy(s->ids + at, tail, (size_t)n_tail * sizeof(int));   /* tail may be NULL with none */
    for (int t = 0; t < n_tail; t++) s->is_embed[at + t] = false;
    s->seg_len[(*g)++] = n + n_tail;
    *r += n + n_tail;
}

/* The output head over the n_score rows row[] of s->hid, through the
 * plan's head_logsoftmax record (frozen_matmul.h: fused with the
 * log-softmax for an fp32 head, the head's own product for a narrow one):
 * an entry of target -1 gives every label's first token its log-prob
 * (scores[owner + k]); one of target t >= 0 adds t's log-prob to
 * scores[owner]. Entries naming the same row share it (labels whose
 * verbalizers begin alike, after one prompt). A lone row is multiplied
 * with a copy of itself. */
static lw_status score_rows(lw_packed_scorer *s, int n_score, int *row, int *target, int *owner, int n_labels,
                            const int *const *verb, double *scores)
{
    const lw_model *m = s->m;
    int H = m->cfg.hidden, n_rows = 0, most = 0, n_pairs = 0;
    for (int j = 0; j < n_score; j++) {
        if (row[j] >= most) most = row[j] + 1;
        n_pairs += target[j] == -1 ? n_labels : target[j] >= 0;
    }
    /* unique[j]: the entry's row among the distinct rows, in order of first use */
    int *unique = malloc((size_t)(n_score + 1) * sizeof *unique), *seen = malloc((size_t)most * sizeof *seen);
    int *rows = malloc((size_t)(n_score + 1) * sizeof *rows);
    int *pair = malloc(2 * (size_t)(n_pairs > 0 ? n_pairs : 1) * sizeof *pair);
    double *logp = malloc((size_t)(n_pairs > 0 ? n_pairs : 1) * sizeof *logp);
    float *x = malloc((size_t)(n_score + 1) * H * sizeof *x);
    lw_status st = LW_OK;
    if (!unique || !seen || !rows || !pair || !logp || !x)
        st = lw_fail(LW_ERR_NOMEM, "packed scorer: out of memory for %d scored rows", n_score);
    for (int r = 0; !st && r < most; r++) seen[r] = -1;
    for (int j = 0; !st && j < n_score; j++) {
        if (seen[row[j]] < 0) seen[row[j]] = n_rows, rows[n_rows++] = row[j];
        unique[j] = seen[row[j]];
    }
    if (!st && n_rows == 1) rows[n_rows++] = rows[0];   /* the copy, for the products' sake */
    for (int q = 0; !st && q < n_rows; q++)
        memcpy(x + (size_t)q * H, s->hid + (size_t)rows[q] * H, (size_t)H * sizeof(float));
    for (int j = 0, k = 0; !st && j < n_score; j++) {
        if (target[j] == -1)
            for (int l = 0; l < n_labels; l++) pair[k] = unique[j], pair[n_pairs + k++] = verb[l][0];
        else if (target[j] >= 0)
            pair[k] = unique[j], pair[n_pairs + k++] = target[j];
    }
    if (!st) {
        lw_plan plan;
        lw_plan_lower(&m->cfg, &plan);
        st = lw_plan_cpu_head_logsoftmax(&plan, m, x, n_rows, pair, pair + n_pairs, n_pairs, NULL, logp);
    }
    for (int j = 0, k = 0; !st && j < n_score; j++) {   /* in entry order: the sums add as lw_score_verbalizers' */
        if (target[j] == -1)
            for (int l = 0; l < n_labels; l++) scores[owner[j] + l] = logp[k++];
        else if (target[j] >= 0)
            scores[owner[j]] += logp[k++];
    }
    free(unique), free(seen), free(rows), free(pair), free(logp), free(x);
    return st;
}

/* One pass over prompts [0, n), which fit a pass after the head of C rows:
 * the segments, the forward, the output head over the scored rows, and the
 * sums. Every product takes two rows or more, so an example's rows go
 * through a matrix-matrix product whatever its batch (a lone row would be
 * a BLAS's matrix-vector path, summed in yet another order). */
static lw_status score_pass(lw_packed_scorer *s, int C, int n, const lw_score_prompt *prompts, int n_labels,
                            const int *const *verb, const int *verb_len, double *scores)
{
    const lw_model *m = s->m;
    int r = 0, g = 0, n_score = 0;
    /* each example: the row of its prompt's last token, then each label's tail rows */
    int *first = malloc((size_t)n * sizeof *first), *tail0 = malloc((size_t)n * n_labels * sizeof *tail0);
    lw_status st = first && tail0 ? LW_OK : lw_fail(LW_ERR_NOMEM, "packed scorer: out of memory");
    for (int i = 0; !st && i < n; i++) {
        const lw_score_prompt *pr = &prompts[i];
        first[i] = -1;
        for (int k = 0; k < n_labels; k++) {
            tail0[i * n_labels + k] = -1;
            if (verb_len[k] < 2) continue;
            int seg0 = r;
            add_segment(s, C, &r, &g, pr, verb[k], verb_len[k] - 1);
            if (first[i] < 0) first[i] = seg0 + pr->P - C - 1;
            tail0[i * n_labels + k] = seg0 + pr->P - C;
        }
        if (first[i] < 0) {
            add_segment(s, C, &r, &g, pr, NULL, 0);
            first[i] = r - 1;
        }
    }
    if (!st && r == 1) {   /* one row: a second copy, for the products' sake */
        add_segment(s, C, &r, &g, &prompts[0], NULL, 0);
    }
    if (!st) {
        lw_forward_args a = {.ids = s->ids, .embeds = s->embeds, .is_embed = s->is_embed, .T = r, .pos0 = C,
                             .capture_layer = m->cfg.n_layers, .hidden_out = s->hid, .n_segments = g,
                             .segment_len = s->seg_len};
        lw_state_rewind(s->state, C);   /* the head stays; a segment's keys are scratch */
        st = lw_forward(m, s->state, &a);
    }
    /* the scored rows in order: example by example, its first row, then label by label its tail's rows */
    int *row = NULL, *target = NULL, *owner = NULL;
    if (!st) {
        int most = n;
        for (int k = 0; k < n_labels; k++) most += n * (verb_len[k] - 1);
        most += 2;
        row = malloc((size_t)most * sizeof *row);
        target = malloc((size_t)most * sizeof *target);
        owner = malloc((size_t)most * sizeof *owner);
        if (!row || !target || !owner) st = lw_fail(LW_ERR_NOMEM, "packed scorer: out of memory");
        for (int i = 0; !st && i < n; i++) {
            row[n_score] = first[i], target[n_score] = -1, owner[n_score++] = i * n_labels;
            for (int k = 0; k < n_labels; k++)
                for (int j = 1; j < verb_len[k]; j++)
                    row[n_score] = tail0[i * n_labels + k] + j - 1, target[n_score] = verb[k][j],
                    owner[n_score++] = i * n_labels + k;
        }
    }
    if (!st) st = score_rows(s, n_score, row, target, owner, n_labels, verb, scores);
    free(row);
    free(target);
    free(owner);
    free(first);
    free(tail0);
    return st;
}

/* Rows of a pass after a head of C. */
static int pass_room(const lw_packed_scorer *s, int C)
{
    int room = s->state->max_tokens - C;
    return room < s->rows ? room : s->rows;
}

static int tail_rows(int n_labels, const int *verb_len)
{
    int rows = 0;
    for (int k = 0; k < n_labels; k++) rows += verb_len[k] - 1;
    return rows;
}

/* Whether an example of P rows after the head of C is scored on its own,
 * its prompt once (score_prompt_once): when its labels' segments, each
 * repeating the prompt's rows, do not fit a pass (Banking77: 77 labels
 * times a 23-row prompt), or would take more than twice the rows of the
 * prompt once and the tails after it. */
static bool prompt_once(const lw_packed_scorer *s, int C, int P, int n_labels, const int *verb_len)
{
    int packed = lw_packed_scorer_rows_needed(P - C, n_labels, verb_len);
    return packed > pass_room(s, C) || packed > 2 * (P - C + tail_rows(n_labels, verb_len));
}

/* Whether prompt_once can score it: its rows after the head in one pass,
 * and every label's tail, with the prompt's last row, in a pass after it. */
static lw_status check_prompt_once(const lw_packed_scorer *s, int C, int i, int P, int n_labels,
                                   const int *verb_len)
{
    int room = pass_room(s, C), after = s->state->max_tokens - P + 1;
    if (after > s->rows) after = s->rows;
    if (P - C > room)
        return lw_fail(LW_ERR_INVALID, "packed scorer: example %d's prompt has %d rows after a shared head of %d, "
                       "a pass holds %d", i, P - C, C, room);
    for (int k = 0; k < n_labels; k++)
        if (verb_len[k] > after)
            return lw_fail(LW_ERR_INVALID, "packed scorer: example %d: label %d's verbalizer of %d tokens after its "
                           "%d-row prompt does not fit a pass (%d rows after it)", i, k, verb_len[k], P, after - 1);
    return LW_OK;
}

/* One example on its own (prompt_once): its rows after the cached head run
 * once and stay in the cache; then its labels' tails (each verbalizer but
 * its last token) continue them as segments, as many labels a pass as fit
 * beside the prompt's last row, which s->hid keeps in row 0; the output head
 * reads that row (every label's first token) and the tails' rows, a row
 * that labels beginning alike share once (Banking77's " card ..."). The
 * sums are lw_score_verbalizers' after the whole prompt, to float rounding. */
static lw_status score_prompt_once(lw_packed_scorer *s, int C, const lw_score_prompt *pr, int n_labels,
                                   const int *const *verb, const int *verb_len, double *scores)
{
    const lw_model *m = s->m;
    size_t H = (size_t)m->cfg.hidden;
    int r = 0, g = 0, P = pr->P;
    add_segment(s, C, &r, &g, pr, NULL, 0);
    lw_forward_args a = {.ids = s->ids, .embeds = s->embeds, .is_embed = s->is_embed, .T = r, .pos0 = C,
                         .capture_layer = m->cfg.n_layers, .hidden_out = s->hid};
    lw_state_rewind(s->state, C);
    lw_status st = lw_forward(m, s->state, &a);
    if (st) return st;
    memmove(s->hid, s->hid + (size_t)(r - 1) * H, H * sizeof(float));   /* the prompt's last row */
    int cap = s->state->max_tokens - P + 1;   /* rows of a pass after the prompt, with row 0 */
    if (cap > s->rows) cap = s->rows;
    int most = 2 + tail_rows(n_labels, verb_len);
    int *row = malloc((size_t)most * sizeof *row), *target = malloc((size_t)most * sizeof *target);
    int *owner = malloc((size_t)most * sizeof *owner), *tail0 = malloc((size_t)n_labels * sizeof *tail0);
    if (!row || !target || !owner || !tail0) st = lw_fail(LW_ERR_NOMEM, "packed scorer: out of memory");
    for (int k = 0, first = 1; !st && (first || k < n_labels); first = 0) {
        int n_score = 0, rows = 1, k0 = k;
        g = 0;
        if (first) row[n_score] = 0, target[n_score] = -1, owner[n_score++] = 0;
        for (; k < n_labels && rows + verb_len[k] - 1 <= cap; k++) {
            tail0[k] = -1;
            if (verb_len[k] < 2) continue;
            memcpy(s->ids + rows - 1, verb[k], (size_t)(verb_len[k] - 1) * sizeof(int));
            tail0[k] = rows;
            for (int j = 1; j < verb_len[k]; j++) {
                /* the row after verb[k][0..j): an earlier label of the pass that begins alike has it too */
                int at = rows + j - 1;
                for (int e = k0; e < k && at == rows + j - 1; e++)
                    if (tail0[e] >= 0 && verb_len[e] > j && !memcmp(verb[e], verb[k], (size_t)j * sizeof(int)))
                        at = tail0[e] + j - 1;
                row[n_score] = at, target[n_score] = verb[k][j], owner[n_score++] = k;
            }
            rows += s->seg_len[g++] = verb_len[k] - 1;
        }
        if (g) {   /* the prompt's keys stay; a segment's are scratch */
            lw_forward_args b = {.ids = s->ids, .T = rows - 1, .pos0 = P, .capture_layer = m->cfg.n_layers,
                                 .hidden_out = s->hid + H, .n_segments = g, .segment_len = s->seg_len};
            st = lw_forward(m, s->state, &b);
        }
        if (!st && n_score) st = score_rows(s, n_score, row, target, owner, n_labels, verb, scores);
        if (!st && k == k0 && k < n_labels)
            st = lw_fail(LW_ERR_INVALID, "packed scorer: label %d's verbalizer does not fit a pass", k);
    }
    free(row);
    free(target);
    free(owner);
    free(tail0);
    return st;
}

static bool row_is_embed(const lw_score_prompt *pr, int t)
{
    return pr->embeds && (!pr->is_embed || pr->is_embed[t]);
}

/* The rows every prompt begins with (token ids, the same in all; a chat
 * template's head and a task's primer), leaving each at least its last
 * row: they run once and stay cached, and the segments continue them. */
static int shared_head(const lw_packed_scorer *s, int n, const lw_score_prompt *prompts)
{
    int C = 0;
    for (bool same = true; same && C < s->rows; C += same) {
        for (int i = 0; same && i < n; i++)
            same = C < prompts[i].P - 1 && !row_is_embed(&prompts[i], C) && prompts[i].ids[C] == prompts[0].ids[C];
    }
    return C;
}

/* The head's rows into the cache, unless it holds them from the last call. */
static lw_status run_head(lw_packed_scorer *s, int C, const lw_score_prompt *prompts)
{
    if (C == s->head_len && lw_state_cached(s->state) >= C && !memcmp(s->head, prompts[0].ids, (size_t)C * sizeof(int)))
        return LW_OK;
    s->head_len = 0;
    lw_state_reset(s->state);
    if (C == 0) return LW_OK;
    /* every block (the segments read every layer's keys): the final rows land in hid, unused */
    lw_forward_args a = {.ids = prompts[0].ids, .T = C, .capture_layer = s->m->cfg.n_layers, .hidden_out = s->hid};
    lw_status st = lw_forward(s->m, s->state, &a);
    if (st) return st;
    memcpy(s->head, prompts[0].ids, (size_t)C * sizeof(int));
    s->head_len = C;
    return LW_OK;
}

lw_status lw_packed_scorer_score(lw_packed_scorer *s, int n, const lw_score_prompt *prompts, int n_labels,
                                 const int *const *verb, const int *verb_len, double *scores)
{
    const lw_model_config *c = &s->m->cfg;
    for (int k = 0; k < n_labels; k++)
        for (int j = 0; j < verb_len[k]; j++)
            if (verb_len[k] < 1 || verb[k][j] < 0 || verb[k][j] >= c->vocab)
                return lw_fail(LW_ERR_INVALID, "packed scorer: label %d's verbalizer token %d (of %d) is not in %s's "
                               "vocab", k, j, verb_len[k], c->name);
    for (int i = 0; i < n; i++) {   /* all checked before any pass runs */
        const lw_score_prompt *pr = &prompts[i];
        if (pr->P < 1) return lw_fail(LW_ERR_INVALID, "packed scorer: example %d has an empty prompt", i);
        for (int t = 0; t < pr->P; t++)
            if (!row_is_embed(pr, t) && (pr->ids[t] < 0 || pr->ids[t] >= c->vocab))
                return lw_fail(LW_ERR_INVALID, "packed scorer: example %d, row %d is id %d, outside %s's vocab %d",
                               i, t, pr->ids[t], c->name, c->vocab);
    }
    int C = shared_head(s, n, prompts), room = pass_room(s, C);
    for (int i = 0; i < n; i++) {
        lw_status st = prompt_once(s, C, prompts[i].P, n_labels, verb_len)
                           ? check_prompt_once(s, C, i, prompts[i].P, n_labels, verb_len)
                           : LW_OK;
        if (st) return st;
    }
    lw_status st = run_head(s, C, prompts);
    if (st) return lw_fail_wrap(st, "packed scorer: the shared head of %d rows", C);
    int i0 = 0, used = 0;
    for (int i = 0; i <= n; i++) {
        bool alone = i < n && prompt_once(s, C, prompts[i].P, n_labels, verb_len);
        int need = i < n && !alone ? lw_packed_scorer_rows_needed(prompts[i].P - C, n_labels, verb_len) : 0;
        if (i0 < i && (i == n || alone || used + need > room)) {   /* the pass so far, then a new one */
            st = score_pass(s, C, i - i0, prompts + i0, n_labels, verb, verb_len, scores + (size_t)i0 * n_labels);
            if (st) st = lw_fail_wrap(st, "packed scorer: examples %d..%d", i0, i - 1);
            i0 = i, used = 0;
        }
        if (!st && alone) {
            st = score_prompt_once(s, C, &prompts[i], n_labels, verb, verb_len, scores + (size_t)i * n_labels);
            if (st) st = lw_fail_wrap(st, "packed scorer: example %d (its prompt once, then its labels)", i);
            i0 = i + 1;
        }
        if (st) {
            s->head_len = 0;   /* whatever the cache holds now, it is not known to be the head */
            return st;
        }
        used += need;
    }
    return LW_OK;
}
