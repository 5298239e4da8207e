/* The forward pass of a decoder block stack over T new positions, reading
 * and extending the KV cache: the arguments checked, then the model's plan
 * (plan.h, lowered from its config: the block's ops in Hugging Face's
 * order) run by the CPU executor (plan_cpu.c), a chunk of rows at a time. */
#include "model.h"

#include "adapters.h"
#include "plan_cpu.h"

static lw_status check_args(const lw_model *m, const lw_state *s, const lw_forward_args *a)
{
    const lw_model_config *c = &m->cfg;
    if (a->T <= 0 || a->pos0 < 0 || a->pos0 > s->n_cached || a->T > s->max_tokens - a->pos0)
        return lw_fail(LW_ERR_INVALID, "forward %s: %d rows at position %d (cache holds %d of %d)", c->name, a->T,
                       a->pos0, s->n_cached, s->max_tokens);
    if (s->save_acts && a->T > s->chunk)
        return lw_fail(LW_ERR_INVALID, "forward %s: %d rows exceed the saved-activation state's %d", c->name,
                       a->T, s->chunk);
    if (a->capture_layer < -1 || a->capture_layer > c->n_layers || (a->capture_layer >= 0 && !a->hidden_out))
        return lw_fail(LW_ERR_INVALID, "forward %s: capture layer %d (model has %d; hidden_out %s)", c->name,
                       a->capture_layer, c->n_layers, a->hidden_out ? "given" : "missing");
    if (!a->ids && !a->embeds) return lw_fail(LW_ERR_INVALID, "forward %s: neither ids nor embeds", c->name);
    if (a->n_segments) {
        long sum = 0;
        bool bad = a->n_segments < 0 || !a->segment_len;
        for (int g = 0; !bad && g < a->n_segments; g++) {
            bad = a->segment_len[g] < 1;
            sum += a->segment_len[g];
        }
        const lw_receiver_adapters *ad = a->adapters;
        int P = ad ? ad->prefix_len : 0;
        if (bad || sum != a->T || a->T > s->chunk)
            return lw_fail(LW_ERR_INVALID, "forward %s: %d segments of %d rows in all (need positive lengths summing "
                           "to T = %d, at most %d rows)", c->name, a->n_segments, (int)sum, a->T, s->chunk);
        if (P > 0 && ((ad->prefix_segments && ad->prefix_segments < a->n_segments) ||
                      (long)P + a->pos0 + a->T > s->max_tokens))
            return lw_fail(LW_ERR_INVALID, "forward %s: %d segments after a deep prefix of %d (need a prefix per "
                           "segment or one for all, have %d; %d positions, the state holds %d)", c->name,
                           a->n_segments, P, ad->prefix_segments, P + a->pos0 + a->T, s->max_tokens);
    }
    if (a->adapters) {
        int rows = s->save_acts || a->T < s->chunk ? a->T : s->chunk;   /* per pass through the blocks */
        lw_status st = lw_adapters_check(a->adapters, m, rows, a->pos0 + a->T, s->max_tokens);
        if (st) return st;
    }
    for (int t = 0; t < a->T; t++) {
        bool use_embed = lw_forward_row_is_embed(a, t);
        if (use_embed) continue;
        if (!a->ids) return lw_fail(LW_ERR_INVALID, "forward %s: row %d needs a token id, ids is NULL", c->name, t);
        if (a->ids[t] < 0 || a->ids[t] >= c->vocab)
            return lw_fail(LW_ERR_INVALID, "forward %s: token id %d at row %d outside vocab %d", c->name,
                           a->ids[t], t, c->vocab);
    }
    return LW_OK;
}

lw_status lw_forward(const lw_model *m, lw_state *s, const lw_forward_args *a)
{
    lw_status st = check_args(m, s, a);
    if (st) return st;
    lw_plan plan;
    lw_plan_lower(&m->cfg, &plan);
    bool complete = true;
    for (int r0 = 0; r0 < a->T; r0 += s->chunk) {
        int T = a->T - r0 < s->chunk ? a->T - r0 : s->chunk;
        if ((st = lw_plan_cpu_forward_chunk(&plan, m, s, a, r0, T, &complete))) {
            s->n_cached = a->pos0;   /* rows past pos0 may be half written */
            s->last_complete = false;
            return lw_fail_wrap(st, "forward %s", m->cfg.name);
        }
    }
    s->n_cached = complete && !a->n_segments ? a->pos0 + a->T : a->pos0;
    s->last_pos0 = a->pos0;
    s->last_T = a->T;
    s->last_complete = complete;
    s->last_n_segments = s->last_segment_len ? a->n_segments : 0;
    for (int g = 0; g < s->last_n_segments; g++) s->last_segment_len[g] = a->segment_len[g];
    return LW_OK;
}
